// Package client is the Go client of a running sbot daemon: over the
// owner-only unix socket REPO/socket (no handshake), or over TCP with the
// secret handshake. The sbot CLI and scripts share it.
package client

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"iter"
	"net"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/cask-ssb/cask/feeds"
	"github.com/cask-ssb/cask/muxrpc"
	"github.com/cask-ssb/cask/secretstream"
)

// Client is a muxrpc connection to a daemon.
type Client struct {
	e *muxrpc.Endpoint
}

// ErrNoDaemon means nothing listens on the repo's socket.
var ErrNoDaemon = errors.New("no sbot daemon is running for this repo")

// ErrUnknownMethod: Call was asked for a method the daemon does not have.
var ErrUnknownMethod = errors.New("not in the daemon's manifest")

// DialRepo connects to the daemon of repo over REPO/socket.
func DialRepo(ctx context.Context, repo string) (*Client, error) {
	path := filepath.Join(repo, "socket")
	var d net.Dialer
	c, err := d.DialContext(ctx, "unix", path)
	switch {
	case err == nil:
	case ctx.Err() != nil:
		// A timeout or cancellation says nothing about the daemon.
		return nil, fmt.Errorf("connect to %s: %w", path, ctx.Err())
	case isTimeout(ctx, err):
		return nil, fmt.Errorf("connect to %s: %w", path, context.DeadlineExceeded)
	case errors.Is(err, fs.ErrNotExist), errors.Is(err, syscall.ECONNREFUSED):
		return nil, fmt.Errorf("connect to %s: %w", path, ErrNoDaemon)
	default:
		return nil, fmt.Errorf("connect to %s: %w", path, err)
	}
	return New(ctx, newPoliteConn(c), nil), nil
}

// politeCloseWait bounds how long Close waits for the daemon's goodbye.
const politeCloseWait = 200 * time.Millisecond

// politeConn lets the daemon answer our goodbye before the socket goes
// away: Close half-closes (the daemon reads our goodbye, then EOF), waits
// until the next read returns (the daemon's goodbye, or EOF) or
// politeCloseWait passes, and only then closes. Without it every CLI call
// ended with the daemon's goodbye hitting a closed socket (EPIPE).
type politeConn struct {
	net.Conn
	closing atomic.Bool
	read    chan struct{} // closed when a read returns after Close began
	once    sync.Once
}

func newPoliteConn(c net.Conn) net.Conn {
	if _, ok := c.(interface{ CloseWrite() error }); !ok {
		return c
	}
	return &politeConn{Conn: c, read: make(chan struct{})}
}

func (c *politeConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	if c.closing.Load() || err != nil {
		c.once.Do(func() { close(c.read) })
	}
	return n, err
}

func (c *politeConn) Close() error {
	if c.closing.CompareAndSwap(false, true) {
		if err := c.Conn.(interface{ CloseWrite() error }).CloseWrite(); err == nil {
			t := time.NewTimer(politeCloseWait)
			select {
			case <-c.read:
			case <-t.C:
			}
			t.Stop()
		}
	}
	return c.Conn.Close()
}

// isTimeout: err is a timeout, or ctx's deadline has passed (its timer may
// not have fired yet).
func isTimeout(ctx context.Context, err error) bool {
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return true
	}
	d, ok := ctx.Deadline()
	return ok && !time.Now().Before(d)
}

// DialTCP connects over TCP with the secret handshake. addr is a
// multiserver address ("net:HOST:PORT~shs:KEY") naming the server's key.
func DialTCP(ctx context.Context, addr string, keys feeds.KeyPair, caps [32]byte) (*Client, error) {
	a, err := feeds.ParseAddress(addr)
	if err != nil {
		return nil, fmt.Errorf("remote address %q: %w", addr, err)
	}
	sc, err := secretstream.Dial(ctx, "tcp", a.DialAddr(), secretstream.AppKey(caps), keys.Private, a.Key.PublicKey())
	if err != nil {
		return nil, err
	}
	return New(ctx, sc, sc.RemoteKey()), nil
}

// New runs a client endpoint on an established connection. The client
// serves no methods.
func New(ctx context.Context, conn io.ReadWriteCloser, remote []byte) *Client {
	mux := muxrpc.NewMux()
	return &Client{e: muxrpc.NewEndpoint(context.WithoutCancel(ctx), conn, mux, muxrpc.Options{RemoteKey: remote})}
}

// Close says goodbye and closes the connection.
func (c *Client) Close() error { return c.e.Close() }

// Endpoint exposes the muxrpc endpoint for calls this package lacks.
func (c *Client) Endpoint() *muxrpc.Endpoint { return c.e }

// Whoami returns the daemon's feed id.
func (c *Client) Whoami(ctx context.Context) (feeds.FeedRef, error) {
	var r struct {
		ID string `json:"id"`
	}
	if err := c.e.Async(ctx, &r, muxrpc.Method{"whoami"}); err != nil {
		return feeds.FeedRef{}, err
	}
	return feeds.ParseFeedRef(r.ID)
}

// Publish publishes content (a JSON object with a type) and returns the
// stored {"key","value","timestamp"} record.
func (c *Client) Publish(ctx context.Context, content any) (json.RawMessage, error) {
	var out json.RawMessage
	err := c.e.Async(ctx, &out, muxrpc.Method{"publish"}, content)
	return out, err
}

// Get returns a message value by id (meta: the KVT record instead).
func (c *Client) Get(ctx context.Context, id string, meta bool) (json.RawMessage, error) {
	var out json.RawMessage
	var arg any = id
	if meta {
		arg = map[string]any{"id": id, "meta": true}
	}
	err := c.e.Async(ctx, &out, muxrpc.Method{"get"}, arg)
	return out, err
}

// Status returns the daemon's status report (raw JSON).
func (c *Client) Status(ctx context.Context) (json.RawMessage, error) {
	var out json.RawMessage
	err := c.e.Async(ctx, &out, muxrpc.Method{"status"})
	return out, err
}

// Manifest returns the daemon's manifest.
func (c *Client) Manifest(ctx context.Context) (map[string]any, error) {
	var out map[string]any
	err := c.e.Async(ctx, &out, muxrpc.Method{"manifest"})
	return out, err
}

// Stream calls a source method and yields its items as raw JSON.
func (c *Client) Stream(ctx context.Context, method string, args ...any) iter.Seq2[json.RawMessage, error] {
	return func(yield func(json.RawMessage, error) bool) {
		src, err := c.e.Source(ctx, muxrpc.ParseMethod(method), args...)
		if err != nil {
			yield(nil, err)
			return
		}
		defer src.Close()
		for pkt, err := range packets(ctx, src) {
			if err != nil {
				yield(nil, err)
				return
			}
			if !yield(pkt, nil) {
				return
			}
		}
	}
}

// packets turns string-typed items into JSON strings so callers always
// get JSON.
func packets(ctx context.Context, src *muxrpc.Source) iter.Seq2[json.RawMessage, error] {
	return func(yield func(json.RawMessage, error) bool) {
		for {
			p, err := src.NextPacket(ctx)
			if errors.Is(err, io.EOF) {
				return
			}
			if err != nil {
				yield(nil, err)
				return
			}
			body := p.Body
			if p.Flag.Type() != muxrpc.FlagJSON {
				b, _ := json.Marshal(string(body))
				body = b
			}
			if !yield(json.RawMessage(body), nil) {
				return
			}
		}
	}
}

// Log streams createLogStream with opts (JS options).
func (c *Client) Log(ctx context.Context, opts map[string]any) iter.Seq2[json.RawMessage, error] {
	return c.Stream(ctx, "createLogStream", opts)
}

// History streams createHistoryStream with opts (JS options; id required).
func (c *Client) History(ctx context.Context, opts map[string]any) iter.Seq2[json.RawMessage, error] {
	return c.Stream(ctx, "createHistoryStream", opts)
}

// Call calls any method, looking its type up in the daemon's manifest.
// For async/sync methods the iterator yields one value.
func (c *Client) Call(ctx context.Context, method string, args []json.RawMessage) iter.Seq2[json.RawMessage, error] {
	return func(yield func(json.RawMessage, error) bool) {
		man, err := c.Manifest(ctx)
		if err != nil {
			yield(nil, fmt.Errorf("read manifest: %w", err))
			return
		}
		typ, ok := lookup(man, method)
		if !ok {
			yield(nil, fmt.Errorf("method %s is %w", method, ErrUnknownMethod))
			return
		}
		if max, ok := MaxArgs(method); ok && len(args) > max {
			yield(nil, &ArgsError{Method: method, Max: max, Got: len(args)})
			return
		}
		anyArgs := make([]any, len(args))
		for i, a := range args {
			anyArgs[i] = a
		}
		switch typ {
		case "async", "sync":
			var out json.RawMessage
			if err := c.e.Async(ctx, &out, muxrpc.ParseMethod(method), anyArgs...); err != nil {
				yield(nil, err)
				return
			}
			yield(out, nil)
		case "source":
			for v, err := range c.Stream(ctx, method, anyArgs...) {
				if !yield(v, err) || err != nil {
					return
				}
			}
		default:
			yield(nil, fmt.Errorf("method %s is a %s method; the CLI calls only async, sync and source methods", method, typ))
		}
	}
}

// maxArgs is how many arguments the daemon's methods take (the JS
// stack silently ignores extra arguments; we refuse them). Methods not
// listed are not checked.
var maxArgs = map[string]int{
	"whoami": 0, "manifest": 0, "status": 0,
	"createLogStream": 1, "createHistoryStream": 1, "createUserStream": 1,
	"latestSequence": 1, "get": 1, "publish": 1, "add": 1,
	"friends.hops": 1, "friends.isFollowing": 1, "friends.isBlocking": 1,
	"blobs.has": 1, "blobs.size": 1, "blobs.get": 1, "blobs.getSlice": 1,
	"blobs.want": 1, "blobs.createWants": 0,
	"gossip.connect": 1, "ebt.clock": 1,
	"messagesByType": 1, "links": 1, "query.read": 1, "query.explain": 1,
	"about.socialValue": 1, "about.latestValue": 1, "about.latestValues": 1, "about.socialValues": 1,
	"friends.get": 1, "friends.hopStream": 1, "private.publish": 2, "private.unbox": 1, "private.read": 1,
	"latest": 0, "createFeedStream": 1, "threads.thread": 1,
}

// MaxArgs returns how many arguments method takes, if known.
func MaxArgs(method string) (int, bool) {
	n, ok := maxArgs[method]
	return n, ok
}

// ArgsError: more arguments than the method takes.
type ArgsError struct {
	Method   string
	Max, Got int
}

func (e *ArgsError) Error() string {
	return fmt.Sprintf("%s takes at most %d argument(s), got %d", e.Method, e.Max, e.Got)
}

func lookup(man map[string]any, method string) (string, bool) {
	var cur any = man
	for _, part := range strings.Split(method, ".") {
		m, ok := cur.(map[string]any)
		if !ok {
			return "", false
		}
		cur, ok = m[part]
		if !ok {
			return "", false
		}
	}
	s, ok := cur.(string)
	return s, ok
}

// Call1 calls a source method and returns its first item (nil if the
// stream is empty), then aborts the stream.
func (c *Client) Call1(ctx context.Context, method string, args ...any) (json.RawMessage, error) {
	for v, err := range c.Stream(ctx, method, args...) {
		return v, err
	}
	return nil, nil
}
