// Package room serves the rooms 2.0 `room.*` methods of a room server and
// the rooms 1.0 `tunnel.*` presence methods (isRoom, announce, leave,
// endpoints, ping) over small interfaces: the room's stored state (Store)
// and the live attendant set (Attendants, in this package).
//
// Who may call what follows protocol.md §8.2 (see Allowed). The package
// never tells a peer another peer's address: attendants are feed ids only.
// It never splices tunnels (plugins/tunnel does) and never touches the
// network itself.
package room

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/cask-ssb/cask/feeds"
	"github.com/cask-ssb/cask/muxrpc"
	"github.com/cask-ssb/cask/room/authz"
	"github.com/cask-ssb/cask/room/roomdb"
)

// Store is what the handlers need of the room's stored state; *roomdb.DB
// implements it.
type Store interface {
	Mode(ctx context.Context) (roomdb.Mode, error)
	Role(ctx context.Context, id feeds.FeedRef) (roomdb.Role, bool, error)
	Members(ctx context.Context) ([]roomdb.Member, error)
	RegisterAlias(ctx context.Context, name string, owner feeds.FeedRef, signature string) error
	RevokeAlias(ctx context.Context, name string, owner *feeds.FeedRef) error
	Aliases(ctx context.Context, owner *feeds.FeedRef) ([]roomdb.Alias, error)
}

// Options configure the handlers.
type Options struct {
	Room   feeds.FeedRef // the room's own id
	Domain string        // public host name: metadata name and alias URLs
	// AliasSubdomains: alias URLs are https://NAME.DOMAIN.
	AliasSubdomains bool
	// Web says the room serves its web side: metadata then lists the
	// features httpAuth and httpInvite (protocol.md §8.3).
	Web    bool
	Store  Store
	Att    *Attendants
	Logger *slog.Logger
	// OnDrop is told when a subscriber is disconnected for falling behind
	// (reason "queue-full"). Optional.
	OnDrop func(reason string)
	Now    func() time.Time
	// Batch delays writing attendant events by up to this long so that a
	// burst goes out in one write per subscriber (0: write at once).
	Batch time.Duration
}

// Plugin holds the handlers.
type Plugin struct{ o Options }

// New returns the plugin.
func New(o Options) *Plugin {
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.OnDrop == nil {
		o.OnDrop = func(string) {}
	}
	return &Plugin{o: o}
}

// Register adds the room.* and tunnel.* presence methods to m.
func (p *Plugin) Register(m *muxrpc.Mux) {
	m.RegisterAsync(muxrpc.Method{"room", "metadata"}, p.metadata)
	m.RegisterSource(muxrpc.Method{"room", "attendants"}, p.attendants)
	m.RegisterSource(muxrpc.Method{"room", "members"}, p.members)
	m.RegisterAsync(muxrpc.Method{"room", "registerAlias"}, p.registerAlias)
	m.RegisterAsync(muxrpc.Method{"room", "revokeAlias"}, p.revokeAlias)
	m.RegisterAsync(muxrpc.Method{"room", "listAliases"}, p.listAliases)
	m.RegisterSync(muxrpc.Method{"room", "ping"}, p.ping)
	m.RegisterAsync(muxrpc.Method{"tunnel", "isRoom"}, p.metadata)
	m.RegisterSync(muxrpc.Method{"tunnel", "announce"}, p.announce)
	m.RegisterSync(muxrpc.Method{"tunnel", "leave"}, p.leave)
	m.RegisterSource(muxrpc.Method{"tunnel", "endpoints"}, p.endpoints)
	m.RegisterSync(muxrpc.Method{"tunnel", "ping"}, p.ping)
}

// Caller returns the feed id of the peer that made req.
func Caller(req *muxrpc.Request) (feeds.FeedRef, error) {
	k := req.RemoteKey()
	if k == nil {
		return feeds.FeedRef{}, errors.New("room: call without a secret-handshake identity")
	}
	return feeds.FeedRefFromPublicKey(k)
}

// Errors sent to peers (their messages are what JS clients see); the
// decisions and their texts live in room/authz.
var (
	ErrEnumerate      = authz.ErrEnumerate
	ErrAliasesOff     = authz.ErrAliasesOff
	ErrMembersOnly    = authz.ErrMembersOnly
	ErrRestricted     = authz.ErrRestricted
	ErrAttendantsOnly = errors.New("only members can be attendants")
)

// Class groups methods by who may call them.
type Class int

// Method classes.
const (
	ClassPublic    Class = iota // anyone with a session
	ClassEnumerate              // see or join the attendant list
	ClassAliasList              // read aliases
	ClassAliasEdit              // register or revoke aliases
	ClassUnknown                // not served: not in list of allowed methods
)

// Classes maps every served method name to its class.
var Classes = map[string]Class{
	"manifest": ClassPublic, "whoami": ClassPublic, "gossip.ping": ClassPublic,
	"room.metadata": ClassPublic, "room.ping": ClassPublic, "room.connect": ClassPublic,
	"tunnel.isRoom": ClassPublic, "tunnel.ping": ClassPublic, "tunnel.connect": ClassPublic,
	// Sign-in (plugins/httpauth): the web side checks membership itself.
	"httpAuth.sendSolution": ClassPublic, "httpAuth.invalidateAllSolutions": ClassPublic,
	"room.attendants": ClassEnumerate, "room.members": ClassEnumerate,
	"tunnel.endpoints": ClassEnumerate, "tunnel.announce": ClassEnumerate, "tunnel.leave": ClassEnumerate,
	"room.listAliases":   ClassAliasList,
	"room.registerAlias": ClassAliasEdit, "room.revokeAlias": ClassAliasEdit,
}

// Allowed decides whether a peer may call method in mode: member says
// whether it is a member (any role). nil means allowed. Denied keys and,
// in restricted mode, non-members never get a session, so they never get
// here; for them SessionAllowed decides. Both ask room/authz.
func Allowed(mode roomdb.Mode, member bool, method string) error {
	c, ok := Classes[method]
	if !ok {
		c = ClassUnknown
	}
	actor := authz.Actor{}
	if member {
		actor.Role = roomdb.RoleMember
	}
	switch c {
	case ClassPublic:
		return nil
	case ClassEnumerate:
		return authz.Can(actor, mode, authz.Enumerate)
	case ClassAliasList:
		return authz.Can(actor, mode, authz.ListAliases)
	case ClassAliasEdit:
		return authz.Can(actor, mode, authz.EditAliases)
	}
	return muxrpc.NotAllowedError(muxrpc.ParseMethod(method))
}

// SessionAllowed decides whether a peer gets a muxrpc session at all.
func SessionAllowed(mode roomdb.Mode, member, denied bool) error {
	actor := authz.Actor{Denied: denied}
	if member {
		actor.Role = roomdb.RoleMember
	}
	return authz.Can(actor, mode, authz.Session)
}

// check applies Allowed to the caller of req.
func (p *Plugin) check(ctx context.Context, req *muxrpc.Request) (feeds.FeedRef, roomdb.Mode, bool, error) {
	id, err := Caller(req)
	if err != nil {
		return id, "", false, err
	}
	mode, err := p.o.Store.Mode(ctx)
	if err != nil {
		return id, "", false, fmt.Errorf("room: %w", err)
	}
	_, member, err := p.o.Store.Role(ctx, id)
	if err != nil {
		return id, mode, false, fmt.Errorf("room: %w", err)
	}
	return id, mode, member, Allowed(mode, member, req.Method.String())
}

// Metadata is the answer of room.metadata (and tunnel.isRoom).
type Metadata struct {
	Name       string   `json:"name"`
	Membership bool     `json:"membership"`
	Features   []string `json:"features"`
}

// Features lists what the room offers in mode (protocol.md §8.3).
func Features(mode roomdb.Mode) []string {
	f := []string{"tunnel", "room2"}
	if mode == roomdb.ModeOpen {
		f = append(f, "room1")
	}
	if mode != roomdb.ModeRestricted {
		f = append(f, "alias")
	}
	return f
}

func (p *Plugin) metadata(ctx context.Context, req *muxrpc.Request) (any, error) {
	_, mode, member, err := p.check(ctx, req)
	if err != nil {
		return nil, err
	}
	f := Features(mode)
	if p.o.Web {
		f = append(f, "httpAuth", "httpInvite")
	}
	return Metadata{Name: p.o.Domain, Membership: member, Features: f}, nil
}

func (p *Plugin) ping(context.Context, *muxrpc.Request) (any, error) {
	return p.o.Now().UnixMilli(), nil
}

func (p *Plugin) announce(ctx context.Context, req *muxrpc.Request) (any, error) {
	id, _, _, err := p.check(ctx, req)
	if err != nil {
		return nil, err
	}
	p.o.Att.Join(id, req.Endpoint)
	return true, nil
}

func (p *Plugin) leave(ctx context.Context, req *muxrpc.Request) (any, error) {
	id, _, _, err := p.check(ctx, req)
	if err != nil {
		return nil, err
	}
	p.o.Att.Leave(id, req.Endpoint)
	return true, nil
}

func idStrings(ids []feeds.FeedRef) []string {
	out := make([]string, len(ids))
	for i, id := range ids {
		out[i] = id.String()
	}
	return out
}

// subscribe makes the caller present and subscribes it, atomically with
// respect to other changes: the state it gets includes itself.
func (p *Plugin) subscribe(id feeds.FeedRef, ep *muxrpc.Endpoint) ([]feeds.FeedRef, *Subscription) {
	p.o.Att.Join(id, ep)
	return p.o.Att.Subscribe(p.overflow(id, ep))
}

func (p *Plugin) overflow(id feeds.FeedRef, ep *muxrpc.Endpoint) func() {
	return func() {
		p.o.Logger.Info("attendant dropped: too slow to read room events", "peer", id.String())
		p.o.OnDrop("queue-full")
		_ = ep.Close()
	}
}

// perSubscriber and maxBatch bound the writes a room makes for attendant
// events. Every batch is one write (a syscall, a wake-up and a read for
// the peer) per subscriber, so with n subscribers and a steady stream of
// joins the room makes n writes per batch delay. The delay therefore
// grows with n (200 µs per subscriber: 5,000 writes/s at most, whatever
// the size of the room; 1,000 subscribers hear of changes within 200 ms)
// while a small room still hears of them within one Batch. It never
// exceeds maxBatch.
const (
	perSubscriber = time.Second / 5000
	maxBatch      = time.Second
)

// batchDelay is how long a subscriber gathers events before writing them
// when subs subscribers are listening.
func batchDelay(batch time.Duration, subs int) time.Duration {
	return min(max(batch, time.Duration(subs)*perSubscriber), max(batch, maxBatch))
}

// pump writes the subscription's events with write(batch) until the
// stream or the connection ends.
func pump(ctx context.Context, out *muxrpc.Sink, sub *Subscription, batch time.Duration, write func([]Event, [][]byte) error) error {
	for {
		select {
		case <-sub.Wait():
			if batch > 0 {
				// Let a burst gather: one write (and one flush) for many
				// events instead of one per event per subscriber.
				t := time.NewTimer(batchDelay(batch, sub.a.Subscribers()))
				select {
				case <-t.C:
				case <-ctx.Done():
				}
				t.Stop()
			}
			if evs, js := sub.TakeJSON(); len(evs) > 0 {
				if err := write(evs, js); err != nil {
					return nil // the stream or connection is gone
				}
			}
		case <-sub.Dead():
			return errors.New("room: subscriber fell too far behind")
		case <-out.Done():
			return nil
		case <-ctx.Done():
			return nil
		}
	}
}

func (p *Plugin) attendants(ctx context.Context, req *muxrpc.Request, out *muxrpc.Sink) error {
	id, _, _, err := p.check(ctx, req)
	if err != nil {
		return err
	}
	p.o.Att.Join(id, req.Endpoint)
	state, sub := p.o.Att.SubscribeJSON(p.overflow(id, req.Endpoint))
	defer sub.Close()
	if err := out.WriteRaw(muxrpc.FlagJSON, state); err != nil {
		return nil
	}
	return pump(ctx, out, sub, p.o.Batch, func(_ []Event, js [][]byte) error {
		// Every subscriber sends the same bytes, encoded once, and a
		// batch leaves in one write.
		return out.WriteRawAll(muxrpc.FlagJSON, js)
	})
}

// endpoints is the rooms 1.0 list: the full set after every change.
func (p *Plugin) endpoints(ctx context.Context, req *muxrpc.Request, out *muxrpc.Sink) error {
	id, _, _, err := p.check(ctx, req)
	if err != nil {
		return err
	}
	state, sub := p.subscribe(id, req.Endpoint)
	defer sub.Close()
	set := make(map[feeds.FeedRef]struct{}, len(state))
	for _, s := range state {
		set[s] = struct{}{}
	}
	list := func() []string {
		ids := make([]feeds.FeedRef, 0, len(set))
		for k := range set {
			ids = append(ids, k)
		}
		return idStrings(ids)
	}
	if err := out.Write(list()); err != nil {
		return nil
	}
	return pump(ctx, out, sub, p.o.Batch, func(evs []Event, _ [][]byte) error {
		for _, ev := range evs {
			if ev.Joined {
				set[ev.ID] = struct{}{}
			} else {
				delete(set, ev.ID)
			}
		}
		return out.Write(list())
	})
}

func (p *Plugin) members(ctx context.Context, req *muxrpc.Request, out *muxrpc.Sink) error {
	if _, _, _, err := p.check(ctx, req); err != nil {
		return err
	}
	ms, err := p.o.Store.Members(ctx)
	if err != nil {
		return fmt.Errorf("room.members: %w", err)
	}
	for _, m := range ms {
		if err := out.Write([]map[string]string{{"id": m.ID.String()}}); err != nil {
			return nil
		}
	}
	return nil
}

// AliasURL is the URL an alias is served at.
func AliasURL(domain, alias string) string {
	return "https://" + domain + "/alias/" + alias
}

func stringArgs(req *muxrpc.Request, n int) ([]string, error) {
	var args []json.RawMessage
	if err := json.Unmarshal(req.Args, &args); err != nil {
		return nil, fmt.Errorf("%s: args: %w", req.Method, err)
	}
	if len(args) != n {
		return nil, fmt.Errorf("%s: want %d arguments, got %d", req.Method, n, len(args))
	}
	out := make([]string, n)
	for i, a := range args {
		if err := json.Unmarshal(a, &out[i]); err != nil {
			return nil, fmt.Errorf("%s: argument %d must be a string", req.Method, i+1)
		}
	}
	return out, nil
}

func (p *Plugin) registerAlias(ctx context.Context, req *muxrpc.Request) (any, error) {
	id, _, _, err := p.check(ctx, req)
	if err != nil {
		return nil, err
	}
	args, err := stringArgs(req, 2)
	if err != nil {
		return nil, err
	}
	alias, sig := args[0], args[1]
	if err := roomdb.VerifyAlias(p.o.Room, id, alias, sig); err != nil {
		return nil, fmt.Errorf("room.registerAlias: %w", err)
	}
	if err := p.o.Store.RegisterAlias(ctx, alias, id, sig); err != nil {
		if errors.Is(err, roomdb.ErrAliasTaken) {
			return nil, fmt.Errorf("room.registerAlias: alias %q is already taken", alias)
		}
		return nil, fmt.Errorf("room.registerAlias: %w", err)
	}
	p.o.Logger.Info("alias registered", "alias", alias, "owner", id.String())
	if p.o.AliasSubdomains {
		return "https://" + alias + "." + p.o.Domain, nil
	}
	return AliasURL(p.o.Domain, alias), nil
}

func (p *Plugin) revokeAlias(ctx context.Context, req *muxrpc.Request) (any, error) {
	id, _, _, err := p.check(ctx, req)
	if err != nil {
		return nil, err
	}
	args, err := stringArgs(req, 1)
	if err != nil {
		return nil, err
	}
	if err := p.o.Store.RevokeAlias(ctx, args[0], &id); err != nil {
		if errors.Is(err, roomdb.ErrNotFound) {
			return nil, fmt.Errorf("room.revokeAlias: no alias %q registered by you", args[0])
		}
		return nil, fmt.Errorf("room.revokeAlias: %w", err)
	}
	return true, nil
}

func (p *Plugin) listAliases(ctx context.Context, req *muxrpc.Request) (any, error) {
	if _, _, _, err := p.check(ctx, req); err != nil {
		return nil, err
	}
	args, err := stringArgs(req, 1)
	if err != nil {
		return nil, err
	}
	owner, err := feeds.ParseFeedRef(args[0])
	if err != nil {
		return nil, fmt.Errorf("room.listAliases: %w", err)
	}
	as, err := p.o.Store.Aliases(ctx, &owner)
	if err != nil {
		return nil, fmt.Errorf("room.listAliases: %w", err)
	}
	names := make([]string, len(as))
	for i, a := range as {
		names[i] = a.Name
	}
	return names, nil
}
