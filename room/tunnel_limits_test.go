package room

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/cask-ssb/cask/muxrpc"
	"github.com/cask-ssb/cask/plugins/tunnel"
)

// waitGauge polls the room's open-tunnels gauge until it equals want.
func waitGauge(t *testing.T, s *Server, want float64) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for metricValue(s.metrics.tunnelsOpen) != want {
		if time.Now().After(deadline) {
			t.Fatalf("open tunnels = %v, want %v", metricValue(s.metrics.tunnelsOpen), want)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestTunnelsPerIPLimit(t *testing.T) {
	for _, tc := range []struct {
		name          string
		limitLoopback bool
		wantRefused   bool
	}{
		{"loopback limited", true, true},
		{"loopback exempt", false, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := startRoom(t, func(c *Config) {
				c.LimitLoopback = tc.limitLoopback
				c.MaxTunnelsPerIP = 2
				c.MaxTunnelsPerKey = 32
			})
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			a1, a2, b := mustDial(t, s, newKey(t)), mustDial(t, s, newKey(t)), mustDial(t, s, newKey(t))
			if _, err := b.subscribe(ctx); err != nil {
				t.Fatal(err)
			}
			// Two tunnels from two keys on the same IP fill the IP's quota.
			p1, err := tunnel.Dial(ctx, a1.ep, s.ID(), b.kp.ID)
			if err != nil {
				t.Fatal(err)
			}
			defer p1.Close()
			p2, err := tunnel.Dial(ctx, a2.ep, s.ID(), b.kp.ID)
			if err != nil {
				t.Fatal(err)
			}
			defer p2.Close()
			waitGauge(t, s, 2)

			args := map[string]string{"portal": s.ID().String(), "target": b.kp.ID.String()}
			src, sink, err := a1.ep.Duplex(ctx, muxrpc.Method{"tunnel", "connect"}, args)
			if err != nil {
				t.Fatal(err)
			}
			defer sink.Close()
			if !tc.wantRefused {
				waitGauge(t, s, 3)
				return
			}
			_, err = src.Next(ctx)
			if want := "room limit: at most 2 open tunnels per IP address"; callErr(err) != want {
				t.Fatalf("third tunnel from one IP: %q, want %q", callErr(err), want)
			}
			if n := metricValue(s.metrics.limits.WithLabelValues("tunnels-per-ip")); n != 1 {
				t.Errorf("limits{tunnels-per-ip} = %v, want 1", n)
			}
			// Closed tunnels free their slots (a tunnel ends when both
			// sides have ended).
			for range 2 {
				in, err := b.acc.Accept(ctx)
				if err != nil {
					t.Fatal(err)
				}
				in.Conn.Close()
			}
			p1.Close()
			p2.Close()
			waitGauge(t, s, 0)
			p3, err := tunnel.Dial(ctx, a1.ep, s.ID(), b.kp.ID)
			if err != nil {
				t.Fatal(err)
			}
			defer p3.Close()
			waitGauge(t, s, 1)
		})
	}
}

// TestTunnelRate sends 1 MiB through a tunnel limited to 256 KiB/s with a
// 64 KiB bucket: it cannot arrive in less than (1 MiB - 64 KiB) / 256 KiB/s
// = 3.75 s (a lower bound, which a slow machine cannot break), and it
// arrives intact.
func TestTunnelRate(t *testing.T) {
	if testing.Short() {
		t.Skip("takes 4 s")
	}
	const rateBps, burst, n = 256 << 10, 64 << 10, 1 << 20
	s := startRoom(t, func(c *Config) { c.TunnelRate = rateBps; c.TunnelBurst = burst })
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	a, b := mustDial(t, s, newKey(t)), mustDial(t, s, newKey(t))
	if _, err := b.subscribe(ctx); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	sent, got := transfer(t, s, a, b, n)
	took := time.Since(start)
	if sent != got {
		t.Fatal("bytes through the rate-limited tunnel differ")
	}
	if min := time.Duration(float64(n-burst) / rateBps * float64(time.Second)); took < min {
		t.Fatalf("1 MiB at %d B/s took %s, faster than the limit allows (%s)", rateBps, took, min)
	}
	t.Logf("1 MiB through a %d KiB/s tunnel: %s", rateBps>>10, took)
}

func TestTunnelRateConfig(t *testing.T) {
	for _, tc := range []struct {
		rate, burst int64
		want        string
	}{
		{-1, 0, "tunnel-rate, tunnel-burst: want 0"},
		{0, 100, "tunnel-burst: set only with tunnel-rate"},
		{100, 0, ""},
	} {
		c := Defaults(t.TempDir())
		c.TunnelRate, c.TunnelBurst = tc.rate, tc.burst
		err := c.Validate()
		switch {
		case tc.want == "" && err != nil:
			t.Errorf("rate %d burst %d: %v", tc.rate, tc.burst, err)
		case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
			t.Errorf("rate %d burst %d: %v, want %q", tc.rate, tc.burst, err, tc.want)
		}
	}
}
