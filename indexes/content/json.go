package content

import (
	"encoding/json"
	"errors"
	"strconv"
)

// A small JSON scanner: it finds the members of an object and the
// elements of an array and skips every other value without building it,
// so a message is read once and only the fields the indexes need are
// decoded. Input comes from the network (message contents, decrypted
// private messages): every function checks bounds and fails with
// errSyntax, never panics.

var errSyntax = errors.New("content: invalid JSON")

func skipWS(b []byte, i int) int {
	for i < len(b) && (b[i] == ' ' || b[i] == '\t' || b[i] == '\n' || b[i] == '\r') {
		i++
	}
	return i
}

// skipString returns the index after the string literal starting at b[i]
// (b[i] == '"') and whether it holds a backslash escape.
func skipString(b []byte, i int) (int, bool, error) {
	escaped := false
	for j := i + 1; j < len(b); j++ {
		switch b[j] {
		case '"':
			return j + 1, escaped, nil
		case '\\':
			escaped = true
			j++
		}
	}
	return 0, false, errSyntax
}

// skipValue returns the index after the JSON value starting at b[i].
func skipValue(b []byte, i int) (int, error) {
	return skipValueDepth(b, i, 0)
}

const maxDepth = 512

func skipValueDepth(b []byte, i, depth int) (int, error) {
	i = skipWS(b, i)
	if i >= len(b) {
		return 0, errSyntax
	}
	switch c := b[i]; {
	case c == '"':
		j, _, err := skipString(b, i)
		return j, err
	case c == '{' || c == '[':
		if depth >= maxDepth {
			return 0, errSyntax
		}
		closing := byte('}')
		if c == '[' {
			closing = ']'
		}
		i = skipWS(b, i+1)
		if i < len(b) && b[i] == closing {
			return i + 1, nil
		}
		for {
			var err error
			if c == '{' {
				if i >= len(b) || b[i] != '"' {
					return 0, errSyntax
				}
				if i, _, err = skipString(b, i); err != nil {
					return 0, err
				}
				i = skipWS(b, i)
				if i >= len(b) || b[i] != ':' {
					return 0, errSyntax
				}
				i++
			}
			if i, err = skipValueDepth(b, i, depth+1); err != nil {
				return 0, err
			}
			i = skipWS(b, i)
			if i >= len(b) {
				return 0, errSyntax
			}
			if b[i] == closing {
				return i + 1, nil
			}
			if b[i] != ',' {
				return 0, errSyntax
			}
			i = skipWS(b, i+1)
		}
	case c == '-' || (c >= '0' && c <= '9'):
		j := i + 1
		for j < len(b) && (b[j] >= '0' && b[j] <= '9' || b[j] == '.' || b[j] == 'e' || b[j] == 'E' || b[j] == '+' || b[j] == '-') {
			j++
		}
		return j, nil
	case c == 't' && hasAt(b, i, "true"):
		return i + 4, nil
	case c == 'f' && hasAt(b, i, "false"):
		return i + 5, nil
	case c == 'n' && hasAt(b, i, "null"):
		return i + 4, nil
	}
	return 0, errSyntax
}

func hasAt(b []byte, i int, lit string) bool {
	return len(b)-i >= len(lit) && string(b[i:i+len(lit)]) == lit
}

// eachMember calls fn with each member of the JSON object obj: the raw key
// literal (quotes included) and the raw value. fn returns false to stop.
func eachMember(obj []byte, fn func(key, val []byte) bool) error {
	i := skipWS(obj, 0)
	if i >= len(obj) || obj[i] != '{' {
		return errSyntax
	}
	i = skipWS(obj, i+1)
	if i < len(obj) && obj[i] == '}' {
		return nil
	}
	for {
		if i >= len(obj) || obj[i] != '"' {
			return errSyntax
		}
		ks := i
		var err error
		if i, _, err = skipString(obj, i); err != nil {
			return err
		}
		key := obj[ks:i]
		i = skipWS(obj, i)
		if i >= len(obj) || obj[i] != ':' {
			return errSyntax
		}
		vs := skipWS(obj, i+1)
		if i, err = skipValue(obj, vs); err != nil {
			return err
		}
		if !fn(key, obj[vs:i]) {
			return nil
		}
		i = skipWS(obj, i)
		if i >= len(obj) {
			return errSyntax
		}
		if obj[i] == '}' {
			return nil
		}
		if obj[i] != ',' {
			return errSyntax
		}
		i = skipWS(obj, i+1)
	}
}

// eachElement calls fn with each raw element of the JSON array arr.
func eachElement(arr []byte, fn func(val []byte) bool) error {
	i := skipWS(arr, 0)
	if i >= len(arr) || arr[i] != '[' {
		return errSyntax
	}
	i = skipWS(arr, i+1)
	if i < len(arr) && arr[i] == ']' {
		return nil
	}
	for {
		vs := i
		var err error
		if i, err = skipValue(arr, vs); err != nil {
			return err
		}
		if !fn(arr[vs:i]) {
			return nil
		}
		i = skipWS(arr, i)
		if i >= len(arr) {
			return errSyntax
		}
		if arr[i] == ']' {
			return nil
		}
		if arr[i] != ',' {
			return errSyntax
		}
		i = skipWS(arr, i+1)
	}
}

// str decodes a raw JSON string literal; ok is false for other values.
func str(raw []byte) (string, bool) {
	if len(raw) < 2 || raw[0] != '"' || raw[len(raw)-1] != '"' {
		return "", false
	}
	inner := raw[1 : len(raw)-1]
	plain := true
	for _, c := range inner {
		if c == '\\' || c < 0x20 {
			plain = false
			break
		}
	}
	if plain {
		return string(inner), true
	}
	var s string
	if json.Unmarshal(raw, &s) != nil {
		return "", false
	}
	return s, true
}

// number decodes a raw JSON number.
func number(raw []byte) (float64, bool) {
	f, err := strconv.ParseFloat(string(raw), 64)
	return f, err == nil
}

// field returns the raw value of the member named key of obj (the last one
// when the key repeats, as JSON.parse keeps), or nil.
func field(obj []byte, key string) []byte {
	var out []byte
	_ = eachMember(obj, func(k, v []byte) bool {
		if ks, ok := str(k); ok && ks == key {
			out = v
		}
		return true
	})
	return out
}
