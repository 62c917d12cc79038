// Package invite serves legacy pub invites as ssb-invite does
// (protocol.md §7.4):
//
//   - invite.create (owner): a new invite code HOST:PORT:@KEY.ed25519~SEED
//     for {uses, note, external}; the pub stores only the invite key's id
//     and its uses (Codes).
//   - invite.use: callable only by a peer that connected with an invite's
//     key pair while the invite has uses left; it counts one use and
//     publishes the pub's follow of the new feed
//     ({type: contact, contact, following: true, pub: true, note}).
//   - invite.accept (owner): dial the pub with the invite's key pair, call
//     invite.use, then follow the pub and publish its address
//     ({type: pub, address: {host, port, key}}).
//
// The package holds the policy only: the daemon gives it the store of
// invites, the feed writer, the follow graph and the dialers.
package invite

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/cask-ssb/cask/feeds"
	"github.com/cask-ssb/cask/feeds/kvt"
	"github.com/cask-ssb/cask/feeds/store"
	"github.com/cask-ssb/cask/muxrpc"
	"github.com/cask-ssb/cask/plugins/service"
)

// MaxUses bounds the uses of one invite.
const MaxUses = 1_000_000

// Publisher publishes a message of our own feed (feeds/feedlog.Log).
type Publisher interface {
	Publish(ctx context.Context, content json.RawMessage) (store.Record, error)
}

// Options wire the service into the daemon.
type Options struct {
	Self      feeds.FeedRef
	Codes     *Codes
	Publisher Publisher
	// Follows reports whether a follows b (the follow graph).
	Follows func(a, b feeds.FeedRef) bool
	// Address is the host and port invites name (the TCP listener); an
	// error says why there is none.
	Address func() (host string, port int, err error)
	// Dial connects to a pub with key pair kp (the invite's) and returns
	// the muxrpc session; closing it ends the connection.
	Dial func(ctx context.Context, a feeds.Address, kp feeds.KeyPair) (*muxrpc.Endpoint, error)
	// Connect dials the pub with our own key once the invite is accepted,
	// so that replication starts.
	Connect func(ctx context.Context, a feeds.Address) error
	// AcceptWeb, when set, takes what invite.accept gets that is a web
	// link or an ssb: URI rather than a pub code (a room's HTTP invite).
	AcceptWeb func(ctx context.Context, link string) (any, error)
	// RetryWait is the pause before the second dial of a pub (JS retries
	// three times); default 500 ms.
	RetryWait time.Duration
	Now       func() time.Time
	Logger    *slog.Logger
}

// Service declares invite.create, invite.use and invite.accept.
func Service(o Options) service.Service {
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.RetryWait <= 0 {
		o.RetryWait = 500 * time.Millisecond
	}
	s := &svc{o: o}
	return service.Service{Name: "invite", Methods: []service.Method{
		service.Async("invite.create", service.Owner, s.create),
		service.Async("invite.use", service.Owner, s.use).WithCheck(func(_ context.Context, req *muxrpc.Request) bool {
			k := req.RemoteKey()
			if len(k) != 32 {
				return false
			}
			var id feeds.FeedRef
			copy(id[:], k)
			return o.Codes.Usable(id)
		}),
		service.Async("invite.accept", service.Owner, s.accept),
	}}
}

type svc struct{ o Options }

// CreateOptions are invite.create's argument: a number (the uses) or
// {uses, note, external}.
type CreateOptions struct {
	Uses     int    `json:"uses"`
	Note     string `json:"note,omitempty"`
	External string `json:"external,omitempty"` // the host to put in the code
}

func (s *svc) create(_ context.Context, req *muxrpc.Request) (any, error) {
	var opt CreateOptions
	var n float64
	if err := req.Arg(0, &n); err == nil {
		opt.Uses = int(n)
		if float64(opt.Uses) != n {
			return nil, fmt.Errorf("invite.create: uses %v is not an integer", n)
		}
	} else if err := req.Arg(0, &opt); err != nil && !errors.Is(err, muxrpc.ErrNoArg) {
		return nil, fmt.Errorf("invite.create: want a number of uses or {uses, note, external}: %w", err)
	}
	if opt.Uses == 0 {
		opt.Uses = 1
	}
	if opt.Uses < 1 || opt.Uses > MaxUses {
		return nil, fmt.Errorf("invite.create: uses %d: want 1 to %d", opt.Uses, MaxUses)
	}
	host, port, err := s.o.Address()
	if opt.External != "" {
		host = opt.External
	}
	if err != nil && (opt.External == "" || port == 0) {
		return nil, fmt.Errorf("invite.create: %w", err)
	}
	seed := make([]byte, 32)
	if _, err := rand.Read(seed); err != nil {
		return nil, fmt.Errorf("invite.create: %w", err)
	}
	code := Code{Addr: feeds.Address{Host: host, Port: port, Key: s.o.Self, Transport: feeds.TransportNet}, Seed: seed}
	// The code must read back as what we mean (a host with "~" would not).
	if back, err := ParseCode(code.String()); err != nil || back.Addr != code.Addr {
		return nil, fmt.Errorf("invite.create: host %q does not make a usable invite code: %v", host, err)
	}
	kp, err := code.KeyPair()
	if err != nil {
		return nil, fmt.Errorf("invite.create: %w", err)
	}
	if err := s.o.Codes.Add(Entry{ID: kp.ID, Total: opt.Uses, Note: opt.Note, Created: s.o.Now().UnixMilli()}); err != nil {
		return nil, fmt.Errorf("invite.create: %w", err)
	}
	s.o.Logger.Info("invite created", "invite", kp.ID.String(), "uses", opt.Uses)
	return code.String(), nil
}

// followContent is the pub's follow of the new feed, key order as JS.
type followContent struct {
	Type      string `json:"type"`
	Contact   string `json:"contact"`
	Following bool   `json:"following"`
	Pub       bool   `json:"pub"`
	Note      string `json:"note,omitempty"`
}

func (s *svc) use(ctx context.Context, req *muxrpc.Request) (any, error) {
	k := req.RemoteKey()
	if len(k) != 32 {
		// The owner has no invite key: nothing to use.
		return nil, errors.New("invite.use: only a peer connected with an invite key may use it")
	}
	var inv feeds.FeedRef
	copy(inv[:], k)
	var arg struct {
		Feed string `json:"feed"`
	}
	if err := req.Arg(0, &arg); err != nil {
		return nil, errors.New("invite.use: want {feed}")
	}
	if arg.Feed == "" {
		return nil, errors.New("feed to follow is missing")
	}
	feed, err := feeds.ParseFeedRef(arg.Feed)
	if err != nil {
		return nil, fmt.Errorf("invite.use: %w", err)
	}
	if s.o.Follows(s.o.Self, feed) {
		return nil, errors.New("already following")
	}
	e, err := s.o.Codes.Claim(inv)
	switch {
	case errors.Is(err, ErrUnknown), errors.Is(err, ErrExpired):
		return nil, ErrExpired
	case err != nil:
		return nil, fmt.Errorf("invite.use: %w", err)
	}
	content, err := json.Marshal(followContent{Type: "contact", Contact: feed.String(), Following: true, Pub: true, Note: e.Note})
	if err != nil {
		return nil, err
	}
	rec, err := s.o.Publisher.Publish(ctx, content)
	if err != nil {
		if rerr := s.o.Codes.Release(inv); rerr != nil {
			s.o.Logger.Error("invite use not given back", "invite", inv.String(), "err", rerr)
		}
		return nil, fmt.Errorf("invite.use: publish the follow: %w", err)
	}
	s.o.Logger.Info("invite used", "invite", inv.String(), "feed", feed.String(), "used", e.Used, "total", e.Total)
	return json.RawMessage(kvt.Encode(rec)), nil
}

// AcceptResult is what invite.accept answers.
type AcceptResult struct {
	Pub       string            `json:"pub"`
	Address   string            `json:"address"`
	Published []json.RawMessage `json:"published"` // our follow of the pub and the pub message
	Connected bool              `json:"connected"`
	// ConnectError says why the pub could not be dialled with our key
	// afterwards (the invite is used all the same).
	ConnectError string `json:"connectError,omitempty"`
}

// pubContent announces a pub: {type: pub, address: {host, port, key}}.
type pubContent struct {
	Type    string     `json:"type"`
	Address pubAddress `json:"address"`
}

type pubAddress struct {
	Host string `json:"host"`
	Port int    `json:"port"`
	Key  string `json:"key"`
}

type followPub struct {
	Type       string `json:"type"`
	Following  bool   `json:"following"`
	Autofollow bool   `json:"autofollow"`
	Contact    string `json:"contact"`
}

func (s *svc) accept(ctx context.Context, req *muxrpc.Request) (any, error) {
	var text string
	if err := req.Arg(0, &text); err != nil {
		var o struct {
			Invite string `json:"invite"`
		}
		if err := req.Arg(0, &o); err != nil || o.Invite == "" {
			return nil, errors.New("invite.accept: want an invite code")
		}
		text = o.Invite
	}
	if s.o.AcceptWeb != nil && IsWebLink(text) {
		return s.o.AcceptWeb(ctx, strings.TrimSpace(text))
	}
	code, err := ParseCode(text)
	if err != nil {
		return nil, fmt.Errorf("invite.accept: %w", err)
	}
	if code.Addr.Key == s.o.Self {
		return nil, errors.New("invite.accept: that invite is our own")
	}
	kp, err := code.KeyPair()
	if err != nil {
		return nil, fmt.Errorf("invite.accept: %w", err)
	}
	var e *muxrpc.Endpoint
	for attempt := 1; ; attempt++ {
		e, err = s.o.Dial(ctx, code.Addr, kp)
		if err == nil || attempt == 3 || ctx.Err() != nil {
			break
		}
		select {
		case <-ctx.Done():
		case <-time.After(s.o.RetryWait * time.Duration(attempt)):
		}
	}
	if err != nil {
		return nil, fmt.Errorf("invite.accept: could not connect to the pub %s: %w", code.Addr, err)
	}
	var msg json.RawMessage
	err = e.Async(ctx, &msg, muxrpc.Method{"invite", "use"}, map[string]string{"feed": s.o.Self.String()})
	e.Close()
	if err != nil && !isAlreadyFollowing(err) {
		return nil, fmt.Errorf("invite.accept: invite not accepted: %w", explainUse(err))
	}
	res := AcceptResult{Pub: code.Addr.Key.String(), Address: code.Addr.String(), Published: []json.RawMessage{}}
	if !s.o.Follows(s.o.Self, code.Addr.Key) {
		c, _ := json.Marshal(followPub{Type: "contact", Following: true, Autofollow: true, Contact: code.Addr.Key.String()})
		rec, err := s.o.Publisher.Publish(ctx, c)
		if err != nil {
			return nil, fmt.Errorf("invite.accept: the pub follows us; publish our follow of it: %w", err)
		}
		res.Published = append(res.Published, json.RawMessage(kvt.Encode(rec)))
	}
	p, _ := json.Marshal(pubContent{Type: "pub", Address: pubAddress{Host: code.Addr.Host, Port: code.Addr.Port, Key: code.Addr.Key.String()}})
	rec, err := s.o.Publisher.Publish(ctx, p)
	if err != nil {
		return nil, fmt.Errorf("invite.accept: the pub follows us; publish its address: %w", err)
	}
	res.Published = append(res.Published, json.RawMessage(kvt.Encode(rec)))
	if s.o.Connect != nil {
		if err := s.o.Connect(ctx, code.Addr); err != nil {
			res.ConnectError = err.Error()
		} else {
			res.Connected = true
		}
	}
	return res, nil
}

// IsWebLink reports whether s is an http(s) link or an ssb: URI rather
// than a pub invite code.
func IsWebLink(s string) bool {
	s = strings.TrimSpace(s)
	return strings.HasPrefix(s, "https://") || strings.HasPrefix(s, "http://") || strings.HasPrefix(s, "ssb:")
}

func isAlreadyFollowing(err error) bool {
	var ce *muxrpc.CallError
	return errors.As(err, &ce) && strings.Contains(ce.Message, "already following")
}

// explainUse says what a refused invite.use means (the pub gives an
// unknown or used-up invite no right to call it), keeping the pub's text.
// The result wraps no muxrpc.CallError, so that our own caller sees all
// of it.
func explainUse(err error) error {
	var ce *muxrpc.CallError
	if !errors.As(err, &ce) {
		return err
	}
	if strings.HasSuffix(ce.Message, "not in list of allowed methods") {
		return fmt.Errorf("the pub does not know this invite or it is used up (%s)", ce.Message)
	}
	return fmt.Errorf("the pub says: %s", ce.Message)
}
