package sbot

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/cask-ssb/cask/feeds"
	"github.com/cask-ssb/cask/feeds/classic"
	"github.com/cask-ssb/cask/secretstream"
)

// scrape reads /metrics of a node with the Prometheus text parser.
func scrape(t *testing.T, n *Node) map[string]*dto.MetricFamily {
	t.Helper()
	body := httpGet(t, "http://"+n.DebugAddr()+"/metrics")
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(strings.NewReader(body))
	if err != nil {
		t.Fatalf("parse /metrics: %v\n%s", err, body)
	}
	return fams
}

func httpGet(t *testing.T, url string) string {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %s", url, resp.Status)
	}
	return string(b)
}

// metricValue is the value of the series name{labels} (a counter, a gauge,
// or the sum of a histogram); ok is false when there is no such series.
func metricValue(fams map[string]*dto.MetricFamily, name string, labels ...string) (v float64, ok bool) {
	fam := fams[name]
	if fam == nil {
		return 0, false
	}
	want := map[string]string{}
	for i := 0; i+1 < len(labels); i += 2 {
		want[labels[i]] = labels[i+1]
	}
next:
	for _, m := range fam.GetMetric() {
		for _, lp := range m.GetLabel() {
			if w, ok := want[lp.GetName()]; ok && w != lp.GetValue() {
				continue next
			}
		}
		switch {
		case m.Counter != nil:
			return m.Counter.GetValue(), true
		case m.Gauge != nil:
			return m.Gauge.GetValue(), true
		case m.Histogram != nil:
			return m.Histogram.GetSampleSum(), true
		}
	}
	return 0, false
}

// waitMetric polls the node's /metrics until name{labels} equals want.
func waitMetric(t *testing.T, n *Node, want float64, name string, labels ...string) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for {
		v, ok := metricValue(scrape(t, n), name, labels...)
		if ok && v == want {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s%v = %v (present %v), want %v", name, labels, v, ok, want)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// signedFeed makes n messages of kp's feed.
func signedFeed(t testing.TB, kp feeds.KeyPair, n int) []*classic.Message {
	t.Helper()
	msgs := make([]*classic.Message, 0, n)
	var state *classic.FeedState
	for i := 1; i <= n; i++ {
		m, err := classic.Create(kp.Private, state, float64(1700000000000+i), classic.RawJSON(fmt.Sprintf(`{"type":"post","text":"msg %d"}`, i)), nil)
		if err != nil {
			t.Fatal(err)
		}
		s := classic.StateAfter(m)
		state = &s
		msgs = append(msgs, m)
	}
	return msgs
}

func withDebug(c *Config) { c.DebugListen = "127.0.0.1:0" }

// TestMetricsScrape: during an EBT replication of N messages the
// receiver's counters move by N (stored, appended, verified), the
// sender's sent counter by N, each side counts one handshake and one
// connection, and a failed and an unreachable handshake are counted.
func TestMetricsScrape(t *testing.T) {
	const N = 300
	a, _ := startNodeWith(t, t.TempDir(), withDebug)
	b, _ := startNodeWith(t, t.TempDir(), withDebug)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if res := b.writer.Add(ctx, signedFeed(t, b.keys, N)); res.Err != nil || len(res.Records) != N {
		t.Fatalf("fill b: %d stored, %v", len(res.Records), res.Err)
	}

	before := scrape(t, a)
	for _, s := range []struct {
		name   string
		labels []string
	}{
		{"sbot_replicated_messages_total", []string{"kind", "ebt", "result", "stored"}},
		{"sbot_messages_appended_total", nil},
		{"sbot_store_messages", nil},
		{"sbot_connections", []string{"transport", "net", "direction", "out"}},
		{"sbot_handshakes_total", []string{"transport", "net", "direction", "out", "result", "ok"}},
	} {
		if v, ok := metricValue(before, s.name, s.labels...); !ok || v != 0 {
			t.Fatalf("before: %s%v = %v (present %v), want 0", s.name, s.labels, v, ok)
		}
	}
	for _, name := range []string{"go_goroutines", "process_resident_memory_bytes", "sbot_store_disk_bytes", "sbot_blobs", "sbot_feeds_behind"} {
		if _, ok := before[name]; !ok {
			t.Errorf("/metrics has no %s", name)
		}
	}

	if err := a.ConnectAddress(ctx, tcpAddr(t, b)); err != nil {
		t.Fatal(err)
	}
	waitLatest(t, a, b.ID(), N)
	waitMetric(t, a, 1, "sbot_sync_peers") // b's clock arrived

	got := scrape(t, a)
	for _, c := range []struct {
		name   string
		labels []string
		want   float64
	}{
		{"sbot_replicated_messages_total", []string{"kind", "ebt", "result", "stored"}, N},
		{"sbot_replicated_messages_total", []string{"kind", "ebt", "result", "rejected"}, 0},
		{"sbot_replicated_messages_total", []string{"kind", "legacy", "result", "stored"}, 0},
		{"sbot_messages_appended_total", nil, N},
		{"sbot_append_batch_messages", nil, N}, // histogram sum: every message in some batch
		{"sbot_verify_batch_messages", nil, N},
		{"sbot_store_messages", nil, N},
		{"sbot_store_feeds", nil, 1},
		{"sbot_connections", []string{"transport", "net", "direction", "out"}, 1},
		{"sbot_connections", []string{"transport", "net", "direction", "in"}, 0},
		{"sbot_handshakes_total", []string{"transport", "net", "direction", "out", "result", "ok"}, 1},
		{"sbot_feeds_behind", nil, 0},
		{"sbot_messages_behind", nil, 0},
	} {
		if v, ok := metricValue(got, c.name, c.labels...); !ok || v != c.want {
			t.Errorf("after: %s%v = %v (present %v), want %v", c.name, c.labels, v, ok, c.want)
		}
	}
	if h := got["sbot_append_duration_seconds"].GetMetric()[0].GetHistogram(); h.GetSampleCount() == 0 {
		t.Error("sbot_append_duration_seconds has no observation")
	}

	// The sender counted what it sent, and the handshake it accepted.
	waitMetric(t, b, N, "sbot_sent_messages_total", "kind", "ebt")
	waitMetric(t, b, 1, "sbot_handshakes_total", "transport", "net", "direction", "in", "result", "ok")
	waitMetric(t, b, 1, "sbot_connections", "transport", "net", "direction", "in")

	// A client with another network key fails the handshake.
	var other [32]byte
	other[0] = 1
	kp, _ := feeds.GenerateKeyPair(nil)
	if c, err := secretstream.Dial(ctx, "tcp", a.TCPAddr(), secretstream.AppKey(other), kp.Private, a.ID().PublicKey()); err == nil {
		c.Close()
		t.Fatal("handshake with another network key succeeded")
	}
	waitMetric(t, a, 1, "sbot_handshakes_total", "transport", "net", "direction", "in", "result", "failed")

	// A dial that finds nobody listening is unreachable, not failed.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dead := feeds.Address{Host: "127.0.0.1", Port: l.Addr().(*net.TCPAddr).Port, Key: kp.ID, Transport: feeds.TransportNet}.String()
	l.Close()
	if err := a.ConnectAddress(ctx, dead); err == nil {
		t.Fatal("dialled a closed port")
	}
	final := scrape(t, a)
	for _, c := range []struct {
		result string
		want   float64
	}{{"unreachable", 1}, {"failed", 0}, {"ok", 1}} {
		if v, _ := metricValue(final, "sbot_handshakes_total", "transport", "net", "direction", "out", "result", c.result); v != c.want {
			t.Errorf("outgoing handshakes %s = %v, want %v", c.result, v, c.want)
		}
	}
}

// TestMetricsScrapeWS: handshakes and connections over WebSocket are
// counted under transport="ws", in and out, ok and failed, and none of
// them under "net".
func TestMetricsScrapeWS(t *testing.T) {
	const N = 50
	a, _ := startNodeWith(t, t.TempDir(), func(c *Config) { withDebug(c); withWS(c) })
	b, _ := startNodeWith(t, t.TempDir(), func(c *Config) { withDebug(c); c.Listen = "off" })
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if res := a.writer.Add(ctx, signedFeed(t, a.keys, N)); res.Err != nil || len(res.Records) != N {
		t.Fatalf("fill a: %d stored, %v", len(res.Records), res.Err)
	}
	before := scrape(t, a)
	for _, l := range [][]string{
		{"transport", "ws", "direction", "in", "result", "ok"},
		{"transport", "ws", "direction", "in", "result", "failed"},
	} {
		if v, ok := metricValue(before, "sbot_handshakes_total", l...); !ok || v != 0 {
			t.Fatalf("before: handshakes%v = %v (present %v), want 0", l, v, ok)
		}
	}
	if v, ok := metricValue(before, "sbot_connections", "transport", "ws", "direction", "in"); !ok || v != 0 {
		t.Fatalf("before: ws connections in = %v (present %v), want 0", v, ok)
	}

	if err := b.ConnectAddress(ctx, wsAddrOf(t, a)); err != nil {
		t.Fatal(err)
	}
	waitLatest(t, b, a.ID(), N)
	waitMetric(t, a, 1, "sbot_handshakes_total", "transport", "ws", "direction", "in", "result", "ok")
	waitMetric(t, a, 1, "sbot_connections", "transport", "ws", "direction", "in")
	waitMetric(t, b, 1, "sbot_handshakes_total", "transport", "ws", "direction", "out", "result", "ok")
	waitMetric(t, b, 1, "sbot_connections", "transport", "ws", "direction", "out")

	// A peer with another network key fails the handshake over ws.
	other := base64.StdEncoding.EncodeToString(bytes.Repeat([]byte{1}, 32))
	c, _ := startNodeWith(t, t.TempDir(), func(c *Config) { withDebug(c); c.Listen = "off"; c.Caps = other })
	if err := c.ConnectAddress(ctx, wsAddrOf(t, a)); err == nil {
		t.Fatal("a peer with another network key connected over ws")
	}
	waitMetric(t, a, 1, "sbot_handshakes_total", "transport", "ws", "direction", "in", "result", "failed")
	waitMetric(t, c, 1, "sbot_handshakes_total", "transport", "ws", "direction", "out", "result", "failed")

	final := scrape(t, a)
	for _, l := range [][]string{
		{"transport", "net", "direction", "in", "result", "ok"},
		{"transport", "net", "direction", "in", "result", "failed"},
	} {
		if v, _ := metricValue(final, "sbot_handshakes_total", l...); v != 0 {
			t.Errorf("handshakes%v = %v, want 0: ws handshakes counted as net", l, v)
		}
	}
	if v, _ := metricValue(final, "sbot_handshakes_total", "transport", "ws", "direction", "in", "result", "ok"); v != 1 {
		t.Errorf("ws handshakes in ok = %v, want 1", v)
	}
}

// TestMetricsLegacy: legacy replication counts stored and rejected
// messages under kind="legacy".
func TestMetricsLegacy(t *testing.T) {
	n, _ := startNodeWith(t, t.TempDir(), withDebug)
	kp, msgs := feedOf(t, 5)
	items := []json.RawMessage{msgs[0].Compact, msgs[1].Compact, msgs[2].Compact,
		json.RawMessage(strings.Replace(string(msgs[3].Compact), "msg 4", "msg 4!", 1)), msgs[4].Compact}
	addr, closed := fakePeer(t, kp, items)
	if err := n.Connect(context.Background(), addr, kp.ID.PublicKey()); err != nil {
		t.Fatal(err)
	}
	select {
	case <-closed:
	case <-time.After(15 * time.Second):
		t.Fatal("the peer that sent an invalid message was not disconnected")
	}
	waitMetric(t, n, 3, "sbot_replicated_messages_total", "kind", "legacy", "result", "stored")
	got := scrape(t, n)
	// The invalid message, and the one after it if it came in the same batch.
	if v, _ := metricValue(got, "sbot_replicated_messages_total", "kind", "legacy", "result", "rejected"); v < 1 || v > 2 {
		t.Errorf("legacy rejected = %v, want 1 or 2", v)
	}
	if v, _ := metricValue(got, "sbot_replicated_messages_total", "kind", "ebt", "result", "stored"); v != 0 {
		t.Errorf("ebt stored = %v, want 0", v)
	}
}

// TestDebugListener: pprof answers on the debug listener; without
// --debug-listen there is no listener and no metrics.
func TestDebugListener(t *testing.T) {
	n, _ := startNodeWith(t, t.TempDir(), withDebug)
	if body := httpGet(t, "http://"+n.DebugAddr()+"/debug/pprof/"); !strings.Contains(body, "goroutine") {
		t.Fatalf("pprof index: %.200s", body)
	}
	if body := httpGet(t, "http://"+n.DebugAddr()+"/debug/pprof/goroutine?debug=1"); !strings.Contains(body, "goroutine profile") {
		t.Fatalf("goroutine profile: %.200s", body)
	}
	off, _ := startNode(t)
	if off.DebugAddr() != "" || off.metrics != nil {
		t.Fatalf("debug listener without --debug-listen: %q", off.DebugAddr())
	}
}

// TestDebugListenValidation: a non-loopback debug address is refused
// unless debug-listen-public is set.
func TestDebugListenValidation(t *testing.T) {
	for _, c := range []struct {
		addr   string
		public bool
		ok     bool
	}{
		{"", false, true},
		{"off", false, true},
		{"127.0.0.1:6078", false, true},
		{"[::1]:6078", false, true},
		{"localhost:0", false, true},
		{"127.0.0.2:6078", false, true},
		{":6078", false, false},
		{"0.0.0.0:6078", false, false},
		{"[::]:6078", false, false},
		{"192.0.2.1:6078", false, false},
		{"example.org:6078", false, false},
		{"0.0.0.0:6078", true, true},
		{":6078", true, true},
		{"127.0.0.1", false, false},
		{"127.0.0.1:99999", false, false},
		{"127.0.0.1:x", true, false},
	} {
		cfg := Defaults(t.TempDir())
		cfg.DebugListen, cfg.DebugListenPublic = c.addr, c.public
		cfg.SetSource("debug-listen", "flag --debug-listen")
		err := cfg.Validate()
		if (err == nil) != c.ok {
			t.Errorf("debug-listen %q public %v: err = %v, want ok %v", c.addr, c.public, err, c.ok)
			continue
		}
		var se *SettingError
		if err != nil && (!errors.As(err, &se) || se.Key != "debug-listen" || se.Source != "flag --debug-listen") {
			t.Errorf("debug-listen %q: error %v does not name the setting and its source", c.addr, err)
		}
	}
	// New refuses it too: nothing listens on a public address by default.
	cfg := Defaults(t.TempDir())
	cfg.Listen, cfg.DebugListen = "127.0.0.1:0", "0.0.0.0:0"
	if n, err := New(Options{Config: cfg}); err == nil {
		n.Close()
		t.Fatal("New accepted debug-listen 0.0.0.0:0 without debug-listen-public")
	}
}
