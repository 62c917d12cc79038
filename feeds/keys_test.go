package feeds

import (
	"bytes"
	"crypto/ed25519"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"filippo.io/edwards25519"
)

type keyVector struct {
	SeedHex          string `json:"seed_hex"`
	ID               string `json:"id"`
	Curve            string `json:"curve"`
	Public           string `json:"public"`
	Private          string `json:"private"`
	Curve25519Public string `json:"curve25519_public"`
	Curve25519Secret string `json:"curve25519_secret"`
}

func loadKeyVectors(t testing.TB) []keyVector {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(testdataDir, "ssb-keys", "generated-keys.json"))
	if err != nil {
		t.Fatal(err)
	}
	var f struct {
		Keys []keyVector `json:"keys"`
	}
	if err := json.Unmarshal(data, &f); err != nil {
		t.Fatal(err)
	}
	if len(f.Keys) != 7 {
		t.Fatalf("%d key vectors, want 7", len(f.Keys))
	}
	return f.Keys
}

func TestKeyVectors(t *testing.T) {
	for _, v := range loadKeyVectors(t) {
		t.Run(v.SeedHex, func(t *testing.T) {
			seed, err := hex.DecodeString(v.SeedHex)
			if err != nil {
				t.Fatal(err)
			}
			kp, err := KeyPairFromSeed(seed)
			if err != nil {
				t.Fatal(err)
			}
			if kp.ID.String() != v.ID {
				t.Errorf("id = %s, want %s", kp.ID, v.ID)
			}
			if got := base64.StdEncoding.EncodeToString(kp.ID[:]) + ".ed25519"; got != v.Public {
				t.Errorf("public = %s, want %s", got, v.Public)
			}
			if got := base64.StdEncoding.EncodeToString(kp.Private) + ".ed25519"; got != v.Private {
				t.Errorf("private = %s, want %s", got, v.Private)
			}
			cs := kp.Curve25519Secret()
			if got := base64.StdEncoding.EncodeToString(cs[:]); got != v.Curve25519Secret {
				t.Errorf("curve25519 secret = %s, want %s", got, v.Curve25519Secret)
			}
			cp, err := Curve25519Public(kp.ID)
			if err != nil {
				t.Fatal(err)
			}
			if got := base64.StdEncoding.EncodeToString(cp[:]); got != v.Curve25519Public {
				t.Errorf("curve25519 public = %s, want %s", got, v.Curve25519Public)
			}
			// The vector's JSON object is what ssb-keys stores; it must parse.
			obj := `{"curve":"` + v.Curve + `","public":"` + v.Public + `","private":"` + v.Private + `","id":"` + v.ID + `"}`
			kp2, err := ParseSecret([]byte(obj))
			if err != nil {
				t.Fatal(err)
			}
			if kp2.ID != kp.ID || !bytes.Equal(kp2.Private, kp.Private) {
				t.Error("ParseSecret of the vector gives another key")
			}
			sig := kp.Sign([]byte("hello"))
			if !ed25519.Verify(kp.ID.PublicKey(), []byte("hello"), sig) {
				t.Error("signature does not verify")
			}
		})
	}
}

func TestCurve25519PublicRejects(t *testing.T) {
	good := loadKeyVectors(t)[0]
	pub, _ := base64.StdEncoding.DecodeString(strings.TrimSuffix(good.Public, ".ed25519"))
	p, err := new(edwards25519.Point).SetBytes(pub)
	if err != nil {
		t.Fatal(err)
	}
	// A point of order 8; adding it leaves the prime-order subgroup.
	torsionBytes, _ := hex.DecodeString("c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac037a")
	torsion, err := new(edwards25519.Point).SetBytes(torsionBytes)
	if err != nil {
		t.Fatal(err)
	}
	mixed := new(edwards25519.Point).Add(p, torsion).Bytes()
	identity := edwards25519.NewIdentityPoint().Bytes()
	// y = 2 is not the y of any curve point.
	var notOnCurve FeedRef
	notOnCurve[0] = 2
	if _, err := new(edwards25519.Point).SetBytes(notOnCurve[:]); err == nil {
		t.Fatal("test key unexpectedly decodes")
	}
	tests := []struct {
		name string
		key  []byte
	}{
		{"identity (small order)", identity},
		{"order-8 point", torsionBytes},
		{"not on the curve", notOnCurve[:]},
		{"outside the prime-order subgroup", mixed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var f FeedRef
			copy(f[:], tt.key)
			if got, err := Curve25519Public(f); err == nil {
				t.Errorf("accepted, gave %x", got)
			}
		})
	}
}

func TestGenerateKeyPair(t *testing.T) {
	seed := bytes.Repeat([]byte{7}, 32)
	kp, err := GenerateKeyPair(bytes.NewReader(seed))
	if err != nil {
		t.Fatal(err)
	}
	want, _ := KeyPairFromSeed(seed)
	if kp.ID != want.ID {
		t.Errorf("GenerateKeyPair did not use the reader's 32 bytes")
	}
	if _, err := GenerateKeyPair(bytes.NewReader(seed[:10])); err == nil {
		t.Error("short reader accepted")
	}
	a, err := GenerateKeyPair(nil)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := GenerateKeyPair(nil)
	if a.ID == b.ID {
		t.Error("two random key pairs are equal")
	}
	if _, err := KeyPairFromSeed(seed[:31]); err == nil {
		t.Error("31-byte seed accepted")
	}
	if s := a.String() + " " + a.GoString(); strings.Contains(s, base64.StdEncoding.EncodeToString(a.Private)) {
		t.Error("String/GoString print the private key")
	}
}

// jsSecretFile is the file ssb-keys 8.5.0 writes for key vector 3 (alice).
const jsSecretFile = `# WARNING: Never show this to anyone.
# WARNING: Never edit it or use it on multiple devices at once.
#
# This is your SECRET, it gives you magical powers. With your secret you can
# sign your messages so that your friends can verify that the messages came
# from you. If anyone learns your secret, they can use it to impersonate you.
#
# If you use this secret on more than one device you will create a fork and
# your friends will stop replicating your content.
#
{
  "curve": "ed25519",
  "public": "i1Igwk1jSjhTBpTJJf/qwxQQK5EsWckG3EsrQYvRM1I=.ed25519",
  "private": "c3NiLWdvLXZlY3RvcnMgYWxpY2UAAAAAAAAAAAAAAACLUiDCTWNKOFMGlMkl/+rDFBArkSxZyQbcSytBi9EzUg==.ed25519",
  "id": "@i1Igwk1jSjhTBpTJJf/qwxQQK5EsWckG3EsrQYvRM1I=.ed25519"
}
#
# The only part of this file that's safe to share is your public name:
#
#   @i1Igwk1jSjhTBpTJJf/qwxQQK5EsWckG3EsrQYvRM1I=.ed25519`

func TestSecretFormat(t *testing.T) {
	v := loadKeyVectors(t)[3]
	seed, _ := hex.DecodeString(v.SeedHex)
	kp, _ := KeyPairFromSeed(seed)
	if got := string(FormatSecret(kp)); got != jsSecretFile {
		t.Errorf("FormatSecret differs from ssb-keys:\n%s", got)
	}
}

func TestParseSecret(t *testing.T) {
	alice := "@i1Igwk1jSjhTBpTJJf/qwxQQK5EsWckG3EsrQYvRM1I=.ed25519"
	v0 := loadKeyVectors(t)[0]
	tests := []struct {
		name    string
		in      string
		id      string // want, "" = error
		errText string // substring of the error
	}{
		{"ssb-keys file", jsSecretFile, alice, ""},
		{"CRLF line ends", strings.ReplaceAll(jsSecretFile, "\n", "\r\n"), alice, ""},
		{"comments inside and tabs", strings.Replace(jsSecretFile, `  "id"`, "\t# a note\n\t\"id\"", 1), alice, ""},
		{"compact JSON, no comments", `{"curve":"ed25519","private":"` + strings.Split(strings.Split(jsSecretFile, `"private": "`)[1], `"`)[0] + `"}`, alice, ""},
		{"id without sigil is replaced", strings.Replace(jsSecretFile, `"id": "@`, `"id": "`, 1), alice, ""},
		{"no curve: taken from the public tag", strings.Replace(jsSecretFile, `"curve": "ed25519",`, "", 1), alice, ""},
		{"legacy: only the private key", "# comment\n" + v0.Private + "\n# end", v0.ID, ""},
		{"garbage", "hello world", "", "not JSON"},
		{"empty", "", "", "not JSON"},
		{"only comments", "# x\n# y\n", "", "not JSON"},
		{"JSON array", "[1,2]", "", "not JSON"},
		{"JSON null", "null", "", "not JSON"},
		{"wrong curve", strings.ReplaceAll(jsSecretFile, "ed25519", "k256"), "", "curve"},
		{"private key not a string", `{"curve":"ed25519","private":5}`, "", "not a string"},
		{"no private key", `{"curve":"ed25519","public":"x"}`, "", "no private key"},
		{"private key truncated", strings.Replace(jsSecretFile, "Bi9EzUg==", "Bi9E", 1), "", "private key"},
		{"private/public halves disagree", strings.Replace(jsSecretFile, "iDCTWNKOFMGlMkl", "iDCTWNKOFMGlMkm", 1), "", "does not match its public half"},
		{"public field of another key", strings.Replace(jsSecretFile, `"public": "i1Igwk1jSjhTBpTJJf/qwxQQK5EsWckG3EsrQYvRM1I=`, `"public": "`+strings.TrimSuffix(v0.Public, ".ed25519"), 1), "", "public key"},
		{"id of another key", strings.Replace(jsSecretFile, `"id": "@i1Igwk1jSjhTBpTJJf/qwxQQK5EsWckG3EsrQYvRM1I=`, `"id": "`+strings.TrimSuffix(v0.ID, ".ed25519"), 1), "", "does not match"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			kp, err := ParseSecret([]byte(tt.in))
			if tt.id == "" {
				if err == nil {
					t.Fatalf("accepted as %s", kp.ID)
				}
				if !errors.Is(err, ErrInvalidSecret) {
					t.Errorf("error %v does not wrap ErrInvalidSecret", err)
				}
				if !strings.Contains(err.Error(), tt.errText) {
					t.Errorf("error %q does not say %q", err, tt.errText)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if kp.ID.String() != tt.id {
				t.Errorf("id = %s, want %s", kp.ID, tt.id)
			}
			if !ed25519.Verify(kp.ID.PublicKey(), []byte("m"), kp.Sign([]byte("m"))) {
				t.Error("parsed key cannot sign")
			}
		})
	}
}

func TestWriteSecret(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "secret")
	kp, err := GenerateKeyPair(nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := WriteSecret(path, kp); err != nil {
		t.Fatal(err)
	}
	st, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if mode := st.Mode().Perm(); mode != 0o600 {
		t.Errorf("mode %o, want 600", mode)
	}
	back, err := ReadSecret(path)
	if err != nil {
		t.Fatal(err)
	}
	if back.ID != kp.ID || !bytes.Equal(back.Private, kp.Private) {
		t.Error("read back another key")
	}

	other, _ := GenerateKeyPair(nil)
	err = WriteSecret(path, other)
	if !errors.Is(err, fs.ErrExist) {
		t.Errorf("overwrite: err = %v, want fs.ErrExist", err)
	}
	if again, err := ReadSecret(path); err != nil || again.ID != kp.ID {
		t.Errorf("file changed after refused overwrite: %v", err)
	}
	if err := WriteSecret(filepath.Join(dir, "x"), KeyPair{ID: kp.ID}); err == nil {
		t.Error("key pair without private key written")
	}
	if _, err := os.Stat(filepath.Join(dir, "x")); !errors.Is(err, fs.ErrNotExist) {
		t.Error("a failed write left a file")
	}
	if _, err := ReadSecret(filepath.Join(dir, "missing")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("missing file: err = %v, want fs.ErrNotExist", err)
	}
	if err := os.WriteFile(filepath.Join(dir, "bad"), []byte("{"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := ReadSecret(filepath.Join(dir, "bad")); !errors.Is(err, ErrInvalidSecret) || !strings.Contains(err.Error(), filepath.Join(dir, "bad")) {
		t.Errorf("bad file: err = %v, want ErrInvalidSecret naming the path", err)
	}
}

func TestLoadOrCreateSecret(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "repo", ".ssb")
	path := filepath.Join(dir, "secret")
	kp, created, err := LoadOrCreateSecret(path)
	if err != nil {
		t.Fatal(err)
	}
	if !created {
		t.Error("created = false for a new file")
	}
	st, err := os.Stat(dir)
	if err != nil {
		t.Fatal(err)
	}
	if mode := st.Mode().Perm(); mode != 0o700 {
		t.Errorf("directory mode %o, want 700", mode)
	}
	kp2, created, err := LoadOrCreateSecret(path)
	if err != nil {
		t.Fatal(err)
	}
	if created || kp2.ID != kp.ID {
		t.Errorf("second call: created=%v id=%s, want the first identity %s", created, kp2.ID, kp.ID)
	}
	if err := os.WriteFile(path, []byte("garbage"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, _, err := LoadOrCreateSecret(path); !errors.Is(err, ErrInvalidSecret) {
		t.Errorf("corrupt secret: err = %v, want ErrInvalidSecret (and no new identity)", err)
	}
}
