package room

import (
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
)

// metrics are the room's Prometheus series, in a registry of their own.
type metrics struct {
	reg         *prometheus.Registry
	conns       prometheus.Gauge
	tunnelsOpen prometheus.Gauge
	tunnels     prometheus.Counter
	bytes       prometheus.Counter
	drops       *prometheus.CounterVec // by reason
	handshakes  *prometheus.CounterVec // by transport (net, ws) and result
	limits      *prometheus.CounterVec // by limit
}

func newMetrics(attendants func() float64) *metrics {
	m := &metrics{
		reg:         prometheus.NewRegistry(),
		conns:       prometheus.NewGauge(prometheus.GaugeOpts{Name: "room_connections", Help: "Peer connections with a muxrpc session."}),
		tunnelsOpen: prometheus.NewGauge(prometheus.GaugeOpts{Name: "room_tunnels_open", Help: "Tunnels being spliced."}),
		tunnels:     prometheus.NewCounter(prometheus.CounterOpts{Name: "room_tunnels_total", Help: "Tunnels opened."}),
		bytes:       prometheus.NewCounter(prometheus.CounterOpts{Name: "room_tunnel_bytes_total", Help: "Bytes spliced through tunnels (both directions)."}),
		drops:       prometheus.NewCounterVec(prometheus.CounterOpts{Name: "room_disconnects_total", Help: "Connections the room ended, by reason."}, []string{"reason"}),
		handshakes:  prometheus.NewCounterVec(prometheus.CounterOpts{Name: "room_handshakes_total", Help: "Secret handshakes, by transport (net, ws) and result."}, []string{"transport", "result"}),
		limits:      prometheus.NewCounterVec(prometheus.CounterOpts{Name: "room_limits_hit_total", Help: "Refusals because a limit was reached, by limit."}, []string{"limit"}),
	}
	m.reg.MustRegister(m.conns, m.tunnelsOpen, m.tunnels, m.bytes, m.drops, m.handshakes, m.limits,
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "room_attendants", Help: "Peers present in the room."}, attendants),
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	// Every handshake series exists from the start, at 0, so a scrape can
	// tell "none yet" from "not measured".
	for _, tr := range []string{transportNet, transportWS} {
		for _, r := range []string{"ok", "failed"} {
			m.handshakes.WithLabelValues(tr, r)
		}
	}
	return m
}
