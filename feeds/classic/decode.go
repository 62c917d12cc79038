package classic

import (
	"bytes"
	"fmt"
	"strconv"
	"unicode/utf8"
)

// MaxDepth is the deepest nesting of arrays and objects Decode accepts.
// A classic message is limited to 8192 UTF-16 units of pretty-printed JSON,
// which cannot nest anywhere near this deep, so no valid message is lost.
const MaxDepth = 512

// SyntaxError is a JSON decoding error at a byte offset of the input.
type SyntaxError struct {
	Offset int // byte offset in the input where the error was detected
	Msg    string
}

func (e *SyntaxError) Error() string {
	return fmt.Sprintf("classic: invalid JSON at byte %d: %s", e.Offset, e.Msg)
}

// Decode parses JSON text exactly like JavaScript's
// JSON.parse(buffer.toString('utf8')): invalid UTF-8 becomes U+FFFD, numbers
// become float64 (overflow gives ±Inf), string escapes are decoded to UTF-16
// semantics (lone surrogates kept), objects take V8 property order and
// duplicate keys keep the first position with the last value.
func Decode(data []byte) (Value, error) {
	// Upper bound of the members of all containers: each member but the
	// last of a container is followed by a comma. One allocation holds
	// every container of the value, another the parse stack.
	n := bytes.Count(data, []byte{','}) + bytes.Count(data, []byte{'{'}) + bytes.Count(data, []byte{'['})
	n = min(n, 1<<16)
	d := decoder{
		data:  data,
		src:   string(data),
		slab:  make([]Member, 0, n),
		stack: make([]Member, 0, min(n, 24)),
	}
	return d.top()
}

type decoder struct {
	data  []byte
	src   string // same bytes as data; unescaped strings are substrings of it
	pos   int
	depth int
	stack []Member // members of the objects/arrays being parsed
	slab  []Member // allocation arena for finished containers
	buf   []byte   // scratch for strings with escapes
}

func (d *decoder) top() (Value, error) {
	d.skipSpace()
	v, err := d.value()
	if err != nil {
		return Value{}, err
	}
	d.skipSpace()
	if d.pos != len(d.data) {
		return Value{}, d.errorf("unexpected data after the top-level value")
	}
	return v, nil
}

func (d *decoder) errorf(format string, args ...any) error {
	return &SyntaxError{Offset: d.pos, Msg: fmt.Sprintf(format, args...)}
}

func (d *decoder) skipSpace() {
	for d.pos < len(d.data) {
		switch d.data[d.pos] {
		case ' ', '\t', '\n', '\r':
			d.pos++
		default:
			return
		}
	}
}

// alloc returns a slice of n members from the arena (cap-limited so appends
// by callers cannot overwrite neighbours).
func (d *decoder) alloc(n int) []Member {
	if n == 0 {
		return nil
	}
	if n > cap(d.slab)-len(d.slab) {
		d.slab = make([]Member, 0, max(64, n))
	}
	start := len(d.slab)
	d.slab = d.slab[:start+n]
	return d.slab[start : start+n : start+n]
}

func (d *decoder) value() (Value, error) {
	if d.pos >= len(d.data) {
		return Value{}, d.errorf("unexpected end of input")
	}
	switch c := d.data[d.pos]; c {
	case '{':
		return d.object()
	case '[':
		return d.array()
	case '"':
		s, err := d.str()
		if err != nil {
			return Value{}, err
		}
		return Value{kind: KindString, s: s}, nil
	case 't':
		return d.literal("true", Value{kind: KindBool, b: true})
	case 'f':
		return d.literal("false", Value{kind: KindBool})
	case 'n':
		return d.literal("null", Value{})
	default:
		if c == '-' || (c >= '0' && c <= '9') {
			return d.number()
		}
		return Value{}, d.errorf("unexpected character %q", c)
	}
}

func (d *decoder) literal(lit string, v Value) (Value, error) {
	if len(d.data)-d.pos < len(lit) || d.src[d.pos:d.pos+len(lit)] != lit {
		return Value{}, d.errorf("invalid literal, want %s", lit)
	}
	d.pos += len(lit)
	return v, nil
}

func (d *decoder) number() (Value, error) {
	start := d.pos
	p := d.pos
	data := d.data
	if data[p] == '-' {
		p++
	}
	if p >= len(data) {
		d.pos = p
		return Value{}, d.errorf("unexpected end of input in number")
	}
	simple := true
	var mant uint64
	intStart := p
	switch {
	case data[p] == '0':
		p++
	case data[p] >= '1' && data[p] <= '9':
		for p < len(data) && data[p] >= '0' && data[p] <= '9' {
			mant = mant*10 + uint64(data[p]-'0')
			p++
		}
	default:
		d.pos = p
		return Value{}, d.errorf("invalid number")
	}
	if p-intStart > 15 {
		simple = false
	}
	if p < len(data) && data[p] == '.' {
		simple = false
		p++
		if p >= len(data) || data[p] < '0' || data[p] > '9' {
			d.pos = p
			return Value{}, d.errorf("invalid number: digit expected after '.'")
		}
		for p < len(data) && data[p] >= '0' && data[p] <= '9' {
			p++
		}
	}
	if p < len(data) && (data[p] == 'e' || data[p] == 'E') {
		simple = false
		p++
		if p < len(data) && (data[p] == '+' || data[p] == '-') {
			p++
		}
		if p >= len(data) || data[p] < '0' || data[p] > '9' {
			d.pos = p
			return Value{}, d.errorf("invalid number: digit expected in exponent")
		}
		for p < len(data) && data[p] >= '0' && data[p] <= '9' {
			p++
		}
	}
	d.pos = p
	if simple {
		f := float64(mant)
		if data[start] == '-' {
			f = -f
		}
		return Value{kind: KindNumber, n: f}, nil
	}
	f, err := strconv.ParseFloat(d.src[start:p], 64)
	if err != nil {
		// Only range errors are possible for this grammar; JavaScript gives
		// ±Infinity or 0 just like ParseFloat's result.
		if ne, ok := err.(*strconv.NumError); !ok || ne.Err != strconv.ErrRange {
			return Value{}, &SyntaxError{Offset: start, Msg: "invalid number"}
		}
	}
	return Value{kind: KindNumber, n: f}, nil
}

// str parses a JSON string at d.pos (which is '"') and returns it in WTF-8.
func (d *decoder) str() (string, error) {
	d.pos++
	start := d.pos
	data := d.data
	p := d.pos
	for p < len(data) {
		if p+8 <= len(data) && plain8(data, p) {
			p += 8
			continue
		}
		c := data[p]
		if c == '"' {
			d.pos = p + 1
			return d.src[start:p], nil
		}
		if c == '\\' || c < 0x20 {
			break
		}
		if c >= 0x80 {
			_, size, ok := decodeUTF8Strict(data, p)
			if !ok {
				break
			}
			p += size
			continue
		}
		p++
	}
	d.pos = p
	return d.strSlow(start)
}

func (d *decoder) strSlow(start int) (string, error) {
	b := append(d.buf[:0], d.data[start:d.pos]...)
	data := d.data
	p := d.pos
	for {
		if p >= len(data) {
			d.pos = p
			return "", d.errorf("unterminated string")
		}
		c := data[p]
		switch {
		case c == '"':
			d.pos = p + 1
			d.buf = b
			return string(b), nil
		case c < 0x20:
			d.pos = p
			return "", d.errorf("control character %#02x in string", c)
		case c >= 0x80:
			r, size, ok := decodeUTF8Strict(data, p)
			if ok {
				b = append(b, data[p:p+size]...)
			} else {
				b = utf8.AppendRune(b, utf8.RuneError)
				_ = r
			}
			p += size
		case c != '\\':
			b = append(b, c)
			p++
		default:
			p++
			if p >= len(data) {
				d.pos = p
				return "", d.errorf("unterminated escape")
			}
			e := data[p]
			p++
			switch e {
			case '"', '\\', '/':
				b = append(b, e)
			case 'b':
				b = append(b, '\b')
			case 'f':
				b = append(b, '\f')
			case 'n':
				b = append(b, '\n')
			case 'r':
				b = append(b, '\r')
			case 't':
				b = append(b, '\t')
			case 'u':
				r, ok := hex4(data, p)
				if !ok {
					d.pos = p
					return "", d.errorf("invalid \\u escape")
				}
				p += 4
				if r >= 0xD800 && r <= 0xDBFF && p+6 <= len(data) && data[p] == '\\' && data[p+1] == 'u' {
					if r2, ok := hex4(data, p+2); ok && r2 >= 0xDC00 && r2 <= 0xDFFF {
						p += 6
						b = utf8.AppendRune(b, 0x10000+(r-0xD800)<<10+(r2-0xDC00))
						continue
					}
				}
				b = appendWTF8(b, r)
			default:
				d.pos = p - 1
				return "", d.errorf("invalid escape character %q", e)
			}
		}
	}
}

func hex4(data []byte, p int) (rune, bool) {
	if p+4 > len(data) {
		return 0, false
	}
	var r rune
	for i := 0; i < 4; i++ {
		c := data[p+i]
		var v byte
		switch {
		case c >= '0' && c <= '9':
			v = c - '0'
		case c >= 'a' && c <= 'f':
			v = c - 'a' + 10
		case c >= 'A' && c <= 'F':
			v = c - 'A' + 10
		default:
			return 0, false
		}
		r = r<<4 | rune(v)
	}
	return r, true
}

func (d *decoder) enter() error {
	d.depth++
	if d.depth > MaxDepth {
		return d.errorf("nesting deeper than %d", MaxDepth)
	}
	return nil
}

func (d *decoder) array() (Value, error) {
	if err := d.enter(); err != nil {
		return Value{}, err
	}
	d.pos++ // '['
	base := len(d.stack)
	d.skipSpace()
	if d.pos < len(d.data) && d.data[d.pos] == ']' {
		d.pos++
		d.depth--
		return Value{kind: KindArray}, nil
	}
	for {
		d.skipSpace()
		v, err := d.value()
		if err != nil {
			return Value{}, err
		}
		d.stack = append(d.stack, Member{Value: v})
		d.skipSpace()
		if d.pos >= len(d.data) {
			return Value{}, d.errorf("unexpected end of input in array")
		}
		c := d.data[d.pos]
		d.pos++
		if c == ']' {
			break
		}
		if c != ',' {
			d.pos--
			return Value{}, d.errorf("expected ',' or ']' in array")
		}
	}
	items := d.alloc(len(d.stack) - base)
	copy(items, d.stack[base:])
	clear(d.stack[base:])
	d.stack = d.stack[:base]
	d.depth--
	return Value{kind: KindArray, items: items}, nil
}

// dedupMapThreshold is the member count above which duplicate detection
// switches from a linear scan to a map.
const dedupMapThreshold = 32

func (d *decoder) object() (Value, error) {
	if err := d.enter(); err != nil {
		return Value{}, err
	}
	d.pos++ // '{'
	base := len(d.stack)
	d.skipSpace()
	if d.pos < len(d.data) && d.data[d.pos] == '}' {
		d.pos++
		d.depth--
		return Value{kind: KindObject}, nil
	}
	var index map[string]int
	hasIndexKey := false
	for {
		d.skipSpace()
		if d.pos >= len(d.data) || d.data[d.pos] != '"' {
			return Value{}, d.errorf("expected string key in object")
		}
		key, err := d.str()
		if err != nil {
			return Value{}, err
		}
		d.skipSpace()
		if d.pos >= len(d.data) || d.data[d.pos] != ':' {
			return Value{}, d.errorf("expected ':' after object key")
		}
		d.pos++
		d.skipSpace()
		v, err := d.value()
		if err != nil {
			return Value{}, err
		}
		if !hasIndexKey && key != "" && key[0] >= '0' && key[0] <= '9' {
			_, hasIndexKey = arrayIndex(key)
		}
		members := d.stack[base:]
		if index == nil && len(members) >= dedupMapThreshold {
			index = make(map[string]int, 2*len(members))
			for i := range members {
				index[members[i].Key] = i
			}
		}
		if index != nil {
			if i, ok := index[key]; ok {
				members[i].Value = v
			} else {
				index[key] = len(members)
				d.stack = append(d.stack, Member{Key: key, Value: v})
			}
		} else {
			dup := false
			for i := range members {
				if members[i].Key == key {
					members[i].Value = v
					dup = true
					break
				}
			}
			if !dup {
				d.stack = append(d.stack, Member{Key: key, Value: v})
			}
		}
		d.skipSpace()
		if d.pos >= len(d.data) {
			return Value{}, d.errorf("unexpected end of input in object")
		}
		c := d.data[d.pos]
		d.pos++
		if c == '}' {
			break
		}
		if c != ',' {
			d.pos--
			return Value{}, d.errorf("expected ',' or '}' in object")
		}
	}
	items := d.alloc(len(d.stack) - base)
	copy(items, d.stack[base:])
	clear(d.stack[base:])
	d.stack = d.stack[:base]
	if hasIndexKey {
		items = v8Order(items)
	}
	d.depth--
	return Value{kind: KindObject, items: items}, nil
}
