package room

import (
	"encoding/base64"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/cask-ssb/cask/internal/tomlconf"
	"github.com/cask-ssb/cask/room/roomdb"
)

// MainNetCaps is the SSB main network's secret-handshake key.
const MainNetCaps = "1KHLiKZvAvjbY1ziZEHMXawbCEIM6qwjCDm3VYRan/s="

// Config is every setting of the room server. Each comes from
// REPO/config.toml, an SSB_ROOM_* environment variable or a flag (flags
// win over the environment, which wins over the file); Validate checks
// them all in one place.
type Config struct {
	Repo        string `toml:"-"`
	Key         string `toml:"key"`          // secret file; default REPO/secret
	Listen      string `toml:"listen"`       // SHS+muxrpc TCP address
	HTTPListen  string `toml:"http-listen"`  // the web side (invites, aliases, sign-in, dashboard); "off" disables
	DebugListen string `toml:"debug-listen"` // Prometheus /metrics; "off" disables
	Caps        string `toml:"caps"`         // network key, base64
	Domain      string `toml:"domain"`       // public host name
	TLSCert     string `toml:"tls-cert"`     // serve HTTPS with this certificate (PEM) ...
	TLSKey      string `toml:"tls-key"`      // ... and key; both or neither
	// AliasSubdomains serves the page of alias NAME at NAME.DOMAIN too
	// (needs a wildcard DNS record and certificate).
	AliasSubdomains bool `toml:"alias-subdomains"`
	// LinkScheme is the scheme of the web links the room gives out:
	// "https" unless set. Tests that serve plain HTTP on loopback set
	// "http"; a real room is always reached over HTTPS.
	LinkScheme string `toml:"-"`
	Mode       string `toml:"mode"` // initial privacy mode (then stored in the database)
	LogFormat  string `toml:"log-format"`
	LogLevel   string `toml:"log-level"`

	// DB is the database: "" (REPO/room.sqlite), sqlite:PATH, a path, or
	// postgres://... (shared by several room nodes).
	DB string `toml:"db"`

	MaxConns          int           `toml:"max-conns"`           // concurrent peer connections
	MaxAttendants     int           `toml:"max-attendants"`      // concurrent attendants
	MaxConnsPerIP     int           `toml:"max-conns-per-ip"`    // per remote IP (loopback exempt unless LimitLoopback)
	MaxTunnelsPerKey  int           `toml:"max-tunnels-per-key"` // open tunnels one origin may hold
	MaxTunnelsPerIP   int           `toml:"max-tunnels-per-ip"`  // open tunnels originated from one IP (loopback exempt unless LimitLoopback)
	LimitLoopback     bool          `toml:"limit-loopback"`      // apply per-IP limits to loopback too
	HandshakeTimeout  time.Duration `toml:"handshake-timeout"`
	MaxPending        int           `toml:"max-pending"` // concurrent handshakes
	WriteTimeout      time.Duration `toml:"write-timeout"`
	KeepAlive         time.Duration `toml:"keepalive"` // ping interval; a peer silent for 2x this is dropped
	MaxTunnelBytes    int64         `toml:"max-tunnel-bytes"`
	MaxTunnelDuration time.Duration `toml:"max-tunnel-duration"`
	TunnelRate        int64         `toml:"tunnel-rate"`  // bytes per second per tunnel and direction, token bucket (0: no limit)
	TunnelBurst       int64         `toml:"tunnel-burst"` // token bucket size in bytes (0: one second of TunnelRate)
	EventQueue        int           `toml:"event-queue"`  // attendant events a subscriber may lag behind
	EventBatch        time.Duration `toml:"event-batch"`  // gather attendant events this long before writing

	// The mesh of room nodes sharing this room's identity and database
	// (room/mesh): this node's mesh address, the other nodes' addresses,
	// and the file of the shared mesh key.
	MeshListen  string   `toml:"mesh-listen"`
	MeshWith    []string `toml:"mesh-with"`
	MeshKeyFile string   `toml:"mesh-key-file"`
	// meshListener, if set, is the mesh listener to use (tests open them
	// first, so that every node knows the others' addresses).
	meshListener net.Listener

	// sendBuffer, if set, is SO_SNDBUF of peer connections (tests use a
	// small one so a peer that never reads blocks the room's writes soon).
	sendBuffer int
}

// Defaults returns the defaults, sized for a public room.
func Defaults(repo string) Config {
	return Config{
		Repo:             repo,
		Listen:           ":8008",
		HTTPListen:       ":3000",
		DebugListen:      "127.0.0.1:6060",
		Caps:             MainNetCaps,
		Domain:           "localhost",
		Mode:             string(roomdb.ModeCommunity),
		LogFormat:        "text",
		LogLevel:         "info",
		MaxConns:         4096,
		MaxAttendants:    4096,
		MaxConnsPerIP:    16,
		MaxTunnelsPerKey: 32,
		MaxTunnelsPerIP:  128,
		HandshakeTimeout: 10 * time.Second,
		MaxPending:       256,
		WriteTimeout:     10 * time.Second,
		KeepAlive:        20 * time.Second,
		EventQueue:       4096,
		EventBatch:       20 * time.Millisecond,
	}
}

// DefaultRepo returns $SSB_ROOM_REPO or ~/.ssb-room.
func DefaultRepo() string {
	if r := os.Getenv("SSB_ROOM_REPO"); r != "" {
		return r
	}
	home, err := os.UserHomeDir()
	if err != nil {
		return ".ssb-room"
	}
	return filepath.Join(home, ".ssb-room")
}

// LoadConfigFile overlays REPO/config.toml (if present) on c; unknown keys
// are an error.
func LoadConfigFile(c *Config) error {
	_, err := tomlconf.Load(filepath.Join(c.Repo, "config.toml"), c)
	return err
}

// Validate checks every setting.
func (c Config) Validate() error {
	var errs []error
	if c.Repo == "" {
		errs = append(errs, errors.New("repo: empty"))
	}
	if _, err := c.CapsKey(); err != nil {
		errs = append(errs, err)
	}
	if _, err := roomdb.ParseMode(c.Mode); err != nil {
		errs = append(errs, err)
	}
	if _, _, err := roomdb.ParseDBURL(c.DB, c.DBPath()); err != nil {
		errs = append(errs, err)
	}
	if c.Domain == "" || strings.ContainsAny(c.Domain, "/ ?#") {
		errs = append(errs, fmt.Errorf("domain %q: want a host name", c.Domain))
	}
	for name, v := range map[string]string{"listen": c.Listen, "http-listen": c.HTTPListen, "debug-listen": c.DebugListen} {
		if v == "off" || (v == "" && name != "listen") {
			continue
		}
		if _, _, err := net.SplitHostPort(v); err != nil {
			errs = append(errs, fmt.Errorf("%s %q: want HOST:PORT: %w", name, v, err))
		}
	}
	for name, v := range map[string]int{"max-conns": c.MaxConns, "max-attendants": c.MaxAttendants, "max-conns-per-ip": c.MaxConnsPerIP,
		"max-tunnels-per-key": c.MaxTunnelsPerKey, "max-tunnels-per-ip": c.MaxTunnelsPerIP, "max-pending": c.MaxPending, "event-queue": c.EventQueue} {
		if v <= 0 {
			errs = append(errs, fmt.Errorf("%s: want a positive number, got %d", name, v))
		}
	}
	for name, v := range map[string]time.Duration{"handshake-timeout": c.HandshakeTimeout, "write-timeout": c.WriteTimeout, "keepalive": c.KeepAlive} {
		if v <= 0 {
			errs = append(errs, fmt.Errorf("%s: want a positive duration, got %s", name, v))
		}
	}
	if (c.TLSCert == "") != (c.TLSKey == "") {
		errs = append(errs, errors.New("tls-cert, tls-key: give both or neither"))
	}
	if c.EventBatch < 0 || c.EventBatch > time.Second {
		errs = append(errs, fmt.Errorf("event-batch: want 0 to 1s, got %s", c.EventBatch))
	}
	if c.MaxTunnelBytes < 0 || c.MaxTunnelDuration < 0 {
		errs = append(errs, errors.New("max-tunnel-bytes, max-tunnel-duration: want 0 (no cap) or positive"))
	}
	if c.TunnelRate < 0 || c.TunnelBurst < 0 {
		errs = append(errs, errors.New("tunnel-rate, tunnel-burst: want 0 (no limit) or a positive number of bytes"))
	}
	if c.TunnelBurst > 0 && c.TunnelRate == 0 {
		errs = append(errs, errors.New("tunnel-burst: set only with tunnel-rate"))
	}
	errs = append(errs, c.validateMesh()...)
	switch c.LogFormat {
	case "text", "json":
	default:
		errs = append(errs, fmt.Errorf("log-format %q: want text or json", c.LogFormat))
	}
	switch strings.ToLower(c.LogLevel) {
	case "debug", "info", "warn", "error":
	default:
		errs = append(errs, fmt.Errorf("log-level %q: want debug, info, warn or error", c.LogLevel))
	}
	return errors.Join(errs...)
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

// SocketPath is the admin socket of a running room.
func (c Config) SocketPath() string { return SocketPath(c.Repo) }

// SocketPath is the admin socket of the room that owns repo.
func SocketPath(repo string) string { return filepath.Join(repo, "socket") }

// DBPath is the default SQLite database (when DB is empty).
func (c Config) DBPath() string { return filepath.Join(c.Repo, "room.sqlite") }
