package sbot

import (
	"bufio"
	"context"
	"log/slog"
	"net"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/cask-ssb/cask/feeds"
	"github.com/cask-ssb/cask/room"
)

// startWSRoom runs an open room with its HTTP server and debug listener
// on 127.0.0.1 and returns its WebSocket address (the HTTP port), its TCP
// address and the room.
func startWSRoom(t *testing.T) (ws, tcp string, s *room.Server) {
	t.Helper()
	cfg := room.Defaults(t.TempDir())
	cfg.Listen = "127.0.0.1:0"
	cfg.HTTPListen = "127.0.0.1:0"
	cfg.DebugListen = "127.0.0.1:0"
	cfg.Mode = "open"
	s, err := room.New(room.Options{Config: cfg, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	ready := make(chan struct{})
	done := make(chan error, 1)
	go func() { done <- s.Serve(ctx, func() { close(ready) }) }()
	select {
	case <-ready:
	case err := <-done:
		cancel()
		t.Fatalf("room did not start: %v", err)
	}
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("room Serve: %v", err)
		}
	})
	host, port, _ := net.SplitHostPort(s.HTTPAddr())
	p, _ := strconv.Atoi(port)
	return feeds.Address{Transport: feeds.TransportWS, Host: host, Port: p, Key: s.ID()}.String(), s.Address(), s
}

// TestWSRoom: a daemon joins a room over WebSocket on the room's HTTP port,
// another over TCP; both are attendants and each sees the other.
func TestWSRoom(t *testing.T) {
	ws, tcp, r := startWSRoom(t)
	a, _ := startNodeWith(t, t.TempDir(), func(c *Config) { c.Listen = "off"; c.Rooms = []string{ws} })
	b, _ := startNodeWith(t, t.TempDir(), func(c *Config) { c.Listen = "off"; c.Rooms = []string{tcp} })
	deadline := time.Now().Add(20 * time.Second)
	for {
		ra, rb := a.Status().Rooms, b.Status().Rooms
		if len(ra) == 1 && len(rb) == 1 && ra[0].State == "attendant" &&
			slices.Contains(ra[0].Attendants, b.ID().String()) && slices.Contains(rb[0].Attendants, a.ID().String()) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("rooms: a %+v, b %+v", ra, rb)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if ps := a.Status().Peers; len(ps) != 1 || ps[0].Transport != feeds.TransportWS {
		t.Errorf("a's peers %+v: want the room over ws", ps)
	}
	// The room counts each handshake under the transport it came over.
	m := roomMetrics(t, r.DebugAddr())
	for _, tr := range []string{"ws", "net"} {
		if n := m[`room_handshakes_total{result="ok",transport="`+tr+`"}`]; n < 1 {
			t.Errorf("room counted %v %s handshakes, want at least 1", n, tr)
		}
	}
}

// roomMetrics scrapes a room's /metrics into series -> value.
func roomMetrics(t *testing.T, addr string) map[string]float64 {
	t.Helper()
	resp, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	m := make(map[string]float64)
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		if i < 0 {
			continue
		}
		if v, err := strconv.ParseFloat(line[i+1:], 64); err == nil {
			m[line[:i]] = v
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return m
}
