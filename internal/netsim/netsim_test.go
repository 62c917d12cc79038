package netsim

import (
	"context"
	"log/slog"
	"testing"
	"time"
)

// logWriter sends slog lines to the test log.
type logWriter struct{ t testing.TB }

func (w logWriter) Write(p []byte) (int, error) { w.t.Log(string(p)); return len(p), nil }

func testLog(t testing.TB, level slog.Level) *slog.Logger {
	return slog.New(slog.NewTextHandler(logWriter{t}, &slog.HandlerOptions{Level: level}))
}

func smallConfig() Config {
	return Config{
		Seed: 1, Nodes: 5, Hops: 2, Messages: 5, PublishFor: time.Second,
		MeanFollows: 2, Alpha: 1.2,
		LatencyMin: time.Millisecond, LatencyMax: 5 * time.Millisecond, Bandwidth: 1 << 20,
		Degree: 3, DialEvery: 300 * time.Millisecond,
		Deadline: 30 * time.Second, Stall: 10 * time.Second,
	}
}

func TestNetsimSmall(t *testing.T) {
	p := NewPlan(smallConfig())
	s, err := New(p, Options{Dir: t.TempDir(), Log: testLog(t, slog.LevelInfo), NodeLog: testLog(t, slog.LevelWarn)})
	if err != nil {
		t.Fatal(err)
	}
	res, err := s.Run(context.Background())
	t.Logf("\n%s", res.Table(p.Config.Nodes))
	if err != nil {
		t.Fatal(err)
	}
}
