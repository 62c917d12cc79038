package feeds

import (
	"bytes"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/cask-ssb/cask/internal/interop"
)

// jsRefScript prints, for each input string, what ssb-ref 2.16.0 (from the
// interop kit) answers.
const jsRefScript = `
const ref = require(process.argv[1] + '/node_modules/ssb-ref')
console.trace = () => {}
const inputs = JSON.parse(require('fs').readFileSync(process.argv[2], 'utf8'))
const out = inputs.map(s => {
  const r = {
    isFeedId: ref.isFeedId(s), isMsgId: ref.isMsgId(s), isBlobId: ref.isBlobId(s),
    isLink: ref.isLink(s), isCloakedMsgId: ref.isCloakedMsgId(s), type: ref.type(s),
    isAddress: ref.isAddress(s), isMultiServerInvite: ref.isMultiServerInvite(s),
    isLegacyInvite: ref.isLegacyInvite(s), isInvite: ref.isInvite(s),
    parseLink: ref.parseLink(s) || null, extract: ref.extract(s) || null,
  }
  if (s.indexOf('~') >= 0) {
    const a = ref.parseAddress(s)
    r.parseAddress = a ? {host: a.host, port: a.port, key: a.key} : null
  }
  return r
})
process.stdout.write(JSON.stringify(out))
`

// refCorpus builds inputs around the edges of every predicate.
func refCorpus(t *testing.T) []string {
	const key = "i1Igwk1jSjhTBpTJJf/qwxQQK5EsWckG3EsrQYvRM1I="
	const key2 = "LpOoVCXi1S4cfpQK/gvFxKvK69/o6bq/jSYGFFJIFCA="
	in := []string{}
	for _, v := range loadRefVectors(t).Vectors {
		in = append(in, v.Input)
	}
	for _, sig := range []string{"@", "%", "&", "#", ""} {
		for _, k := range []string{key, key2, "i1Igwk1jSjhTBpTJJf/qwxQQK5EsWckG3EsrQYvRM1J=", key[:43], key + "="} {
			for _, suf := range []string{".ed25519", ".sha256", ".cloaked", "Xsha256", "\nsha256", "\u2028ed25519", "é" + "ed25519", ".sha256 ", ".sha2567", ".foo_bar-x", "", ".ed25519?unbox=a+b%2Bc", ".sha256?", ".sha256?a&b=1&a=2", ".sha256?x=%zz"} {
				in = append(in, sig+k+suf)
			}
		}
	}
	hosts := []string{"example.org", "127.0.0.1", "999.1.1.1", "fe80::1", "::1", "", "localhost", "exa_mple.org", "a_b.example.org",
		"example", "xn--bcher-kva.example", "a--b.org", "a.123", "EXAMPLE.ORG", "example.org.", "foo.onion", "1.2.3", "a.b.c.d.e", "*.example.org"}
	ports := []string{"8008", "0", "65535", "65536", "65537", "-1", "0x10", "1e3", "", "8008.5", "abc"}
	for _, h := range hosts {
		for _, p := range ports {
			in = append(in,
				"net:"+h+":"+p+"~shs:"+key,
				h+":"+p+":@"+key+".ed25519",
				h+":"+p+":@"+key+".ed25519~"+key,
			)
		}
		in = append(in,
			"ws://"+h+":8989~shs:"+key,
			"wss://"+h+":443~shs:"+key+":"+key2,
			"onion:"+h+":8008~shs:"+key,
			"net:"+h+":8008~shs:"+key+";ws://"+h+":80~shs:"+key2,
			"unix:/tmp/"+h+"~noauth;net:"+h+":8008~shs:"+key,
		)
	}
	in = append(in,
		"ab~cd", "ab:x!~y", "a~b", "net:example.org:8008~noauth", "net:example.org:8008~shs", "net:example.org:8008~shs:",
		"net:example.org:8008~shs:"+key+"#redirect", "net:ex!:ample.org:8008~shs:"+key, "net:example.org:8008~shs:"+key+"~noauth",
		"net:example.org:8008~shs:"+key+":SSB+Room+PSK3TLYC2T86EHQCUHBUHASCASE18JBV24=",
		"tunnel:@"+key+".ed25519:@"+key2+".ed25519~shs:"+key2,
		"example.org:8008:@"+key+".ed25519~"+key+"#a\nb", "example.org:8008:@"+key+".ed25519~"+key+"#a#b",
		"see %"+key2+".sha256 please", "https://x/%40"+key[:20]+"%2F"+key[21:43]+"%3D.ed25519",
		"%E0%A4%A", "x%40"+key+".ed25519", "&amp;"+key+".sha256", "%26amp;"+key+".sha256",
		"[a](@"+key+".ed25519_x)", "@"+key+".", "@"+key+".\u00e9",
	)
	return in
}

// TestSSBRefAgainstNode runs ssb-ref itself on a few thousand edge inputs
// and checks that every predicate here agrees.
func TestSSBRefAgainstNode(t *testing.T) {
	kit := interop.Kit(t)
	inputs := refCorpus(t)
	dir := t.TempDir()
	inPath := filepath.Join(dir, "inputs.json")
	data, err := json.Marshal(inputs)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(inPath, data, 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("node", "-e", jsRefScript, kit, inPath)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("node: %v\n%s", err, stderr.String())
	}
	var results []struct {
		IsFeedID, IsMsgID, IsBlobID, IsLink, IsCloakedMsgID, IsAddress bool
		IsMultiServerInvite, IsLegacyInvite, IsInvite                  bool
		Type                                                           any
		ParseLink                                                      *struct {
			Link  string
			Query map[string]any
		}
		Extract      *string
		ParseAddress *struct {
			Host string
			Port float64
			Key  string
		}
	}
	if err := json.Unmarshal(out, &results); err != nil {
		t.Fatalf("node output: %v", err)
	}
	if len(results) != len(inputs) {
		t.Fatalf("%d results for %d inputs", len(results), len(inputs))
	}
	for i, s := range inputs {
		r := results[i]
		kind, ok := Classify(s)
		var gotType any = false
		if ok {
			gotType = kind
		}
		checks := []struct {
			col       string
			got, want any
		}{
			{"isFeedId", IsFeedID(s), r.IsFeedID},
			{"isMsgId", IsMessageID(s), r.IsMsgID},
			{"isBlobId", IsBlobID(s), r.IsBlobID},
			{"isLink", IsLink(s), r.IsLink},
			{"isCloakedMsgId", IsCloakedMessageID(s), r.IsCloakedMsgID},
			{"isAddress", IsAddress(s), r.IsAddress},
			{"isMultiServerInvite", IsMultiServerInvite(s), r.IsMultiServerInvite},
			{"isLegacyInvite", IsLegacyInvite(s), r.IsLegacyInvite},
			{"isInvite", IsInvite(s), r.IsInvite},
			{"type", gotType, r.Type},
		}
		for _, c := range checks {
			if c.got != c.want {
				t.Errorf("%s(%q) = %v, ssb-ref says %v", c.col, s, c.got, c.want)
			}
		}
		l, ok := ParseLink(s)
		if ok != (r.ParseLink != nil) || (ok && l.Ref != r.ParseLink.Link) {
			t.Errorf("ParseLink(%q) = %+v, %v; ssb-ref says %+v", s, l, ok, r.ParseLink)
		} else if ok {
			for k, want := range r.ParseLink.Query {
				var got any = l.Query[k]
				if vals := l.Query[k]; len(vals) == 1 {
					got = vals[0]
				}
				if g, w := jsonOf(got), jsonOf(want); g != w {
					t.Errorf("ParseLink(%q) query %q = %s, ssb-ref says %s", s, k, g, w)
				}
			}
			if len(l.Query) != len(r.ParseLink.Query) {
				t.Errorf("ParseLink(%q) query = %v, ssb-ref says %v", s, l.Query, r.ParseLink.Query)
			}
		}
		ex, ok := Extract(s)
		if ok != (r.Extract != nil) || (ok && ex != *r.Extract) {
			t.Errorf("Extract(%q) = %q, %v; ssb-ref says %v", s, ex, ok, jsonString(r.Extract))
		}
		if r.ParseAddress != nil || len(s) > 0 && bytes.IndexByte([]byte(s), '~') >= 0 {
			js, ok := parseMultiserverAddressJS(s)
			if ok != (r.ParseAddress != nil) {
				t.Errorf("parseMultiServerAddress(%q) ok = %v, ssb-ref says %+v", s, ok, r.ParseAddress)
			} else if ok && (js.host != r.ParseAddress.Host || js.port != r.ParseAddress.Port || js.key != r.ParseAddress.Key) {
				t.Errorf("parseMultiServerAddress(%q) = %+v, ssb-ref says %+v", s, js, *r.ParseAddress)
			}
		}
	}
	t.Logf("%d inputs compared with ssb-ref", len(inputs))
}

func jsonOf(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}
