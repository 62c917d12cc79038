package classic

import (
	"bytes"
	"testing"
)

var fuzzSeeds = []string{
	`{}`, `[]`, `null`, `true`, `-0`, `1e400`, `"\ud83d"`, `"\ud83d\ude00"`, "\"\xed\xa0\x80\"",
	`{"b":1,"1":2,"a":3,"b":4}`, `[1,"two",null,true,false,{"x":[]}]`,
	`{"s":"\"quotes\" \\ \/ \b\f\n\r\t \u0001 \u001f"}`, `123456789012345678901234567890`,
	`{"previous":null,"author":"@FCX/tsDLpubCPKKfIrw4gc+SQkHcaD17s7GI6i/ziWY=.ed25519","sequence":1,` +
		`"timestamp":1514517067954,"hash":"sha256","content":{"type":"post","text":"This is the first post!"},` +
		`"signature":"QYOR/zU9dxE1aKBaxc3C0DJ4gRyZtlMfPLt+CGJcY73sv5abKKKxr1SqhOvnm8TY784VHE8kZHCD8RdzFl1tBA==.sig.ed25519"}`,
}

// FuzzDecode: decoding never panics, and canonical/compact output is a fixed
// point (re-decoding it gives the same value and the same text).
func FuzzDecode(f *testing.F) {
	for _, s := range fuzzSeeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		v, err := Decode(data)
		if err != nil {
			return
		}
		canon := v.Canonical()
		compact := v.Compact()
		v2, err := Decode(canon)
		if err != nil {
			t.Fatalf("canonical output does not decode: %v\n%q", err, canon)
		}
		if c2 := v2.Canonical(); !bytes.Equal(c2, canon) {
			t.Fatalf("canonical not idempotent:\n%q\n%q", canon, c2)
		}
		v3, err := Decode(compact)
		if err != nil {
			t.Fatalf("compact output does not decode: %v\n%q", err, compact)
		}
		if c3 := v3.Canonical(); !bytes.Equal(c3, canon) {
			t.Fatalf("compact and canonical disagree:\n%q\n%q", canon, c3)
		}
		if UTF16Len(canon) < len(Latin1(canon))/2 {
			t.Fatalf("latin1 longer than twice the UTF-16 length")
		}
	})
}

// FuzzParse: Parse and ParseKVT never panic on arbitrary bytes, and an
// accepted message re-parses from its compact form to the same id.
func FuzzParse(f *testing.F) {
	for _, s := range fuzzSeeds {
		f.Add([]byte(s))
	}
	f.Add([]byte(`{"key":"%XphMUkWQtomKjXQvFGfsGYpt69sgEY7Y4Vou9cEuJho=.sha256","value":` + fuzzSeeds[len(fuzzSeeds)-1] + `,"timestamp":1}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		_, _, _, _ = ParseKVT(data)
		m, err := Parse(data)
		if err != nil {
			return
		}
		_ = m.VerifySignature(nil)
		_ = ValidateNext(nil, m)
		m2, err := Parse(m.Compact)
		if err != nil {
			t.Fatalf("compact form rejected: %v", err)
		}
		if m2.Key != m.Key {
			t.Fatalf("id changed on re-parse")
		}
	})
}
