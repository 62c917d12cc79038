package sbot

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

func TestLoadConfigFile(t *testing.T) {
	tests := []struct {
		name, file string
		want       Config
		wantErr    string
	}{
		{"none", "", Defaults("R"), ""},
		{"overrides", "listen = \"127.0.0.1:9000\"\nlog-format = \"json\"\nmax-conns = 5\n", func() Config {
			c := Defaults("R")
			c.Listen, c.LogFormat, c.MaxConns = "127.0.0.1:9000", "json", 5
			return c
		}(), ""},
		{"peers", "peers = [\"net:127.0.0.1:8008~shs:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\"]\n", func() Config {
			c := Defaults("R")
			c.Peers = []string{"net:127.0.0.1:8008~shs:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="}
			return c
		}(), ""},
		{"unknown key", "lissten = \":1\"\n", Config{}, "unknown setting lissten"},
		{"bad syntax", "listen = \n", Config{}, "config.toml:1:"},
		{"wrong type", "max-conns = \"many\"\n", Config{}, "config.toml"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			if tc.file != "" {
				if err := os.WriteFile(filepath.Join(dir, "config.toml"), []byte(tc.file), 0o600); err != nil {
					t.Fatal(err)
				}
			}
			c := Defaults(dir)
			err := LoadConfigFile(&c)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err %v, want it to contain %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			tc.want.Repo = dir
			for k, src := range c.Sources {
				if src != filepath.Join(dir, "config.toml") || !strings.Contains(tc.file, k+" =") {
					t.Errorf("source of %s: %q", k, src)
				}
			}
			c.Sources = nil
			if !reflect.DeepEqual(c, tc.want) {
				t.Fatalf("got %+v\nwant %+v", c, tc.want)
			}
		})
	}
	if _, err := (Config{Caps: "abc"}).CapsKey(); err == nil {
		t.Fatal("bad caps accepted")
	}
}

// TestValidate: every out-of-range value is refused with its key and
// source, whether it came from config.toml, the environment or a flag.
func TestValidate(t *testing.T) {
	tests := []struct {
		name string
		set  func(c *Config)
		want string // "" = valid
	}{
		{"defaults", func(c *Config) {}, ""},
		{"max-conns 0 from file", func(c *Config) { c.MaxConns = 0; c.SetSource("max-conns", "/r/config.toml") }, "max-conns = 0 (from /r/config.toml): want an integer from 1 to"},
		{"max-outgoing -1 from flag", func(c *Config) { c.MaxOutgoing = -1; c.SetSource("max-outgoing", "flag --max-outgoing") }, "max-outgoing = -1 (from flag --max-outgoing): want an integer from 0 to 1000"},
		{"max-outgoing 1001 from env", func(c *Config) { c.MaxOutgoing = 1001; c.SetSource("max-outgoing", "environment SSB_MAX_OUTGOING") }, "max-outgoing = 1001 (from environment SSB_MAX_OUTGOING)"},
		{"max-outgoing 0", func(c *Config) { c.MaxOutgoing = 0 }, ""},
		{"hops -3 from env", func(c *Config) { c.Hops = -3; c.SetSource("hops", "environment SSB_HOPS") }, "hops = -3 (from environment SSB_HOPS): want an integer from 0 to 10"},
		{"hops 11 from flag", func(c *Config) { c.Hops = 11; c.SetSource("hops", "flag --hops") }, "hops = 11 (from flag --hops)"},
		{"hops 0 ok", func(c *Config) { c.Hops = 0 }, ""},
		{"max-streams -1", func(c *Config) { c.MaxStreams = -1 }, "max-streams = -1 (from default)"},
		{"max-streams too many", func(c *Config) { c.MaxStreams = MaxMaxStreams + 1 }, "max-streams"},
		{"listen bad port", func(c *Config) { c.Listen = "127.0.0.1:99999" }, `listen = "127.0.0.1:99999"`},
		{"listen no port", func(c *Config) { c.Listen = "localhost" }, `listen = "localhost"`},
		{"listen off", func(c *Config) { c.Listen = "off" }, ""},
		{"listen port 0", func(c *Config) { c.Listen = "127.0.0.1:0" }, ""},
		{"caps", func(c *Config) { c.Caps = "abc" }, `caps = "abc"`},
		{"log-format", func(c *Config) { c.LogFormat = "xml" }, `log-format = "xml"`},
		{"log-level", func(c *Config) { c.LogLevel = "loud" }, `log-level = "loud"`},
		{"peers", func(c *Config) { c.Peers = []string{"nonsense"} }, `peers = "nonsense"`},
		{"room", func(c *Config) {
			c.Rooms = []string{"net:127.0.0.1:8008~shs:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="}
		}, ""},
		{"tunnel peer", func(c *Config) { c.Peers = []string{testTunnelAddr} }, ""},
		{"tunnel as a room", func(c *Config) { c.Rooms = []string{testTunnelAddr} }, "not through a tunnel"},
		{"bad room", func(c *Config) { c.Rooms = []string{"nope"} }, `rooms = "nope"`},
		{"tunnel-accept anyone", func(c *Config) { c.TunnelAccept = TunnelAcceptAnyone }, ""},
		{"bad tunnel-accept", func(c *Config) { c.TunnelAccept = "friends" }, `tunnel-accept = "friends"`},
		{"ebt-stall-timeout", func(c *Config) { c.EBTStallTimeout = "3s" }, ""},
		{"ebt-stall-timeout empty is the default", func(c *Config) { c.EBTStallTimeout = "" }, ""},
		{"ebt-stall-timeout too short", func(c *Config) { c.EBTStallTimeout = "10ms" }, `ebt-stall-timeout = "10ms"`},
		{"ebt-stall-timeout too long", func(c *Config) { c.EBTStallTimeout = "2h" }, `ebt-stall-timeout = "2h"`},
		{"ebt-stall-timeout not a duration", func(c *Config) { c.EBTStallTimeout = "10" }, `ebt-stall-timeout = "10"`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := Defaults("R")
			tc.set(&c)
			err := c.Validate()
			if tc.want == "" {
				if err != nil {
					t.Fatalf("valid config refused: %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err %v, want it to contain %q", err, tc.want)
			}
			var se *SettingError
			if !errors.As(err, &se) {
				t.Fatalf("err %T is not a *SettingError", err)
			}
		})
	}
}

// TestLoadConfigFileSourcesAndRanges: the file's keys are recorded as
// coming from it, so Validate names the file; type errors name the key,
// not Go types.
func TestLoadConfigFileSourcesAndRanges(t *testing.T) {
	tests := []struct{ file, want string }{
		{"max-conns = 0\n", "max-conns = 0 (from DIR/config.toml): want an integer from 1"},
		{"hops = -3\n", "hops = -3 (from DIR/config.toml)"},
		{"max-streams = -1\n", "max-streams = -1 (from DIR/config.toml)"},
		{"max-conns = \"many\"\n", "max-conns: want a number, got a TOML string"},
	}
	for _, tc := range tests {
		t.Run(tc.file, func(t *testing.T) {
			dir := t.TempDir()
			if err := os.WriteFile(filepath.Join(dir, "config.toml"), []byte(tc.file), 0o600); err != nil {
				t.Fatal(err)
			}
			c := Defaults(dir)
			err := LoadConfigFile(&c)
			if err == nil {
				err = c.Validate()
			}
			want := strings.ReplaceAll(tc.want, "DIR", dir)
			if err == nil || !strings.Contains(err.Error(), want) {
				t.Fatalf("err %v, want it to contain %q", err, want)
			}
			if strings.Contains(err.Error(), "Go ") || strings.Contains(err.Error(), "sbot.Config") {
				t.Fatalf("err %q names Go types", err)
			}
		})
	}
}

func TestCheckSecretFile(t *testing.T) {
	dir := t.TempDir()
	tests := []struct {
		mode  os.FileMode
		allow bool
		ok    bool
	}{
		{0o600, false, true},
		{0o400, false, true},
		{0o644, false, false},
		{0o640, false, false},
		{0o604, false, false},
		{0o644, true, true},
	}
	for _, tc := range tests {
		path := filepath.Join(dir, "secret")
		if err := os.WriteFile(path, []byte("{}"), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(path, tc.mode); err != nil {
			t.Fatal(err)
		}
		err := CheckSecretFile(path, tc.allow)
		if tc.ok != (err == nil) {
			t.Fatalf("mode %04o allow=%v: err %v", tc.mode, tc.allow, err)
		}
		if err != nil && (!errors.Is(err, ErrInsecureSecret) || !strings.Contains(err.Error(), "chmod 600 "+path)) {
			t.Fatalf("mode %04o: err %q does not name the fix", tc.mode, err)
		}
		os.Remove(path)
	}
	if err := CheckSecretFile(filepath.Join(dir, "missing"), false); err != nil {
		t.Fatalf("missing secret: %v", err)
	}
}

// testTunnelAddr is a valid tunnel address (room @AQ…, target @Ag…).
const testTunnelAddr = "tunnel:@AQAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=.ed25519:@AgAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=.ed25519~shs:AgAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="
