package secretstream

// sentinel is an error value with an optional parent, so that for example
// errors.Is(err, ErrServerAuthFailed) and errors.Is(err, ErrAuthFailed)
// both hold.
type sentinel struct {
	msg    string
	parent error
}

func (e *sentinel) Error() string { return e.msg }
func (e *sentinel) Unwrap() error { return e.parent }

// Sentinel errors of the handshake; test with errors.Is.
var (
	// ErrWrongAppKey: the peer's hello MAC does not match our app key, or
	// the peer hung up right after our hello (what a peer on another
	// network does).
	ErrWrongAppKey error = &sentinel{msg: "secretstream: handshake: peer uses a different network key (app key)"}
	// ErrAuthFailed is the parent of ErrServerAuthFailed,
	// ErrClientAuthFailed and ErrUnauthorized.
	ErrAuthFailed error = &sentinel{msg: "secretstream: handshake: authentication failed"}
	// ErrServerAuthFailed (client side): the server did not prove it holds
	// the expected key, or it refused us (hung up instead of accepting).
	ErrServerAuthFailed error = &sentinel{msg: "secretstream: handshake: server authentication failed", parent: ErrAuthFailed}
	// ErrClientAuthFailed (server side): the client's authentication
	// message did not open or verify (often: the client dialled expecting
	// another server key).
	ErrClientAuthFailed error = &sentinel{msg: "secretstream: handshake: client authentication failed", parent: ErrAuthFailed}
	// ErrUnauthorized (server side): the authorize hook refused the client.
	ErrUnauthorized error = &sentinel{msg: "secretstream: handshake: client not authorized", parent: ErrAuthFailed}
	// ErrInvalidKey: a long-term or ephemeral public key is malformed or
	// of low order.
	ErrInvalidKey error = &sentinel{msg: "secretstream: handshake: invalid public key"}
	// ErrProtocol: a message has the wrong size or a step was called out
	// of order.
	ErrProtocol error = &sentinel{msg: "secretstream: handshake: protocol violation"}
	// ErrHandshakeTimeout: the handshake did not finish within its
	// deadline (also wraps the I/O or context error).
	ErrHandshakeTimeout error = &sentinel{msg: "secretstream: handshake: timed out"}
)
