package mesh

import (
	"encoding/json"
	"errors"
	"fmt"

	"github.com/cask-ssb/cask/feeds"
	"github.com/cask-ssb/cask/muxrpc"
)

// The mesh's muxrpc methods. Every node serves them on its mesh listener
// to the other nodes (and to nobody else: the handshake needs the mesh key
// and the room's own identity).
var (
	// MethodHello (async) answers Hello: who the node is.
	MethodHello = muxrpc.Method{"mesh", "hello"}
	// MethodAttendants (source) sends the node's local attendants: one
	// {"type":"state","ids":[…]} then {"type":"joined"|"left","id":…}.
	MethodAttendants = muxrpc.Method{"mesh", "attendants"}
	// MethodPing (async) answers the time in milliseconds: link liveness
	// and round-trip time.
	MethodPing = muxrpc.Method{"mesh", "ping"}
	// MethodConnect (duplex, args [{origin, target}]) opens a tunnel to an
	// attendant of the node: its first item is {"type":"open"}, then the
	// tunnel's bytes, spliced with the attendant's tunnel.connect.
	MethodConnect = muxrpc.Method{"mesh", "connect"}
)

// Protocol is the mesh protocol version in Hello.
const Protocol = 1

// Hello is the answer of mesh.hello.
type Hello struct {
	Node     string `json:"node"`
	Protocol int    `json:"protocol"`
}

// maxNodeID bounds a node id (a random hex string of ours is 16 bytes).
const maxNodeID = 64

// ParseHello decodes a mesh.hello answer.
func ParseHello(b []byte) (Hello, error) {
	var h Hello
	if err := json.Unmarshal(b, &h); err != nil {
		return h, fmt.Errorf("mesh.hello: %w", err)
	}
	if h.Node == "" || len(h.Node) > maxNodeID {
		return h, fmt.Errorf("mesh.hello: node id of %d bytes: want 1 to %d", len(h.Node), maxNodeID)
	}
	if h.Protocol != Protocol {
		return h, fmt.Errorf("mesh.hello: protocol %d: this node speaks %d", h.Protocol, Protocol)
	}
	return h, nil
}

// EventKind is the type of an attendants item.
type EventKind string

// Attendants items.
const (
	EventState  EventKind = "state"
	EventJoined EventKind = "joined"
	EventLeft   EventKind = "left"
)

// Event is one item of mesh.attendants.
type Event struct {
	Kind EventKind
	ID   feeds.FeedRef   // joined, left
	IDs  []feeds.FeedRef // state
}

// MarshalJSON writes the wire form.
func (e Event) MarshalJSON() ([]byte, error) {
	switch e.Kind {
	case EventState:
		ids := make([]string, len(e.IDs))
		for i, id := range e.IDs {
			ids[i] = id.String()
		}
		return json.Marshal(struct {
			Type string   `json:"type"`
			IDs  []string `json:"ids"`
		}{string(e.Kind), ids})
	case EventJoined, EventLeft:
		return json.Marshal(struct {
			Type string `json:"type"`
			ID   string `json:"id"`
		}{string(e.Kind), e.ID.String()})
	}
	return nil, fmt.Errorf("mesh: event kind %q", e.Kind)
}

// ParseEvent decodes one item of mesh.attendants.
func ParseEvent(b []byte) (Event, error) {
	var raw struct {
		Type string   `json:"type"`
		ID   string   `json:"id"`
		IDs  []string `json:"ids"`
	}
	if err := json.Unmarshal(b, &raw); err != nil {
		return Event{}, fmt.Errorf("mesh.attendants item: %w", err)
	}
	ev := Event{Kind: EventKind(raw.Type)}
	switch ev.Kind {
	case EventState:
		if raw.IDs == nil {
			return Event{}, errors.New("mesh.attendants state: missing ids")
		}
		ev.IDs = make([]feeds.FeedRef, len(raw.IDs))
		for i, s := range raw.IDs {
			id, err := feeds.ParseFeedRef(s)
			if err != nil {
				return Event{}, fmt.Errorf("mesh.attendants state: ids[%d]: %w", i, err)
			}
			ev.IDs[i] = id
		}
	case EventJoined, EventLeft:
		id, err := feeds.ParseFeedRef(raw.ID)
		if err != nil {
			return Event{}, fmt.Errorf("mesh.attendants %s: %w", raw.Type, err)
		}
		ev.ID = id
	default:
		return Event{}, fmt.Errorf("mesh.attendants: unknown item type %q", muxrpc.ShortArg(raw.Type))
	}
	return ev, nil
}

// ConnectArgs is the argument of mesh.connect.
type ConnectArgs struct {
	Origin feeds.FeedRef
	Target feeds.FeedRef
}

// ParseConnectArgs decodes the args array of a mesh.connect request.
func ParseConnectArgs(args []byte) (ConnectArgs, error) {
	var list []struct {
		Origin string `json:"origin"`
		Target string `json:"target"`
	}
	if err := json.Unmarshal(args, &list); err != nil {
		return ConnectArgs{}, fmt.Errorf("mesh.connect: args: %w", err)
	}
	if len(list) != 1 {
		return ConnectArgs{}, fmt.Errorf("mesh.connect: %d arguments: want one {origin, target}", len(list))
	}
	var a ConnectArgs
	var err error
	if a.Origin, err = feeds.ParseFeedRef(list[0].Origin); err != nil {
		return a, fmt.Errorf("mesh.connect: origin: %w", err)
	}
	if a.Target, err = feeds.ParseFeedRef(list[0].Target); err != nil {
		return a, fmt.Errorf("mesh.connect: target: %w", err)
	}
	return a, nil
}

// Typed failures of mesh.connect, as error messages on the wire.
var (
	// ErrNotHere: the node does not hold the target (any more).
	ErrNotHere = errors.New("mesh: not here")
	// ErrGone: the target's connection ended before the tunnel opened.
	ErrGone = errors.New("mesh: gone")
	// ErrLimit: the node refused the tunnel by a limit.
	ErrLimit = errors.New("mesh: limit")
)

// failure maps an error from the wire back to a typed failure.
func failure(err error) error {
	var ce *muxrpc.CallError
	if !errors.As(err, &ce) {
		return err
	}
	for _, typed := range []error{ErrNotHere, ErrGone, ErrLimit} {
		if len(ce.Message) >= len(typed.Error()) && ce.Message[:len(typed.Error())] == typed.Error() {
			return fmt.Errorf("%w (%s)", typed, ce.Message)
		}
	}
	return err
}

// openItem is the first item of a mesh.connect stream from the far node.
type openItem struct {
	Type string `json:"type"`
}

// parseOpen checks the first item of a mesh.connect stream.
func parseOpen(b []byte) error {
	var o openItem
	if err := json.Unmarshal(b, &o); err != nil {
		return fmt.Errorf("mesh.connect: first item: %w", err)
	}
	if o.Type != "open" {
		return fmt.Errorf("mesh.connect: first item type %q: want open", muxrpc.ShortArg(o.Type))
	}
	return nil
}
