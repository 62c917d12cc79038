package sbot

import (
	"context"
	"errors"
	"fmt"
	"net"
	"path/filepath"
	"strings"

	"github.com/cask-ssb/cask/feeds"
	"github.com/cask-ssb/cask/muxrpc"
	"github.com/cask-ssb/cask/plugins/invite"
	"github.com/cask-ssb/cask/plugins/service"
	"github.com/cask-ssb/cask/secretstream"
)

// Legacy pub invites (protocol.md §7.4, plugins/invite): the invites we
// create are kept in REPO/invites.json (the invite key's id and its uses,
// never the seed).

func invitesFile(repo string) string { return filepath.Join(repo, "invites.json") }

// inviteService wires plugins/invite into the node.
func (n *Node) inviteService() (service.Service, error) {
	codes, err := invite.OpenCodes(invitesFile(n.cfg.Repo))
	if err != nil {
		return service.Service{}, err
	}
	return invite.Service(invite.Options{
		Self:      n.keys.ID,
		Codes:     codes,
		Publisher: n.writer,
		Follows:   n.graph.Follows,
		Address:   n.inviteAddress,
		Dial:      n.dialWithInvite,
		Connect: func(ctx context.Context, a feeds.Address) error {
			_, err := n.conns.dial(ctx, a)
			return err
		},
		AcceptWeb: n.claimRoomInvite,
		Now:       n.now,
		Logger:    n.log.With("component", "invite"),
	}), nil
}

// inviteAddress is the host and port our invite codes name: the TCP
// listener's. A listener on every interface has no one host to name: the
// port is returned with an error asking for the public host name.
func (n *Node) inviteAddress() (string, int, error) { return inviteAddressOf(n.Listen()) }

func inviteAddressOf(listen []string) (string, int, error) {
	for _, l := range listen {
		a, err := feeds.ParseAddress(l)
		if err != nil || a.Transport != feeds.TransportNet {
			continue
		}
		// "net:::8008" (all of IPv6) reads back with the host ":".
		if ip := net.ParseIP(a.Host); strings.Trim(a.Host, ":") == "" || ip != nil && ip.IsUnspecified() {
			return "", a.Port, fmt.Errorf("the daemon listens on every interface (%s): give the host name peers reach it at (external, sbot invite create --external HOST)", l)
		}
		return a.Host, a.Port, nil
	}
	return "", 0, errors.New("the daemon has no TCP listener (--listen off): a pub invite needs one")
}

// dialWithInvite connects to a pub with an invite's key pair, outside the
// connection manager: the session only calls invite.use and is closed.
func (n *Node) dialWithInvite(ctx context.Context, a feeds.Address, kp feeds.KeyPair) (*muxrpc.Endpoint, error) {
	sc, err := secretstream.Dial(ctx, "tcp", a.DialAddr(), secretstream.AppKey(n.caps), kp.Private, a.Key.PublicKey())
	if err != nil {
		return nil, err
	}
	return muxrpc.NewEndpoint(ctx, sc, nil, muxrpc.Options{RemoteKey: sc.RemoteKey(), Logger: n.log.With("component", "invite")}), nil
}
