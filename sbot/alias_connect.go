package sbot

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/cask-ssb/cask/internal/roomweb"
)

// Connecting to a peer by its alias in a room (protocol.md §8.7):
// `sbot connect https://ROOM/alias/NAME` or the consume-alias ssb: URI.
// The alias JSON is fetched (encoding=json) and its signature over
// =room-alias-registration:ROOM:USER:ALIAS checked against USER's key; a
// forged alias is refused. We then tunnel to USER through the room,
// dialling the room first when it is not one we joined.

// webTimeout bounds one HTTP exchange with a room's web side.
const webTimeout = 30 * time.Second

// webClient is the HTTP client for rooms' web endpoints.
func (n *Node) webClient() *http.Client { return &http.Client{Timeout: webTimeout} }

// connectAlias resolves an alias link and tunnels to its owner.
func (n *Node) connectAlias(ctx context.Context, link string, remember bool) error {
	a, err := roomweb.ResolveAlias(ctx, n.webClient(), link)
	if err != nil {
		return fmt.Errorf("connect %s: %w", link, err)
	}
	if a.User == n.keys.ID {
		return errors.New("connect: that alias is our own")
	}
	if n.conns.peer(a.Room) == nil && !n.rooms.isRoom(a.Room) {
		dctx, cancel := context.WithTimeout(ctx, webTimeout)
		_, err := n.conns.dial(dctx, a.RoomAddress)
		cancel()
		if err != nil {
			return fmt.Errorf("connect to alias %q: room %s: %w", a.Alias, a.RoomAddress, err)
		}
	}
	if err := n.conns.ConnectAddress(ctx, a.TunnelAddress().String(), remember); err != nil {
		return fmt.Errorf("connect to alias %q (%s) through room %s: %w", a.Alias, a.User, a.Room, err)
	}
	return nil
}
