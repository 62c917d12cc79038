package sbot_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cask-ssb/cask/internal/interop"
	"github.com/cask-ssb/cask/sbot/client"
)

// edgeContents are published among the plain posts so that a JS peer
// validating our feed checks our canonical encoding on hard cases.
var edgeContents = []string{
	`{"type":"post","text":"unicode: héllo wörld — 日本語 한국어 עברית العربية 😀👩‍👩‍👧"}`,
	`{"type":"post","text":"escapes: \" \\ \n \t \b \f \u0000 \u001f \u007f \u2028 / <>&"}`,
	`{"type":"about","10":"ten","2":"two","name":"keys","-1":"neg","01":"lead"}`,
	`{"type":"numbers","a":1e21,"b":1e-7,"c":0.30000000000000004,"d":-0,"e":123456789012345680000,"f":5e-324}`,
	`{"type":"nested","deep":{"a":[1,[2,[3,{"x":null}]],{}],"b":[],"c":{}}}`,
}

// publishN publishes n messages through the Go client, several in flight,
// with the edge contents mixed in. It returns the keys in feed order.
func publishN(t *testing.T, repo string, n int) []string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	c, err := client.DialRepo(ctx, repo)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	for _, e := range edgeContents {
		if _, err := c.Publish(ctx, json.RawMessage(e)); err != nil {
			t.Fatalf("publish %s: %v", e, err)
		}
	}
	var wg sync.WaitGroup
	errs := make(chan error, 16)
	per := (n - len(edgeContents)) / 16
	for w := 0; w < 16; w++ {
		count := per
		if w == 15 {
			count = n - len(edgeContents) - 15*per
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < count; i++ {
				if _, err := c.Publish(ctx, map[string]any{"type": "post", "text": fmt.Sprintf("message %d/%d from Go", w, i)}); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	var keys []string
	id, err := c.Whoami(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for v, err := range c.History(ctx, map[string]any{"id": id.String()}) {
		if err != nil {
			t.Fatal(err)
		}
		var r kvt
		if err := json.Unmarshal(v, &r); err != nil {
			t.Fatal(err)
		}
		keys = append(keys, r.Key)
	}
	if len(keys) != n {
		t.Fatalf("published %d, feed has %d", n, len(keys))
	}
	return keys
}

func dumpKeys(t *testing.T, out []byte) []string {
	t.Helper()
	var keys []string
	sc := bufio.NewScanner(bytes.NewReader(out))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		var r struct {
			Key string `json:"key"`
		}
		if err := json.Unmarshal(sc.Bytes(), &r); err != nil {
			t.Fatalf("dump line %q: %v", sc.Text(), err)
		}
		keys = append(keys, r.Key)
	}
	return keys
}

func sameKeys(t *testing.T, what string, got, want []string) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%s: %d messages, want %d", what, len(got), len(want))
	}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("%s: message %d is %s, want %s", what, i+1, got[i], want[i])
		}
	}
}

// TestInteropJSReplicatesFromGo: a JS peer with legacy replication
// connects to our daemon, fetches our feed of 1,000 messages with
// createHistoryStream, validates and stores every one.
func TestInteropJSReplicatesFromGo(t *testing.T) {
	interop.Kit(t) // fails (not skips) if the kit is unusable; skips only with -short
	const n = 1000
	repo := t.TempDir()
	d := startDaemon(t, repo)
	keys := publishN(t, repo, n)

	// query.js over the network: createHistoryStream from a JS client.
	out, err := interop.Query(t, 60*time.Second, "dump", "--feed", d.id, "--remote", d.tcp)
	if err != nil {
		t.Fatalf("query.js dump --remote: %v", err)
	}
	sameKeys(t, "query.js dump --remote", dumpKeys(t, out), keys)

	// A full JS peer replicating us (legacy replication): it validates
	// every message before storing it.
	jsDir := t.TempDir()
	p := interop.StartPeer(t, "--path", jsDir, "--replication", "legacy", "--replicate", d.id, "--connect", d.tcp, "--progress-ms", "50")
	if _, err := p.WaitEvent(90*time.Second, func(e interop.Event) bool {
		return e.Name() == "progress" && e.String("feed") == d.id && e.Int("seq") >= n
	}); err != nil {
		t.Fatalf("JS peer did not replicate our %d messages: %v\ndaemon stderr:\n%s", n, err, d.stderr.String())
	}
	for _, e := range p.Events() {
		if e.Name() == "error" {
			t.Errorf("JS peer error event: %v", e)
		}
	}
	// The JS peer's own database holds exactly our messages.
	p.Stop()
	stored, err := interop.Query(t, 60*time.Second, "dump", "--feed", d.id, "--path", jsDir)
	if err != nil {
		t.Fatalf("query.js dump --path: %v", err)
	}
	sameKeys(t, "JS peer's stored copy", dumpKeys(t, stored), keys)
	if !strings.Contains(d.stderr.String(), "peer connected") {
		t.Errorf("daemon did not log the JS peer's connection:\n%s", d.stderr.String())
	}
}

// TestInteropWrongNetworkKey: a JS peer with another network key cannot
// connect, and the daemon says so in its log.
func TestInteropWrongNetworkKey(t *testing.T) {
	interop.Kit(t)
	repo := t.TempDir()
	d := startDaemon(t, repo)
	other := "GfSf7hHb8Ah1iv+e+yQDsGk/qsyV5C1JPB0vtBBuyp0="
	p := interop.StartPeer(t, "--replication", "legacy", "--caps", other, "--connect", d.tcp)
	// The JS peer reports an error or never connects; our daemon never
	// sees an authenticated peer.
	if ev, err := p.WaitEvent(8*time.Second, func(e interop.Event) bool { return e.Name() == "connected" }); err == nil {
		t.Fatalf("JS peer with a wrong network key connected: %v", ev)
	}
	if strings.Contains(d.stderr.String(), "peer connected") {
		t.Fatalf("daemon accepted a peer with a wrong network key:\n%s", d.stderr.String())
	}
	if !strings.Contains(d.stderr.String(), "network key") {
		t.Errorf("daemon log does not explain the refused handshake:\n%s", d.stderr.String())
	}
}

// TestInteropGoReplicatesFromJS: our daemon dials a JS peer (sbot
// connect) and fetches its feed with createHistoryStream; every message
// the JS stack signed validates here and is stored with the same id.
func TestInteropGoReplicatesFromJS(t *testing.T) {
	interop.Kit(t)
	const n = 300
	p := interop.StartPeer(t, "--replication", "legacy", "--publish", fmt.Sprint(n))
	if _, err := p.WaitEvent(60*time.Second, func(e interop.Event) bool { return e.Name() == "published" && e.Int("seq") >= n }); err != nil {
		t.Fatal(err)
	}
	repo := t.TempDir()
	d := startDaemon(t, repo)
	out := run(t, "", "connect", "--repo", repo, p.Address)
	if !strings.Contains(string(out), `"connected":true`) {
		t.Fatalf("connect: %s", out)
	}
	deadline := time.Now().Add(60 * time.Second)
	var got []kvt
	for {
		got = lines(t, run(t, "", "hist", "--repo", repo, p.ID))
		if len(got) >= n || time.Now().After(deadline) {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	jsOut, err := interop.Query(t, 60*time.Second, "dump", "--feed", p.ID, "--remote", p.Address)
	if err != nil {
		t.Fatal(err)
	}
	want := dumpKeys(t, jsOut)
	keys := make([]string, len(got))
	for i, r := range got {
		keys[i] = r.Key
	}
	sameKeys(t, "our copy of the JS feed", keys, want)
	// Live: a message published now arrives too.
	if err := p.Send(map[string]any{"cmd": "publish", "n": 1}); err != nil {
		t.Fatal(err)
	}
	for {
		if len(lines(t, run(t, "", "hist", "--repo", repo, p.ID, "--seq", fmt.Sprint(n+1)))) == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("live message %d did not arrive\n%s", n+1, d.stderr.String())
		}
		time.Sleep(100 * time.Millisecond)
	}
	// A bad address is a clear error.
	if _, code, stderr := runCode(t, "", "connect", "--repo", repo, "net:127.0.0.1:1~shs:"+strings.Repeat("A", 43)+"="); code == 0 || !strings.Contains(stderr, "connect") {
		t.Fatalf("connect to nowhere: exit %d %q", code, stderr)
	}
}

// TestInteropEBT: EBT replication with JS peers running ssb-ebt (the JS
// default), both ways, in both directions of dialling: our feed reaches
// the JS peer (validated and stored there), the JS feed reaches us, and a
// message published during the session follows live.
func TestInteropEBT(t *testing.T) {
	interop.Kit(t)
	for _, jsDials := range []bool{true, false} {
		name := "go-dials"
		if jsDials {
			name = "js-dials"
		}
		t.Run(name, func(t *testing.T) {
			const ours, theirs = 500, 200
			repo := t.TempDir()
			d := startDaemon(t, repo)
			keys := publishN(t, repo, ours)
			args := []string{"--replicate", d.id, "--publish", fmt.Sprint(theirs)}
			if jsDials {
				args = append(args, "--connect", d.tcp)
			}
			jsDir := t.TempDir()
			p := interop.StartPeer(t, append([]string{"--path", jsDir, "--progress-ms", "50"}, args...)...)
			if _, err := p.WaitEvent(60*time.Second, func(e interop.Event) bool { return e.Name() == "published" && e.Int("seq") >= theirs }); err != nil {
				t.Fatal(err)
			}
			if !jsDials {
				run(t, "", "connect", "--repo", repo, p.Address)
			}
			if _, err := p.WaitEvent(60*time.Second, func(e interop.Event) bool {
				return e.Name() == "progress" && e.String("feed") == d.id && e.Int("seq") >= ours
			}); err != nil {
				t.Fatalf("JS peer did not get our %d messages over EBT: %v\ndaemon log:\n%s", ours, err, d.stderr.String())
			}
			waitSeq := func(feed string, seq int) {
				deadline := time.Now().Add(60 * time.Second)
				for {
					b, _, _ := runCode(t, "", "call", "--repo", repo, "latestSequence", `"`+feed+`"`)
					out := strings.TrimSpace(string(b))
					if out == fmt.Sprint(seq) {
						return
					}
					if time.Now().After(deadline) {
						t.Fatalf("we have %s of %s, want %d\ndaemon log:\n%s", out, feed, seq, d.stderr.String())
					}
					time.Sleep(100 * time.Millisecond)
				}
			}
			waitSeq(p.ID, theirs)
			// Live, both ways.
			run(t, "", "publish", "--repo", repo, "--type", "post", "--text", "live over ebt")
			if _, err := p.WaitEvent(30*time.Second, func(e interop.Event) bool {
				return e.Name() == "progress" && e.String("feed") == d.id && e.Int("seq") >= ours+1
			}); err != nil {
				t.Fatalf("live message did not reach the JS peer: %v", err)
			}
			p.Send(map[string]any{"cmd": "publish", "n": 1})
			waitSeq(p.ID, theirs+1)
			// The JS peer's database holds exactly our feed.
			p.Stop()
			stored, err := interop.Query(t, 60*time.Second, "dump", "--feed", d.id, "--path", jsDir)
			if err != nil {
				t.Fatal(err)
			}
			got := dumpKeys(t, stored)
			if len(got) != ours+1 {
				t.Fatalf("JS stored %d of our messages, want %d", len(got), ours+1)
			}
			sameKeys(t, "JS copy of our feed", got[:ours], keys)
			if strings.Contains(d.stderr.String(), "invalid message") {
				t.Fatalf("daemon rejected JS messages:\n%s", d.stderr.String())
			}
		})
	}
}

// TestInteropBlobs: blobs move both ways between our daemon and a JS peer
// (ssb-blobs) with the createWants want/have exchange and blobs.get.
func TestInteropBlobs(t *testing.T) {
	interop.Kit(t)
	repo := t.TempDir()
	d := startDaemon(t, repo)
	p := interop.StartPeer(t, "--connect", d.tcp)
	if _, err := p.WaitEvent(30*time.Second, func(e interop.Event) bool { return e.Name() == "connected" }); err != nil {
		t.Fatal(err)
	}

	// JS → Go: the JS peer adds a blob, we want it.
	jsData := bytes.Repeat([]byte("blob from JS "), 20000) // 260 kB: several chunks
	p.Send(map[string]any{"cmd": "blob_add", "data_b64": base64.StdEncoding.EncodeToString(jsData)})
	ev, err := p.WaitEvent(30*time.Second, func(e interop.Event) bool { return e.Name() == "blob_added" })
	if err != nil {
		t.Fatal(err)
	}
	jsID := ev.String("id")
	out := run(t, "", "blobs", "want", "--repo", repo, "--timeout", "30s", jsID)
	if strings.TrimSpace(string(out)) != "true" {
		t.Fatalf("blobs want = %s", out)
	}
	got := run(t, "", "blobs", "get", "--repo", repo, jsID)
	if !bytes.Equal(got, jsData) {
		t.Fatalf("blob from JS: got %d bytes, want %d", len(got), len(jsData))
	}

	// Go → JS: we add a blob, the JS peer wants it and reads it back.
	goData := []byte("a small blob from Go")
	file := filepath.Join(t.TempDir(), "b")
	os.WriteFile(file, goData, 0o600)
	var added struct{ ID string }
	json.Unmarshal(run(t, "", "blobs", "add", "--repo", repo, file), &added)
	p.Send(map[string]any{"cmd": "blob_want", "id": added.ID})
	if _, err := p.WaitEvent(30*time.Second, func(e interop.Event) bool { return e.Name() == "blob_has" && e.String("id") == added.ID }); err != nil {
		t.Fatalf("JS peer did not get our blob: %v\n%s", err, d.stderr.String())
	}
	p.Send(map[string]any{"cmd": "blob_get", "id": added.ID})
	ev, err = p.WaitEvent(30*time.Second, func(e interop.Event) bool { return e.Name() == "blob" && e.String("id") == added.ID })
	if err != nil {
		t.Fatal(err)
	}
	if b, _ := base64.StdEncoding.DecodeString(ev.String("data_b64")); !bytes.Equal(b, goData) {
		t.Fatalf("JS read %q", b)
	}
}
