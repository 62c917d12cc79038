// Package room is the rooms 2.0 server: it accepts secret-handshake
// connections, decides who gets a session (privacy mode, members, denied
// keys, limits), serves the room.* and tunnel.* methods, splices tunnels
// between attendants, and answers the operator on a unix socket.
//
// The room keeps no feeds and cannot read tunnels: it holds no key of
// their inner secret handshake. It never tells a peer another peer's IP
// address and logs addresses at debug level only. It must never import
// sbot/.
package room

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/cask-ssb/cask/feeds"
	"github.com/cask-ssb/cask/internal/unixsock"
	"github.com/cask-ssb/cask/muxrpc"
	"github.com/cask-ssb/cask/plugins/gossip"
	"github.com/cask-ssb/cask/plugins/httpauth"
	roomplug "github.com/cask-ssb/cask/plugins/room"
	"github.com/cask-ssb/cask/plugins/service"
	"github.com/cask-ssb/cask/plugins/tunnel"
	"github.com/cask-ssb/cask/plugins/whoami"
	"github.com/cask-ssb/cask/room/mesh"
	"github.com/cask-ssb/cask/room/roomdb"
	"github.com/cask-ssb/cask/room/web"
	"github.com/cask-ssb/cask/secretstream"
)

// Options for New.
type Options struct {
	Config Config
	Logger *slog.Logger
	// Trace, if set, is told of every call a peer makes (tests, tools).
	Trace func(peer feeds.FeedRef, method muxrpc.Method)
	// Listener, if set, is the peers' listener instead of TCP on
	// Config.Listen (a simulated network's, in internal/netsim); its
	// address must be host:port. Serve closes it.
	Listener net.Listener
}

// Server is a room server.
type Server struct {
	cfg     Config
	log     *slog.Logger
	keys    feeds.KeyPair
	caps    secretstream.AppKey
	db      roomdb.Store
	att     *roomplug.Attendants
	mux     *muxrpc.Mux // peers
	handler muxrpc.Handler
	admin   *muxrpc.Mux // the operator, on the unix socket
	web     *web.Server // the HTTP side: invites, aliases, sign-in, dashboard
	metrics *metrics
	mesh    *mesh.Node   // nil unless the room is one node of a mesh
	rpcLog  *slog.Logger // muxrpc's connection-level log, at debug level

	mu      sync.Mutex
	conns   map[feeds.FeedRef]*peerConn // the live session of each key
	nconns  int
	perIP   map[string]int
	tunnels map[feeds.FeedRef]int // open tunnels per origin
	tunIP   map[string]int        // open tunnels per origin IP
	addr    string                // listening multiserver address, once serving
	httpAdr string
	dbgAdr  string

	pending chan struct{} // handshake slots
	wg      sync.WaitGroup
	started atomic.Bool
	drain   drainer                // room drain
	lim     atomic.Pointer[Config] // the limits in force (Reload replaces them)
	// peerListener: Options.Listener (nil: TCP on cfg.Listen).
	peerListener net.Listener
}

// live returns the configuration whose limits are in force.
func (s *Server) live() *Config { return s.lim.Load() }

// Reload applies the limits of cfg (connections, attendants, per-IP and
// per-key limits, write timeout, tunnel caps) to the running room, e.g.
// on SIGHUP. Other settings (addresses, identity, mode) need a restart
// (the mode: room admin mode set).
func (s *Server) Reload(cfg Config) error {
	if err := cfg.Validate(); err != nil {
		return err
	}
	old := s.live()
	next := *old
	next.MaxConns, next.MaxAttendants, next.MaxConnsPerIP, next.MaxTunnelsPerKey = cfg.MaxConns, cfg.MaxAttendants, cfg.MaxConnsPerIP, cfg.MaxTunnelsPerKey
	next.LimitLoopback, next.WriteTimeout = cfg.LimitLoopback, cfg.WriteTimeout
	next.MaxTunnelBytes, next.MaxTunnelDuration = cfg.MaxTunnelBytes, cfg.MaxTunnelDuration
	next.MaxTunnelsPerIP, next.TunnelRate, next.TunnelBurst = cfg.MaxTunnelsPerIP, cfg.TunnelRate, cfg.TunnelBurst
	s.lim.Store(&next)
	s.log.Info("limits reloaded", "max-conns", next.MaxConns, "max-attendants", next.MaxAttendants, "max-conns-per-ip", next.MaxConnsPerIP,
		"max-tunnels-per-key", next.MaxTunnelsPerKey, "limit-loopback", next.LimitLoopback, "write-timeout", next.WriteTimeout,
		"max-tunnel-bytes", next.MaxTunnelBytes, "max-tunnel-duration", next.MaxTunnelDuration,
		"max-tunnels-per-ip", next.MaxTunnelsPerIP, "tunnel-rate", next.TunnelRate, "tunnel-burst", next.TunnelBurst)
	return nil
}

type peerConn struct {
	id       feeds.FeedRef
	ep       *muxrpc.Endpoint
	ip       string // remote IP, for per-IP limits (never shown to peers)
	loopback bool   // from 127.0.0.1/::1: per-IP limits apply only with --limit-loopback
}

// New opens the room's identity and database and assembles its services.
func New(o Options) (*Server, error) {
	cfg := o.Config
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	log := o.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if err := os.MkdirAll(cfg.Repo, 0o700); err != nil {
		return nil, fmt.Errorf("create repo %s: %w", cfg.Repo, err)
	}
	keys, created, err := feeds.LoadOrCreateSecret(cfg.KeyPath())
	if err != nil {
		return nil, fmt.Errorf("room identity: %w", err)
	}
	if created {
		log.Info("created room identity", "path", cfg.KeyPath(), "id", keys.ID.String())
	}
	caps, _ := cfg.CapsKey()
	mode, _ := roomdb.ParseMode(cfg.Mode)
	db, err := roomdb.OpenStore(context.Background(), cfg.DB, cfg.DBPath(), roomdb.Options{Mode: mode})
	if err != nil {
		return nil, err
	}
	s := &Server{
		cfg: cfg, log: log, keys: keys, caps: secretstream.AppKey(caps), db: db,
		att:     roomplug.NewAttendants(cfg.EventQueue),
		conns:   make(map[feeds.FeedRef]*peerConn),
		perIP:   make(map[string]int),
		tunIP:   make(map[string]int),
		tunnels: make(map[feeds.FeedRef]int),
		pending: make(chan struct{}, cfg.MaxPending),

		peerListener: o.Listener,
	}
	s.lim.Store(&cfg)
	s.rpcLog = slog.New(quietHandler{log.Handler()})
	s.metrics = newMetrics(func() float64 { return float64(s.att.Len()) })
	if err := s.newMesh(); err != nil {
		db.Close()
		return nil, err
	}
	scheme := cfg.LinkScheme
	if scheme == "" {
		scheme = "https"
	}
	s.web, err = web.New(web.Options{
		Room: keys.ID, Domain: cfg.Domain, Scheme: scheme, AliasSubdomains: cfg.AliasSubdomains,
		Address: s.PublicAddress, Store: db, Peers: roomPeers{s}, Logger: log.With("component", "web"),
		OnChange: s.enforce,
	})
	if err != nil {
		db.Close()
		return nil, err
	}
	s.mux = s.peerServices()
	s.handler = s.mux
	if o.Trace != nil {
		s.handler = muxrpc.HandlerFunc(func(ctx context.Context, req *muxrpc.Request) {
			if id, err := roomplug.Caller(req); err == nil {
				o.Trace(id, req.Method)
			}
			s.mux.HandleCall(ctx, req)
		})
	}
	s.admin = s.adminServices()
	return s, nil
}

// peerServices lists what peers can call.
func (s *Server) peerServices() *muxrpc.Mux {
	m := muxrpc.NewMux()
	// whoami and gossip.ping are open to every peer of a room; the room's
	// own methods check the caller themselves (plugins/room.Allowed).
	everyone := func(*muxrpc.Request) bool { return true }
	if err := service.Mount(m, everyone, whoami.Service(s.keys.ID), gossip.PingService(gossip.Options{Interval: s.cfg.KeepAlive})); err != nil {
		panic(err) // two fixed services: a duplicate is a programming error
	}
	roomplug.New(roomplug.Options{
		Room: s.keys.ID, Domain: s.cfg.Domain, AliasSubdomains: s.cfg.AliasSubdomains, Web: s.cfg.HTTPListen != "" && s.cfg.HTTPListen != "off", Store: s.db, Att: s.att, Logger: s.log, Batch: s.cfg.EventBatch,
		OnDrop: func(reason string) { s.metrics.drops.WithLabelValues(reason).Inc() },
	}).Register(m)
	httpauth.RegisterServer(m, s.authenticator())
	tunnel.RegisterServer(m, tunnel.ServerOptions{
		Room: s.keys.ID, Targets: s.att, Logger: s.log,
		Caps:    func() (int64, time.Duration) { l := s.live(); return l.MaxTunnelBytes, l.MaxTunnelDuration },
		Rate:    func() (int64, int64) { l := s.live(); return l.TunnelRate, l.TunnelBurst },
		Hooks:   tunnel.Hooks{Open: s.openTunnel, Bytes: func(n int) { s.metrics.bytes.Add(float64(n)) }},
		Forward: s.meshForward(),
	})
	return m
}

// openTunnel applies the per-key and per-IP tunnel limits and counts
// tunnels.
func (s *Server) openTunnel(origin, _ feeds.FeedRef) (func(), error) {
	lim := s.live()
	s.mu.Lock()
	if s.tunnels[origin] >= lim.MaxTunnelsPerKey {
		s.mu.Unlock()
		s.metrics.limits.WithLabelValues("tunnels-per-key").Inc()
		return nil, fmt.Errorf("room limit: at most %d open tunnels per key", lim.MaxTunnelsPerKey)
	}
	var ip string
	if pc := s.conns[origin]; pc != nil && (!pc.loopback || lim.LimitLoopback) && pc.ip != "" {
		ip = pc.ip
	}
	if ip != "" && s.tunIP[ip] >= lim.MaxTunnelsPerIP {
		s.mu.Unlock()
		s.metrics.limits.WithLabelValues("tunnels-per-ip").Inc()
		return nil, fmt.Errorf("room limit: at most %d open tunnels per IP address", lim.MaxTunnelsPerIP)
	}
	s.tunnels[origin]++
	if ip != "" {
		s.tunIP[ip]++
	}
	s.mu.Unlock()
	s.metrics.tunnels.Inc()
	s.metrics.tunnelsOpen.Inc()
	return func() {
		s.mu.Lock()
		if s.tunnels[origin]--; s.tunnels[origin] <= 0 {
			delete(s.tunnels, origin)
		}
		if ip != "" {
			if s.tunIP[ip]--; s.tunIP[ip] <= 0 {
				delete(s.tunIP, ip)
			}
		}
		s.mu.Unlock()
		s.metrics.tunnelsOpen.Dec()
	}, nil
}

// ID is the room's feed id.
func (s *Server) ID() feeds.FeedRef { return s.keys.ID }

// DB is the room's state.
func (s *Server) DB() roomdb.Store { return s.db }

// Address is the room's multiserver address once Serve listens.
func (s *Server) Address() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.addr
}

// listenHostPort is the host and port peers reach the room at: the TCP
// listener's (the domain when it listens on every address), or any other
// listener's host:port.
func (s *Server) listenHostPort(a net.Addr) (string, int, error) {
	if ta, ok := a.(*net.TCPAddr); ok {
		if ta.IP.IsUnspecified() {
			return s.cfg.Domain, ta.Port, nil
		}
		return ta.IP.String(), ta.Port, nil
	}
	host, p, err := net.SplitHostPort(a.String())
	if err != nil {
		return "", 0, fmt.Errorf("room: listener address %s: %w", a, err)
	}
	port, err := strconv.Atoi(p)
	if err != nil {
		return "", 0, fmt.Errorf("room: listener address %s: port: %w", a, err)
	}
	return host, port, nil
}

// DebugAddr is the metrics listener's address once Serve listens.
func (s *Server) DebugAddr() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.dbgAdr
}

func (s *Server) debugHandler() http.Handler {
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(s.metrics.reg, promhttp.HandlerOpts{}))
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	return mux
}

// HTTPAddr is the health page's address once Serve listens.
func (s *Server) HTTPAddr() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.httpAdr
}

// Attendants returns the live attendant set.
func (s *Server) Attendants() *roomplug.Attendants { return s.att }

// Serve listens and serves until ctx ends, then closes every connection
// and the database. ready, if not nil, is called once listening.
func (s *Server) Serve(ctx context.Context, ready func()) error {
	if !s.started.CompareAndSwap(false, true) {
		return errors.New("room: Serve called twice")
	}
	defer s.db.Close()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()

	ul, err := s.listenUnix()
	if err != nil {
		return err
	}
	defer os.Remove(s.cfg.SocketPath())
	tl := s.peerListener
	if tl == nil {
		tl, err = net.Listen("tcp", s.cfg.Listen)
		if err != nil {
			ul.Close()
			return fmt.Errorf("listen on %s: %w", s.cfg.Listen, err)
		}
	}
	var closers []func()
	closers = append(closers, func() { ul.Close() }, func() { tl.Close() })
	httpH, wsl := s.wsTransport(s.httpHandler(), tl.Addr())
	closers = append(closers, func() { wsl.Close() })
	if hs, err := s.startHTTP(s.cfg.HTTPListen, httpH, &s.httpAdr); err != nil {
		closeAll(closers)
		return err
	} else if hs != nil {
		closers = append(closers, func() { hs.Close() })
	}
	if hs, err := s.startHTTP(s.cfg.DebugListen, s.debugHandler(), &s.dbgAdr); err != nil {
		closeAll(closers)
		return err
	} else if hs != nil {
		closers = append(closers, func() { hs.Close() })
	}

	host, port, err := s.listenHostPort(tl.Addr())
	if err != nil {
		closeAll(closers)
		return err
	}
	addr := feeds.Address{Host: host, Port: port, Key: s.keys.ID}.String()
	s.mu.Lock()
	s.addr = addr
	s.mu.Unlock()
	mode, _ := s.db.Mode(ctx)
	s.log.Info("room serving", "address", addr, "id", s.keys.ID.String(), "mode", string(mode), "socket", s.cfg.SocketPath())

	stopMesh, err := s.startMesh(ctx)
	if err != nil {
		closeAll(closers)
		return err
	}
	closers = append(closers, stopMesh)

	s.wg.Add(3)
	go s.acceptTCP(ctx, wsl, transportWS)
	go s.acceptTCP(ctx, tl, transportNet)
	go s.acceptUnix(ctx, ul)
	if ready != nil {
		ready()
	}
	<-ctx.Done()
	s.log.Info("room shutting down")
	closeAll(closers)
	s.mu.Lock()
	var eps []*muxrpc.Endpoint
	for _, pc := range s.conns {
		eps = append(eps, pc.ep)
	}
	s.mu.Unlock()
	var cw sync.WaitGroup
	for _, ep := range eps {
		cw.Add(1)
		go func() { defer cw.Done(); _ = ep.Close() }()
	}
	cw.Wait()
	s.wg.Wait()
	return nil
}

func closeAll(fs []func()) {
	for _, f := range fs {
		f()
	}
}

func (s *Server) startHTTP(listen string, h http.Handler, record *string) (*http.Server, error) {
	if listen == "" || listen == "off" {
		return nil, nil
	}
	l, err := net.Listen("tcp", listen)
	if err != nil {
		return nil, fmt.Errorf("listen on %s: %w", listen, err)
	}
	s.mu.Lock()
	*record = l.Addr().String()
	s.mu.Unlock()
	// net/http's own messages (TLS handshake errors) name the client's
	// address: they go to the log at debug level only.
	hs := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second, IdleTimeout: 2 * time.Minute,
		ErrorLog: slog.NewLogLogger(s.log.Handler(), slog.LevelDebug)}
	tls := record == &s.httpAdr && s.cfg.TLSCert != ""
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		serve := func() error { return hs.Serve(l) }
		if tls {
			serve = func() error { return hs.ServeTLS(l, s.cfg.TLSCert, s.cfg.TLSKey) }
		}
		if err := serve(); err != nil && !errors.Is(err, http.ErrServerClosed) {
			s.log.Error("http server failed", "listen", listen, "err", err)
		}
	}()
	return hs, nil
}

// httpHandler is everything served on --http-listen: the web side
// (room/web) and the health check. Other HTTP handlers of the room (the
// WebSocket transport) mount on this mux too.
func (s *Server) httpHandler() http.Handler {
	mux := http.NewServeMux()
	s.web.Register(mux)
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprintf(w, `{"status":"ok","attendants":%d}`+"\n", s.att.Len())
	})
	s.registerReady(mux)
	return mux
}

// Web is the room's web side.
func (s *Server) Web() *web.Server { return s.web }

// PublicAddress is the room's multiserver address as the web pages give
// it: the --domain host with the peer port, never an interface address.
func (s *Server) PublicAddress() string {
	s.mu.Lock()
	addr := s.addr
	s.mu.Unlock()
	if addr == "" {
		return ""
	}
	a, err := feeds.ParseAddress(addr)
	if err != nil {
		return addr
	}
	host := s.cfg.Domain
	if h, _, err := net.SplitHostPort(host); err == nil {
		host = h
	}
	a.Host = host
	return a.String()
}

// roomPeers gives the web side the live connections.
type roomPeers struct{ s *Server }

func (p roomPeers) Endpoint(id feeds.FeedRef) (*muxrpc.Endpoint, bool) {
	p.s.mu.Lock()
	defer p.s.mu.Unlock()
	pc := p.s.conns[id]
	if pc == nil {
		return nil, false
	}
	return pc.ep, true
}

func (p roomPeers) Attendants() []feeds.FeedRef { return p.s.att.IDs() }

func (s *Server) listenUnix() (net.Listener, error) {
	path := s.cfg.SocketPath()
	// A live room answers on the socket: do not steal it.
	if c, err := net.DialTimeout("unix", path, time.Second); err == nil {
		c.Close()
		return nil, fmt.Errorf("another room is running with repo %s (socket %s answers)", s.cfg.Repo, path)
	}
	return unixsock.Listen(path)
}

func (s *Server) acceptUnix(ctx context.Context, l net.Listener) {
	defer s.wg.Done()
	for {
		c, err := l.Accept()
		if err != nil {
			if ctx.Err() == nil && !errors.Is(err, net.ErrClosed) {
				s.log.Error("admin socket accept failed", "err", err)
			}
			return
		}
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			ep := muxrpc.NewEndpoint(ctx, c, s.admin, muxrpc.Options{Logger: s.log})
			<-ep.Done()
		}()
	}
}

// The transports of peer connections, as the handshake metrics name them.
const (
	transportNet = "net"
	transportWS  = "ws"
)

// acceptTCP accepts peer connections from l, which carries transport (net
// or ws), until ctx ends or l is closed.
func (s *Server) acceptTCP(ctx context.Context, l net.Listener, transport string) {
	defer s.wg.Done()
	for {
		c, err := l.Accept()
		if err != nil {
			if ctx.Err() == nil && !errors.Is(err, net.ErrClosed) {
				s.log.Error("tcp accept failed", "err", err)
				var ne net.Error
				if errors.As(err, &ne) && ne.Timeout() {
					continue
				}
				// e.g. EMFILE: back off a little instead of spinning.
				select {
				case <-time.After(50 * time.Millisecond):
					continue
				case <-ctx.Done():
				}
			}
			return
		}
		select {
		case s.pending <- struct{}{}:
		case <-ctx.Done():
			c.Close()
			return
		}
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			s.handle(ctx, c, transport)
		}()
	}
}

func ipOf(a net.Addr) (ip string, loopback bool) {
	if ta, ok := a.(*net.TCPAddr); ok {
		return ta.IP.String(), ta.IP.IsLoopback()
	}
	host, _, err := net.SplitHostPort(a.String())
	if err != nil {
		return a.String(), false
	}
	p := net.ParseIP(host)
	return host, p != nil && p.IsLoopback()
}

// handle runs one peer connection, reached over transport, from the
// handshake to its end.
func (s *Server) handle(ctx context.Context, raw net.Conn, transport string) {
	if tc, ok := raw.(*net.TCPConn); ok && s.cfg.sendBuffer > 0 {
		_ = tc.SetWriteBuffer(s.cfg.sendBuffer)
	}
	ip, loopback := ipOf(raw.RemoteAddr())
	limited := !loopback || s.live().LimitLoopback
	var overIP bool
	s.mu.Lock()
	if limited && s.perIP[ip] >= s.live().MaxConnsPerIP {
		overIP = true
	} else {
		s.perIP[ip]++
	}
	s.mu.Unlock()
	if !overIP {
		defer func() {
			s.mu.Lock()
			if s.perIP[ip]--; s.perIP[ip] <= 0 {
				delete(s.perIP, ip)
			}
			s.mu.Unlock()
		}()
	}

	hctx, cancel := context.WithTimeout(ctx, s.cfg.HandshakeTimeout)
	sc, err := secretstream.Server(hctx, raw, s.caps, s.keys.Private, nil)
	cancel()
	<-s.pending
	if err != nil {
		s.metrics.handshakes.WithLabelValues(transport, "failed").Inc()
		s.log.Debug("handshake failed", "ip", ip, "err", err)
		return
	}
	s.metrics.handshakes.WithLabelValues(transport, "ok").Inc()
	id, err := feeds.FeedRefFromPublicKey(sc.RemoteKey())
	if err != nil {
		sc.Close()
		return
	}
	conn := &deadlineConn{Conn: sc, timeout: func() time.Duration { return s.live().WriteTimeout }}
	conn.touch()

	if refusal := s.admit(ctx, id, overIP); refusal != nil {
		s.log.Info("session refused", "peer", id.String(), "reason", refusal.Error())
		s.log.Debug("session refused", "peer", id.String(), "ip", ip)
		s.refuse(ctx, conn, sc.RemoteKey(), refusal)
		return
	}

	ep := muxrpc.NewEndpoint(ctx, conn, s.handler, muxrpc.Options{RemoteKey: sc.RemoteKey(), Logger: s.rpcLog.With("peer", id.String())})
	pc := &peerConn{id: id, ep: ep, ip: ip, loopback: loopback}
	s.mu.Lock()
	old := s.conns[id]
	s.conns[id] = pc
	s.nconns++
	s.mu.Unlock()
	s.metrics.conns.Inc()
	if old != nil {
		// A second connection with the same key replaces the first; the
		// attendant entry moves to the new one without left/joined.
		if s.att.IsPresent(id) {
			s.att.Join(id, ep)
		}
		s.metrics.drops.WithLabelValues("replaced").Inc()
		s.log.Info("connection replaced by a newer one with the same key", "peer", id.String())
		go old.ep.Close()
	}
	s.log.Debug("peer connected", "peer", id.String(), "ip", ip)

	s.keepalive(ctx, conn, ep, id)

	s.att.Leave(id, ep)
	s.mu.Lock()
	if s.conns[id] == pc {
		delete(s.conns, id)
	}
	s.nconns--
	s.mu.Unlock()
	s.metrics.conns.Dec()
	if conn.timedOut.Load() {
		s.metrics.drops.WithLabelValues("write-timeout").Inc()
		s.log.Info("peer dropped: it took nothing for longer than the write deadline", "peer", id.String(), "deadline", s.live().WriteTimeout)
	} else if err := ep.Err(); err != nil {
		s.log.Debug("peer disconnected", "peer", id.String(), "err", err)
	}
}

// admit decides whether a freshly authenticated peer gets a session.
func (s *Server) admit(ctx context.Context, id feeds.FeedRef, overIP bool) error {
	if s.Draining() {
		return errDraining
	}
	if overIP {
		s.metrics.limits.WithLabelValues("conns-per-ip").Inc()
		return fmt.Errorf("room limit: at most %d connections per IP address", s.live().MaxConnsPerIP)
	}
	s.mu.Lock()
	n, replacing := s.nconns, s.conns[id] != nil
	s.mu.Unlock()
	if n >= s.live().MaxConns && !replacing {
		s.metrics.limits.WithLabelValues("max-conns").Inc()
		return fmt.Errorf("room full: at most %d connections", s.live().MaxConns)
	}
	if !replacing && s.att.Len() >= s.live().MaxAttendants {
		s.metrics.limits.WithLabelValues("max-attendants").Inc()
		return fmt.Errorf("room full: at most %d attendants", s.live().MaxAttendants)
	}
	return s.sessionCheck(ctx, id)
}

func (s *Server) sessionCheck(ctx context.Context, id feeds.FeedRef) error {
	mode, err := s.db.Mode(ctx)
	if err != nil {
		return fmt.Errorf("room unavailable: %w", err)
	}
	_, member, err := s.db.Role(ctx, id)
	if err != nil {
		return fmt.Errorf("room unavailable: %w", err)
	}
	denied, err := s.db.IsDenied(ctx, id)
	if err != nil {
		return fmt.Errorf("room unavailable: %w", err)
	}
	return roomplug.SessionAllowed(mode, member, denied)
}

// refuseGrace is how long a refused peer may read its refusal.
const refuseGrace = 3 * time.Second

// refuse serves a session in which every call fails with why, and ends
// it after refuseGrace: the peer learns the reason from its first call.
func (s *Server) refuse(ctx context.Context, conn net.Conn, key []byte, why error) {
	h := muxrpc.HandlerFunc(func(_ context.Context, req *muxrpc.Request) { _ = req.Fail(why) })
	ep := muxrpc.NewEndpoint(ctx, conn, h, muxrpc.Options{RemoteKey: key, MaxStreams: 4})
	t := time.NewTimer(refuseGrace)
	defer t.Stop()
	select {
	case <-t.C:
		s.metrics.drops.WithLabelValues("refused").Inc()
		_ = ep.Close()
	case <-ep.Done():
	}
}

// keepalive runs until ep ends: every interval without traffic from the
// peer it calls tunnel.ping; a peer that answered nothing (not even an
// error) within the next interval has vanished and is disconnected.
func (s *Server) keepalive(ctx context.Context, conn *deadlineConn, ep *muxrpc.Endpoint, id feeds.FeedRef) {
	iv := s.cfg.KeepAlive
	t := time.NewTicker(iv)
	defer t.Stop()
	for {
		select {
		case <-ep.Done():
			return
		case <-ctx.Done():
			<-ep.Done()
			return
		case <-t.C:
		}
		if time.Since(conn.lastRead()) < iv {
			continue
		}
		pctx, cancel := context.WithTimeout(ctx, iv)
		err := ep.Async(pctx, nil, muxrpc.Method{"tunnel", "ping"})
		cancel()
		var ce *muxrpc.CallError
		if err == nil || errors.As(err, &ce) || time.Since(conn.lastRead()) < iv {
			continue // it answered, or at least said something
		}
		select {
		case <-ep.Done():
			return
		default:
		}
		s.log.Info("peer vanished: no answer to keepalive", "peer", id.String(), "after", iv*2)
		s.metrics.drops.WithLabelValues("keepalive").Inc()
		go ep.Close()
		<-ep.Done()
		return
	}
}

// deadlineConn puts a write deadline on every write (a peer that takes
// nothing for that long is dropped) and records when it last read.
type deadlineConn struct {
	net.Conn
	timeout func() time.Duration
	last    atomic.Int64 // unix nanos of the last successful read
	// timedOut is set when a write failed on the deadline.
	timedOut atomic.Bool
}

func (c *deadlineConn) touch() { c.last.Store(time.Now().UnixNano()) }

func (c *deadlineConn) lastRead() time.Time { return time.Unix(0, c.last.Load()) }

func (c *deadlineConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	if n > 0 {
		c.touch()
	}
	return n, err
}

func (c *deadlineConn) Write(p []byte) (int, error) {
	_ = c.Conn.SetWriteDeadline(time.Now().Add(c.timeout()))
	n, err := c.Conn.Write(p)
	if err != nil && errors.Is(err, os.ErrDeadlineExceeded) {
		c.timedOut.Store(true)
	}
	return n, err
}

// enforce re-checks every session after an admin change (deny, member
// removed, mode changed) and ends the ones no longer allowed.
func (s *Server) enforce(ctx context.Context) {
	s.mu.Lock()
	list := make([]*peerConn, 0, len(s.conns))
	for _, pc := range s.conns {
		list = append(list, pc)
	}
	s.mu.Unlock()
	for _, pc := range list {
		if err := s.sessionCheck(ctx, pc.id); err != nil {
			s.log.Info("session ended after an admin change", "peer", pc.id.String(), "reason", err.Error())
			s.metrics.drops.WithLabelValues("admin").Inc()
			go pc.ep.Close()
		}
	}
}

// Status is the answer of `room status`.
type Status struct {
	ID          string `json:"id"`
	Address     string `json:"address"`
	Mode        string `json:"mode"`
	Attendants  int    `json:"attendants"`
	Connections int    `json:"connections"`
	Members     int    `json:"members"`
	TunnelsOpen int    `json:"tunnelsOpen"`
	Draining    bool   `json:"draining"`
	// Mesh is this node's part of a mesh (absent without one).
	Mesh *MeshStatus `json:"mesh,omitempty"`
}

// Status reports the room's state.
func (s *Server) Status(ctx context.Context) (Status, error) {
	mode, err := s.db.Mode(ctx)
	if err != nil {
		return Status{}, err
	}
	n, err := s.db.CountMembers(ctx)
	if err != nil {
		return Status{}, err
	}
	s.mu.Lock()
	st := Status{ID: s.keys.ID.String(), Address: s.addr, Mode: string(mode), Attendants: s.att.Len(), Connections: s.nconns, Members: n}
	for _, k := range s.tunnels {
		st.TunnelsOpen += k
	}
	s.mu.Unlock()
	st.Draining = s.Draining()
	st.Mesh = s.meshStatus()
	return st, nil
}
