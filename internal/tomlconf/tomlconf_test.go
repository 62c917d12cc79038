package tomlconf

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

type settings struct {
	Repo     string   `toml:"-"`
	Listen   string   `toml:"listen"`
	MaxConns int      `toml:"max-conns"`
	Peers    []string `toml:"peers"`
	Debug    bool     `toml:"debug"`
}

func TestLoad(t *testing.T) {
	for _, tc := range []struct {
		name, file string
		keys       []string
		err        []string // substrings of the error; nil: no error
	}{
		{"empty", "", nil, nil},
		{"keys", "listen = \":8008\"\nmax-conns = 3\npeers = [\"a\"]\n", []string{"listen", "max-conns", "peers"}, nil},
		{"unknown key", "listn = \":8008\"\n", nil, []string{"config.toml: unknown setting listn", "(known: listen, max-conns, peers, debug)"}},
		{"wrong type", "max-conns = \"many\"\n", nil, []string{"config.toml:1:", "max-conns: want a number, got a TOML string"}},
		{"wrong type bool", "debug = 3\n", nil, []string{"debug: want true or false"}},
		{"syntax", "listen = \n", nil, []string{"config.toml:1:"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "config.toml")
			if err := os.WriteFile(path, []byte(tc.file), 0o600); err != nil {
				t.Fatal(err)
			}
			var s settings
			keys, err := Load(path, &s)
			if tc.err == nil {
				if err != nil {
					t.Fatal(err)
				}
				if !slices.Equal(keys, tc.keys) {
					t.Fatalf("keys %v, want %v", keys, tc.keys)
				}
				return
			}
			if err == nil {
				t.Fatalf("no error, want %q", tc.err)
			}
			for _, want := range tc.err {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("error %q does not contain %q", err, want)
				}
			}
			if strings.Contains(err.Error(), "settings") || strings.Contains(err.Error(), "Go value") {
				t.Errorf("error %q names Go types", err)
			}
		})
	}
}

func TestLoadMissingFile(t *testing.T) {
	var s settings
	keys, err := Load(filepath.Join(t.TempDir(), "none.toml"), &s)
	if err != nil || keys != nil {
		t.Fatalf("keys %v, err %v, want nothing", keys, err)
	}
}
