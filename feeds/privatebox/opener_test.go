package privatebox

import (
	"bytes"
	"crypto/rand"
	"testing"

	"github.com/cask-ssb/cask/feeds"
)

// TestOpenerMatchesOpen: the Opener opens what OpenWithCurveSecret opens,
// for every recipient slot, and refuses the rest.
func TestOpenerMatchesOpen(t *testing.T) {
	var kps []feeds.KeyPair
	var ids []feeds.FeedRef
	for range 7 {
		kp, err := feeds.GenerateKeyPair(rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		kps = append(kps, kp)
		ids = append(ids, kp.ID)
	}
	outsider, _ := feeds.GenerateKeyPair(rand.Reader)
	pt := []byte(`{"type":"post","text":"hi"}`)
	for n := 1; n <= 7; n++ {
		ct, err := Seal(pt, ids[:n], nil)
		if err != nil {
			t.Fatal(err)
		}
		for i, kp := range append(append([]feeds.KeyPair{}, kps[:n]...), outsider) {
			o, err := NewOpener(kp.Curve25519Secret())
			if err != nil {
				t.Fatal(err)
			}
			got, ok := o.Open(ct)
			want, wok := OpenWithCurveSecret(ct, kp.Curve25519Secret())
			if ok != wok || !bytes.Equal(got, want) {
				t.Fatalf("%d recipients, key %d: Opener %v %q, Open %v %q", n, i, ok, got, wok, want)
			}
			if i < n && (!ok || !bytes.Equal(got, pt)) {
				t.Fatalf("%d recipients: recipient %d cannot open", n, i)
			}
			if i == n && ok {
				t.Fatalf("an outsider opened a message for %d recipients", n)
			}
		}
	}
	o, _ := NewOpener(kps[0].Curve25519Secret())
	for _, bad := range [][]byte{nil, make([]byte, 10), make([]byte, Overhead)} {
		if _, ok := o.Open(bad); ok {
			t.Fatalf("opened %d bytes of garbage", len(bad))
		}
	}
}

func BenchmarkOpen(b *testing.B) {
	kp, _ := feeds.GenerateKeyPair(rand.Reader)
	other, _ := feeds.GenerateKeyPair(rand.Reader)
	ct, _ := Seal([]byte(`{"type":"post"}`), []feeds.FeedRef{other.ID}, nil)
	secret := kp.Curve25519Secret()
	b.Run("OpenWithCurveSecret", func(b *testing.B) {
		for b.Loop() {
			OpenWithCurveSecret(ct, secret)
		}
	})
	b.Run("Opener", func(b *testing.B) {
		o, _ := NewOpener(secret)
		for b.Loop() {
			o.Open(ct)
		}
	})
}
