package content

import (
	"crypto/rand"
	"encoding/json"
	"reflect"
	"testing"

	"github.com/cask-ssb/cask/feeds"
	"github.com/cask-ssb/cask/feeds/privatebox"
	"github.com/cask-ssb/cask/feeds/store"
)

const (
	feedA = "@AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=.ed25519"
	msgA  = "%AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=.sha256"
	msgB  = "%BBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBA=.sha256"
	blobA = "&AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=.sha256"
)

func TestExtractLinks(t *testing.T) {
	tests := []struct {
		name    string
		content string
		want    []Link
	}{
		{"ref string", `{"type":"contact","contact":"` + feedA + `"}`, []Link{{"contact", feedA}}},
		{"link object", `{"type":"post","image":{"link":"` + blobA + `","size":3}}`, []Link{{"image", blobA}}},
		{"array of refs and objects", `{"mentions":["` + feedA + `",{"link":"` + msgA + `","name":"x"},3,null]}`, []Link{{"mentions", feedA}, {"mentions", msgA}}},
		{"nested deeper is not a link", `{"x":{"y":"` + feedA + `"}}`, nil},
		{"not a ref", `{"text":"@notaref","root":"%short"}`, nil},
		{"escaped key", `{"r\u00e9l":"` + msgB + `"}`, []Link{{"rél", msgB}}},
		{"not an object", `"` + feedA + `"`, nil},
		{"broken JSON", `{"a":"` + feedA + `",`, []Link{{"a", feedA}}},
		{"empty", ``, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := ExtractLinks([]byte(tt.content), nil)
			if !reflect.DeepEqual(got, tt.want) {
				t.Fatalf("got %v, want %v", got, tt.want)
			}
		})
	}
}

func TestDecodeFields(t *testing.T) {
	value := `{"previous":null,"author":"` + feedA + `","sequence":1,"timestamp":1500000000123.5,"hash":"sha256","content":{"type":"post","text":"hi","root":"` + msgA + `","branch":["` + msgB + `","nope"]},"signature":"x"}`
	d := NewDecoder(nil)
	m := d.Decode(&store.Record{Seq: 1, Value: []byte(value)})
	if m.Type != "post" || m.ClaimedTS != 1500000000123.5 || m.Root != msgA || !reflect.DeepEqual(m.Branch, []string{msgB}) {
		t.Fatalf("decoded %+v", m)
	}
	if want := []Link{{"root", msgA}, {"branch", msgB}}; !reflect.DeepEqual(m.Links, want) {
		t.Fatalf("links %v, want %v", m.Links, want)
	}
}

func TestDecodePrivate(t *testing.T) {
	me, err := feeds.GenerateKeyPair(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	other, err := feeds.GenerateKeyPair(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	pt := `{"type":"secret","text":"hello","recps":["` + me.ID.String() + `"]}`
	seal := func(to feeds.FeedRef) []byte {
		ct, err := privatebox.Seal([]byte(pt), []feeds.FeedRef{to}, nil)
		if err != nil {
			t.Fatal(err)
		}
		s, _ := json.Marshal(privatebox.BoxContent(ct))
		return []byte(`{"timestamp":1,"content":` + string(s) + `}`)
	}
	d := NewDecoder(&me)
	m := d.Decode(&store.Record{Seq: 1, Value: seal(me.ID)})
	if !m.Boxed || !m.Private || m.Type != "secret" || string(m.Content) != pt {
		t.Fatalf("ours: %+v", m)
	}
	m = d.Decode(&store.Record{Seq: 2, Value: seal(other.ID)})
	if !m.Boxed || m.Private || m.Type != "" || len(m.Links) != 0 {
		t.Fatalf("theirs: %+v", m)
	}
	m = NewDecoder(nil).Decode(&store.Record{Seq: 1, Value: seal(me.ID)})
	if !m.Boxed || m.Private {
		t.Fatalf("without a key: %+v", m)
	}
}

func TestSkipValue(t *testing.T) {
	for _, tt := range []struct {
		in string
		ok bool
	}{
		{`{"a":[1,2,{"b":"c\"d"}],"e":true,"f":null,"g":-1.5e3}`, true},
		{`[]`, true}, {`{}`, true}, {`"x`, false}, {`{"a" 1}`, false}, {`[1,]`, false}, {`tru`, false},
	} {
		end, err := skipValue([]byte(tt.in), 0)
		if (err == nil) != tt.ok || (tt.ok && end != len(tt.in)) {
			t.Errorf("skipValue(%s) = %d, %v", tt.in, end, err)
		}
	}
}

func BenchmarkDecode(b *testing.B) {
	value := []byte(`{"previous":"` + msgA + `","author":"` + feedA + `","sequence":2,"timestamp":1500000000123,"hash":"sha256","content":{"type":"post","text":"a reasonably long text of a post that goes on for a while","root":"` + msgA + `","branch":"` + msgB + `","mentions":[{"link":"` + feedA + `","name":"x"}]},"signature":"xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx.sig.ed25519"}`)
	d := NewDecoder(nil)
	b.ReportAllocs()
	b.SetBytes(int64(len(value)))
	for i := range b.N {
		d.Decode(&store.Record{Seq: int64(i + 1), Value: value})
	}
}
