package sbot_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/cask-ssb/cask/feeds"
	"github.com/cask-ssb/cask/sbot"
	"github.com/cask-ssb/cask/sbot/client"
)

// sbotBuild is the sbot binary the end-to-end tests run, built by the
// first test that asks for it: a test binary that runs none of them (a
// -run filter, every fuzzing worker) does not spend a build on it.
var sbotBuild struct {
	once      sync.Once
	dir, path string
	err       error
}

// sbotBinary returns the path of the sbot binary, building it once.
func sbotBinary(t testing.TB) string {
	t.Helper()
	b := &sbotBuild
	b.once.Do(func() {
		if b.dir, b.err = os.MkdirTemp("", "sbot-bin-"); b.err != nil {
			return
		}
		b.path = filepath.Join(b.dir, "sbot")
		if out, err := exec.Command("go", "build", "-o", b.path, "../cmd/sbot").CombinedOutput(); err != nil {
			b.err = fmt.Errorf("build sbot: %w\n%s", err, out)
		}
	})
	if b.err != nil {
		t.Fatal(b.err)
	}
	return b.path
}

func TestMain(m *testing.M) {
	code := m.Run()
	if sbotBuild.dir != "" {
		os.RemoveAll(sbotBuild.dir)
	}
	os.Exit(code)
}

// daemon is a running `sbot serve` process.
type daemon struct {
	repo   string
	cmd    *exec.Cmd
	stderr *syncWriter
	exited chan error
	id     string
	tcp    string // multiserver address
}

func startDaemon(t *testing.T, repo string, extra ...string) *daemon {
	t.Helper()
	args := append([]string{"serve", "--repo", repo, "--listen", "127.0.0.1:0"}, extra...)
	cmd := exec.Command(sbotBinary(t), args...)
	d := &daemon{repo: repo, cmd: cmd, stderr: &syncWriter{w: &bytes.Buffer{}}, exited: make(chan error, 1)}
	cmd.Stderr = d.stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { d.exited <- cmd.Wait() }()
	t.Cleanup(func() {
		if cmd.ProcessState == nil {
			cmd.Process.Kill()
			<-d.exited
		}
	})
	// Wait for the socket, then read the listen address from status.
	deadline := time.Now().Add(20 * time.Second)
	for {
		out, err := exec.Command(sbotBinary(t), "status", "--repo", repo).Output()
		if err == nil {
			var st struct {
				ID     string   `json:"id"`
				Listen []string `json:"listen"`
			}
			if err := json.Unmarshal(out, &st); err != nil {
				t.Fatalf("status output %q: %v", out, err)
			}
			d.id = st.ID
			for _, l := range st.Listen {
				if strings.HasPrefix(l, "net:") {
					d.tcp = l
				}
			}
			return d
		}
		if time.Now().After(deadline) {
			t.Fatalf("daemon did not come up: %v\nstderr:\n%s", err, d.stderr.String())
		}
		select {
		case err := <-d.exited:
			t.Fatalf("daemon exited: %v\nstderr:\n%s", err, d.stderr.String())
		case <-time.After(50 * time.Millisecond):
		}
	}
}

func (d *daemon) stop(t *testing.T) {
	t.Helper()
	d.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-d.exited:
		if err != nil {
			t.Fatalf("daemon exit after SIGTERM: %v\nstderr:\n%s", err, d.stderr.String())
		}
	case <-time.After(10 * time.Second):
		t.Fatalf("daemon did not stop within 10s of SIGTERM\nstderr:\n%s", d.stderr.String())
	}
}

type syncWriter struct {
	mu sync.Mutex
	w  *bytes.Buffer
}

func (s *syncWriter) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.w.String()
}

func (s *syncWriter) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.w.Write(p)
}

// run runs the CLI and returns stdout; it fails the test on a non-zero exit.
func run(t *testing.T, stdin string, args ...string) []byte {
	t.Helper()
	out, code, stderr := runCode(t, stdin, args...)
	if code != 0 {
		t.Fatalf("sbot %s: exit %d\nstderr: %s\nstdout: %s", strings.Join(args, " "), code, stderr, out)
	}
	return out
}

func runCode(t *testing.T, stdin string, args ...string) ([]byte, int, string) {
	t.Helper()
	cmd := exec.Command(sbotBinary(t), args...)
	cmd.Stdin = strings.NewReader(stdin)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return stdout.Bytes(), code, stderr.String()
}

type kvt struct {
	Key   string `json:"key"`
	Value struct {
		Previous *string         `json:"previous"`
		Author   string          `json:"author"`
		Sequence int64           `json:"sequence"`
		Content  json.RawMessage `json:"content"`
	} `json:"value"`
	Timestamp float64 `json:"timestamp"`
}

func lines(t *testing.T, out []byte) []kvt {
	t.Helper()
	var res []kvt
	sc := bufio.NewScanner(bytes.NewReader(out))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		var r kvt
		if err := json.Unmarshal(sc.Bytes(), &r); err != nil {
			t.Fatalf("line %q: %v", sc.Text(), err)
		}
		res = append(res, r)
	}
	return res
}

func TestEndToEndCLI(t *testing.T) {
	repo := t.TempDir()
	d := startDaemon(t, repo)

	fi, err := os.Stat(filepath.Join(repo, "socket"))
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode()&os.ModeSocket == 0 || fi.Mode().Perm() != 0o600 {
		t.Fatalf("socket mode %v, want a socket with 0600", fi.Mode())
	}
	if fi, err := os.Stat(filepath.Join(repo, "secret")); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("secret: %v mode %v, want 0600", err, fi.Mode())
	}

	var who struct{ ID string }
	if err := json.Unmarshal(run(t, "", "whoami", "--repo", repo), &who); err != nil || who.ID != d.id {
		t.Fatalf("whoami = %+v (%v), want %s", who, err, d.id)
	}

	// Three ways to publish: flags, argument, stdin.
	first := lines(t, run(t, "", "publish", "--repo", repo, "--type", "post", "--text", "hello from the CLI"))
	second := lines(t, run(t, "", "publish", "--repo", repo, `{"type":"about","about":"`+d.id+`","name":"cask","10":1,"2":2}`))
	third := lines(t, run(t, `{"type":"vote","vote":{"link":"`+first[0].Key+`","value":1}}`, "publish", "--repo", repo))
	published := []kvt{first[0], second[0], third[0]}
	for i, p := range published {
		if p.Value.Sequence != int64(i+1) || p.Value.Author != d.id {
			t.Fatalf("publish %d: got %+v", i, p)
		}
	}
	if string(second[0].Value.Content) != `{"2":2,"10":1,"type":"about","about":"`+d.id+`","name":"cask"}` {
		t.Fatalf("content not in V8 key order: %s", second[0].Value.Content)
	}

	log := lines(t, run(t, "", "log", "--repo", repo))
	if len(log) != 3 {
		t.Fatalf("log has %d records, want 3", len(log))
	}
	for i := range log {
		if log[i].Key != published[i].Key {
			t.Fatalf("log[%d] = %s, want %s", i, log[i].Key, published[i].Key)
		}
	}
	rev := lines(t, run(t, "", "log", "--repo", repo, "--reverse", "--limit", "2"))
	if len(rev) != 2 || rev[0].Key != published[2].Key || rev[1].Key != published[1].Key {
		t.Fatalf("log --reverse --limit 2 = %+v", rev)
	}
	hist := lines(t, run(t, "", "hist", "--repo", repo, d.id, "--seq", "2"))
	if len(hist) != 2 || hist[0].Key != published[1].Key || hist[1].Key != published[2].Key {
		t.Fatalf("hist --seq 2 = %+v", hist)
	}
	got := run(t, "", "get", "--repo", repo, published[1].Key)
	var val struct {
		Sequence int64 `json:"sequence"`
	}
	if err := json.Unmarshal(got, &val); err != nil || val.Sequence != 2 {
		t.Fatalf("get = %s (%v)", got, err)
	}
	if out := strings.TrimSpace(string(run(t, "", "call", "--repo", repo, "latestSequence", `"`+d.id+`"`))); out != "3" {
		t.Fatalf("call latestSequence = %q, want 3", out)
	}
	callLog := lines(t, run(t, "", "call", "--repo", repo, "createLogStream", `{"limit":1}`))
	if len(callLog) != 1 || callLog[0].Key != published[0].Key {
		t.Fatalf("call createLogStream = %+v", callLog)
	}
	// The log round-trips through verify.
	verified := run(t, string(run(t, "", "log", "--repo", repo)), "verify", "-")
	if !strings.Contains(string(verified), `"valid":3,"invalid":0`) {
		t.Fatalf("sbot log | sbot verify - = %s", verified)
	}

	// Errors: clear message, non-zero exit.
	if _, code, stderr := runCode(t, "", "get", "--repo", repo, "%notanid"); code == 0 || !strings.Contains(stderr, "not a message id") {
		t.Fatalf("get bad id: exit %d stderr %q", code, stderr)
	}
	if _, code, stderr := runCode(t, "", "call", "--repo", repo, "nosuch.method"); code == 0 || !strings.Contains(stderr, "not in the daemon's manifest") {
		t.Fatalf("call unknown: exit %d stderr %q", code, stderr)
	}
	if _, code, stderr := runCode(t, "not json", "publish", "--repo", repo); code != 2 || !strings.Contains(stderr, "JSON object") {
		t.Fatalf("publish bad json: exit %d stderr %q", code, stderr)
	}

	// Follow and block publish contact messages in the JS shape.
	other := "@" + strings.Repeat("A", 43) + "=.ed25519"
	for _, tc := range []struct{ cmd, want string }{
		{"follow", `{"type":"contact","contact":"` + other + `","following":true}`},
		{"unfollow", `{"type":"contact","contact":"` + other + `","following":false}`},
		{"block", `{"type":"contact","contact":"` + other + `","blocking":true}`},
	} {
		r := lines(t, run(t, "", tc.cmd, "--repo", repo, other))
		if string(r[0].Value.Content) != tc.want {
			t.Errorf("%s published %s, want %s", tc.cmd, r[0].Value.Content, tc.want)
		}
	}
	var blocking bool
	if err := json.Unmarshal(run(t, "", "call", "--repo", repo, "friends.isBlocking", `{"source":"`+d.id+`","dest":"`+other+`"}`), &blocking); err != nil || !blocking {
		t.Errorf("friends.isBlocking after block: %v %v", blocking, err)
	}

	// A second daemon on the same repo refuses to start.
	out, code, stderr := runCode(t, "", "serve", "--repo", repo, "--listen", "127.0.0.1:0")
	if code == 0 || !strings.Contains(stderr, "in use") {
		t.Fatalf("second daemon: exit %d, stderr %q, stdout %q", code, stderr, out)
	}

	d.stop(t)
	if _, err := os.Stat(filepath.Join(repo, "socket")); !os.IsNotExist(err) {
		t.Fatalf("socket left behind after shutdown: %v", err)
	}
	if _, code, stderr := runCode(t, "", "whoami", "--repo", repo); code == 0 || !strings.Contains(stderr, "no sbot daemon") {
		t.Fatalf("whoami without daemon: exit %d stderr %q", code, stderr)
	}
}

func TestTCPPermissions(t *testing.T) {
	repo := t.TempDir()
	d := startDaemon(t, repo)
	run(t, "", "publish", "--repo", repo, "--type", "post", "--text", "x")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	caps, _ := sbot.Defaults(repo).CapsKey()
	other, err := feeds.GenerateKeyPair(nil)
	if err != nil {
		t.Fatal(err)
	}
	c, err := client.DialTCP(ctx, d.tcp, other, caps)
	if err != nil {
		t.Fatalf("dial as another peer: %v", err)
	}
	defer c.Close()
	// Anonymous read methods work.
	n := 0
	for _, err := range c.History(ctx, map[string]any{"id": d.id}) {
		if err != nil {
			t.Fatal(err)
		}
		n++
	}
	if n != 1 {
		t.Fatalf("createHistoryStream as peer: %d items, want 1", n)
	}
	// Owner-only methods answer with the JS error text.
	for _, tc := range []struct{ method, want string }{
		{"publish", "method:publish is not in list of allowed methods"},
		{"status", "method:status is not in list of allowed methods"},
		{"add", "method:add is not in list of allowed methods"},
		{"whoami", "method:whoami is not in list of allowed methods"},
	} {
		var out json.RawMessage
		err := c.Endpoint().Async(ctx, &out, []string{tc.method}, map[string]any{"type": "post", "text": "evil"})
		if err == nil || err.Error() != tc.want && !strings.HasSuffix(err.Error(), tc.want) {
			t.Errorf("%s as peer: err %v, want %q", tc.method, err, tc.want)
		}
	}
	for _, err := range c.Log(ctx, nil) {
		if err == nil || !strings.Contains(err.Error(), "method:createLogStream is not in list of allowed methods") {
			t.Errorf("createLogStream as peer: %v", err)
		}
		break
	}
	// Still one message: nothing was published.
	if out := strings.TrimSpace(string(run(t, "", "call", "--repo", repo, "--string", "latestSequence", d.id))); out != "1" {
		t.Fatalf("latestSequence = %s after refused publishes", out)
	}

	// Over TCP with the node's own key: the owner, allowed to publish.
	own, err := feeds.ReadSecret(filepath.Join(repo, "secret"))
	if err != nil {
		t.Fatal(err)
	}
	oc, err := client.DialTCP(ctx, d.tcp, own, caps)
	if err != nil {
		t.Fatal(err)
	}
	defer oc.Close()
	if _, err := oc.Publish(ctx, map[string]any{"type": "post", "text": "over tcp"}); err != nil {
		t.Fatalf("publish as owner over TCP: %v", err)
	}
	out := run(t, "", "publish", "--remote", d.tcp, "--key", filepath.Join(repo, "secret"), "--type", "post", "--text", "cli over tcp")
	if lines(t, out)[0].Value.Sequence != 3 {
		t.Fatalf("CLI --remote publish: %s", out)
	}

	// A wrong network key fails the handshake.
	var wrong [32]byte
	copy(wrong[:], "a different network key.........")
	if _, err := client.DialTCP(ctx, d.tcp, other, wrong); err == nil {
		t.Fatal("handshake with a wrong network key succeeded")
	}
}

// TestSIGTERMDuringPublishes: every publish acknowledged before SIGTERM is
// in the log after restart.
func TestSIGTERMDuringPublishes(t *testing.T) { testStopDuringPublishes(t, syscall.SIGTERM) }

// TestSIGKILLDuringPublishes: the same with kill -9: the daemon gets no
// chance to clean up, yet every acknowledged publish survives (and the
// stale socket file does not stop the restart).
func TestSIGKILLDuringPublishes(t *testing.T) { testStopDuringPublishes(t, syscall.SIGKILL) }

func testStopDuringPublishes(t *testing.T, sig syscall.Signal) {
	repo := t.TempDir()
	d := startDaemon(t, repo)
	ctx := context.Background()
	var mu sync.Mutex
	var acked []string
	var wg sync.WaitGroup
	for w := 0; w < 8; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c, err := client.DialRepo(ctx, repo)
			if err != nil {
				return
			}
			defer c.Close()
			for i := 0; ; i++ {
				out, err := c.Publish(ctx, map[string]any{"type": "post", "text": fmt.Sprint("n", i)})
				if err != nil {
					return
				}
				var r kvt
				if json.Unmarshal(out, &r) != nil {
					t.Errorf("bad publish reply %s", out)
					return
				}
				mu.Lock()
				acked = append(acked, r.Key)
				mu.Unlock()
			}
		}()
	}
	time.Sleep(700 * time.Millisecond)
	start := time.Now()
	if sig == syscall.SIGTERM {
		d.stop(t)
		if el := time.Since(start); el > 5*time.Second {
			t.Errorf("shutdown took %v", el)
		}
	} else {
		d.cmd.Process.Signal(sig)
		<-d.exited
	}
	wg.Wait()
	mu.Lock()
	defer mu.Unlock()
	if len(acked) < 10 {
		t.Fatalf("only %d publishes acknowledged before %v", len(acked), sig)
	}
	d2 := startDaemon(t, repo)
	logged := map[string]bool{}
	recs := lines(t, run(t, "", "log", "--repo", repo))
	for _, r := range recs {
		logged[r.Key] = true
	}
	for _, k := range acked {
		if !logged[k] {
			t.Fatalf("acknowledged publish %s missing after restart (%d acked, %d logged)", k, len(acked), len(recs))
		}
	}
	// The feed is a valid chain.
	v := run(t, string(run(t, "", "hist", "--repo", repo, d2.id)), "verify", "-")
	if !strings.Contains(string(v), `"invalid":0`) {
		t.Fatalf("feed after restart does not verify: %s", v)
	}
	t.Logf("%d publishes acknowledged before %v, %d messages after restart", len(acked), sig, len(recs))
}

// TestMaxConns: anonymous peers get their share of --max-conns (one of
// two here); the next one is told the daemon is full (a call error it can
// tell from a refused handshake), with a log line on our side; the owner
// still gets in.
func TestMaxConns(t *testing.T) {
	repo := t.TempDir()
	d := startDaemon(t, repo, "--max-conns", "2")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	caps, _ := sbot.Defaults(repo).CapsKey()
	call := func(c *client.Client) error {
		var has bool
		return c.Endpoint().Async(ctx, &has, []string{"blobs", "has"}, "&"+strings.Repeat("A", 43)+"=.sha256")
	}
	kp, _ := feeds.GenerateKeyPair(nil)
	first, err := client.DialTCP(ctx, d.tcp, kp, caps)
	if err != nil {
		t.Fatal(err)
	}
	defer first.Close()
	if err := call(first); err != nil {
		t.Fatalf("first anonymous peer: %v", err)
	}
	kp2, _ := feeds.GenerateKeyPair(nil)
	second, err := client.DialTCP(ctx, d.tcp, kp2, caps)
	if err != nil {
		t.Fatalf("second peer: handshake: %v", err)
	}
	defer second.Close()
	if err := call(second); !sbot.IsFull(err) {
		t.Fatalf("second anonymous peer with --max-conns 2: %v, want a server full error", err)
	}
	own, err := feeds.ReadSecret(filepath.Join(repo, "secret"))
	if err != nil {
		t.Fatal(err)
	}
	oc, err := client.DialTCP(ctx, d.tcp, own, caps)
	if err != nil {
		t.Fatalf("the owner was refused: %v", err)
	}
	if _, err := oc.Whoami(ctx); err != nil {
		t.Fatalf("the owner was refused: %v", err)
	}
	oc.Close()
	if !strings.Contains(d.stderr.String(), "too many peers") {
		t.Errorf("no log line for the refused peer:\n%s", d.stderr.String())
	}
}

// TestLiveCLI: `sbot log --live` and `sbot hist --live` print new messages
// as they are published, and Ctrl-C ends them cleanly (exit 0).
func TestLiveCLI(t *testing.T) {
	repo := t.TempDir()
	d := startDaemon(t, repo)
	run(t, "", "publish", "--repo", repo, "--type", "post", "--text", "old")
	for _, args := range [][]string{{"log", "--repo", repo, "--live"}, {"hist", "--repo", repo, d.id, "--live", "--seq", "2"}} {
		t.Run(args[0], func(t *testing.T) {
			cmd := exec.Command(sbotBinary(t), args...)
			stdout, err := cmd.StdoutPipe()
			if err != nil {
				t.Fatal(err)
			}
			var stderr bytes.Buffer
			cmd.Stderr = &stderr
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			linesc := make(chan kvt, 10)
			go func() {
				sc := bufio.NewScanner(stdout)
				for sc.Scan() {
					var r kvt
					if json.Unmarshal(sc.Bytes(), &r) == nil {
						linesc <- r
					}
				}
				close(linesc)
			}()
			time.Sleep(300 * time.Millisecond) // let the stream start
			pub := lines(t, run(t, "", "publish", "--repo", repo, "--type", "post", "--text", "live "+args[0]))[0]
			deadline := time.After(10 * time.Second)
			found := false
			for !found {
				select {
				case r, ok := <-linesc:
					if !ok {
						t.Fatalf("stream ended; stderr: %s", stderr.String())
					}
					found = r.Key == pub.Key
				case <-deadline:
					t.Fatalf("live message %s not printed within 10s", pub.Key)
				}
			}
			cmd.Process.Signal(os.Interrupt)
			if err := cmd.Wait(); err != nil {
				t.Fatalf("after Ctrl-C: %v; stderr: %s", err, stderr.String())
			}
		})
	}
}
