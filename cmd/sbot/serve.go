package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/cask-ssb/cask/sbot"
)

// setting binds one configuration value to a flag and an environment
// variable. Precedence: flag > environment > REPO/config.toml > default.
type setting struct {
	flag, env, usage string
	apply            func(c *sbot.Config, v string) error
}

var serveSettings = []setting{
	{"listen", "SSB_LISTEN", `TCP listen address ("off" disables TCP) (default ":8008")`, func(c *sbot.Config, v string) error { c.Listen = v; return nil }},
	{"caps", "SSB_CAPS", "network key (secret-handshake app key), base64 (default: the SSB main network)", func(c *sbot.Config, v string) error { c.Caps = v; return nil }},
	{"key", "SSB_KEY", "secret file to use, e.g. ~/.ssb/secret (default REPO/secret, created on first start)", func(c *sbot.Config, v string) error { c.Key = v; return nil }},
	{"log-format", "SSB_LOG_FORMAT", `log format: "text" or "json" (default "text")`, func(c *sbot.Config, v string) error { c.LogFormat = v; return nil }},
	{"log-level", "SSB_LOG_LEVEL", `log level: debug, info, warn, error (default "info")`, func(c *sbot.Config, v string) error { c.LogLevel = v; return nil }},
	{"max-conns", "SSB_MAX_CONNS", fmt.Sprintf("maximum concurrent peer connections, 1 to %d (default 64)", sbot.MaxMaxConns), intSetting(func(c *sbot.Config, n int) { c.MaxConns = n })},
	{"hops", "SSB_HOPS", fmt.Sprintf("replicate feeds within this many follow hops of ours, 0 to %d (default 2)", sbot.MaxHops), intSetting(func(c *sbot.Config, n int) { c.Hops = n })},
	{"peers", "SSB_PEERS", "peers to stay connected to: multiserver addresses (net:HOST:PORT~shs:KEY), comma-separated; reconnected with back-off", func(c *sbot.Config, v string) error {
		c.Peers = nil
		for _, p := range strings.Split(v, ",") {
			if p = strings.TrimSpace(p); p != "" {
				c.Peers = append(c.Peers, p)
			}
		}
		return nil
	}},
	{"max-streams", "SSB_MAX_STREAMS", fmt.Sprintf("maximum concurrent calls/streams per connection, 1 to %d (default 256)", sbot.MaxMaxStreams), intSetting(func(c *sbot.Config, n int) { c.MaxStreams = n })},
	{"allow-insecure-secret", "SSB_ALLOW_INSECURE_SECRET", "start even if the secret file is readable by group or others", func(c *sbot.Config, v string) error {
		b, err := strconv.ParseBool(v)
		if err != nil {
			return errors.New("want true or false")
		}
		c.AllowInsecureSecret = b
		return nil
	}},
	{"rooms", "SSB_ROOMS", "rooms to stay an attendant of: multiserver addresses (net:HOST:PORT~shs:KEY), comma-separated; reconnected with back-off", func(c *sbot.Config, v string) error {
		c.Rooms = nil
		for _, p := range strings.Split(v, ",") {
			if p = strings.TrimSpace(p); p != "" {
				c.Rooms = append(c.Rooms, p)
			}
		}
		return nil
	}},
	{"max-outgoing", "SSB_MAX_OUTGOING", fmt.Sprintf("maximum connections the daemon dials by itself (followed peers first, then pubs and room attendants), 0 to %d (default 8)", sbot.MaxOutgoing), intSetting(func(c *sbot.Config, n int) { c.MaxOutgoing = n })},
	{"ws-listen", "SSB_WS_LISTEN", `WebSocket address for peers (multiserver ws:, secret handshake inside), HOST:PORT; "off" (the default) disables it`, func(c *sbot.Config, v string) error { c.WSListen = v; return nil }},
	{"ws-trusted-proxies", "SSB_WS_TRUSTED_PROXIES", "reverse proxies (CIDRs or IP addresses, comma-separated) whose X-Forwarded-For the WebSocket listener believes", func(c *sbot.Config, v string) error {
		c.WSTrustedProxies = nil
		for _, p := range strings.Split(v, ",") {
			if p = strings.TrimSpace(p); p != "" {
				c.WSTrustedProxies = append(c.WSTrustedProxies, p)
			}
		}
		return nil
	}},
	{"tunnel-accept", "SSB_TUNNEL_ACCEPT", `whom to keep an incoming tunneled connection (through a room) from: "followed" or "anyone" (default "followed")`, func(c *sbot.Config, v string) error { c.TunnelAccept = v; return nil }},
	{"debug-listen", "SSB_DEBUG_LISTEN", `address for Prometheus /metrics and /debug/pprof/, e.g. 127.0.0.1:6078 (default "off"); a loopback address unless --debug-listen-public`, func(c *sbot.Config, v string) error { c.DebugListen = v; return nil }},
	{"debug-listen-public", "SSB_DEBUG_LISTEN_PUBLIC", "allow --debug-listen on a non-loopback address (metrics and pprof open to the network)", boolSetting(func(c *sbot.Config, b bool) { c.DebugListenPublic = b })},
	{"ebt-stall-timeout", "SSB_EBT_STALL_TIMEOUT", fmt.Sprintf("how long the peer we receive a feed from over EBT may send nothing of it while more exists, before another peer that has more is asked (%s to %s, default %s)", sbot.MinEBTStallTimeout, sbot.MaxEBTStallTimeout, sbot.Defaults("").EBTStallTimeout), func(c *sbot.Config, v string) error { c.EBTStallTimeout = strings.TrimSpace(v); return nil }},
}

// boolSettings are the settings given as flags without a value.
var boolSettings = map[string]bool{"allow-insecure-secret": true, "debug-listen-public": true}

// boolSetting parses true or false.
func boolSetting(set func(*sbot.Config, bool)) func(*sbot.Config, string) error {
	return func(c *sbot.Config, v string) error {
		b, err := strconv.ParseBool(strings.TrimSpace(v))
		if err != nil {
			return errors.New("want true or false")
		}
		set(c, b)
		return nil
	}
}

// intSetting parses an integer; its range is checked by Config.Validate,
// the one check for flags, environment and config.toml alike.
func intSetting(set func(*sbot.Config, int)) func(*sbot.Config, string) error {
	return func(c *sbot.Config, v string) error {
		n, err := strconv.Atoi(strings.TrimSpace(v))
		if err != nil {
			return errors.New("want an integer")
		}
		set(c, n)
		return nil
	}
}

func addRepoFlag(fs *pflag.FlagSet) {
	fs.String("repo", "", "repo directory (env SSB_REPO, default ~/.ssb-go)")
}

func repoFrom(cmd *cobra.Command) string {
	if f := cmd.Flags().Lookup("repo"); f != nil && f.Changed {
		return f.Value.String()
	}
	return sbot.DefaultRepo()
}

// resolveConfig applies defaults, config.toml, environment and flags.
func resolveConfig(cmd *cobra.Command) (sbot.Config, error) {
	cfg := sbot.Defaults(repoFrom(cmd))
	if err := sbot.LoadConfigFile(&cfg); err != nil {
		return cfg, usageErr("%w", err)
	}
	for _, s := range serveSettings {
		if v, ok := os.LookupEnv(s.env); ok {
			if err := s.apply(&cfg, v); err != nil {
				return cfg, usageErr("%s = %q (from environment %s): %w", s.flag, v, s.env, err)
			}
			cfg.SetSource(s.flag, "environment "+s.env)
		}
		if f := cmd.Flags().Lookup(s.flag); f != nil && f.Changed {
			if err := s.apply(&cfg, f.Value.String()); err != nil {
				return cfg, usageErr("%s = %q (from flag --%s): %w", s.flag, f.Value.String(), s.flag, err)
			}
			cfg.SetSource(s.flag, "flag --"+s.flag)
		}
	}
	if err := cfg.Validate(); err != nil {
		return cfg, usageErr("invalid settings:\n%w", err)
	}
	return cfg, nil
}

func newLogger(cfg sbot.Config) (*slog.Logger, error) {
	var level slog.Level
	if err := level.UnmarshalText([]byte(cfg.LogLevel)); err != nil {
		return nil, usageErr("log-level %q: want debug, info, warn or error", cfg.LogLevel)
	}
	opts := &slog.HandlerOptions{Level: level}
	switch strings.ToLower(cfg.LogFormat) {
	case "text", "":
		return slog.New(slog.NewTextHandler(os.Stderr, opts)), nil
	case "json":
		return slog.New(slog.NewJSONHandler(os.Stderr, opts)), nil
	}
	return nil, usageErr("log format %q: want text or json", cfg.LogFormat)
}

func addServeCmd(root *cobra.Command) {
	cmd := &cobra.Command{
		Use:   "serve",
		Short: "Run the daemon",
		Long: `Run the daemon: listen on TCP with the secret handshake and on the
owner-only unix socket REPO/socket, and serve muxrpc until SIGINT/SIGTERM.

Every setting is also an environment variable and a key in REPO/config.toml
(listen, caps, key, log-format, log-level, max-conns, max-streams, hops, peers,
allow-insecure-secret, rooms, tunnel-accept, max-outgoing, debug-listen,
debug-listen-public, ws-listen, ws-trusted-proxies, ebt-stall-timeout);
flags win over the environment, which wins over the file.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := resolveConfig(cmd)
			if err != nil {
				return err
			}
			if err := sbot.CheckSecretFile(cfg.KeyPath(), cfg.AllowInsecureSecret); err != nil {
				return err
			}
			log, err := newLogger(cfg)
			if err != nil {
				return err
			}
			node, err := sbot.New(sbot.Options{Config: cfg, Logger: log})
			if err != nil {
				return err
			}
			ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			return node.Serve(ctx)
		},
	}
	addRepoFlag(cmd.Flags())
	for _, s := range serveSettings {
		if boolSettings[s.flag] {
			cmd.Flags().Bool(s.flag, false, s.usage+" (env "+s.env+")")
			continue
		}
		cmd.Flags().String(s.flag, "", s.usage+" (env "+s.env+")")
	}
	root.AddCommand(cmd)
}
