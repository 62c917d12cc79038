package feeds

import (
	"net/url"
	"strings"
	"unicode/utf8"
)

// Link is a reference with an optional query, as ssb-ref's parseLink splits
// "%...=.sha256?unbox=KEY".
type Link struct {
	// Ref is the part before "?": sigil, 43 base64 characters, "=.",
	// and a suffix of letters, digits and "_" (not checked further).
	Ref string
	// Query holds the parsed query (Node querystring rules), nil when absent.
	Query url.Values
}

// Unbox returns the "unbox" query value (a box1 message key), if present.
// As in ssb-ref, the "+" characters that query decoding turned into spaces
// are restored.
func (l Link) Unbox() (string, bool) {
	v, ok := l.Query["unbox"]
	if !ok || len(v) == 0 {
		return "", false
	}
	return v[0], true
}

// ParseLink splits a link into reference and query the way ssb-ref's
// parseLink does: /^([@%&][A-Za-z0-9/+]{43}=\.[\w\d]+)(\?(.+))?$/. The
// reference is not validated beyond that shape (".foo" suffixes pass).
func ParseLink(s string) (Link, bool) {
	n := sigilRefLen(s, 0)
	if n == 0 {
		return Link{}, false
	}
	l := Link{Ref: s[:n]}
	rest := s[n:]
	if rest == "" {
		return l, true
	}
	q, ok := strings.CutPrefix(rest, "?")
	if !ok || q == "" || strings.ContainsFunc(q, isJSLineTerminator) {
		return Link{}, false
	}
	l.Query = parseNodeQuery(q)
	if v, ok := l.Query["unbox"]; ok && len(v) == 1 {
		v[0] = strings.ReplaceAll(v[0], " ", "+")
	}
	return l, true
}

// sigilRefLen returns the length of the match of
// [@%&][A-Za-z0-9/+]{43}=\.[A-Za-z0-9_]+ starting at s[i:], or 0.
func sigilRefLen(s string, i int) int {
	if len(s)-i < 47 {
		return 0
	}
	if c := s[i]; c != '@' && c != '%' && c != '&' {
		return 0
	}
	for j := i + 1; j < i+44; j++ {
		if !b64Char(s[j]) {
			return 0
		}
	}
	if s[i+44] != '=' || s[i+45] != '.' {
		return 0
	}
	j := i + 46
	for j < len(s) && isWordChar(s[j]) {
		j++
	}
	if j == i+46 {
		return 0
	}
	return j - i
}

func isWordChar(c byte) bool {
	return c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '_'
}

// Extract finds the first reference in text (a post, a URL, markdown) the
// way ssb-ref's extract does: the first sigil + 43 base64 characters + "=."
// + word characters; if there is none, it URL-decodes the text (keeping it
// as is when that fails), replaces "&amp;" with "&" and looks again.
func Extract(s string) (string, bool) {
	if r, ok := findRef(s); ok {
		return r, true
	}
	d, err := jsDecodeURIComponent(s)
	if err != nil {
		d = s
	}
	d = strings.ReplaceAll(d, "&amp;", "&")
	return findRef(d)
}

func findRef(s string) (string, bool) {
	for i := 0; i+47 <= len(s); i++ {
		if n := sigilRefLen(s, i); n > 0 {
			return s[i : i+n], true
		}
	}
	return "", false
}

type uriError struct{ s string }

func (e uriError) Error() string { return "malformed URI sequence in " + e.s }

// jsDecodeURIComponent is JS decodeURIComponent: every "%" starts a %XX
// escape, and each run of escapes must decode to valid UTF-8.
func jsDecodeURIComponent(s string) (string, error) {
	if !strings.Contains(s, "%") {
		return s, nil
	}
	var b strings.Builder
	for i := 0; i < len(s); {
		if s[i] != '%' {
			b.WriteByte(s[i])
			i++
			continue
		}
		var run []byte
		for i < len(s) && s[i] == '%' {
			if i+2 >= len(s) || !isHex(s[i+1]) || !isHex(s[i+2]) {
				return "", uriError{truncate(s)}
			}
			run = append(run, unhex(s[i+1])<<4|unhex(s[i+2]))
			i += 3
		}
		if !utf8.Valid(run) {
			return "", uriError{truncate(s)}
		}
		b.Write(run)
	}
	return b.String(), nil
}

func isHex(c byte) bool {
	return c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F'
}

func unhex(c byte) byte {
	switch {
	case c >= '0' && c <= '9':
		return c - '0'
	case c >= 'a' && c <= 'f':
		return c - 'a' + 10
	}
	return c - 'A' + 10
}

// parseNodeQuery is Node's querystring.parse with default options: "&"
// separates pairs (empty ones are skipped), the first "=" splits key and
// value, "+" means space, and percent-escapes are decoded leniently
// (invalid escapes stay as they are, invalid UTF-8 becomes U+FFFD).
// At most 1000 pairs are read, as in Node.
func parseNodeQuery(q string) url.Values {
	out := url.Values{}
	pairs := 0
	for _, pair := range strings.Split(q, "&") {
		if pair == "" {
			continue
		}
		if pairs == 1000 {
			break
		}
		pairs++
		k, v, _ := strings.Cut(pair, "=")
		k, v = nodeUnescape(k), nodeUnescape(v)
		out[k] = append(out[k], v)
	}
	return out
}

func nodeUnescape(s string) string {
	s = strings.ReplaceAll(s, "+", " ")
	if d, err := jsDecodeURIComponent(s); err == nil {
		return d
	}
	var b []byte
	for i := 0; i < len(s); i++ {
		if s[i] == '%' && i+2 < len(s) && isHex(s[i+1]) && isHex(s[i+2]) {
			b = append(b, unhex(s[i+1])<<4|unhex(s[i+2]))
			i += 2
			continue
		}
		b = append(b, s[i])
	}
	return strings.ToValidUTF8(string(b), "\uFFFD")
}
