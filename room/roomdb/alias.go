package roomdb

import (
	"crypto/ed25519"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"

	"github.com/cask-ssb/cask/feeds"
)

// MaxAliasLen is the longest alias (a DNS label).
const MaxAliasLen = 63

// ValidAlias checks an alias name: 1 to 63 characters of [a-z0-9] (a DNS
// label, as strict as go-ssb-room: no hyphens, no upper case).
func ValidAlias(name string) error {
	if name == "" {
		return errors.New("alias: empty name")
	}
	if len(name) > MaxAliasLen {
		return fmt.Errorf("alias: longer than %d characters", MaxAliasLen)
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		if (c < 'a' || c > 'z') && (c < '0' || c > '9') {
			return fmt.Errorf("alias %q: only a-z and 0-9 are allowed", name)
		}
	}
	return nil
}

// AliasPayload is what a user signs to register alias in room
// (protocol.md §8.7).
func AliasPayload(room, user feeds.FeedRef, alias string) []byte {
	return []byte("=room-alias-registration:" + room.String() + ":" + user.String() + ":" + alias)
}

// SignAlias returns the registration signature "<b64>.sig.ed25519".
func SignAlias(user feeds.KeyPair, room feeds.FeedRef, alias string) string {
	return base64.StdEncoding.EncodeToString(user.Sign(AliasPayload(room, user.ID, alias))) + ".sig.ed25519"
}

// VerifyAlias checks a registration signature made by user for alias in
// room. URL-safe base64 is accepted too, as ssb-room-client does.
func VerifyAlias(room, user feeds.FeedRef, alias, signature string) error {
	if err := ValidAlias(alias); err != nil {
		return err
	}
	b64, ok := strings.CutSuffix(signature, ".sig.ed25519")
	if !ok {
		return errors.New("alias signature: missing .sig.ed25519 suffix")
	}
	b64 = strings.NewReplacer("-", "+", "_", "/").Replace(b64)
	sig, err := base64.StdEncoding.DecodeString(b64)
	if err != nil || len(sig) != ed25519.SignatureSize {
		return errors.New("alias signature: not the base64 of 64 bytes")
	}
	if !ed25519.Verify(user.PublicKey(), AliasPayload(room, user, alias), sig) {
		return errors.New("alias signature: does not verify for this room, user and alias")
	}
	return nil
}
