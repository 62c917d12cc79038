package sbot

import (
	"fmt"

	"github.com/cask-ssb/cask/feeds"
)

// Peers added with `sbot connect --remember` are kept in REPO/peers.json
// (the address book's file, addrbook.go) with source "remembered", and
// redialled after a restart.

// loadRemembered reads the address book and returns the remembered
// peers' addresses.
func (m *connManager) loadRemembered() ([]feeds.Address, error) {
	if err := m.n.addrs.load(); err != nil {
		return nil, err
	}
	return m.n.addrs.withSource(SourceRemembered), nil
}

// rememberPeer adds a (replacing an older address of the same peer) and
// saves the book at once.
func (m *connManager) rememberPeer(a feeds.Address) error {
	m.n.addrs.rememberOnly(a)
	if err := m.n.addrs.save(m.n.now()); err != nil {
		return fmt.Errorf("remember %s: %w", a, err)
	}
	return nil
}

// forgetPeer removes every address of id from the book and saves it.
func (m *connManager) forgetPeer(id feeds.FeedRef) error {
	m.n.addrs.forget(id)
	if err := m.n.addrs.save(m.n.now()); err != nil {
		return fmt.Errorf("forget %s: %w", id, err)
	}
	return nil
}
