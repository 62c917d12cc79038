package muxrpc_test

import (
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cask-ssb/cask/internal/interop"
	"github.com/cask-ssb/cask/muxrpc"
	"github.com/cask-ssb/cask/secretstream"
)

func feedID(pub ed25519.PublicKey) string {
	return "@" + base64.StdEncoding.EncodeToString(pub) + ".ed25519"
}

func dialJS(t *testing.T, p *interop.Peer, key ed25519.PrivateKey) *muxrpc.Endpoint {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	conn, err := secretstream.Dial(ctx, "tcp", net.JoinHostPort(p.Host, strconv.Itoa(p.Port)), secretstream.MainNetAppKey(), key, p.PubKey)
	if err != nil {
		t.Fatalf("secret handshake with JS peer: %v", err)
	}
	e := muxrpc.NewEndpoint(context.Background(), conn, nil, muxrpc.Options{RemoteKey: p.PubKey})
	t.Cleanup(func() { _ = e.Close() })
	return e
}

// TestInteropGoClientJSPeer: a Go endpoint calls a real JS peer
// (secret-stack 6 + muxrpc + ssb-db2) as an anonymous peer and as its owner.
func TestInteropGoClientJSPeer(t *testing.T) {
	const n = 10000
	p := interop.StartPeer(t, "--replication", "none", "--publish", strconv.Itoa(n), "--seed", "muxrpc-interop")
	if _, err := p.WaitEvent(120*time.Second, func(e interop.Event) bool {
		return e.Name() == "published" && e.Int("count") == n
	}); err != nil {
		t.Fatalf("JS peer did not publish: %v\n%s", err, p.Stderr())
	}
	_, anonKey, _ := ed25519.GenerateKey(nil)
	e := dialJS(t, p, anonKey)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()

	t.Run("manifest (sync, anonymous)", func(t *testing.T) {
		var man map[string]any
		if err := e.Async(ctx, &man, muxrpc.Method{"manifest"}); err != nil {
			t.Fatal(err)
		}
		if man["createHistoryStream"] != "source" || man["manifest"] != "sync" {
			t.Fatalf("manifest: %v", man)
		}
	})
	t.Run("blobs.has (async, anonymous)", func(t *testing.T) {
		var has bool
		blob := "&" + base64.StdEncoding.EncodeToString(make([]byte, 32)) + ".sha256"
		has = true
		if err := e.Async(ctx, &has, muxrpc.Method{"blobs", "has"}, blob); err != nil {
			t.Fatal(err)
		}
		if has {
			t.Fatal("JS peer claims to have the zero blob")
		}
	})
	for _, m := range []muxrpc.Method{{"nope", "nothing"}, {"whoami"}} {
		t.Run("async not allowed: "+m.String(), func(t *testing.T) {
			err := e.Async(ctx, nil, m)
			var ce *muxrpc.CallError
			if !errors.As(err, &ce) || ce.Message != muxrpc.NotAllowedError(m).Message {
				t.Fatalf("err = %v, want %q", err, muxrpc.NotAllowedError(m).Message)
			}
		})
	}
	t.Run("source not allowed", func(t *testing.T) {
		src, err := e.Source(ctx, muxrpc.Method{"nope", "stream"})
		if err != nil {
			t.Fatal(err)
		}
		_, err = src.Next(ctx)
		var ce *muxrpc.CallError
		if !errors.As(err, &ce) || ce.Message != "method:nope,stream is not in list of allowed methods" {
			t.Fatalf("err = %v", err)
		}
	})
	t.Run("createHistoryStream 10000 items", func(t *testing.T) {
		start := time.Now()
		src, err := e.Source(ctx, muxrpc.Method{"createHistoryStream"}, map[string]any{"id": p.ID, "keys": true})
		if err != nil {
			t.Fatal(err)
		}
		seq := 0
		for {
			var kvt struct {
				Key   string
				Value struct {
					Author   string
					Sequence int
				}
			}
			err := src.Decode(ctx, &kvt)
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				t.Fatalf("after %d items: %v", seq, err)
			}
			seq++
			if kvt.Value.Sequence != seq || kvt.Value.Author != p.ID || !strings.HasPrefix(kvt.Key, "%") {
				t.Fatalf("item %d: %+v", seq, kvt)
			}
		}
		if seq != n {
			t.Fatalf("got %d items, want %d", seq, n)
		}
		t.Logf("createHistoryStream: %d items from JS in %v", n, time.Since(start))
	})
	t.Run("early abort", func(t *testing.T) {
		src, err := e.Source(ctx, muxrpc.Method{"createHistoryStream"}, map[string]any{"id": p.ID, "keys": false})
		if err != nil {
			t.Fatal(err)
		}
		for i := 1; i <= 5; i++ {
			var v struct{ Sequence int }
			if err := src.Decode(ctx, &v); err != nil || v.Sequence != i {
				t.Fatalf("item %d: %+v %v", i, v, err)
			}
		}
		_ = src.Close()
		var man map[string]any
		if err := e.Async(ctx, &man, muxrpc.Method{"manifest"}); err != nil {
			t.Fatalf("connection after abort: %v", err)
		}
	})
	t.Run("owner whoami", func(t *testing.T) {
		seed := sha256.Sum256([]byte("muxrpc-interop"))
		owner := dialJS(t, p, ed25519.NewKeyFromSeed(seed[:]))
		var who struct{ ID string }
		if err := owner.Async(ctx, &who, muxrpc.Method{"whoami"}); err != nil {
			t.Fatal(err)
		}
		if who.ID != p.ID {
			t.Fatalf("whoami = %q, want %q", who.ID, p.ID)
		}
		if err := owner.Close(); err != nil {
			t.Fatal(err)
		}
	})
	if err := e.Close(); err != nil {
		t.Fatal(err)
	}
	if e.Err() != nil {
		t.Fatalf("endpoint error: %v", e.Err())
	}
}

// goServer is a Go muxrpc server on 127.0.0.1 behind the secret handshake.
type goServer struct {
	addr       string // multiserver address
	key        ed25519.PrivateKey
	handshakes chan error
	wg         sync.WaitGroup
}

func startGoServer(t *testing.T, appKey secretstream.AppKey, key ed25519.PrivateKey, h muxrpc.Handler) *goServer {
	t.Helper()
	pub := key.Public().(ed25519.PublicKey)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &goServer{
		addr:       fmt.Sprintf("net:%s~shs:%s", l.Addr(), base64.StdEncoding.EncodeToString(pub)),
		key:        key,
		handshakes: make(chan error, 16),
	}
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(func() {
		cancel()
		_ = l.Close()
		s.wg.Wait()
	})
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			s.wg.Add(1)
			go func() {
				defer s.wg.Done()
				hctx, hcancel := context.WithTimeout(ctx, 15*time.Second)
				sc, err := secretstream.Server(hctx, c, appKey, key, nil)
				hcancel()
				select {
				case s.handshakes <- err:
				default:
				}
				if err != nil {
					_ = c.Close()
					return
				}
				e := muxrpc.NewEndpoint(ctx, sc, h, muxrpc.Options{RemoteKey: sc.RemoteKey()})
				<-e.Done()
			}()
		}
	}()
	return s
}

func serverMux(serverID string, items int) *muxrpc.Mux {
	m := muxrpc.NewMux()
	m.RegisterAsync(muxrpc.Method{"whoami"}, func(ctx context.Context, req *muxrpc.Request) (any, error) {
		return map[string]string{"id": serverID}, nil
	})
	m.RegisterAsync(muxrpc.Method{"text"}, func(ctx context.Context, req *muxrpc.Request) (any, error) {
		var s string
		err := req.Arg(0, &s)
		return s, err
	})
	m.RegisterAsync(muxrpc.Method{"bytes"}, func(ctx context.Context, req *muxrpc.Request) (any, error) {
		return []byte{0xca, 0xfe}, nil
	})
	m.RegisterAsync(muxrpc.Method{"fail"}, func(ctx context.Context, req *muxrpc.Request) (any, error) {
		return nil, errors.New("deliberate failure")
	})
	m.RegisterAsync(muxrpc.Method{"ebt", "clock"}, func(ctx context.Context, req *muxrpc.Request) (any, error) {
		return map[string]int{serverID: items}, nil
	})
	m.RegisterSource(muxrpc.Method{"createHistoryStream"}, func(ctx context.Context, req *muxrpc.Request, out *muxrpc.Sink) error {
		var opts struct {
			ID       string `json:"id"`
			Seq      *int   `json:"seq"`
			Sequence *int   `json:"sequence"`
			Keys     *bool  `json:"keys"`
			Limit    int    `json:"limit"`
		}
		if err := req.Arg(0, &opts); err != nil {
			return err
		}
		from := 1
		if opts.Seq != nil && *opts.Seq > 1 {
			from = *opts.Seq
		}
		if opts.Sequence != nil && *opts.Sequence > 1 {
			from = *opts.Sequence
		}
		sent := 0
		for i := from; i <= items; i++ {
			if opts.Limit > 0 && sent >= opts.Limit {
				break
			}
			value := map[string]any{"previous": nil, "author": opts.ID, "sequence": i, "timestamp": 1514517067954 + i, "hash": "sha256",
				"content": map[string]any{"type": "post", "text": fmt.Sprintf("synthetic %d", i)}}
			var item any = value
			if opts.Keys == nil || *opts.Keys {
				sum := sha256.Sum256([]byte(strconv.Itoa(i)))
				item = map[string]any{"key": "%" + base64.StdEncoding.EncodeToString(sum[:]) + ".sha256", "value": value, "timestamp": 1514517067954 + i}
			}
			if err := out.Write(item); err != nil {
				return err
			}
			sent++
		}
		return nil
	})
	m.RegisterSink(muxrpc.Method{"sum"}, func(ctx context.Context, req *muxrpc.Request, in *muxrpc.Source) error {
		total := 0
		for {
			var v int
			err := in.Decode(ctx, &v)
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				return err
			}
			if v < 0 {
				return fmt.Errorf("negative value %d", v)
			}
			total += v
		}
		if total != 10 {
			return fmt.Errorf("sum is %d, want 10", total)
		}
		return nil
	})
	m.RegisterDuplex(muxrpc.Method{"dup", "echo"}, func(ctx context.Context, req *muxrpc.Request, in *muxrpc.Source, out *muxrpc.Sink) error {
		for {
			p, err := in.NextPacket(ctx)
			if errors.Is(err, io.EOF) {
				return nil
			}
			if err != nil {
				return err
			}
			if err := out.WriteRaw(p.Flag.Type(), p.Body); err != nil {
				return err
			}
		}
	})
	return m
}

// TestInteropJSClientGoServer: the JS stack (ssb-client, query.js and our
// driver) calls a Go server.
func TestInteropJSClientGoServer(t *testing.T) {
	kit := interop.Kit(t)
	const items = 3000
	pub, key, _ := ed25519.GenerateKey(nil)
	srvID := feedID(pub)
	srv := startGoServer(t, secretstream.MainNetAppKey(), key, serverMux(srvID, items))

	t.Run("query.js latest (createHistoryStream)", func(t *testing.T) {
		out, err := interop.Node(kit, 60*time.Second, "query.js", "latest", "--feed", srvID, "--remote", srv.addr)
		if err != nil {
			t.Fatal(err)
		}
		var got struct {
			Feed string
			Seq  int
		}
		if err := json.Unmarshal(out, &got); err != nil || got.Seq != items || got.Feed != srvID {
			t.Fatalf("latest: %s (%v)", out, err)
		}
	})
	t.Run("query.js dump --seq --limit", func(t *testing.T) {
		out, err := interop.Node(kit, 60*time.Second, "query.js", "dump", "--feed", srvID, "--remote", srv.addr, "--seq", "11", "--limit", "5")
		if err != nil {
			t.Fatal(err)
		}
		lines := strings.Split(strings.TrimSpace(string(out)), "\n")
		if len(lines) != 5 {
			t.Fatalf("dump gave %d lines: %s", len(lines), out)
		}
		for i, l := range lines {
			var kvt struct {
				Key   string
				Value struct{ Sequence int }
			}
			if err := json.Unmarshal([]byte(l), &kvt); err != nil || kvt.Value.Sequence != 11+i || kvt.Key == "" {
				t.Fatalf("line %d: %s (%v)", i, l, err)
			}
		}
	})
	t.Run("query.js clock (async)", func(t *testing.T) {
		out, err := interop.Node(kit, 60*time.Second, "query.js", "clock", "--remote", srv.addr)
		if err != nil {
			t.Fatal(err)
		}
		var got struct{ Clock map[string]int }
		if err := json.Unmarshal(out, &got); err != nil || got.Clock[srvID] != items {
			t.Fatalf("clock: %s (%v)", out, err)
		}
	})
	t.Run("driver", func(t *testing.T) {
		script, err := filepath.Abs(filepath.Join("testdata", "driver.js"))
		if err != nil {
			t.Fatal(err)
		}
		out, err := interop.Node(kit, 60*time.Second, script, srv.addr)
		if err != nil {
			t.Fatalf("%v\noutput so far:\n%s", err, out)
		}
		got := map[string]map[string]any{}
		for _, l := range strings.Split(strings.TrimSpace(string(out)), "\n") {
			var r map[string]any
			if err := json.Unmarshal([]byte(l), &r); err != nil {
				t.Fatalf("driver line %q: %v", l, err)
			}
			got[r["check"].(string)] = r
		}
		want := map[string]string{
			"whoami":        `{"check":"whoami","value":{"id":"` + srvID + `"}}`,
			"text":          `{"check":"text","value":"héllo wörld"}`,
			"text-empty":    `{"check":"text-empty","value":""}`,
			"bytes":         `{"check":"bytes","value":"buffer:cafe"}`,
			"fail":          `{"check":"fail","error":"deliberate failure","name":"Error"}`,
			"nope.thing":    `{"check":"nope.thing","error":"method:nope,thing is not in list of allowed methods","name":"Error"}`,
			"nope.stream":   `{"check":"nope.stream","error":"method:nope,stream is not in list of allowed methods","name":"Error"}`,
			"history":       `{"check":"history","value":{"count":3000,"last":3000,"ordered":true}}`,
			"history-abort": `{"check":"history-abort","value":5}`,
			"sum":           `{"check":"sum"}`,
			"sum-error":     `{"check":"sum-error","error":"negative value -10","name":"Error"}`,
			"dup.echo":      `{"check":"dup.echo","value":["a",{"b":1},3,"buffer:ff00"]}`,
			"whoami-again":  `{"check":"whoami-again","value":{"id":"` + srvID + `"}}`,
		}
		for check, w := range want {
			r, ok := got[check]
			if !ok {
				t.Errorf("driver printed no %q line; output:\n%s", check, out)
				continue
			}
			var wantV any
			if err := json.Unmarshal([]byte(w), &wantV); err != nil {
				t.Fatal(err)
			}
			gb, _ := json.Marshal(r)
			wb, _ := json.Marshal(wantV)
			if string(gb) != string(wb) {
				t.Errorf("%s:\n got  %s\n want %s", check, gb, wb)
			}
		}
		man, ok := got["manifest"]["value"].(map[string]any)
		if !ok || man["createHistoryStream"] != "source" || man["manifest"] != "sync" {
			t.Errorf("manifest: %v", got["manifest"])
		}
	})
}

// TestInteropWrongNetworkKey: a JS client using another network key cannot
// reach the Go server; the Go side sees the handshake fail.
func TestInteropWrongNetworkKey(t *testing.T) {
	kit := interop.Kit(t)
	_, key, _ := ed25519.GenerateKey(nil)
	srv := startGoServer(t, secretstream.MainNetAppKey(), key, muxrpc.NewMux())
	other := sha256.Sum256([]byte("some other network"))
	out, err := interop.Node(kit, 30*time.Second, "query.js", "clock", "--remote", srv.addr,
		"--caps", base64.StdEncoding.EncodeToString(other[:]), "--timeout", "10000")
	if err == nil {
		t.Fatalf("JS client with the wrong network key succeeded: %s", out)
	}
	select {
	case herr := <-srv.handshakes:
		if herr == nil {
			t.Fatal("Go server completed a handshake with the wrong network key")
		}
		t.Logf("Go side: %v", herr)
	case <-time.After(10 * time.Second):
		t.Fatal("Go server saw no handshake attempt")
	}
}
