package muxrpc

import (
	"bufio"
	"bytes"
	"encoding/hex"
	"errors"
	"io"
	"strings"
	"testing"
)

func TestHeaderLayout(t *testing.T) {
	// protocol.md §5.1: the first createHistoryStream request, an item of
	// the response, the responder's end and the requester's end.
	tests := []struct {
		name string
		flag Flag
		n    uint32
		req  int32
		want string
	}{
		{"stream request req 1", FlagStream | FlagJSON, 0x2a, 1, "0a0000002a00000001"},
		{"response item req -1", FlagStream | FlagJSON, 0x2a, -1, "0a0000002affffffff"},
		{"responder end", FlagStream | FlagEnd | FlagJSON, 4, -1, "0e00000004ffffffff"},
		{"requester end", FlagStream | FlagEnd | FlagJSON, 4, 1, "0e0000000400000001"},
		{"async request", FlagJSON, 0x10, 7, "020000001000000007"},
		{"async string reply", FlagString, 3, -7, "0100000003fffffff9"},
		{"async error reply", FlagEnd | FlagJSON, 0x30, -7, "0600000030fffffff9"},
		{"binary stream data", FlagStream, 0x1000, -2, "0800001000fffffffe"},
		{"upper bits dropped", 0xf2, 1, 1, "020000000100000001"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := hex.EncodeToString(AppendHeader(nil, tt.flag, tt.n, tt.req))
			if got != tt.want {
				t.Fatalf("header = %s, want %s", got, tt.want)
			}
		})
	}
	if got := hex.EncodeToString(Goodbye()); got != "000000000000000000" {
		t.Fatalf("goodbye = %s", got)
	}
}

func TestPacketRoundTrip(t *testing.T) {
	tests := []Packet{
		{Flag: FlagJSON, Req: 1, Body: []byte(`{"name":["whoami"],"args":[]}`)},
		{Flag: FlagStream | FlagJSON, Req: -1, Body: []byte(`{"key":"%x","seq":1}`)},
		{Flag: FlagStream | FlagEnd | FlagJSON, Req: -1, Body: []byte(`true`)},
		{Flag: FlagString, Req: -3, Body: []byte("hello")},
		{Flag: FlagStream, Req: 2147483647, Body: bytes.Repeat([]byte{0xff}, 70000)},
		{Flag: FlagEnd | FlagJSON, Req: -2147483647, Body: []byte(`{"name":"Error","message":"x"}`)},
	}
	var buf bytes.Buffer
	w := bufio.NewWriter(&buf)
	for _, p := range tests {
		if err := WritePacket(w, p); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := w.Write(Goodbye()); err != nil {
		t.Fatal(err)
	}
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
	r := bufio.NewReader(&buf)
	scratch := make([]byte, 64)
	for i, want := range tests {
		got, err := ReadPacket(r, scratch, 0)
		if err != nil {
			t.Fatalf("packet %d: %v", i, err)
		}
		if got.Flag != want.Flag || got.Req != want.Req || !bytes.Equal(got.Body, want.Body) {
			t.Fatalf("packet %d: got %v %d %q, want %v %d %q", i, got.Flag, got.Req, trunc(got.Body), want.Flag, want.Req, trunc(want.Body))
		}
	}
	if _, err := ReadPacket(r, nil, 0); !errors.Is(err, ErrGoodbye) {
		t.Fatalf("after packets: %v, want ErrGoodbye", err)
	}
	if _, err := ReadPacket(r, nil, 0); err != io.EOF {
		t.Fatalf("at end: %v, want io.EOF", err)
	}
}

func trunc(b []byte) []byte {
	if len(b) > 40 {
		return b[:40]
	}
	return b
}

func TestReadPacketErrors(t *testing.T) {
	tests := []struct {
		name    string
		wire    string // hex
		max     int
		want    error
		wantReq int32
	}{
		{"clean eof", "", 0, io.EOF, 0},
		{"goodbye", "000000000000000000", 0, ErrGoodbye, 0},
		{"zero length with flags is goodbye too", "0a0000000000000005", 0, ErrGoodbye, 5},
		{"truncated header", "0a000000", 0, io.ErrUnexpectedEOF, 0},
		{"truncated body", "0200000005000000017b7d", 0, io.ErrUnexpectedEOF, 1},
		{"header only", "020000000500000001", 0, io.ErrUnexpectedEOF, 1},
		{"type 3", "030000000200000001" + "7b7d", 0, ErrBadPacketType, 1},
		{"stream type 3", "0f0000000200000001" + "7b7d", 0, ErrBadPacketType, 1},
		{"oversize", "020000000500000001" + "7b7d7b7d7b", 4, ErrPacketTooLarge, 1},
		{"huge announced", "02ffffffff00000001", 0, ErrPacketTooLarge, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			raw, err := hex.DecodeString(tt.wire)
			if err != nil {
				t.Fatal(err)
			}
			p, err := ReadPacket(bufio.NewReader(bytes.NewReader(raw)), nil, tt.max)
			if !errors.Is(err, tt.want) {
				t.Fatalf("err = %v, want %v", err, tt.want)
			}
			if p.Req != tt.wantReq {
				t.Fatalf("req = %d, want %d", p.Req, tt.wantReq)
			}
		})
	}
}

func TestWritePacketRefusesEmptyBody(t *testing.T) {
	var buf bytes.Buffer
	w := bufio.NewWriter(&buf)
	err := WritePacket(w, Packet{Flag: FlagString, Req: 1})
	if err == nil || !strings.Contains(err.Error(), "empty body") {
		t.Fatalf("err = %v, want refusal", err)
	}
	_ = w.Flush()
	if buf.Len() != 0 {
		t.Fatalf("wrote %d bytes", buf.Len())
	}
}

func TestMethod(t *testing.T) {
	tests := []struct {
		json    string
		want    string
		wantErr bool
	}{
		{`["createHistoryStream"]`, "createHistoryStream", false},
		{`["ebt","replicate"]`, "ebt.replicate", false},
		{`"manifest"`, "manifest", false},
		{`[]`, "", true},
		{`""`, "", true},
		{`42`, "", true},
		{`[1,2]`, "", true},
	}
	for _, tt := range tests {
		var m Method
		err := m.UnmarshalJSON([]byte(tt.json))
		if (err != nil) != tt.wantErr {
			t.Fatalf("%s: err = %v", tt.json, err)
		}
		if err == nil && m.String() != tt.want {
			t.Fatalf("%s: got %q want %q", tt.json, m.String(), tt.want)
		}
	}
	if !ParseMethod("a.b.c").Equal(Method{"a", "b", "c"}) || ParseMethod("") != nil {
		t.Fatal("ParseMethod")
	}
	if got := NotAllowedError(Method{"ebt", "replicate"}).Message; got != "method:ebt,replicate is not in list of allowed methods" {
		t.Fatalf("NotAllowedError = %q", got)
	}
}

func TestBodyError(t *testing.T) {
	tests := []struct {
		flag Flag
		body string
		want string // "" = clean end
	}{
		{FlagJSON, `true`, ""},
		{FlagJSON, `null`, ""},
		{FlagJSON, `{}`, ""},
		{FlagJSON, `{"name":"Error","message":"boom","stack":"at x"}`, "boom"},
		{FlagJSON, `{"message":"no name"}`, "no name"},
		{FlagJSON, `"plain"`, "plain"},
		{FlagString, `text error`, "text error"},
		{FlagJSON, `{bad`, "unparsable error body: {bad"},
	}
	for _, tt := range tests {
		err := bodyError(tt.flag, []byte(tt.body))
		if tt.want == "" {
			if err != nil {
				t.Fatalf("%s: got %v, want clean end", tt.body, err)
			}
			continue
		}
		var ce *CallError
		if !errors.As(err, &ce) || ce.Message != tt.want {
			t.Fatalf("%s: got %v, want message %q", tt.body, err, tt.want)
		}
	}
}

func FuzzReadPacket(f *testing.F) {
	seeds := []string{
		"",
		"000000000000000000",
		"0a0000000400000001" + hex.EncodeToString([]byte("true")),
		"0e00000004ffffffff" + hex.EncodeToString([]byte("true")),
		"030000000100000001ff",
		"02ffffffff00000001",
		"0100000003fffffff9616263" + "000000000000000000",
	}
	for _, s := range seeds {
		b, _ := hex.DecodeString(s)
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		r := bufio.NewReader(bytes.NewReader(data))
		buf := make([]byte, 16)
		var out bytes.Buffer
		w := bufio.NewWriter(&out)
		var got []Packet
		for {
			p, err := ReadPacket(r, buf, 1024)
			if err != nil {
				break
			}
			if len(p.Body) == 0 || len(p.Body) > 1024 || p.Flag.Type() == 3 || p.Flag > 0x0f {
				t.Fatalf("invalid packet accepted: %v len %d", p.Flag, len(p.Body))
			}
			p.Body = bytes.Clone(p.Body)
			got = append(got, p)
			if err := WritePacket(w, p); err != nil {
				t.Fatal(err)
			}
		}
		_ = w.Flush()
		// Re-reading what we wrote gives the same packets.
		r2 := bufio.NewReader(&out)
		for i, want := range got {
			p, err := ReadPacket(r2, nil, 1024)
			if err != nil || p.Flag != want.Flag || p.Req != want.Req || !bytes.Equal(p.Body, want.Body) {
				t.Fatalf("re-read packet %d: %v %v", i, p, err)
			}
		}
	})
}
