package classic

import (
	"context"
	"crypto/ed25519"
	"encoding/base64"
	"math"
	"strings"
	"testing"

	"github.com/cask-ssb/cask/feeds"
)

func TestProtocolGuideExample(t *testing.T) {
	msg := `{"previous":null,"author":"@FCX/tsDLpubCPKKfIrw4gc+SQkHcaD17s7GI6i/ziWY=.ed25519","sequence":1,` +
		`"timestamp":1514517067954,"hash":"sha256","content":{"type":"post","text":"This is the first post!"},` +
		`"signature":"QYOR/zU9dxE1aKBaxc3C0DJ4gRyZtlMfPLt+CGJcY73sv5abKKKxr1SqhOvnm8TY784VHE8kZHCD8RdzFl1tBA==.sig.ed25519"}`
	m, err := Parse([]byte(msg))
	if err != nil {
		t.Fatal(err)
	}
	if got, want := m.Key.String(), "%XphMUkWQtomKjXQvFGfsGYpt69sgEY7Y4Vou9cEuJho=.sha256"; got != want {
		t.Fatalf("id %s, want %s", got, want)
	}
	if !m.AuthorFirst || m.Sequence != 1 || m.Timestamp != 1514517067954 || m.ContentType() != "post" || m.IsEncrypted() {
		t.Fatalf("fields: %+v", m)
	}
	if err := m.VerifySignature(nil); err != nil {
		t.Fatal(err)
	}
	if err := ValidateNext(nil, m); err != nil {
		t.Fatal(err)
	}
	if string(m.Compact) != msg {
		t.Fatalf("compact:\n%s\nwant\n%s", m.Compact, msg)
	}
}

func testKey(seed byte) ed25519.PrivateKey {
	s := make([]byte, 32)
	for i := range s {
		s[i] = seed + byte(i)
	}
	return ed25519.NewKeyFromSeed(s)
}

func TestCreateRoundTrip(t *testing.T) {
	key := testKey(7)
	hmacKey := &[32]byte{1, 2, 3}
	contents := []struct {
		name    string
		content any
		want    string // expected JSON.stringify(content), "" = don't check
	}{
		{"post", map[string]any{"type": "post", "text": "hello"}, `{"text":"hello","type":"post"}`},
		{"raw json keeps order", RawJSON(`{"type":"post","b":1,"a":2}`), `{"type":"post","b":1,"a":2}`},
		{"integer-like keys", RawJSON(`{"type":"test","b":1,"10":2,"2":3,"01":4}`), `{"2":3,"10":2,"type":"test","b":1,"01":4}`},
		{"unicode", RawJSON(`{"type":"post","text":"ünïcödé ✓ 日本語 😀 \u2028"}`), ""},
		{"lone surrogates", RawJSON(`{"type":"post","text":"\ud83d x \ude00"}`), `{"type":"post","text":"\ud83d x \ude00"}`},
		{"numbers", []Member{
			{Key: "type", Value: String("nums")},
			{Key: "n", Value: Array(Number(1e21), Number(pointOne+pointTwo), Number(math.Copysign(0, -1)), Number(5e-324), Number(1e-7))},
		}, `{"type":"nums","n":[1e+21,0.30000000000000004,0,5e-324,1e-7]}`},
		{"control chars", RawJSON(`{"type":"post","text":"\u0000\b\f\n\r\t\u007f\ufeff"}`), `{"type":"post","text":"\u0000\b\f\n\r\t` + "\u007f\ufeff" + `"}`},
		{"encrypted", "YWJj.box", `"YWJj.box"`},
		{"52-unit type", map[string]any{"type": strings.Repeat("x", 52)}, ""},
	}
	for _, hk := range []*[32]byte{nil, hmacKey} {
		var state *FeedState
		var msgs []*Message
		ts := 1700000000000.5
		for _, c := range contents {
			m, err := Create(key, state, ts, c.content, hk)
			if err != nil {
				t.Fatalf("%s: %v", c.name, err)
			}
			ts += 1000
			if c.want != "" && string(m.ContentJSON()) != c.want {
				t.Fatalf("%s: content %s, want %s", c.name, m.ContentJSON(), c.want)
			}
			// Parse the compact wire form back: same id, verifies, chains.
			p, err := Parse(m.Compact)
			if err != nil {
				t.Fatalf("%s: parse: %v", c.name, err)
			}
			if p.Key != m.Key || string(p.Canonical) != string(m.Canonical) {
				t.Fatalf("%s: re-parse changed the message", c.name)
			}
			if err := p.VerifySignature(hk); err != nil {
				t.Fatalf("%s: %v", c.name, err)
			}
			if hk != nil && p.VerifySignature(nil) == nil {
				t.Fatalf("%s: HMAC-signed message verifies without the key", c.name)
			}
			if err := ValidateNext(state, p); err != nil {
				t.Fatalf("%s: %v", c.name, err)
			}
			if p.AuthorFirst {
				t.Fatalf("%s: created message uses author-first order", c.name)
			}
			s := StateAfter(p)
			state = &s
			msgs = append(msgs, p)
		}
		states := map[feeds.FeedRef]*FeedState{}
		for i, err := range NewVerifier(hk).Verify(context.Background(), msgs, states) {
			if err != nil {
				t.Fatalf("verifier, message %d: %v", i, err)
			}
		}
	}
}

func TestCreateRejects(t *testing.T) {
	key := testKey(1)
	first, err := Create(key, nil, 1000, map[string]any{"type": "post"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	st := StateAfter(first)
	tests := []struct {
		name    string
		state   *FeedState
		ts      float64
		content any
	}{
		{"type too short", nil, 1, map[string]any{"type": "ab"}},
		{"type too long", nil, 1, map[string]any{"type": strings.Repeat("y", 53)}},
		{"type not string", nil, 1, map[string]any{"type": 5}},
		{"no type", nil, 1, map[string]any{"text": "x"}},
		{"array content", nil, 1, []any{"post"}},
		{"plain string content", nil, 1, "hello"},
		{"non-canonical box", nil, 1, "YWJ=.box"},
		{"NaN timestamp", nil, math.NaN(), map[string]any{"type": "post"}},
		{"timestamp not increasing", &st, 1000, map[string]any{"type": "post"}},
		{"too large", nil, 1, map[string]any{"type": "post", "text": strings.Repeat("a", 8192)}},
		{"bad json", nil, 1, RawJSON(`{"type":`)},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := Create(key, tc.state, tc.ts, tc.content, nil); err == nil {
				t.Fatal("accepted")
			}
		})
	}
}

// TestParseRules exercises each Parse and ValidateNext rule on a message
// built from a valid one with a single change (signature not re-made: these
// rules are checked before the signature).
func TestParseRules(t *testing.T) {
	key := testKey(3)
	m1, err := Create(key, nil, 1000, RawJSON(`{"type":"post","text":"hi"}`), nil)
	if err != nil {
		t.Fatal(err)
	}
	st := StateAfter(m1)
	m2, err := Create(key, &st, 2000, RawJSON(`{"type":"post","text":"again"}`), nil)
	if err != nil {
		t.Fatal(err)
	}
	good := string(m2.Compact)
	author := `"author":"` + m2.Author.String() + `"`
	prev := `"previous":"` + m1.Key.String() + `"`
	sig := m2.Compact[strings.Index(good, `"signature":`):]
	tests := []struct {
		name    string
		mutate  func(string) string
		parseOK bool
		fatal   bool // when ValidateNext / Parse fails
	}{
		{"unchanged", func(s string) string { return s }, true, false},
		{"author first order", func(s string) string {
			return strings.Replace(strings.Replace(s, `"sequence":2,`+author, author+`,"sequence":2`, 1), "", "", 0)
		}, true, false},
		{"hash before timestamp", func(s string) string {
			return strings.Replace(s, `"timestamp":2000,"hash":"sha256"`, `"hash":"sha256","timestamp":2000`, 1)
		}, false, true},
		{"extra key", func(s string) string { return strings.Replace(s, `"hash":"sha256"`, `"hash":"sha256","x":1`, 1) }, false, true},
		{"hash blake2b", func(s string) string { return strings.Replace(s, `"sha256","content"`, `"blake2b","content"`, 1) }, false, false},
		{"sequence 2^31", func(s string) string { return strings.Replace(s, `"sequence":2`, `"sequence":2147483648`, 1) }, false, false},
		{"sequence fractional", func(s string) string { return strings.Replace(s, `"sequence":2`, `"sequence":2.5`, 1) }, false, false},
		{"sequence string", func(s string) string { return strings.Replace(s, `"sequence":2`, `"sequence":"2"`, 1) }, false, false},
		{"author sha256 suffix", func(s string) string { return strings.Replace(s, ".ed25519\",", ".sha256\",", 1) }, false, false},
		{"signature suffix", func(s string) string { return strings.Replace(s, ".sig.ed25519", ".sig.ed25518", 1) }, false, false},
		{"array content", func(s string) string {
			return strings.Replace(s, `{"type":"post","text":"again"}`, `["post"]`, 1)
		}, false, false},
		{"null content", func(s string) string { return strings.Replace(s, `{"type":"post","text":"again"}`, `null`, 1) }, false, false},
		{"box content", func(s string) string { return strings.Replace(s, `{"type":"post","text":"again"}`, `"YWJj.box2"`, 1) }, true, false},
		{"box content with newline", func(s string) string { return strings.Replace(s, `{"type":"post","text":"again"}`, `"YWJj.box\n"`, 1) }, false, false},
		{"wrong previous", func(s string) string { return strings.Replace(s, prev, `"previous":"`+m2.Key.String()+`"`, 1) }, true, true},
		{"null previous", func(s string) string { return strings.Replace(s, prev, `"previous":null`, 1) }, true, true},
		{"garbage previous", func(s string) string { return strings.Replace(s, prev, `"previous":"%abc"`, 1) }, true, true},
		{"duplicate sequence", func(s string) string { return strings.Replace(s, `"sequence":2`, `"sequence":1`, 1) }, true, false},
		{"string timestamp after first", func(s string) string { return strings.Replace(s, `"timestamp":2000`, `"timestamp":"2000"`, 1) }, true, false},
		{"duplicate key keeps position", func(s string) string {
			return strings.Replace(s, string(sig), `"signature":"x",`+string(sig), 1)
		}, true, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			in := tc.mutate(good)
			if in == good && tc.name != "unchanged" {
				t.Fatal("mutation did not apply")
			}
			m, err := Parse([]byte(in))
			if (err == nil) != tc.parseOK {
				t.Fatalf("Parse err = %v, want ok=%v", err, tc.parseOK)
			}
			if err != nil {
				if IsFatal(err) != tc.fatal {
					t.Fatalf("fatal = %v, want %v (%v)", IsFatal(err), tc.fatal, err)
				}
				return
			}
			err = ValidateNext(&st, m)
			if tc.name == "unchanged" || tc.name == "author first order" || tc.name == "box content" ||
				tc.name == "string timestamp after first" || tc.name == "duplicate key keeps position" {
				if err != nil {
					t.Fatalf("ValidateNext: %v", err)
				}
				return
			}
			if err == nil {
				t.Fatal("ValidateNext accepted")
			}
			if IsFatal(err) != tc.fatal {
				t.Fatalf("fatal = %v, want %v (%v)", IsFatal(err), tc.fatal, err)
			}
		})
	}
}

func TestFirstMessageRules(t *testing.T) {
	key := testKey(9)
	m, err := Create(key, nil, 5, RawJSON(`{"type":"post"}`), nil)
	if err != nil {
		t.Fatal(err)
	}
	good := string(m.Compact)
	for _, tc := range []struct{ name, from, to string }{
		{"string timestamp", `"timestamp":5`, `"timestamp":"5"`},
		{"sequence 2", `"sequence":1`, `"sequence":2`},
		{"previous set", `"previous":null`, `"previous":"%XphMUkWQtomKjXQvFGfsGYpt69sgEY7Y4Vou9cEuJho=.sha256"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p, err := Parse([]byte(strings.Replace(good, tc.from, tc.to, 1)))
			if err != nil {
				t.Fatal(err)
			}
			if err := ValidateNext(nil, p); err == nil || !IsFatal(err) {
				t.Fatalf("err = %v, want fatal", err)
			}
		})
	}
}

func TestSizeLimitCountsUTF16(t *testing.T) {
	key := testKey(4)
	// 3000 CJK characters: 9000 UTF-8 bytes but 3000 UTF-16 units.
	m, err := Create(key, nil, 1, map[string]any{"type": "post", "text": strings.Repeat("日", 3000)}, nil)
	if err != nil {
		t.Fatalf("CJK post rejected: %v", err)
	}
	if len(m.Canonical) <= MaxMessageUnits {
		t.Fatalf("test needs more than %d bytes, got %d", MaxMessageUnits, len(m.Canonical))
	}
	// Astral characters count two units each.
	if _, err := Create(key, nil, 1, map[string]any{"type": "post", "text": strings.Repeat("😀", 4000)}, nil); err == nil {
		t.Fatal("8000 astral chars (16000 units) accepted")
	}
}

func TestParseHMACKey(t *testing.T) {
	good := base64.StdEncoding.EncodeToString(make([]byte, 32))
	if k, err := ParseHMACKey(good); err != nil || k == nil {
		t.Fatalf("good key: %v", err)
	}
	for _, bad := range []string{"AAAA", good[:43] + "B", "!" + good[1:], good + "AAAA"} {
		if _, err := ParseHMACKey(bad); err == nil {
			t.Errorf("accepted %q", bad)
		}
	}
}

func TestIsEncryptedString(t *testing.T) {
	tests := []struct {
		in   string
		want bool
	}{
		{"YWJj.box", true},
		{"YWJj.box2", true},
		{"YWI=.boxfoo", true},
		{".box", true}, // empty base64 matches the JS regex
		{"YWJ=.box", false},
		{"YWJj", false},
		{"YWJj.bo", false},
		{"YW Jj.box", false},
		{"YWJj.box\u2028", false},
		{"YQ==.box", true},
		{"YR==.box", false},
	}
	for _, tc := range tests {
		if got := IsEncryptedString(tc.in); got != tc.want {
			t.Errorf("IsEncryptedString(%q) = %v, want %v", tc.in, got, tc.want)
		}
	}
}

// TestLibsodiumRejections: signatures that Go's crypto/ed25519 accepts but
// libsodium (the JS stack) rejects must be rejected here too.
func TestLibsodiumRejections(t *testing.T) {
	identity := make([]byte, 32)
	identity[0] = 1 // the neutral point: small order
	author := "@" + base64.StdEncoding.EncodeToString(identity) + ".ed25519"
	sig := make([]byte, 64)
	copy(sig, identity) // R = neutral point, S = 0: "valid" for A = neutral
	msg := `{"previous":null,"sequence":1,"author":"` + author + `","timestamp":1,"hash":"sha256",` +
		`"content":{"type":"post"},"signature":"` + base64.StdEncoding.EncodeToString(sig) + `.sig.ed25519"}`
	m, err := Parse([]byte(msg))
	if err != nil {
		t.Fatal(err)
	}
	if !ed25519.Verify(identity, m.SignedBytes(), sig) {
		t.Fatal("test premise: crypto/ed25519 should accept the small-order forgery")
	}
	if err := m.VerifySignature(nil); err == nil {
		t.Fatal("small-order public key accepted")
	}
	for i, err := range NewVerifier(nil).Verify(context.Background(), []*Message{m, m}, map[feeds.FeedRef]*FeedState{}) {
		if err == nil {
			t.Fatalf("verifier accepted small-order forgery %d", i)
		}
	}

	// Non-canonical S (S + L) must be rejected even though it is the same
	// scalar mod L.
	key := testKey(11)
	good, err := Create(key, nil, 1, map[string]any{"type": "post"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	l := [32]byte{0xed, 0xd3, 0xf5, 0x5c, 0x1a, 0x63, 0x12, 0x58, 0xd6, 0x9c, 0xf7, 0xa2, 0xde, 0xf9, 0xde, 0x14,
		0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x10}
	bad := *good
	var carry uint16
	for i := 0; i < 32; i++ {
		v := uint16(bad.Signature[32+i]) + uint16(l[i]) + carry
		bad.Signature[32+i] = byte(v)
		carry = v >> 8
	}
	if carry != 0 || bad.Signature == good.Signature {
		t.Fatal("test premise: S+L must fit in 32 bytes")
	}
	if err := bad.VerifySignature(nil); err == nil {
		t.Fatal("non-canonical S accepted")
	}
}
