package secretstream_test

import (
	"context"
	"crypto/ed25519"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"testing"
	"time"

	"github.com/cask-ssb/cask/internal/interop"
	"github.com/cask-ssb/cask/secretstream"
)

func feedID(k ed25519.PublicKey) string {
	return "@" + base64.StdEncoding.EncodeToString(k) + ".ed25519"
}

// readPacketHeader reads one packet-stream header (9 bytes: flags, body
// length, request number) and its body. Only used here to see that bytes
// the JS peer encrypted decrypt to something sensible.
func readPacket(r io.Reader) (flags byte, req int32, body []byte, err error) {
	var hdr [9]byte
	if _, err = io.ReadFull(r, hdr[:]); err != nil {
		return
	}
	flags = hdr[0]
	n := binary.BigEndian.Uint32(hdr[1:5])
	req = int32(binary.BigEndian.Uint32(hdr[5:9]))
	if n > 1<<20 {
		return flags, req, nil, fmt.Errorf("packet body of %d bytes", n)
	}
	body = make([]byte, n)
	_, err = io.ReadFull(r, body)
	return
}

// TestInteropGoClientJSServer: a Go client completes the handshake with a
// JS peer, the JS side reports the connection with our id, and box-stream
// data flows both ways (a request we encrypt is answered by the JS peer).
func TestInteropGoClientJSServer(t *testing.T) {
	peer := interop.StartPeer(t, "--replication", "none")
	key := newKey(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := secretstream.Dial(ctx, "tcp", net.JoinHostPort(peer.Host, strconv.Itoa(peer.Port)), secretstream.MainNetAppKey(), key, peer.PubKey)
	if err != nil {
		t.Fatalf("handshake with JS peer: %v", err)
	}
	defer conn.Close()
	if !conn.RemoteKey().Equal(peer.PubKey) {
		t.Fatal("remote key is not the JS peer's key")
	}
	me := feedID(pub(key))
	if _, err := peer.WaitEvent(20*time.Second, func(e interop.Event) bool {
		return e.Name() == "connected" && e.String("peer") == me
	}); err != nil {
		t.Fatalf("JS peer did not report our connection: %v", err)
	}
	// Go -> JS: one hand-made packet-stream request (async "whoami").
	body, _ := json.Marshal(map[string]any{"name": []string{"whoami"}, "args": []any{}, "type": "async"})
	pkt := make([]byte, 9, 9+len(body))
	pkt[0] = 0x02 // JSON, async
	binary.BigEndian.PutUint32(pkt[1:5], uint32(len(body)))
	binary.BigEndian.PutUint32(pkt[5:9], 1)
	if _, err := conn.Write(append(pkt, body...)); err != nil {
		t.Fatal(err)
	}
	// JS -> Go: decrypt packets until the answer to request 1 arrives
	// (the JS peer also sends its own requests first).
	_ = conn.SetReadDeadline(time.Now().Add(20 * time.Second))
	for {
		_, req, b, err := readPacket(conn)
		if err != nil {
			t.Fatalf("reading from JS peer: %v", err)
		}
		if req == -1 {
			var v map[string]any
			if err := json.Unmarshal(b, &v); err != nil {
				t.Fatalf("answer is not JSON: %q", b)
			}
			// whoami is not on the JS allow-list for remote peers: an
			// error answer naming the method proves the JS peer decrypted
			// our request exactly; an id answer would too.
			id, _ := v["id"].(string)
			msg, _ := v["message"].(string)
			if id != peer.ID && msg != "method:whoami is not in list of allowed methods" {
				t.Fatalf("unexpected answer: %.300s", b)
			}
			break
		}
	}
	// Clean close: goodbye, then the JS peer drops the connection.
	if err := conn.Close(); err != nil {
		t.Fatalf("close: %v", err)
	}
	if _, err := peer.WaitEvent(20*time.Second, func(e interop.Event) bool {
		return e.Name() == "disconnected" && e.String("peer") == me
	}); err != nil {
		t.Fatalf("JS peer did not see the disconnect: %v", err)
	}
}

// TestInteropWrongAppKey: a Go client on another network is refused by the
// JS peer, and we report ErrWrongAppKey.
func TestInteropWrongAppKey(t *testing.T) {
	peer := interop.StartPeer(t, "--replication", "none")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	_, err := secretstream.Dial(ctx, "tcp", net.JoinHostPort(peer.Host, strconv.Itoa(peer.Port)), testAppKey(42), newKey(t), peer.PubKey)
	if !errors.Is(err, secretstream.ErrWrongAppKey) {
		t.Fatalf("err = %v, want ErrWrongAppKey", err)
	}
}

// TestInteropJSClientGoServer: a JS peer dials our Go server; with the same
// caps the handshake completes, with different --caps it fails on our side
// with ErrWrongAppKey.
func TestInteropJSClientGoServer(t *testing.T) {
	other := testAppKey(99)
	tests := []struct {
		name    string
		caps    []string
		wantErr error
	}{
		{name: "same caps"},
		{name: "different caps", caps: []string{"--caps", base64.StdEncoding.EncodeToString(other[:])}, wantErr: secretstream.ErrWrongAppKey},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			serverKey := newKey(t)
			l, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			defer l.Close()
			peer := interop.StartPeer(t, append([]string{"--replication", "none"}, tt.caps...)...)
			addr := fmt.Sprintf("net:127.0.0.1:%d~shs:%s", l.Addr().(*net.TCPAddr).Port, base64.StdEncoding.EncodeToString(pub(serverKey)))
			if err := peer.Send(map[string]any{"cmd": "connect", "address": addr}); err != nil {
				t.Fatal(err)
			}
			_ = l.(*net.TCPListener).SetDeadline(time.Now().Add(30 * time.Second))
			raw, err := l.Accept()
			if err != nil {
				t.Fatalf("JS peer did not dial: %v", err)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			conn, err := secretstream.Server(ctx, raw, secretstream.MainNetAppKey(), serverKey, nil)
			if tt.wantErr != nil {
				if !errors.Is(err, tt.wantErr) {
					t.Fatalf("err = %v, want %v", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("handshake with JS client: %v", err)
			}
			defer conn.Close()
			if !conn.RemoteKey().Equal(peer.PubKey) {
				t.Fatal("remote key is not the JS peer's key")
			}
			if _, err := peer.WaitEvent(20*time.Second, func(e interop.Event) bool {
				return e.Name() == "connected" && e.String("peer") == feedID(pub(serverKey))
			}); err != nil {
				t.Fatalf("JS peer did not report the connection: %v", err)
			}
			// The JS dialer starts calling us at once: its first packet
			// must decrypt to a packet-stream request.
			_ = conn.SetReadDeadline(time.Now().Add(20 * time.Second))
			flags, req, body, err := readPacket(conn)
			if err != nil {
				t.Fatalf("read first packet: %v", err)
			}
			if req <= 0 || flags&0x03 != 2 {
				t.Fatalf("first packet: flags %#x req %d body %q", flags, req, body)
			}
		})
	}
}
