package classic

import (
	"crypto/sha256"
)

// AppendCompact appends JSON.stringify(v) (no whitespace) to b.
func AppendCompact(b []byte, v Value) []byte {
	switch v.kind {
	case KindNull:
		return append(b, "null"...)
	case KindBool:
		if v.b {
			return append(b, "true"...)
		}
		return append(b, "false"...)
	case KindNumber:
		return formatNumber(b, v.n)
	case KindString:
		return appendQuoted(b, v.s)
	case KindArray:
		b = append(b, '[')
		for i := range v.items {
			if i > 0 {
				b = append(b, ',')
			}
			b = AppendCompact(b, v.items[i].Value)
		}
		return append(b, ']')
	default:
		b = append(b, '{')
		for i := range v.items {
			if i > 0 {
				b = append(b, ',')
			}
			b = appendQuoted(b, v.items[i].Key)
			b = append(b, ':')
			b = AppendCompact(b, v.items[i].Value)
		}
		return append(b, '}')
	}
}

// AppendCanonical appends JSON.stringify(v, null, 2) to b: the canonical form
// that classic SSB signs and hashes.
func AppendCanonical(b []byte, v Value) []byte {
	return appendIndent(b, v, 0)
}

// Compact returns JSON.stringify(v).
func (v Value) Compact() []byte { return AppendCompact(nil, v) }

// Canonical returns JSON.stringify(v, null, 2).
func (v Value) Canonical() []byte { return AppendCanonical(nil, v) }

func appendNewline(b []byte, depth int) []byte {
	b = append(b, '\n')
	for i := 0; i < depth; i++ {
		b = append(b, ' ', ' ')
	}
	return b
}

func appendIndent(b []byte, v Value, depth int) []byte {
	switch v.kind {
	case KindArray:
		if len(v.items) == 0 {
			return append(b, '[', ']')
		}
		b = append(b, '[')
		for i := range v.items {
			if i > 0 {
				b = append(b, ',')
			}
			b = appendNewline(b, depth+1)
			b = appendIndent(b, v.items[i].Value, depth+1)
		}
		b = appendNewline(b, depth)
		return append(b, ']')
	case KindObject:
		if len(v.items) == 0 {
			return append(b, '{', '}')
		}
		b = append(b, '{')
		for i := range v.items {
			if i > 0 {
				b = append(b, ',')
			}
			b = appendNewline(b, depth+1)
			b = appendQuoted(b, v.items[i].Key)
			b = append(b, ':', ' ')
			b = appendIndent(b, v.items[i].Value, depth+1)
		}
		b = appendNewline(b, depth)
		return append(b, '}')
	default:
		return AppendCompact(b, v)
	}
}

// safeASCII[c] is true for ASCII bytes written literally inside a JSON string.
var safeASCII = func() (t [128]bool) {
	for c := 0x20; c < 0x80; c++ {
		t[c] = c != '"' && c != '\\'
	}
	return t
}()

const hexDigits = "0123456789abcdef"

// appendQuoted appends the WTF-8 string s quoted like ES QuoteJSONString.
func appendQuoted(b []byte, s string) []byte {
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); {
		if i+8 <= len(s) && plain8s(s, i) {
			i += 8
			continue
		}
		c := s[i]
		if c < 0x80 {
			if safeASCII[c] {
				i++
				continue
			}
			b = append(b, s[start:i]...)
			switch c {
			case '"':
				b = append(b, '\\', '"')
			case '\\':
				b = append(b, '\\', '\\')
			case '\b':
				b = append(b, '\\', 'b')
			case '\f':
				b = append(b, '\\', 'f')
			case '\n':
				b = append(b, '\\', 'n')
			case '\r':
				b = append(b, '\\', 'r')
			case '\t':
				b = append(b, '\\', 't')
			default:
				b = append(b, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xF])
			}
			i++
			start = i
			continue
		}
		// A lone surrogate is stored as ED A0..BF xx; escape it.
		if c == 0xED && i+2 < len(s) && s[i+1] >= 0xA0 {
			b = append(b, s[start:i]...)
			r := 0xD000 | rune(s[i+1]&0x3F)<<6 | rune(s[i+2]&0x3F)
			b = append(b, '\\', 'u', hexDigits[r>>12], hexDigits[(r>>8)&0xF], hexDigits[(r>>4)&0xF], hexDigits[r&0xF])
			i += 3
			start = i
			continue
		}
		i++
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}

// UTF16Len returns the number of UTF-16 code units of UTF-8 text b (what
// JavaScript's .length reports for the decoded string).
func UTF16Len(b []byte) int {
	n := 0
	for _, c := range b {
		// Count every byte that starts a code point; 4-byte sequences are
		// two UTF-16 units.
		if c&0xC0 != 0x80 {
			n++
			if c >= 0xF0 {
				n++
			}
		}
	}
	return n
}

// Latin1 returns the V8 "binary"/latin1 encoding of UTF-8 (or WTF-8) text b: the low
// byte of each UTF-16 code unit (Buffer.from(str, 'binary')). If b is ASCII
// it is returned unchanged.
func Latin1(b []byte) []byte {
	i := 0
	for i < len(b) && b[i] < 0x80 {
		i++
	}
	if i == len(b) {
		return b
	}
	out := make([]byte, i, len(b))
	copy(out, b[:i])
	return appendLatin1(out, b[i:])
}

func appendLatin1(out, b []byte) []byte {
	for i := 0; i < len(b); {
		c := b[i]
		if c < 0x80 {
			out = append(out, c)
			i++
			continue
		}
		r, size, ok := decodeBytes(b, i, true)
		if !ok {
			r = 0xFFFD
		}
		i += size
		if r >= 0x10000 {
			r -= 0x10000
			out = append(out, byte(0xD800+(r>>10)), byte(0xDC00+(r&0x3FF)))
			continue
		}
		out = append(out, byte(r))
	}
	return out
}

// HashLatin1 returns sha256 over the latin1 bytes of UTF-8 text b: the
// ssb-keys hash of a string, used for message ids.
func HashLatin1(b []byte) [32]byte {
	return sha256.Sum256(Latin1(b))
}
