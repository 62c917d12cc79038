package query

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strings"
)

// A map-filter-reduce query (ssb-query, map-filter-reduce): stages
// applied in order to each {key, value, timestamp} record.
//
//	{"$filter": F}  F is a pattern: an object matches when every key of it
//	                matches the record's value at that key; a scalar
//	                matches an equal value; an object whose keys start
//	                with "$" is a test: $eq, $ne, $prefix, $gt, $gte, $lt,
//	                $lte, $in (an array of values), $is ("string",
//	                "number", "boolean", "object", "array", "null",
//	                "undefined").
//	{"$map": M}     M is true (the record), a key, a path (array of keys),
//	                or an object mapping new keys to such paths.
//
// $reduce is not supported (an error says so).

// Stage is one parsed stage.
type Stage struct {
	Filter *Pattern
	Map    *Mapper
}

// Pattern is a parsed $filter pattern.
type Pattern struct {
	Fields map[string]*Pattern // an object pattern
	Value  any                 // a scalar to equal (when Fields and Tests are nil)
	Tests  []Test              // a $-test object
	Scalar bool
}

// Test is one $-operator and its argument.
type Test struct {
	Op  string
	Arg any
}

// Mapper is a parsed $map.
type Mapper struct {
	Identity bool
	Path     []string
	Object   map[string]*Mapper
}

const maxPatternDepth = 32

// Parse parses a query: an array of stages or one stage object.
func Parse(raw json.RawMessage) ([]Stage, error) {
	var v any
	if len(raw) == 0 || string(raw) == "null" {
		return nil, nil
	}
	if err := json.Unmarshal(raw, &v); err != nil {
		return nil, fmt.Errorf("query: %w", err)
	}
	var stages []any
	switch t := v.(type) {
	case []any:
		stages = t
	case map[string]any:
		stages = []any{t}
	default:
		return nil, errors.New("query: want an array of stages ({$filter}, {$map})")
	}
	out := make([]Stage, 0, len(stages))
	for i, s := range stages {
		obj, ok := s.(map[string]any)
		if !ok || len(obj) != 1 {
			return nil, fmt.Errorf("query: stage %d: want an object with one of $filter, $map", i)
		}
		for k, arg := range obj {
			switch k {
			case "$filter":
				p, err := parsePattern(arg, 0)
				if err != nil {
					return nil, fmt.Errorf("query: stage %d: $filter: %w", i, err)
				}
				out = append(out, Stage{Filter: p})
			case "$map":
				m, err := parseMapper(arg, 0)
				if err != nil {
					return nil, fmt.Errorf("query: stage %d: $map: %w", i, err)
				}
				out = append(out, Stage{Map: m})
			case "$reduce":
				return nil, fmt.Errorf("query: stage %d: $reduce is not supported", i)
			default:
				return nil, fmt.Errorf("query: stage %d: unknown stage %q", i, k)
			}
		}
	}
	return out, nil
}

func parsePattern(v any, depth int) (*Pattern, error) {
	if depth > maxPatternDepth {
		return nil, errors.New("pattern nested too deeply")
	}
	obj, ok := v.(map[string]any)
	if !ok {
		if _, isArr := v.([]any); isArr {
			return nil, errors.New("an array is not a pattern (use {$in: [...]})")
		}
		return &Pattern{Value: v, Scalar: true}, nil
	}
	p := &Pattern{}
	for k, sub := range obj {
		if strings.HasPrefix(k, "$") {
			t := Test{Op: k, Arg: sub}
			switch k {
			case "$eq", "$ne":
			case "$prefix":
				if _, ok := sub.(string); !ok {
					return nil, errors.New("$prefix wants a string")
				}
			case "$gt", "$gte", "$lt", "$lte":
				switch sub.(type) {
				case string, float64:
				default:
					return nil, fmt.Errorf("%s wants a string or a number", k)
				}
			case "$in":
				if _, ok := sub.([]any); !ok {
					return nil, errors.New("$in wants an array")
				}
			case "$is":
				if _, ok := sub.(string); !ok {
					return nil, errors.New("$is wants a type name")
				}
			default:
				return nil, fmt.Errorf("unknown operator %s", k)
			}
			p.Tests = append(p.Tests, t)
			continue
		}
		sp, err := parsePattern(sub, depth+1)
		if err != nil {
			return nil, err
		}
		if p.Fields == nil {
			p.Fields = map[string]*Pattern{}
		}
		p.Fields[k] = sp
	}
	if p.Tests != nil && p.Fields != nil {
		return nil, errors.New("a pattern mixes $-operators and keys")
	}
	return p, nil
}

func parseMapper(v any, depth int) (*Mapper, error) {
	if depth > maxPatternDepth {
		return nil, errors.New("map nested too deeply")
	}
	switch t := v.(type) {
	case bool:
		if !t {
			return nil, errors.New("$map: false maps nothing")
		}
		return &Mapper{Identity: true}, nil
	case string:
		return &Mapper{Path: []string{t}}, nil
	case []any:
		path := make([]string, 0, len(t))
		for _, e := range t {
			switch s := e.(type) {
			case string:
				path = append(path, s)
			case float64:
				path = append(path, fmt.Sprint(s))
			default:
				return nil, errors.New("a path holds strings")
			}
		}
		return &Mapper{Path: path}, nil
	case map[string]any:
		m := &Mapper{Object: map[string]*Mapper{}}
		for k, sub := range t {
			sm, err := parseMapper(sub, depth+1)
			if err != nil {
				return nil, err
			}
			m.Object[k] = sm
		}
		return m, nil
	}
	return nil, errors.New("want true, a key, a path or an object")
}

// Match reports whether v matches p.
func (p *Pattern) Match(v any, present bool) bool {
	if p.Scalar {
		return present && equal(v, p.Value)
	}
	if p.Tests != nil {
		for _, t := range p.Tests {
			if !t.match(v, present) {
				return false
			}
		}
		return true
	}
	obj, ok := v.(map[string]any)
	if !ok {
		return false
	}
	for k, sub := range p.Fields {
		fv, has := obj[k]
		if !sub.Match(fv, has) {
			return false
		}
	}
	return true
}

func (t Test) match(v any, present bool) bool {
	switch t.Op {
	case "$eq":
		return present && equal(v, t.Arg)
	case "$ne":
		return !present || !equal(v, t.Arg)
	case "$prefix":
		s, ok := v.(string)
		return ok && strings.HasPrefix(s, t.Arg.(string))
	case "$gt", "$gte", "$lt", "$lte":
		c, ok := compare(v, t.Arg)
		if !ok {
			return false
		}
		switch t.Op {
		case "$gt":
			return c > 0
		case "$gte":
			return c >= 0
		case "$lt":
			return c < 0
		}
		return c <= 0
	case "$in":
		for _, e := range t.Arg.([]any) {
			if present && equal(v, e) {
				return true
			}
		}
		return false
	case "$is":
		return typeName(v, present) == t.Arg.(string)
	}
	return false
}

func typeName(v any, present bool) string {
	if !present {
		return "undefined"
	}
	switch v.(type) {
	case nil:
		return "null"
	case string:
		return "string"
	case float64:
		return "number"
	case bool:
		return "boolean"
	case []any:
		return "array"
	}
	return "object"
}

func equal(a, b any) bool {
	switch x := a.(type) {
	case string:
		y, ok := b.(string)
		return ok && x == y
	case float64:
		y, ok := b.(float64)
		return ok && x == y
	case bool:
		y, ok := b.(bool)
		return ok && x == y
	case nil:
		return b == nil
	}
	return false
}

// compare orders two strings or two numbers.
func compare(a, b any) (int, bool) {
	switch x := a.(type) {
	case string:
		y, ok := b.(string)
		if !ok {
			return 0, false
		}
		return strings.Compare(x, y), true
	case float64:
		y, ok := b.(float64)
		if !ok || math.IsNaN(x) || math.IsNaN(y) {
			return 0, false
		}
		switch {
		case x < y:
			return -1, true
		case x > y:
			return 1, true
		}
		return 0, true
	}
	return 0, false
}

// Apply maps v.
func (m *Mapper) Apply(v any) (any, bool) {
	switch {
	case m.Identity:
		return v, true
	case m.Path != nil:
		for _, k := range m.Path {
			obj, ok := v.(map[string]any)
			if !ok {
				return nil, false
			}
			if v, ok = obj[k]; !ok {
				return nil, false
			}
		}
		return v, true
	}
	out := map[string]any{}
	for k, sub := range m.Object {
		if r, ok := sub.Apply(v); ok {
			out[k] = r
		}
	}
	return out, true
}

// Run applies the stages to one record; ok is false when a filter drops it
// (or a map finds nothing: ssb-query drops undefined results).
func Run(stages []Stage, v any) (any, bool) {
	for _, s := range stages {
		if s.Filter != nil {
			if !s.Filter.Match(v, true) {
				return nil, false
			}
			continue
		}
		var ok bool
		if v, ok = s.Map.Apply(v); !ok {
			return nil, false
		}
	}
	return v, true
}
