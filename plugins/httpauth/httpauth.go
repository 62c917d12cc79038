// Package httpauth is sign-in with SSB (the SSB HTTP Authentication spec,
// protocol.md §8.9) over muxrpc, both sides: the solution a client signs,
// the room's httpAuth.sendSolution and httpAuth.invalidateAllSolutions
// (over an Authenticator the room's web server implements), and the
// client's httpAuth.requestSolution (sbot answers it for rooms it joined)
// and its answer to a server-initiated sign-in (SignIn).
//
// The package never talks HTTP and keeps no sessions: the room's web
// server does.
package httpauth

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"strings"

	"github.com/cask-ssb/cask/feeds"
	"github.com/cask-ssb/cask/muxrpc"
	"github.com/cask-ssb/cask/plugins/service"
)

// Method names.
var (
	MethodRequestSolution = muxrpc.Method{"httpAuth", "requestSolution"}
	MethodSendSolution    = muxrpc.Method{"httpAuth", "sendSolution"}
	MethodInvalidateAll   = muxrpc.Method{"httpAuth", "invalidateAllSolutions"}
)

// NewChallenge returns a fresh 256-bit challenge in URL-safe base64 with
// padding (44 characters), as go-ssb-room makes them.
func NewChallenge() string {
	var b [32]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic("crypto/rand failed: " + err.Error()) // never happens on Linux
	}
	return base64.URLEncoding.EncodeToString(b[:])
}

// MaxChallengeLen bounds a challenge from the other side.
const MaxChallengeLen = 128

// CheckChallenge checks a challenge made by the other side: opaque, but
// at least 43 characters (256 bits of base64) of the base64 alphabets.
func CheckChallenge(c string) error {
	if len(c) < 43 || len(c) > MaxChallengeLen {
		return fmt.Errorf("challenge: want 43 to %d base64 characters, got %d", MaxChallengeLen, len(c))
	}
	for i := 0; i < len(c); i++ {
		b := c[i]
		if !('a' <= b && b <= 'z' || 'A' <= b && b <= 'Z' || '0' <= b && b <= '9' || strings.IndexByte("+/-_=", b) >= 0) {
			return fmt.Errorf("challenge: byte %d is not base64", i)
		}
	}
	return nil
}

// Payload is what the client signs: "=http-auth-sign-in:SID:CID:SC:CC".
func Payload(sid, cid feeds.FeedRef, sc, cc string) []byte {
	return []byte("=http-auth-sign-in:" + sid.String() + ":" + cid.String() + ":" + sc + ":" + cc)
}

// Sign returns the solution of kp for the server sid.
func Sign(kp feeds.KeyPair, sid feeds.FeedRef, sc, cc string) string {
	return base64.StdEncoding.EncodeToString(kp.Sign(Payload(sid, kp.ID, sc, cc))) + ".sig.ed25519"
}

// ErrBadSolution is returned for a solution that does not verify.
var ErrBadSolution = errors.New("sign-in solution does not verify")

// Verify checks a solution.
func Verify(sid, cid feeds.FeedRef, sc, cc, sol string) error {
	b64, ok := strings.CutSuffix(sol, ".sig.ed25519")
	if !ok {
		return fmt.Errorf("%w: missing .sig.ed25519 suffix", ErrBadSolution)
	}
	b64 = strings.NewReplacer("-", "+", "_", "/").Replace(b64)
	sig, err := base64.StdEncoding.Strict().DecodeString(b64)
	// The decoder skips '\r' and '\n' even when strict; the re-encoding
	// check refuses them too.
	if err != nil || len(sig) != ed25519.SignatureSize || base64.StdEncoding.EncodeToString(sig) != b64 {
		return fmt.Errorf("%w: not the canonical base64 of 64 bytes", ErrBadSolution)
	}
	if !ed25519.Verify(cid.PublicKey(), Payload(sid, cid, sc, cc), sig) {
		return ErrBadSolution
	}
	return nil
}

// Authenticator is the room's side of sign-in (its web server).
type Authenticator interface {
	// SendSolution completes the server-initiated sign-in with challenge
	// sc by client cid (the caller's secret-handshake identity).
	SendSolution(ctx context.Context, cid feeds.FeedRef, sc, cc, sol string) error
	// InvalidateAll signs cid out everywhere.
	InvalidateAll(ctx context.Context, cid feeds.FeedRef) error
}

func caller(req *muxrpc.Request) (feeds.FeedRef, error) {
	k := req.RemoteKey()
	if k == nil {
		return feeds.FeedRef{}, errors.New("httpAuth: call without a secret-handshake identity")
	}
	return feeds.FeedRefFromPublicKey(k)
}

// StringArgs reads exactly n string arguments.
func StringArgs(raw json.RawMessage, n int) ([]string, error) {
	var args []json.RawMessage
	if err := json.Unmarshal(raw, &args); err != nil {
		return nil, fmt.Errorf("args: %w", err)
	}
	if len(args) != n {
		return nil, fmt.Errorf("want %d arguments, got %d", n, len(args))
	}
	out := make([]string, n)
	for i, a := range args {
		if err := json.Unmarshal(a, &out[i]); err != nil {
			return nil, fmt.Errorf("argument %d must be a string", i+1)
		}
	}
	return out, nil
}

// RegisterServer adds the room's httpAuth methods to m.
func RegisterServer(m *muxrpc.Mux, a Authenticator) {
	m.RegisterAsync(MethodSendSolution, func(ctx context.Context, req *muxrpc.Request) (any, error) {
		cid, err := caller(req)
		if err != nil {
			return nil, err
		}
		args, err := StringArgs(req.Args, 3)
		if err != nil {
			return nil, fmt.Errorf("httpAuth.sendSolution: %w", err)
		}
		if err := a.SendSolution(ctx, cid, args[0], args[1], args[2]); err != nil {
			return nil, fmt.Errorf("httpAuth.sendSolution: %w", err)
		}
		return true, nil
	})
	m.RegisterAsync(MethodInvalidateAll, func(ctx context.Context, req *muxrpc.Request) (any, error) {
		cid, err := caller(req)
		if err != nil {
			return nil, err
		}
		if err := a.InvalidateAll(ctx, cid); err != nil {
			return nil, fmt.Errorf("httpAuth.invalidateAllSolutions: %w", err)
		}
		return true, nil
	})
}

// RequestSolution is the room's call for a client-initiated sign-in: it
// asks the connected client ep for its solution to (sc, cc).
func RequestSolution(ctx context.Context, ep *muxrpc.Endpoint, sc, cc string) (string, error) {
	var sol string
	if err := ep.Async(ctx, &sol, MethodRequestSolution, sc, cc); err != nil {
		return "", fmt.Errorf("httpAuth.requestSolution: %w", err)
	}
	return sol, nil
}

// StartURI is a parsed ssb:experimental?action=start-http-auth link.
type StartURI struct {
	SID                feeds.FeedRef
	SC                 string
	MultiserverAddress string // optional
}

// ParseStartURI parses a start-http-auth link (protocol.md §7.6); the
// path may come as host or path, as ssb-http-auth-client accepts.
func ParseStartURI(s string) (StartURI, error) {
	var out StartURI
	u, err := url.Parse(s)
	if err != nil {
		return out, fmt.Errorf("sign-in link: %w", err)
	}
	if u.Scheme != "ssb" || (u.Opaque != "experimental" && u.Host != "experimental" && strings.TrimPrefix(u.Path, "/") != "experimental") {
		return out, fmt.Errorf("sign-in link: want ssb:experimental?action=start-http-auth&…, got %.80q", s)
	}
	q := u.Query()
	if q.Get("action") != "start-http-auth" {
		return out, fmt.Errorf("sign-in link: action %q, want start-http-auth", q.Get("action"))
	}
	if out.SID, err = feeds.ParseFeedRef(q.Get("sid")); err != nil {
		return out, fmt.Errorf("sign-in link: sid: %w", err)
	}
	out.SC = q.Get("sc")
	if err := CheckChallenge(out.SC); err != nil {
		return out, fmt.Errorf("sign-in link: sc: %w", err)
	}
	out.MultiserverAddress = q.Get("multiserverAddress")
	return out, nil
}

// ClientOptions configure the client side.
type ClientOptions struct {
	Keys feeds.KeyPair
	// IsRoom says whether a peer is a room we joined: only those may ask
	// for a solution.
	IsRoom func(feeds.FeedRef) bool
	// Room returns a connection with the room sid, dialling
	// multiserverAddress if needed (it may be "").
	Room func(ctx context.Context, sid feeds.FeedRef, multiserverAddress string) (*muxrpc.Endpoint, error)
}

// ClientService declares the client's side: httpAuth.requestSolution
// (rooms we joined call it) and the owner's httpAuthClient.signIn
// (sbot room signin URI) and httpAuthClient.signOut.
func ClientService(o ClientOptions) service.Service {
	return service.Service{Name: "httpAuth", Methods: []service.Method{
		service.Async("httpAuth.requestSolution", service.Custom, func(_ context.Context, req *muxrpc.Request) (any, error) {
			sid, err := caller(req)
			if err != nil {
				return nil, err
			}
			args, err := StringArgs(req.Args, 2)
			if err != nil {
				return nil, fmt.Errorf("httpAuth.requestSolution: %w", err)
			}
			for _, c := range args {
				if err := CheckChallenge(c); err != nil {
					return nil, fmt.Errorf("httpAuth.requestSolution: %w", err)
				}
			}
			return Sign(o.Keys, sid, args[0], args[1]), nil
		}).WithCheck(func(_ context.Context, req *muxrpc.Request) bool {
			k := req.RemoteKey()
			if k == nil {
				return false
			}
			id, err := feeds.FeedRefFromPublicKey(k)
			return err == nil && o.IsRoom(id)
		}),
		service.Async("httpAuthClient.signIn", service.Owner, func(ctx context.Context, req *muxrpc.Request) (any, error) {
			var uri string
			if err := req.Arg(0, &uri); err != nil {
				return nil, fmt.Errorf("sign in: want the start-http-auth link: %w", err)
			}
			su, err := ParseStartURI(uri)
			if err != nil {
				return nil, err
			}
			ep, err := o.Room(ctx, su.SID, su.MultiserverAddress)
			if err != nil {
				return nil, fmt.Errorf("sign in to %s: %w", su.SID, err)
			}
			cc := NewChallenge()
			var ok bool
			if err := ep.Async(ctx, &ok, MethodSendSolution, su.SC, cc, Sign(o.Keys, su.SID, su.SC, cc)); err != nil {
				return nil, fmt.Errorf("sign in to %s: %w", su.SID, err)
			}
			return map[string]any{"room": su.SID.String(), "signedIn": ok}, nil
		}),
		service.Async("httpAuthClient.signOut", service.Owner, func(ctx context.Context, req *muxrpc.Request) (any, error) {
			var room string
			if err := req.Arg(0, &room); err != nil {
				return nil, fmt.Errorf("sign out: want the room id: %w", err)
			}
			sid, err := feeds.ParseFeedRef(room)
			if err != nil {
				return nil, fmt.Errorf("sign out: %w", err)
			}
			ep, err := o.Room(ctx, sid, "")
			if err != nil {
				return nil, fmt.Errorf("sign out of %s: %w", sid, err)
			}
			var ok bool
			if err := ep.Async(ctx, &ok, MethodInvalidateAll); err != nil {
				return nil, fmt.Errorf("sign out of %s: %w", sid, err)
			}
			return map[string]any{"room": sid.String(), "signedOut": ok}, nil
		}),
	}}
}
