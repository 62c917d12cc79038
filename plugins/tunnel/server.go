// Package tunnel serves `tunnel.connect` (and its alias `room.connect`)
// on a room: the room takes an origin's duplex stream, opens one to the
// target on the target's own connection, and splices the two. The room
// copies bytes only: it never decrypts, parses or buffers the inner
// stream beyond the bounded muxrpc queues, so a slow side slows the other
// (back-pressure) and the room's memory stays bounded.
//
// The client side of tunnels (dialling a peer through a room and accepting
// tunnels a room opens to us) lives in client.go of this package.
package tunnel

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"sync"
	"time"

	"golang.org/x/time/rate"

	"github.com/cask-ssb/cask/feeds"
	"github.com/cask-ssb/cask/muxrpc"
)

// Targets finds the connection of a peer present in the room.
type Targets interface {
	Lookup(id feeds.FeedRef) (*muxrpc.Endpoint, bool)
}

// Hooks observe tunnels (metrics, limits). Every field is optional.
type Hooks struct {
	// Open is asked before a tunnel from origin opens; an error refuses it
	// (e.g. a per-key limit); release is called when the tunnel ends.
	Open func(origin, target feeds.FeedRef) (release func(), err error)
	// Bytes counts bytes spliced (both directions).
	Bytes func(n int)
}

// ServerOptions configure the room side.
type ServerOptions struct {
	Room    feeds.FeedRef
	Targets Targets
	Hooks   Hooks
	// MaxBytes and MaxDuration end a tunnel that moved more bytes or lived
	// longer (0: no cap).
	MaxBytes    int64
	MaxDuration time.Duration
	// Caps, if set, is asked for MaxBytes and MaxDuration at each tunnel
	// (limits that can change while the room runs).
	Caps func() (maxBytes int64, maxDuration time.Duration)
	// Rate, if set, is asked at each tunnel for a token-bucket rate in
	// bytes per second per direction and its burst in bytes (rate 0: no
	// limit; burst 0: one second of the rate). A tunnel over its rate is
	// slowed, not cut: the copy waits, and the sender feels back-pressure.
	Rate   func() (bytesPerSecond, burst int64)
	Logger *slog.Logger
	// Forward, if set, reaches a target that is not present here but may
	// be held by another node of a mesh (room/mesh): it returns the
	// streams to splice with the origin's and a function to call when the
	// tunnel ends. The per-key and per-IP limits (Hooks.Open), caps and
	// rate apply as to a local tunnel.
	Forward func(ctx context.Context, origin, target feeds.FeedRef) (*muxrpc.Source, *muxrpc.Sink, func(), error)
}

// ConnectArgs is the argument of tunnel.connect: origin is set only on the
// room's call to the target.
type ConnectArgs struct {
	Portal feeds.FeedRef  `json:"portal"`
	Target feeds.FeedRef  `json:"target"`
	Origin *feeds.FeedRef `json:"origin,omitempty"`
}

// ParseConnectArgs decodes the args array of a tunnel.connect request.
func ParseConnectArgs(args json.RawMessage) (ConnectArgs, error) {
	var list []json.RawMessage
	if err := json.Unmarshal(args, &list); err != nil {
		return ConnectArgs{}, fmt.Errorf("tunnel.connect: args: %w", err)
	}
	if len(list) < 1 {
		return ConnectArgs{}, errors.New("tunnel.connect: missing argument {portal, target}")
	}
	var raw struct {
		Portal string  `json:"portal"`
		Target string  `json:"target"`
		Origin *string `json:"origin"`
	}
	if err := json.Unmarshal(list[0], &raw); err != nil {
		return ConnectArgs{}, fmt.Errorf("tunnel.connect: argument must be an object {portal, target}: %w", err)
	}
	var a ConnectArgs
	var err error
	if a.Portal, err = feeds.ParseFeedRef(raw.Portal); err != nil {
		return a, fmt.Errorf("tunnel.connect: portal: %w", err)
	}
	if a.Target, err = feeds.ParseFeedRef(raw.Target); err != nil {
		return a, fmt.Errorf("tunnel.connect: target: %w", err)
	}
	if raw.Origin != nil {
		o, err := feeds.ParseFeedRef(*raw.Origin)
		if err != nil {
			return a, fmt.Errorf("tunnel.connect: origin: %w", err)
		}
		a.Origin = &o
	}
	return a, nil
}

// RegisterServer adds tunnel.connect and room.connect to m.
func RegisterServer(m *muxrpc.Mux, o ServerOptions) {
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	h := func(ctx context.Context, req *muxrpc.Request, in *muxrpc.Source, out *muxrpc.Sink) error {
		return serveConnect(ctx, &o, req, in, out)
	}
	m.RegisterDuplex(muxrpc.Method{"tunnel", "connect"}, h)
	m.RegisterDuplex(muxrpc.Method{"room", "connect"}, h)
}

func serveConnect(ctx context.Context, o *ServerOptions, req *muxrpc.Request, in *muxrpc.Source, out *muxrpc.Sink) error {
	k := req.RemoteKey()
	if k == nil {
		return errors.New("tunnel.connect: call without a secret-handshake identity")
	}
	origin, err := feeds.FeedRefFromPublicKey(k)
	if err != nil {
		return err
	}
	args, err := ParseConnectArgs(req.Args)
	if err != nil {
		return err
	}
	if args.Portal != o.Room {
		return errors.New("talking to the wrong room")
	}
	if args.Target == origin {
		return errors.New("can't connect to self")
	}
	targetEP, ok := o.Targets.Lookup(args.Target)
	if !ok && o.Forward == nil {
		return fmt.Errorf("could not connect to:%s", args.Target)
	}
	if o.Hooks.Open != nil {
		release, err := o.Hooks.Open(origin, args.Target)
		if err != nil {
			return err
		}
		defer release()
	}
	maxBytes, maxDur := o.MaxBytes, o.MaxDuration
	if o.Caps != nil {
		maxBytes, maxDur = o.Caps()
	}
	if maxDur > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, maxDur)
		defer cancel()
	}
	// Ends when either connection ends (ctx is the origin's call; the
	// target's endpoint aborts its own stream when it closes).
	var bIn *muxrpc.Source
	var bOut *muxrpc.Sink
	if ok {
		bIn, bOut, err = targetEP.Duplex(ctx, muxrpc.Method{"tunnel", "connect"},
			map[string]string{"origin": origin.String(), "portal": o.Room.String(), "target": args.Target.String()})
	} else {
		var done func()
		bIn, bOut, done, err = o.Forward(ctx, origin, args.Target)
		if err == nil {
			defer done()
		} else {
			o.Logger.Debug("tunnel not forwarded", "origin", origin.String(), "target", args.Target.String(), "err", err)
		}
	}
	if err != nil {
		return fmt.Errorf("could not connect to:%s", args.Target)
	}
	o.Logger.Debug("tunnel opened", "origin", origin.String(), "target", args.Target.String())
	start := time.Now()
	so := SpliceOptions{Count: o.Hooks.Bytes, MaxBytes: maxBytes}
	if o.Rate != nil {
		if r, b := o.Rate(); r > 0 {
			so.Rate, so.Burst = r, b
		}
	}
	n, err := Splice(ctx, in, out, bIn, bOut, so)
	o.Logger.Debug("tunnel closed", "origin", origin.String(), "target", args.Target.String(), "bytes", n, "duration", time.Since(start), "err", err)
	return nil
}

// ErrByteCap ends a tunnel that moved more than ServerOptions.MaxBytes.
var ErrByteCap = errors.New("tunnel: byte limit reached")

// SpliceOptions bound a splice. The zero value copies without limits.
type SpliceOptions struct {
	// Count, if not nil, is told of every packet copied (its body length).
	Count func(int)
	// MaxBytes > 0 caps the total copied in both directions (ErrByteCap).
	MaxBytes int64
	// Rate > 0 limits each direction to Rate bytes per second with a token
	// bucket of Burst bytes (0: one second of Rate).
	Rate, Burst int64
}

// newLimiter returns the token bucket of one direction, or nil.
func (o SpliceOptions) newLimiter() *rate.Limiter {
	if o.Rate <= 0 {
		return nil
	}
	burst := o.Burst
	if burst <= 0 {
		burst = o.Rate
	}
	if burst > math.MaxInt32 {
		burst = math.MaxInt32
	}
	return rate.NewLimiter(rate.Limit(o.Rate), int(burst))
}

// waitTokens takes n tokens from l, in pieces no larger than its burst (a
// packet may be larger than the bucket).
func waitTokens(ctx context.Context, l *rate.Limiter, n int) error {
	for n > 0 {
		k := min(n, l.Burst())
		if err := l.WaitN(ctx, k); err != nil {
			return err
		}
		n -= k
	}
	return nil
}

// Splice copies packets from aIn to bOut and from bIn to aOut, unchanged
// (body type and bytes), until both directions ended. An end (or error)
// from one side is passed on to the other; if a side fails or ctx ends,
// both streams are aborted. Copying waits for the receiving side, so a
// slow reader slows the sender, and for the rate limit of o, if any. It
// returns the bytes copied.
func Splice(ctx context.Context, aIn *muxrpc.Source, aOut *muxrpc.Sink, bIn *muxrpc.Source, bOut *muxrpc.Sink, o SpliceOptions) (int64, error) {
	count, maxBytes := o.Count, o.MaxBytes
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var (
		mu    sync.Mutex
		total int64
		first error
	)
	add := func(n int) error {
		mu.Lock()
		defer mu.Unlock()
		total += int64(n)
		if maxBytes > 0 && total > maxBytes {
			return ErrByteCap
		}
		return nil
	}
	fail := func(err error) {
		mu.Lock()
		if first == nil {
			first = err
		}
		mu.Unlock()
		cancel()
	}
	copyDir := func(src *muxrpc.Source, dst *muxrpc.Sink) {
		lim := o.newLimiter()
		for {
			p, err := src.NextPacket(ctx)
			if err != nil {
				switch {
				case errors.Is(err, io.EOF):
					_ = dst.Close() // pass the clean end on
				case ctx.Err() != nil:
					_ = dst.CloseWithError(errors.New("tunnel closed"))
				default:
					var ce *muxrpc.CallError
					if errors.As(err, &ce) {
						_ = dst.CloseWithError(ce) // pass the peer's error on
					} else {
						_ = dst.CloseWithError(errors.New("tunnel: the other side went away"))
					}
					fail(err)
				}
				return
			}
			if count != nil {
				count(len(p.Body))
			}
			if err := add(len(p.Body)); err != nil {
				_ = dst.CloseWithError(err)
				fail(err)
				return
			}
			if lim != nil {
				if err := waitTokens(ctx, lim, len(p.Body)); err != nil {
					_ = dst.CloseWithError(errors.New("tunnel closed"))
					fail(err)
					return
				}
			}
			if err := dst.WriteRaw(p.Flag.Type(), p.Body); err != nil {
				fail(err)
				return
			}
		}
	}
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); copyDir(aIn, bOut) }()
	go func() { defer wg.Done(); copyDir(bIn, aOut) }()
	wg.Wait()
	if first != nil {
		// Make sure neither stream is left half open.
		_ = aIn.Close()
		_ = bIn.Close()
	}
	mu.Lock()
	defer mu.Unlock()
	return total, first
}
