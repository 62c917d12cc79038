package sbot

import (
	"context"
	"errors"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/cask-ssb/cask/sbot/client"
)

// startNodeLogged is startNode with an info-level text log into buf.
func startNodeLogged(t *testing.T, buf *syncBuf) (*Node, *client.Client) {
	return startNodeLevel(t, buf, slog.LevelInfo)
}

func startNodeLevel(t *testing.T, buf *syncBuf, level slog.Level) (*Node, *client.Client) {
	t.Helper()
	cfg := Defaults(t.TempDir())
	cfg.Listen = "127.0.0.1:0"
	n, err := New(Options{Config: cfg, Logger: slog.New(slog.NewTextHandler(buf, &slog.HandlerOptions{Level: level}))})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- n.Serve(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("serve: %v", err)
		}
	})
	for deadline := time.Now().Add(10 * time.Second); ; {
		c, err := client.DialRepo(context.Background(), cfg.Repo)
		if err == nil {
			t.Cleanup(func() { c.Close() })
			return n, c
		}
		if time.Now().After(deadline) {
			t.Fatal(err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func waitLog(t *testing.T, buf *syncBuf, parts ...string) string {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); ; {
		for _, line := range strings.Split(buf.String(), "\n") {
			ok := true
			for _, p := range parts {
				ok = ok && strings.Contains(line, p)
			}
			if ok {
				return line
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("no log line with %q in:\n%s", parts, buf.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestPeerLogLines: at info, one line when a peer connects and one when it
// disconnects, each with the replication kind; local CLI calls log nothing.
func TestPeerLogLines(t *testing.T) {
	var bufA, bufB syncBuf
	a, ca := startNodeLogged(t, &bufA)
	b, _ := startNodeLogged(t, &bufB)
	ctx := context.Background()

	// CLI-style calls on the unix socket: no log lines at info.
	before := bufA.String()
	for range 5 {
		c, err := client.DialRepo(ctx, a.cfg.Repo)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := c.Whoami(ctx); err != nil {
			t.Fatal(err)
		}
		c.Close()
	}
	if _, err := ca.Publish(ctx, map[string]any{"type": "post", "text": "hi"}); err != nil {
		t.Fatal(err)
	}
	time.Sleep(100 * time.Millisecond)
	if extra := strings.TrimPrefix(bufA.String(), before); extra != "" {
		t.Errorf("local calls logged at info:\n%s", extra)
	}

	if err := a.ConnectAddress(ctx, tcpAddr(t, b)); err != nil {
		t.Fatal(err)
	}
	waitLog(t, &bufA, "peer connected", "direction=out", "replication=ebt", b.ID().String())
	waitLog(t, &bufB, "peer connected", "direction=in", "replication=ebt", a.ID().String())
	waitLatest(t, b, a.ID(), 1)
	if n := strings.Count(bufA.String(), "peer connected"); n != 1 {
		t.Errorf("%d connect lines on the dialling side, want 1:\n%s", n, bufA.String())
	}
	a.drop(b.ID(), errors.New("test"))
	waitLog(t, &bufA, "peer disconnected", "replication=ebt", "duration=")
	waitLog(t, &bufB, "peer disconnected", "replication=ebt")
	for _, buf := range []*syncBuf{&bufA, &bufB} {
		if s := buf.String(); strings.Contains(s, "goodbye not sent") || strings.Contains(s, "broken pipe") {
			t.Errorf("goodbye noise at info:\n%s", s)
		}
	}
}

// TestCLICallsQuietAtDebug: a client on the socket closes politely, so
// even at debug the daemon does not log a goodbye that could not be sent.
func TestCLICallsQuietAtDebug(t *testing.T) {
	var buf syncBuf
	n, _ := startNodeLevel(t, &buf, slog.LevelDebug)
	ctx := context.Background()
	for range 10 {
		c, err := client.DialRepo(ctx, n.cfg.Repo)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := c.Whoami(ctx); err != nil {
			t.Fatal(err)
		}
		c.Close()
	}
	time.Sleep(100 * time.Millisecond)
	if s := buf.String(); strings.Contains(s, "goodbye not sent") || strings.Contains(s, "broken pipe") {
		t.Errorf("goodbye noise:\n%s", s)
	}
	if got := strings.Count(buf.String(), "method=whoami"); got < 10 {
		t.Errorf("%d whoami calls logged at debug, want 10", got)
	}
}
