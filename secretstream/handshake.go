package secretstream

import (
	"crypto/ed25519"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/sha512"
	"fmt"
	"io"

	"filippo.io/edwards25519"
	x25519voi "github.com/oasisprotocol/curve25519-voi/primitives/x25519"
	"golang.org/x/crypto/nacl/secretbox"
)

// Sizes of the four handshake messages (protocol.md §3.1).
const (
	HelloSize        = 64  // msg1 (client hello) and msg2 (server hello)
	ClientAuthSize   = 112 // msg3
	ServerAcceptSize = 80  // msg4
)

// SessionKeys are the box-stream parameters of one side of a connection.
type SessionKeys struct {
	EncryptKey   [32]byte
	EncryptNonce [24]byte
	DecryptKey   [32]byte
	DecryptNonce [24]byte
}

// appMAC is HMAC-SHA-512-256 keyed with the app key (libsodium crypto_auth).
func appMAC(appKey *AppKey, msg []byte) [32]byte {
	m := hmac.New(sha512.New, appKey[:])
	m.Write(msg)
	var out [32]byte
	copy(out[:], m.Sum(nil))
	return out
}

// ephemeral is a Curve25519 key pair used for one handshake only.
type ephemeral struct {
	secret, public [32]byte
}

func newEphemeral(r io.Reader) (ephemeral, error) {
	var e ephemeral
	if r == nil {
		r = rand.Reader
	}
	if _, err := io.ReadFull(r, e.secret[:]); err != nil {
		return e, fmt.Errorf("secretstream: handshake: read ephemeral key: %w", err)
	}
	// X25519(secret, 9) computed with the faster fixed-base Edwards
	// multiplication, then mapped to the Montgomery u-coordinate.
	sc, err := edwards25519.NewScalar().SetBytesWithClamping(e.secret[:])
	if err != nil {
		return e, fmt.Errorf("secretstream: handshake: ephemeral key: %w", err)
	}
	copy(e.public[:], new(edwards25519.Point).ScalarBaseMult(sc).BytesMontgomery())
	return e, nil
}

// x25519 is a Diffie-Hellman step that rejects all-zero (low-order) results.
func x25519(secret, public *[32]byte, what string) ([32]byte, error) {
	var out [32]byte
	// curve25519-voi's X25519 is about twice as fast as x/crypto's here and
	// likewise rejects an all-zero (low-order) result.
	r, err := x25519voi.X25519(secret[:], public[:])
	if err != nil {
		return out, fmt.Errorf("%w: %s: %w", ErrInvalidKey, what, err)
	}
	copy(out[:], r)
	return out, nil
}

// common holds the state both roles share.
type common struct {
	appKey      AppKey
	local       ed25519.PrivateKey
	localPublic ed25519.PublicKey
	localCurve  [32]byte // ed2x_sk(local)
	eph         ephemeral
	localMAC    [32]byte // hmac(N, own ephemeral public)

	remotePublic ed25519.PublicKey // long-term, known (client) or learned (server)
	remoteEph    [32]byte
	remoteMAC    [32]byte

	ab     [32]byte // x25519(a, b)
	abHash [32]byte // sha256(ab)
	aB     [32]byte // client eph x server long-term
	k3     [32]byte // sha256(N || ab || aB)
	sigA   [64]byte
	Ab     [32]byte // client long-term x server eph
	k4     [32]byte // sha256(N || ab || aB || Ab)

	done bool
}

func newCommon(appKey AppKey, local ed25519.PrivateKey, random io.Reader) (common, error) {
	var c common
	if len(local) != ed25519.PrivateKeySize {
		return c, fmt.Errorf("%w: local ed25519 private key has %d bytes, want %d", ErrInvalidKey, len(local), ed25519.PrivateKeySize)
	}
	eph, err := newEphemeral(random)
	if err != nil {
		return c, err
	}
	c.appKey = appKey
	c.local = local
	c.localPublic = local.Public().(ed25519.PublicKey)
	c.localCurve = edPrivateToCurve(local)
	c.eph = eph
	c.localMAC = appMAC(&c.appKey, eph.public[:])
	return c, nil
}

// hello returns this side's msg1/msg2: hmac(N, eph_pk) || eph_pk.
func (c *common) hello() []byte {
	out := make([]byte, 0, HelloSize)
	out = append(out, c.localMAC[:]...)
	return append(out, c.eph.public[:]...)
}

// verifyHello checks the peer's msg1/msg2 and computes ab.
func (c *common) verifyHello(msg []byte) error {
	if len(msg) != HelloSize {
		return fmt.Errorf("%w: hello has %d bytes, want %d", ErrProtocol, len(msg), HelloSize)
	}
	mac := appMAC(&c.appKey, msg[32:64])
	if !hmac.Equal(mac[:], msg[:32]) {
		return ErrWrongAppKey
	}
	copy(c.remoteMAC[:], msg[:32])
	copy(c.remoteEph[:], msg[32:64])
	ab, err := x25519(&c.eph.secret, &c.remoteEph, "peer ephemeral key")
	if err != nil {
		return err
	}
	c.ab = ab
	c.abHash = sha256.Sum256(ab[:])
	return nil
}

func hashConcat(parts ...[]byte) [32]byte {
	h := sha256.New()
	for _, p := range parts {
		h.Write(p)
	}
	var out [32]byte
	copy(out[:], h.Sum(nil))
	return out
}

// sessionKeys derives the box-stream keys (protocol.md §3.3).
func (c *common) sessionKeys() (SessionKeys, error) {
	var k SessionKeys
	if !c.done {
		return k, fmt.Errorf("%w: session keys requested before the handshake completed", ErrProtocol)
	}
	k = deriveSessionKeys(&c.k4, c.localPublic, c.remotePublic, &c.localMAC, &c.remoteMAC)
	return k, nil
}

// deriveSessionKeys: S = sha256(K4); each side encrypts with
// sha256(S || remote_pk) starting at the remote's hello MAC, and decrypts
// with sha256(S || local_pk) starting at its own hello MAC.
func deriveSessionKeys(k4 *[32]byte, localPublic, remotePublic []byte, localMAC, remoteMAC *[32]byte) SessionKeys {
	var k SessionKeys
	s := sha256.Sum256(k4[:])
	k.EncryptKey = hashConcat(s[:], remotePublic)
	k.DecryptKey = hashConcat(s[:], localPublic)
	copy(k.EncryptNonce[:], remoteMAC[:24])
	copy(k.DecryptNonce[:], localMAC[:24])
	return k
}

var zeroNonce [24]byte

// ClientHandshake is the client side of the secret handshake as a state
// machine: Hello, VerifyChallenge, Authenticate, VerifyAccept, then
// SessionKeys. It performs no I/O.
type ClientHandshake struct {
	common
	remoteCurve [32]byte // ed2x_pk(server long-term key)
	step        int
}

// NewClientHandshake prepares a client handshake towards the server whose
// long-term key is remote. The 32-byte ephemeral secret is read from random
// (crypto/rand when nil).
func NewClientHandshake(appKey AppKey, local ed25519.PrivateKey, remote ed25519.PublicKey, random io.Reader) (*ClientHandshake, error) {
	rc, err := edPublicToCurve(remote)
	if err != nil {
		return nil, fmt.Errorf("secretstream: handshake: server key: %w", err)
	}
	c, err := newCommon(appKey, local, random)
	if err != nil {
		return nil, err
	}
	h := &ClientHandshake{common: c, remoteCurve: rc}
	h.remotePublic = append(ed25519.PublicKey(nil), remote...)
	return h, nil
}

// Hello returns msg1 (64 bytes).
func (h *ClientHandshake) Hello() []byte { return h.hello() }

// VerifyChallenge checks msg2 (the server hello). ErrWrongAppKey means the
// server uses a different network.
func (h *ClientHandshake) VerifyChallenge(msg2 []byte) error {
	if h.step != 0 {
		return fmt.Errorf("%w: VerifyChallenge out of order", ErrProtocol)
	}
	if err := h.verifyHello(msg2); err != nil {
		return err
	}
	aB, err := x25519(&h.eph.secret, &h.remoteCurve, "server long-term key")
	if err != nil {
		return err
	}
	h.aB = aB
	h.k3 = hashConcat(h.appKey[:], h.ab[:], h.aB[:])
	msg := make([]byte, 0, 96)
	msg = append(msg, h.appKey[:]...)
	msg = append(msg, h.remotePublic...)
	msg = append(msg, h.abHash[:]...)
	copy(h.sigA[:], ed25519.Sign(h.local, msg))
	h.step = 1
	return nil
}

// Authenticate returns msg3 (112 bytes): the client's signature and
// long-term key, sealed for the server.
func (h *ClientHandshake) Authenticate() ([]byte, error) {
	if h.step != 1 {
		return nil, fmt.Errorf("%w: Authenticate out of order", ErrProtocol)
	}
	pt := make([]byte, 0, 96)
	pt = append(pt, h.sigA[:]...)
	pt = append(pt, h.localPublic...)
	return secretbox.Seal(make([]byte, 0, ClientAuthSize), pt, &zeroNonce, &h.k3), nil
}

// VerifyAccept checks msg4, proving the server holds the expected key.
func (h *ClientHandshake) VerifyAccept(msg4 []byte) error {
	if h.step != 1 {
		return fmt.Errorf("%w: VerifyAccept out of order", ErrProtocol)
	}
	if len(msg4) != ServerAcceptSize {
		return fmt.Errorf("%w: accept message has %d bytes, want %d", ErrServerAuthFailed, len(msg4), ServerAcceptSize)
	}
	Ab, err := x25519(&h.localCurve, &h.remoteEph, "server ephemeral key")
	if err != nil {
		return err
	}
	k4 := hashConcat(h.appKey[:], h.ab[:], h.aB[:], Ab[:])
	sigB, ok := secretbox.Open(make([]byte, 0, 64), msg4, &zeroNonce, &k4)
	if !ok {
		return fmt.Errorf("%w: accept message does not decrypt", ErrServerAuthFailed)
	}
	msg := make([]byte, 0, 160)
	msg = append(msg, h.appKey[:]...)
	msg = append(msg, h.sigA[:]...)
	msg = append(msg, h.localPublic...)
	msg = append(msg, h.abHash[:]...)
	if !ed25519.Verify(h.remotePublic, msg, sigB) {
		return fmt.Errorf("%w: bad server signature", ErrServerAuthFailed)
	}
	h.Ab = Ab
	h.k4 = k4
	h.done = true
	h.step = 2
	return nil
}

// SessionKeys returns the box-stream keys once VerifyAccept succeeded.
func (h *ClientHandshake) SessionKeys() (SessionKeys, error) { return h.sessionKeys() }

// ServerHandshake is the server side of the secret handshake as a state
// machine: VerifyHello, Challenge, VerifyAuth, (authorize RemoteKey),
// Accept, then SessionKeys. It performs no I/O.
type ServerHandshake struct {
	common
	step int
}

// NewServerHandshake prepares a server handshake. The 32-byte ephemeral
// secret is read from random (crypto/rand when nil).
func NewServerHandshake(appKey AppKey, local ed25519.PrivateKey, random io.Reader) (*ServerHandshake, error) {
	c, err := newCommon(appKey, local, random)
	if err != nil {
		return nil, err
	}
	return &ServerHandshake{common: c}, nil
}

// VerifyHello checks msg1 (the client hello). ErrWrongAppKey means the
// client uses a different network.
func (h *ServerHandshake) VerifyHello(msg1 []byte) error {
	if h.step != 0 {
		return fmt.Errorf("%w: VerifyHello out of order", ErrProtocol)
	}
	if err := h.verifyHello(msg1); err != nil {
		return err
	}
	h.step = 1
	return nil
}

// Challenge returns msg2 (64 bytes), the server hello.
func (h *ServerHandshake) Challenge() []byte { return h.hello() }

// VerifyAuth opens and checks msg3; on success RemoteKey returns the
// client's long-term key.
func (h *ServerHandshake) VerifyAuth(msg3 []byte) error {
	if h.step != 1 {
		return fmt.Errorf("%w: VerifyAuth out of order", ErrProtocol)
	}
	if len(msg3) != ClientAuthSize {
		return fmt.Errorf("%w: auth message has %d bytes, want %d", ErrClientAuthFailed, len(msg3), ClientAuthSize)
	}
	aB, err := x25519(&h.localCurve, &h.remoteEph, "client ephemeral key")
	if err != nil {
		return err
	}
	k3 := hashConcat(h.appKey[:], h.ab[:], aB[:])
	pt, ok := secretbox.Open(make([]byte, 0, 96), msg3, &zeroNonce, &k3)
	if !ok {
		return fmt.Errorf("%w: auth message does not decrypt (the client expects a different server key)", ErrClientAuthFailed)
	}
	sigA, clientPub := pt[:64], ed25519.PublicKey(pt[64:96])
	msg := make([]byte, 0, 96)
	msg = append(msg, h.appKey[:]...)
	msg = append(msg, h.localPublic...)
	msg = append(msg, h.abHash[:]...)
	if !ed25519.Verify(clientPub, msg, sigA) {
		return fmt.Errorf("%w: bad client signature", ErrClientAuthFailed)
	}
	clientCurve, err := edPublicToCurve(clientPub)
	if err != nil {
		return fmt.Errorf("%w: client key: %w", ErrClientAuthFailed, err)
	}
	Ab, err := x25519(&h.eph.secret, &clientCurve, "client long-term key")
	if err != nil {
		return err
	}
	h.aB = aB
	h.k3 = k3
	copy(h.sigA[:], sigA)
	h.remotePublic = append(ed25519.PublicKey(nil), clientPub...)
	h.Ab = Ab
	h.k4 = hashConcat(h.appKey[:], h.ab[:], h.aB[:], h.Ab[:])
	h.step = 2
	return nil
}

// RemoteKey returns the client's long-term key after VerifyAuth succeeded
// (nil before).
func (h *ServerHandshake) RemoteKey() ed25519.PublicKey {
	if h.step < 2 {
		return nil
	}
	return append(ed25519.PublicKey(nil), h.remotePublic...)
}

// Accept returns msg4 (80 bytes): the server's signature sealed for the
// client. It completes the handshake.
func (h *ServerHandshake) Accept() ([]byte, error) {
	if h.step != 2 {
		return nil, fmt.Errorf("%w: Accept out of order", ErrProtocol)
	}
	msg := make([]byte, 0, 160)
	msg = append(msg, h.appKey[:]...)
	msg = append(msg, h.sigA[:]...)
	msg = append(msg, h.remotePublic...)
	msg = append(msg, h.abHash[:]...)
	sigB := ed25519.Sign(h.local, msg)
	h.done = true
	h.step = 3
	return secretbox.Seal(make([]byte, 0, ServerAcceptSize), sigB, &zeroNonce, &h.k4), nil
}

// SessionKeys returns the box-stream keys once Accept was produced.
func (h *ServerHandshake) SessionKeys() (SessionKeys, error) { return h.sessionKeys() }
