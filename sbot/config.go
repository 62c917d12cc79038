package sbot

import (
	"encoding/base64"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"time"

	"github.com/cask-ssb/cask/feeds"
	"github.com/cask-ssb/cask/internal/tomlconf"
	"github.com/cask-ssb/cask/internal/wsconn"
	"github.com/cask-ssb/cask/plugins/ebt"
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
	// AllowInsecureSecret lets the daemon start with a secret file that
	// group or others may read, --allow-insecure-secret,
	// SSB_ALLOW_INSECURE_SECRET.
	AllowInsecureSecret bool `toml:"allow-insecure-secret"`
	// Rooms are rooms (net: or ws: addresses) to stay an attendant of,
	// --rooms, SSB_ROOMS (comma-separated). Rooms joined at run time are
	// kept in REPO/rooms.json.
	Rooms []string `toml:"rooms"`
	// TunnelAccept says whom we keep an incoming tunneled connection from
	// (rooms2 "tunneled authentication"): "followed" (default) or
	// "anyone", --tunnel-accept, SSB_TUNNEL_ACCEPT.
	TunnelAccept string `toml:"tunnel-accept"`
	// MaxOutgoing bounds the connections the scheduler dials by itself
	// (followed peers, pubs, room attendants), --max-outgoing,
	// SSB_MAX_OUTGOING; 0: none (only --peers, remembered peers and rooms).
	MaxOutgoing int `toml:"max-outgoing"`
	// WSListen is the address of the WebSocket listener (multiserver
	// "ws"), --ws-listen, SSB_WS_LISTEN; "" or "off" (the default): none.
	WSListen string `toml:"ws-listen"`
	// WSTrustedProxies are the CIDRs of reverse proxies whose
	// X-Forwarded-For the WebSocket listener believes,
	// --ws-trusted-proxies, SSB_WS_TRUSTED_PROXIES (comma-separated).
	WSTrustedProxies []string `toml:"ws-trusted-proxies"`
	// DebugListen is the address of the debug HTTP listener (Prometheus
	// /metrics and /debug/pprof), --debug-listen, SSB_DEBUG_LISTEN;
	// "" or "off" (the default): none. Only a loopback address is
	// accepted unless DebugListenPublic is set (--debug-listen-public,
	// SSB_DEBUG_LISTEN_PUBLIC).
	DebugListen       string `toml:"debug-listen"`
	DebugListenPublic bool   `toml:"debug-listen-public"`
	// EBTStallTimeout is how long the peer we receive a feed from over EBT
	// may send nothing of it, while we know more of it exists, before
	// another connected peer that has more is asked for it instead
	// (--ebt-stall-timeout, SSB_EBT_STALL_TIMEOUT): a Go duration from
	// 100ms to 1h; default 10s.
	EBTStallTimeout string `toml:"ebt-stall-timeout"`

	// Sources says where each setting (by its config.toml key) came from,
	// e.g. "/home/me/.ssb-go/config.toml", "environment SSB_HOPS" or
	// "flag --hops", so that errors name it. A key not in it is a default.
	Sources map[string]string `toml:"-"`
}

// SetSource records that the setting key came from source.
func (c *Config) SetSource(key, source string) {
	if c.Sources == nil {
		c.Sources = map[string]string{}
	}
	c.Sources[key] = source
}

// Source returns where the setting key came from ("default" if unset).
func (c Config) Source(key string) string {
	if s, ok := c.Sources[key]; ok {
		return s
	}
	return "default"
}

// SettingError is an invalid setting: its config.toml key, the value,
// where the value came from and what is wanted.
type SettingError struct {
	Key    string
	Value  any
	Source string
	Want   string
}

func (e *SettingError) Error() string {
	v := fmt.Sprint(e.Value)
	if s, ok := e.Value.(string); ok {
		v = fmt.Sprintf("%q", s)
	}
	return fmt.Sprintf("%s = %s (from %s): %s", e.Key, v, e.Source, e.Want)
}

// Limits of the numeric settings.
const (
	MaxMaxConns   = 10000
	MaxMaxStreams = 65536
	MaxHops       = 10
	MaxOutgoing   = 1000
)

// Validate checks every setting, whichever source it came from, and
// returns one *SettingError per invalid setting (joined).
func (c Config) Validate() error {
	var errs []error
	bad := func(key string, v any, want string) {
		errs = append(errs, &SettingError{Key: key, Value: v, Source: c.Source(key), Want: want})
	}
	if c.Listen != "" && c.Listen != "off" {
		_, port, err := net.SplitHostPort(c.Listen)
		if p, perr := strconv.Atoi(port); err != nil || perr != nil || p < 0 || p > 65535 {
			bad("listen", c.Listen, `want HOST:PORT or :PORT (port 0 to 65535), or "off"`)
		}
	}
	if c.WSListen != "" && c.WSListen != "off" {
		_, port, err := net.SplitHostPort(c.WSListen)
		if p, perr := strconv.Atoi(port); err != nil || perr != nil || p < 0 || p > 65535 {
			bad("ws-listen", c.WSListen, `want HOST:PORT or :PORT (port 0 to 65535), or "off"`)
		}
	}
	if _, err := wsconn.ParseTrustedProxies(c.WSTrustedProxies); err != nil {
		bad("ws-trusted-proxies", strings.Join(c.WSTrustedProxies, ","), "want CIDRs or IP addresses, comma-separated ("+err.Error()+")")
	}
	if _, err := c.CapsKey(); err != nil {
		bad("caps", c.Caps, "want the base64 of 32 bytes")
	}
	switch strings.ToLower(c.LogFormat) {
	case "text", "json", "":
	default:
		bad("log-format", c.LogFormat, "want text or json")
	}
	var level slog.Level
	if err := level.UnmarshalText([]byte(c.LogLevel)); err != nil && c.LogLevel != "" {
		bad("log-level", c.LogLevel, "want debug, info, warn or error")
	}
	if c.MaxConns < 1 || c.MaxConns > MaxMaxConns {
		bad("max-conns", c.MaxConns, fmt.Sprintf("want an integer from 1 to %d", MaxMaxConns))
	}
	if c.MaxStreams < 1 || c.MaxStreams > MaxMaxStreams {
		bad("max-streams", c.MaxStreams, fmt.Sprintf("want an integer from 1 to %d", MaxMaxStreams))
	}
	if c.MaxOutgoing < 0 || c.MaxOutgoing > MaxOutgoing {
		bad("max-outgoing", c.MaxOutgoing, fmt.Sprintf("want an integer from 0 to %d", MaxOutgoing))
	}
	if c.Hops < 0 || c.Hops > MaxHops {
		bad("hops", c.Hops, fmt.Sprintf("want an integer from 0 to %d", MaxHops))
	}
	for _, p := range c.Peers {
		if _, err := feeds.ParseAddress(p); err != nil {
			bad("peers", p, "want a multiserver address net:HOST:PORT~shs:KEY")
		}
	}
	for _, r := range c.Rooms {
		if _, err := parseRoomAddress(r); err != nil {
			bad("rooms", r, "want a room's multiserver address net:HOST:PORT~shs:KEY ("+err.Error()+")")
		}
	}
	switch c.TunnelAccept {
	case "", TunnelAcceptFollowed, TunnelAcceptAnyone:
	default:
		bad("tunnel-accept", c.TunnelAccept, fmt.Sprintf("want %q or %q", TunnelAcceptFollowed, TunnelAcceptAnyone))
	}
	if _, err := c.StallTimeout(); err != nil {
		bad("ebt-stall-timeout", c.EBTStallTimeout, err.Error())
	}
	if debugEnabled(c.DebugListen) {
		host, port, err := net.SplitHostPort(c.DebugListen)
		p, perr := strconv.Atoi(port)
		switch {
		case err != nil || perr != nil || p < 0 || p > 65535:
			bad("debug-listen", c.DebugListen, `want HOST:PORT (port 0 to 65535), or "off"`)
		case !c.DebugListenPublic && !isLoopbackHost(host):
			bad("debug-listen", c.DebugListen, "metrics and pprof are served to anyone who can reach that address: "+
				"want a loopback address such as 127.0.0.1:6078, or set debug-listen-public to serve them on the network")
		}
	}
	return errors.Join(errs...)
}

// Bounds of EBTStallTimeout.
const (
	MinEBTStallTimeout = 100 * time.Millisecond
	MaxEBTStallTimeout = time.Hour
)

// StallTimeout parses EBTStallTimeout ("" is ebt.DefaultStallTimeout).
func (c Config) StallTimeout() (time.Duration, error) {
	if c.EBTStallTimeout == "" {
		return ebt.DefaultStallTimeout, nil
	}
	d, err := time.ParseDuration(c.EBTStallTimeout)
	if err != nil || d < MinEBTStallTimeout || d > MaxEBTStallTimeout {
		return 0, fmt.Errorf("want a duration from %s to %s, e.g. 10s", MinEBTStallTimeout, MaxEBTStallTimeout)
	}
	return d, nil
}

// debugEnabled reports whether a debug-listen setting asks for a listener.
func debugEnabled(addr string) bool { return addr != "" && addr != "off" }

// isLoopbackHost reports whether host names only this machine: localhost
// or a loopback IP address (an empty host is every interface).
func isLoopbackHost(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// Tunnel acceptance policies (Config.TunnelAccept).
const (
	TunnelAcceptFollowed = "followed"
	TunnelAcceptAnyone   = "anyone"
)

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

// ErrInsecureSecret is returned by CheckSecretFile for a secret file that
// group or others may read or write.
var ErrInsecureSecret = errors.New("secret file is accessible by others")

// CheckSecretFile refuses, as ssh does, a secret file that group or others
// may access, unless allow is set. A missing file is fine (the daemon
// creates it with mode 0600).
func CheckSecretFile(path string, allow bool) error {
	fi, err := os.Stat(path)
	if errors.Is(err, fs.ErrNotExist) || allow || runtime.GOOS == "windows" {
		return nil
	}
	if err != nil {
		return fmt.Errorf("secret %s: %w", path, err)
	}
	if perm := fi.Mode().Perm(); perm&0o077 != 0 {
		return fmt.Errorf("%w: %s has mode %04o, so other users may read your identity; fix it with: chmod 600 %s (or start with --allow-insecure-secret)", ErrInsecureSecret, path, perm, path)
	}
	return nil
}

// Defaults returns the default configuration for repo.
func Defaults(repo string) Config {
	return Config{
		Repo:         repo,
		Listen:       ":8008",
		Caps:         MainNetCaps,
		LogFormat:    "text",
		LogLevel:     "info",
		MaxConns:     64,
		TunnelAccept: TunnelAcceptFollowed,
		MaxStreams:   256,
		Hops:         2,
		MaxOutgoing:  8,

		EBTStallTimeout: ebt.DefaultStallTimeout.String(),
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
// are an error, so a typo does not go unnoticed; the keys the file sets are
// recorded as coming from it, so Validate names the file.
func LoadConfigFile(c *Config) error {
	path := filepath.Join(c.Repo, "config.toml")
	keys, err := tomlconf.Load(path, c)
	if err != nil {
		return err
	}
	for _, k := range keys {
		c.SetSource(k, path)
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
