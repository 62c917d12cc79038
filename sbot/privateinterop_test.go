package sbot_test

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/cask-ssb/cask/internal/interop"
)

// privateItems runs `sbot private` and returns each message's text.
func privateTexts(t *testing.T, repo string) map[string]string {
	t.Helper()
	out := map[string]string{}
	for _, line := range strings.Split(strings.TrimSpace(string(run(t, "", "private", "--repo", repo))), "\n") {
		if line == "" {
			continue
		}
		var r struct {
			Key   string
			Value struct {
				Content struct{ Text string }
				Private bool
			}
		}
		if err := json.Unmarshal([]byte(line), &r); err != nil || !r.Value.Private {
			t.Fatalf("sbot private line %q: %v", line, err)
		}
		out[r.Key] = r.Value.Content.Text
	}
	return out
}

func waitFor(t *testing.T, what string, timeout time.Duration, ok func() bool) {
	t.Helper()
	for deadline := time.Now().Add(timeout); !ok(); time.Sleep(100 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
	}
}

// TestInteropPrivate: a JS peer (ssb-db2, ssb-box) sends us a box1
// message that we read decrypted; we send it one that it decrypts; a
// third party replicates both feeds and reads neither; our private index
// survives a restart.
func TestInteropPrivate(t *testing.T) {
	interop.Kit(t)
	repo := t.TempDir()
	d := startDaemon(t, repo)
	p := interop.StartPeer(t, "--follow", d.id, "--connect", d.tcp)
	run(t, "", "follow", "--repo", repo, p.ID)

	// JS → us
	if err := p.Send(map[string]any{"cmd": "publish_private", "content": map[string]any{"type": "post", "text": "from js", "recps": []string{d.id, p.ID}}}); err != nil {
		t.Fatal(err)
	}
	ev, err := p.WaitEvent(30*time.Second, func(e interop.Event) bool { return e.Name() == "published" || e.Name() == "error" })
	if err != nil || ev.Name() != "published" {
		t.Fatalf("JS publish_private: %v %v\n%s", ev, err, p.Stderr())
	}
	jsKey := ev.String("key")
	// us → JS
	var ours struct{ Key string }
	if err := json.Unmarshal(run(t, "", "publish", "--repo", repo, "--recps", p.ID, "--text", "from go"), &ours); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "our daemon to read the JS peer's private message", 60*time.Second, func() bool {
		return privateTexts(t, repo)[jsKey] == "from js"
	})
	if got := privateTexts(t, repo); got[ours.Key] != "from go" || len(got) != 2 {
		t.Fatalf("sbot private: %v", got)
	}
	var msg interop.Event
	waitFor(t, "the JS peer to decrypt our private message", 60*time.Second, func() bool {
		if err := p.Send(map[string]any{"cmd": "get_msg", "key": ours.Key}); err != nil {
			t.Fatal(err)
		}
		ev, err := p.WaitEvent(5*time.Second, func(e interop.Event) bool {
			return (e.Name() == "msg" && e.String("key") == ours.Key) || (e.Name() == "error" && e.String("where") == "get_msg")
		})
		if err == nil && ev.Name() == "msg" {
			msg = ev
			return true
		}
		return false
	})
	value, _ := msg["value"].(map[string]any)
	c, _ := value["content"].(map[string]any)
	if c["text"] != "from go" || c["type"] != "post" {
		t.Fatalf("the JS peer read our private message as %v", msg)
	}

	// A third party replicates both feeds from us and reads neither.
	third := t.TempDir()
	d3 := startDaemon(t, third)
	run(t, "", "follow", "--repo", third, d.id)
	run(t, "", "follow", "--repo", third, p.ID)
	run(t, "", "connect", "--repo", third, d.tcp)
	waitFor(t, "the third party to replicate both private messages", 60*time.Second, func() bool {
		n := 0
		for _, feed := range []string{d.id, p.ID} {
			for _, r := range lines(t, run(t, "", "hist", "--repo", third, feed)) {
				if r.Key == ours.Key || r.Key == jsKey {
					n++
				}
			}
		}
		return n == 2
	})
	if got := privateTexts(t, third); len(got) != 0 {
		t.Fatalf("the third party reads private messages: %v", got)
	}
	for _, key := range []string{ours.Key, jsKey} {
		v := string(run(t, "", "get", "--repo", third, key))
		if !strings.Contains(v, `.box"`) || strings.Contains(v, "from go") || strings.Contains(v, "from js") {
			t.Fatalf("the third party's copy of %s: %s", key, v)
		}
	}
	if out := string(run(t, "", "type", "post", "--repo", third)); strings.Contains(out, "from") {
		t.Fatalf("the third party's by-type index shows cleartext: %s", out)
	}
	d3.stop(t)

	// Our private index survives a restart.
	d.stop(t)
	d = startDaemon(t, repo)
	if got := privateTexts(t, repo); got[ours.Key] != "from go" || got[jsKey] != "from js" {
		t.Fatalf("after a restart, sbot private: %v", got)
	}
	d.stop(t)
}
