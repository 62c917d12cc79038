package blobs

import (
	"bytes"
	"context"
	"errors"
	"net"
	"strings"
	"testing"
	"time"

	blobstore "github.com/cask-ssb/cask/feeds/blobs"
	"github.com/cask-ssb/cask/muxrpc"
	"github.com/cask-ssb/cask/plugins/service"
)

// addBlob sends data to blobs.add the way `sbot blobs add` does: 64 KiB
// binary chunks, stopping at the first write error, then Close.
func addBlob(ctx context.Context, e *muxrpc.Endpoint, data []byte) error {
	snk, err := e.Sink(ctx, muxrpc.Method{"blobs", "add"})
	if err != nil {
		return err
	}
	for len(data) > 0 {
		k := min(len(data), 64<<10)
		if err := snk.WriteRaw(muxrpc.FlagBinary, data[:k]); err != nil {
			return err
		}
		data = data[k:]
	}
	return snk.Close()
}

// TestAddOversizeAlwaysFails: a blob at or over the store's limit is
// refused with the size error every time, and the client sees that error
// (never success, never a bare "stream closed"), whichever of the
// server's end and the client's writes wins the race. Nothing is stored.
func TestAddOversizeAlwaysFails(t *testing.T) {
	for _, tc := range []struct {
		name   string
		max    int64
		size   int
		rounds int
	}{
		{"6MB over the default limit", 0, 6_000_000, 5},
		{"small limit, many rounds", 100 << 10, 300 << 10, 200},
		{"exactly at the limit", 100 << 10, 100 << 10, 50},
	} {
		t.Run(tc.name, func(t *testing.T) {
			st, err := blobstore.Open(t.TempDir(), tc.max)
			if err != nil {
				t.Fatal(err)
			}
			m := New(st, nil)
			mux, err := service.MountAll(m.Service())
			if err != nil {
				t.Fatal(err)
			}
			ca, cb := net.Pipe()
			server := muxrpc.NewEndpoint(context.Background(), ca, mux, muxrpc.Options{})
			client := muxrpc.NewEndpoint(context.Background(), cb, nil, muxrpc.Options{})
			defer server.Close()
			defer client.Close()
			data := bytes.Repeat([]byte("0123456789abcdef"), tc.size/16)
			for round := 0; round < tc.rounds; round++ {
				ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
				err := addBlob(ctx, client, data)
				cancel()
				if err == nil {
					t.Fatalf("round %d: a %d-byte blob was accepted (limit %d)", round, len(data), st.MaxSize())
				}
				var ce *muxrpc.CallError
				if !errors.As(err, &ce) || !strings.Contains(ce.Message, "too large") {
					t.Fatalf("round %d: client saw %v, want the size error", round, err)
				}
			}
			// The connection is still usable and a small blob is stored.
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			if err := addBlob(ctx, client, []byte("small")); err != nil {
				t.Fatalf("small blob after refusals: %v", err)
			}
			var has bool
			if err := client.Async(ctx, &has, muxrpc.Method{"blobs", "has"}, "&"+strings.Repeat("A", 43)+"=.sha256"); err != nil || has {
				t.Fatalf("has: %v %v", has, err)
			}
		})
	}
}

// TestInvalidIDQuotesPrefix: "invalid id:" keeps the JS wording for a
// normal argument and quotes only a prefix of a huge one.
func TestInvalidIDQuotesPrefix(t *testing.T) {
	st, err := blobstore.Open(t.TempDir(), 0)
	if err != nil {
		t.Fatal(err)
	}
	m := New(st, nil)
	mux, err := service.MountAll(m.Service())
	if err != nil {
		t.Fatal(err)
	}
	ca, cb := net.Pipe()
	server := muxrpc.NewEndpoint(context.Background(), ca, mux, muxrpc.Options{})
	client := muxrpc.NewEndpoint(context.Background(), cb, nil, muxrpc.Options{})
	defer server.Close()
	defer client.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	for _, tc := range []struct{ arg, want string }{
		{"nope", "invalid id:nope"},
		{strings.Repeat("A", 1<<20), "invalid id:" + strings.Repeat("A", muxrpc.MaxQuoted) + "…"},
	} {
		err := client.Async(ctx, nil, muxrpc.Method{"blobs", "has"}, tc.arg)
		var ce *muxrpc.CallError
		if !errors.As(err, &ce) || ce.Message != tc.want {
			t.Fatalf("has(%.20s…): %.200v, want %.200q", tc.arg, err, tc.want)
		}
	}
}
