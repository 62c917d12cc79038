// Package classic implements the classic ("legacy") Secure Scuttlebutt message
// format bit-exactly as the JavaScript stack does: a JSON value model that
// behaves like V8's JSON.parse and JSON.stringify, canonical signing bytes,
// message ids, every ssb-validate rule, message creation, and a parallel
// batch verification pipeline.
//
// It must never accept a message that ssb-validate@4.1.4 rejects for a reason
// it can see (shape, order, size, signature, chain), never produce a message
// that JavaScript peers would reject, and never touch the network or a store.
package classic

import (
	"fmt"
	"math"
	"sort"
	"strconv"
	"unicode/utf8"
)

// Kind is the JSON type of a Value.
type Kind uint8

// The JSON kinds.
const (
	KindNull Kind = iota
	KindBool
	KindNumber
	KindString
	KindArray
	KindObject
)

func (k Kind) String() string {
	switch k {
	case KindNull:
		return "null"
	case KindBool:
		return "boolean"
	case KindNumber:
		return "number"
	case KindString:
		return "string"
	case KindArray:
		return "array"
	case KindObject:
		return "object"
	}
	return "invalid"
}

// Value is an immutable JSON value with JavaScript semantics:
// numbers are float64, strings are sequences of UTF-16 code units, and
// objects keep V8's own-property order (array-index keys ascending first,
// then the other keys in first-insertion order, without duplicates).
//
// Strings are stored as WTF-8: valid UTF-8, except that unpaired UTF-16
// surrogates are stored as their 3-byte generalised UTF-8 form
// (ED A0 80 … ED BF BF). This keeps lone surrogates from JSON escapes such
// as "\ud83d" intact through a decode/encode round trip.
//
// The zero Value is null.
type Value struct {
	kind  Kind
	b     bool
	n     float64
	s     string
	items []Member // array elements (Key empty) or object members
}

// Member is one property of an object (or one element of an array, with an
// empty Key).
type Member struct {
	Key   string // WTF-8, see Value
	Value Value
}

// Null returns the JSON null value.
func Null() Value { return Value{} }

// Bool returns a JSON boolean.
func Bool(b bool) Value { return Value{kind: KindBool, b: b} }

// Number returns a JSON number. NaN and ±Inf are kept (JSON.stringify
// writes them as null).
func Number(f float64) Value { return Value{kind: KindNumber, n: f} }

// String returns a JSON string. s is UTF-8 or WTF-8; invalid UTF-8 bytes are
// replaced by U+FFFD the way Node decodes a Buffer.
func String(s string) Value { return Value{kind: KindString, s: sanitizeWTF8(s)} }

// Array returns a JSON array of the given elements.
func Array(elems ...Value) Value {
	items := make([]Member, len(elems))
	for i, e := range elems {
		items[i].Value = e
	}
	return Value{kind: KindArray, items: items}
}

// Object returns a JSON object built by assigning the members in order, as a
// JavaScript object literal or JSON.parse would: a repeated key keeps its
// first position and takes the last value; array-index keys are moved to the
// front in ascending numeric order.
func Object(members ...Member) Value {
	items := make([]Member, 0, len(members))
	for _, m := range members {
		m.Key = sanitizeWTF8(m.Key)
		items = appendMember(items, m, nil)
	}
	return Value{kind: KindObject, items: v8Order(items)}
}

// Kind returns the JSON type of v.
func (v Value) Kind() Kind { return v.kind }

// IsNull reports whether v is null.
func (v Value) IsNull() bool { return v.kind == KindNull }

// Bool returns the boolean value (false if v is not a boolean).
func (v Value) Bool() bool { return v.b }

// Float returns the number value (0 if v is not a number).
func (v Value) Float() float64 { return v.n }

// Str returns the string value in WTF-8 (empty if v is not a string).
func (v Value) Str() string { return v.s }

// Len returns the number of elements or members of an array or object.
func (v Value) Len() int { return len(v.items) }

// Index returns element i of an array (or the value of member i of an object).
func (v Value) Index(i int) Value { return v.items[i].Value }

// Members returns the members of an object in V8 order (or the elements of an
// array with empty keys). The slice must not be modified.
func (v Value) Members() []Member { return v.items }

// Get returns the value of key in an object and whether it exists.
func (v Value) Get(key string) (Value, bool) {
	if v.kind != KindObject {
		return Value{}, false
	}
	for i := range v.items {
		if v.items[i].Key == key {
			return v.items[i].Value, true
		}
	}
	return Value{}, false
}

// UTF16Len returns the length of a string value in UTF-16 code units, like
// JavaScript's String.prototype.length.
func (v Value) UTF16Len() int { return utf16Len(v.s) }

// Equal reports whether a and b are the same JSON value (same kinds, same
// member order). Numbers compare with ==, so NaN is never equal.
func (v Value) Equal(o Value) bool {
	if v.kind != o.kind {
		return false
	}
	switch v.kind {
	case KindNull:
		return true
	case KindBool:
		return v.b == o.b
	case KindNumber:
		return v.n == o.n
	case KindString:
		return v.s == o.s
	}
	if len(v.items) != len(o.items) {
		return false
	}
	for i := range v.items {
		if v.items[i].Key != o.items[i].Key || !v.items[i].Value.Equal(o.items[i].Value) {
			return false
		}
	}
	return true
}

// FromGo converts a Go value to a Value. Accepted: nil, bool, string,
// all integer and float types, json.Number-like fmt.Stringer is not accepted;
// []any, []Value, []string, map[string]any (non-index keys sorted, since Go
// maps have no order), []Member (ordered object), Value, and []byte or
// RawJSON holding JSON text (decoded with Decode, keeping its key order).
func FromGo(x any) (Value, error) {
	return fromGo(x, 0)
}

// RawJSON is JSON text to be decoded with V8 semantics by FromGo and Create.
type RawJSON []byte

func fromGo(x any, depth int) (Value, error) {
	if depth > MaxDepth {
		return Value{}, fmt.Errorf("classic: value nested deeper than %d", MaxDepth)
	}
	switch t := x.(type) {
	case nil:
		return Null(), nil
	case Value:
		return t, nil
	case *Value:
		if t == nil {
			return Null(), nil
		}
		return *t, nil
	case bool:
		return Bool(t), nil
	case string:
		return String(t), nil
	case float64:
		return Number(t), nil
	case float32:
		return Number(float64(t)), nil
	case int:
		return Number(float64(t)), nil
	case int8:
		return Number(float64(t)), nil
	case int16:
		return Number(float64(t)), nil
	case int32:
		return Number(float64(t)), nil
	case int64:
		return Number(float64(t)), nil
	case uint:
		return Number(float64(t)), nil
	case uint8:
		return Number(float64(t)), nil
	case uint16:
		return Number(float64(t)), nil
	case uint32:
		return Number(float64(t)), nil
	case uint64:
		return Number(float64(t)), nil
	case RawJSON:
		return Decode(t)
	case []byte:
		return Decode(t)
	case []Value:
		return Array(t...), nil
	case []string:
		elems := make([]Value, len(t))
		for i, s := range t {
			elems[i] = String(s)
		}
		return Array(elems...), nil
	case []any:
		elems := make([]Value, len(t))
		for i, e := range t {
			v, err := fromGo(e, depth+1)
			if err != nil {
				return Value{}, fmt.Errorf("index %d: %w", i, err)
			}
			elems[i] = v
		}
		return Array(elems...), nil
	case []Member:
		return Object(t...), nil
	case map[string]any:
		keys := make([]string, 0, len(t))
		for k := range t {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		members := make([]Member, len(keys))
		for i, k := range keys {
			v, err := fromGo(t[k], depth+1)
			if err != nil {
				return Value{}, fmt.Errorf("key %q: %w", k, err)
			}
			members[i] = Member{Key: k, Value: v}
		}
		return Object(members...), nil
	case map[string]string:
		keys := make([]string, 0, len(t))
		for k := range t {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		members := make([]Member, len(keys))
		for i, k := range keys {
			members[i] = Member{Key: k, Value: String(t[k])}
		}
		return Object(members...), nil
	}
	return Value{}, fmt.Errorf("classic: cannot convert %T to a JSON value", x)
}

// appendMember adds m to an object's member list with JavaScript assignment
// semantics: an existing key is overwritten in place. index, if non-nil, maps
// keys to positions for large objects and is kept up to date.
func appendMember(items []Member, m Member, index map[string]int) []Member {
	if index != nil {
		if i, ok := index[m.Key]; ok {
			items[i].Value = m.Value
			return items
		}
		index[m.Key] = len(items)
		return append(items, m)
	}
	for i := range items {
		if items[i].Key == m.Key {
			items[i].Value = m.Value
			return items
		}
	}
	return append(items, m)
}

// arrayIndex reports whether key is a V8 array index: the canonical decimal
// form of an integer in 0 … 2^32-2. It returns the integer.
func arrayIndex(key string) (uint32, bool) {
	n := len(key)
	if n == 0 || n > 10 {
		return 0, false
	}
	if key[0] == '0' {
		return 0, n == 1
	}
	var x uint64
	for i := 0; i < n; i++ {
		c := key[i]
		if c < '0' || c > '9' {
			return 0, false
		}
		x = x*10 + uint64(c-'0')
	}
	if x > math.MaxUint32-1 {
		return 0, false
	}
	return uint32(x), true
}

// v8Order moves array-index keys to the front in ascending order, keeping the
// other keys in insertion order. It reorders items in place and returns it.
func v8Order(items []Member) []Member {
	nIdx := 0
	sorted := true
	var last uint32
	for i := range items {
		if n, ok := arrayIndex(items[i].Key); ok {
			if nIdx != i || (nIdx > 0 && n < last) {
				sorted = false
			}
			last = n
			nIdx++
		}
	}
	if nIdx == 0 || sorted {
		return items
	}
	sort.SliceStable(items, func(a, b int) bool {
		na, oka := arrayIndex(items[a].Key)
		nb, okb := arrayIndex(items[b].Key)
		if oka && okb {
			return na < nb
		}
		return oka && !okb
	})
	return items
}

// utf16Len counts UTF-16 code units of a WTF-8 string.
func utf16Len(s string) int {
	n := 0
	for i := 0; i < len(s); {
		c := s[i]
		switch {
		case c < 0x80:
			i++
		case c < 0xE0:
			i += 2
		case c < 0xF0:
			i += 3
		default:
			i += 4
			n++
		}
		n++
	}
	return n
}

// sanitizeWTF8 returns s if it is valid WTF-8, else a copy with each invalid
// sequence replaced by U+FFFD (WHATWG "maximal subpart" rule, as Node's
// Buffer.toString does).
func sanitizeWTF8(s string) string {
	for i := 0; i < len(s); {
		if s[i] < 0x80 {
			i++
			continue
		}
		_, size, ok := decodeWTF8(s, i)
		if !ok {
			b := make([]byte, 0, len(s)+8)
			b = append(b, s[:i]...)
			return string(appendSanitized(b, s[i:]))
		}
		i += size
	}
	return s
}

func appendSanitized(b []byte, s string) []byte {
	for i := 0; i < len(s); {
		if s[i] < 0x80 {
			b = append(b, s[i])
			i++
			continue
		}
		_, size, ok := decodeWTF8(s, i)
		if ok {
			b = append(b, s[i:i+size]...)
		} else {
			b = utf8.AppendRune(b, utf8.RuneError)
		}
		i += size
	}
	return b
}

// decodeWTF8 decodes one non-ASCII sequence at s[i]. Surrogate code points
// (ED A0..BF xx) are accepted. If the sequence is invalid, ok is false and
// size is the length of the maximal subpart to replace with one U+FFFD.
func decodeWTF8(s string, i int) (r rune, size int, ok bool) {
	return decodeBytes(s, i, true)
}

// decodeUTF8Strict is decodeWTF8 for raw input bytes: surrogate encodings
// (ED A0..BF) are invalid UTF-8 and replaced like Node does.
func decodeUTF8Strict(s []byte, i int) (r rune, size int, ok bool) {
	return decodeBytes(s, i, false)
}

// decodeBytes decodes one non-ASCII UTF-8 (wtf=false) or WTF-8 (wtf=true)
// sequence at s[i]; see decodeWTF8.
func decodeBytes[T ~string | ~[]byte](s T, i int, wtf bool) (r rune, size int, ok bool) {
	c := s[i]
	var need int
	var lo, hi byte = 0x80, 0xBF
	switch {
	case c >= 0xC2 && c <= 0xDF:
		need = 1
		r = rune(c & 0x1F)
	case c >= 0xE0 && c <= 0xEF:
		need = 2
		r = rune(c & 0x0F)
		if c == 0xE0 {
			lo = 0xA0
		} else if c == 0xED && !wtf {
			hi = 0x9F
		}
	case c >= 0xF0 && c <= 0xF4:
		need = 3
		r = rune(c & 0x07)
		if c == 0xF0 {
			lo = 0x90
		} else if c == 0xF4 {
			hi = 0x8F
		}
	default:
		return utf8.RuneError, 1, false
	}
	for k := 1; k <= need; k++ {
		if i+k >= len(s) {
			return utf8.RuneError, k, false
		}
		b := s[i+k]
		if b < lo || b > hi {
			return utf8.RuneError, k, false
		}
		lo, hi = 0x80, 0xBF
		r = r<<6 | rune(b&0x3F)
	}
	return r, need + 1, true
}

// appendWTF8 appends code point r (which may be a lone surrogate) in WTF-8.
func appendWTF8(b []byte, r rune) []byte {
	if r >= 0xD800 && r <= 0xDFFF {
		return append(b, 0xED, byte(0x80|(r>>6)&0x3F), byte(0x80|r&0x3F))
	}
	return utf8.AppendRune(b, r)
}

// formatNumber appends x formatted like ECMAScript Number::toString(x).
func formatNumber(b []byte, x float64) []byte {
	if math.IsNaN(x) || math.IsInf(x, 0) {
		return append(b, "null"...)
	}
	if x == 0 {
		return append(b, '0')
	}
	if x == math.Trunc(x) && math.Abs(x) < 1<<53 {
		return strconv.AppendInt(b, int64(x), 10)
	}
	if x < 0 {
		b = append(b, '-')
		x = -x
	}
	var tmp [32]byte
	e := strconv.AppendFloat(tmp[:0], x, 'e', -1, 64)
	// e is d[.ddd]e±XX
	var digits [24]byte
	k := 0
	i := 0
	for ; i < len(e) && e[i] != 'e'; i++ {
		if e[i] != '.' {
			digits[k] = e[i]
			k++
		}
	}
	exp := 0
	neg := e[i+1] == '-'
	for j := i + 2; j < len(e); j++ {
		exp = exp*10 + int(e[j]-'0')
	}
	if neg {
		exp = -exp
	}
	n := exp + 1
	switch {
	case k <= n && n <= 21:
		b = append(b, digits[:k]...)
		for z := 0; z < n-k; z++ {
			b = append(b, '0')
		}
	case 0 < n && n <= 21:
		b = append(b, digits[:n]...)
		b = append(b, '.')
		b = append(b, digits[n:k]...)
	case -6 < n && n <= 0:
		b = append(b, '0', '.')
		for z := 0; z < -n; z++ {
			b = append(b, '0')
		}
		b = append(b, digits[:k]...)
	default:
		b = append(b, digits[0])
		if k > 1 {
			b = append(b, '.')
			b = append(b, digits[1:k]...)
		}
		b = append(b, 'e')
		if n-1 < 0 {
			b = append(b, '-')
			b = strconv.AppendInt(b, int64(1-n), 10)
		} else {
			b = append(b, '+')
			b = strconv.AppendInt(b, int64(n-1), 10)
		}
	}
	return b
}

// FormatNumber returns x formatted like JavaScript's String(x), except that
// NaN and ±Inf give "null" (as JSON.stringify writes them).
func FormatNumber(x float64) string { return string(formatNumber(nil, x)) }
