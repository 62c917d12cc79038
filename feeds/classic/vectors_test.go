package classic

import (
	"archive/zip"
	"bufio"
	"bytes"
	"compress/gzip"
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/cask-ssb/cask/feeds"
)

// sharedPath returns a path relative to the module root; the test data
// lives in the repository's testdata/ (see testdata/README.md).
func sharedPath(t testing.TB, rel string) string {
	t.Helper()
	p := filepath.Join("..", "..", rel)
	if _, err := os.Stat(p); err != nil {
		t.Fatalf("test data missing: %v", err)
	}
	return p
}

func readShared(t testing.TB, rel string) []byte {
	t.Helper()
	b, err := os.ReadFile(sharedPath(t, rel))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

type jsonState struct {
	ID        string  `json:"id"`
	Sequence  int64   `json:"sequence"`
	Timestamp float64 `json:"timestamp"`
}

func (s *jsonState) feedState(t *testing.T) *FeedState {
	t.Helper()
	if s == nil {
		return nil
	}
	ref, err := parseMsgRef(s.ID)
	if err != nil {
		t.Fatalf("state id: %v", err)
	}
	return &FeedState{Key: ref, Sequence: s.Sequence, Timestamp: s.Timestamp}
}

type validationRecord struct {
	State   *jsonState      `json:"state"`
	HMACKey json.RawMessage `json:"hmacKey"`
	Message json.RawMessage `json:"message"`
	Valid   bool            `json:"valid"`
	Error   *string         `json:"error"`
	ID      string          `json:"id"`
}

// validateRecord runs the full ssb-validate check on one dataset record.
func validateRecord(t *testing.T, r validationRecord) (*Message, error) {
	var hmacKey *[32]byte
	switch {
	case len(r.HMACKey) == 0 || string(r.HMACKey) == "null":
	case r.HMACKey[0] == '"':
		var s string
		if err := json.Unmarshal(r.HMACKey, &s); err != nil {
			return nil, err
		}
		k, err := ParseHMACKey(s)
		if err != nil {
			return nil, err
		}
		if k == nil {
			return nil, fmt.Errorf("empty hmac key")
		}
		hmacKey = k
	default:
		return nil, fmt.Errorf("hmac key must be a string")
	}
	m, err := Parse(r.Message)
	if err != nil {
		return nil, err
	}
	if err := ValidateNext(r.State.feedState(t), m); err != nil {
		return m, err
	}
	if err := m.VerifySignature(hmacKey); err != nil {
		return m, err
	}
	return m, nil
}

func TestValidationDataset(t *testing.T) {
	for _, file := range []string{"testdata/ssb-validate/data.json", "testdata/ssb-validate/testdata-fuzzed.json"} {
		var recs []validationRecord
		if err := json.Unmarshal(readShared(t, file), &recs); err != nil {
			t.Fatal(err)
		}
		if len(recs) < 50 {
			t.Fatalf("%s: only %d records", file, len(recs))
		}
		nValid := 0
		for i, r := range recs {
			t.Run(fmt.Sprintf("%s/%d", filepath.Base(file), i), func(t *testing.T) {
				m, err := validateRecord(t, r)
				if (err == nil) != r.Valid {
					want := "valid"
					if !r.Valid {
						want = "invalid: " + *r.Error
					}
					t.Fatalf("got err=%v, want %s", err, want)
				}
				if r.Valid {
					nValid++
					if got := m.Key.String(); got != r.ID {
						t.Fatalf("id = %s, want %s", got, r.ID)
					}
				}
			})
		}
		if nValid == 0 {
			t.Fatalf("%s: no valid records checked", file)
		}
	}
}

func TestGoSSBTestdataZip(t *testing.T) {
	zr, err := zip.OpenReader(sharedPath(t, "testdata/ssb-validate/testdata.zip"))
	if err != nil {
		t.Fatal(err)
	}
	defer zr.Close()
	files := map[string][]byte{}
	for _, f := range zr.File {
		rc, err := f.Open()
		if err != nil {
			t.Fatal(err)
		}
		b, err := io.ReadAll(rc)
		rc.Close()
		if err != nil {
			t.Fatal(err)
		}
		files[f.Name] = b
	}
	var state *FeedState
	n := 0
	for i := 1; ; i++ {
		name := fmt.Sprintf("%05d", i)
		full, ok := files[name+".full"]
		if !ok {
			break
		}
		n++
		m, _, claimed, err := ParseKVT(full)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if !bytes.Equal(m.Canonical, files[name+".input"]) {
			t.Fatalf("%s: canonical differs:\n%s\nwant\n%s", name, m.Canonical, files[name+".input"])
		}
		if !bytes.Equal(m.SignedBytes(), files[name+".noSig"]) {
			t.Fatalf("%s: signed bytes differ", name)
		}
		if err := m.VerifySignature(nil); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if sum := sha256.Sum256(Latin1(files[name+".input"])); claimed == nil || feeds.MessageRef(sum) != *claimed || m.Key != *claimed {
			t.Fatalf("%s: id mismatch: computed %s, claimed %v", name, m.Key, claimed)
		}
		if err := ValidateNext(state, m); err != nil {
			t.Fatalf("%s: chain: %v", name, err)
		}
		s := StateAfter(m)
		state = &s
	}
	if n != 235 {
		t.Fatalf("checked %d messages, want 235", n)
	}
}

type kvtRecord struct {
	Key       string          `json:"key"`
	Value     json.RawMessage `json:"value"`
	Timestamp float64         `json:"timestamp"`
}

func TestEdgeFeed(t *testing.T) {
	data := readShared(t, "testdata/ssb-validate/generated-edge-feed.jsonl")
	var state *FeedState
	lines := bytes.Split(bytes.TrimSpace(data), []byte("\n"))
	if len(lines) != 17 {
		t.Fatalf("%d lines, want 17", len(lines))
	}
	for i, line := range lines {
		var rec kvtRecord
		if err := json.Unmarshal(line, &rec); err != nil {
			t.Fatal(err)
		}
		m, err := Parse(rec.Value)
		if err != nil {
			t.Fatalf("line %d: %v", i+1, err)
		}
		if m.Key.String() != rec.Key {
			t.Fatalf("line %d: id %s, want %s\ncanonical:\n%s", i+1, m.Key, rec.Key, m.Canonical)
		}
		if err := m.VerifySignature(nil); err != nil {
			t.Fatalf("line %d: %v", i+1, err)
		}
		if err := ValidateNext(state, m); err != nil {
			t.Fatalf("line %d: %v", i+1, err)
		}
		// The compact form must be what JSON.stringify gives: re-parsing it
		// yields the same canonical text.
		m2, err := Parse(m.Compact)
		if err != nil || !bytes.Equal(m2.Canonical, m.Canonical) {
			t.Fatalf("line %d: compact form does not round-trip: %v", i+1, err)
		}
		s := StateAfter(m)
		state = &s
	}

	var next struct {
		State      jsonState `json:"state"`
		Candidates []struct {
			Name  string          `json:"name"`
			Value json.RawMessage `json:"value"`
			ID    string          `json:"id"`
			Valid bool            `json:"valid"`
		} `json:"candidates"`
	}
	if err := json.Unmarshal(readShared(t, "testdata/ssb-validate/generated-edge-feed-next.json"), &next); err != nil {
		t.Fatal(err)
	}
	if next.State.ID != state.Key.String() || next.State.Sequence != state.Sequence {
		t.Fatalf("edge feed ends at %s/%d, next file expects %s/%d", state.Key, state.Sequence, next.State.ID, next.State.Sequence)
	}
	if len(next.Candidates) != 15 {
		t.Fatalf("%d candidates, want 15", len(next.Candidates))
	}
	for _, c := range next.Candidates {
		t.Run(c.Name, func(t *testing.T) {
			r := validationRecord{State: &next.State, Message: c.Value, Valid: c.Valid}
			m, err := validateRecord(t, r)
			if (err == nil) != c.Valid {
				t.Fatalf("err = %v, want valid=%v", err, c.Valid)
			}
			if c.Valid && m.Key.String() != c.ID {
				t.Fatalf("id %s, want %s", m.Key, c.ID)
			}
		})
	}
}

func TestHashVectors(t *testing.T) {
	var f struct {
		Vectors []struct {
			Input json.RawMessage `json:"input"`
			Units int             `json:"input_utf16_units"`
			Hash  string          `json:"hash"`
			UTF8  string          `json:"sha256_utf8"`
		} `json:"vectors"`
	}
	if err := json.Unmarshal(readShared(t, "testdata/ssb-keys/generated-hash.json"), &f); err != nil {
		t.Fatal(err)
	}
	if len(f.Vectors) == 0 {
		t.Fatal("no vectors")
	}
	differs := 0
	for i, v := range f.Vectors {
		s, err := Decode(v.Input) // the JS string, with any lone surrogates
		if err != nil || s.Kind() != KindString {
			t.Fatalf("%d: %v", i, err)
		}
		if got := s.UTF16Len(); got != v.Units {
			t.Errorf("%d: UTF16Len = %d, want %d", i, got, v.Units)
		}
		sum := HashLatin1([]byte(s.Str()))
		if got := base64.StdEncoding.EncodeToString(sum[:]) + ".sha256"; got != v.Hash {
			t.Errorf("%d: hash = %s, want %s", i, got, v.Hash)
		}
		if v.Hash != v.UTF8 {
			differs++
		}
	}
	if differs == 0 {
		t.Fatal("no vector distinguishes latin1 from UTF-8 hashing")
	}
}

type keyRecord struct {
	SeedHex string `json:"seed_hex"`
	ID      string `json:"id"`
	Private string `json:"private"`
}

func loadKeys(t *testing.T) []ed25519.PrivateKey {
	t.Helper()
	var f struct {
		Keys []keyRecord `json:"keys"`
	}
	if err := json.Unmarshal(readShared(t, "testdata/ssb-keys/generated-keys.json"), &f); err != nil {
		t.Fatal(err)
	}
	var out []ed25519.PrivateKey
	for _, k := range f.Keys {
		raw, err := base64.StdEncoding.DecodeString(strings.TrimSuffix(k.Private, ".ed25519"))
		if err != nil || len(raw) != 64 {
			t.Fatalf("bad private key %q", k.Private)
		}
		priv := ed25519.PrivateKey(raw)
		ref, _ := feeds.FeedRefFromPublicKey(priv.Public().(ed25519.PublicKey))
		if ref.String() != k.ID {
			t.Fatalf("key %s does not match its seed", k.ID)
		}
		out = append(out, priv)
	}
	return out
}

func TestSignVectors(t *testing.T) {
	keys := loadKeys(t)
	var f struct {
		Vectors []struct {
			KeyIndex    int     `json:"key_index"`
			Author      string  `json:"author"`
			HMACKey     *string `json:"hmac_key"`
			InputJSON   string  `json:"input_json"`
			SignedBytes string  `json:"signed_bytes"`
			Signature   string  `json:"signature"`
		} `json:"vectors"`
	}
	if err := json.Unmarshal(readShared(t, "testdata/ssb-keys/generated-sign.json"), &f); err != nil {
		t.Fatal(err)
	}
	if len(f.Vectors) != 12 {
		t.Fatalf("%d vectors, want 12", len(f.Vectors))
	}
	for i, v := range f.Vectors {
		t.Run(fmt.Sprint(i), func(t *testing.T) {
			val, err := Decode([]byte(v.InputJSON))
			if err != nil {
				t.Fatal(err)
			}
			signed := val.Canonical()
			if string(signed) != v.SignedBytes {
				t.Fatalf("canonical:\n%s\nwant\n%s", signed, v.SignedBytes)
			}
			var hk *[32]byte
			if v.HMACKey != nil {
				if hk, err = ParseHMACKey(*v.HMACKey); err != nil {
					t.Fatal(err)
				}
			}
			key := keys[v.KeyIndex]
			sig := ed25519.Sign(key, signingInput(signed, hk))
			if got := base64.StdEncoding.EncodeToString(sig) + sigSuffix; got != v.Signature {
				t.Fatalf("signature %s, want %s", got, v.Signature)
			}
			if !ed25519.Verify(key.Public().(ed25519.PublicKey), signingInput(signed, hk), sig) {
				t.Fatal("does not verify")
			}
			if hk != nil && ed25519.Verify(key.Public().(ed25519.PublicKey), signed, sig) {
				t.Fatal("HMAC signature verifies without HMAC")
			}
		})
	}
}

// loadFixtures reads the fixtures sample: raw value bytes and keys.
func loadFixtures(t testing.TB) (values [][]byte, keys []string) {
	t.Helper()
	f, err := os.Open(sharedPath(t, "testdata/fixtures/messages.jsonl.gz"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	zr, err := gzip.NewReader(f)
	if err != nil {
		t.Fatal(err)
	}
	sc := bufio.NewScanner(zr)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		var rec kvtRecord
		if err := json.Unmarshal(sc.Bytes(), &rec); err != nil {
			t.Fatal(err)
		}
		values = append(values, append([]byte(nil), rec.Value...))
		keys = append(keys, rec.Key)
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return values, keys
}

func TestFixtures(t *testing.T) {
	values, keys := loadFixtures(t)
	if len(values) != 5000 {
		t.Fatalf("%d fixtures, want 5000", len(values))
	}
	msgs := make([]*Message, len(values))
	for i, raw := range values {
		m, err := Parse(raw)
		if err != nil {
			t.Fatalf("record %d: %v", i, err)
		}
		if m.Key.String() != keys[i] {
			t.Fatalf("record %d: id %s, want %s", i, m.Key, keys[i])
		}
		msgs[i] = m
	}
	states := map[feeds.FeedRef]*FeedState{}
	for i, err := range NewVerifier(nil).Verify(context.Background(), msgs, states) {
		if err != nil {
			t.Fatalf("record %d: %v", i, err)
		}
	}
	if len(states) != 50 {
		t.Fatalf("%d feeds, want 50", len(states))
	}
}

// TestFixturesTampered flips signed fields of a sample of fixture messages:
// each change must make the message fail (signature or shape).
func TestFixturesTampered(t *testing.T) {
	values, _ := loadFixtures(t)
	type flip struct {
		name   string
		mutate func(raw []byte) []byte
	}
	mutators := []flip{
		{"content text char", func(raw []byte) []byte {
			i := bytes.Index(raw, []byte(`"content":`))
			j := bytes.IndexByte(raw[i+11:], 'a')
			if j < 0 {
				return nil
			}
			out := append([]byte(nil), raw...)
			out[i+11+j] = 'b'
			return out
		}},
		{"timestamp digit", func(raw []byte) []byte {
			i := bytes.Index(raw, []byte(`"timestamp":`)) + len(`"timestamp":`)
			out := append([]byte(nil), raw...)
			out[i+3] = '0' + (out[i+3]-'0'+1)%10
			return out
		}},
		{"sequence", func(raw []byte) []byte {
			i := bytes.Index(raw, []byte(`"sequence":`)) + len(`"sequence":`)
			out := append([]byte(nil), raw[:i]...)
			out = append(out, "99999,"...)
			j := bytes.IndexByte(raw[i:], ',')
			return append(out, raw[i+j+1:]...)
		}},
		{"signature byte", func(raw []byte) []byte {
			i := bytes.Index(raw, []byte(`"signature":"`)) + len(`"signature":"`)
			out := append([]byte(nil), raw...)
			if out[i+5] == 'A' {
				out[i+5] = 'B'
			} else {
				out[i+5] = 'A'
			}
			return out
		}},
		{"author byte", func(raw []byte) []byte {
			i := bytes.Index(raw, []byte(`"author":"@`)) + len(`"author":"@`)
			out := append([]byte(nil), raw...)
			if out[i+7] == 'A' {
				out[i+7] = 'B'
			} else {
				out[i+7] = 'A'
			}
			return out
		}},
	}
	checked := 0
	for i := 0; i < len(values); i += 97 {
		for _, mu := range mutators {
			bad := mu.mutate(values[i])
			if bad == nil {
				continue
			}
			checked++
			m, err := Parse(bad)
			if err != nil {
				continue // rejected by shape: fine
			}
			if err := m.VerifySignature(nil); err == nil {
				t.Fatalf("record %d, %s: tampered message verifies", i, mu.name)
			}
		}
	}
	if checked < 100 {
		t.Fatalf("only %d tampered messages checked", checked)
	}
}

// TestVerifierMixedBatch puts bad signatures among good ones of several
// interleaved feeds: only the bad ones (and what chains on them) fail.
func TestVerifierMixedBatch(t *testing.T) {
	values, _ := loadFixtures(t)
	msgs := make([]*Message, 600)
	for i := range msgs {
		m, err := Parse(values[i])
		if err != nil {
			t.Fatal(err)
		}
		msgs[i] = m
	}
	// Corrupt the signature of a few messages that are the last of their
	// feed in this prefix, so no later message depends on them.
	last := map[feeds.FeedRef]int{}
	for i, m := range msgs {
		last[m.Author] = i
	}
	var victims []int
	for _, i := range last {
		victims = append(victims, i)
	}
	sort.Ints(victims)
	victims = victims[:5]
	bad := map[int]bool{}
	for _, i := range victims {
		cp := *msgs[i]
		cp.Signature[10] ^= 1
		msgs[i] = &cp
		bad[i] = true
	}
	for _, tc := range []struct {
		name string
		opts []VerifierOption
	}{
		{"batch64", nil},
		{"batch7-workers3", []VerifierOption{WithBatchSize(7), WithWorkers(3)}},
		{"single", []VerifierOption{WithBatchSize(1)}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			states := map[feeds.FeedRef]*FeedState{}
			errs := NewVerifier(nil, tc.opts...).Verify(context.Background(), msgs, states)
			for i, err := range errs {
				if bad[i] != (err != nil) {
					t.Fatalf("message %d: err=%v, bad=%v", i, err, bad[i])
				}
				if bad[i] && !IsFatal(err) {
					t.Fatalf("message %d: bad signature not fatal: %v", i, err)
				}
			}
			// A second pass over the same messages: the accepted ones are
			// now non-fatal duplicates; the bad ones are still next in their
			// feed and still fail their signature.
			for i, err := range NewVerifier(nil, tc.opts...).Verify(context.Background(), msgs, states) {
				if bad[i] {
					if !IsFatal(err) {
						t.Fatalf("replayed bad message %d: err=%v, want fatal", i, err)
					}
				} else if err == nil || IsFatal(err) {
					t.Fatalf("replayed message %d: err=%v, want non-fatal duplicate", i, err)
				}
			}
		})
	}
}

func TestVerifierCancelled(t *testing.T) {
	values, _ := loadFixtures(t)
	msgs := make([]*Message, 200)
	for i := range msgs {
		m, err := Parse(values[i])
		if err != nil {
			t.Fatal(err)
		}
		msgs[i] = m
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	states := map[feeds.FeedRef]*FeedState{}
	for i, err := range NewVerifier(nil).Verify(ctx, msgs, states) {
		if err != context.Canceled {
			t.Fatalf("message %d: err=%v, want context.Canceled", i, err)
		}
	}
	if len(states) != 0 {
		t.Fatal("cancelled verification updated states")
	}
}

func parseMsgRef(s string) (feeds.MessageRef, error) {
	r, ok := parseSigil(s, '%', ".sha256")
	if !ok {
		return feeds.MessageRef{}, fmt.Errorf("not a message id: %q", s)
	}
	return feeds.MessageRef(r), nil
}

func TestVerifyRaw(t *testing.T) {
	data := readShared(t, "testdata/ssb-validate/generated-edge-feed.jsonl")
	lines := bytes.Split(bytes.TrimSpace(data), []byte("\n"))
	raw := make([][]byte, 0, len(lines)+2)
	for _, l := range lines {
		raw = append(raw, l)
	}
	// A KVT whose claimed key is wrong, and garbage.
	wrongKey := bytes.Replace(lines[0], []byte(`"key":"%`), []byte(`"key":"%A`), 1)
	wrongKey = bytes.Replace(wrongKey, []byte(`="`), []byte(`"`), 1)
	raw = append(raw, wrongKey, []byte(`{"nope`))
	states := map[feeds.FeedRef]*FeedState{}
	msgs, errs := NewVerifier(nil, WithBatchSize(5)).VerifyRaw(context.Background(), raw, states)
	for i := range lines {
		if errs[i] != nil || msgs[i] == nil {
			t.Fatalf("line %d: %v", i+1, errs[i])
		}
	}
	if errs[len(lines)] == nil || errs[len(lines)+1] == nil {
		t.Fatalf("bad records accepted: %v / %v", errs[len(lines)], errs[len(lines)+1])
	}
	var st *FeedState
	for _, s := range states {
		st = s
	}
	if len(states) != 1 || st.Sequence != 17 {
		t.Fatalf("states = %v", states)
	}
}
