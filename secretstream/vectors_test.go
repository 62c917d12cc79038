package secretstream

import (
	"bytes"
	"crypto/ed25519"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/crypto/nacl/secretbox"
)

const testdataDir = "../testdata"

// hexBytes decodes a JSON hex string; null gives nil.
type hexBytes []byte

func (h *hexBytes) UnmarshalJSON(b []byte) error {
	if string(b) == "null" {
		*h = nil
		return nil
	}
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return err
	}
	v, err := hex.DecodeString(s)
	if err != nil {
		return err
	}
	*h = v
	return nil
}

type shsPeer struct {
	KxPK      hexBytes `json:"kx_pk"`
	KxSK      hexBytes `json:"kx_sk"`
	PublicKey hexBytes `json:"publicKey"`
	SecretKey hexBytes `json:"secretKey"`
	AppMAC    hexBytes `json:"app_mac"`
	Hello     hexBytes `json:"hello"`
}

type shsState struct {
	AppKey     hexBytes         `json:"app_key"`
	Local      shsPeer          `json:"local"`
	Remote     shsPeer          `json:"remote"`
	Seed       *json.RawMessage `json:"seed"` // present (null) only in client states
	Random     hexBytes         `json:"random"`
	Secret     hexBytes         `json:"secret"`
	Shash      hexBytes         `json:"shash"`
	ABob       hexBytes         `json:"a_bob"`
	Secret2    hexBytes         `json:"secret2"`
	BAlice     hexBytes         `json:"b_alice"`
	Secret3    hexBytes         `json:"secret3"`
	EncryptKey hexBytes         `json:"encryptKey"`
	DecryptKey hexBytes         `json:"decryptKey"`

	isClient bool
}

type shsRecord struct {
	Name   string            `json:"name"`
	Args   []json.RawMessage `json:"args"`
	Result json.RawMessage   `json:"result"`
}

func loadSHSData(t testing.TB) []shsRecord {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(testdataDir, "shs", "data.json"))
	if err != nil {
		t.Fatalf("read vectors: %v", err)
	}
	var recs []shsRecord
	if err := json.Unmarshal(b, &recs); err != nil {
		t.Fatalf("parse vectors: %v", err)
	}
	return recs
}

func parseState(t *testing.T, raw json.RawMessage) *shsState {
	t.Helper()
	var s shsState
	if err := json.Unmarshal(raw, &s); err != nil {
		t.Fatalf("parse state: %v", err)
	}
	var m map[string]json.RawMessage
	if err := json.Unmarshal(raw, &m); err != nil {
		t.Fatalf("parse state: %v", err)
	}
	_, s.isClient = m["seed"]
	return &s
}

func eq(t *testing.T, what string, got, want []byte) {
	t.Helper()
	if want == nil {
		t.Fatalf("%s: vector has no value", what)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s:\n got %x\nwant %x", what, got, want)
	}
}

// newClient and newServer rebuild a state machine from a recorded state:
// same keys, same ephemeral secret.
func newClient(t *testing.T, s *shsState) *ClientHandshake {
	t.Helper()
	h, err := NewClientHandshake(AppKey(s.AppKey), ed25519.PrivateKey(s.Local.SecretKey), ed25519.PublicKey(s.Remote.PublicKey), bytes.NewReader(s.Local.KxSK))
	if err != nil {
		t.Fatalf("NewClientHandshake: %v", err)
	}
	return h
}

func newServer(t *testing.T, s *shsState) *ServerHandshake {
	t.Helper()
	h, err := NewServerHandshake(AppKey(s.AppKey), ed25519.PrivateKey(s.Local.SecretKey), bytes.NewReader(s.Local.KxSK))
	if err != nil {
		t.Fatalf("NewServerHandshake: %v", err)
	}
	return h
}

func concat(parts ...[]byte) []byte { return bytes.Join(parts, nil) }

// serverAfterHello replays the server up to its challenge with the
// recorded client hello.
func serverAfterHello(t *testing.T, s *shsState) *ServerHandshake {
	h := newServer(t, s)
	if err := h.VerifyHello(concat(s.Remote.AppMAC, s.Remote.KxPK)); err != nil {
		t.Fatalf("replay VerifyHello: %v", err)
	}
	return h
}

// clientAfterChallenge replays the client up to its authentication with
// the recorded server hello.
func clientAfterChallenge(t *testing.T, s *shsState) *ClientHandshake {
	h := newClient(t, s)
	if err := h.VerifyChallenge(concat(s.Remote.AppMAC, s.Remote.KxPK)); err != nil {
		t.Fatalf("replay VerifyChallenge: %v", err)
	}
	return h
}

// TestSHSDataJSON drives every record of shs/data.json (recorded from the JS
// reference implementation) through the matching step of our state machines.
func TestSHSDataJSON(t *testing.T) {
	recs := loadSHSData(t)
	if len(recs) != 159 {
		t.Fatalf("got %d records, want 159", len(recs))
	}
	rejects := map[int]bool{16: true, 22: true, 23: true, 27: true, 33: true, 34: true, 52: true}
	// K4 (secret3) by own ephemeral public key, for the "clean" records
	// whose state no longer has it.
	k4ByEph := map[string][]byte{}
	for _, r := range recs {
		var s shsState
		if json.Unmarshal(r.Args[0], &s) == nil && s.Secret3 != nil {
			k4ByEph[hex.EncodeToString(s.Local.KxPK)] = s.Secret3
		}
	}
	ran := map[string]int{}
	for i, r := range recs {
		t.Run(strings.Join([]string{r.Name, itoa(i)}, "/"), func(t *testing.T) {
			reject := string(r.Result) == "null" || string(r.Result) == "false"
			if reject != rejects[i] {
				t.Fatalf("record %d: reject=%v, README lists %v", i, reject, rejects[i])
			}
			ran[r.Name]++
			if r.Name == "toKeys" {
				checkToKeys(t, r)
				return
			}
			s := parseState(t, r.Args[0])
			var arg []byte
			if len(r.Args) > 1 {
				var hb hexBytes
				if err := json.Unmarshal(r.Args[1], &hb); err != nil {
					t.Fatalf("arg1: %v", err)
				}
				arg = hb
			}
			var res *shsState
			var packet []byte
			if !reject {
				var hb hexBytes
				if json.Unmarshal(r.Result, &hb) == nil {
					packet = hb
				} else {
					res = parseState(t, r.Result)
				}
			}
			switch r.Name {
			case "initialize":
				// The ephemeral secret is crypto_box_seed_keypair(random):
				// clamp(sha512(random)[0:32]).
				h := sha512.Sum512(s.Random)
				sk := h[:32]
				sk[0] &= 248
				sk[31] &= 127
				sk[31] |= 64
				eq(t, "kx_sk", sk, res.Local.KxSK)
				c, err := newCommon(AppKey(s.AppKey), ed25519.PrivateKey(s.Local.SecretKey), bytes.NewReader(sk))
				if err != nil {
					t.Fatal(err)
				}
				eq(t, "kx_pk", c.eph.public[:], res.Local.KxPK)
				eq(t, "app_mac", c.localMAC[:], res.Local.AppMAC)
				eq(t, "publicKey", c.localPublic, res.Local.PublicKey)
			case "createChallenge":
				if s.isClient {
					eq(t, "client hello (msg1)", newClient(t, s).Hello(), packet)
				} else {
					eq(t, "server hello (msg2)", serverAfterHello(t, s).Challenge(), packet)
				}
			case "verifyChallenge", "clientVerifyChallenge":
				var err error
				var c *common
				if s.isClient {
					h := newClient(t, s)
					err = h.VerifyChallenge(arg)
					c = &h.common
					if err == nil && r.Name == "clientVerifyChallenge" {
						eq(t, "a_bob", h.aB[:], res.ABob)
						eq(t, "secret2 (K3)", h.k3[:], res.Secret2)
						eq(t, "local.hello (sig_A||A)", concat(h.sigA[:], h.localPublic), res.Local.Hello)
					}
				} else {
					h := newServer(t, s)
					err = h.VerifyHello(arg)
					c = &h.common
				}
				if reject {
					if !errors.Is(err, ErrWrongAppKey) {
						t.Fatalf("hello accepted or wrong error: %v", err)
					}
					return
				}
				if err != nil {
					t.Fatalf("verify: %v", err)
				}
				eq(t, "remote.kx_pk", c.remoteEph[:], res.Remote.KxPK)
				eq(t, "remote.app_mac", c.remoteMAC[:], res.Remote.AppMAC)
				eq(t, "secret (ab)", c.ab[:], res.Secret)
				eq(t, "shash", c.abHash[:], res.Shash)
			case "clientCreateAuth":
				msg3, err := clientAfterChallenge(t, s).Authenticate()
				if err != nil {
					t.Fatal(err)
				}
				eq(t, "msg3", msg3, packet)
			case "serverVerifyAuth":
				h := serverAfterHello(t, s)
				err := h.VerifyAuth(arg)
				if reject {
					if !errors.Is(err, ErrClientAuthFailed) {
						t.Fatalf("auth accepted or wrong error: %v", err)
					}
					return
				}
				if err != nil {
					t.Fatalf("VerifyAuth: %v", err)
				}
				eq(t, "remote.publicKey", h.RemoteKey(), res.Remote.PublicKey)
				eq(t, "remote.hello", concat(h.sigA[:], h.remotePublic), res.Remote.Hello)
				eq(t, "a_bob", h.aB[:], res.ABob)
				eq(t, "secret2 (K3)", h.k3[:], res.Secret2)
				eq(t, "b_alice", h.Ab[:], res.BAlice)
				eq(t, "secret3 (K4)", h.k4[:], res.Secret3)
			case "serverCreateAccept":
				h := serverAfterHello(t, s)
				msg3 := secretbox.Seal(nil, s.Remote.Hello, &zeroNonce, (*[32]byte)(s.Secret2))
				if err := h.VerifyAuth(msg3); err != nil {
					t.Fatalf("replay VerifyAuth: %v", err)
				}
				msg4, err := h.Accept()
				if err != nil {
					t.Fatal(err)
				}
				eq(t, "msg4", msg4, packet)
			case "clientVerifyAccept":
				h := clientAfterChallenge(t, s)
				if err := h.VerifyAccept(arg); err != nil {
					t.Fatalf("VerifyAccept: %v", err)
				}
				eq(t, "b_alice", h.Ab[:], res.BAlice)
				eq(t, "secret3 (K4)", h.k4[:], res.Secret3)
			case "clean":
				k4 := k4ByEph[hex.EncodeToString(s.Local.KxPK)]
				if k4 == nil {
					t.Fatal("no K4 recorded for this handshake")
				}
				S := sha256.Sum256(k4)
				eq(t, "secret (S)", S[:], res.Secret)
				keys := deriveSessionKeys((*[32]byte)(k4), s.Local.PublicKey, s.Remote.PublicKey, (*[32]byte)(s.Local.AppMAC), (*[32]byte)(s.Remote.AppMAC))
				eq(t, "encryptKey", keys.EncryptKey[:], res.EncryptKey)
				eq(t, "decryptKey", keys.DecryptKey[:], res.DecryptKey)
				eq(t, "encrypt nonce = remote hmac", keys.EncryptNonce[:], s.Remote.AppMAC[:24])
			default:
				t.Fatalf("unknown step %q", r.Name)
			}
		})
	}
	want := map[string]int{"initialize": 34, "createChallenge": 31, "verifyChallenge": 30, "clientVerifyChallenge": 14,
		"clientCreateAuth": 12, "serverVerifyAuth": 12, "serverCreateAccept": 6, "clientVerifyAccept": 6, "toKeys": 2, "clean": 12}
	for k, v := range want {
		if ran[k] != v {
			t.Errorf("step %s: ran %d records, want %d", k, ran[k], v)
		}
	}
}

func itoa(i int) string {
	b, _ := json.Marshal(i)
	return string(b)
}

func checkToKeys(t *testing.T, r shsRecord) {
	var want struct {
		PublicKey hexBytes `json:"publicKey"`
		SecretKey hexBytes `json:"secretKey"`
	}
	if err := json.Unmarshal(r.Result, &want); err != nil {
		t.Fatal(err)
	}
	var seed hexBytes
	if json.Unmarshal(r.Args[0], &seed) != nil {
		// Already a key pair: the seed is the first half of the secret key.
		var kp struct {
			SecretKey hexBytes `json:"secretKey"`
		}
		if err := json.Unmarshal(r.Args[0], &kp); err != nil {
			t.Fatal(err)
		}
		seed = kp.SecretKey[:32]
	}
	priv := ed25519.NewKeyFromSeed(seed)
	eq(t, "secretKey", priv, want.SecretKey)
	eq(t, "publicKey", priv.Public().(ed25519.PublicKey), want.PublicKey)
}

// TestTxSecretHandshakeVector: msg1 from shs/test_vectors.json.
func TestTxSecretHandshakeVector(t *testing.T) {
	b, err := os.ReadFile(filepath.Join(testdataDir, "shs", "test_vectors.json"))
	if err != nil {
		t.Fatal(err)
	}
	var v map[string]map[string]string
	if err := json.Unmarshal(b, &v); err != nil {
		t.Fatal(err)
	}
	d := func(s string) []byte {
		out, err := base64.StdEncoding.DecodeString(strings.TrimSpace(s))
		if err != nil {
			t.Fatalf("b64 %q: %v", s, err)
		}
		return out
	}
	tv := v["test1"]
	clientKey := ed25519.NewKeyFromSeed(d(tv["client_signing_priv_key"]))
	serverKey := ed25519.NewKeyFromSeed(d(tv["server_signing_priv_key"]))
	h, err := NewClientHandshake(AppKey(d(tv["application_key"])), clientKey, serverKey.Public().(ed25519.PublicKey), bytes.NewReader(d(tv["client_ephemeral_priv_key"])))
	if err != nil {
		t.Fatal(err)
	}
	eq(t, "client ephemeral public", h.eph.public[:], d(tv["client_ephemeral_pub_key"]))
	eq(t, "client_challenge", h.Hello(), d(tv["client_challenge"]))
	s, err := NewServerHandshake(AppKey(d(tv["application_key"])), serverKey, bytes.NewReader(d(tv["server_ephemeral_priv_key"])))
	if err != nil {
		t.Fatal(err)
	}
	eq(t, "server ephemeral public", s.eph.public[:], d(tv["server_ephemeral_pub_key"]))
	if err := s.VerifyHello(h.Hello()); err != nil {
		t.Fatalf("server rejects the vector's client challenge: %v", err)
	}
}

func mustHex(t *testing.T, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(strings.ReplaceAll(s, " ", ""))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestWorkedVector runs protocol.md §3.5 end to end through both state
// machines.
func TestWorkedVector(t *testing.T) {
	N := mustHex(t, "291356d28154da68e8a9ee4fed71497c0a67d121a41b544d7a6157e76e0df5bc")
	clientKey := ed25519.NewKeyFromSeed(mustHex(t, "2bd806c97f0e00af1a1fc3328fa763a9269723c8db8fac4f93af71db186d6e90"))
	serverKey := ed25519.NewKeyFromSeed(mustHex(t, "81b637d8fcd2c6da6359e6963113a1170de795e4b725b84d1e0b4cfd9ec58ce9"))
	eq(t, "A", clientKey.Public().(ed25519.PublicKey), mustHex(t, "d5bf4a3fcce717b0388bcc2749ebc148ad9969b23f45ee1b605fd58778576ac4"))
	eq(t, "B", serverKey.Public().(ed25519.PublicKey), mustHex(t, "ecc1b58727f3f12b3194881a9ecb9de0b28ce7b207230d8e930fe1bce75e256c"))
	c, err := NewClientHandshake(AppKey(N), clientKey, serverKey.Public().(ed25519.PublicKey), bytes.NewReader(mustHex(t, "3886cd3e87ce98aa0e68da9ad04fb5b7b9089cc8a6705bc83cb507e69419a95b")))
	if err != nil {
		t.Fatal(err)
	}
	s, err := NewServerHandshake(AppKey(N), serverKey, bytes.NewReader(mustHex(t, "58be5dc9fd64fc4e476035c9870af05ee32c5f1de6e28ea708b267f9e6315b41")))
	if err != nil {
		t.Fatal(err)
	}
	msg1 := c.Hello()
	eq(t, "msg1", msg1, mustHex(t, "9e0986a9df0d04dc9884a58aa9f68cbd1690d0140a602d1ad4ba5599c4205596 0b6ea52868f0cbbac2deba8bb0fc1a1251d5aa80bc4fa85d8143571abc458752"))
	if err := s.VerifyHello(msg1); err != nil {
		t.Fatal(err)
	}
	msg2 := s.Challenge()
	eq(t, "msg2", msg2, mustHex(t, "a7efd4c608bf19b20ceccee3af33d2df9fdc6dec05f11a383259875f9cf2e995 7924d8b4cc7ddc4c5414cdafa1da6bbe1d6f5051644b8e5bec8feacde708b343"))
	if err := c.VerifyChallenge(msg2); err != nil {
		t.Fatal(err)
	}
	eq(t, "ab", c.ab[:], mustHex(t, "c5d0fb57f9d862ca955681591bbff5818e76ecc9af2d0727afdb30558af68424"))
	eq(t, "aB", c.aB[:], mustHex(t, "6e89ef577a9c55c43185a02a8731fd15e7db447bd9b799d555ae9faf8a085d15"))
	eq(t, "K3", c.k3[:], mustHex(t, "bd62a1d49b3ec32c854e5996b6fc123179f18fc31d3e94427c896e5f8ec12945"))
	msg3, err := c.Authenticate()
	if err != nil {
		t.Fatal(err)
	}
	eq(t, "msg3", msg3, mustHex(t, "ae275d3a4d2dcaf857e67b101b46d30c5970229afd4f0e109dd48313e2b79754 6e8654269461247e4a328ca91f69343a2ab4168dbb8cd10107131663ccb5b3d6 a33295fa6b9575eac28a42ea7e40764cd9e0c24a99da19b484dfbe3f2e5d8bf5 0aa5dc80238c54bd212dc91bce3be8f0"))
	if err := s.VerifyAuth(msg3); err != nil {
		t.Fatal(err)
	}
	eq(t, "server sees A", s.RemoteKey(), clientKey.Public().(ed25519.PublicKey))
	eq(t, "Ab", s.Ab[:], mustHex(t, "3d70ba38189103c44cf55fec41de0b87babc9f0cb757a286fcbb2a3e03b16e75"))
	eq(t, "K4", s.k4[:], mustHex(t, "586be0361a71ef5e8ad574dd686de72d2e74f1b548bcdec7390bc727001977e3"))
	msg4, err := s.Accept()
	if err != nil {
		t.Fatal(err)
	}
	eq(t, "msg4", msg4, mustHex(t, "e65dda80039b9a18f021663c387afc259bf41543f4daae6b1a9e80e499b83eb7 cd6af630647a472bc05351a4a98bab741664dd3082a183f3fc5c9ebaf735cd0c 58230a269518059ff7289fcf5c205928"))
	if err := c.VerifyAccept(msg4); err != nil {
		t.Fatal(err)
	}
	ck, err := c.SessionKeys()
	if err != nil {
		t.Fatal(err)
	}
	sk, err := s.SessionKeys()
	if err != nil {
		t.Fatal(err)
	}
	eq(t, "client enc key", ck.EncryptKey[:], mustHex(t, "4f7153c9c56be7e6ff516e421c229351aebd23422a21d32ae8f0131cc2814722"))
	eq(t, "client dec key", ck.DecryptKey[:], mustHex(t, "e8f22683b27dd0401d48579f12592473502f23ba862d40d4ddc1b4485899f178"))
	eq(t, "client enc nonce", ck.EncryptNonce[:], mustHex(t, "a7efd4c608bf19b20ceccee3af33d2df9fdc6dec05f11a38"))
	eq(t, "client dec nonce", ck.DecryptNonce[:], mustHex(t, "9e0986a9df0d04dc9884a58aa9f68cbd1690d0140a602d1a"))
	eq(t, "server enc key", sk.EncryptKey[:], ck.DecryptKey[:])
	eq(t, "server dec key", sk.DecryptKey[:], ck.EncryptKey[:])
	eq(t, "server enc nonce", sk.EncryptNonce[:], ck.DecryptNonce[:])
	eq(t, "server dec nonce", sk.DecryptNonce[:], ck.EncryptNonce[:])
}
