package feeds

import (
	"strings"
	"unicode/utf8"
)

// This file reproduces the string predicates of the JavaScript package
// ssb-ref (version 2.16.0), quirks included, so that a Go node classifies
// text exactly like the JS stack. The strict parsers (ParseFeedRef and
// friends) are the ones to use for data the node acts on; these predicates
// answer "would JS call this a feed id?".

// b64Char reports whether c is in the standard base64 alphabet (no padding).
func b64Char(c byte) bool {
	return c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '+' || c == '/'
}

// isCanonical32 reports whether s is the canonical padded base64 text of
// 32 bytes: 42 alphabet characters, one of "AEIMQUYcgkosw048" (the unused
// low bits are zero), then "=" (is-canonical-base64 with length 32).
func isCanonical32(s string) bool {
	if len(s) != 44 || s[43] != '=' {
		return false
	}
	for i := 0; i < 42; i++ {
		if !b64Char(s[i]) {
			return false
		}
	}
	return strings.IndexByte("AEIMQUYcgkosw048", s[42]) >= 0
}

// isJSLineTerminator reports whether r is a line terminator for JS regular
// expressions ("." does not match these).
func isJSLineTerminator(r rune) bool {
	return r == '\n' || r == '\r' || r == '\u2028' || r == '\u2029'
}

// matchJSDotSuffix reports whether s is one JS regexp "." (any single UTF-16
// code unit except a line terminator) followed by one of the names.
// ssb-ref builds its suffixes as '.sha256' without escaping the dot, so
// "@<key>Xed25519" is a feed id to it (QUIRK reproduced here).
func matchJSDotSuffix(s string, names ...string) bool {
	if s == "" {
		return false
	}
	r, size := utf8.DecodeRuneInString(s)
	// A rune above U+FFFF is two UTF-16 code units: "." matches only one.
	if isJSLineTerminator(r) || r > 0xFFFF {
		return false
	}
	rest := s[size:]
	for _, n := range names {
		if rest == n {
			return true
		}
	}
	return false
}

// matchSigilID is the shape shared by ssb-ref's id regexes:
// sigil, canonical base64 of 32 bytes, then "." (any char) and a suffix name.
func matchSigilID(s string, sigil byte, names ...string) bool {
	if len(s) < 46 || s[0] != sigil {
		return false
	}
	return isCanonical32(s[1:45]) && matchJSDotSuffix(s[45:], names...)
}

// IsFeedID reports whether s is a feed id by ssb-ref's isFeedId (also
// exported there as isFeed): "@" + canonical base64 of 32 bytes + ".ed25519"
// or ".sha256". QUIRK: the legacy ".sha256" suffix is accepted, and the dot
// before the suffix may be any single character. Use ParseFeedRef for
// identities the node acts on (ed25519 only).
func IsFeedID(s string) bool { return matchSigilID(s, '@', "ed25519", "sha256") }

// IsMessageID reports whether s is a message id by ssb-ref's isMsgId
// (isMsg): "%" + canonical base64 of 32 bytes + ".sha256".
func IsMessageID(s string) bool { return matchSigilID(s, '%', "sha256") }

// IsBlobID reports whether s is a blob id by ssb-ref's isBlobId (isBlob):
// "&" + canonical base64 of 32 bytes + ".sha256".
func IsBlobID(s string) bool { return matchSigilID(s, '&', "sha256") }

// IsCloakedMessageID reports whether s is a box2 cloaked message id by
// ssb-ref's isCloakedMsgId: "%" + canonical base64 of 32 bytes + ".cloaked".
func IsCloakedMessageID(s string) bool { return matchSigilID(s, '%', "cloaked") }

// IsLink reports whether s is a feed, message or blob id once an optional
// query ("?..." from the first "?") is cut off (ssb-ref isLink).
func IsLink(s string) bool {
	if i := strings.IndexByte(s, '?'); i >= 0 {
		s = s[:i]
	}
	return IsFeedID(s) || IsMessageID(s) || IsBlobID(s)
}

// Kinds returned by Classify, spelled as ssb-ref's type() returns them.
const (
	KindFeed    = "feed"
	KindMessage = "msg"
	KindBlob    = "blob"
	KindAddress = "address"
	KindInvite  = "invite"
)

// Classify returns what ssb-ref's type() calls s: KindFeed, KindMessage,
// KindBlob, KindAddress or KindInvite, tested in that order; ok is false
// when s is none of them.
func Classify(s string) (kind string, ok bool) {
	switch {
	case strings.HasPrefix(s, "@") && IsFeedID(s):
		return KindFeed, true
	case strings.HasPrefix(s, "%") && IsMessageID(s):
		return KindMessage, true
	case strings.HasPrefix(s, "&") && IsBlobID(s):
		return KindBlob, true
	case IsAddress(s):
		return KindAddress, true
	case IsInvite(s):
		return KindInvite, true
	}
	return "", false
}
