package sbot

import (
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
			if !reflect.DeepEqual(c, tc.want) {
				t.Fatalf("got %+v\nwant %+v", c, tc.want)
			}
		})
	}
	if _, err := (Config{Caps: "abc"}).CapsKey(); err == nil {
		t.Fatal("bad caps accepted")
	}
}

func TestConfigValidate(t *testing.T) {
	const key = "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="
	const tun = "tunnel:@AQAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=.ed25519:@AgAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=.ed25519~shs:AgAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="
	tests := []struct {
		name    string
		edit    func(c *Config)
		wantErr string
	}{
		{"defaults", func(*Config) {}, ""},
		{"room", func(c *Config) { c.Rooms = []string{"net:127.0.0.1:8008~shs:" + key} }, ""},
		{"tunnel peer", func(c *Config) { c.Peers = []string{tun} }, ""},
		{"tunnel as a room", func(c *Config) { c.Rooms = []string{tun} }, "not through a tunnel"},
		{"bad room", func(c *Config) { c.Rooms = []string{"nope"} }, "rooms:"},
		{"bad peer", func(c *Config) { c.Peers = []string{"nope"} }, "peers:"},
		{"anyone", func(c *Config) { c.TunnelAccept = TunnelAcceptAnyone }, ""},
		{"bad tunnel-accept", func(c *Config) { c.TunnelAccept = "friends" }, "tunnel-accept"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := Defaults("R")
			tc.edit(&c)
			err := c.Validate()
			switch {
			case tc.wantErr == "" && err != nil:
				t.Fatal(err)
			case tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)):
				t.Fatalf("err %v, want %q", err, tc.wantErr)
			}
		})
	}
}
