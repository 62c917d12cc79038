package store

import (
	"bytes"
	"testing"
)

// FuzzDecodeRecord feeds arbitrary bytes to the log record decoder: it must
// never panic, must reject anything whose checksum does not hold, and must
// re-encode what it accepts to the same bytes.
func FuzzDecodeRecord(f *testing.F) {
	good := testMsg(testFeed(1), 3, "seed")
	f.Add(int64(1), appendRecord(nil, 1, &good))
	f.Add(int64(7), appendRecord(nil, 7, &Record{Author: testFeed(2), Sequence: 1, Value: []byte("{}")}))
	f.Add(int64(1), appendRecord(nil, 2, &good)) // wrong seq
	f.Add(int64(1), []byte{})
	f.Add(int64(1), make([]byte, recordHeaderSize))
	f.Fuzz(func(t *testing.T, seq int64, b []byte) {
		var r Record
		err := decodeRecord(seq, b, &r)
		if err != nil {
			return
		}
		if r.Seq != seq {
			t.Fatalf("decoded seq %d, want %d", r.Seq, seq)
		}
		if again := appendRecord(nil, seq, &r); !bytes.Equal(again, b) {
			t.Fatalf("re-encoding differs:\n%x\n%x", again, b)
		}
	})
}
