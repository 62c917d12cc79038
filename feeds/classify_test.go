package feeds

import (
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"testing"
)

const testdataDir = "../testdata"

// refVector is one row of ssb-ref/generated-refs.json. Pointer/raw fields
// distinguish "absent" from false/null where the file uses both.
type refVector struct {
	Input               string          `json:"input"`
	IsFeed              bool            `json:"isFeed"`
	IsFeedID            bool            `json:"isFeedId"`
	IsMsg               bool            `json:"isMsg"`
	IsMsgID             bool            `json:"isMsgId"`
	IsBlob              bool            `json:"isBlob"`
	IsBlobID            bool            `json:"isBlobId"`
	IsLink              bool            `json:"isLink"`
	IsCloakedMsgID      bool            `json:"isCloakedMsgId"`
	Type                json.RawMessage `json:"type"` // string or false
	IsAddress           bool            `json:"isAddress"`
	IsMultiServerInvite bool            `json:"isMultiServerInvite"`
	IsLegacyInvite      bool            `json:"isLegacyInvite"`
	IsInvite            bool            `json:"isInvite"`
	ParseLink           *struct {
		Link  string            `json:"link"`
		Query map[string]string `json:"query"`
	} `json:"parseLink"`
	Extract      *string `json:"extract"`
	ParseAddress *struct {
		Host string `json:"host"`
		Port int    `json:"port"`
		Key  string `json:"key"`
	} `json:"parseAddress"`
}

type refFile struct {
	Functions       []string    `json:"functions"`
	Vectors         []refVector `json:"vectors"`
	ExtractFromText []struct {
		Input   string `json:"input"`
		Extract string `json:"extract"`
	} `json:"extract_from_text"`
}

func loadRefVectors(t *testing.T) refFile {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(testdataDir, "ssb-ref", "generated-refs.json"))
	if err != nil {
		t.Fatal(err)
	}
	var f refFile
	if err := json.Unmarshal(data, &f); err != nil {
		t.Fatal(err)
	}
	if len(f.Vectors) < 30 {
		t.Fatalf("only %d vectors", len(f.Vectors))
	}
	return f
}

// jsHostOf spells an Address's host the way ssb-ref's parseAddress does.
func jsHostOf(a Address) string {
	if a.Transport == TransportWS || a.Transport == TransportWSS {
		return a.Transport + "://" + a.Host
	}
	return a.Host
}

// TestSSBRefVectors checks every column of generated-refs.json: the 13
// predicates (isFeed, isFeedId, isMsg, isMsgId, isBlob, isBlobId, isLink,
// isCloakedMsgId, type, isAddress, isMultiServerInvite, isLegacyInvite,
// isInvite) and parseLink, extract, parseAddress.
func TestSSBRefVectors(t *testing.T) {
	f := loadRefVectors(t)
	if len(f.Functions) != 13 {
		t.Fatalf("file lists %d functions, the test covers 13: %v", len(f.Functions), f.Functions)
	}
	for _, v := range f.Vectors {
		t.Run(v.Input, func(t *testing.T) {
			s := v.Input
			bools := []struct {
				col       string
				want, got bool
			}{
				{"isFeed", v.IsFeed, IsFeedID(s)},
				{"isFeedId", v.IsFeedID, IsFeedID(s)},
				{"isMsg", v.IsMsg, IsMessageID(s)},
				{"isMsgId", v.IsMsgID, IsMessageID(s)},
				{"isBlob", v.IsBlob, IsBlobID(s)},
				{"isBlobId", v.IsBlobID, IsBlobID(s)},
				{"isLink", v.IsLink, IsLink(s)},
				{"isCloakedMsgId", v.IsCloakedMsgID, IsCloakedMessageID(s)},
				{"isAddress", v.IsAddress, IsAddress(s)},
				{"isMultiServerInvite", v.IsMultiServerInvite, IsMultiServerInvite(s)},
				{"isLegacyInvite", v.IsLegacyInvite, IsLegacyInvite(s)},
				{"isInvite", v.IsInvite, IsInvite(s)},
			}
			for _, b := range bools {
				if b.got != b.want {
					t.Errorf("%s = %v, ssb-ref says %v", b.col, b.got, b.want)
				}
			}

			wantType := ""
			if string(v.Type) != "false" {
				if err := json.Unmarshal(v.Type, &wantType); err != nil {
					t.Fatalf("type column %s: %v", v.Type, err)
				}
			}
			kind, ok := Classify(s)
			if ok != (wantType != "") || kind != wantType {
				t.Errorf("Classify = %q, %v; ssb-ref type = %s", kind, ok, v.Type)
			}

			l, ok := ParseLink(s)
			switch {
			case v.ParseLink == nil && ok:
				t.Errorf("ParseLink = %+v, ssb-ref says null", l)
			case v.ParseLink != nil && !ok:
				t.Errorf("ParseLink failed, ssb-ref says %+v", *v.ParseLink)
			case v.ParseLink != nil:
				if l.Ref != v.ParseLink.Link {
					t.Errorf("ParseLink ref = %q, want %q", l.Ref, v.ParseLink.Link)
				}
				got := map[string]string{}
				for k, vals := range l.Query {
					if len(vals) != 1 {
						t.Errorf("query %q has %d values", k, len(vals))
						continue
					}
					got[k] = vals[0]
				}
				want := v.ParseLink.Query
				if want == nil {
					want = map[string]string{}
				}
				if !reflect.DeepEqual(got, want) {
					t.Errorf("ParseLink query = %v, want %v", got, want)
				}
			}

			ex, ok := Extract(s)
			if (v.Extract != nil) != ok || (ok && ex != *v.Extract) {
				t.Errorf("Extract = %q, %v; ssb-ref says %v", ex, ok, jsonString(v.Extract))
			}

			a, err := ParseAddress(s)
			js, jsOK := parseMultiserverAddressJS(s)
			switch {
			case v.ParseAddress == nil && err == nil:
				t.Errorf("ParseAddress = %+v, ssb-ref gives no address", a)
			case v.ParseAddress != nil && err != nil:
				t.Errorf("ParseAddress: %v; ssb-ref says %+v", err, *v.ParseAddress)
			case v.ParseAddress != nil:
				want := *v.ParseAddress
				if jsHostOf(a) != want.Host || a.Port != want.Port || a.Key.String() != want.Key {
					t.Errorf("ParseAddress = %+v (host %q), want %+v", a, jsHostOf(a), want)
				}
				if jsOK && (js.host != want.Host || js.port != float64(want.Port) || js.key != want.Key) {
					t.Errorf("JS-faithful parse = %+v, want %+v", js, want)
				}
			}
		})
	}
	for _, v := range f.ExtractFromText {
		if got, ok := Extract(v.Input); !ok || got != v.Extract {
			t.Errorf("Extract(%q) = %q, %v; want %q", v.Input, got, ok, v.Extract)
		}
	}
}

func jsonString(p *string) string {
	if p == nil {
		return "null"
	}
	return *p
}

// TestClassifyQuirks pins ssb-ref behaviour that the vector file does not
// show (each checked against ssb-ref 2.16.0 by TestSSBRefAgainstNode).
func TestClassifyQuirks(t *testing.T) {
	const key = "i1Igwk1jSjhTBpTJJf/qwxQQK5EsWckG3EsrQYvRM1I="
	tests := []struct {
		name string
		f    func(string) bool
		in   string
		want bool
	}{
		{"feed id with legacy .sha256 suffix", IsFeedID, "@" + key + ".sha256", true},
		{"feed id: dot of suffix is any char", IsFeedID, "@" + key + "Xed25519", true},
		{"feed id: dot cannot be a newline", IsFeedID, "@" + key + "\ned25519", false},
		{"feed id: dot cannot be an astral char", IsFeedID, "@" + key + "\U0001F600ed25519", false},
		{"feed id: BMP char as dot", IsFeedID, "@" + key + "éed25519", true},
		{"feed id: non-canonical last char", IsFeedID, "@i1Igwk1jSjhTBpTJJf/qwxQQK5EsWckG3EsrQYvRM1J=.ed25519", false},
		{"msg id with ed25519 suffix", IsMessageID, "%" + key + ".ed25519", false},
		{"blob link with query", IsLink, "&" + key + ".sha256?x=1", true},
		{"feed link with empty query", IsLink, "@" + key + ".ed25519?", true},
		{"bare multiserver with transform is an address", IsAddress, "ab~cd", true},
		{"escaped tilde is not a transform", IsAddress, "ab:x!~y", false},
		{"net address without shs is an address", IsAddress, "net:example.org:8008~noauth", true},
		{"but not an invite", IsInvite, "net:example.org:8008~noauth", false},
		{"legacy address, one-label host", IsAddress, "localhost:8008:@" + key + ".ed25519", true},
		{"legacy address, bad host", IsAddress, "exa_mple:8008:@" + key + ".ed25519", false},
		{"legacy address, hex port", IsAddress, "example.org:0x10:@" + key + ".ed25519", true},
		{"legacy address, port too big", IsAddress, "example.org:65537:@" + key + ".ed25519", false},
		{"legacy address, port 65536 (JS allows it)", IsAddress, "example.org:65536:@" + key + ".ed25519", true},
		{"legacy address, IPv6 host", IsAddress, "fe80::1:8008:@" + key + ".ed25519", true},
		{"multiserver invite with redirect", IsMultiServerInvite, "net:example.org:8008~shs:" + key + ":" + key + "#/x", true},
		{"legacy invite with redirect", IsLegacyInvite, "example.org:8008:@" + key + ".ed25519~" + key + "#x", true},
		{"legacy invite, short seed", IsLegacyInvite, "example.org:8008:@" + key + ".ed25519~abc=", false},
		{"ws without port is not understood", IsMultiServerInvite, "wss://example.org~shs:" + key, false},
		{"first shs alternative decides", IsMultiServerInvite, "net:bad_host:8008~shs:" + key + ";net:example.org:8008~shs:" + key, false},
		{"non-shs alternative is skipped", IsMultiServerInvite, "unix:/tmp/x~noauth;net:example.org:8008~shs:" + key, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.f(tt.in); got != tt.want {
				t.Errorf("%q: got %v, want %v", tt.in, got, tt.want)
			}
		})
	}
}

func TestJSHelpers(t *testing.T) {
	numbers := []struct {
		in   string
		want float64
		ok   bool
	}{
		{"", 0, true}, {" 12 ", 12, true}, {"0x10", 16, true}, {"0b101", 5, true}, {"0o17", 15, true},
		{"1e3", 1000, true}, {"-5", -5, true}, {"+.5", 0.5, true}, {"5.", 5, true}, {"1_0", 0, false},
		{"0x", 0, false}, {"-0x10", 0, false}, {"abc", 0, false}, {"1e", 0, false}, {".", 0, false},
	}
	for _, n := range numbers {
		got, ok := JSNumber(n.in)
		if ok != n.ok || (ok && got != n.want) {
			t.Errorf("JSNumber(%q) = %v, %v; want %v, %v", n.in, got, ok, n.want, n.ok)
		}
	}
	domains := []struct {
		in   string
		want bool
	}{
		{"example.org", true}, {"Example.ORG.", true}, {"a.b.c.example", true}, {"example", false},
		{"ex_ample.org", false}, {"a_b.example.org", true}, {"-a.org", false}, {"a.123", false},
		{"a.xn--123", true}, {"a--b.org", false}, {"xn--a.org", true}, {"a..org", false}, {"", false},
		{"\u212Aa.org", true}, // Kelvin sign lower-cases to "k" in JS too
	}
	for _, d := range domains {
		if got := isJSDomain(d.in); got != d.want {
			t.Errorf("isJSDomain(%q) = %v, want %v", d.in, got, d.want)
		}
	}
}
