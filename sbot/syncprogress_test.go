package sbot

import (
	"bytes"
	"context"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cask-ssb/cask/feeds"
	"github.com/cask-ssb/cask/plugins/status"
)

// syncBuf is a goroutine-safe log buffer.
type syncBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *syncBuf) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *syncBuf) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

func TestSyncProgressLogsOnlyWhileReceiving(t *testing.T) {
	var self, a, b feeds.FeedRef
	a[0], b[0] = 1, 2
	p := newSyncProgress(self)
	p.sync = func() status.Sync { return status.Sync{Peers: 1, Known: 50, Held: 20, FeedsBehind: 1} }
	var buf syncBuf
	log := slog.New(slog.NewTextHandler(&buf, nil))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { p.run(ctx, 20*time.Millisecond, log, func() int { return 7 }); close(done) }()
	defer func() { cancel(); <-done }()

	time.Sleep(70 * time.Millisecond) // idle: nothing logged
	if s := buf.String(); s != "" {
		t.Fatalf("idle node logged %q", s)
	}
	p.add(self) // our own messages are not replication
	p.add(a)
	p.add(a)
	p.add(b)
	for deadline := time.Now().Add(5 * time.Second); !strings.Contains(buf.String(), "replication progress"); {
		if time.Now().After(deadline) {
			t.Fatal("no progress line")
		}
		time.Sleep(10 * time.Millisecond)
	}
	line := buf.String()
	for _, want := range []string{"received=3", "feeds_receiving=2", "total=3", "feeds_not_started=7", "known=50", "held=20", "feeds_behind=1", "level=INFO"} {
		if !strings.Contains(line, want) {
			t.Errorf("progress line %q lacks %q", line, want)
		}
	}
	time.Sleep(70 * time.Millisecond)
	if n := strings.Count(buf.String(), "replication progress"); n != 1 {
		t.Errorf("%d progress lines, want 1 (nothing arrived since)", n)
	}
}
