package sbot

import (
	"context"
	"crypto/ed25519"
	"errors"
	"io/fs"
	"net"
	"path/filepath"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/cask-ssb/cask/feeds"
	"github.com/cask-ssb/cask/plugins/replicate"
)

// Replication kinds, the "kind" label of the replication metrics.
const (
	kindEBT    = "ebt"
	kindLegacy = "legacy"
)

// metrics are the daemon's Prometheus series, in a registry of its own
// (no globals: two nodes in one process keep their counts apart). A nil
// *metrics counts nothing: the node runs without metrics unless
// --debug-listen is set, and every method is safe on nil.
type metrics struct {
	reg *prometheus.Registry

	handshakes  *prometheus.CounterVec // transport, direction, result
	replicated  *prometheus.CounterVec // kind, result
	sent        *prometheus.CounterVec // kind
	appended    prometheus.Counter
	appendBatch prometheus.Histogram
	appendTime  prometheus.Histogram
	verifyBatch prometheus.Histogram
	verifyTime  prometheus.Histogram

	// The children the hot paths touch, resolved once.
	sentEBT, sentLegacy prometheus.Counter
	repl                map[string]map[string]prometheus.Counter // kind → result
}

// batchBuckets are message counts per batch (up to feedlog's 1000 and
// the EBT ingest batch of 256).
var batchBuckets = []float64{1, 2, 5, 10, 25, 50, 100, 250, 500, 1000}

func newMetrics(n *Node) *metrics {
	m := &metrics{
		reg: prometheus.NewRegistry(),
		handshakes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "sbot_handshakes_total",
			Help: "Secret handshakes by transport, direction (in, out) and result (ok, failed; unreachable: an outgoing dial that found no listener).",
		}, []string{"transport", "direction", "result"}),
		replicated: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "sbot_replicated_messages_total",
			Help: "Messages received from peers by replication kind (ebt, legacy) and result (stored; held: already stored; rejected: invalid, or after an invalid one in its batch).",
		}, []string{"kind", "result"}),
		sent: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "sbot_sent_messages_total",
			Help: "Messages sent to peers by replication kind (ebt; legacy: createHistoryStream served to a peer).",
		}, []string{"kind"}),
		appended: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "sbot_messages_appended_total",
			Help: "Messages appended to the store (published, replicated, added or imported).",
		}),
		appendBatch: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "sbot_append_batch_messages",
			Help:    "Messages per group commit of the feed writer.",
			Buckets: batchBuckets,
		}),
		appendTime: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "sbot_append_duration_seconds",
			Help:    "Time to append one group commit to the store (one batch, one fsync).",
			Buckets: prometheus.ExponentialBuckets(0.0001, 2, 16),
		}),
		verifyBatch: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "sbot_verify_batch_messages",
			Help:    "Messages per signature verification batch.",
			Buckets: batchBuckets,
		}),
		verifyTime: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "sbot_verify_duration_seconds",
			Help:    "Time to verify the signatures of one batch.",
			Buckets: prometheus.ExponentialBuckets(0.00005, 2, 16),
		}),
	}
	m.sentEBT = m.sent.WithLabelValues(kindEBT)
	m.sentLegacy = m.sent.WithLabelValues(kindLegacy)
	m.repl = map[string]map[string]prometheus.Counter{}
	for _, k := range []string{kindEBT, kindLegacy} {
		m.repl[k] = map[string]prometheus.Counter{}
		for _, r := range []string{"stored", "held", "rejected"} {
			m.repl[k][r] = m.replicated.WithLabelValues(k, r)
		}
	}
	for _, tr := range n.listenedTransports() {
		for _, d := range []string{"in", "out"} {
			for _, r := range []string{"ok", "failed"} {
				m.handshakes.WithLabelValues(tr, d, r)
			}
		}
	}
	m.reg.MustRegister(m.handshakes, m.replicated, m.sent, m.appended,
		m.appendBatch, m.appendTime, m.verifyBatch, m.verifyTime,
		connCollector{n}, &storeCollector{n: n}, syncCollector{n},
		newBlobCollector(filepath.Join(n.cfg.Repo, "blobs")),
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

// Committed implements feedlog.Observer.
func (m *metrics) Committed(n int, d time.Duration) {
	m.appended.Add(float64(n))
	m.appendBatch.Observe(float64(n))
	m.appendTime.Observe(d.Seconds())
}

// Verified implements feedlog.Observer.
func (m *metrics) Verified(n int, d time.Duration) {
	m.verifyBatch.Observe(float64(n))
	m.verifyTime.Observe(d.Seconds())
}

// ingested returns the replicate.Ingester hook counting the outcome of
// each batch of kind (nil without metrics).
func (m *metrics) ingested(kind string) func(replicate.Outcome) {
	if m == nil {
		return nil
	}
	c := m.repl[kind]
	stored, held, rejected := c["stored"], c["held"], c["rejected"]
	return func(o replicate.Outcome) {
		if o.Kept > 0 {
			stored.Add(float64(o.Kept))
		}
		if o.Held > 0 {
			held.Add(float64(o.Held))
		}
		if o.Refused > 0 {
			rejected.Add(float64(o.Refused))
		}
	}
}

// sentBy returns the hook counting messages sent with kind (nil without
// metrics).
func (m *metrics) sentBy(kind string) func(int) {
	if m == nil {
		return nil
	}
	c := m.sentEBT
	if kind == kindLegacy {
		c = m.sentLegacy
	}
	return func(n int) { c.Add(float64(n)) }
}

// handshake counts one handshake.
func (m *metrics) handshake(transport, direction, result string) {
	if m == nil {
		return
	}
	m.handshakes.WithLabelValues(transport, direction, result).Inc()
}

// refused is the secretstream.ListenerConfig.Refused hook of transport
// (nil without metrics).
func (m *metrics) refused(transport string) func(net.Addr, error) {
	if m == nil {
		return nil
	}
	c := m.handshakes.WithLabelValues(transport, "in", "failed")
	return func(net.Addr, error) { c.Inc() }
}

// countDials wraps every dialer so that each outgoing handshake is
// counted by transport and result.
func (m *metrics) countDials(ds map[string]dialer) map[string]dialer {
	if m == nil {
		return ds
	}
	out := make(map[string]dialer, len(ds))
	for name, d := range ds {
		transport := name
		if transport == "" {
			transport = feeds.TransportNet
		}
		out[name] = func(ctx context.Context, a feeds.Address) (net.Conn, ed25519.PublicKey, error) {
			c, pk, err := d(ctx, a)
			m.handshake(transport, "out", dialResult(err))
			return c, pk, err
		}
	}
	return out
}

// dialResult labels the outcome of a dial: a connection that was never
// made is not a failed handshake.
func dialResult(err error) string {
	var op *net.OpError
	switch {
	case err == nil:
		return "ok"
	case errors.As(err, &op) && op.Op == "dial":
		return "unreachable"
	}
	return "failed"
}

// listenedTransports are the transports whose series exist from the
// start (at zero): net always, ws when the daemon listens on it.
func (n *Node) listenedTransports() []string {
	ts := []string{feeds.TransportNet}
	if n.cfg.WSListen != "" && n.cfg.WSListen != "off" {
		ts = append(ts, feeds.TransportWS)
	}
	return ts
}

var connDesc = prometheus.NewDesc("sbot_connections", "Peer connections by transport and direction (the owner's local connections are not counted).", []string{"transport", "direction"}, nil)

// connCollector reads the connection manager at scrape time.
type connCollector struct{ n *Node }

func (c connCollector) Describe(ch chan<- *prometheus.Desc) { ch <- connDesc }

func (c connCollector) Collect(ch chan<- prometheus.Metric) {
	type key struct{ transport, direction string }
	counts := map[key]int{}
	for _, tr := range c.n.listenedTransports() {
		counts[key{tr, "in"}], counts[key{tr, "out"}] = 0, 0
	}
	for _, cn := range c.n.conns.connected() {
		counts[key{cn.transport, cn.direction}]++
	}
	for k, v := range counts {
		ch <- prometheus.MustNewConstMetric(connDesc, prometheus.GaugeValue, float64(v), k.transport, k.direction)
	}
}

var (
	storeMessagesDesc = prometheus.NewDesc("sbot_store_messages", "Messages in the store.", nil, nil)
	storeFeedsDesc    = prometheus.NewDesc("sbot_store_feeds", "Feeds with at least one message in the store.", nil, nil)
	storeDiskDesc     = prometheus.NewDesc("sbot_store_disk_bytes", "Bytes the store's files take on disk.", nil, nil)
)

// storeCollector reads the store's counts at scrape time.
type storeCollector struct{ n *Node }

func (c *storeCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- storeMessagesDesc
	ch <- storeFeedsDesc
	ch <- storeDiskDesc
}

func (c *storeCollector) Collect(ch chan<- prometheus.Metric) {
	msgs, nfeeds := c.n.store.Count()
	ch <- prometheus.MustNewConstMetric(storeMessagesDesc, prometheus.GaugeValue, float64(msgs))
	ch <- prometheus.MustNewConstMetric(storeFeedsDesc, prometheus.GaugeValue, float64(nfeeds))
	if b, err := c.n.store.DiskUsage(); err == nil {
		ch <- prometheus.MustNewConstMetric(storeDiskDesc, prometheus.GaugeValue, float64(b))
	}
}

var (
	feedsBehindDesc    = prometheus.NewDesc("sbot_feeds_behind", "Feeds of which a connected peer's EBT clock says it holds more messages than we do.", nil, nil)
	messagesBehindDesc = prometheus.NewDesc("sbot_messages_behind", "Messages the connected peers' EBT clocks say exist that we do not hold yet.", nil, nil)
	syncPeersDesc      = prometheus.NewDesc("sbot_sync_peers", "Connected peers whose EBT clock we know.", nil, nil)
)

// syncCollector compares the connected peers' EBT clocks with ours at
// scrape time (the same figures as `sbot sync`).
type syncCollector struct{ n *Node }

func (c syncCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- feedsBehindDesc
	ch <- messagesBehindDesc
	ch <- syncPeersDesc
}

func (c syncCollector) Collect(ch chan<- prometheus.Metric) {
	s, _ := c.n.syncProgress()
	ch <- prometheus.MustNewConstMetric(feedsBehindDesc, prometheus.GaugeValue, float64(s.FeedsBehind))
	ch <- prometheus.MustNewConstMetric(messagesBehindDesc, prometheus.GaugeValue, float64(s.Known-s.Held))
	ch <- prometheus.MustNewConstMetric(syncPeersDesc, prometheus.GaugeValue, float64(s.Peers))
}

var (
	blobsDesc      = prometheus.NewDesc("sbot_blobs", "Blobs stored.", nil, nil)
	blobsBytesDesc = prometheus.NewDesc("sbot_blobs_bytes", "Bytes of the blobs stored.", nil, nil)
)

// blobCollector counts the blob files; a scrape walks the directory at
// most once per blobScanEvery (a store of many blobs is not walked on
// every scrape).
type blobCollector struct {
	dir string

	mu    sync.Mutex
	at    time.Time
	count int64
	bytes int64
}

const blobScanEvery = 10 * time.Second

func newBlobCollector(dir string) *blobCollector { return &blobCollector{dir: dir} }

func (c *blobCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- blobsDesc
	ch <- blobsBytesDesc
}

func (c *blobCollector) Collect(ch chan<- prometheus.Metric) {
	c.mu.Lock()
	if c.at.IsZero() || time.Since(c.at) >= blobScanEvery {
		c.count, c.bytes = 0, 0
		_ = filepath.WalkDir(filepath.Join(c.dir, "sha256"), func(_ string, d fs.DirEntry, err error) error {
			if err != nil || d.IsDir() {
				return nil
			}
			if fi, err := d.Info(); err == nil {
				c.count++
				c.bytes += fi.Size()
			}
			return nil
		})
		c.at = time.Now()
	}
	count, bytes := c.count, c.bytes
	c.mu.Unlock()
	ch <- prometheus.MustNewConstMetric(blobsDesc, prometheus.GaugeValue, float64(count))
	ch <- prometheus.MustNewConstMetric(blobsBytesDesc, prometheus.GaugeValue, float64(bytes))
}
