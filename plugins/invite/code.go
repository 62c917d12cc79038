package invite

import (
	"encoding/base64"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/cask-ssb/cask/feeds"
)

// Code is a legacy pub invite (protocol.md §7.4): the pub's address and a
// 32-byte seed whose ed25519 key pair is the invite's identity.
type Code struct {
	Addr feeds.Address
	Seed []byte
}

// ErrNotInvite is wrapped by ParseCode for text that is no invite code.
var ErrNotInvite = errors.New("not a pub invite code (want HOST:PORT:@KEY.ed25519~SEED or net:HOST:PORT~shs:KEY:SEED)")

// ParseCode reads the two forms ssb-invite accepts:
//
//	HOST:PORT:@KEY.ed25519~SEED     (what invite.create prints)
//	net:HOST:PORT~shs:KEY:SEED      (the multiserver form)
//
// Surrounding white space and double quotes, and a "#redirect" suffix,
// are removed first, as JS does. Only TCP (net) pubs are supported.
func ParseCode(s string) (Code, error) {
	s = strings.TrimSpace(s)
	if len(s) >= 2 && s[0] == '"' && s[len(s)-1] == '"' {
		s = s[1 : len(s)-1]
	}
	if i := strings.IndexByte(s, '#'); i >= 0 {
		s = s[:i]
	}
	if s == "" {
		return Code{}, ErrNotInvite
	}
	var addr, seed string
	if strings.Contains(s, "~shs:") {
		// net:HOST:PORT~shs:KEY:SEED; the seed is the last ":" field.
		i := strings.LastIndexByte(s, ':')
		if i < 0 || !strings.Contains(s[:i], "~shs:") || strings.HasSuffix(s[:i], "~shs") {
			return Code{}, fmt.Errorf("invite %q: %w", short(s), ErrNotInvite)
		}
		addr, seed = s[:i], s[i+1:]
	} else {
		var ok bool
		addr, seed, ok = strings.Cut(s, "~")
		if !ok || strings.Contains(seed, "~") {
			return Code{}, fmt.Errorf("invite %q: %w", short(s), ErrNotInvite)
		}
	}
	a, err := feeds.ParseAddress(addr)
	if err != nil {
		return Code{}, fmt.Errorf("invite %q: %w: %w", short(s), ErrNotInvite, err)
	}
	if a.Transport != "" && a.Transport != feeds.TransportNet {
		return Code{}, fmt.Errorf("invite %q: only net: (TCP) pubs are supported, not %s", short(s), a.Transport)
	}
	a.Transport = feeds.TransportNet
	raw, err := base64.StdEncoding.Strict().DecodeString(seed)
	if err != nil || len(raw) != 32 {
		return Code{}, fmt.Errorf("invite %q: the seed must be 32 bytes of base64: %w", short(s), ErrNotInvite)
	}
	return Code{Addr: a, Seed: raw}, nil
}

// String is the form ssb-invite's invite.create prints:
// HOST:PORT:@KEY.ed25519~SEED.
func (c Code) String() string {
	return c.Addr.Host + ":" + strconv.Itoa(c.Addr.Port) + ":" + c.Addr.Key.String() + "~" + base64.StdEncoding.EncodeToString(c.Seed)
}

// Multiserver is the multiserver form: net:HOST:PORT~shs:KEY:SEED.
func (c Code) Multiserver() string {
	return c.Addr.String() + ":" + base64.StdEncoding.EncodeToString(c.Seed)
}

// KeyPair is the invite's identity, derived from its seed.
func (c Code) KeyPair() (feeds.KeyPair, error) { return feeds.KeyPairFromSeed(c.Seed) }

func short(s string) string {
	if len(s) > 100 {
		return s[:100] + "…"
	}
	return s
}
