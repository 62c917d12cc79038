package mesh

import (
	"bytes"
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/cask-ssb/cask/feeds"
	"github.com/cask-ssb/cask/muxrpc"
)

const (
	idA = "@AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=.ed25519"
	idB = "@BBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBA=.ed25519"
)

func TestParseEvent(t *testing.T) {
	a, _ := feeds.ParseFeedRef(idA)
	for _, c := range []struct {
		in, err string
		want    Event
	}{
		{in: `{"type":"state","ids":[]}`, want: Event{Kind: EventState, IDs: []feeds.FeedRef{}}},
		{in: `{"type":"state","ids":["` + idA + `"]}`, want: Event{Kind: EventState, IDs: []feeds.FeedRef{a}}},
		{in: `{"type":"joined","id":"` + idA + `"}`, want: Event{Kind: EventJoined, ID: a}},
		{in: `{"type":"left","id":"` + idA + `"}`, want: Event{Kind: EventLeft, ID: a}},
		{in: `{"type":"state"}`, err: "missing ids"},
		{in: `{"type":"state","ids":["x"]}`, err: "ids[0]"},
		{in: `{"type":"joined","id":"@x"}`, err: "mesh.attendants joined"},
		{in: `{"type":"moved","id":"` + idA + `"}`, err: `unknown item type "moved"`},
		{in: `[]`, err: "mesh.attendants item"},
	} {
		got, err := ParseEvent([]byte(c.in))
		if c.err != "" {
			if err == nil || !strings.Contains(err.Error(), c.err) {
				t.Errorf("%s: error %v, want %q", c.in, err, c.err)
			}
			continue
		}
		if err != nil {
			t.Errorf("%s: %v", c.in, err)
			continue
		}
		b1, _ := json.Marshal(got)
		b2, _ := json.Marshal(c.want)
		if !bytes.Equal(b1, b2) {
			t.Errorf("%s: got %s, want %s", c.in, b1, b2)
		}
	}
}

func TestParseConnectArgsAndHello(t *testing.T) {
	for _, c := range []struct{ in, err string }{
		{`[{"origin":"` + idA + `","target":"` + idB + `"}]`, ""},
		{`[{"origin":"` + idA + `"}]`, "target"},
		{`[]`, "0 arguments"},
		{`{}`, "args"},
	} {
		_, err := ParseConnectArgs([]byte(c.in))
		if (c.err == "") != (err == nil) || (err != nil && !strings.Contains(err.Error(), c.err)) {
			t.Errorf("ParseConnectArgs(%s) = %v, want %q", c.in, err, c.err)
		}
	}
	for _, c := range []struct{ in, err string }{
		{`{"node":"abc","protocol":1}`, ""},
		{`{"node":"","protocol":1}`, "node id"},
		{`{"node":"abc","protocol":2}`, "protocol 2"},
		{`{"node":"` + strings.Repeat("a", 65) + `","protocol":1}`, "node id"},
	} {
		_, err := ParseHello([]byte(c.in))
		if (c.err == "") != (err == nil) || (err != nil && !strings.Contains(err.Error(), c.err)) {
			t.Errorf("ParseHello(%s) = %v, want %q", c.in, err, c.err)
		}
	}
}

func TestFailureTypes(t *testing.T) {
	for _, c := range []struct {
		msg  string
		want error
	}{
		{"mesh: not here: @x", ErrNotHere},
		{"mesh: gone: @x", ErrGone},
		{"mesh: limit: at most 1", ErrLimit},
	} {
		if err := failure(&muxrpc.CallError{Message: c.msg}); !errors.Is(err, c.want) {
			t.Errorf("%q: %v, want %v", c.msg, err, c.want)
		}
	}
	if err := failure(&muxrpc.CallError{Message: "other"}); errors.Is(err, ErrNotHere) || errors.Is(err, ErrGone) || errors.Is(err, ErrLimit) {
		t.Errorf("untyped error typed: %v", err)
	}
}

func TestKey(t *testing.T) {
	k, err := NewKey(nil)
	if err != nil {
		t.Fatal(err)
	}
	back, err := ParseKey([]byte(" " + k.String() + "\n"))
	if err != nil || back != k {
		t.Fatalf("round trip: %v %v", back, err)
	}
	if _, err := ParseKey([]byte("AAAA")); err == nil {
		t.Fatal("short key accepted")
	}
}

// FuzzParseEvent: whatever a node sends, ParseEvent errs or returns an
// event whose wire form parses back to the same event.
func FuzzParseEvent(f *testing.F) {
	for _, s := range []string{`{"type":"state","ids":["` + idA + `","` + idB + `"]}`, `{"type":"joined","id":"` + idA + `"}`,
		`{"type":"left","id":"` + idB + `"}`, `{"type":"state","ids":[]}`, `{}`, `null`, `[1]`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		ev, err := ParseEvent(b)
		if err != nil {
			return
		}
		out, err := json.Marshal(ev)
		if err != nil {
			t.Fatalf("accepted %q but cannot write it: %v", b, err)
		}
		back, err := ParseEvent(out)
		if err != nil {
			t.Fatalf("own form %s does not parse: %v", out, err)
		}
		out2, _ := json.Marshal(back)
		if !bytes.Equal(out, out2) {
			t.Fatalf("not stable: %s then %s", out, out2)
		}
	})
}

// FuzzParseConnectArgs: accepted args name two valid feeds.
func FuzzParseConnectArgs(f *testing.F) {
	f.Add([]byte(`[{"origin":"` + idA + `","target":"` + idB + `"}]`))
	f.Add([]byte(`[{"origin":1}]`))
	f.Fuzz(func(t *testing.T, b []byte) {
		a, err := ParseConnectArgs(b)
		if err != nil {
			return
		}
		for _, id := range []feeds.FeedRef{a.Origin, a.Target} {
			if back, err := feeds.ParseFeedRef(id.String()); err != nil || back != id {
				t.Fatalf("accepted %q with a feed that does not round-trip", b)
			}
		}
	})
}

// FuzzParseHello: an accepted hello has a node id of 1 to 64 bytes and
// our protocol; parseOpen accepts only {"type":"open"}.
func FuzzParseHello(f *testing.F) {
	f.Add([]byte(`{"node":"abc","protocol":1}`))
	f.Add([]byte(`{"type":"open"}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		if h, err := ParseHello(b); err == nil && (h.Node == "" || len(h.Node) > maxNodeID || h.Protocol != Protocol) {
			t.Fatalf("accepted %q: %+v", b, h)
		}
		if err := parseOpen(b); err == nil {
			var o openItem
			if json.Unmarshal(b, &o) != nil || o.Type != "open" {
				t.Fatalf("parseOpen accepted %q", b)
			}
		}
	})
}

// FuzzParseSolutionArgs: accepted args have a valid cid and n-1 strings.
func FuzzParseSolutionArgs(f *testing.F) {
	f.Add([]byte(`["`+idA+`","sc","cc"]`), 3)
	f.Add([]byte(`["`+idA+`","sc","cc","sol"]`), 4)
	f.Add([]byte(`[1,2]`), 3)
	f.Fuzz(func(t *testing.T, b []byte, n int) {
		if n < 1 || n > 8 {
			return
		}
		cid, rest, err := ParseSolutionArgs(b, n)
		if err != nil {
			return
		}
		if len(rest) != n-1 {
			t.Fatalf("accepted %q with %d strings, want %d", b, len(rest), n-1)
		}
		if back, err := feeds.ParseFeedRef(cid.String()); err != nil || back != cid {
			t.Fatalf("accepted %q with a cid that does not round-trip", b)
		}
	})
}
