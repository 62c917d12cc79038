package sbot

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/pprof"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// openDebug listens on --debug-listen (Config.Validate has checked it is
// loopback unless --debug-listen-public); nil when it is off.
func (n *Node) openDebug() (net.Listener, error) {
	if n.metrics == nil {
		return nil, nil
	}
	l, err := net.Listen("tcp", n.cfg.DebugListen)
	if err != nil {
		return nil, fmt.Errorf("debug-listen on %s: %w", n.cfg.DebugListen, err)
	}
	n.mu.Lock()
	n.debugAddr = l.Addr().String()
	n.mu.Unlock()
	return l, nil
}

// serveDebug serves /metrics and /debug/pprof/ on l until ctx ends.
func (n *Node) serveDebug(ctx context.Context, l net.Listener) error {
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(n.metrics.reg, promhttp.HandlerOpts{ErrorLog: slogPrinter{n}}))
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	n.log.Info("debug listener: Prometheus /metrics and /debug/pprof/", "addr", l.Addr().String())
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(l) }()
	var err error
	select {
	case err = <-errc:
	case <-ctx.Done():
		sctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		_ = srv.Shutdown(sctx)
		cancel()
		err = <-errc
	}
	if err != nil && !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("debug listener: %w", err)
	}
	return nil
}

// DebugAddr returns the debug listener's address ("host:port") once Serve
// listens, or "" when --debug-listen is off.
func (n *Node) DebugAddr() string {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.debugAddr
}

// slogPrinter logs promhttp's errors.
type slogPrinter struct{ n *Node }

func (p slogPrinter) Println(v ...any) { p.n.log.Warn("metrics: " + fmt.Sprint(v...)) }
