package sbot

import (
	"encoding/base64"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/pelletier/go-toml/v2"

	"github.com/cask-ssb/cask/feeds"
)

// MainNetCaps is the SSB main network's secret-handshake key (ssb-caps "shs").
const MainNetCaps = "1KHLiKZvAvjbY1ziZEHMXawbCEIM6qwjCDm3VYRan/s="

// Config is every setting of the daemon. Each one can come from
// REPO/config.toml, an environment variable or a flag; flags win over
// environment variables, which win over the file, which wins over defaults.
type Config struct {
	Repo      string `toml:"-"`          // --repo, SSB_REPO, default ~/.ssb-go
	Key       string `toml:"key"`        // --key, SSB_KEY: secret file; default REPO/secret
	Listen    string `toml:"listen"`     // --listen, SSB_LISTEN: TCP address; default ":8008"; "" or "off" disables TCP
	Caps      string `toml:"caps"`       // --caps, SSB_CAPS: network key, base64
	LogFormat string `toml:"log-format"` // --log-format, SSB_LOG_FORMAT: text or json
	LogLevel  string `toml:"log-level"`  // --log-level, SSB_LOG_LEVEL: debug, info, warn, error
	// MaxConns bounds concurrent peer connections (TCP), --max-conns, SSB_MAX_CONNS.
	MaxConns int `toml:"max-conns"`
	// MaxStreams bounds concurrent calls/streams a peer may open, --max-streams, SSB_MAX_STREAMS.
	MaxStreams int `toml:"max-streams"`
	// Hops: replicate feeds within this many follow hops of ours, --hops, SSB_HOPS.
	Hops int `toml:"hops"`
	// Peers are multiserver addresses to stay connected to (reconnecting
	// with back-off), --peers, SSB_PEERS (comma-separated).
	Peers []string `toml:"peers"`
	// Rooms are rooms (net: or ws: addresses) to stay an attendant of,
	// --rooms, SSB_ROOMS (comma-separated). Rooms joined at run time are
	// kept in REPO/rooms.json.
	Rooms []string `toml:"rooms"`
	// TunnelAccept says whom we keep an incoming tunneled connection from
	// (rooms2 "tunneled authentication"): "followed" (default) or
	// "anyone", --tunnel-accept, SSB_TUNNEL_ACCEPT.
	TunnelAccept string `toml:"tunnel-accept"`
}

// Tunnel acceptance policies (Config.TunnelAccept).
const (
	TunnelAcceptFollowed = "followed"
	TunnelAcceptAnyone   = "anyone"
)

// Validate checks the settings that New does not derive itself.
func (c Config) Validate() error {
	for _, p := range c.Peers {
		if _, err := feeds.ParseAddress(p); err != nil {
			return fmt.Errorf("peers: %w", err)
		}
	}
	for _, r := range c.Rooms {
		if _, err := parseRoomAddress(r); err != nil {
			return fmt.Errorf("rooms: %w", err)
		}
	}
	switch c.TunnelAccept {
	case "", TunnelAcceptFollowed, TunnelAcceptAnyone:
	default:
		return fmt.Errorf("tunnel-accept %q: want %q or %q", c.TunnelAccept, TunnelAcceptFollowed, TunnelAcceptAnyone)
	}
	return nil
}

// parseRoomAddress parses the address of a room: a direct transport, not
// a tunnel.
func parseRoomAddress(s string) (feeds.Address, error) {
	a, err := feeds.ParseAddress(s)
	if err != nil {
		return a, err
	}
	if a.Transport == feeds.TransportTunnel {
		return a, fmt.Errorf("room address %s: a room is reached directly, not through a tunnel", s)
	}
	return a, nil
}

// Defaults returns the default configuration for repo.
func Defaults(repo string) Config {
	return Config{
		Repo:       repo,
		Listen:     ":8008",
		Caps:       MainNetCaps,
		LogFormat:  "text",
		LogLevel:   "info",
		MaxConns:   64,
		MaxStreams: 256,
		Hops:       2,

		TunnelAccept: TunnelAcceptFollowed,
	}
}

// DefaultRepo returns $SSB_REPO or ~/.ssb-go.
func DefaultRepo() string {
	if r := os.Getenv("SSB_REPO"); r != "" {
		return r
	}
	home, err := os.UserHomeDir()
	if err != nil {
		return ".ssb-go"
	}
	return filepath.Join(home, ".ssb-go")
}

// LoadConfigFile overlays REPO/config.toml (if present) on c. Unknown keys
// are an error, so a typo does not go unnoticed.
func LoadConfigFile(c *Config) error {
	path := filepath.Join(c.Repo, "config.toml")
	data, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("read config: %w", err)
	}
	dec := toml.NewDecoder(strings.NewReader(string(data)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(c); err != nil {
		var strict *toml.StrictMissingError
		if errors.As(err, &strict) {
			var keys []string
			for _, e := range strict.Errors {
				keys = append(keys, strings.Join(e.Key(), "."))
			}
			return fmt.Errorf("%s: unknown setting %s (known: listen, caps, key, log-format, log-level, max-conns, max-streams, hops, peers, rooms, tunnel-accept)", path, strings.Join(keys, ", "))
		}
		var de *toml.DecodeError
		if errors.As(err, &de) {
			row, col := de.Position()
			return fmt.Errorf("%s:%d:%d: %w", path, row, col, err)
		}
		return fmt.Errorf("parse %s: %w", path, err)
	}
	return nil
}

// CapsKey decodes the network key.
func (c Config) CapsKey() ([32]byte, error) {
	var k [32]byte
	b, err := base64.StdEncoding.DecodeString(c.Caps)
	if err != nil || len(b) != 32 {
		return k, fmt.Errorf("caps %q: want the base64 of 32 bytes", c.Caps)
	}
	copy(k[:], b)
	return k, nil
}

// KeyPath is the secret file in use.
func (c Config) KeyPath() string {
	if c.Key != "" {
		return c.Key
	}
	return filepath.Join(c.Repo, "secret")
}

// SocketPath is the unix socket of a running daemon.
func (c Config) SocketPath() string { return SocketPath(c.Repo) }

// SocketPath is the unix socket of the daemon that owns repo.
func SocketPath(repo string) string { return filepath.Join(repo, "socket") }
