package main

import (
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/cask-ssb/cask/room"
)

// setting binds one configuration value to a flag and SSB_ROOM_<NAME>.
// Precedence: flag > environment > REPO/config.toml > default. Every
// value then goes through room.Config.Validate.
type setting struct {
	flag, usage string
	apply       func(c *room.Config, v string) error
}

func (s setting) env() string {
	return "SSB_ROOM_" + strings.ToUpper(strings.ReplaceAll(s.flag, "-", "_"))
}

func str(set func(*room.Config, string)) func(*room.Config, string) error {
	return func(c *room.Config, v string) error { set(c, v); return nil }
}

func num(set func(*room.Config, int64)) func(*room.Config, string) error {
	return func(c *room.Config, v string) error {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			return fmt.Errorf("want an integer, got %q", v)
		}
		set(c, n)
		return nil
	}
}

func dur(set func(*room.Config, time.Duration)) func(*room.Config, string) error {
	return func(c *room.Config, v string) error {
		d, err := time.ParseDuration(v)
		if err != nil {
			return fmt.Errorf("want a duration like 10s, got %q", v)
		}
		set(c, d)
		return nil
	}
}

var serveSettings = []setting{
	{"listen", `TCP address for peers (secret handshake + muxrpc) (default ":8008")`, str(func(c *room.Config, v string) { c.Listen = v })},
	{"http-listen", `HTTP address of the web side: invites, alias pages, sign-in with SSB, dashboard ("off" disables) (default ":3000")`, str(func(c *room.Config, v string) { c.HTTPListen = v })},
	{"tls-cert", "serve HTTPS with this certificate (PEM file; with --tls-key); without it, plain HTTP for a TLS reverse proxy", str(func(c *room.Config, v string) { c.TLSCert = v })},
	{"tls-key", "the private key (PEM file) of --tls-cert", str(func(c *room.Config, v string) { c.TLSKey = v })},
	{"alias-subdomains", "also serve alias pages at https://NAME.DOMAIN and give out those URLs (true/false) (default false)", func(c *room.Config, v string) error {
		b, err := strconv.ParseBool(v)
		if err != nil {
			return fmt.Errorf("want true or false, got %q", v)
		}
		c.AliasSubdomains = b
		return nil
	}},
	{"debug-listen", `Prometheus /metrics address ("off" disables) (default "127.0.0.1:6060")`, str(func(c *room.Config, v string) { c.DebugListen = v })},
	{"caps", "network key (secret-handshake app key), base64 (default: the SSB main network)", str(func(c *room.Config, v string) { c.Caps = v })},
	{"key", "secret file (default REPO/secret, created on first start)", str(func(c *room.Config, v string) { c.Key = v })},
	{"domain", `public host name, used in metadata and alias/invite URLs (default "localhost")`, str(func(c *room.Config, v string) { c.Domain = v })},
	{"db", `database: a SQLite file (sqlite:PATH or a path; default REPO/room.sqlite) or PostgreSQL (postgres://USER@HOST:PORT/DATABASE), which several room nodes can share`, str(func(c *room.Config, v string) { c.DB = v })},
	{"mode", `privacy mode at first start: open, community or restricted (then stored; change it with "room admin mode set") (default "community")`, str(func(c *room.Config, v string) { c.Mode = v })},
	{"log-format", `log format: text or json (default "text")`, str(func(c *room.Config, v string) { c.LogFormat = v })},
	{"log-level", `log level: debug, info, warn, error (default "info"); IP addresses are logged at debug only`, str(func(c *room.Config, v string) { c.LogLevel = v })},
	{"max-conns", "maximum peer connections (default 4096)", num(func(c *room.Config, n int64) { c.MaxConns = int(n) })},
	{"max-attendants", "maximum attendants (default 4096)", num(func(c *room.Config, n int64) { c.MaxAttendants = int(n) })},
	{"max-conns-per-ip", "maximum connections from one IP address (default 16)", num(func(c *room.Config, n int64) { c.MaxConnsPerIP = int(n) })},
	{"max-tunnels-per-key", "maximum open tunnels one peer may originate (default 32)", num(func(c *room.Config, n int64) { c.MaxTunnelsPerKey = int(n) })},
	{"max-tunnels-per-ip", "maximum open tunnels originated from one IP address; loopback exempt unless --limit-loopback (default 128)", num(func(c *room.Config, n int64) { c.MaxTunnelsPerIP = int(n) })},
	{"limit-loopback", "apply per-IP limits to loopback addresses too (true/false) (default false)", func(c *room.Config, v string) error {
		b, err := strconv.ParseBool(v)
		if err != nil {
			return fmt.Errorf("want true or false, got %q", v)
		}
		c.LimitLoopback = b
		return nil
	}},
	{"handshake-timeout", "time allowed for a secret handshake (default 10s)", dur(func(c *room.Config, d time.Duration) { c.HandshakeTimeout = d })},
	{"max-pending", "concurrent handshakes (default 256)", num(func(c *room.Config, n int64) { c.MaxPending = int(n) })},
	{"write-timeout", "a peer that takes no data for this long is disconnected (default 10s)", dur(func(c *room.Config, d time.Duration) { c.WriteTimeout = d })},
	{"keepalive", "ping a silent peer after this long; drop it after twice this (default 20s)", dur(func(c *room.Config, d time.Duration) { c.KeepAlive = d })},
	{"max-tunnel-bytes", "end a tunnel after this many bytes (0 = no cap) (default 0)", num(func(c *room.Config, n int64) { c.MaxTunnelBytes = n })},
	{"max-tunnel-duration", "end a tunnel after this long (0 = no cap) (default 0)", dur(func(c *room.Config, d time.Duration) { c.MaxTunnelDuration = d })},
	{"tunnel-rate", "bytes per second each tunnel may carry in each direction, token bucket (0 = no limit) (default 0)", num(func(c *room.Config, n int64) { c.TunnelRate = n })},
	{"tunnel-burst", "token bucket size in bytes for --tunnel-rate (default: one second of the rate)", num(func(c *room.Config, n int64) { c.TunnelBurst = n })},
	{"event-batch", "gather attendant events this long before writing them to a subscriber (default 20ms)", dur(func(c *room.Config, d time.Duration) { c.EventBatch = d })},
	{"event-queue", "attendant events a subscriber may lag behind before it is dropped (default 4096)", num(func(c *room.Config, n int64) { c.EventQueue = int(n) })},
	{"mesh-listen", `mesh address (HOST:PORT) where the other nodes of this room connect (default: none)`, str(func(c *room.Config, v string) { c.MeshListen = v })},
	{"mesh-with", "the other nodes' mesh addresses, comma-separated (HOST:PORT,...)", str(func(c *room.Config, v string) { c.MeshWith = splitList(v) })},
	{"mesh-key-file", "file with the mesh key shared by the nodes (base64 of 32 bytes, mode 0600; create it with `room mesh-key FILE`)", str(func(c *room.Config, v string) { c.MeshKeyFile = v })},
}

// splitList splits a comma-separated list, dropping empty items.
func splitList(v string) []string {
	var out []string
	for _, p := range strings.Split(v, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}

func addRepoFlag(fs *pflag.FlagSet) {
	fs.String("repo", "", "repo directory (env SSB_ROOM_REPO, default ~/.ssb-room)")
}

func repoFrom(cmd *cobra.Command) string {
	if f := cmd.Flags().Lookup("repo"); f != nil && f.Changed {
		return f.Value.String()
	}
	return room.DefaultRepo()
}

// resolveConfig applies defaults, config.toml, environment and flags, then
// validates the result.
func resolveConfig(cmd *cobra.Command) (room.Config, error) {
	cfg := room.Defaults(repoFrom(cmd))
	if err := room.LoadConfigFile(&cfg); err != nil {
		return cfg, usageErr("%w", err)
	}
	for _, s := range serveSettings {
		if v, ok := os.LookupEnv(s.env()); ok {
			if err := s.apply(&cfg, v); err != nil {
				return cfg, usageErr("%s: %w", s.env(), err)
			}
		}
		if f := cmd.Flags().Lookup(s.flag); f != nil && f.Changed {
			if err := s.apply(&cfg, f.Value.String()); err != nil {
				return cfg, usageErr("--%s: %w", s.flag, err)
			}
		}
	}
	if err := cfg.Validate(); err != nil {
		return cfg, usageErr("%w", err)
	}
	return cfg, nil
}

func newLogger(cfg room.Config) *slog.Logger {
	var level slog.Level
	_ = level.UnmarshalText([]byte(cfg.LogLevel)) // validated
	opts := &slog.HandlerOptions{Level: level}
	if cfg.LogFormat == "json" {
		return slog.New(slog.NewJSONHandler(os.Stderr, opts))
	}
	return slog.New(slog.NewTextHandler(os.Stderr, opts))
}

// raiseFileLimit sets the open-files soft limit to the hard limit: a
// public room holds thousands of connections.
func raiseFileLimit(log *slog.Logger) {
	var rl syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &rl); err != nil {
		log.Warn("read open-files limit", "err", err)
		return
	}
	if rl.Cur < rl.Max {
		old := rl.Cur
		rl.Cur = rl.Max
		if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &rl); err != nil {
			log.Warn("raise open-files limit", "err", err)
			return
		}
		log.Info("raised open-files limit", "from", old, "to", rl.Cur)
	}
}

func newServeCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "serve",
		Short: "Run the room server",
		Long: `Run the room: accept peers with the secret handshake on --listen, serve
room.* and tunnel.*, answer the operator on REPO/socket, until SIGINT/SIGTERM.

Every setting is also an environment variable SSB_ROOM_<FLAG> (e.g.
SSB_ROOM_MAX_CONNS) and a key of REPO/config.toml (e.g. max-conns = 2000);
flags win over the environment, which wins over the file. SIGHUP re-reads the
file and the environment and applies the limits (max-*, limit-loopback,
write-timeout, tunnel caps) without a restart.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := resolveConfig(cmd)
			if err != nil {
				return err
			}
			log := newLogger(cfg)
			raiseFileLimit(log)
			srv, err := room.New(room.Options{Config: cfg, Logger: log})
			if err != nil {
				return err
			}
			log.Info("room database", "backend", srv.DB().Backend())
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			// SIGHUP re-reads config.toml and the environment (flags
			// still win) and applies the limits.
			hup := make(chan os.Signal, 1)
			signal.Notify(hup, syscall.SIGHUP)
			defer signal.Stop(hup)
			go func() {
				for {
					select {
					case <-ctx.Done():
						return
					case <-hup:
						next, err := resolveConfig(cmd)
						if err == nil {
							err = srv.Reload(next)
						}
						if err != nil {
							log.Error("SIGHUP: configuration not reloaded", "err", err)
						}
					}
				}
			}()
			return srv.Serve(ctx, nil)
		},
	}
	addRepoFlag(cmd.Flags())
	for _, s := range serveSettings {
		cmd.Flags().String(s.flag, "", s.usage+" (env "+s.env()+")")
	}
	cmd.Flags().Lookup("limit-loopback").NoOptDefVal = "true"
	cmd.Flags().Lookup("alias-subdomains").NoOptDefVal = "true"
	return cmd
}
