package muxrpc

import (
	"context"
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

func TestAsyncBothDirections(t *testing.T) {
	a, b := pipePair(t, testMux(), testMux(), Options{}, Options{})
	ctx := context.Background()
	var wg sync.WaitGroup
	errs := make(chan error, 200)
	for i := range 100 {
		for _, e := range []*Endpoint{a, b} {
			wg.Add(1)
			go func() {
				defer wg.Done()
				var got map[string]int
				if err := e.Async(ctx, &got, Method{"echo"}, map[string]int{"i": i}); err != nil {
					errs <- err
					return
				}
				if got["i"] != i {
					errs <- fmt.Errorf("echo %d returned %v", i, got)
				}
			}()
		}
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
}

func TestAsyncReplyTypes(t *testing.T) {
	_, b := pipePair(t, testMux(), nil, Options{}, Options{})
	ctx := context.Background()
	tests := []struct {
		name   string
		method string
		arg    any
		out    func() any
		check  func(v any) string
	}{
		{"string reply into *string", "text", "héllo", func() any { return new(string) },
			func(v any) string { return *v.(*string) }},
		{"empty string reply is JSON", "text", "", func() any { return new(string) },
			func(v any) string { return "[" + *v.(*string) + "]" }},
		{"string reply into RawMessage", "text", "a\"b", func() any { return new(json.RawMessage) },
			func(v any) string { return string(*v.(*json.RawMessage)) }},
		{"json reply into RawMessage", "echo", map[string]int{"x": 1}, func() any { return new(json.RawMessage) },
			func(v any) string { return string(*v.(*json.RawMessage)) }},
		{"number reply into int", "echo", 42, func() any { return new(int) },
			func(v any) string { return fmt.Sprint(*v.(*int)) }},
		{"binary reply into []byte", "bytes", nil, func() any { return new([]byte) },
			func(v any) string { return fmt.Sprint(*v.(*[]byte)) }},
		{"binary reply packet", "bytes", nil, func() any { return new(Packet) },
			func(v any) string { p := v.(*Packet); return p.Flag.String() + fmt.Sprint(p.Body) }},
		{"string reply packet flag", "text", "x", func() any { return new(Packet) },
			func(v any) string { return v.(*Packet).Flag.String() }},
	}
	want := []string{"héllo", "[]", `"a\"b"`, `{"x":1}`, "42", "[1 2 3]", "binary[1 2 3]", "string"}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out := tt.out()
			var args []any
			if tt.arg != nil {
				args = []any{tt.arg}
			}
			if err := b.Async(ctx, out, Method{tt.method}, args...); err != nil {
				t.Fatal(err)
			}
			if got := tt.check(out); got != want[i] {
				t.Fatalf("got %q, want %q", got, want[i])
			}
		})
	}
}

func TestRemoteErrorAndUnknownMethods(t *testing.T) {
	_, b := pipePair(t, testMux(), nil, Options{}, Options{})
	ctx := context.Background()
	tests := []struct {
		name     string
		call     func() error
		wantName string
		wantMsg  string
	}{
		{"async handler error", func() error { return b.Async(ctx, nil, Method{"fail"}) },
			"TypeError", "this went wrong"},
		{"async unknown", func() error { return b.Async(ctx, nil, Method{"ebt", "replicate"}) },
			"Error", "method:ebt,replicate is not in list of allowed methods"},
		{"async wrong type", func() error { return b.Async(ctx, nil, Method{"count"}) },
			"Error", "no async:count"},
		{"source unknown", func() error {
			src, err := b.Source(ctx, Method{"room", "attendants"})
			if err != nil {
				return err
			}
			_, err = src.Next(ctx)
			return err
		}, "Error", "method:room,attendants is not in list of allowed methods"},
		{"duplex unknown", func() error {
			src, _, err := b.Duplex(ctx, Method{"tunnel", "connect"})
			if err != nil {
				return err
			}
			_, err = src.Next(ctx)
			return err
		}, "Error", "method:tunnel,connect is not in list of allowed methods"},
		{"sink unknown", func() error {
			snk, err := b.Sink(ctx, Method{"nope"})
			if err != nil {
				return err
			}
			return snk.Close()
		}, "Error", "method:nope is not in list of allowed methods"},
		{"source ends with error", func() error {
			src, err := b.Source(ctx, Method{"countThenFail"})
			if err != nil {
				return err
			}
			for {
				if _, err := src.Next(ctx); err != nil {
					return err
				}
			}
		}, "Error", "source broke"},
		{"panic", func() error { return b.Async(ctx, nil, Method{"panic"}) },
			"Error", "muxrpc: handler for panic panicked: kaboom"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.call()
			var ce *CallError
			if !errors.As(err, &ce) {
				t.Fatalf("err = %v, want *CallError", err)
			}
			if ce.Name != tt.wantName || ce.Message != tt.wantMsg {
				t.Fatalf("got %q %q, want %q %q", ce.Name, ce.Message, tt.wantName, tt.wantMsg)
			}
		})
	}
	// the connection stayed up
	var s string
	if err := b.Async(ctx, &s, Method{"text"}, "still here"); err != nil || s != "still here" {
		t.Fatalf("after errors: %q %v", s, err)
	}
}

func TestSourceSinkDuplex(t *testing.T) {
	_, b := tcpPair(t, testMux(), nil, Options{}, Options{})
	ctx := context.Background()

	t.Run("source", func(t *testing.T) {
		src, err := b.Source(ctx, Method{"count"}, 5000)
		if err != nil {
			t.Fatal(err)
		}
		n := 0
		for body, err := range src.All(ctx) {
			if err != nil {
				t.Fatal(err)
			}
			n++
			if want := fmt.Sprintf(`{"seq":%d}`, n); string(body) != want {
				t.Fatalf("item %d = %s", n, body)
			}
		}
		if n != 5000 {
			t.Fatalf("got %d items", n)
		}
	})
	t.Run("sink", func(t *testing.T) {
		snk, err := b.Sink(ctx, Method{"sum"})
		if err != nil {
			t.Fatal(err)
		}
		for i := range 100 {
			if err := snk.Write(i); err != nil {
				t.Fatal(err)
			}
		}
		if err := snk.Close(); err != nil {
			t.Fatalf("close: %v", err)
		}
	})
	t.Run("sink error", func(t *testing.T) {
		snk, err := b.Sink(ctx, Method{"sum"})
		if err != nil {
			t.Fatal(err)
		}
		if err := snk.Write(-5); err != nil {
			t.Fatal(err)
		}
		err = snk.Close()
		var ce *CallError
		if !errors.As(err, &ce) || ce.Message != "negative total -5" {
			t.Fatalf("close = %v", err)
		}
	})
	t.Run("duplex", func(t *testing.T) {
		src, snk, err := b.Duplex(ctx, Method{"dup", "echo"})
		if err != nil {
			t.Fatal(err)
		}
		items := []any{"text", []byte{9, 8}, map[string]bool{"ok": true}, 7}
		wantFlags := []Flag{FlagString, FlagBinary, FlagJSON, FlagJSON}
		wantBodies := []string{"text", "\x09\x08", `{"ok":true}`, "7"}
		for _, it := range items {
			if err := snk.Write(it); err != nil {
				t.Fatal(err)
			}
		}
		for i := range items {
			p, err := src.NextPacket(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if p.Flag.Type() != wantFlags[i] || !p.Flag.IsStream() || string(p.Body) != wantBodies[i] {
				t.Fatalf("item %d: %v %q", i, p.Flag, p.Body)
			}
		}
		if err := snk.Close(); err != nil {
			t.Fatal(err)
		}
		if _, err := src.Next(ctx); !errors.Is(err, io.EOF) {
			t.Fatalf("after close: %v, want EOF", err)
		}
	})
	waitFor(t, "streams forgotten", func() bool {
		o, i, c := b.streamCounts()
		return o == 0 && i == 0 && c == 0
	})
}

func TestThousandConcurrentCalls(t *testing.T) {
	_, b := tcpPair(t, testMux(), nil, Options{MaxStreams: 2000}, Options{})
	ctx := context.Background()
	var wg sync.WaitGroup
	var failed atomic.Int32
	for i := range 1000 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if i%10 == 0 {
				src, err := b.Source(ctx, Method{"count"}, 20)
				if err != nil {
					failed.Add(1)
					return
				}
				n := 0
				for _, err := range src.All(ctx) {
					if err != nil {
						failed.Add(1)
						return
					}
					n++
				}
				if n != 20 {
					failed.Add(1)
				}
				return
			}
			var got int
			if err := b.Async(ctx, &got, Method{"echo"}, i); err != nil || got != i {
				failed.Add(1)
			}
		}()
	}
	wg.Wait()
	if n := failed.Load(); n != 0 {
		t.Fatalf("%d calls failed", n)
	}
}

func TestEarlyAbortByRequester(t *testing.T) {
	m := NewMux()
	stopped := make(chan error, 1)
	var produced atomic.Int64
	m.RegisterSource(Method{"forever"}, func(ctx context.Context, req *Request, out *Sink) error {
		for {
			if err := out.Write(produced.Add(1)); err != nil {
				stopped <- err
				return err
			}
			if ctx.Err() != nil {
				stopped <- ctx.Err()
				return ctx.Err()
			}
		}
	})
	a, b := pipePair(t, m, nil, Options{}, Options{})
	ctx := context.Background()
	for _, how := range []string{"close", "break", "ctx"} {
		t.Run(how, func(t *testing.T) {
			cctx, cancel := context.WithCancel(ctx)
			defer cancel()
			src, err := b.Source(cctx, Method{"forever"})
			if err != nil {
				t.Fatal(err)
			}
			switch how {
			case "close":
				for range 10 {
					if _, err := src.Next(ctx); err != nil {
						t.Fatal(err)
					}
				}
				_ = src.Close()
				if _, err := src.Next(ctx); !errors.Is(err, ErrStreamClosed) {
					t.Fatalf("next after close: %v", err)
				}
			case "break":
				n := 0
				for _, err := range src.All(ctx) {
					if err != nil {
						t.Fatal(err)
					}
					if n++; n == 10 {
						break
					}
				}
			case "ctx":
				if _, err := src.Next(ctx); err != nil {
					t.Fatal(err)
				}
				cancel()
			}
			select {
			case err := <-stopped:
				if !errors.Is(err, ErrStreamClosed) && !errors.Is(err, context.Canceled) {
					t.Fatalf("producer stopped with %v", err)
				}
			case <-time.After(5 * time.Second):
				t.Fatal("producer did not stop after abort")
			}
			waitFor(t, "both sides forget the stream", func() bool {
				o, _, _ := b.streamCounts()
				_, i, _ := a.streamCounts()
				return o == 0 && i == 0
			})
		})
	}
}

func TestCallContextCancellation(t *testing.T) {
	_, b := pipePair(t, testMux(), nil, Options{}, Options{})
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	start := time.Now()
	err := b.Async(ctx, nil, Method{"block"})
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("err = %v", err)
	}
	if time.Since(start) > 2*time.Second {
		t.Fatal("cancellation took too long")
	}
	if _, _, c := b.streamCounts(); c != 0 {
		t.Fatalf("%d calls still registered", c)
	}
	// A late reply for the forgotten call is dropped; the endpoint still works.
	var got int
	if err := b.Async(context.Background(), &got, Method{"echo"}, 3); err != nil || got != 3 {
		t.Fatal(got, err)
	}
}

func TestPermissionHookAndManifest(t *testing.T) {
	owner, _, _ := ed25519.GenerateKey(nil)
	m := testMux()
	m.Allow = func(ctx context.Context, req *Request) bool {
		if req.Method.String() == "text" {
			return req.RemoteKey().Equal(owner)
		}
		return true
	}
	tests := []struct {
		name    string
		key     ed25519.PublicKey
		wantErr string
	}{
		{"owner", owner, ""},
		{"stranger", make(ed25519.PublicKey, 32), "method:text is not in list of allowed methods"},
		{"no key", nil, "method:text is not in list of allowed methods"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			server, client := pipePair(t, m, nil, Options{RemoteKey: tt.key}, Options{})
			_ = server
			var s string
			err := client.Async(context.Background(), &s, Method{"text"}, "hi")
			if tt.wantErr == "" {
				if err != nil || s != "hi" {
					t.Fatalf("got %q %v", s, err)
				}
			} else {
				var ce *CallError
				if !errors.As(err, &ce) || ce.Message != tt.wantErr {
					t.Fatalf("err = %v", err)
				}
			}
			// manifest is always allowed
			var man map[string]any
			if err := client.Async(context.Background(), &man, Method{"manifest"}); err != nil {
				t.Fatal(err)
			}
			if man["manifest"] != "sync" || man["count"] != "source" || man["sum"] != "sink" ||
				man["dup"].(map[string]any)["echo"] != "duplex" || man["echo"] != "async" {
				t.Fatalf("manifest = %v", man)
			}
		})
	}
}

func TestRawWireRules(t *testing.T) {
	tests := []struct {
		name      string
		flag      Flag
		req       int32
		body      string
		wantFlag  Flag
		wantBody  string
		thenEnd   bool // the peer sends its end afterwards (streams)
		extraRecv []string
	}{
		{"name as plain string", FlagJSON, 1, `{"name":"text","args":["x"]}`,
			FlagString, "x", false, nil},
		{"missing type on async", FlagJSON, 2, `{"name":["echo"],"args":[{"a":1}]}`,
			FlagJSON, `{"a":1}`, false, nil},
		{"type field ignored without stream flag", FlagJSON, 3, `{"name":["echo"],"type":"source","args":[5]}`,
			FlagJSON, `5`, false, nil},
		{"args not an array (async)", FlagJSON, 4, `{"name":["echo"],"args":{"a":1}}`,
			FlagEnd | FlagJSON, `{"name":"Error","message":"invalid request, args should be array"}`, false, nil},
		{"args not an array (stream)", FlagStream | FlagJSON, 5, `{"name":["count"],"type":"source","args":"x"}`,
			FlagStream | FlagEnd | FlagJSON, `{"name":"Error","message":"invalid request, args should be array"}`, true, nil},
		{"missing args", FlagJSON, 6, `{"name":["echo"]}`,
			FlagJSON, `null`, false, nil},
		{"empty string reply is JSON", FlagJSON, 7, `{"name":["text"],"args":[""]}`,
			FlagJSON, `""`, false, nil},
		{"unknown async", FlagJSON, 8, `{"name":["ebt","replicate"],"args":[]}`,
			FlagEnd | FlagJSON, `{"name":"Error","message":"method:ebt,replicate is not in list of allowed methods"}`, false, nil},
		{"unknown source", FlagStream | FlagJSON, 9, `{"name":["blobs","createWants"],"type":"source","args":[]}`,
			FlagStream | FlagEnd | FlagJSON, `{"name":"Error","message":"method:blobs,createWants is not in list of allowed methods"}`, true, nil},
		{"source items then end", FlagStream | FlagJSON, 10, `{"name":["count"],"type":"source","args":[2]}`,
			FlagStream | FlagJSON, `{"seq":1}`, true, []string{`{"seq":2}`, "end:true"}},
		{"manifest as string name", FlagJSON, 11, `{"name":"manifest","args":[]}`,
			FlagJSON, "", false, nil},
	}
	peer, _ := newRawPeer(t, testMux(), Options{})
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			peer.send(tt.flag, tt.req, tt.body)
			p := peer.recv()
			if p.Req != -tt.req || p.Flag != tt.wantFlag {
				t.Fatalf("reply %v req %d body %s; want %v req %d", p.Flag, p.Req, p.Body, tt.wantFlag, -tt.req)
			}
			if tt.wantBody != "" && string(p.Body) != tt.wantBody {
				t.Fatalf("body %s, want %s", p.Body, tt.wantBody)
			}
			for _, want := range tt.extraRecv {
				p := peer.recv()
				got := string(p.Body)
				if p.Flag.IsEnd() {
					got = "end:" + got
				}
				if p.Req != -tt.req || got != want {
					t.Fatalf("next packet req %d %q, want %q", p.Req, got, want)
				}
			}
			if tt.thenEnd {
				peer.send(FlagStream|FlagEnd|FlagJSON, tt.req, "true")
			}
		})
	}
}

func TestRemoteEndIsAnswered(t *testing.T) {
	// We call a source on a raw peer; it sends items then its end; we must
	// answer with our own end (protocol.md §5.6).
	peer, e := newRawPeer(t, nil, Options{})
	ctx := context.Background()
	type result struct {
		items []string
		err   error
	}
	done := make(chan result, 1)
	go func() {
		src, err := e.Source(ctx, Method{"createHistoryStream"}, map[string]any{"id": "@x", "keys": true})
		if err != nil {
			done <- result{err: err}
			return
		}
		var r result
		for body, err := range src.All(ctx) {
			if err != nil {
				r.err = err
				break
			}
			r.items = append(r.items, string(body))
		}
		done <- r
	}()
	req := peer.recv()
	if req.Req != 1 || req.Flag != FlagStream|FlagJSON {
		t.Fatalf("request %v req %d", req.Flag, req.Req)
	}
	var wr struct {
		Name []string
		Type string
		Args []map[string]any
	}
	if err := json.Unmarshal(req.Body, &wr); err != nil || wr.Name[0] != "createHistoryStream" || wr.Type != "source" || wr.Args[0]["id"] != "@x" {
		t.Fatalf("request body %s: %v", req.Body, err)
	}
	peer.send(FlagStream|FlagJSON, -1, `{"seq":1}`)
	peer.send(FlagStream|FlagString, -1, `two`)
	peer.send(FlagStream|FlagEnd|FlagJSON, -1, `true`)
	end := peer.recv()
	if end.Req != 1 || end.Flag != FlagStream|FlagEnd|FlagJSON || string(end.Body) != "true" {
		t.Fatalf("our end: %v req %d %s", end.Flag, end.Req, end.Body)
	}
	r := <-done
	if r.err != nil || strings.Join(r.items, ",") != `{"seq":1},two` {
		t.Fatalf("items %v err %v", r.items, r.err)
	}
	// packets for the closed stream are dropped, the connection lives on
	peer.send(FlagStream|FlagJSON, -1, `{"late":true}`)
	peer.send(FlagJSON, -99, `{"unknown":true}`)
	go func() { _ = e.Async(ctx, nil, Method{"whoami"}) }()
	p := peer.recv()
	if p.Req != 2 || p.Flag != FlagJSON {
		t.Fatalf("next request: %v %d %s", p.Flag, p.Req, p.Body)
	}
}

func TestGoodbyeAndCloseWithStreamsOpen(t *testing.T) {
	m := testMux()
	m.RegisterSource(Method{"hang"}, func(ctx context.Context, req *Request, out *Sink) error {
		<-ctx.Done()
		return ctx.Err()
	})
	a, b := pipePair(t, m, nil, Options{}, Options{})
	ctx := context.Background()
	src, err := b.Source(ctx, Method{"hang"})
	if err != nil {
		t.Fatal(err)
	}
	pending := make(chan error, 1)
	go func() { pending <- b.Async(ctx, nil, Method{"block"}) }()
	waitFor(t, "call registered", func() bool { _, _, c := b.streamCounts(); return c == 1 })
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := src.Next(ctx); !errors.Is(err, ErrClosed) {
		t.Fatalf("source after close: %v", err)
	}
	if err := <-pending; !errors.Is(err, ErrClosed) {
		t.Fatalf("pending call: %v", err)
	}
	select {
	case <-a.Done():
	case <-time.After(5 * time.Second):
		t.Fatal("remote did not end after goodbye")
	}
	if a.Err() != nil || b.Err() != nil {
		t.Fatalf("errs %v %v, want clean", a.Err(), b.Err())
	}
	if err := b.Async(ctx, nil, Method{"echo"}); !errors.Is(err, ErrClosed) {
		t.Fatalf("call after close: %v", err)
	}
	if _, err := b.Source(ctx, Method{"count"}); !errors.Is(err, ErrClosed) {
		t.Fatalf("source after close: %v", err)
	}
}

func TestGoodbyeFromRawPeer(t *testing.T) {
	peer, e := newRawPeer(t, testMux(), Options{})
	peer.send(FlagJSON, 1, `{"name":["echo"],"args":[1]}`)
	if p := peer.recv(); string(p.Body) != "1" {
		t.Fatalf("reply %s", p.Body)
	}
	if err := peer.sendBytes(Goodbye()); err != nil {
		t.Fatal(err)
	}
	// we answer with our goodbye and end cleanly
	if _, err := peer.recvErr(); !errors.Is(err, ErrGoodbye) {
		t.Fatalf("after goodbye: %v", err)
	}
	<-e.Done()
	if e.Err() != nil {
		t.Fatalf("err %v", e.Err())
	}
}

func TestGarbagePeerDisconnected(t *testing.T) {
	tests := []struct {
		name string
		wire []byte
		want error
	}{
		{"type 3", append(AppendHeader(nil, 3, 2, 1), "{}"...), ErrBadPacketType},
		{"oversize", AppendHeader(nil, FlagJSON, 1<<20, 1), ErrPacketTooLarge},
		{"truncated", append(AppendHeader(nil, FlagJSON, 10, 1), "{}"...), io.ErrUnexpectedEOF},
	}
	// a healthy pair keeps working while garbage peers come and go
	_, good := tcpPair(t, testMux(), nil, Options{}, Options{})
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			peer, e := newRawPeer(t, testMux(), Options{MaxPacketSize: 64 << 10})
			go func() {
				_ = peer.sendBytes(tt.wire)
				if tt.want == io.ErrUnexpectedEOF {
					_ = peer.conn.Close()
				}
			}()
			select {
			case <-e.Done():
			case <-time.After(5 * time.Second):
				t.Fatal("garbage peer not disconnected")
			}
			if !errors.Is(e.Err(), tt.want) {
				t.Fatalf("err = %v, want %v", e.Err(), tt.want)
			}
			var got int
			if err := good.Async(context.Background(), &got, Method{"echo"}, 5); err != nil || got != 5 {
				t.Fatalf("healthy endpoint: %d %v", got, err)
			}
		})
	}
}

func TestMaxStreams(t *testing.T) {
	_, b := pipePair(t, testMux(), nil, Options{MaxStreams: 2}, Options{})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	for range 2 {
		go func() { _ = b.Async(ctx, nil, Method{"block"}) }()
	}
	// the server counts active handlers; wait until both run
	waitFor(t, "two blocked calls", func() bool { _, _, c := b.streamCounts(); return c == 2 })
	time.Sleep(20 * time.Millisecond)
	err := b.Async(context.Background(), nil, Method{"echo"}, 1)
	var ce *CallError
	if !errors.As(err, &ce) || !strings.Contains(ce.Message, "too many concurrent calls") {
		t.Fatalf("third call: %v", err)
	}
}

func TestBackPressure(t *testing.T) {
	const total = 100_000
	var produced atomic.Int64
	m := NewMux()
	m.RegisterSource(Method{"flood"}, func(ctx context.Context, req *Request, out *Sink) error {
		for i := range total {
			if err := out.Write(map[string]int{"seq": i}); err != nil {
				return err
			}
			produced.Add(1)
		}
		return nil
	})
	opts := Options{StreamQueueItems: 64, StreamQueueBytes: 4 << 10}
	// net.Pipe has no kernel buffer, so what is in flight is only ours.
	// The producer's send queue is bounded too (Options.MaxQueuedBytes).
	_, b := pipePair(t, m, nil, Options{MaxQueuedBytes: 64 << 10}, opts)
	ctx := context.Background()
	src, err := b.Source(ctx, Method{"flood"})
	if err != nil {
		t.Fatal(err)
	}
	// Do not read: the producer must stall once queue, buffers and the
	// kernel's socket buffers are full.
	// Stalled: no progress for 10 samples in a row (a loaded machine
	// may pause the producer for a few ms at a time).
	var last int64 = -1
	same := 0
	for range 500 {
		time.Sleep(20 * time.Millisecond)
		n := produced.Load()
		if n == last && n > 0 {
			if same++; same == 10 {
				break
			}
			continue
		}
		same = 0
		last = n
	}
	stalled := produced.Load()
	if stalled >= total {
		t.Fatalf("producer wrote all %d items without a reader", total)
	}
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	heapStalled := ms.HeapAlloc
	time.Sleep(100 * time.Millisecond)
	if n := produced.Load(); n != stalled {
		t.Fatalf("producer kept going: %d then %d", stalled, n)
	}
	t.Logf("producer stalled after %d items, heap %d KiB", stalled, heapStalled>>10)
	// now read slowly at first, then drain
	for i := range total {
		body, err := src.Next(ctx)
		if err != nil {
			t.Fatalf("item %d: %v", i, err)
		}
		if want := fmt.Sprintf(`{"seq":%d}`, i); string(body) != want {
			t.Fatalf("item %d = %s", i, body)
		}
		if i < 20 {
			time.Sleep(time.Millisecond)
		}
	}
	if _, err := src.Next(ctx); !errors.Is(err, io.EOF) {
		t.Fatalf("end: %v", err)
	}
}
