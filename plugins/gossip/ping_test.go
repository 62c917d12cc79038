package gossip

import (
	"context"
	"net"
	"testing"
	"time"

	"github.com/cask-ssb/cask/muxrpc"
	"github.com/cask-ssb/cask/plugins/service"
)

func TestPingAnswersAndTicks(t *testing.T) {
	a, b := net.Pipe()
	now := time.UnixMilli(1700000000000)
	m, err := service.MountAll(PingService(Options{Interval: 50 * time.Millisecond, Now: func() time.Time { return now }}))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	srv := muxrpc.NewEndpoint(ctx, a, m, muxrpc.Options{})
	cli := muxrpc.NewEndpoint(ctx, b, muxrpc.NewMux(), muxrpc.Options{})
	defer srv.Close()
	defer cli.Close()
	in, out, err := cli.Duplex(ctx, muxrpc.Method{"gossip", "ping"}, map[string]any{"timeout": 300000})
	if err != nil {
		t.Fatal(err)
	}
	if err := out.Write(int64(1)); err != nil {
		t.Fatal(err)
	}
	// One answer to our ping, then at least one unprompted tick.
	for i := 0; i < 2; i++ {
		var ts int64
		if err := in.Decode(ctx, &ts); err != nil {
			t.Fatalf("item %d: %v", i, err)
		}
		if ts != now.UnixMilli() {
			t.Fatalf("item %d = %d, want %d", i, ts, now.UnixMilli())
		}
	}
	if err := out.Close(); err != nil {
		t.Fatal(err)
	}
}
