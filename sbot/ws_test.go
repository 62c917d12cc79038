package sbot

import (
	"context"
	"encoding/base64"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"
)

func wsAddrOf(t *testing.T, n *Node) string {
	t.Helper()
	for _, l := range n.Listen() {
		if strings.HasPrefix(l, "ws://") {
			return l
		}
	}
	t.Fatalf("node has no ws address: %v", n.Listen())
	return ""
}

func withWS(c *Config) { c.WSListen = "127.0.0.1:0"; c.Listen = "off" }

// TestWSReplication: two daemons replicate each other's feeds over a
// WebSocket connection (ws://), old messages then live ones, and both see
// the connection as transport ws.
func TestWSReplication(t *testing.T) {
	a, ca := startNodeWith(t, t.TempDir(), withWS)
	b, cb := startNodeWith(t, t.TempDir(), func(c *Config) { c.Listen = "off" })
	ctx := context.Background()
	for i := range 60 {
		if _, err := ca.Publish(ctx, map[string]any{"type": "post", "text": fmt.Sprint("a", i)}); err != nil {
			t.Fatal(err)
		}
	}
	for i := range 40 {
		if _, err := cb.Publish(ctx, map[string]any{"type": "post", "text": fmt.Sprint("b", i)}); err != nil {
			t.Fatal(err)
		}
	}
	addr := wsAddrOf(t, a)
	if err := b.ConnectAddress(ctx, addr); err != nil {
		t.Fatalf("connect %s: %v", addr, err)
	}
	waitLatest(t, b, a.ID(), 60)
	waitLatest(t, a, b.ID(), 40)
	if _, err := ca.Publish(ctx, map[string]any{"type": "post", "text": "live"}); err != nil {
		t.Fatal(err)
	}
	waitLatest(t, b, a.ID(), 61)
	for _, n := range []*Node{a, b} {
		ps := n.Status().Peers
		if len(ps) != 1 || ps[0].Transport != "ws" {
			t.Errorf("%s peers %+v: want one ws peer", n.ID(), ps)
		}
	}
}

// TestWSWrongNetworkKey: a peer with another network key gets no
// connection over ws, as over TCP.
func TestWSWrongNetworkKey(t *testing.T) {
	a, _ := startNodeWith(t, t.TempDir(), withWS)
	other := base64.StdEncoding.EncodeToString(make([]byte, 32))
	b, _ := startNodeWith(t, t.TempDir(), func(c *Config) { c.Listen = "off"; c.Caps = other })
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	err := b.ConnectAddress(ctx, wsAddrOf(t, a))
	if err == nil {
		t.Fatal("a peer with another network key connected over ws")
	}
	if !strings.Contains(err.Error(), "handshake") {
		t.Errorf("error %q does not name the handshake", err)
	}
	if ps := a.Status().Peers; len(ps) != 0 {
		t.Errorf("a has peers %+v", ps)
	}
}

// TestWSPlainRequest: a request that is not a WebSocket upgrade gets 426.
func TestWSPlainRequest(t *testing.T) {
	a, _ := startNodeWith(t, t.TempDir(), withWS)
	u := "http://" + strings.TrimSuffix(strings.TrimPrefix(wsAddrOf(t, a), "ws://"), "~shs:"+strings.SplitN(wsAddrOf(t, a), "~shs:", 2)[1]) + "/any/path"
	resp, err := http.Get(u)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUpgradeRequired || resp.Header.Get("Upgrade") != "websocket" {
		t.Fatalf("GET %s: %s, Upgrade %q; want 426 and Upgrade: websocket", u, resp.Status, resp.Header.Get("Upgrade"))
	}
}

func TestWSConfig(t *testing.T) {
	tests := []struct {
		name    string
		edit    func(*Config)
		wantKey string
	}{
		{"off", func(c *Config) { c.WSListen = "off" }, ""},
		{"port", func(c *Config) {
			c.WSListen = "127.0.0.1:8989"
			c.WSTrustedProxies = []string{"10.0.0.0/8", "192.0.2.1"}
		}, ""},
		{"no port", func(c *Config) { c.WSListen = "127.0.0.1" }, "ws-listen"},
		{"port out of range", func(c *Config) { c.WSListen = ":70000" }, "ws-listen"},
		{"bad proxy", func(c *Config) { c.WSTrustedProxies = []string{"10.0.0.0/33"} }, "ws-trusted-proxies"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := Defaults(t.TempDir())
			tc.edit(&c)
			err := c.Validate()
			if tc.wantKey == "" && err != nil {
				t.Fatalf("Validate: %v", err)
			}
			if tc.wantKey != "" && (err == nil || !strings.Contains(err.Error(), tc.wantKey)) {
				t.Fatalf("Validate: %v, want an error naming %s", err, tc.wantKey)
			}
		})
	}
}
