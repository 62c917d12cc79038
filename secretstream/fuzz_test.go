package secretstream

import (
	"bytes"
	"crypto/ed25519"
	"testing"
)

// fuzzSetup returns fixed keys and a valid transcript (msg1..msg4) for
// deterministic ephemeral keys, so the fuzzer starts from real messages.
func fuzzSetup(t testing.TB) (app AppKey, clientKey, serverKey ed25519.PrivateKey, clientEph, serverEph []byte, msgs [4][]byte) {
	t.Helper()
	app = MainNetAppKey()
	clientKey = ed25519.NewKeyFromSeed(bytes.Repeat([]byte{1}, 32))
	serverKey = ed25519.NewKeyFromSeed(bytes.Repeat([]byte{2}, 32))
	clientEph = bytes.Repeat([]byte{3}, 32)
	serverEph = bytes.Repeat([]byte{4}, 32)
	c, err := NewClientHandshake(app, clientKey, serverKey.Public().(ed25519.PublicKey), bytes.NewReader(clientEph))
	if err != nil {
		t.Fatal(err)
	}
	s, err := NewServerHandshake(app, serverKey, bytes.NewReader(serverEph))
	if err != nil {
		t.Fatal(err)
	}
	msgs[0] = c.Hello()
	if err := s.VerifyHello(msgs[0]); err != nil {
		t.Fatal(err)
	}
	msgs[1] = s.Challenge()
	if err := c.VerifyChallenge(msgs[1]); err != nil {
		t.Fatal(err)
	}
	if msgs[2], err = c.Authenticate(); err != nil {
		t.Fatal(err)
	}
	if err := s.VerifyAuth(msgs[2]); err != nil {
		t.Fatal(err)
	}
	if msgs[3], err = s.Accept(); err != nil {
		t.Fatal(err)
	}
	if err := c.VerifyAccept(msgs[3]); err != nil {
		t.Fatal(err)
	}
	return
}

// FuzzServerHandshake: the server reads msg1 and msg3 from arbitrary bytes.
func FuzzServerHandshake(f *testing.F) {
	app, _, serverKey, _, serverEph, msgs := fuzzSetup(f)
	f.Add(msgs[0], msgs[2])
	f.Add(msgs[0], []byte{})
	f.Add(make([]byte, 64), make([]byte, 112))
	f.Fuzz(func(t *testing.T, msg1, msg3 []byte) {
		s, err := NewServerHandshake(app, serverKey, bytes.NewReader(serverEph))
		if err != nil {
			t.Fatal(err)
		}
		if s.VerifyHello(msg1) != nil {
			return
		}
		_ = s.Challenge()
		if err := s.VerifyAuth(msg3); err != nil {
			if s.RemoteKey() != nil {
				t.Fatal("failed VerifyAuth left a remote key")
			}
			return
		}
		if _, err := s.Accept(); err != nil {
			t.Fatal(err)
		}
		if _, err := s.SessionKeys(); err != nil {
			t.Fatal(err)
		}
	})
}

// FuzzClientHandshake: the client reads msg2 and msg4 from arbitrary bytes.
func FuzzClientHandshake(f *testing.F) {
	app, clientKey, serverKey, clientEph, _, msgs := fuzzSetup(f)
	f.Add(msgs[1], msgs[3])
	f.Add(msgs[1], []byte{})
	f.Add(make([]byte, 64), make([]byte, 80))
	serverPub := serverKey.Public().(ed25519.PublicKey)
	f.Fuzz(func(t *testing.T, msg2, msg4 []byte) {
		c, err := NewClientHandshake(app, clientKey, serverPub, bytes.NewReader(clientEph))
		if err != nil {
			t.Fatal(err)
		}
		_ = c.Hello()
		if c.VerifyChallenge(msg2) != nil {
			return
		}
		if _, err := c.Authenticate(); err != nil {
			t.Fatal(err)
		}
		if err := c.VerifyAccept(msg4); err != nil {
			if _, kerr := c.SessionKeys(); kerr == nil {
				t.Fatal("session keys after failed VerifyAccept")
			}
			return
		}
		if _, err := c.SessionKeys(); err != nil {
			t.Fatal(err)
		}
	})
}
