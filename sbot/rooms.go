package sbot

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/cask-ssb/cask/feeds"
	"github.com/cask-ssb/cask/feeds/classic"
	"github.com/cask-ssb/cask/muxrpc"
	"github.com/cask-ssb/cask/plugins/service"
	"github.com/cask-ssb/cask/plugins/status"
)

// The daemon as a room client (protocol.md §8.3–§8.6, ssb-room-client's
// behaviour): it stays connected to the rooms of the configuration
// (--rooms) and of REPO/rooms.json (sbot room join), tells rooms 2.0
// (room.metadata) from rooms 1.0 (tunnel.isRoom), follows who is present
// (room.attendants, or tunnel.endpoints), dials the attendants it follows
// through tunnels (dial_tunnel.go) and accepts the tunnels rooms open to it
// (listen_tunnel.go). Tunneled connections then go through the connection
// manager like any other.

// roomDialers bounds the tunnel dials to attendants in flight at once.
const roomDialers = 8

// roomRescan is how often the present attendants we follow but are not
// connected to are dialled again.
const roomRescan = 2 * time.Second

// roomState is one room we are (or try to be) an attendant of.
type roomState struct {
	addr    feeds.Address
	source  string // "config" or "joined"
	state   string // "connecting", "attendant", "not a room", "refused"
	version string // "2" (room.metadata) or "1" (tunnel.isRoom)
	name    string
	lastErr string
	present map[feeds.FeedRef]bool
}

type roomClient struct {
	n   *Node
	log *slog.Logger

	mu      sync.Mutex
	rooms   map[feeds.FeedRef]*roomState
	dialing map[feeds.FeedRef]bool
	life    context.Context // while Run runs
	wg      sync.WaitGroup  // attendant dials

	fileMu sync.Mutex // REPO/rooms.json read-modify-write
}

func newRoomClient(n *Node) *roomClient {
	return &roomClient{
		n: n, log: n.log.With("component", "rooms"),
		rooms: map[feeds.FeedRef]*roomState{}, dialing: map[feeds.FeedRef]bool{},
	}
}

// service declares the room client: the owner's join/leave/list, and what
// rooms call on us (tunnel.connect from a joined room, tunnel.ping).
func (rc *roomClient) service() service.Service {
	return service.Service{
		Name: "roomClient",
		Methods: append(rc.aliasMethods(),
			service.Async("roomClient.join", service.Owner, rc.joinCall),
			service.Async("roomClient.leave", service.Owner, rc.leaveCall),
			service.Async("roomClient.rooms", service.Owner, func(context.Context, *muxrpc.Request) (any, error) {
				return rc.report(), nil
			}),
			service.Duplex("tunnel.connect", service.Custom, rc.n.serveTunnel).WithCheck(func(_ context.Context, req *muxrpc.Request) bool {
				k := req.RemoteKey()
				return k != nil && rc.isRoom(refOf(k))
			}),
			service.Sync("tunnel.ping", service.Anyone, func(context.Context, *muxrpc.Request) (any, error) {
				return rc.n.now().UnixMilli(), nil
			}),
		),
		OnConnect: rc.onConnect,
		OnAppend: func(m *classic.Message) {
			// A follow of ours may make a present attendant one to dial.
			if m.Author == rc.n.keys.ID && m.ContentType() == "contact" {
				rc.dialAttendants(context.Background(), false)
			}
		},
		Run: rc.run,
	}
}

// isRoom reports whether id is a room we joined.
func (rc *roomClient) isRoom(id feeds.FeedRef) bool {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return rc.rooms[id] != nil
}

// roomAddress returns the direct address of a room we joined.
func (rc *roomClient) roomAddress(id feeds.FeedRef) (feeds.Address, bool) {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	if r := rc.rooms[id]; r != nil {
		return r.addr, true
	}
	return feeds.Address{}, false
}

// run keeps the rooms connected while the daemon serves, and dials the
// followed attendants we are not connected to every roomRescan.
func (rc *roomClient) run(ctx context.Context) error {
	rc.mu.Lock()
	rc.life = ctx
	rc.mu.Unlock()
	for _, s := range rc.n.cfg.Rooms {
		a, err := parseRoomAddress(s)
		if err != nil {
			return fmt.Errorf("rooms: %w", err)
		}
		rc.add(a, "config")
	}
	joined, err := readRoomsFile(rc.n.cfg.Repo)
	if err != nil {
		return err
	}
	for _, e := range joined.Rooms {
		a, err := parseRoomAddress(e.Address)
		if err != nil {
			rc.log.Warn("ignoring a room in rooms.json", "address", e.Address, "err", err)
			continue
		}
		rc.add(a, "joined")
	}
	t := time.NewTicker(roomRescan)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			rc.wg.Wait()
			return nil
		case <-t.C:
			rc.dialAttendants(ctx, true)
		}
	}
}

// add starts being an attendant of the room at a.
func (rc *roomClient) add(a feeds.Address, source string) {
	rc.mu.Lock()
	if r := rc.rooms[a.Key]; r != nil {
		r.addr = a
		rc.mu.Unlock()
	} else {
		rc.rooms[a.Key] = &roomState{addr: a, source: source, state: "connecting", present: map[feeds.FeedRef]bool{}}
		rc.mu.Unlock()
		rc.log.Info("joining room", "room", a.String(), "source", source)
	}
	rc.n.conns.keep(a, "room")
}

// remove stops being an attendant of room id: its keeper stops and the
// connection ends. It reports whether we were in that room.
func (rc *roomClient) remove(id feeds.FeedRef) bool {
	rc.mu.Lock()
	_, ok := rc.rooms[id]
	delete(rc.rooms, id)
	rc.mu.Unlock()
	m := rc.n.conns
	m.mu.Lock()
	if t := m.targets[id]; t != nil && t.source == "room" {
		t.cancel()
		delete(m.targets, id)
	}
	m.mu.Unlock()
	m.dropPeer(id, "left the room")
	return ok
}

func (rc *roomClient) update(id feeds.FeedRef, f func(r *roomState)) {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	if r := rc.rooms[id]; r != nil {
		f(r)
	}
}

// onConnect runs the room session on a direct connection with a room we
// joined: detect the room version, then follow the attendants until the
// connection ends.
func (rc *roomClient) onConnect(ctx context.Context, p service.Peer) {
	c, ok := p.(*conn)
	if !ok || c.transport == feeds.TransportTunnel || !rc.isRoom(c.id) {
		return
	}
	err := rc.session(ctx, c)
	rc.update(c.id, func(r *roomState) {
		clear(r.present)
		if r.state == "attendant" {
			r.state = "connecting"
		}
		if err != nil && ctx.Err() == nil {
			r.lastErr = err.Error()
		}
	})
	if err != nil && ctx.Err() == nil {
		rc.log.Warn("room session ended", "room", c.id.String(), "err", err)
	}
}

// isNotAllowed reports a JS "method:… is not in list of allowed methods"
// answer, which is how a peer says it lacks a method.
func isNotAllowed(err error) bool {
	var ce *muxrpc.CallError
	return errors.As(err, &ce) && strings.HasSuffix(ce.Message, "not in list of allowed methods")
}

func (rc *roomClient) session(ctx context.Context, c *conn) error {
	e := c.e
	var md struct {
		Name       string   `json:"name"`
		Membership bool     `json:"membership"`
		Features   []string `json:"features"`
	}
	version := "2"
	if err := e.Async(ctx, &md, muxrpc.Method{"room", "metadata"}); err != nil {
		if !isNotAllowed(err) {
			rc.update(c.id, func(r *roomState) { r.state = "not a room" })
			return fmt.Errorf("room.metadata: %w", err)
		}
		var is json.RawMessage
		if err := e.Async(ctx, &is, muxrpc.Method{"tunnel", "isRoom"}); err != nil || isFalsy(is) {
			rc.update(c.id, func(r *roomState) { r.state = "not a room" })
			if err == nil {
				err = errors.New("tunnel.isRoom answered " + string(is))
			}
			return fmt.Errorf("not a room: %w", err)
		}
		version = "1"
	}
	rc.update(c.id, func(r *roomState) { r.version, r.name, r.lastErr = version, md.Name, "" })
	rc.log.Info("connected to room", "room", c.id.String(), "version", version, "name", md.Name)
	if version == "2" {
		err := rc.attendants(ctx, c)
		if !isNotAllowed(err) {
			return err
		}
	} else {
		// ssb-room 1.x: announcing makes us reachable; answers are ignored.
		_ = e.Async(ctx, nil, muxrpc.Method{"tunnel", "announce"})
	}
	return rc.endpoints(ctx, c)
}

func isFalsy(v json.RawMessage) bool {
	switch strings.TrimSpace(string(v)) {
	case "", "null", "false", "0", `""`:
		return true
	}
	return false
}

// attendants follows room.attendants (rooms 2.0).
func (rc *roomClient) attendants(ctx context.Context, c *conn) error {
	src, err := c.e.Source(ctx, muxrpc.Method{"room", "attendants"})
	if err != nil {
		return err
	}
	defer src.Close()
	for {
		var ev struct {
			Type string          `json:"type"`
			IDs  []feeds.FeedRef `json:"ids"`
			ID   feeds.FeedRef   `json:"id"`
		}
		if err := src.Decode(ctx, &ev); err != nil {
			return fmt.Errorf("room.attendants: %w", err)
		}
		rc.update(c.id, func(r *roomState) {
			switch ev.Type {
			case "state":
				r.state = "attendant"
				clear(r.present)
				for _, id := range ev.IDs {
					r.present[id] = true
				}
			case "joined":
				r.present[ev.ID] = true
			case "left":
				delete(r.present, ev.ID)
			}
		})
		rc.dialAttendants(ctx, false)
	}
}

// endpoints follows tunnel.endpoints (rooms 1.0): each item is the whole
// list of attendants.
func (rc *roomClient) endpoints(ctx context.Context, c *conn) error {
	src, err := c.e.Source(ctx, muxrpc.Method{"tunnel", "endpoints"})
	if err != nil {
		return err
	}
	defer src.Close()
	for {
		var ids []feeds.FeedRef
		if err := src.Decode(ctx, &ids); err != nil {
			return fmt.Errorf("tunnel.endpoints: %w", err)
		}
		rc.update(c.id, func(r *roomState) {
			r.state = "attendant"
			clear(r.present)
			for _, id := range ids {
				r.present[id] = true
			}
		})
		rc.dialAttendants(ctx, false)
	}
}

// wantTunnel: we dial attendants we follow and do not block.
func (rc *roomClient) wantTunnel(id feeds.FeedRef) bool {
	me := rc.n.keys.ID
	return id != me && rc.n.graph.Follows(me, id) && !rc.n.graph.Blocks(me, id)
}

// dialAttendants dials, through their room, the present attendants we
// follow and are not connected to, at most roomDialers at once. On an
// attendants event or a follow of ours (all false), of two friends who
// follow each other only the one with the smaller key dials at once, so
// they do not both open a tunnel; the rescan dials in any case.
func (rc *roomClient) dialAttendants(_ context.Context, all bool) {
	me := rc.n.keys.ID
	rc.mu.Lock()
	defer rc.mu.Unlock()
	life := rc.life
	if life == nil || life.Err() != nil {
		return
	}
	for roomID, r := range rc.rooms {
		if r.state != "attendant" {
			continue
		}
		for id := range r.present {
			if len(rc.dialing) >= roomDialers {
				return
			}
			if rc.dialing[id] || !rc.wantTunnel(id) || rc.n.conns.peer(id) != nil {
				continue
			}
			if !all && rc.n.graph.Follows(id, me) && strings.Compare(me.String(), id.String()) > 0 {
				continue // it follows us too: the smaller key dials first
			}
			if !rc.n.sched.reserve() {
				return // at --max-outgoing
			}
			rc.dialing[id] = true
			a := feeds.Address{Key: id, Portal: roomID, Transport: feeds.TransportTunnel}
			rc.wg.Add(1)
			go func() {
				defer rc.wg.Done()
				dctx, cancel := context.WithTimeout(life, 30*time.Second)
				c, err := rc.n.conns.dial(dctx, a)
				cancel()
				rc.n.sched.release(c)
				if err != nil && life.Err() == nil {
					rc.log.Debug("tunnel to attendant failed", "addr", a.String(), "err", err)
				}
				rc.mu.Lock()
				delete(rc.dialing, id)
				rc.mu.Unlock()
			}()
		}
	}
}

// joinCall is roomClient.join(address): join a room now and after every
// restart (REPO/rooms.json).
func (rc *roomClient) joinCall(ctx context.Context, req *muxrpc.Request) (any, error) {
	var s string
	if err := req.Arg(0, &s); err != nil {
		return nil, fmt.Errorf("room join: want a room address: %w", err)
	}
	a, err := parseRoomAddress(s)
	if err != nil {
		return nil, fmt.Errorf("room join: %w", err)
	}
	r, err := rc.join(ctx, a)
	if err != nil {
		return nil, err
	}
	return r, nil
}

// join joins the room at a now and after every restart (REPO/rooms.json),
// dials it and returns its state once the session knows it (or soon).
func (rc *roomClient) join(ctx context.Context, a feeds.Address) (status.Room, error) {
	if a.Key == rc.n.keys.ID {
		return status.Room{}, errors.New("room join: that is our own address")
	}
	if err := rc.editRoomsFile(func(f *roomsFile) {
		for i, e := range f.Rooms {
			if old, err := feeds.ParseAddress(e.Address); err == nil && old.Key == a.Key {
				f.Rooms[i].Address = a.String()
				return
			}
		}
		f.Rooms = append(f.Rooms, roomsEntry{Address: a.String()})
	}); err != nil {
		return status.Room{}, err
	}
	rc.add(a, "joined")
	dctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if _, err := rc.n.conns.dial(dctx, a); err != nil {
		return status.Room{}, fmt.Errorf("room join: joined (kept in rooms.json, redialled with back-off) but not connected yet: %w", err)
	}
	// Give the session a moment to learn the room's version.
	for range 20 {
		if r := rc.roomReport(a.Key); r.State != "connecting" {
			return r, nil
		}
		select {
		case <-time.After(50 * time.Millisecond):
		case <-ctx.Done():
			return status.Room{}, ctx.Err()
		}
	}
	return rc.roomReport(a.Key), nil
}

// leaveCall is roomClient.leave(address or room id).
func (rc *roomClient) leaveCall(_ context.Context, req *muxrpc.Request) (any, error) {
	var s string
	if err := req.Arg(0, &s); err != nil {
		return nil, fmt.Errorf("room leave: want a room address or id: %w", err)
	}
	var id feeds.FeedRef
	var err error
	if strings.HasPrefix(s, "@") {
		id, err = feeds.ParseFeedRef(s)
	} else {
		var a feeds.Address
		a, err = parseRoomAddress(s)
		id = a.Key
	}
	if err != nil {
		return nil, fmt.Errorf("room leave: %w", err)
	}
	removed := false
	if err := rc.editRoomsFile(func(f *roomsFile) {
		kept := f.Rooms[:0]
		for _, e := range f.Rooms {
			if old, err := feeds.ParseAddress(e.Address); err == nil && old.Key == id {
				removed = true
				continue
			}
			kept = append(kept, e)
		}
		f.Rooms = kept
	}); err != nil {
		return nil, err
	}
	was := rc.remove(id)
	return map[string]any{"room": id.String(), "left": was || removed}, nil
}

// report lists the rooms for status and roomClient.rooms.
func (rc *roomClient) report() []status.Room {
	rc.mu.Lock()
	ids := make([]feeds.FeedRef, 0, len(rc.rooms))
	for id := range rc.rooms {
		ids = append(ids, id)
	}
	rc.mu.Unlock()
	out := make([]status.Room, 0, len(ids))
	for _, id := range ids {
		out = append(out, rc.roomReport(id))
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Address < out[j].Address })
	return out
}

func (rc *roomClient) roomReport(id feeds.FeedRef) status.Room {
	rc.mu.Lock()
	r := rc.rooms[id]
	if r == nil {
		rc.mu.Unlock()
		return status.Room{ID: id.String(), State: "left"}
	}
	out := status.Room{
		ID: id.String(), Address: r.addr.String(), Source: r.source, State: r.state,
		Version: r.version, Name: r.name, LastError: r.lastErr,
		Attendants: []string{}, Followed: []string{},
	}
	var present []feeds.FeedRef
	for a := range r.present {
		present = append(present, a)
	}
	rc.mu.Unlock()
	for _, a := range present {
		out.Attendants = append(out.Attendants, a.String())
		if rc.wantTunnel(a) {
			out.Followed = append(out.Followed, a.String())
		}
	}
	sort.Strings(out.Attendants)
	sort.Strings(out.Followed)
	return out
}

// REPO/rooms.json holds the rooms joined with `sbot room join`:
//
//	{"rooms":[{"address":"net:HOST:PORT~shs:KEY"}]}
type roomsFile struct {
	Rooms []roomsEntry `json:"rooms"`
}

type roomsEntry struct {
	Address string `json:"address"`
}

func roomsFilePath(repo string) string { return filepath.Join(repo, "rooms.json") }

func readRoomsFile(repo string) (roomsFile, error) {
	var f roomsFile
	data, err := os.ReadFile(roomsFilePath(repo))
	if errors.Is(err, fs.ErrNotExist) {
		return f, nil
	}
	if err != nil {
		return f, fmt.Errorf("read joined rooms: %w", err)
	}
	if err := json.Unmarshal(data, &f); err != nil {
		return f, fmt.Errorf("read joined rooms %s: %w", roomsFilePath(repo), err)
	}
	return f, nil
}

func (rc *roomClient) editRoomsFile(edit func(f *roomsFile)) error {
	rc.fileMu.Lock()
	defer rc.fileMu.Unlock()
	repo := rc.n.cfg.Repo
	f, err := readRoomsFile(repo)
	if err != nil {
		return err
	}
	edit(&f)
	data, err := json.MarshalIndent(f, "", "  ")
	if err != nil {
		return err
	}
	path := roomsFilePath(repo)
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, append(data, '\n'), 0o600); err != nil {
		return fmt.Errorf("write joined rooms: %w", err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("write joined rooms: %w", err)
	}
	return nil
}
