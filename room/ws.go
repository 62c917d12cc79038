package room

import (
	"net"
	"net/http"

	"github.com/cask-ssb/cask/internal/wsconn"
)

// wsTransport makes the room's HTTP server also its WebSocket transport, as
// go-ssb-room does: a WebSocket upgrade on any path becomes a connection of
// the room's secret-handshake server (the same handshake, limits and
// sessions as over TCP); every other request goes to h. The listener
// returned is accepted from like the TCP one and closed at shutdown.
func (s *Server) wsTransport(h http.Handler, addr net.Addr) (http.Handler, net.Listener) {
	wl := wsconn.NewHandler(addr, nil, s.log.With("component", "ws"))
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if wsconn.IsUpgrade(r) {
			wl.ServeHTTP(w, r)
			return
		}
		h.ServeHTTP(w, r)
	}), wl
}
