package muxrpc

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
)

// Flag is the first byte of a packet header: bit 3 = stream, bit 2 =
// end/error, bits 0-1 = body type. The upper four bits are ignored on
// receipt (as the JS decoder does) and always sent as zero.
type Flag byte

// Flag bits and body types.
const (
	FlagBinary Flag = 0 // body type 0: raw bytes (JS Buffer)
	FlagString Flag = 1 // body type 1: UTF-8 text (JS string)
	FlagJSON   Flag = 2 // body type 2: JSON
	FlagEnd    Flag = 4 // last packet of a stream half, or an error reply
	FlagStream Flag = 8 // packet belongs to a source/sink/duplex stream

	flagTypeMask Flag = 3
	flagKnown    Flag = 0x0f
)

// Type returns the body type bits (FlagBinary, FlagString or FlagJSON; 3 is
// invalid).
func (f Flag) Type() Flag { return f & flagTypeMask }

// IsStream reports whether the stream bit is set.
func (f Flag) IsStream() bool { return f&FlagStream != 0 }

// IsEnd reports whether the end/error bit is set.
func (f Flag) IsEnd() bool { return f&FlagEnd != 0 }

// String prints the flag like "stream|end|json".
func (f Flag) String() string {
	s := ""
	if f.IsStream() {
		s += "stream|"
	}
	if f.IsEnd() {
		s += "end|"
	}
	switch f.Type() {
	case FlagBinary:
		s += "binary"
	case FlagString:
		s += "string"
	case FlagJSON:
		s += "json"
	default:
		s += "type3"
	}
	return s
}

// HeaderSize is the length of a packet header on the wire.
const HeaderSize = 9

// DefaultMaxPacketSize is the largest body accepted from a peer unless
// Options.MaxPacketSize says otherwise: 4 MiB. SSB messages are at most
// 8192 UTF-16 units (≈ 24 KiB of UTF-8), blob chunks are 64 KiB and tunnel
// chunks 4 KiB, but ebt.clock and manifest replies of large nodes are single
// JSON objects that can reach megabytes (≈ 60 bytes per followed feed).
const DefaultMaxPacketSize = 4 << 20

// Codec errors. Errors returned by ReadPacket wrap one of these (or
// io.ErrUnexpectedEOF for a truncated packet) with context.
var (
	// ErrGoodbye is returned by ReadPacket for a header with body length
	// zero: the peer's goodbye (canonically nine zero bytes). The JS decoder
	// treats every zero-length header this way, and so do we.
	ErrGoodbye = errors.New("muxrpc: goodbye")
	// ErrPacketTooLarge means a header announced a body above the limit.
	ErrPacketTooLarge = errors.New("muxrpc: packet too large")
	// ErrBadPacketType means the body type bits were 3.
	ErrBadPacketType = errors.New("muxrpc: unknown body type 3")
)

// Packet is one packet-stream packet. Req > 0 is about a request started by
// the packet's sender, Req < 0 about one started by its receiver.
type Packet struct {
	Flag Flag
	Req  int32
	Body []byte
}

// AppendHeader appends the 9-byte header for a packet with the given flag,
// body length and request number.
func AppendHeader(dst []byte, flag Flag, bodyLen uint32, req int32) []byte {
	dst = append(dst, byte(flag&flagKnown))
	dst = binary.BigEndian.AppendUint32(dst, bodyLen)
	return binary.BigEndian.AppendUint32(dst, uint32(req))
}

// Goodbye is the canonical goodbye packet: nine zero bytes.
func Goodbye() []byte { return make([]byte, HeaderSize) }

// ReadPacket reads one packet from r. The body is read into buf when it is
// large enough (the returned Body then aliases buf), otherwise into a new
// slice. Bodies larger than maxBody (DefaultMaxPacketSize when maxBody <= 0)
// are rejected before anything is allocated.
//
// It returns io.EOF when r ends cleanly before a header, ErrGoodbye (with
// the header's flag and request number in the Packet) for a zero-length
// header, and otherwise an error wrapping io.ErrUnexpectedEOF,
// ErrPacketTooLarge or ErrBadPacketType.
func ReadPacket(r *bufio.Reader, buf []byte, maxBody int) (Packet, error) {
	if maxBody <= 0 {
		maxBody = DefaultMaxPacketSize
	}
	hdr, err := r.Peek(HeaderSize)
	if len(hdr) < HeaderSize {
		switch {
		case len(hdr) > 0 && errors.Is(err, io.EOF):
			return Packet{}, fmt.Errorf("muxrpc: truncated packet header: %w", io.ErrUnexpectedEOF)
		case err == nil:
			err = io.ErrUnexpectedEOF
		}
		return Packet{}, err // io.EOF or a transport error
	}
	p, n, err := parseHeader(hdr, maxBody)
	if _, derr := r.Discard(HeaderSize); derr != nil {
		return Packet{}, derr
	}
	if err != nil {
		return p, err
	}
	if cap(buf) >= int(n) {
		p.Body = buf[:n]
	} else {
		p.Body = make([]byte, n)
	}
	if _, err := io.ReadFull(r, p.Body); err != nil {
		if errors.Is(err, io.EOF) {
			err = io.ErrUnexpectedEOF
		}
		return p, fmt.Errorf("muxrpc: truncated packet body (req %d, %d bytes): %w", p.Req, n, err)
	}
	return p, nil
}

// parseHeader decodes a 9-byte header: the packet without its body and
// the body length, or ErrGoodbye, ErrBadPacketType or ErrPacketTooLarge.
func parseHeader(hdr []byte, maxBody int) (Packet, int, error) {
	if maxBody <= 0 {
		maxBody = DefaultMaxPacketSize
	}
	p := Packet{
		Flag: Flag(hdr[0]) & flagKnown,
		Req:  int32(binary.BigEndian.Uint32(hdr[5:9])),
	}
	n := binary.BigEndian.Uint32(hdr[1:5])
	if n == 0 {
		return p, 0, ErrGoodbye
	}
	if p.Flag.Type() == 3 {
		return p, 0, fmt.Errorf("muxrpc: packet req %d: %w", p.Req, ErrBadPacketType)
	}
	if uint64(n) > uint64(maxBody) {
		return p, 0, fmt.Errorf("muxrpc: packet req %d announces %d bytes, limit %d: %w", p.Req, n, maxBody, ErrPacketTooLarge)
	}
	return p, int(n), nil
}

// WritePacket writes p (header and body) to w without flushing. It refuses
// an empty body, which a JS peer would take as goodbye; use Goodbye for that.
func WritePacket(w *bufio.Writer, p Packet) error {
	if len(p.Body) == 0 {
		return fmt.Errorf("muxrpc: refusing to send packet req %d with empty body (reads as goodbye)", p.Req)
	}
	if uint64(len(p.Body)) > math.MaxUint32 {
		return fmt.Errorf("muxrpc: packet req %d body of %d bytes does not fit the header", p.Req, len(p.Body))
	}
	var hdr [HeaderSize]byte
	AppendHeader(hdr[:0], p.Flag, uint32(len(p.Body)), p.Req)
	if _, err := w.Write(hdr[:]); err != nil {
		return fmt.Errorf("muxrpc: write packet header: %w", err)
	}
	if _, err := w.Write(p.Body); err != nil {
		return fmt.Errorf("muxrpc: write packet body: %w", err)
	}
	return nil
}
