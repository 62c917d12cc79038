package sbot

import (
	"context"
	"fmt"

	"github.com/cask-ssb/cask/internal/roomweb"
	"github.com/cask-ssb/cask/plugins/status"
)

// Claiming a room's HTTP invite (protocol.md §8.8), what
// `sbot invite accept https://ROOM/join?invite=…` (or the
// claim-http-invite ssb: URI) does: GET the invite with encoding=json,
// POST {id, invite} to its postTo, then join the room at the
// multiserverAddress of the answer (kept in REPO/rooms.json, like
// `sbot room join`).

// ClaimResult is what invite.accept answers for an HTTP invite.
type ClaimResult struct {
	Room    string      `json:"room"`
	Address string      `json:"address"`
	Joined  status.Room `json:"joined"`
}

// claimRoomInvite claims the invite at link and joins its room.
func (n *Node) claimRoomInvite(ctx context.Context, link string) (any, error) {
	hc := n.webClient()
	inv, err := roomweb.ResolveInvite(ctx, hc, link)
	if err != nil {
		return nil, fmt.Errorf("invite.accept: %w", err)
	}
	addr, err := roomweb.Claim(ctx, hc, inv, n.keys.ID)
	if err != nil {
		return nil, fmt.Errorf("invite.accept: %w", err)
	}
	r, err := n.rooms.join(ctx, addr)
	if err != nil {
		return nil, fmt.Errorf("invite.accept: claimed, but %w", err)
	}
	return ClaimResult{Room: addr.Key.String(), Address: addr.String(), Joined: r}, nil
}
