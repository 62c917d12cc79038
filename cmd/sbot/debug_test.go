package main

import (
	"strings"
	"testing"
)

// TestServeDebugListenPublic: `sbot serve` refuses a non-loopback
// --debug-listen (exit status 2, naming the setting and where it came
// from) unless --debug-listen-public is given.
func TestServeDebugListenPublic(t *testing.T) {
	for _, c := range []struct {
		name string
		args []string
		env  map[string]string
		want string
	}{
		{"flag", []string{"--debug-listen", "0.0.0.0:6078"}, nil, `debug-listen = "0.0.0.0:6078" (from flag --debug-listen)`},
		{"every interface", []string{"--debug-listen", ":6078"}, nil, `debug-listen = ":6078" (from flag --debug-listen)`},
		{"environment", nil, map[string]string{"SSB_DEBUG_LISTEN": "[::]:6078"}, `debug-listen = "[::]:6078" (from environment SSB_DEBUG_LISTEN)`},
		{"public not a bool", []string{"--debug-listen-public=maybe"}, nil, "invalid argument"},
	} {
		t.Run(c.name, func(t *testing.T) {
			for k, v := range c.env {
				t.Setenv(k, v)
			}
			args := append([]string{"serve", "--repo", t.TempDir(), "--listen", "127.0.0.1:0"}, c.args...)
			r := sbotRun(t, "", args...)
			if r.code != exitInvalid || !strings.Contains(r.stderr, c.want) {
				t.Fatalf("exit %d, stderr %q; want exit %d and %q", r.code, r.stderr, exitInvalid, c.want)
			}
		})
	}
}
