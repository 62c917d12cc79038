package main

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cask-ssb/cask/feeds"
	"github.com/cask-ssb/cask/sbot"
	"github.com/cask-ssb/cask/sbot/client"
)

// testNode runs a daemon for repo in this process until the test ends or
// stop is called. listen is its TCP address ("off": none).
func testNode(t *testing.T, repo, listen string) (node *sbot.Node, stop func()) {
	t.Helper()
	cfg := sbot.Defaults(repo)
	cfg.Listen = listen
	node, err := sbot.New(sbot.Options{Config: cfg})
	if err != nil {
		t.Fatalf("sbot.New: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- node.Serve(ctx) }()
	for deadline := time.Now().Add(10 * time.Second); ; {
		c, err := client.DialRepo(ctx, repo)
		if err == nil {
			c.Close()
			break
		}
		if time.Now().After(deadline) {
			cancel()
			<-done
			t.Fatalf("daemon did not start: %v", err)
		}
		time.Sleep(10 * time.Millisecond)
	}
	var stopped bool
	stop = func() {
		if !stopped {
			stopped = true
			cancel()
			if err := <-done; err != nil {
				t.Errorf("daemon: %v", err)
			}
		}
	}
	t.Cleanup(stop)
	return node, stop
}

type runResult struct {
	code           int
	stdout, stderr string
}

// sbotRun runs the CLI in this process, through the same cobra root and
// exit-status mapping as the binary.
func sbotRun(t *testing.T, stdin string, args ...string) runResult {
	t.Helper()
	var out, errb bytes.Buffer
	code := run(args, strings.NewReader(stdin), &out, &errb)
	return runResult{code, out.String(), errb.String()}
}

type cliCase struct {
	name       string
	args       []string
	code       int
	stdout     string   // substring of stdout
	stderr     string   // substring of stderr
	notStderr  []string // must not appear in stderr
	stdin      string
	skipRepoFl bool
}

// goNoise is what an error for people must never contain.
var goNoise = []string{"Go value", "Go struct", "interface {}", "publish: publish:", "classic: create", "get: get:", "json: "}

func checkCase(t *testing.T, tc cliCase, r runResult) {
	t.Helper()
	if r.code != tc.code {
		t.Errorf("exit status %d, want %d\nstdout: %s\nstderr: %s", r.code, tc.code, r.stdout, r.stderr)
	}
	if !strings.Contains(r.stdout, tc.stdout) {
		t.Errorf("stdout %q does not contain %q", r.stdout, tc.stdout)
	}
	if !strings.Contains(r.stderr, tc.stderr) {
		t.Errorf("stderr %q does not contain %q", r.stderr, tc.stderr)
	}
	for _, bad := range append(tc.notStderr, goNoise...) {
		if strings.Contains(r.stderr, bad) {
			t.Errorf("stderr %q contains %q", r.stderr, bad)
		}
	}
	if tc.code != 0 && r.stderr == "" {
		t.Errorf("exit status %d without a message", r.code)
	}
}

// TestExitCodes: every subcommand follows one convention: 0 ok, 1 failed
// or not found, 2 bad usage or invalid input; and its errors are for
// people.
func TestExitCodes(t *testing.T) {
	repo := t.TempDir()
	node, _ := testNode(t, repo, "off")
	self := node.ID().String()
	zero32 := base64.StdEncoding.EncodeToString(make([]byte, 32))
	unknownMsg := "%" + zero32 + ".sha256"
	unknownBlob := "&" + zero32 + ".sha256"
	file := filepath.Join(t.TempDir(), "blob.txt")
	if err := os.WriteFile(file, []byte("hello blob"), 0o600); err != nil {
		t.Fatal(err)
	}

	tests := []cliCase{
		{name: "whoami", args: []string{"whoami"}, stdout: self},
		{name: "whoami extra arg", args: []string{"whoami", "x"}, code: 2},
		{name: "unknown flag", args: []string{"whoami", "--bogus"}, code: 2, stderr: "unknown flag"},
		{name: "unknown command", args: []string{"nosuch"}, code: 2, stderr: "unknown command", skipRepoFl: true},
		{name: "version", args: []string{"version"}, stdout: `"version":"` + sbot.Version, skipRepoFl: true},
		{name: "--version", args: []string{"--version"}, stdout: "sbot " + sbot.Version, skipRepoFl: true},
		{name: "status", args: []string{"status"}, stdout: self},
		{name: "publish post", args: []string{"publish", "--type", "post", "--text", "hi"}, stdout: `"text":"hi"`},
		{name: "publish --type without --text", args: []string{"publish", "--type", "post"}, code: 2, stderr: "needs --text"},
		{name: "publish empty --text", args: []string{"publish", "--text", " "}, code: 2, stderr: "--text is empty"},
		{name: "publish array", args: []string{"publish", "[1]"}, code: 2, stderr: "publish: content must be a JSON object, got an array"},
		{name: "publish not JSON", args: []string{"publish", "{nope"}, code: 2, stderr: "not valid JSON"},
		{name: "publish short type", args: []string{"publish", `{"type":"x"}`}, code: 2, stderr: `type "x"`},
		{name: "publish no type", args: []string{"publish", `{"text":"x"}`}, code: 2, stderr: `"type" string`},
		{name: "publish stdin", args: []string{"publish"}, stdin: `{"type":"about","about":"` + self + `","name":"me"}`, stdout: `"name":"me"`},
		{name: "publish two args", args: []string{"publish", "{}", "{}"}, code: 2},
		{name: "get unknown", args: []string{"get", unknownMsg}, code: 1, stderr: "not found"},
		{name: "get not an id", args: []string{"get", "xx"}, code: 2, stderr: "not a message id"},
		{name: "log", args: []string{"log", "--limit", "1"}, stdout: `"key":"%`},
		{name: "hist", args: []string{"hist", self}, stdout: `"sequence":1`},
		{name: "hist not a feed", args: []string{"hist", "xx"}, code: 2, stderr: "not a feed id"},
		{name: "follow not a feed", args: []string{"follow", "xx"}, code: 2},
		{name: "follow", args: []string{"follow", "@" + zero32 + ".ed25519"}, stdout: `"following":true`},
		{name: "unfollow", args: []string{"unfollow", "@" + zero32 + ".ed25519"}, stdout: `"following":false`},
		{name: "block", args: []string{"block", "@" + zero32 + ".ed25519"}, stdout: `"blocking":true`},
		{name: "unblock", args: []string{"unblock", "@" + zero32 + ".ed25519"}, stdout: `"blocking":false`},
		{name: "block two args", args: []string{"block", "a", "b"}, code: 2},
		{name: "connect no args", args: []string{"connect"}, code: 2},
		{name: "status extra arg", args: []string{"status", "x"}, code: 2},
		{name: "connect refused", args: []string{"connect", "net:127.0.0.1:1~shs:" + zero32}, code: 1, stderr: "nothing listens"},
		{name: "blobs add", args: []string{"blobs", "add", file}, stdout: `"size":10`},
		{name: "blobs add missing file", args: []string{"blobs", "add", file + ".missing"}, code: 2, stderr: "blobs add:"},
		{name: "blobs get unknown", args: []string{"blobs", "get", unknownBlob}, code: 1, stderr: "blobs get: blob " + unknownBlob + " not found"},
		{name: "blobs get not an id", args: []string{"blobs", "get", "xx"}, code: 2},
		{name: "blobs has unknown", args: []string{"blobs", "has", unknownBlob}, stdout: "false"},
		{name: "blobs want times out", args: []string{"blobs", "want", unknownBlob, "--timeout", "300ms"}, code: 1, stderr: "waiting for blob " + unknownBlob},
		{name: "call whoami", args: []string{"call", "whoami"}, stdout: self},
		{name: "call no method", args: []string{"call"}, code: 2},
		{name: "call not JSON", args: []string{"call", "latestSequence", "foo"}, code: 2, stderr: "not valid JSON"},
		{name: "call --string", args: []string{"call", "--string", "latestSequence", self}, stdout: "\n"},
		{name: "call extra args", args: []string{"call", "whoami", "1", "2"}, code: 2, stderr: "whoami takes at most 0 argument(s), got 2"},
		{name: "call unknown method", args: []string{"call", "nosuch.method"}, code: 2, stderr: "nosuch.method is not in the daemon's manifest"},
		{name: "call wrong arg type", args: []string{"call", "createHistoryStream", "[1]"}, code: 1, stderr: "want a JSON object, got an array"},
		{name: "timeout 1ns", args: []string{"whoami", "--timeout", "1ns"}, code: 1, stderr: "timed out", notStderr: []string{"no sbot daemon"}},
		{name: "verify no files", args: []string{"verify"}, code: 2, skipRepoFl: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			args := tc.args
			if !tc.skipRepoFl {
				args = append(args, "--repo", repo)
			}
			checkCase(t, tc, sbotRun(t, tc.stdin, args...))
		})
	}
}

// TestHumanMessage: an error text from the daemon or a library is shown
// without layers of Go prefixes and without Go type names.
func TestHumanMessage(t *testing.T) {
	tests := []struct{ in, want string }{
		{"publish: classic: create: content.type is 1 UTF-16 units, want 3..52", "content.type is 1 UTF-16 units, want 3..52"},
		{"message not found: %abc", "message not found: %abc"},
		{"invalid options: json: cannot unmarshal array into Go value of type history.Options", "invalid options: want a JSON object, got an array"},
		{"json: cannot unmarshal string into Go struct field Options.limit of type int", `field "limit": want a number, got a string`},
		{"content must be: json: cannot unmarshal array into Go value of type map[string]interface {}", "content must be: want a JSON object, got an array"},
		{"blocked", "blocked"},
	}
	for _, tc := range tests {
		if got := humanMessage(tc.in); got != tc.want {
			t.Errorf("humanMessage(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

// TestOfflineRead: log, hist and get read a stopped daemon's store; the
// store is released afterwards, so a daemon starts on the repo again.
func TestOfflineRead(t *testing.T) {
	repo := t.TempDir()
	node, stop := testNode(t, repo, "off")
	self := node.ID().String()
	r := sbotRun(t, "", "publish", "--text", "offline", "--repo", repo)
	if r.code != 0 {
		t.Fatalf("publish: %d %s", r.code, r.stderr)
	}
	var rec struct {
		Key string `json:"key"`
	}
	if err := json.Unmarshal([]byte(r.stdout), &rec); err != nil {
		t.Fatal(err)
	}
	stop()

	tests := []cliCase{
		{name: "log", args: []string{"log"}, stdout: `"text":"offline"`},
		{name: "hist", args: []string{"hist", self}, stdout: `"text":"offline"`},
		{name: "get", args: []string{"get", rec.Key}, stdout: `"text":"offline"`},
		{name: "get unknown", args: []string{"get", "%" + base64.StdEncoding.EncodeToString(make([]byte, 32)) + ".sha256"}, code: 1, stderr: "not found"},
		{name: "log --live", args: []string{"log", "--live"}, code: 1, stderr: "--live needs one"},
		{name: "whoami needs the daemon", args: []string{"whoami"}, code: 1, stderr: "no sbot daemon is running for " + repo},
		{name: "publish needs the daemon", args: []string{"publish", "--text", "x"}, code: 1, stderr: "sbot serve --repo " + repo},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			checkCase(t, tc, sbotRun(t, "", append(tc.args, "--repo", repo)...))
		})
	}
	if r := sbotRun(t, "", "log", "--repo", filepath.Join(t.TempDir(), "none")); r.code != 1 || !strings.Contains(r.stderr, "has no store") {
		t.Errorf("log on an empty repo: %d %q", r.code, r.stderr)
	}
	// The offline reads released the repo: a daemon starts on it again.
	testNode(t, repo, "off")
}

// TestServeSettings: out-of-range settings are refused whichever way they
// come, naming the key and the source; so is a secret file others can read.
func TestServeSettings(t *testing.T) {
	tests := []struct {
		name   string
		file   string            // config.toml
		env    map[string]string // environment
		args   []string
		secret os.FileMode // 0: no secret file
		code   int
		stderr string
	}{
		{name: "file max-conns 0", file: "max-conns = 0\n", code: 2, stderr: "max-conns = 0 (from REPO/config.toml): want an integer from 1 to"},
		{name: "file hops -3", file: "hops = -3\n", code: 2, stderr: "hops = -3 (from REPO/config.toml)"},
		{name: "file max-streams -1", file: "max-streams = -1\n", code: 2, stderr: "max-streams = -1 (from REPO/config.toml)"},
		{name: "file wrong type", file: "hops = \"two\"\n", code: 2, stderr: "hops: want a number, got a TOML string"},
		{name: "env hops -3", env: map[string]string{"SSB_HOPS": "-3"}, code: 2, stderr: "hops = -3 (from environment SSB_HOPS)"},
		{name: "env max-conns 0", env: map[string]string{"SSB_MAX_CONNS": "0"}, code: 2, stderr: "max-conns = 0 (from environment SSB_MAX_CONNS)"},
		{name: "env not a number", env: map[string]string{"SSB_MAX_CONNS": "lots"}, code: 2, stderr: `max-conns = "lots" (from environment SSB_MAX_CONNS): want an integer`},
		{name: "flag max-streams -1", args: []string{"--max-streams", "-1"}, code: 2, stderr: "max-streams = -1 (from flag --max-streams)"},
		{name: "flag hops 11", args: []string{"--hops", "11"}, code: 2, stderr: "hops = 11 (from flag --hops)"},
		{name: "file max-outgoing -1", file: "max-outgoing = -1\n", code: 2, stderr: "max-outgoing = -1 (from REPO/config.toml): want an integer from 0 to 1000"},
		{name: "env max-outgoing", env: map[string]string{"SSB_MAX_OUTGOING": "1001"}, code: 2, stderr: "max-outgoing = 1001 (from environment SSB_MAX_OUTGOING)"},
		{name: "flag max-outgoing", args: []string{"--max-outgoing", "-2"}, code: 2, stderr: "max-outgoing = -2 (from flag --max-outgoing)"},
		{name: "flag beats file", file: "max-conns = 0\n", args: []string{"--max-conns", "-5"}, code: 2, stderr: "max-conns = -5 (from flag --max-conns)"},
		{name: "flag listen", args: []string{"--listen", "nowhere"}, code: 2, stderr: `listen = "nowhere" (from flag --listen)`},
		{name: "flag log-level", args: []string{"--log-level", "loud"}, code: 2, stderr: `log-level = "loud" (from flag --log-level)`},
		{name: "secret 0644", secret: 0o644, code: 1, stderr: "chmod 600 REPO/secret"},
		{name: "secret 0640", secret: 0o640, code: 1, stderr: "--allow-insecure-secret"},
		{name: "serve extra arg", args: []string{"x"}, code: 2},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			repo := t.TempDir()
			for _, k := range []string{"SSB_HOPS", "SSB_MAX_CONNS", "SSB_MAX_STREAMS", "SSB_LISTEN", "SSB_LOG_LEVEL", "SSB_ALLOW_INSECURE_SECRET", "SSB_MAX_OUTGOING"} {
				t.Setenv(k, "")
				os.Unsetenv(k)
			}
			for k, v := range tc.env {
				t.Setenv(k, v)
			}
			if tc.file != "" {
				if err := os.WriteFile(filepath.Join(repo, "config.toml"), []byte(tc.file), 0o600); err != nil {
					t.Fatal(err)
				}
			}
			if tc.secret != 0 {
				kp, err := feeds.GenerateKeyPair(nil)
				if err != nil {
					t.Fatal(err)
				}
				path := filepath.Join(repo, "secret")
				if err := feeds.WriteSecret(path, kp); err != nil {
					t.Fatal(err)
				}
				if err := os.Chmod(path, tc.secret); err != nil {
					t.Fatal(err)
				}
			}
			args := append([]string{"serve", "--repo", repo, "--listen", "off"}, tc.args...)
			if tc.args != nil && tc.args[0] == "--listen" {
				args = append([]string{"serve", "--repo", repo}, tc.args...)
			}
			r := sbotRun(t, "", args...)
			want := strings.ReplaceAll(tc.stderr, "REPO", repo)
			if r.code != tc.code || !strings.Contains(r.stderr, want) {
				t.Fatalf("exit %d, stderr %q; want exit %d and %q", r.code, r.stderr, tc.code, want)
			}
		})
	}
}

// TestRemoteHandshakeErrors: with --remote, a wrong network key is told
// apart from a server that does not accept us; the secret handshake does
// not tell a wrong server key from a server that blocks us or is full.
func TestRemoteHandshakeErrors(t *testing.T) {
	repo := t.TempDir()
	node, _ := testNode(t, repo, "127.0.0.1:0")
	kp, err := feeds.GenerateKeyPair(nil)
	if err != nil {
		t.Fatal(err)
	}
	keyFile := filepath.Join(t.TempDir(), "secret")
	if err := feeds.WriteSecret(keyFile, kp); err != nil {
		t.Fatal(err)
	}
	other, err := feeds.GenerateKeyPair(nil)
	if err != nil {
		t.Fatal(err)
	}
	id := node.ID()
	good := "net:" + node.TCPAddr() + "~shs:" + base64.StdEncoding.EncodeToString(id[:])
	wrongKey := "net:" + node.TCPAddr() + "~shs:" + base64.StdEncoding.EncodeToString(other.ID[:])
	otherCaps := base64.StdEncoding.EncodeToString(bytes.Repeat([]byte{7}, 32))
	tests := []cliCase{
		// An anonymous peer may call manifest but not whoami.
		{name: "ok", args: []string{"call", "manifest", "--remote", good}, stdout: "createHistoryStream"},
		{name: "wrong server key", args: []string{"call", "manifest", "--remote", wrongKey}, code: 1, stderr: "did not accept the handshake"},
		{name: "wrong caps", args: []string{"call", "manifest", "--remote", good, "--caps", otherCaps}, code: 1, stderr: "another network key"},
		{name: "bad caps", args: []string{"call", "manifest", "--remote", good, "--caps", "abc"}, code: 2, stderr: "--caps"},
		{name: "bad address", args: []string{"call", "manifest", "--remote", "nowhere"}, code: 2, stderr: "--remote"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			checkCase(t, tc, sbotRun(t, "", append(tc.args, "--repo", repo, "--key", keyFile, "--timeout", "10s")...))
		})
	}

	// The daemon dialling for `sbot connect`: the same distinctions.
	node2, _ := testNode(t, t.TempDir(), "127.0.0.1:0")
	id2 := node2.ID()
	for _, tc := range []cliCase{
		{name: "connect ok", args: []string{"connect", "net:" + node2.TCPAddr() + "~shs:" + base64.StdEncoding.EncodeToString(id2[:])}, stdout: `"connected":true`},
		{name: "connect wrong key", args: []string{"connect", "net:" + node2.TCPAddr() + "~shs:" + base64.StdEncoding.EncodeToString(other.ID[:])}, code: 1, stderr: "connect: the peer did not accept the handshake"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			checkCase(t, tc, sbotRun(t, "", append(tc.args, "--repo", repo, "--timeout", "20s")...))
		})
	}

	// Blocked: the server hangs up at the same step as for a wrong key.
	if r := sbotRun(t, "", "block", kp.ID.String(), "--repo", repo); r.code != 0 {
		t.Fatalf("block: %d %s", r.code, r.stderr)
	}
	checkCase(t, cliCase{code: 1, stderr: "did not accept the handshake"},
		sbotRun(t, "", "call", "manifest", "--remote", good, "--repo", repo, "--key", keyFile, "--timeout", "10s"))
}

// FuzzHumanMessage: error texts come from the daemon or a remote peer;
// cleaning them never panics, never loses the last part of the message
// and never returns nothing for something.
func FuzzHumanMessage(f *testing.F) {
	for _, s := range []string{
		"publish: classic: create: content.type is 1 UTF-16 units, want 3..52",
		"invalid options: json: cannot unmarshal array into Go value of type history.Options",
		"json: cannot unmarshal string into Go struct field Options.limit of type int",
		"a: b: ", ": ", "x: ", "",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, msg string) {
		got := humanMessage(msg)
		if msg != "" && got == "" {
			t.Fatalf("humanMessage(%q) is empty", msg)
		}
		if !strings.Contains(msg, "cannot unmarshal") && !strings.HasSuffix(msg, got) {
			t.Fatalf("humanMessage(%q) = %q, not a suffix", msg, got)
		}
		_ = humanRemoteDialMessage(msg)
	})
}
