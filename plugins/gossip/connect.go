package gossip

import (
	"context"
	"errors"

	"github.com/cask-ssb/cask/muxrpc"
)

// Connector dials peers; the daemon implements it.
type Connector interface {
	// ConnectAddress dials a multiserver address ("net:HOST:PORT~shs:KEY")
	// and keeps the connection after the call returns.
	ConnectAddress(ctx context.Context, address string) error
}

// RegisterConnect adds gossip.connect (owner only, as in the JS stack):
// dial a peer now. It answers once the secret handshake is done.
func RegisterConnect(m *muxrpc.Mux, c Connector) {
	m.RegisterAsync(muxrpc.Method{"gossip", "connect"}, func(ctx context.Context, req *muxrpc.Request) (any, error) {
		var addr string
		if err := req.Arg(0, &addr); err != nil {
			var opt struct {
				Address string `json:"address"`
			}
			if err2 := req.Arg(0, &opt); err2 != nil || opt.Address == "" {
				return nil, errors.New("gossip.connect: want a multiserver address (net:HOST:PORT~shs:KEY)")
			}
			addr = opt.Address
		}
		if err := c.ConnectAddress(ctx, addr); err != nil {
			return nil, err
		}
		return true, nil
	})
}
