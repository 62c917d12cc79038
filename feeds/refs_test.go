package feeds

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"strings"
	"testing"
)

const (
	aliceB64 = "i1Igwk1jSjhTBpTJJf/qwxQQK5EsWckG3EsrQYvRM1I="
	msgB64   = "LpOoVCXi1S4cfpQK/gvFxKvK69/o6bq/jSYGFFJIFCA="
	blobB64  = "+iyMxPKBdrvu1Lc231aaNMec03I+nsQvlnS01GrGuLg="
)

func b64url(std string) string {
	b, _ := base64.StdEncoding.DecodeString(std)
	return base64.URLEncoding.EncodeToString(b)
}

func TestParseRefs(t *testing.T) {
	tests := []struct {
		name  string
		kind  string // feed, msg, blob
		in    string
		ok    bool
		sigil string // expected String() when ok
	}{
		{"feed sigil", "feed", "@" + aliceB64 + ".ed25519", true, "@" + aliceB64 + ".ed25519"},
		{"feed URI", "feed", "ssb:feed/classic/" + b64url(aliceB64), true, "@" + aliceB64 + ".ed25519"},
		{"feed URI colons", "feed", "ssb:feed:classic:" + b64url(aliceB64), true, "@" + aliceB64 + ".ed25519"},
		{"feed URI deprecated ed25519", "feed", "ssb:feed/ed25519/" + b64url(aliceB64), true, "@" + aliceB64 + ".ed25519"},
		{"feed with sha256 suffix (ssb-ref accepts, we do not)", "feed", "@" + aliceB64 + ".sha256", false, ""},
		{"feed non-canonical", "feed", "@i1Igwk1jSjhTBpTJJf/qwxQQK5EsWckG3EsrQYvRM1J=.ed25519", false, ""},
		{"feed without padding", "feed", "@" + aliceB64[:43] + ".ed25519", false, ""},
		{"feed with space", "feed", " @" + aliceB64 + ".ed25519", false, ""},
		{"feed with msg sigil", "feed", "%" + aliceB64 + ".ed25519", false, ""},
		{"feed URI wrong kind", "feed", "ssb:message/classic/" + b64url(aliceB64), false, ""},
		{"feed URI std base64", "feed", "ssb:feed/classic/" + "A/" + b64url(aliceB64)[2:], false, ""},
		{"feed URI bendybutt", "feed", "ssb:feed/bendybutt-v1/" + b64url(aliceB64), false, ""},
		{"empty", "feed", "", false, ""},
		{"msg sigil", "msg", "%" + msgB64 + ".sha256", true, "%" + msgB64 + ".sha256"},
		{"msg URI", "msg", "ssb:message/classic/" + b64url(msgB64), true, "%" + msgB64 + ".sha256"},
		{"msg URI deprecated sha256", "msg", "ssb:message/sha256/" + b64url(msgB64), true, "%" + msgB64 + ".sha256"},
		{"msg cloaked", "msg", "%" + msgB64 + ".cloaked", false, ""},
		{"msg with query", "msg", "%" + msgB64 + ".sha256?unbox=x", false, ""},
		{"blob sigil", "blob", "&" + blobB64 + ".sha256", true, "&" + blobB64 + ".sha256"},
		{"blob URI", "blob", "ssb:blob/classic/" + b64url(blobB64), true, "&" + blobB64 + ".sha256"},
		{"blob URI deprecated", "blob", "ssb:blob/sha256/" + b64url(blobB64), true, "&" + blobB64 + ".sha256"},
		{"blob as msg sigil", "blob", "%" + blobB64 + ".sha256", false, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var got string
			var err error
			switch tt.kind {
			case "feed":
				var r FeedRef
				r, err = ParseFeedRef(tt.in)
				got = r.String()
				if err == nil {
					if back, err := ParseFeedRef(r.URI()); err != nil || back != r {
						t.Errorf("URI %q does not parse back: %v", r.URI(), err)
					}
				}
			case "msg":
				var r MessageRef
				r, err = ParseMessageRef(tt.in)
				got = r.String()
				if err == nil {
					if back, err := ParseMessageRef(r.URI()); err != nil || back != r {
						t.Errorf("URI %q does not parse back: %v", r.URI(), err)
					}
				}
			case "blob":
				var r BlobRef
				r, err = ParseBlobRef(tt.in)
				got = r.String()
				if err == nil {
					if back, err := ParseBlobRef(r.URI()); err != nil || back != r {
						t.Errorf("URI %q does not parse back: %v", r.URI(), err)
					}
				}
			}
			if (err == nil) != tt.ok {
				t.Fatalf("parse %q: err = %v, want ok=%v", tt.in, err, tt.ok)
			}
			if err != nil {
				if !errors.Is(err, ErrInvalidRef) {
					t.Errorf("error %v does not wrap ErrInvalidRef", err)
				}
				return
			}
			if got != tt.sigil {
				t.Errorf("String() = %q, want %q", got, tt.sigil)
			}
		})
	}
}

func TestRefJSON(t *testing.T) {
	type doc struct {
		Author FeedRef    `json:"author"`
		Prev   MessageRef `json:"previous"`
		Blob   BlobRef    `json:"blob"`
	}
	in := `{"author":"@` + aliceB64 + `.ed25519","previous":"%` + msgB64 + `.sha256","blob":"&` + blobB64 + `.sha256"}`
	var d doc
	if err := json.Unmarshal([]byte(in), &d); err != nil {
		t.Fatal(err)
	}
	var buf strings.Builder
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false) // json.Marshal would write "&" as \u0026
	if err := enc.Encode(d); err != nil {
		t.Fatal(err)
	}
	if out := strings.TrimSuffix(buf.String(), "\n"); out != in {
		t.Errorf("round trip:\n got %s\nwant %s", buf.String(), in)
	}
	if d.Author.IsZero() || d.Prev.IsZero() || d.Blob.IsZero() {
		t.Error("parsed refs are zero")
	}
	bad := strings.Replace(in, ".ed25519", ".sha256", 1)
	if err := json.Unmarshal([]byte(bad), &d); err == nil {
		t.Error("a .sha256 author was accepted")
	}
}

func TestAddress(t *testing.T) {
	key, err := ParseFeedRef("@" + aliceB64 + ".ed25519")
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		in      string
		want    Address
		str     string // String(); "" = error expected
		dial    string
		wantErr bool
	}{
		{in: "net:example.org:8008~shs:" + aliceB64, want: Address{"example.org", 8008, key, "net", FeedRef{}},
			str: "net:example.org:8008~shs:" + aliceB64, dial: "example.org:8008"},
		{in: "net:fe80::1:8008~shs:" + aliceB64, want: Address{"fe80::1", 8008, key, "net", FeedRef{}},
			str: "net:fe80::1:8008~shs:" + aliceB64, dial: "[fe80::1]:8008"},
		{in: "net:::1:9000~shs:" + aliceB64, want: Address{"::1", 9000, key, "net", FeedRef{}},
			str: "net:::1:9000~shs:" + aliceB64, dial: "[::1]:9000"},
		// The unspecified address "::" (a listener on all interfaces) is
		// written raw as multiserver's net plugin does: "net:" + "::" +
		// ":8008"; the last field is the port, so it parses back.
		{in: "net::::8008~shs:" + aliceB64, want: Address{"::", 8008, key, "net", FeedRef{}},
			str: "net::::8008~shs:" + aliceB64, dial: "[::]:8008"},
		{in: "net:fe80:::8008~shs:" + aliceB64, want: Address{"fe80::", 8008, key, "net", FeedRef{}},
			str: "net:fe80:::8008~shs:" + aliceB64, dial: "[fe80::]:8008"},
		{in: "example.org:8008:@" + aliceB64 + ".ed25519", want: Address{"example.org", 8008, key, "net", FeedRef{}},
			str: "net:example.org:8008~shs:" + aliceB64, dial: "example.org:8008"},
		{in: "ws://example.org:8989~shs:" + aliceB64, want: Address{"example.org", 8989, key, "ws", FeedRef{}},
			str: "ws://example.org:8989~shs:" + aliceB64},
		{in: "onion:abc.onion:8008~shs:" + aliceB64, want: Address{"abc.onion", 8008, key, "onion", FeedRef{}},
			str: "onion:abc.onion:8008~shs:" + aliceB64},
		{in: "unix:/x~noauth;net:127.0.0.1:8008~shs:" + aliceB64 + ":" + msgB64, want: Address{"127.0.0.1", 8008, key, "net", FeedRef{}},
			str: "net:127.0.0.1:8008~shs:" + aliceB64, dial: "127.0.0.1:8008"},
		{in: "net::8008~shs:" + aliceB64, want: Address{"localhost", 8008, key, "net", FeedRef{}},
			str: "net:localhost:8008~shs:" + aliceB64, dial: "localhost:8008"},
		{in: "tunnel:@" + msgB64 + ".ed25519:@" + aliceB64 + ".ed25519~shs:" + aliceB64,
			want: Address{Key: key, Portal: mustFeed(t, "@"+msgB64+".ed25519"), Transport: "tunnel"},
			str:  "tunnel:@" + msgB64 + ".ed25519:@" + aliceB64 + ".ed25519~shs:" + aliceB64},
		{in: "unix:/x~noauth;tunnel:@" + msgB64 + ".ed25519:@" + aliceB64 + ".ed25519~shs:" + aliceB64,
			want: Address{Key: key, Portal: mustFeed(t, "@"+msgB64+".ed25519"), Transport: "tunnel"},
			str:  "tunnel:@" + msgB64 + ".ed25519:@" + aliceB64 + ".ed25519~shs:" + aliceB64},
		{in: "tunnel:@" + msgB64 + ".ed25519:@" + aliceB64 + ".ed25519~shs:" + msgB64, wantErr: true},     // key is not the target's
		{in: "tunnel:@" + aliceB64 + ".ed25519:@" + aliceB64 + ".ed25519~shs:" + aliceB64, wantErr: true}, // tunnel to the room itself
		{in: "tunnel:@" + msgB64 + ".sha256:@" + aliceB64 + ".ed25519~shs:" + aliceB64, wantErr: true},    // room is not a feed
		{in: "tunnel:@" + msgB64 + ".ed25519~shs:" + aliceB64, wantErr: true},                             // no target
		{in: "tunnel:@" + msgB64 + ".ed25519:@" + aliceB64 + ".ed25519~noauth", wantErr: true},            // no shs
		{in: "net:example.org:0~shs:" + aliceB64, wantErr: true},
		{in: "net:example.org:65536~shs:" + aliceB64, wantErr: true},
		{in: "net:example.org~shs:" + aliceB64, wantErr: true},
		{in: "net:example.org:8008~noauth", wantErr: true},
		{in: "example.org:8008:@" + aliceB64 + ".sha256", wantErr: true},
		{in: "example.org:8008", wantErr: true},
		{in: "hello", wantErr: true},
		{in: "", wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			a, err := ParseAddress(tt.in)
			if tt.wantErr {
				if err == nil {
					t.Fatalf("ParseAddress = %+v, want error", a)
				}
				if !errors.Is(err, ErrInvalidRef) {
					t.Errorf("error %v does not wrap ErrInvalidRef", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if a != tt.want {
				t.Errorf("ParseAddress = %+v, want %+v", a, tt.want)
			}
			if s := a.String(); s != tt.str {
				t.Errorf("String() = %q, want %q", s, tt.str)
			}
			if tt.dial != "" && a.DialAddr() != tt.dial {
				t.Errorf("DialAddr() = %q, want %q", a.DialAddr(), tt.dial)
			}
			back, err := ParseAddress(a.String())
			if err != nil || back != a {
				t.Errorf("String() does not parse back: %+v, %v", back, err)
			}
		})
	}
}

func mustFeed(t *testing.T, s string) FeedRef {
	t.Helper()
	r, err := ParseFeedRef(s)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func TestParseAddresses(t *testing.T) {
	in := "net:bad_host:8008~shs:" + aliceB64 + ";unix:/x~noauth;net:127.0.0.1:8008~shs:" + aliceB64 + ";wss://example.org:443~shs:" + msgB64
	got, err := ParseAddresses(in)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"net:127.0.0.1:8008~shs:" + aliceB64, "wss://example.org:443~shs:" + msgB64}
	if len(got) != len(want) {
		t.Fatalf("got %v, want %v", got, want)
	}
	for i := range want {
		if got[i].String() != want[i] {
			t.Errorf("address %d = %s, want %s", i, got[i], want[i])
		}
	}
	if _, err := ParseAddress(in); err == nil {
		t.Error("ParseAddress: ssb-ref stops at the first (invalid) shs alternative; we accepted")
	}
	if _, err := ParseAddresses("unix:/x~noauth"); err == nil {
		t.Error("no usable alternative was accepted")
	}
}

func TestParseLinkUnbox(t *testing.T) {
	in := "%" + msgB64 + ".sha256?unbox=ab+cd%2Bef=.boxs&x=1&x=2"
	l, ok := ParseLink(in)
	if !ok {
		t.Fatal("not parsed")
	}
	if l.Ref != "%"+msgB64+".sha256" {
		t.Errorf("Ref = %q", l.Ref)
	}
	if u, ok := l.Unbox(); !ok || u != "ab+cd+ef=.boxs" {
		t.Errorf("Unbox = %q, %v", u, ok)
	}
	if got := l.Query["x"]; len(got) != 2 || got[0] != "1" || got[1] != "2" {
		t.Errorf("x = %v", got)
	}
	if _, ok := ParseLink("%" + msgB64 + ".sha256?"); ok {
		t.Error("empty query accepted (ssb-ref rejects)")
	}
}
