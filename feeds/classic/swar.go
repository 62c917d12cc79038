package classic

import "encoding/binary"

const (
	swarOnes = 0x0101010101010101
	swarHigh = 0x8080808080808080
)

// plain8 reports whether none of the 8 bytes at b[i:] needs attention inside
// a JSON string: no '"', no '\\', no control character, nothing >= 0x80.
// b must have at least i+8 bytes.
func plain8(b []byte, i int) bool {
	x := binary.LittleEndian.Uint64(b[i:])
	lt20 := (x - swarOnes*0x20) & ^x
	q := x ^ (swarOnes * '"')
	hasQuote := (q - swarOnes) & ^q
	bs := x ^ (swarOnes * '\\')
	hasBackslash := (bs - swarOnes) & ^bs
	return (lt20|hasQuote|hasBackslash|x)&swarHigh == 0
}

// plain8s is plain8 for a string.
func plain8s(s string, i int) bool {
	x := uint64(s[i]) | uint64(s[i+1])<<8 | uint64(s[i+2])<<16 | uint64(s[i+3])<<24 |
		uint64(s[i+4])<<32 | uint64(s[i+5])<<40 | uint64(s[i+6])<<48 | uint64(s[i+7])<<56
	lt20 := (x - swarOnes*0x20) & ^x
	q := x ^ (swarOnes * '"')
	hasQuote := (q - swarOnes) & ^q
	bs := x ^ (swarOnes * '\\')
	hasBackslash := (bs - swarOnes) & ^bs
	return (lt20|hasQuote|hasBackslash|x)&swarHigh == 0
}
