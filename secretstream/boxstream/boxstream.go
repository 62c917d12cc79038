// Package boxstream implements the SSB box-stream framing: the bulk
// encryption used on a connection after the secret handshake (one
// independent stream per direction, each with its own key and starting
// nonce).
//
// Each plaintext chunk of 1..4096 bytes becomes a 34-byte sealed header
// (body length and body MAC) followed by the encrypted body without its MAC.
// A sealed all-zero 18-byte header ("goodbye") ends the stream.
//
// This package only frames and encrypts bytes; it never performs a
// handshake, never picks keys or nonces itself, never panics on bad input
// and never emits a zero-length frame.
package boxstream

import (
	"errors"
	"fmt"
	"io"
	"sync"

	"golang.org/x/crypto/nacl/secretbox"
)

const (
	// HeaderSize is the size of a sealed header on the wire.
	HeaderSize = 34
	// MaxSegmentSize is the maximum body length of one frame.
	MaxSegmentSize = 4096
	// tagSize is the Poly1305 tag size (secretbox.Overhead).
	tagSize = secretbox.Overhead
	// plainHeaderSize is the size of an opened header: length[2] || body tag[16].
	plainHeaderSize = 2 + tagSize
	// maxFrameSize is the largest frame on the wire.
	maxFrameSize = HeaderSize + MaxSegmentSize
	// writeBatchFrames is how many full frames one Write sends per
	// underlying Write call (one syscall).
	writeBatchFrames = 16
	// readBufferSize is the size of the Unboxer's read buffer.
	readBufferSize = 64 * 1024
)

var (
	// ErrInvalidHeader means a frame header failed authentication or
	// announced an impossible body length. The stream is unusable.
	ErrInvalidHeader = errors.New("boxstream: invalid header (authentication failed)")
	// ErrInvalidBody means a frame body failed authentication.
	ErrInvalidBody = errors.New("boxstream: invalid body (authentication failed)")
	// ErrGoodbyeSent is returned by Write after the goodbye was sent.
	ErrGoodbyeSent = errors.New("boxstream: write after goodbye")
)

// IncrementNonce adds one to the 24-byte big-endian counter n, carrying
// towards byte 0; all-0xff wraps to zero.
func IncrementNonce(n *[24]byte) {
	for i := len(n) - 1; i >= 0; i-- {
		n[i]++
		if n[i] != 0 {
			return
		}
	}
}

// Boxer encrypts a byte stream into box-stream frames written to an
// io.Writer. A Boxer is not safe for concurrent use.
type Boxer struct {
	w     io.Writer
	key   [32]byte
	nonce [24]byte
	// bodyNonce is scratch space for nonce+1.
	bodyNonce [24]byte
	hdr       [plainHeaderSize]byte
	err       error
}

// Buffers are pooled and held only during a Write (Boxer) or while
// unread bytes are buffered (Unboxer), so an idle connection holds none.
var (
	writePool = sync.Pool{New: func() any { b := make([]byte, writeBatchFrames*maxFrameSize); return &b }}
	readPool  = sync.Pool{New: func() any { b := make([]byte, readBufferSize); return &b }}
	plainPool = sync.Pool{New: func() any { b := make([]byte, MaxSegmentSize); return &b }}
)

// NewBoxer returns a Boxer that writes frames sealed with key, starting at
// nonce, to w.
func NewBoxer(w io.Writer, key [32]byte, nonce [24]byte) *Boxer {
	return &Boxer{
		w:     w,
		key:   key,
		nonce: nonce,
	}
}

// appendFrame seals chunk (1..MaxSegmentSize bytes) as one frame appended
// to dst. dst must have capacity for it.
func (b *Boxer) appendFrame(dst, chunk []byte) []byte {
	off := len(dst)
	dst = dst[:off+HeaderSize+len(chunk)]
	b.bodyNonce = b.nonce
	IncrementNonce(&b.bodyNonce)
	// The body box (tag || ciphertext) lands so that the ciphertext sits
	// right after the header: the tag occupies the header's last 16 bytes
	// until the header itself is sealed over it.
	secretbox.Seal(dst[off+HeaderSize-tagSize:off+HeaderSize-tagSize], chunk, &b.bodyNonce, &b.key)
	b.hdr[0] = byte(len(chunk) >> 8)
	b.hdr[1] = byte(len(chunk))
	copy(b.hdr[2:], dst[off+HeaderSize-tagSize:off+HeaderSize])
	secretbox.Seal(dst[off:off], b.hdr[:], &b.nonce, &b.key)
	IncrementNonce(&b.nonce)
	IncrementNonce(&b.nonce)
	return dst
}

// Write encrypts p as frames of at most MaxSegmentSize bytes and writes
// them, several frames per call to the underlying writer. An empty p writes
// nothing. It returns how many bytes of p were sent in complete frames.
func (b *Boxer) Write(p []byte) (int, error) {
	if b.err != nil {
		return 0, b.err
	}
	if len(p) == 0 {
		return 0, nil
	}
	pb := writePool.Get().(*[]byte)
	defer writePool.Put(pb)
	n := 0
	for len(p) > 0 {
		buf := (*pb)[:0]
		batch := 0
		for len(p) > 0 && cap(buf)-len(buf) >= maxFrameSize {
			k := min(len(p), MaxSegmentSize)
			buf = b.appendFrame(buf, p[:k])
			p = p[k:]
			batch += k
		}
		if _, err := b.w.Write(buf); err != nil {
			b.err = fmt.Errorf("boxstream: write frames: %w", err)
			return n, b.err
		}
		n += batch
	}
	return n, nil
}

// WriteGoodbye sends the goodbye header that ends the stream. Later
// Writes fail with ErrGoodbyeSent.
func (b *Boxer) WriteGoodbye() error {
	if b.err != nil {
		return b.err
	}
	var zero [plainHeaderSize]byte
	var out [HeaderSize]byte
	buf := secretbox.Seal(out[:0], zero[:], &b.nonce, &b.key)
	IncrementNonce(&b.nonce)
	b.err = ErrGoodbyeSent
	if _, err := b.w.Write(buf); err != nil {
		b.err = fmt.Errorf("boxstream: write goodbye: %w", err)
		return b.err
	}
	return nil
}

// Unboxer decrypts box-stream frames read from an io.Reader. Read returns
// io.EOF after the goodbye; an end of input before the goodbye is an error
// wrapping io.ErrUnexpectedEOF. An Unboxer is not safe for concurrent use.
type Unboxer struct {
	r     io.Reader
	key   [32]byte
	nonce [24]byte
	// bodyNonce is scratch space for nonce+1.
	bodyNonce [24]byte
	hdr       [plainHeaderSize]byte

	// buf[start:end] holds unread wire bytes. buf is small[:] while the
	// stream is idle and a pooled 64 KiB buffer (big) while data flows.
	buf        []byte
	start, end int
	small      [smallReadSize]byte
	big        *[]byte
	lastRead   int // bytes the last Read returned: a flood keeps big

	plain   *[]byte // pooled: decrypted body when the caller's buffer is small
	pending []byte  // unread part of *plain

	err error // sticky: io.EOF after goodbye, or a fatal stream error
}

// NewUnboxer returns an Unboxer that reads frames sealed with key, starting
// at nonce, from r.
func NewUnboxer(r io.Reader, key [32]byte, nonce [24]byte) *Unboxer {
	u := &Unboxer{
		r:     r,
		key:   key,
		nonce: nonce,
	}
	u.buf = u.small[:]
	return u
}

// smallReadSize is the read buffer of an idle Unboxer: a frame header and
// a short body.
const smallReadSize = 256

// grow moves the buffered bytes into a pooled big buffer.
func (u *Unboxer) grow() {
	if u.big != nil {
		return
	}
	u.big = readPool.Get().(*[]byte)
	b := *u.big
	u.end = copy(b, u.buf[u.start:u.end])
	u.start = 0
	u.buf = b
}

// drained resets the buffer once everything in it was consumed, giving
// the big buffer back to the pool.
func (u *Unboxer) drained() {
	if u.start != u.end {
		return
	}
	u.start, u.end = 0, 0
	if u.big != nil && u.lastRead < smallReadSize {
		readPool.Put(u.big)
		u.big = nil
		u.buf = u.small[:]
	}
}

// fill makes sure at least need bytes are buffered, reading from r as
// needed (at least once when block is true and fewer than need bytes are
// buffered). Errors from r are returned; a clean io.EOF is reported as is.
func (u *Unboxer) fill(need int) error {
	for u.end-u.start < need {
		if len(u.buf)-u.start < need {
			if need > len(u.buf) {
				u.grow()
			} else {
				u.end = copy(u.buf, u.buf[u.start:u.end])
				u.start = 0
			}
		}
		k, err := u.r.Read(u.buf[u.end:])
		u.end += k
		u.lastRead = k
		if u.big == nil && u.end == len(u.buf) {
			u.grow() // the small buffer filled at once: data is flowing
		}
		if u.end-u.start >= need {
			return nil
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// wireErr turns an error from the underlying reader into the error Read
// reports: an end of input before the goodbye is io.ErrUnexpectedEOF.
func (u *Unboxer) wireErr(err error) error {
	if errors.Is(err, io.EOF) {
		u.err = fmt.Errorf("boxstream: peer hung up without goodbye: %w", io.ErrUnexpectedEOF)
		return u.err
	}
	// Other errors (timeouts, closed connection) are passed through
	// unchanged and not made sticky: nothing was consumed, so a later Read
	// can resume after a deadline error.
	return err
}

// frame parses the header of the frame at u.start if buffered (or, when
// block is set, after reading it). It returns the body length, or done=true
// for the goodbye.
func (u *Unboxer) header(block bool) (n int, ok bool, err error) {
	if u.end-u.start < HeaderSize {
		if !block {
			return 0, false, nil
		}
		if err := u.fill(HeaderSize); err != nil {
			return 0, false, u.wireErr(err)
		}
	}
	h, good := secretbox.Open(u.hdr[:0], u.buf[u.start:u.start+HeaderSize], &u.nonce, &u.key)
	if !good {
		u.err = ErrInvalidHeader
		return 0, false, u.err
	}
	goodbye := true
	for _, c := range h {
		if c != 0 {
			goodbye = false
			break
		}
	}
	if goodbye {
		u.start += HeaderSize
		u.drained()
		IncrementNonce(&u.nonce)
		u.err = io.EOF
		return 0, false, io.EOF
	}
	n = int(h[0])<<8 | int(h[1])
	if n > MaxSegmentSize {
		u.err = fmt.Errorf("%w: body length %d exceeds %d", ErrInvalidHeader, n, MaxSegmentSize)
		return 0, false, u.err
	}
	return n, true, nil
}

// body decrypts the n-byte body of the frame at u.start into out (which
// must have room for n bytes) and consumes the frame.
func (u *Unboxer) body(out []byte, n int) error {
	// Rebuild the body box tag || ciphertext in place: the tag goes over
	// the last 16 bytes of the already opened header.
	boxStart := u.start + HeaderSize - tagSize
	copy(u.buf[boxStart:u.start+HeaderSize], u.hdr[2:])
	u.bodyNonce = u.nonce
	IncrementNonce(&u.bodyNonce)
	if _, ok := secretbox.Open(out[:0], u.buf[boxStart:u.start+HeaderSize+n], &u.bodyNonce, &u.key); !ok {
		u.err = ErrInvalidBody
		return u.err
	}
	u.start += HeaderSize + n
	u.drained()
	IncrementNonce(&u.nonce)
	IncrementNonce(&u.nonce)
	return nil
}

// Read decrypts the next bytes of the stream into p. It blocks for at most
// one frame, then also decrypts further complete frames that are already
// buffered and fit in p.
func (u *Unboxer) Read(p []byte) (int, error) {
	if len(u.pending) > 0 {
		k := copy(p, u.pending)
		u.pending = u.pending[k:]
		if len(u.pending) == 0 {
			u.releasePlain()
		}
		return k, nil
	}
	if u.err != nil {
		return 0, u.err
	}
	if len(p) == 0 {
		return 0, nil
	}
	total := 0
	for {
		first := total == 0
		n, ok, err := u.header(first)
		if !ok {
			if total > 0 {
				// Report the data now; a goodbye or error is
				// sticky and reported by the next Read.
				return total, nil
			}
			return 0, err
		}
		if u.end-u.start < HeaderSize+n {
			if !first {
				return total, nil
			}
			if err := u.fill(HeaderSize + n); err != nil {
				return 0, u.wireErr(err)
			}
		}
		if n == 0 {
			// A zero-length frame is not sent by conforming peers;
			// accept it as carrying no data.
			if err := u.body(nil, 0); err != nil {
				return total, err
			}
			if first {
				continue
			}
			return total, nil
		}
		if len(p)-total >= n {
			if err := u.body(p[total:], n); err != nil {
				return total, err
			}
			total += n
			if total == len(p) {
				return total, nil
			}
			continue
		}
		if !first {
			return total, nil
		}
		u.plain = plainPool.Get().(*[]byte)
		plain := *u.plain
		if err := u.body(plain, n); err != nil {
			u.releasePlain()
			return 0, err
		}
		k := copy(p, plain[:n])
		u.pending = plain[k:n]
		if len(u.pending) == 0 {
			u.releasePlain()
		}
		return k, nil
	}
}

func (u *Unboxer) releasePlain() {
	if u.plain != nil {
		plainPool.Put(u.plain)
		u.plain = nil
		u.pending = nil
	}
}
