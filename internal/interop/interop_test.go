package interop

import (
	"encoding/json"
	"strings"
	"testing"
	"time"
)

// TestPeerStartsAndPublishes checks the harness itself: a JS peer starts,
// publishes, and query.js reads its feed over the network.
func TestPeerStartsAndPublishes(t *testing.T) {
	p := StartPeer(t, "--replication", "none", "--publish", "5")
	if !strings.HasPrefix(p.ID, "@") || len(p.PubKey) != 32 {
		t.Fatalf("bad ready event: %v", p.Ready)
	}
	if !strings.HasPrefix(p.Address, "net:127.0.0.1:") {
		t.Fatalf("peer not on loopback: %q", p.Address)
	}
	ev, err := p.WaitEvent(30*time.Second, func(e Event) bool { return e.Name() == "published" })
	if err != nil {
		t.Fatal(err)
	}
	if ev.Int("seq") != 5 {
		t.Fatalf("published event %v, want seq 5", ev)
	}
	out, err := Query(t, 30*time.Second, "latest", "--feed", p.ID, "--remote", p.Address)
	if err != nil {
		t.Fatal(err)
	}
	var latest struct {
		Feed string `json:"feed"`
		Seq  int    `json:"seq"`
	}
	if err := json.Unmarshal(out, &latest); err != nil {
		t.Fatalf("query output %q: %v", out, err)
	}
	if latest.Feed != p.ID || latest.Seq != 5 {
		t.Fatalf("latest = %+v, want %s seq 5", latest, p.ID)
	}
}
