package boxstream

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/crypto/nacl/secretbox"
)

const testdataDir = "../../testdata/box-stream"

func unhex(t testing.TB, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(s)
	if err != nil {
		t.Fatalf("hex %q: %v", s, err)
	}
	return b
}

type pullVector struct {
	Name      string   `json:"name"`
	KeyHex    string   `json:"key_hex"`
	NonceHex  string   `json:"nonce_hex"`
	WritesHex []string `json:"writes_hex"`
	FramesHex []string `json:"frames_hex"`
	WireHex   string   `json:"wire_hex"`
}

func loadPullVectors(t testing.TB) []pullVector {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(testdataDir, "generated-pull-box-stream.json"))
	if err != nil {
		t.Fatal(err)
	}
	var f struct {
		Vectors []pullVector `json:"vectors"`
	}
	if err := json.Unmarshal(b, &f); err != nil {
		t.Fatal(err)
	}
	if len(f.Vectors) == 0 {
		t.Fatal("no vectors")
	}
	return f.Vectors
}

// recorder keeps each Write separately.
type recorder struct{ writes [][]byte }

func (r *recorder) Write(p []byte) (int, error) {
	r.writes = append(r.writes, append([]byte(nil), p...))
	return len(p), nil
}

func TestBoxStreamCVectors(t *testing.T) {
	b, err := os.ReadFile(filepath.Join(testdataDir, "box-stream-c-test-vectors.json"))
	if err != nil {
		t.Fatal(err)
	}
	var v struct {
		KeyHex   string `json:"key_hex"`
		NonceHex string `json:"nonce_hex"`
		Packets  []struct {
			PlaintextHex string `json:"plaintext_hex"`
			HeaderHex    string `json:"header_hex"`
			BodyHex      string `json:"body_hex"`
		} `json:"packets"`
		FinalHeaderHex string `json:"final_header_hex"`
	}
	if err := json.Unmarshal(b, &v); err != nil {
		t.Fatal(err)
	}
	key, nonce := [32]byte(unhex(t, v.KeyHex)), [24]byte(unhex(t, v.NonceHex))
	var rec recorder
	bx := NewBoxer(&rec, key, nonce)
	var wire []byte
	for i, p := range v.Packets {
		if _, err := bx.Write(unhex(t, p.PlaintextHex)); err != nil {
			t.Fatal(err)
		}
		want := unhex(t, p.HeaderHex+p.BodyHex)
		if got := rec.writes[i]; !bytes.Equal(got, want) {
			t.Errorf("packet %d:\n got %x\nwant %x", i, got, want)
		}
		wire = append(wire, want...)
	}
	if err := bx.WriteGoodbye(); err != nil {
		t.Fatal(err)
	}
	final := unhex(t, v.FinalHeaderHex)
	if got := rec.writes[len(rec.writes)-1]; !bytes.Equal(got, final) {
		t.Errorf("goodbye:\n got %x\nwant %x", got, final)
	}
	wire = append(wire, final...)

	u := NewUnboxer(bytes.NewReader(wire), key, nonce)
	for i, p := range v.Packets {
		buf := make([]byte, len(p.PlaintextHex)/2)
		n, err := io.ReadFull(u, buf)
		if err != nil {
			t.Fatalf("packet %d: %v", i, err)
		}
		if want := unhex(t, p.PlaintextHex); !bytes.Equal(buf[:n], want) {
			t.Errorf("packet %d: got %x want %x", i, buf[:n], want)
		}
	}
	if n, err := u.Read(make([]byte, 10)); n != 0 || err != io.EOF {
		t.Fatalf("after goodbye: n=%d err=%v, want 0, io.EOF", n, err)
	}
}

func TestPullBoxStreamVectors(t *testing.T) {
	for _, v := range loadPullVectors(t) {
		t.Run(v.Name, func(t *testing.T) {
			key, nonce := [32]byte(unhex(t, v.KeyHex)), [24]byte(unhex(t, v.NonceHex))
			wire := unhex(t, v.WireHex)
			if got := unhex(t, strings.Join(v.FramesHex, "")); !bytes.Equal(got, wire) {
				t.Fatal("vector: frames do not add up to wire")
			}
			var out bytes.Buffer
			bx := NewBoxer(&out, key, nonce)
			var plain []byte
			for _, w := range v.WritesHex {
				p := unhex(t, w)
				plain = append(plain, p...)
				if n, err := bx.Write(p); err != nil || n != len(p) {
					t.Fatalf("Write: n=%d err=%v", n, err)
				}
			}
			if err := bx.WriteGoodbye(); err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(out.Bytes(), wire) {
				t.Fatalf("wire mismatch:\n got %x\nwant %x", out.Bytes(), wire)
			}
			// Decrypt with several read sizes (exercises the partial
			// frame buffer and the multi-frame fast path).
			for _, size := range []int{1, 7, 100, 4096, 5000, 1 << 16} {
				got, err := readAllSized(NewUnboxer(bytes.NewReader(wire), key, nonce), size)
				if err != nil {
					t.Fatalf("read size %d: %v", size, err)
				}
				if !bytes.Equal(got, plain) {
					t.Fatalf("read size %d: plaintext mismatch (%d vs %d bytes)", size, len(got), len(plain))
				}
			}
			// Trickle the wire one byte per underlying Read.
			got, err := readAllSized(NewUnboxer(&oneByteReader{r: bytes.NewReader(wire)}, key, nonce), 4096)
			if err != nil || !bytes.Equal(got, plain) {
				t.Fatalf("one-byte reader: err=%v equal=%v", err, bytes.Equal(got, plain))
			}
		})
	}
}

// readAllSized reads until io.EOF using reads of the given size.
func readAllSized(r io.Reader, size int) ([]byte, error) {
	var out []byte
	buf := make([]byte, size)
	for {
		n, err := r.Read(buf)
		out = append(out, buf[:n]...)
		if err == io.EOF {
			return out, nil
		}
		if err != nil {
			return out, err
		}
	}
}

type oneByteReader struct{ r io.Reader }

func (o *oneByteReader) Read(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	return o.r.Read(p[:1])
}

func TestIncrementNonce(t *testing.T) {
	tests := []struct{ in, want string }{
		{"000000000000000000000000000000000000000000000000", "000000000000000000000000000000000000000000000001"},
		{"0000000000000000000000000000000000000000000000ff", "000000000000000000000000000000000000000000000100"},
		{"00000000000000000000000000000000000000000000ffff", "000000000000000000000000000000000000000000010000"},
		{"01ffffffffffffffffffffffffffffffffffffffffffffff", "020000000000000000000000000000000000000000000000"},
		{"ffffffffffffffffffffffffffffffffffffffffffffffff", "000000000000000000000000000000000000000000000000"},
		{"2c8c4fe31799cacb5128723b38a73fa6c909329800ffe293", "2c8c4fe31799cacb5128723b38a73fa6c909329800ffe294"},
	}
	for _, tt := range tests {
		n := [24]byte(unhex(t, tt.in))
		IncrementNonce(&n)
		if got := hex.EncodeToString(n[:]); got != tt.want {
			t.Errorf("IncrementNonce(%s) = %s, want %s", tt.in, got, tt.want)
		}
	}
}

func testKeyNonce() ([32]byte, [24]byte) {
	var k [32]byte
	var n [24]byte
	for i := range k {
		k[i] = byte(i)
	}
	for i := range n {
		n[i] = byte(0xa0 + i)
	}
	return k, n
}

func sealStream(t testing.TB, chunks ...[]byte) []byte {
	k, n := testKeyNonce()
	var out bytes.Buffer
	bx := NewBoxer(&out, k, n)
	for _, c := range chunks {
		if _, err := bx.Write(c); err != nil {
			t.Fatal(err)
		}
	}
	if err := bx.WriteGoodbye(); err != nil {
		t.Fatal(err)
	}
	return out.Bytes()
}

func TestUnboxerErrors(t *testing.T) {
	k, n := testKeyNonce()
	wire := sealStream(t, []byte("hello"), []byte("world"))
	flip := func(i int) []byte {
		w := append([]byte(nil), wire...)
		w[i] ^= 1
		return w
	}
	tests := []struct {
		name string
		wire []byte
		want error
	}{
		{"empty input", nil, io.ErrUnexpectedEOF},
		{"truncated header", wire[:20], io.ErrUnexpectedEOF},
		{"truncated body", wire[:HeaderSize+2], io.ErrUnexpectedEOF},
		{"no goodbye", wire[:2*(HeaderSize+5)], io.ErrUnexpectedEOF},
		{"tampered header", flip(3), ErrInvalidHeader},
		{"tampered body", flip(HeaderSize + 1), ErrInvalidBody},
		{"tampered second frame", flip(HeaderSize + 5 + 1), ErrInvalidHeader},
		{"tampered goodbye", flip(len(wire) - 1), ErrInvalidHeader},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := readAllSized(NewUnboxer(bytes.NewReader(tt.wire), k, n), 64)
			if !errors.Is(err, tt.want) {
				t.Fatalf("err = %v, want %v", err, tt.want)
			}
			// Errors are sticky.
			u := NewUnboxer(bytes.NewReader(tt.wire), k, n)
			_, _ = readAllSized(u, 64)
			if _, err2 := u.Read(make([]byte, 1)); !errors.Is(err2, tt.want) {
				t.Fatalf("second read err = %v, want %v", err2, tt.want)
			}
		})
	}
	t.Run("oversized length", func(t *testing.T) {
		// A correctly sealed header announcing 4097 bytes.
		hdr := make([]byte, plainHeaderSize)
		hdr[0], hdr[1] = 0x10, 0x01
		w := secretbox.Seal(nil, hdr, &n, &k)
		_, err := readAllSized(NewUnboxer(bytes.NewReader(w), k, n), 64)
		if !errors.Is(err, ErrInvalidHeader) {
			t.Fatalf("err = %v, want ErrInvalidHeader", err)
		}
	})
}

func TestBoxerBehaviour(t *testing.T) {
	k, n := testKeyNonce()
	var rec recorder
	bx := NewBoxer(&rec, k, n)
	if c, err := bx.Write(nil); c != 0 || err != nil || len(rec.writes) != 0 {
		t.Fatalf("empty write: n=%d err=%v writes=%d; want nothing sent", c, err, len(rec.writes))
	}
	big := make([]byte, 20*MaxSegmentSize+123)
	for i := range big {
		big[i] = byte(i * 7)
	}
	if c, err := bx.Write(big); c != len(big) || err != nil {
		t.Fatalf("big write: n=%d err=%v", c, err)
	}
	// 21 frames, batched: fewer underlying writes than frames.
	if len(rec.writes) != 2 {
		t.Errorf("big write took %d underlying writes, want 2 (16 frames per batch)", len(rec.writes))
	}
	if err := bx.WriteGoodbye(); err != nil {
		t.Fatal(err)
	}
	if _, err := bx.Write([]byte("x")); !errors.Is(err, ErrGoodbyeSent) {
		t.Fatalf("write after goodbye: %v", err)
	}
	wire := bytes.Join(rec.writes, nil)
	if want := 21*HeaderSize + len(big) + HeaderSize; len(wire) != want {
		t.Fatalf("wire has %d bytes, want %d", len(wire), want)
	}
	got, err := readAllSized(NewUnboxer(bytes.NewReader(wire), k, n), 1000)
	if err != nil || !bytes.Equal(got, big) {
		t.Fatalf("round trip: err=%v equal=%v", err, bytes.Equal(got, big))
	}
}

func TestRoundTripRandom(t *testing.T) {
	k, n := testKeyNonce()
	rng := rand.New(rand.NewPCG(1, 2))
	for iter := range 50 {
		var chunks [][]byte
		var plain []byte
		for range rng.IntN(10) {
			c := make([]byte, rng.IntN(3*MaxSegmentSize))
			for i := range c {
				c[i] = byte(rng.Uint32())
			}
			chunks = append(chunks, c)
			plain = append(plain, c...)
		}
		wire := sealStream(t, chunks...)
		got, err := readAllSized(NewUnboxer(bytes.NewReader(wire), k, n), 1+rng.IntN(10000))
		if err != nil || !bytes.Equal(got, plain) {
			t.Fatalf("iteration %d: err=%v equal=%v", iter, err, bytes.Equal(got, plain))
		}
	}
}

// FuzzUnboxer feeds arbitrary bytes to the frame reader: it must not panic
// and must stop with io.EOF or an error.
func FuzzUnboxer(f *testing.F) {
	for _, v := range loadPullVectors(f) {
		f.Add(unhex(f, v.WireHex), uint16(4096))
	}
	f.Add(sealStream(f, []byte("hello"), make([]byte, 5000)), uint16(3))
	f.Add([]byte{}, uint16(1))
	f.Add(make([]byte, 40), uint16(10))
	k, n := testKeyNonce()
	pv := loadPullVectors(f)
	vk, vn := [32]byte(unhex(f, pv[0].KeyHex)), [24]byte(unhex(f, pv[0].NonceHex))
	f.Fuzz(func(t *testing.T, wire []byte, size uint16) {
		for _, kn := range []struct {
			k [32]byte
			n [24]byte
		}{{k, n}, {vk, vn}} {
			u := NewUnboxer(bytes.NewReader(wire), kn.k, kn.n)
			got, err := readAllSized(u, int(size)%8192+1)
			if err == nil && len(got) > len(wire) {
				t.Fatalf("decrypted %d bytes from %d wire bytes", len(got), len(wire))
			}
		}
	})
}

func BenchmarkSecretboxSeal4096(b *testing.B) {
	k, n := testKeyNonce()
	msg := make([]byte, 4096)
	out := make([]byte, 0, 4096+secretbox.Overhead)
	b.SetBytes(4096)
	for b.Loop() {
		out = secretbox.Seal(out[:0], msg, &n, &k)
	}
}

func BenchmarkBoxerWrite(b *testing.B) {
	for _, size := range []int{4096, 64 * 1024} {
		b.Run(byteSize(size), func(b *testing.B) {
			k, n := testKeyNonce()
			bx := NewBoxer(io.Discard, k, n)
			msg := make([]byte, size)
			b.SetBytes(int64(size))
			for b.Loop() {
				if _, err := bx.Write(msg); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func BenchmarkUnboxerRead(b *testing.B) {
	k, n := testKeyNonce()
	const frames = 256
	var wire bytes.Buffer
	bx := NewBoxer(&wire, k, n)
	if _, err := bx.Write(make([]byte, frames*MaxSegmentSize)); err != nil {
		b.Fatal(err)
	}
	buf := make([]byte, 64*1024)
	b.SetBytes(frames * MaxSegmentSize)
	for b.Loop() {
		u := NewUnboxer(bytes.NewReader(wire.Bytes()), k, n)
		total := 0
		for total < frames*MaxSegmentSize {
			c, err := u.Read(buf)
			if err != nil {
				b.Fatal(err)
			}
			total += c
		}
	}
}

func byteSize(n int) string {
	if n%1024 == 0 {
		return itoa(n/1024) + "KiB"
	}
	return itoa(n) + "B"
}

func itoa(n int) string {
	b, _ := json.Marshal(n)
	return string(b)
}
