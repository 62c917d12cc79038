package tunnel

import (
	"context"
	"encoding/json"
	"strings"
	"testing"

	"github.com/cask-ssb/cask/feeds"
)

func TestParseConnectArgs(t *testing.T) {
	r, b, o := feeds.FeedRef{1}, feeds.FeedRef{2}, feeds.FeedRef{3}
	for _, c := range []struct {
		args string
		want string // error substring, "" = ok
	}{
		{`[{"portal":"` + r.String() + `","target":"` + b.String() + `"}]`, ""},
		{`[{"portal":"` + r.String() + `","target":"` + b.String() + `","origin":"` + o.String() + `"}]`, ""},
		{`[]`, "missing argument"},
		{`["x"]`, "must be an object"},
		{`[{"portal":"@x","target":"` + b.String() + `"}]`, "portal"},
		{`[{"portal":"` + r.String() + `"}]`, "target"},
		{`[{"portal":"` + r.String() + `","target":"` + b.String() + `","origin":"nope"}]`, "origin"},
		{`{}`, "args"},
	} {
		a, err := ParseConnectArgs(json.RawMessage(c.args))
		switch {
		case c.want == "" && err != nil:
			t.Errorf("%s: %v", c.args, err)
		case c.want != "" && (err == nil || !strings.Contains(err.Error(), c.want)):
			t.Errorf("%s: %v, want %q", c.args, err, c.want)
		case c.want == "" && (a.Portal != r || a.Target != b):
			t.Errorf("%s: %+v", c.args, a)
		}
	}
}

func TestAddress(t *testing.T) {
	r, b := feeds.FeedRef{1}, feeds.FeedRef{2}
	got := Address(r, b)
	want := "tunnel:" + r.String() + ":" + b.String() + "~shs:" + strings.TrimSuffix(strings.TrimPrefix(b.String(), "@"), ".ed25519")
	if got != want {
		t.Fatalf("%s, want %s", got, want)
	}
}

func FuzzParseConnectArgs(f *testing.F) {
	f.Add(`[{"portal":"@AQAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=.ed25519","target":"@AgAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=.ed25519"}]`)
	f.Add(`[null]`)
	f.Add(`[{"origin":1}]`)
	f.Fuzz(func(t *testing.T, s string) {
		a, err := ParseConnectArgs(json.RawMessage(s))
		if err != nil {
			return
		}
		// What was accepted survives a round trip unchanged.
		b, err := json.Marshal([]ConnectArgs{a})
		if err != nil {
			t.Fatal(err)
		}
		a2, err := ParseConnectArgs(b)
		if err != nil || a2.Portal != a.Portal || a2.Target != a.Target || (a.Origin == nil) != (a2.Origin == nil) || (a.Origin != nil && *a.Origin != *a2.Origin) {
			t.Fatalf("round trip of %q: %+v then %+v, %v", s, a, a2, err)
		}
	})
}

func TestWaitTokensLargerThanBurst(t *testing.T) {
	// A packet larger than the bucket is paid for in pieces (rate.WaitN
	// alone refuses n > burst).
	l := SpliceOptions{Rate: 1 << 20, Burst: 100}.newLimiter()
	if l.Burst() != 100 {
		t.Fatalf("burst %d", l.Burst())
	}
	if err := waitTokens(context.Background(), l, 5000); err != nil {
		t.Fatal(err)
	}
	if (SpliceOptions{}).newLimiter() != nil {
		t.Fatal("no rate must mean no limiter")
	}
	if l := (SpliceOptions{Rate: 300}).newLimiter(); l.Burst() != 300 {
		t.Fatalf("default burst %d, want one second of the rate", l.Burst())
	}
}
