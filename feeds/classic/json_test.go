package classic

import (
	"bytes"
	"errors"
	"math"
	"strings"
	"testing"
)

// Variables, so the compiler cannot fold 0.1+0.2 exactly.
var pointOne, pointTwo = 0.1, 0.2

func TestFormatNumber(t *testing.T) {
	tests := []struct {
		in   float64
		want string
	}{
		{0, "0"},
		{math.Copysign(0, -1), "0"},
		{1, "1"},
		{-1, "-1"},
		{1.5, "1.5"},
		{-1.5, "-1.5"},
		{1514517067954, "1514517067954"},
		{1438787025000.001, "1438787025000.001"},
		{1e20, "100000000000000000000"},
		{1e21, "1e+21"},
		{1.5e21, "1.5e+21"},
		{123e25, "1.23e+27"},
		{1e-6, "0.000001"},
		{0.000001, "0.000001"},
		{1.5e-6, "0.0000015"},
		{1e-7, "1e-7"},
		{1.5e-7, "1.5e-7"},
		{123e-20, "1.23e-18"},
		{pointOne + pointTwo, "0.30000000000000004"},
		{0.1, "0.1"},
		{5e-324, "5e-324"},
		{math.MaxFloat64, "1.7976931348623157e+308"},
		{-math.MaxFloat64, "-1.7976931348623157e+308"},
		{1 << 53, "9007199254740992"},
		{1<<53 + 2, "9007199254740994"},
		{1 << 60, "1152921504606847000"},
		{123456789012345680000, "123456789012345680000"},
		{math.NaN(), "null"},
		{math.Inf(1), "null"},
		{math.Inf(-1), "null"},
		{2147483647, "2147483647"},
		{100, "100"},
		{0.5, "0.5"},
		{12.34, "12.34"},
	}
	for _, tc := range tests {
		if got := FormatNumber(tc.in); got != tc.want {
			t.Errorf("FormatNumber(%v) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

func TestDecodeNumbers(t *testing.T) {
	tests := []struct {
		in   string
		want string // compact re-encoding
	}{
		{`1.0`, `1`},
		{`1e0`, `1`},
		{`-0`, `0`},
		{`-0.0`, `0`},
		{`1E+2`, `100`},
		{`1e400`, `null`},
		{`-1e400`, `null`},
		{`1e-400`, `0`},
		{`9007199254740993`, `9007199254740992`},
		{`123456789012345678901234567890`, `1.2345678901234568e+29`},
		{`0.30000000000000004`, `0.30000000000000004`},
		{`[1e21,1e-7,0.000001]`, `[1e+21,1e-7,0.000001]`},
	}
	for _, tc := range tests {
		v, err := Decode([]byte(tc.in))
		if err != nil {
			t.Errorf("Decode(%s): %v", tc.in, err)
			continue
		}
		if got := string(v.Compact()); got != tc.want {
			t.Errorf("Decode(%s) → %s, want %s", tc.in, got, tc.want)
		}
	}
}

func TestKeyOrder(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want string
	}{
		{"insertion order", `{"b":1,"a":2}`, `{"b":1,"a":2}`},
		{"index keys first", `{"b":1,"1":2}`, `{"1":2,"b":1}`},
		{"index keys ascending", `{"10":1,"2":2,"1":3}`, `{"1":3,"2":2,"10":1}`},
		{"node v20 example", `{"b":1,"1":2,"01":3,"-1":4,"4294967294":5,"4294967295":6,"0":7}`,
			`{"0":7,"1":2,"4294967294":5,"b":1,"01":3,"-1":4,"4294967295":6}`},
		{"duplicate keeps first position, last value", `{"a":1,"b":2,"a":3}`, `{"a":3,"b":2}`},
		{"duplicate index key", `{"1":1,"x":0,"1":2}`, `{"1":2,"x":0}`},
		{"not indexes", `{"1.5":1,"1e3":2,"+1":3," 1":4,"":5}`, `{"1.5":1,"1e3":2,"+1":3," 1":4,"":5}`},
		{"nested", `{"z":{"2":0,"1":0},"0":[{"b":0,"0":0}]}`, `{"0":[{"0":0,"b":0}],"z":{"1":0,"2":0}}`},
		{"__proto__ is a plain key", `{"__proto__":1,"a":2}`, `{"__proto__":1,"a":2}`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			v, err := Decode([]byte(tc.in))
			if err != nil {
				t.Fatal(err)
			}
			if got := string(v.Compact()); got != tc.want {
				t.Fatalf("got %s, want %s", got, tc.want)
			}
		})
	}
}

func TestManyDuplicateKeys(t *testing.T) {
	// More members than the linear-scan threshold, with duplicates spread out.
	var b strings.Builder
	b.WriteString("{")
	for i := 0; i < 100; i++ {
		if i > 0 {
			b.WriteString(",")
		}
		b.WriteString(`"k` + FormatNumber(float64(i%40)) + `":` + FormatNumber(float64(i)))
	}
	b.WriteString("}")
	v, err := Decode([]byte(b.String()))
	if err != nil {
		t.Fatal(err)
	}
	if v.Len() != 40 {
		t.Fatalf("%d members, want 40", v.Len())
	}
	for i := 0; i < 40; i++ {
		m := v.Members()[i]
		if m.Key != "k"+FormatNumber(float64(i)) || m.Value.Float() != float64(i+80-40*btoi(i >= 20)) {
			t.Fatalf("member %d = %s:%v", i, m.Key, m.Value.Float())
		}
	}
}

func btoi(b bool) int {
	if b {
		return 1
	}
	return 0
}

func TestStrings(t *testing.T) {
	tests := []struct {
		name  string
		in    string // JSON text of a string
		want  string // JSON.stringify output
		units int
	}{
		{"plain", `"abc"`, `"abc"`, 3},
		{"slash unescaped", `"a\/b"`, `"a/b"`, 3},
		{"short escapes", `"\b\f\n\r\t\"\\"`, `"\b\f\n\r\t\"\\"`, 7},
		{"control chars lowercase", `"\u0000\u001B\u001f"`, `"\u0000\u001b\u001f"`, 3},
		{"del and line separators literal", `"\u007f\u2028\u2029"`, "\"\u007f\u2028\u2029\"", 3},
		{"unicode escapes decoded", `"\u00e9\u65E5"`, `"é日"`, 2},
		{"raw utf8 kept", `"ünïcödé ✓ 日本語"`, `"ünïcödé ✓ 日本語"`, 13},
		{"surrogate pair escape joins", `"\ud83d\ude00"`, `"😀"`, 2},
		{"raw astral", `"😀"`, `"😀"`, 2},
		{"lone high surrogate", `"\ud83d"`, `"\ud83d"`, 1},
		{"lone low surrogate", `"\uDE00x"`, `"\ude00x"`, 2},
		{"reversed pair stays lone", `"\ude00\ud83d"`, `"\ude00\ud83d"`, 2},
		{"high then non-surrogate escape", `"\ud83d\u0041"`, `"\ud83dA"`, 2},
		{"BOM literal", `"\ufeff"`, "\"\ufeff\"", 1},
		{"invalid utf8 replaced", "\"a\xffb\"", "\"a\ufffdb\"", 3},
		{"truncated sequence is one replacement", "\"\xe2\x82z\"", "\"\ufffdz\"", 2},
		{"encoded surrogate bytes replaced per byte", "\"\xed\xa0\x80\"", "\"\ufffd\ufffd\ufffd\"", 3},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			v, err := Decode([]byte(tc.in))
			if err != nil {
				t.Fatal(err)
			}
			if got := string(v.Compact()); got != tc.want {
				t.Fatalf("got %q, want %q", got, tc.want)
			}
			if got := v.UTF16Len(); got != tc.units {
				t.Fatalf("UTF16Len = %d, want %d", got, tc.units)
			}
			// Idempotent: the output decodes to the same value.
			v2, err := Decode(v.Compact())
			if err != nil || !v2.Equal(v) {
				t.Fatalf("re-decode: %v", err)
			}
		})
	}
}

func TestLatin1(t *testing.T) {
	tests := []struct {
		in   string
		want []byte
	}{
		{"abc", []byte("abc")},
		{"é", []byte{0xe9}},
		{"Ā", []byte{0x00}},
		{"日", []byte{0xe5}}, // U+65E5
		{"😀", []byte{0x3d, 0x00}},
		{"\u2028", []byte{0x28}},
	}
	for _, tc := range tests {
		if got := Latin1([]byte(tc.in)); !bytes.Equal(got, tc.want) {
			t.Errorf("Latin1(%q) = %x, want %x", tc.in, got, tc.want)
		}
	}
}

func TestCanonical(t *testing.T) {
	tests := []struct {
		in, want string
	}{
		{`{}`, `{}`},
		{`[]`, `[]`},
		{`{"a":[]}`, "{\n  \"a\": []\n}"},
		{`{"a":{}}`, "{\n  \"a\": {}\n}"},
		{`[1,[2,{"x":null}],true]`, "[\n  1,\n  [\n    2,\n    {\n      \"x\": null\n    }\n  ],\n  true\n]"},
		{` "s" `, `"s"`},
		{`false`, `false`},
	}
	for _, tc := range tests {
		v, err := Decode([]byte(tc.in))
		if err != nil {
			t.Fatalf("%s: %v", tc.in, err)
		}
		if got := string(v.Canonical()); got != tc.want {
			t.Errorf("Canonical(%s) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

func TestDecodeErrors(t *testing.T) {
	tests := []struct {
		in     string
		offset int
	}{
		{``, 0},
		{` `, 1},
		{`{`, 1},
		{`{"a"}`, 4},
		{`{"a":1,}`, 7},
		{`[1,]`, 3},
		{`[1 2]`, 3},
		{`01`, 1},
		{`1.`, 2},
		{`1e`, 2},
		{`-`, 1},
		{`+1`, 0},
		{`.5`, 0},
		{`NaN`, 0},
		{`Infinity`, 0},
		{`tru`, 0},
		{`nul`, 0},
		{`"abc`, 4},
		{"\"a\nb\"", 2},
		{`"\x"`, 2},
		{`"\u12"`, 3},
		{`{'a':1}`, 1},
		{`1 2`, 2},
		{"\ufeff{}", 0},
		{`{"a":1}x`, 7},
	}
	for _, tc := range tests {
		_, err := Decode([]byte(tc.in))
		var se *SyntaxError
		if !errors.As(err, &se) {
			t.Errorf("Decode(%q): err = %v, want SyntaxError", tc.in, err)
			continue
		}
		if se.Offset != tc.offset {
			t.Errorf("Decode(%q): offset %d, want %d (%v)", tc.in, se.Offset, tc.offset, err)
		}
	}
}

func TestDepthLimit(t *testing.T) {
	ok := strings.Repeat("[", MaxDepth) + strings.Repeat("]", MaxDepth)
	if _, err := Decode([]byte(ok)); err != nil {
		t.Fatalf("depth %d rejected: %v", MaxDepth, err)
	}
	for _, deep := range []string{
		strings.Repeat("[", MaxDepth+1) + strings.Repeat("]", MaxDepth+1),
		strings.Repeat(`{"a":`, 100000),
	} {
		if _, err := Decode([]byte(deep)); err == nil {
			t.Fatalf("nesting of %d bytes accepted", len(deep))
		}
	}
}

func TestObjectConstructor(t *testing.T) {
	v := Object(
		Member{Key: "b", Value: Number(1)},
		Member{Key: "10", Value: Number(2)},
		Member{Key: "2", Value: String("x\xff")},
		Member{Key: "b", Value: Null()},
	)
	if got, want := string(v.Compact()), `{"2":"x`+"\ufffd"+`","10":2,"b":null}`; got != want {
		t.Fatalf("got %s, want %s", got, want)
	}
	m, err := FromGo(map[string]any{"z": []any{1, "a", true, nil}, "a": 0.5, "3": map[string]any{}})
	if err != nil {
		t.Fatal(err)
	}
	if got, want := string(m.Compact()), `{"3":{},"a":0.5,"z":[1,"a",true,null]}`; got != want {
		t.Fatalf("FromGo: got %s, want %s", got, want)
	}
	if _, err := FromGo(struct{}{}); err == nil {
		t.Fatal("FromGo accepted a struct")
	}
}

func TestPlain8(t *testing.T) {
	// Compare the SWAR test with a byte-by-byte one on every single
	// special byte at every position.
	slow := func(b []byte) bool {
		for _, c := range b {
			if c < 0x20 || c == '"' || c == '\\' || c >= 0x80 {
				return false
			}
		}
		return true
	}
	base := []byte("abcdefgh")
	for pos := 0; pos < 8; pos++ {
		for c := 0; c < 256; c++ {
			b := append([]byte(nil), base...)
			b[pos] = byte(c)
			if got, want := plain8(b, 0), slow(b); got != want {
				t.Fatalf("plain8(%q) = %v, want %v", b, got, want)
			}
			if got, want := plain8s(string(b), 0), slow(b); got != want {
				t.Fatalf("plain8s(%q) = %v, want %v", b, got, want)
			}
		}
	}
}
