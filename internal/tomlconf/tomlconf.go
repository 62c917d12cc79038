// Package tomlconf reads a daemon's config.toml (sbot, room) strictly:
// unknown keys are an error naming the known ones, and errors name the
// file, the position and the key in the words of the file, never Go types.
package tomlconf

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"reflect"
	"regexp"
	"slices"
	"strings"

	"github.com/pelletier/go-toml/v2"
)

// Load decodes the file at path into v, a pointer to a struct whose fields
// carry `toml:"key"` tags, and returns the keys the file sets. A missing
// file sets nothing and is not an error.
func Load(path string, v any) (keys []string, err error) {
	data, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read config: %w", err)
	}
	dec := toml.NewDecoder(strings.NewReader(string(data)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return nil, decodeError(path, v, err)
	}
	var present map[string]any
	if err := toml.Unmarshal(data, &present); err == nil {
		for k := range present {
			keys = append(keys, k)
		}
	}
	slices.Sort(keys)
	return keys, nil
}

// Keys lists the config.toml keys of the struct v points to, in field order.
func Keys(v any) []string {
	var keys []string
	t := reflect.TypeOf(v)
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	for f := range t.Fields() {
		if k := tagKey(f); k != "" {
			keys = append(keys, k)
		}
	}
	return keys
}

func tagKey(f reflect.StructField) string {
	k, _, _ := strings.Cut(f.Tag.Get("toml"), ",")
	if k == "-" {
		return ""
	}
	return k
}

// decodeError says what is wrong in the file, with its position.
func decodeError(path string, v any, err error) error {
	var strict *toml.StrictMissingError
	if errors.As(err, &strict) {
		var keys []string
		for _, e := range strict.Errors {
			keys = append(keys, strings.Join(e.Key(), "."))
		}
		return fmt.Errorf("%s: unknown setting %s (known: %s)", path, strings.Join(keys, ", "), strings.Join(Keys(v), ", "))
	}
	var de *toml.DecodeError
	if errors.As(err, &de) {
		row, col := de.Position()
		return fmt.Errorf("%s:%d:%d: %s", path, row, col, human(v, de))
	}
	return fmt.Errorf("%s: %s", path, human(v, err))
}

// human rewords go-toml's type errors, which name Go types ("cannot
// decode TOML string into struct field sbot.Config.MaxConns of type int").
func human(v any, err error) string {
	msg := strings.TrimPrefix(err.Error(), "toml: ")
	if m := typeErr.FindStringSubmatch(msg); m != nil {
		return fmt.Sprintf("%s: want %s, got a TOML %s", fieldKey(v, m[2]), kind(m[3]), m[1])
	}
	return msg
}

var typeErr = regexp.MustCompile(`cannot decode TOML (\w+) into struct field \S*?\.?\w+\.(\w+) of type (\S+)`)

// fieldKey maps a field name of the struct v points to to its key.
func fieldKey(v any, field string) string {
	t := reflect.TypeOf(v)
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if f, ok := t.FieldByName(field); ok {
		if k := tagKey(f); k != "" {
			return k
		}
	}
	return field
}

func kind(t string) string {
	switch {
	case strings.HasPrefix(t, "int"), strings.HasPrefix(t, "uint"), strings.HasPrefix(t, "float"):
		return "a number"
	case t == "string":
		return "a string"
	case t == "bool":
		return "true or false"
	case strings.HasPrefix(t, "[]"):
		return "a list"
	}
	return "another type"
}
