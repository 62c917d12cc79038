// Package links serves links (ssb-db's links view: names, options and
// output shapes) from the links index (indexes/links). Owner only.
package links

import (
	"context"
	"encoding/json"
	"errors"
	"strings"

	"github.com/cask-ssb/cask/feeds/store"
	"github.com/cask-ssb/cask/indexes/content"
	"github.com/cask-ssb/cask/indexes/links"
	"github.com/cask-ssb/cask/muxrpc"
	"github.com/cask-ssb/cask/plugins/history"
	"github.com/cask-ssb/cask/plugins/service"
	"github.com/cask-ssb/cask/plugins/viewread"
)

// Options are links' JS options. Source and Dest are ids, or a sigil
// ("@", "%", "&", or "feed", "msg", "blob") for every id of that kind.
type Options struct {
	Source  string   `json:"source"`
	Dest    string   `json:"dest"`
	Rel     string   `json:"rel"`
	Live    *bool    `json:"live"`
	Old     *bool    `json:"old"`
	Reverse *bool    `json:"reverse"`
	Limit   *float64 `json:"limit"`
	Keys    *bool    `json:"keys"`
	Values  *bool    `json:"values"`
	Meta    *bool    `json:"meta"`
}

func sigil(s string) string {
	switch s {
	case "feed":
		return "@"
	case "msg":
		return "%"
	case "blob":
		return "&"
	}
	return s
}

// Item is one result with meta (the default shape).
type Item struct {
	Source string          `json:"source"`
	Rel    string          `json:"rel"`
	Dest   string          `json:"dest"`
	Key    string          `json:"key,omitempty"`
	Value  json.RawMessage `json:"value,omitempty"`
}

// Plan is a links query: the index range and the filters.
type Plan struct {
	Query  viewread.Query
	Opts   Options
	Source string
	Dest   string
}

// match tests an id against a wanted one ("" anything, a sigil: its kind).
func match(got, want string) bool {
	if want == "" {
		return true
	}
	if len(want) == 1 {
		return strings.HasPrefix(got, want)
	}
	return got == want
}

// NewPlan validates o and returns its plan.
func NewPlan(o Options) (Plan, error) {
	keys, meta, values := viewread.Flag(o.Keys, true), viewread.Flag(o.Meta, true), viewread.Flag(o.Values, false)
	if !keys && !meta && !values {
		return Plan{}, errors.New("links: makes no sense to return stream without results: set at least one of {keys, values, meta} to true")
	}
	if strings.IndexByte(o.Rel, 0) >= 0 {
		return Plan{}, errors.New("links: rel holds a NUL byte")
	}
	p := Plan{Opts: o, Source: sigil(o.Source), Dest: sigil(o.Dest)}
	back := p.Dest != "" && p.Source == ""
	from := p.Source
	dir := byte('F')
	if back {
		from, dir = p.Dest, 'B'
	}
	prefix := []byte{dir}
	switch {
	case from == "":
	case len(from) == 1:
		prefix = append(prefix, from...)
	default:
		prefix = append(append(prefix, from...), 0)
		if o.Rel != "" {
			prefix = append(append(prefix, o.Rel...), 0)
		}
	}
	p.Query = viewread.Query{
		Range: store.IndexRange{Index: links.Name, Lo: prefix, Hi: prefixEnd(prefix), Reverse: viewread.Flag(o.Reverse, false)},
		Seq:   func(e store.IndexEntry) int64 { return content.TrailingSeq(e.Key) },
		Keep: func(e store.IndexEntry) bool {
			l, ok := links.Decode(e.Key)
			return ok && p.accept(l.Source, l.Rel, l.Dest)
		},
		Old:   viewread.Flag(o.Old, true),
		Live:  viewread.Flag(o.Live, false),
		Limit: history.Limit(o.Limit),
	}
	return p, nil
}

func (p Plan) accept(source, rel, dest string) bool {
	return (p.Opts.Rel == "" || p.Opts.Rel == rel) && match(source, p.Source) && match(dest, p.Dest)
}

func prefixEnd(p []byte) []byte {
	end := append([]byte(nil), p...)
	for i := len(end) - 1; i >= 0; i-- {
		end[i]++
		if end[i] != 0 {
			return end[:i+1]
		}
	}
	return nil
}

// Encode returns the stream item of one link in the JS shape.
func (p Plan) Encode(source, rel, dest string, rec store.Record) any {
	keys, meta, values := viewread.Flag(p.Opts.Keys, true), viewread.Flag(p.Opts.Meta, true), viewread.Flag(p.Opts.Values, false)
	if !meta {
		switch {
		case keys && values:
			return struct {
				Key   string          `json:"key"`
				Value json.RawMessage `json:"value"`
			}{rec.Key.String(), rec.Value}
		case keys:
			return rec.Key.String()
		default:
			return json.RawMessage(rec.Value)
		}
	}
	it := Item{Source: source, Rel: rel, Dest: dest}
	if keys {
		it.Key = rec.Key.String()
	}
	if values {
		it.Value = rec.Value
	}
	return it
}

// Service declares links (owner only).
func Service(st viewread.Store) service.Service {
	m := service.Source("links", service.Owner, func(ctx context.Context, req *muxrpc.Request, out *muxrpc.Sink) error {
		var o Options
		if err := viewread.Options(req.Args, &o, nil); err != nil {
			return err
		}
		p, err := NewPlan(o)
		if err != nil {
			return err
		}
		if p.Query.Limit < 0 {
			return nil
		}
		var live []content.Link // links of the live record being matched
		dec := content.NewDecoder(nil)
		p.Query.Match = func(rec *store.Record) bool {
			live = live[:0]
			for _, l := range dec.Decode(rec).Links {
				if p.accept(rec.Author.String(), l.Rel, l.Dest) {
					live = append(live, l)
				}
			}
			return len(live) > 0
		}
		ctx, cancel := context.WithCancel(ctx)
		defer cancel()
		go func() {
			select {
			case <-out.Done():
				cancel()
			case <-ctx.Done():
			}
		}()
		for e, err := range viewread.Run(ctx, st, p.Query) {
			if err != nil {
				if ctx.Err() != nil {
					return nil
				}
				return err
			}
			var items []any
			if e.Index.Key != nil {
				l, _ := links.Decode(e.Index.Key)
				items = append(items, p.Encode(l.Source, l.Rel, l.Dest, e.Record))
			} else {
				for _, l := range live {
					items = append(items, p.Encode(e.Record.Author.String(), l.Rel, l.Dest, e.Record))
				}
			}
			for _, it := range items {
				if err := out.Write(it); err != nil {
					return nil
				}
			}
		}
		return nil
	})
	return service.Service{Name: "links", Methods: []service.Method{m}}
}
