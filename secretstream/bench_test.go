package secretstream_test

import (
	"context"
	"crypto/ed25519"
	"io"
	"net"
	"strconv"
	"testing"

	"github.com/cask-ssb/cask/secretstream"
	"golang.org/x/crypto/nacl/secretbox"
)

// BenchmarkThroughput reports the raw secretbox seal rate (the library and
// hardware reference) next to box-stream over loopback TCP (a writer
// goroutine and a reader goroutine), so the ratio is visible in one run.
func BenchmarkThroughput(b *testing.B) {
	b.Run("secretbox-seal-4096", func(b *testing.B) {
		var key [32]byte
		var nonce [24]byte
		msg := make([]byte, 4096)
		out := make([]byte, 0, 4096+secretbox.Overhead)
		b.SetBytes(4096)
		for b.Loop() {
			out = secretbox.Seal(out[:0], msg, &nonce, &key)
		}
	})
	// sockBuf 0 keeps the kernel's socket buffer sizes; 4 MiB buffers let
	// the sealing and the opening core run without waiting on each other.
	type tc struct {
		size    int
		sockBuf int
	}
	for _, tt := range []tc{{4096, 0}, {64 * 1024, 0}, {64 * 1024, 4 << 20}} {
		name := "boxstream-tcp-write-" + strconv.Itoa(tt.size)
		if tt.sockBuf > 0 {
			name += "-sockbuf-" + strconv.Itoa(tt.sockBuf>>20) + "MiB"
		}
		size := tt.size
		b.Run(name, func(b *testing.B) {
			clientKey, serverKey := newKey(b), newKey(b)
			c, s := handshake(b, testAppKey(1), testAppKey(1), clientKey, serverKey, pub(serverKey), nil)
			if c.err != nil || s.err != nil {
				b.Fatalf("handshake: %v / %v", c.err, s.err)
			}
			if tt.sockBuf > 0 {
				c.conn.Underlying().(*net.TCPConn).SetWriteBuffer(tt.sockBuf)
				s.conn.Underlying().(*net.TCPConn).SetReadBuffer(tt.sockBuf)
			}
			done := make(chan int64)
			go func() {
				// A consumer with a 64 KiB buffer (io.Copy to io.Discard
				// would read in 8 KiB pieces).
				buf := make([]byte, 64*1024)
				var n int64
				for {
					k, err := s.conn.Read(buf)
					n += int64(k)
					if err != nil {
						if err != io.EOF {
							b.Error(err)
						}
						break
					}
				}
				done <- n
			}()
			msg := make([]byte, size)
			b.SetBytes(int64(size))
			b.ResetTimer()
			for b.Loop() {
				if _, err := c.conn.Write(msg); err != nil {
					b.Fatal(err)
				}
			}
			if err := c.conn.CloseWrite(); err != nil {
				b.Fatal(err)
			}
			n := <-done // the reader has decrypted everything
			b.StopTimer()
			if n != int64(b.N)*int64(size) {
				b.Fatalf("reader got %d bytes, want %d", n, int64(b.N)*int64(size))
			}
		})
	}
}

// BenchmarkHandshake measures complete handshakes (client and server in
// process over net.Pipe), in parallel on all cores.
func BenchmarkHandshake(b *testing.B) {
	clientKey, serverKey := newKey(b), newKey(b)
	app := secretstream.MainNetAppKey()
	serverPub := serverKey.Public().(ed25519.PublicKey)
	b.RunParallel(func(pb *testing.PB) {
		ctx := context.Background()
		for pb.Next() {
			cc, sc := net.Pipe()
			errc := make(chan error, 1)
			go func() {
				conn, err := secretstream.Server(ctx, sc, app, serverKey, nil)
				if err == nil {
					conn.Underlying().Close()
				}
				errc <- err
			}()
			conn, err := secretstream.Client(ctx, cc, app, clientKey, serverPub)
			if err != nil {
				b.Fatal(err)
			}
			conn.Underlying().Close()
			if err := <-errc; err != nil {
				b.Fatal(err)
			}
		}
	})
}
