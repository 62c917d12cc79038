package mesh

import "github.com/prometheus/client_golang/prometheus"

// Metrics are the mesh's Prometheus series; register them with
// Collectors.
type Metrics struct {
	links      prometheus.Gauge
	tunnels    *prometheus.CounterVec // by direction: out (to another node), in (to our attendant)
	failed     prometheus.Counter
	bytes      prometheus.Counter
	rtt        prometheus.Histogram
	handshakes *prometheus.CounterVec
}

// NewMetrics returns unregistered series.
func NewMetrics() *Metrics {
	return &Metrics{
		links: prometheus.NewGauge(prometheus.GaugeOpts{Name: "room_mesh_links_up", Help: "Mesh links to other room nodes that are up."}),
		tunnels: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "room_mesh_tunnels_total",
			Help: "Tunnels forwarded over the mesh: out (to an attendant of another node), in (from another node to one of ours)."}, []string{"direction"}),
		failed: prometheus.NewCounter(prometheus.CounterOpts{Name: "room_mesh_tunnel_failures_total", Help: "Tunnels no node took (not here, gone, limit, link down)."}),
		bytes:  prometheus.NewCounter(prometheus.CounterOpts{Name: "room_mesh_tunnel_bytes_total", Help: "Bytes of tunnels forwarded in from other nodes (both directions)."}),
		rtt: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "room_mesh_rtt_seconds", Help: "Round-trip time of mesh pings.",
			Buckets: prometheus.ExponentialBuckets(0.0001, 4, 10)}),
		handshakes: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "room_mesh_handshakes_total", Help: "Incoming mesh handshakes, by result."}, []string{"result"}),
	}
}

// Collectors lists the series to register.
func (m *Metrics) Collectors() []prometheus.Collector {
	return []prometheus.Collector{m.links, m.tunnels, m.failed, m.bytes, m.rtt, m.handshakes}
}

// Handshakes is the counter of incoming mesh handshakes with result "ok"
// or "failed".
func (m *Metrics) Handshakes(result string) prometheus.Counter {
	return m.handshakes.WithLabelValues(result)
}
