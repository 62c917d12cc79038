package invite

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"sync"

	"github.com/cask-ssb/cask/feeds"
)

// Errors of Codes.Claim. ErrExpired's text is ssb-invite's.
var (
	ErrUnknown = errors.New("unknown invite")
	ErrExpired = errors.New("invite has expired")
)

// Entry is one invite a pub created, under the invite key's id, as
// ssb-invite stores it ({id, total, used, note}); the seed is never stored.
type Entry struct {
	ID      feeds.FeedRef `json:"id"`
	Total   int           `json:"total"`
	Used    int           `json:"used"`
	Note    string        `json:"note,omitempty"`
	Created int64         `json:"created"` // ms since epoch
}

// Codes are the invites this node created, kept in one JSON file (mode
// 0600) that every change rewrites atomically (write, fsync, rename), so a
// use is counted once even across a crash.
type Codes struct {
	path string

	mu sync.Mutex
	m  map[feeds.FeedRef]*Entry
}

type codesFile struct {
	Invites []Entry `json:"invites"`
}

// OpenCodes reads the invites file at path (absent: no invites yet).
func OpenCodes(path string) (*Codes, error) {
	c := &Codes{path: path, m: map[feeds.FeedRef]*Entry{}}
	data, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return c, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read invites: %w", err)
	}
	var f codesFile
	if err := json.Unmarshal(data, &f); err != nil {
		return nil, fmt.Errorf("read invites %s: %w", path, err)
	}
	for _, e := range f.Invites {
		if e.Total < 1 || e.Used < 0 {
			return nil, fmt.Errorf("read invites %s: invite %s has total %d, used %d", path, e.ID, e.Total, e.Used)
		}
		c.m[e.ID] = &e
	}
	return c, nil
}

// Add stores a new invite.
func (c *Codes) Add(e Entry) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, dup := c.m[e.ID]; dup {
		return fmt.Errorf("invite %s exists already", e.ID)
	}
	c.m[e.ID] = &e
	if err := c.saveLocked(); err != nil {
		delete(c.m, e.ID)
		return err
	}
	return nil
}

// Usable reports whether id is an invite with uses left.
func (c *Codes) Usable(id feeds.FeedRef) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	e := c.m[id]
	return e != nil && e.Used < e.Total
}

// Claim counts one use of invite id, durably, and returns the invite as it
// is after the use. An exhausted invite gives ErrExpired, an unknown one
// ErrUnknown.
func (c *Codes) Claim(id feeds.FeedRef) (Entry, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e := c.m[id]
	if e == nil {
		return Entry{}, ErrUnknown
	}
	if e.Used >= e.Total {
		return Entry{}, ErrExpired
	}
	e.Used++
	if err := c.saveLocked(); err != nil {
		e.Used--
		return Entry{}, err
	}
	return *e, nil
}

// Release gives back a use counted by Claim (the follow that the use pays
// for could not be published).
func (c *Codes) Release(id feeds.FeedRef) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	e := c.m[id]
	if e == nil || e.Used == 0 {
		return nil
	}
	e.Used--
	if err := c.saveLocked(); err != nil {
		e.Used++
		return err
	}
	return nil
}

// List returns the invites, oldest first.
func (c *Codes) List() []Entry {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make([]Entry, 0, len(c.m))
	for _, e := range c.m {
		out = append(out, *e)
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Created != out[j].Created {
			return out[i].Created < out[j].Created
		}
		return out[i].ID.String() < out[j].ID.String()
	})
	return out
}

func (c *Codes) saveLocked() error {
	f := codesFile{Invites: make([]Entry, 0, len(c.m))}
	for _, e := range c.m {
		f.Invites = append(f.Invites, *e)
	}
	sort.Slice(f.Invites, func(i, j int) bool { return f.Invites[i].ID.String() < f.Invites[j].ID.String() })
	data, err := json.MarshalIndent(f, "", "  ")
	if err != nil {
		return err
	}
	if err := writeFileSync(c.path, append(data, '\n')); err != nil {
		return fmt.Errorf("write invites: %w", err)
	}
	return nil
}

// writeFileSync replaces path with data: a temporary file, fsync'd, then
// renamed over it, then the directory fsync'd.
func writeFileSync(path string, data []byte) error {
	tmp := path + ".tmp"
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return err
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp, path); err != nil {
		return err
	}
	if d, err := os.Open(filepath.Dir(path)); err == nil {
		_ = d.Sync()
		d.Close()
	}
	return nil
}
