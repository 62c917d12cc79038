package sbot

import (
	"context"
	"log/slog"
	"net"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/cask-ssb/cask/feeds"
	"github.com/cask-ssb/cask/room"
)

// startWSRoom runs an open room with its HTTP server on 127.0.0.1 and
// returns it with its WebSocket address (the HTTP port) and TCP address.
func startWSRoom(t *testing.T) (ws, tcp string) {
	t.Helper()
	cfg := room.Defaults(t.TempDir())
	cfg.Listen = "127.0.0.1:0"
	cfg.HTTPListen = "127.0.0.1:0"
	cfg.DebugListen = "off"
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
	return feeds.Address{Transport: feeds.TransportWS, Host: host, Port: p, Key: s.ID()}.String(), s.Address()
}

// TestWSRoom: a daemon joins a room over WebSocket on the room's HTTP port,
// another over TCP; both are attendants and each sees the other.
func TestWSRoom(t *testing.T) {
	ws, tcp := startWSRoom(t)
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
}
