package privatebox

import (
	"bufio"
	"bytes"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/cask-ssb/cask/feeds"
)

const testdataDir = "../../testdata"

type multiboxFile struct {
	MaxRecipients int    `json:"max_recipients"`
	ErrorWith8    string `json:"error_with_8_recipients"`
	Vectors       []struct {
		Recipients []struct {
			ID               string `json:"id"`
			Curve25519Public string `json:"curve25519_public"`
		} `json:"recipients"`
		Plaintext        string `json:"plaintext_base64"`
		Nonce            string `json:"nonce_base64"`
		BodyKey          string `json:"body_key_base64"`
		OnetimePublic    string `json:"onetime_public_base64"`
		OnetimeSecret    string `json:"onetime_secret_base64"`
		Ciphertext       string `json:"ciphertext_base64"`
		CiphertextLength int    `json:"ciphertext_length"`
		OpenWith         []struct {
			ID               string  `json:"id"`
			Curve25519Secret string  `json:"curve25519_secret"`
			Opens            bool    `json:"opens"`
			Plaintext        *string `json:"plaintext_base64"`
		} `json:"open_with"`
	} `json:"vectors"`
}

func b64(t testing.TB, s string) []byte {
	t.Helper()
	b, err := base64.StdEncoding.DecodeString(s)
	if err != nil {
		t.Fatalf("base64 %q: %v", s, err)
	}
	return b
}

func b64Array32(t testing.TB, s string) [32]byte {
	t.Helper()
	var a [32]byte
	if b := b64(t, s); len(b) != 32 {
		t.Fatalf("%q: %d bytes", s, len(b))
	} else {
		copy(a[:], b)
	}
	return a
}

func loadMultibox(t testing.TB) multiboxFile {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(testdataDir, "private-box", "generated-multibox.json"))
	if err != nil {
		t.Fatal(err)
	}
	var f multiboxFile
	if err := json.Unmarshal(data, &f); err != nil {
		t.Fatal(err)
	}
	if len(f.Vectors) != 10 || f.MaxRecipients != MaxRecipients {
		t.Fatalf("%d vectors, max %d", len(f.Vectors), f.MaxRecipients)
	}
	return f
}

func TestMultiboxVectors(t *testing.T) {
	f := loadMultibox(t)
	for i, v := range f.Vectors {
		t.Run(fmt.Sprintf("%d/%d-recipients", i, len(v.Recipients)), func(t *testing.T) {
			var pubs [][32]byte
			var ids []feeds.FeedRef
			for _, r := range v.Recipients {
				id, err := feeds.ParseFeedRef(r.ID)
				if err != nil {
					t.Fatal(err)
				}
				ids = append(ids, id)
				cp, err := feeds.Curve25519Public(id)
				if err != nil {
					t.Fatal(err)
				}
				if cp != b64Array32(t, r.Curve25519Public) {
					t.Errorf("curve25519 public of %s differs", r.ID)
				}
				pubs = append(pubs, cp)
			}
			var nonce [24]byte
			copy(nonce[:], b64(t, v.Nonce))
			pt := b64(t, v.Plaintext)
			ct, err := SealWith(pt, pubs, nonce, b64Array32(t, v.BodyKey), b64Array32(t, v.OnetimeSecret))
			if err != nil {
				t.Fatal(err)
			}
			want := b64(t, v.Ciphertext)
			if !bytes.Equal(ct, want) || len(ct) != v.CiphertextLength {
				t.Fatalf("SealWith:\n got %x\nwant %x", ct, want)
			}
			if !bytes.Equal(ct[24:56], b64(t, v.OnetimePublic)) {
				t.Error("one-time public key differs")
			}
			// Seal with a reader that replays the same random draws.
			rnd := bytes.NewReader(slices.Concat(b64(t, v.Nonce), b64(t, v.BodyKey), b64(t, v.OnetimeSecret)))
			ct2, err := Seal(pt, ids, rnd)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(ct2, want) {
				t.Error("Seal with the vector's random bytes differs")
			}
			outsiders := 0
			for _, o := range v.OpenWith {
				got, ok := OpenWithCurveSecret(want, b64Array32(t, o.Curve25519Secret))
				if ok != o.Opens {
					t.Errorf("%s: opens = %v, want %v", o.ID, ok, o.Opens)
					continue
				}
				if !ok {
					outsiders++
					continue
				}
				if o.Plaintext == nil || !bytes.Equal(got, b64(t, *o.Plaintext)) {
					t.Errorf("%s: plaintext %q", o.ID, got)
				}
				mk, ok := OpenKey(want, b64Array32(t, o.Curve25519Secret))
				if !ok || int(mk[0]) != len(v.Recipients) {
					t.Errorf("%s: message key count %d, want %d", o.ID, mk[0], len(v.Recipients))
				}
			}
			if outsiders != 1 {
				t.Errorf("%d outsiders in the vector, want 1", outsiders)
			}
		})
	}
}

func TestRecipientCount(t *testing.T) {
	var ids []feeds.FeedRef
	for i := range 8 {
		kp, err := feeds.KeyPairFromSeed(bytes.Repeat([]byte{byte(i + 1)}, 32))
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, kp.ID)
	}
	for _, n := range []int{0, 1, 7, 8} {
		t.Run(fmt.Sprint(n), func(t *testing.T) {
			_, err := Seal([]byte("x"), ids[:n], nil)
			wantErr := n == 0 || n > MaxRecipients
			if (err != nil) != wantErr {
				t.Fatalf("err = %v, want error: %v", err, wantErr)
			}
			if wantErr && !errors.Is(err, ErrRecipients) {
				t.Errorf("error %v does not wrap ErrRecipients", err)
			}
			pubs := make([][32]byte, n)
			_, err = SealWith([]byte("x"), pubs, [24]byte{}, [32]byte{}, [32]byte{1})
			if wantErr != errors.Is(err, ErrRecipients) {
				t.Errorf("SealWith: err = %v", err)
			}
		})
	}
}

// TestRoundTrip: every recipient of a fresh message opens it, at every
// position, and nobody else does; a flipped bit anywhere breaks it.
func TestRoundTrip(t *testing.T) {
	var kps []feeds.KeyPair
	for range 8 {
		kp, err := feeds.GenerateKeyPair(nil)
		if err != nil {
			t.Fatal(err)
		}
		kps = append(kps, kp)
	}
	outsider := kps[7]
	for _, n := range []int{1, 3, 7} {
		for _, size := range []int{0, 1, 1000} {
			t.Run(fmt.Sprintf("%d-recipients/%d-bytes", n, size), func(t *testing.T) {
				pt := make([]byte, size)
				if _, err := rand.Read(pt); err != nil {
					t.Fatal(err)
				}
				var ids []feeds.FeedRef
				for _, kp := range kps[:n] {
					ids = append(ids, kp.ID)
				}
				ct, err := Seal(pt, ids, nil)
				if err != nil {
					t.Fatal(err)
				}
				if want := Overhead + (n-1)*49 + size; len(ct) != want {
					t.Errorf("length %d, want %d", len(ct), want)
				}
				for _, kp := range kps[:n] {
					got, ok := Open(ct, kp)
					if !ok || !bytes.Equal(got, pt) {
						t.Errorf("recipient %s: ok=%v", kp.ID, ok)
					}
				}
				if _, ok := Open(ct, outsider); ok {
					t.Error("outsider opened it")
				}
				for _, i := range []int{0, 30, 60, len(ct) - 1} {
					bad := bytes.Clone(ct)
					bad[i] ^= 1
					if _, ok := Open(bad, kps[0]); ok {
						t.Errorf("bit flip at %d still opens", i)
					}
				}
				content := BoxContent(ct)
				back, err := ParseBoxContent(content)
				if err != nil || !bytes.Equal(back, ct) {
					t.Errorf("content %q does not parse back: %v", content, err)
				}
			})
		}
	}
}

func TestOpenMalformed(t *testing.T) {
	kp, _ := feeds.KeyPairFromSeed(make([]byte, 32))
	cs := kp.Curve25519Secret()
	tests := []struct {
		name string
		ct   []byte
	}{
		{"nil", nil},
		{"short", make([]byte, 55)},
		{"one byte below the minimum", make([]byte, Overhead-1)},
		{"zeros, low-order one-time key", make([]byte, 500)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if pt, ok := OpenWithCurveSecret(tt.ct, cs); ok {
				t.Errorf("opened: %q", pt)
			}
		})
	}
	if _, ok := OpenBody(nil, MessageKey{7}); ok {
		t.Error("OpenBody of nil succeeded")
	}
}

func TestParseBoxContent(t *testing.T) {
	tests := []struct {
		in   string
		want []byte // nil = error
	}{
		{"AAEC.box", []byte{0, 1, 2}},
		{"AAECAw==.box", []byte{0, 1, 2, 3}},
		{"AAECAw.box", []byte{0, 1, 2, 3}},
		{"AAECAw==.box2", nil},
		{"AAECAw==", nil},
		{"!!!!.box", nil},
		{".box", []byte{}},
	}
	for _, tt := range tests {
		got, err := ParseBoxContent(tt.in)
		if tt.want == nil {
			if err == nil || !errors.Is(err, ErrNotBox) {
				t.Errorf("%q: %x, %v; want ErrNotBox", tt.in, got, err)
			}
			continue
		}
		if err != nil || !bytes.Equal(got, tt.want) {
			t.Errorf("%q: %x, %v; want %x", tt.in, got, err, tt.want)
		}
	}
}

// TestEdgeFeedPrivateMessages opens the two box1 messages of the edge feed
// (written by ssb-keys) with the keys of generated-keys.json.
func TestEdgeFeedPrivateMessages(t *testing.T) {
	data, err := os.ReadFile(filepath.Join(testdataDir, "ssb-keys", "generated-keys.json"))
	if err != nil {
		t.Fatal(err)
	}
	var kf struct {
		Keys []struct {
			SeedHex string `json:"seed_hex"`
		} `json:"keys"`
	}
	if err := json.Unmarshal(data, &kf); err != nil {
		t.Fatal(err)
	}
	var kps []feeds.KeyPair
	for _, k := range kf.Keys {
		seed, _ := hex.DecodeString(k.SeedHex)
		kp, err := feeds.KeyPairFromSeed(seed)
		if err != nil {
			t.Fatal(err)
		}
		kps = append(kps, kp)
	}

	fh, err := os.Open(filepath.Join(testdataDir, "ssb-validate", "generated-edge-feed.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	defer fh.Close()
	sc := bufio.NewScanner(fh)
	sc.Buffer(nil, 1<<20)
	boxes := 0
	wantRecipients := []int{2, 3} // alice+bob, alice+bob+carol
	for sc.Scan() {
		var rec struct {
			Value struct {
				Author  string          `json:"author"`
				Content json.RawMessage `json:"content"`
			} `json:"value"`
		}
		if err := json.Unmarshal(sc.Bytes(), &rec); err != nil {
			t.Fatal(err)
		}
		var content string
		if json.Unmarshal(rec.Value.Content, &content) != nil {
			continue // a public message
		}
		ct, err := ParseBoxContent(content)
		if err != nil {
			t.Fatal(err)
		}
		if boxes >= len(wantRecipients) {
			t.Fatalf("more than %d private messages", len(wantRecipients))
		}
		var openers []string
		var plain []byte
		for _, kp := range kps {
			pt, ok := Open(ct, kp)
			if !ok {
				continue
			}
			openers = append(openers, kp.ID.String())
			if plain != nil && !bytes.Equal(plain, pt) {
				t.Error("recipients see different plaintexts")
			}
			plain = pt
		}
		if len(openers) != wantRecipients[boxes] {
			t.Fatalf("message %d opened by %v, want %d recipients", boxes, openers, wantRecipients[boxes])
		}
		var obj struct {
			Type  string   `json:"type"`
			Recps []string `json:"recps"`
		}
		if err := json.Unmarshal(plain, &obj); err != nil {
			t.Fatalf("plaintext is not JSON: %v\n%s", err, plain)
		}
		if obj.Type == "" {
			t.Errorf("plaintext has no type: %s", plain)
		}
		slices.Sort(openers)
		slices.Sort(obj.Recps)
		if !slices.Equal(openers, obj.Recps) {
			t.Errorf("recps %v, but opened by %v", obj.Recps, openers)
		}
		if !slices.Contains(obj.Recps, rec.Value.Author) {
			t.Errorf("author %s is not among recps %v", rec.Value.Author, obj.Recps)
		}
		if strings.Contains(string(plain), "\n") {
			t.Errorf("plaintext is not compact JSON: %s", plain)
		}
		boxes++
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	if boxes != 2 {
		t.Fatalf("found %d private messages, want 2", boxes)
	}
}

func FuzzOpen(f *testing.F) {
	kp, err := feeds.KeyPairFromSeed(bytes.Repeat([]byte{3}, 32))
	if err != nil {
		f.Fatal(err)
	}
	other, _ := feeds.KeyPairFromSeed(bytes.Repeat([]byte{4}, 32))
	for _, n := range []int{0, 1, 100} {
		ct, err := Seal(make([]byte, n), []feeds.FeedRef{other.ID, kp.ID}, nil)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(ct)
	}
	f.Add([]byte{})
	f.Add(make([]byte, Overhead))
	cs := kp.Curve25519Secret()
	f.Fuzz(func(t *testing.T, ct []byte) {
		pt, ok := OpenWithCurveSecret(ct, cs)
		if !ok {
			return
		}
		mk, ok2 := OpenKey(ct, cs)
		pt2, ok3 := OpenBody(ct, mk)
		if !ok2 || !ok3 || !bytes.Equal(pt, pt2) {
			t.Fatal("OpenWithCurveSecret and OpenKey+OpenBody disagree")
		}
		if len(ct) != prefixSize+headerSize*int(mk[0])+16+len(pt) {
			t.Fatalf("plaintext of %d bytes from %d bytes with %d headers", len(pt), len(ct), mk[0])
		}
	})
}

func FuzzParseBoxContent(f *testing.F) {
	f.Add("AAEC.box")
	f.Add("AAECAw.box")
	f.Add("x.box2")
	f.Add("")
	f.Fuzz(func(t *testing.T, s string) {
		ct, err := ParseBoxContent(s)
		if err != nil {
			return
		}
		back, err := ParseBoxContent(BoxContent(ct))
		if err != nil || !bytes.Equal(back, ct) {
			t.Fatalf("%q: content does not round trip", s)
		}
	})
}

// BenchmarkOpenNotRecipient is the common case during sync: every box1
// message is tried, and almost none are for us.
func BenchmarkOpenNotRecipient(b *testing.B) {
	f := loadMultibox(b)
	for _, v := range []int{0, 8} { // 1 and 7 recipients
		vec := f.Vectors[v]
		ct := b64(b, vec.Ciphertext)
		outsider := vec.OpenWith[len(vec.OpenWith)-1]
		cs := b64Array32(b, outsider.Curve25519Secret)
		b.Run(fmt.Sprintf("%d-recipients", len(vec.Recipients)), func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, ok := OpenWithCurveSecret(ct, cs); ok {
					b.Fatal("outsider opened it")
				}
			}
		})
	}
}

func BenchmarkOpenRecipient(b *testing.B) {
	f := loadMultibox(b)
	vec := f.Vectors[9] // 7 recipients, 212-byte plaintext
	ct := b64(b, vec.Ciphertext)
	cs := b64Array32(b, vec.OpenWith[6].Curve25519Secret) // last slot
	b.ReportAllocs()
	for b.Loop() {
		if _, ok := OpenWithCurveSecret(ct, cs); !ok {
			b.Fatal("recipient could not open")
		}
	}
}

func BenchmarkSeal(b *testing.B) {
	var ids []feeds.FeedRef
	for i := range 3 {
		kp, _ := feeds.KeyPairFromSeed(bytes.Repeat([]byte{byte(i)}, 32))
		ids = append(ids, kp.ID)
	}
	pt := make([]byte, 500)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Seal(pt, ids, nil); err != nil {
			b.Fatal(err)
		}
	}
}
