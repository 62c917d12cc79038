// Package content decodes, once per message, the parts of a stored
// message that the indexes (by type, links, about, threads, private)
// need: the claimed timestamp, content.type, the links of the content as
// ssb-links names them, root and branch, and for a box1 private message
// that our key opens, the decrypted content.
//
// The indexers of one store share one Decoder: the store stages a record
// into every indexer in turn, and the Decoder keeps the last record's
// result, so a message is parsed (and a private message decrypted) once.
// It never writes anything and never hands cleartext to anyone but the
// indexers.
package content

import (
	"bytes"
	"encoding/binary"
	"math"
	"runtime"
	"sync"

	"github.com/cask-ssb/cask/feeds"
	"github.com/cask-ssb/cask/feeds/privatebox"
	"github.com/cask-ssb/cask/feeds/store"
)

// Link is one link of a message's content: rel is the top-level key it
// was found under (ssb-msgs indexLinks), dest the ref.
type Link struct {
	Rel  string
	Dest string
}

// Msg is what the indexes need of one message.
type Msg struct {
	// ClaimedTS is value.timestamp (0 when absent).
	ClaimedTS float64
	// Content is the raw content: the JSON object, or for a private
	// message our key opened, the decrypted JSON. Valid until the next
	// Decode.
	Content []byte
	// Boxed: the stored content is a box1 string; Private: we opened it.
	Boxed, Private bool
	// Type is content.type when it is a string.
	Type string
	// Links are the content's links (ssb-msgs indexLinks: each top-level
	// key whose value is a ref, an object with a ref in "link", or an
	// array of those).
	Links []Link
	// Root is content.root and Branch content.branch (a string or an
	// array of strings) when they are message ids.
	Root   string
	Branch []string
}

// Decoder decodes records for the indexers of one store. It is not safe
// for concurrent use: the store stages records from one goroutine.
type Decoder struct {
	opener  *privatebox.Opener
	lastSeq int64
	lastKey feeds.MessageRef
	msg     Msg
	links   []Link

	// Records decoded ahead by Prepare, in log order, waiting for their
	// Decode; guarded by mu (Prepare runs beside the staging goroutine).
	mu       sync.Mutex
	ready    [][]prepared
	readyPos int              // next entry of ready[0]
	lastPrep [2]int64         // first and last seq of the last chunk Prepare decoded
	prepKey  feeds.MessageRef // key of that chunk's first record
}

// prepared is one record decoded ahead.
type prepared struct {
	seq int64
	key feeds.MessageRef
	msg Msg
}

// NewDecoder returns a decoder; with kp, box1 messages that kp opens are
// decrypted (nil: private messages are indexed as opaque strings).
func NewDecoder(kp *feeds.KeyPair) *Decoder {
	d := &Decoder{}
	if kp != nil && kp.Private != nil {
		d.opener, _ = privatebox.NewOpener(kp.Curve25519Secret()) // nil on a bad key: nothing opens
	}
	return d
}

// Decode returns the decoded form of rec; the same record twice in a row
// is decoded once, and a record Prepare decoded ahead is not decoded
// again. The result is valid until the next call.
func (d *Decoder) Decode(rec *store.Record) *Msg {
	if rec.Seq != 0 && rec.Seq == d.lastSeq && rec.Key == d.lastKey {
		return &d.msg
	}
	d.lastSeq, d.lastKey = rec.Seq, rec.Key
	if d.takeReady(rec) {
		return &d.msg
	}
	d.links = decode(d.opener, rec, &d.msg, d.links[:0])
	return &d.msg
}

// decode fills m from rec (appending its links to links, which it
// returns; m.Links is the part appended).
func decode(opener *privatebox.Opener, rec *store.Record, m *Msg, links []Link) []Link {
	*m = Msg{}
	var contentRaw []byte
	_ = eachMember(rec.Value, func(k, v []byte) bool {
		switch string(k) {
		case `"timestamp"`:
			m.ClaimedTS, _ = number(v)
		case `"content"`:
			contentRaw = v
		}
		return true
	})
	if len(contentRaw) > 0 && contentRaw[0] == '"' {
		if !bytes.HasSuffix(contentRaw, boxSuffix) {
			return links
		}
		s, ok := str(contentRaw)
		if !ok {
			return links
		}
		m.Boxed = true
		if opener == nil {
			return links
		}
		ct, err := privatebox.ParseBoxContent(s)
		if err != nil {
			return links
		}
		pt, ok := opener.Open(ct)
		if !ok {
			return links
		}
		m.Private = true
		contentRaw = pt
	}
	m.Content = contentRaw
	start := len(links)
	links = Fields(contentRaw, m, links)
	m.Links = links[start:len(links):len(links)]
	return links
}

var boxSuffix = []byte(privatebox.ContentSuffix + `"`)

// prepareMin is the fewest records a Prepare worker takes.
const prepareMin = 64

// Prepare decodes recs (consecutive log records, as a rebuild reads them)
// on every core, ahead of their Decode, which then only takes the result.
// The indexers sharing d each pass the same chunk: it is decoded once.
// Safe to call while another goroutine calls Decode; recs must stay
// unchanged until their Decode.
func (d *Decoder) Prepare(recs []store.Record) {
	if len(recs) == 0 || recs[0].Seq == 0 {
		return
	}
	span := [2]int64{recs[0].Seq, recs[len(recs)-1].Seq}
	d.mu.Lock()
	if span == d.lastPrep && recs[0].Key == d.prepKey {
		d.mu.Unlock()
		return
	}
	d.lastPrep, d.prepKey = span, recs[0].Key
	d.mu.Unlock()
	out := make([]prepared, len(recs))
	workers := min(runtime.GOMAXPROCS(0), (len(recs)+prepareMin-1)/prepareMin)
	per := (len(recs) + workers - 1) / workers
	var wg sync.WaitGroup
	for lo := 0; lo < len(recs); lo += per {
		hi := min(lo+per, len(recs))
		wg.Add(1)
		go func() {
			defer wg.Done()
			var links []Link // one backing array per worker, shared by its records
			for i := lo; i < hi; i++ {
				out[i].seq, out[i].key = recs[i].Seq, recs[i].Key
				links = decode(d.opener, &recs[i], &out[i].msg, links)
			}
		}()
	}
	wg.Wait()
	d.mu.Lock()
	d.ready = append(d.ready, out)
	d.mu.Unlock()
}

// takeReady moves rec's prepared result, if there is one, into d.msg,
// dropping results of records that were skipped.
func (d *Decoder) takeReady(rec *store.Record) bool {
	if rec.Seq == 0 {
		return false
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	for len(d.ready) > 0 {
		chunk := d.ready[0]
		for d.readyPos < len(chunk) && chunk[d.readyPos].seq < rec.Seq {
			d.readyPos++
		}
		if d.readyPos == len(chunk) {
			d.ready[0] = nil
			d.ready, d.readyPos = d.ready[1:], 0
			continue
		}
		p := &chunk[d.readyPos]
		if p.seq != rec.Seq || p.key != rec.Key {
			return false
		}
		d.msg = p.msg
		p.msg = Msg{}
		if d.readyPos++; d.readyPos == len(chunk) {
			d.ready[0] = nil
			d.ready, d.readyPos = d.ready[1:], 0
		}
		return true
	}
	return false
}

// Forget drops every result Prepare decoded ahead (before a rebuild,
// or after one that stopped early).
func (d *Decoder) Forget() {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.ready, d.readyPos, d.lastPrep, d.prepKey = nil, 0, [2]int64{}, feeds.MessageRef{}
	d.lastSeq = 0
}

// Fields fills m's Type, Links (appended to links), Root and Branch from
// the JSON object content; anything that is not an object yields nothing.
func Fields(content []byte, m *Msg, links []Link) []Link {
	_ = eachMember(content, func(k, v []byte) bool {
		key, ok := str(k)
		if !ok {
			return true
		}
		switch key {
		case "type":
			m.Type, _ = str(v)
		case "root":
			if s, ok := str(v); ok && IsMsgRef(s) {
				m.Root = s
			}
		case "branch":
			m.Branch = m.Branch[:0]
			if s, ok := str(v); ok && IsMsgRef(s) {
				m.Branch = append(m.Branch, s)
			} else if len(v) > 0 && v[0] == '[' {
				_ = eachElement(v, func(e []byte) bool {
					if s, ok := str(e); ok && IsMsgRef(s) {
						m.Branch = append(m.Branch, s)
					}
					return true
				})
			}
		}
		return true
	})
	return ExtractLinks(content, links)
}

// ExtractLinks appends the links of the JSON object content to dst, the
// way ssb-msgs indexLinks finds them: for each top-level key (the rel),
// a value that is a ref, an object whose "link" is a ref, or an array of
// such values. Input that is not a JSON object yields no links.
func ExtractLinks(content []byte, dst []Link) []Link {
	_ = eachMember(content, func(k, v []byte) bool {
		if len(v) == 0 {
			return true
		}
		rel, ok := str(k)
		if !ok {
			return true
		}
		one := func(v []byte) {
			var ref string
			switch v[0] {
			case '"':
				ref, _ = str(v)
			case '{':
				ref, _ = str(field(v, "link"))
			default:
				return
			}
			if IsLink(ref) {
				dst = append(dst, Link{Rel: rel, Dest: ref})
			}
		}
		if v[0] == '[' {
			_ = eachElement(v, func(e []byte) bool {
				if len(e) > 0 {
					one(e)
				}
				return true
			})
		} else {
			one(v)
		}
		return true
	})
	return dst
}

// IsLink reports whether s is a feed, message or blob id in sigil form.
func IsLink(s string) bool {
	if len(s) < 2 {
		return false
	}
	switch s[0] {
	case '@':
		_, err := feeds.ParseFeedRef(s)
		return err == nil
	case '%':
		return IsMsgRef(s)
	case '&':
		_, err := feeds.ParseBlobRef(s)
		return err == nil
	}
	return false
}

// IsMsgRef reports whether s is a message id in sigil form.
func IsMsgRef(s string) bool {
	if len(s) == 0 || s[0] != '%' {
		return false
	}
	_, err := feeds.ParseMessageRef(s)
	return err == nil
}

// Str decodes a raw JSON string (for the indexes' own fields).
func Str(raw []byte) (string, bool) { return str(raw) }

// Field returns the raw value of the member key of the JSON object obj.
func Field(obj []byte, key string) []byte { return field(obj, key) }

// EachMember calls fn with each member of the JSON object obj: the
// decoded key and the raw value.
func EachMember(obj []byte, fn func(key string, val []byte) bool) error {
	return eachMember(obj, func(k, v []byte) bool {
		ks, ok := str(k)
		if !ok {
			return true
		}
		return fn(ks, v)
	})
}

// AppendFloat appends f as 8 bytes that sort, bytewise, in numeric order.
func AppendFloat(dst []byte, f float64) []byte {
	b := math.Float64bits(f)
	if b&(1<<63) != 0 {
		b = ^b
	} else {
		b |= 1 << 63
	}
	return binary.BigEndian.AppendUint64(dst, b)
}

// Float decodes 8 bytes written by AppendFloat.
func Float(b []byte) float64 {
	u := binary.BigEndian.Uint64(b)
	if u&(1<<63) != 0 {
		u &^= 1 << 63
	} else {
		u = ^u
	}
	return math.Float64frombits(u)
}

// AppendSeq appends a receive sequence as 8 big-endian bytes.
func AppendSeq(dst []byte, seq int64) []byte {
	return binary.BigEndian.AppendUint64(dst, uint64(seq))
}

// TrailingSeq reads the receive sequence in the last 8 bytes of key (0
// when key is shorter).
func TrailingSeq(key []byte) int64 {
	if len(key) < 8 {
		return 0
	}
	return int64(binary.BigEndian.Uint64(key[len(key)-8:]))
}
