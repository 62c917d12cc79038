package httpauth

import (
	"crypto/rand"
	"encoding/json"
	"errors"
	"net/url"
	"strings"
	"testing"

	"github.com/cask-ssb/cask/feeds"
)

func key(t testing.TB) feeds.KeyPair {
	t.Helper()
	kp, err := feeds.GenerateKeyPair(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return kp
}

func TestSolution(t *testing.T) {
	client, room, other := key(t), key(t), key(t)
	sc, cc := NewChallenge(), NewChallenge()
	if len(sc) != 44 || CheckChallenge(sc) != nil {
		t.Fatalf("challenge %q", sc)
	}
	sol := Sign(client, room.ID, sc, cc)
	if !strings.HasSuffix(sol, ".sig.ed25519") {
		t.Fatalf("solution %q", sol)
	}
	if err := Verify(room.ID, client.ID, sc, cc, sol); err != nil {
		t.Fatal(err)
	}
	urlSafe := strings.NewReplacer("+", "-", "/", "_").Replace(sol)
	if err := Verify(room.ID, client.ID, sc, cc, urlSafe); err != nil {
		t.Fatalf("URL-safe base64 solution: %v", err)
	}
	for name, bad := range map[string]func() error{
		"other signer":    func() error { return Verify(room.ID, client.ID, sc, cc, Sign(other, room.ID, sc, cc)) },
		"other room":      func() error { return Verify(room.ID, client.ID, sc, cc, Sign(client, other.ID, sc, cc)) },
		"other sc":        func() error { return Verify(room.ID, client.ID, NewChallenge(), cc, sol) },
		"other cc":        func() error { return Verify(room.ID, client.ID, sc, NewChallenge(), sol) },
		"no suffix":       func() error { return Verify(room.ID, client.ID, sc, cc, strings.TrimSuffix(sol, ".sig.ed25519")) },
		"not base64":      func() error { return Verify(room.ID, client.ID, sc, cc, "!!.sig.ed25519") },
		"short signature": func() error { return Verify(room.ID, client.ID, sc, cc, "AAAA.sig.ed25519") },
		// base64 decoders skip line breaks, even Go's strict one.
		"line feed in the base64":       func() error { return Verify(room.ID, client.ID, sc, cc, sol[:10]+"\n"+sol[10:]) },
		"carriage return in the base64": func() error { return Verify(room.ID, client.ID, sc, cc, sol[:20]+"\r\n"+sol[20:]) },
		"line feed before the suffix":   func() error { return Verify(room.ID, client.ID, sc, cc, strings.Replace(sol, ".sig", "\n.sig", 1)) },
	} {
		if err := bad(); !errors.Is(err, ErrBadSolution) {
			t.Errorf("%s: %v, want ErrBadSolution", name, err)
		}
	}
	// The signed text, as in the spec.
	want := "=http-auth-sign-in:" + room.ID.String() + ":" + client.ID.String() + ":" + sc + ":" + cc
	if got := string(Payload(room.ID, client.ID, sc, cc)); got != want {
		t.Fatalf("payload %q", got)
	}
}

func TestParseStartURI(t *testing.T) {
	room := key(t)
	sc := NewChallenge()
	q := url.Values{"action": {"start-http-auth"}, "sid": {room.ID.String()}, "sc": {sc}, "multiserverAddress": {"net:example.org:8008~shs:" + room.ID.String()[1:45]}}
	good := "ssb:experimental?" + q.Encode()
	su, err := ParseStartURI(good)
	if err != nil || su.SID != room.ID || su.SC != sc || su.MultiserverAddress == "" {
		t.Fatalf("%+v, %v", su, err)
	}
	if _, err := ParseStartURI("ssb://experimental?" + q.Encode()); err != nil {
		t.Fatalf("host form: %v", err)
	}
	for _, bad := range []string{
		"https://example.org/login",
		"ssb:experimental?action=claim-http-invite&invite=x",
		"ssb:experimental?action=start-http-auth&sid=@nope&sc=" + sc,
		"ssb:experimental?action=start-http-auth&sid=" + url.QueryEscape(room.ID.String()) + "&sc=short",
		"ssb:other?action=start-http-auth",
		"%",
	} {
		if _, err := ParseStartURI(bad); err == nil {
			t.Errorf("accepted %q", bad)
		}
	}
}

func TestStringArgs(t *testing.T) {
	for _, c := range []struct {
		raw string
		n   int
		ok  bool
	}{
		{`["a","b"]`, 2, true}, {`["a"]`, 2, false}, {`["a",1]`, 2, false}, {`{}`, 1, false}, {`["a","b","c"]`, 3, true},
	} {
		if _, err := StringArgs(json.RawMessage(c.raw), c.n); (err == nil) != c.ok {
			t.Errorf("%s: %v", c.raw, err)
		}
	}
}

func FuzzParseStartURI(f *testing.F) {
	f.Add("ssb:experimental?action=start-http-auth&sid=%40FlieaFef19uJ6jhHwv2CSkFrDLYKJd%2FSuIS71A5Y2as%3D.ed25519&sc=" + strings.Repeat("a", 44))
	f.Add("ssb://experimental?action=start-http-auth")
	f.Fuzz(func(t *testing.T, s string) {
		su, err := ParseStartURI(s)
		if err == nil && CheckChallenge(su.SC) != nil {
			t.Fatalf("accepted sc %q", su.SC)
		}
	})
}

func FuzzVerify(f *testing.F) {
	client, room := key(f), key(f)
	f.Add("sc", "cc", "AAAA.sig.ed25519")
	f.Add("sc", "cc", Sign(client, room.ID, "sc", "cc"))
	sol := Sign(client, room.ID, "sc", "cc")
	f.Add("sc", "cc", sol[:10]+"\n"+sol[10:]) // once accepted: base64 decoders skip line breaks
	f.Fuzz(func(t *testing.T, sc, cc, sol string) {
		err := Verify(room.ID, client.ID, sc, cc, sol)
		// Only the real signature of this (sc, cc) verifies.
		if want := Sign(client, room.ID, sc, cc); (err == nil) != (strings.NewReplacer("-", "+", "_", "/").Replace(sol) == want) {
			t.Fatalf("Verify(%q, %q, %q) = %v", sc, cc, sol, err)
		}
	})
}

func FuzzStringArgs(f *testing.F) {
	f.Add([]byte(`["a","b","c"]`))
	f.Fuzz(func(t *testing.T, raw []byte) {
		out, err := StringArgs(raw, 3)
		if err == nil && len(out) != 3 {
			t.Fatalf("%d args", len(out))
		}
	})
}
