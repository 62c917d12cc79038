// Package interop starts real JavaScript SSB peers from the project's JS
// interop harness (interop/js at the module root, or $SSB_INTEROP_DIR) for
// tests and benchmarks.
//
// Peers listen on 127.0.0.1 only. A test that cannot start a JS peer fails;
// only under `go test -short` are interop tests skipped. The kit must have
// its node_modules installed (`make test` runs scripts/interop-kit.sh, which
// runs npm ci in interop/js).
//
// This package is for tests: it never talks to the network itself.
package interop

import (
	"bufio"
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"
)

// Kit returns the directory of the interop kit, with node_modules installed.
// It skips the test under -short and fails it when the kit is unusable.
func Kit(t testing.TB) string {
	t.Helper()
	if testing.Short() {
		t.Skip("interop test: skipped with -short (needs Node.js and the JS interop kit)")
	}
	dir, err := KitDir()
	if err != nil {
		t.Fatalf("interop kit: %v", err)
	}
	return dir
}

// KitDir finds the interop kit without a testing.TB (for benchmark tools):
// $SSB_INTEROP_DIR when set, else <module root>/interop/js. It fails when the
// kit has no peer.js or no node_modules, or node is not on PATH.
func KitDir() (string, error) {
	dir := os.Getenv("SSB_INTEROP_DIR")
	if dir == "" {
		root, err := moduleRoot()
		if err != nil {
			return "", err
		}
		dir = filepath.Join(root, "interop", "js")
	}
	dir, err := filepath.Abs(dir)
	if err != nil {
		return "", fmt.Errorf("interop kit path %q: %w", dir, err)
	}
	if _, err := os.Stat(filepath.Join(dir, "peer.js")); err != nil {
		return "", fmt.Errorf("no peer.js in %s (SSB_INTEROP_DIR overrides the default interop/js): %w", dir, err)
	}
	if _, err := os.Stat(filepath.Join(dir, "node_modules")); err != nil {
		return "", fmt.Errorf("kit at %s has no node_modules: run `make test` (or `npm ci` in %s): %w", dir, dir, err)
	}
	if _, err := exec.LookPath("node"); err != nil {
		return "", fmt.Errorf("node not found on PATH (the interop tests need Node.js 18 or later): %w", err)
	}
	return dir, nil
}

func moduleRoot() (string, error) {
	_, file, _, ok := runtime.Caller(0)
	if !ok {
		return "", errors.New("cannot locate module root")
	}
	// file is .../internal/interop/interop.go
	return filepath.Clean(filepath.Join(filepath.Dir(file), "..", "..")), nil
}

// Event is one JSON line printed by a JS peer.
type Event map[string]any

// Name returns the event's "event" field.
func (e Event) Name() string { s, _ := e["event"].(string); return s }

// String returns a field as a string ("" if absent).
func (e Event) String(k string) string { s, _ := e[k].(string); return s }

// Int returns a numeric field as int64 (0 if absent).
func (e Event) Int(k string) int64 { f, _ := e[k].(float64); return int64(f) }

// Peer is a running peer.js child process.
type Peer struct {
	ID      string // @...=.ed25519
	PubKey  ed25519.PublicKey
	Address string // net:127.0.0.1:PORT~shs:KEY
	Host    string
	Port    int
	Path    string // data directory
	Ready   Event
	// WSAddress is ws://127.0.0.1:PORT~shs:KEY when the peer was started
	// with --ws-port, else empty.
	WSAddress string

	cmd    *exec.Cmd
	stdin  io.WriteCloser
	mu     sync.Mutex
	events []Event
	notify chan struct{}
	stderr *tailBuffer
	exited chan struct{}
	name   string
}

// StartPeer runs `node peer.js --path <tempdir> args...` and waits for its
// ready event (60 s). The peer is stopped when the test ends. Pass --path to
// choose the data directory yourself.
func StartPeer(t testing.TB, args ...string) *Peer {
	t.Helper()
	kit := Kit(t)
	hasPath := false
	for _, a := range args {
		if a == "--path" {
			hasPath = true
		}
	}
	if !hasPath {
		args = append([]string{"--path", t.TempDir()}, args...)
	}
	p, err := Start(kit, "peer.js", args...)
	if err != nil {
		t.Fatalf("start JS peer: %v", err)
	}
	t.Cleanup(func() { p.Stop() })
	ev, err := p.WaitEvent(60*time.Second, func(e Event) bool { return e.Name() == "ready" })
	if err != nil {
		t.Fatalf("JS peer did not become ready: %v", err)
	}
	p.fillReady(ev)
	return p
}

// Start runs a kit script (peer.js, room1-server.js, ...) with stdin watched
// (--stdin on is added for peer.js) and returns at once.
func Start(kit, script string, args ...string) (*Peer, error) {
	if script == "peer.js" {
		args = append(args, "--stdin", "on")
	}
	cmd := exec.Command("node", append([]string{filepath.Join(kit, script)}, args...)...)
	cmd.Dir = kit
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return nil, err
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	p := &Peer{cmd: cmd, stdin: stdin, notify: make(chan struct{}), stderr: &tailBuffer{max: 8192}, exited: make(chan struct{}), name: script}
	cmd.Stderr = p.stderr
	for i, a := range args {
		if a == "--path" && i+1 < len(args) {
			p.Path = args[i+1]
		}
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start node %s: %w", script, err)
	}
	go p.readEvents(stdout)
	return p, nil
}

func (p *Peer) fillReady(ev Event) {
	p.Ready = ev
	p.ID = ev.String("id")
	p.Address = ev.String("address")
	p.WSAddress = ev.String("ws_address")
	p.Host = ev.String("host")
	p.Port = int(ev.Int("port"))
	if p.Path == "" {
		p.Path = ev.String("path")
	}
	if s := strings.TrimSuffix(strings.TrimPrefix(p.ID, "@"), ".ed25519"); s != "" {
		if b, err := base64.StdEncoding.DecodeString(s); err == nil && len(b) == 32 {
			p.PubKey = ed25519.PublicKey(b)
		}
	}
}

func (p *Peer) readEvents(r io.Reader) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 1<<20), 16<<20)
	for sc.Scan() {
		var ev Event
		if json.Unmarshal(sc.Bytes(), &ev) != nil {
			continue
		}
		p.mu.Lock()
		p.events = append(p.events, ev)
		close(p.notify)
		p.notify = make(chan struct{})
		p.mu.Unlock()
	}
	_ = p.cmd.Wait()
	close(p.exited)
	p.mu.Lock()
	close(p.notify)
	p.notify = make(chan struct{})
	p.mu.Unlock()
}

// Events returns a copy of every event seen so far.
func (p *Peer) Events() []Event {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]Event(nil), p.events...)
}

// WaitEvent waits for an event (already seen or future) matching pred.
func (p *Peer) WaitEvent(timeout time.Duration, pred func(Event) bool) (Event, error) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	return p.WaitEventContext(ctx, pred)
}

// WaitEventContext is WaitEvent bounded by ctx.
func (p *Peer) WaitEventContext(ctx context.Context, pred func(Event) bool) (Event, error) {
	seen := 0
	for {
		p.mu.Lock()
		evs := p.events[seen:]
		seen = len(p.events)
		ch := p.notify
		p.mu.Unlock()
		for _, e := range evs {
			if pred(e) {
				return e, nil
			}
		}
		select {
		case <-p.exited:
			// drain events that arrived with the exit
			p.mu.Lock()
			rest := p.events[seen:]
			p.mu.Unlock()
			for _, e := range rest {
				if pred(e) {
					return e, nil
				}
			}
			return nil, fmt.Errorf("%s exited (%v); stderr tail: %s", p.name, p.cmd.ProcessState, p.stderr.String())
		case <-ctx.Done():
			return nil, fmt.Errorf("%s: waiting for event: %w; stderr tail: %s", p.name, ctx.Err(), p.stderr.String())
		case <-ch:
		}
	}
}

// Send writes one JSON command line to the peer's stdin.
func (p *Peer) Send(cmd any) error {
	b, err := json.Marshal(cmd)
	if err != nil {
		return err
	}
	_, err = p.stdin.Write(append(b, '\n'))
	return err
}

// Stderr returns the tail of the peer's stderr.
func (p *Peer) Stderr() string { return p.stderr.String() }

// Stop closes stdin (the peer stops cleanly) and kills it after 5 s.
func (p *Peer) Stop() {
	_ = p.stdin.Close()
	select {
	case <-p.exited:
	case <-time.After(5 * time.Second):
		_ = p.cmd.Process.Kill()
		<-p.exited
	}
}

// Query runs `node query.js args...` and returns its stdout.
func Query(t testing.TB, timeout time.Duration, args ...string) ([]byte, error) {
	t.Helper()
	kit := Kit(t)
	return Node(kit, timeout, "query.js", args...)
}

// Node runs a script of the kit (or an absolute path) with node and returns
// stdout; the error includes stderr.
func Node(kit string, timeout time.Duration, script string, args ...string) ([]byte, error) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	if !filepath.IsAbs(script) {
		script = filepath.Join(kit, script)
	}
	cmd := exec.CommandContext(ctx, "node", append([]string{script}, args...)...)
	cmd.Dir = kit
	cmd.Env = append(os.Environ(), "SSB_INTEROP_DIR="+kit, "NODE_PATH="+filepath.Join(kit, "node_modules"))
	// stdout goes to a file, not a pipe: node writes to pipes
	// asynchronously and the kit's scripts call process.exit, which would
	// cut the output short. Writes to files are synchronous.
	outFile, err := os.CreateTemp("", "cask-node-out-")
	if err != nil {
		return nil, err
	}
	defer os.Remove(outFile.Name())
	defer outFile.Close()
	var stderr bytes.Buffer
	cmd.Stdout = outFile
	cmd.Stderr = &stderr
	err = cmd.Run()
	stdout, rerr := os.ReadFile(outFile.Name())
	if rerr != nil {
		return nil, rerr
	}
	if err != nil {
		return stdout, fmt.Errorf("node %s %s: %w; stderr: %s", filepath.Base(script), strings.Join(args, " "), err, tail(stderr.String(), 4000))
	}
	return stdout, nil
}

func tail(s string, n int) string {
	if len(s) > n {
		return s[len(s)-n:]
	}
	return s
}

type tailBuffer struct {
	mu  sync.Mutex
	buf []byte
	max int
}

func (b *tailBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.buf = append(b.buf, p...)
	if len(b.buf) > b.max {
		b.buf = append([]byte(nil), b.buf[len(b.buf)-b.max:]...)
	}
	return len(p), nil
}

func (b *tailBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return string(b.buf)
}
