package sbot

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/cask-ssb/cask/feeds"
)

// Peers added with `sbot connect --remember` are kept in REPO/peers.json
// and redialled after a restart:
//
//	{"peers":[{"address":"net:HOST:PORT~shs:KEY"}]}

// rememberedFile is REPO/peers.json.
func rememberedFile(repo string) string { return filepath.Join(repo, "peers.json") }

type rememberedPeers struct {
	Peers []rememberedPeer `json:"peers"`
}

type rememberedPeer struct {
	Address string `json:"address"`
}

func readRemembered(repo string) (rememberedPeers, error) {
	var r rememberedPeers
	data, err := os.ReadFile(rememberedFile(repo))
	if errors.Is(err, fs.ErrNotExist) {
		return r, nil
	}
	if err != nil {
		return r, fmt.Errorf("read remembered peers: %w", err)
	}
	if err := json.Unmarshal(data, &r); err != nil {
		return r, fmt.Errorf("read remembered peers %s: %w", rememberedFile(repo), err)
	}
	return r, nil
}

func writeRemembered(repo string, r rememberedPeers) error {
	data, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return err
	}
	path := rememberedFile(repo)
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, append(data, '\n'), 0o600); err != nil {
		return fmt.Errorf("write remembered peers: %w", err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("write remembered peers: %w", err)
	}
	return nil
}

// loadRemembered returns the remembered peers' addresses.
func (m *connManager) loadRemembered() ([]feeds.Address, error) {
	repo := m.n.cfg.Repo
	m.rememberMu.Lock()
	defer m.rememberMu.Unlock()
	r, err := readRemembered(repo)
	if err != nil {
		return nil, err
	}
	var out []feeds.Address
	for _, p := range r.Peers {
		a, err := feeds.ParseAddress(p.Address)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", rememberedFile(repo), err)
		}
		out = append(out, a)
	}
	return out, nil
}

// rememberPeer adds a (replacing an older address of the same peer).
func (m *connManager) rememberPeer(a feeds.Address) error {
	repo := m.n.cfg.Repo
	m.rememberMu.Lock()
	defer m.rememberMu.Unlock()
	r, err := readRemembered(repo)
	if err != nil {
		return err
	}
	kept := r.Peers[:0]
	for _, p := range r.Peers {
		if old, err := feeds.ParseAddress(p.Address); err == nil && old.Key == a.Key {
			continue
		}
		kept = append(kept, p)
	}
	r.Peers = append(kept, rememberedPeer{Address: a.String()})
	return writeRemembered(repo, r)
}

// forgetPeer removes every remembered address of id.
func (m *connManager) forgetPeer(id feeds.FeedRef) error {
	repo := m.n.cfg.Repo
	m.rememberMu.Lock()
	defer m.rememberMu.Unlock()
	r, err := readRemembered(repo)
	if err != nil {
		return err
	}
	kept := r.Peers[:0]
	for _, p := range r.Peers {
		if old, err := feeds.ParseAddress(p.Address); err == nil && old.Key == id {
			continue
		}
		kept = append(kept, p)
	}
	if len(kept) == len(r.Peers) {
		return nil
	}
	r.Peers = kept
	return writeRemembered(repo, r)
}
