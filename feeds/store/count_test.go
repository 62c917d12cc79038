package store

import (
	"context"
	"testing"

	"github.com/cockroachdb/pebble/v2"
)

// TestCountAfterQuarantine: Count gives the messages the log holds after
// Fsck quarantined records: a quarantined record in the middle is not
// counted, a quarantined torn tail is not either, and a record appended
// after the repair (which reuses the torn tail's receive seq) is.
func TestCountAfterQuarantine(t *testing.T) {
	flip := func(seq int64) func(*testing.T, *pebble.DB) {
		return func(t *testing.T, db *pebble.DB) {
			v := rawGet(t, db, logKey(nil, seq))
			v[len(v)-3] ^= 0x40
			rawSet(t, db, logKey(nil, seq), v)
		}
	}
	torn := func(seq int64) func(*testing.T, *pebble.DB) {
		return func(t *testing.T, db *pebble.DB) {
			v := rawGet(t, db, logKey(nil, seq))
			rawSet(t, db, logKey(nil, seq), v[:recordHeaderSize-7])
		}
	}
	tests := []struct {
		name    string
		damage  []func(*testing.T, *pebble.DB)
		append  bool  // append one record after the repair
		want    int64 // Count after the repair (and the append)
		wantSeq int64 // LastSeq
	}{
		{name: "clean", want: fsckRecords, wantSeq: fsckRecords},
		{name: "middle record", damage: []func(*testing.T, *pebble.DB){flip(7)}, want: fsckRecords - 1, wantSeq: fsckRecords},
		{name: "two middle records", damage: []func(*testing.T, *pebble.DB){flip(7), flip(21)}, want: fsckRecords - 2, wantSeq: fsckRecords},
		{name: "torn tail", damage: []func(*testing.T, *pebble.DB){torn(fsckRecords)}, want: fsckRecords - 1, wantSeq: fsckRecords - 1},
		{name: "torn tail then an append", damage: []func(*testing.T, *pebble.DB){torn(fsckRecords)}, append: true, want: fsckRecords, wantSeq: fsckRecords},
		{name: "middle and torn tail then an append", damage: []func(*testing.T, *pebble.DB){flip(3), torn(fsckRecords)}, append: true, want: fsckRecords - 1, wantSeq: fsckRecords},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir, _ := fsckFixture(t)
			withRawDB(t, dir, func(db *pebble.DB) {
				for _, d := range tc.damage {
					d(t, db)
				}
			})
			if _, err := Fsck(context.Background(), dir, FsckOptions{Repair: true}); err != nil {
				t.Fatal(err)
			}
			s := openTest(t, dir)
			if tc.append {
				// The torn record was the last feed's sequence 10: write it again.
				mustAppend(t, s, []Record{testMsg(testFeed(fsckFeeds-1), fsckPerFeed, "again")})
			}
			check := func(s *Store) {
				t.Helper()
				if got, _ := s.Count(); got != tc.want {
					t.Errorf("Count = %d, want %d", got, tc.want)
				}
				if got := s.LastSeq(); got != tc.wantSeq {
					t.Errorf("LastSeq = %d, want %d", got, tc.wantSeq)
				}
				var inLog int64
				for _, err := range s.Log(context.Background(), LogQuery{}) {
					if err != nil {
						t.Fatal(err)
					}
					inLog++
				}
				if got, _ := s.Count(); got != inLog {
					t.Errorf("Count = %d, the log holds %d records", got, inLog)
				}
			}
			check(s)
			if err := s.Close(); err != nil {
				t.Fatal(err)
			}
			s = openTest(t, dir) // the same after a reopen
			check(s)
		})
	}
}
