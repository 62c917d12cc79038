package mesh

import (
	"context"
	"errors"
	"fmt"

	"github.com/cask-ssb/cask/feeds"
	"github.com/cask-ssb/cask/muxrpc"
	"github.com/cask-ssb/cask/plugins/httpauth"
)

// Sign-in with SSB across nodes: the browser's page and the member's app
// may be on different nodes.
var (
	// MethodRequestSolution (async, args [cid, sc, cc]): the node holding
	// cid asks its app for the solution (client-initiated sign-in) and
	// answers it; ErrNotHere if it does not hold cid.
	MethodRequestSolution = muxrpc.Method{"mesh", "requestSolution"}
	// MethodSendSolution (async, args [cid, sc, cc, sol]): a solution the
	// app sent to another node (server-initiated sign-in) for a challenge
	// that may be this node's. The node verifies it as if it came
	// directly: the signature is by cid.
	MethodSendSolution = muxrpc.Method{"mesh", "sendSolution"}
)

// Solutions completes server-initiated sign-ins on this node (the web
// side); see Options.Solutions.
type Solutions interface {
	SendSolution(ctx context.Context, cid feeds.FeedRef, sc, cc, sol string) error
}

// ParseSolutionArgs decodes the args of mesh.requestSolution (n = 3) and
// mesh.sendSolution (n = 4): a feed id, then strings.
func ParseSolutionArgs(raw []byte, n int) (feeds.FeedRef, []string, error) {
	args, err := httpauth.StringArgs(raw, n)
	if err != nil {
		return feeds.FeedRef{}, nil, fmt.Errorf("mesh sign-in: %w", err)
	}
	cid, err := feeds.ParseFeedRef(args[0])
	if err != nil {
		return feeds.FeedRef{}, nil, fmt.Errorf("mesh sign-in: cid: %w", err)
	}
	return cid, args[1:], nil
}

func (n *Node) registerSignIn(m *muxrpc.Mux) {
	m.RegisterAsync(MethodRequestSolution, func(ctx context.Context, req *muxrpc.Request) (any, error) {
		cid, a, err := ParseSolutionArgs(req.Args, 3)
		if err != nil {
			return nil, err
		}
		ep, ok := n.o.Att.Lookup(cid)
		if !ok {
			return nil, fmt.Errorf("%w: %s", ErrNotHere, cid)
		}
		return httpauth.RequestSolution(ctx, ep, a[0], a[1])
	})
	m.RegisterAsync(MethodSendSolution, func(ctx context.Context, req *muxrpc.Request) (any, error) {
		cid, a, err := ParseSolutionArgs(req.Args, 4)
		if err != nil {
			return nil, err
		}
		if n.o.Solutions == nil {
			return nil, errors.New("mesh: this node has no web side")
		}
		if err := n.o.Solutions.SendSolution(ctx, cid, a[0], a[1], a[2]); err != nil {
			return nil, err
		}
		return true, nil
	})
}

// linkEndpoints returns the up links, or only those to the nodes in
// holders (attendant-set names) if holders is not nil.
func (n *Node) linkEndpoints(holders []string) []*muxrpc.Endpoint {
	n.mu.Lock()
	defer n.mu.Unlock()
	var eps []*muxrpc.Endpoint
	if holders == nil {
		for _, l := range n.links {
			eps = append(eps, l.ep)
		}
		return eps
	}
	for _, h := range holders {
		if l := n.links[h[len("mesh:"):]]; l != nil {
			eps = append(eps, l.ep)
		}
	}
	return eps
}

// RequestSolution asks the node holding cid for its app's solution to
// (sc, cc): a client-initiated sign-in on this node's web side for a
// member connected to another node.
func (n *Node) RequestSolution(ctx context.Context, cid feeds.FeedRef, sc, cc string) (string, error) {
	errs := []error{fmt.Errorf("%w: no node holds %s", ErrNotHere, cid)}
	for _, ep := range n.linkEndpoints(n.o.Att.Holders(cid)) {
		var sol string
		err := ep.Async(ctx, &sol, MethodRequestSolution, cid.String(), sc, cc)
		if err == nil {
			return sol, nil
		}
		errs = append(errs, failure(err))
	}
	if len(errs) > 1 {
		errs = errs[1:]
	}
	return "", errors.Join(errs...)
}

// SendSolution offers a solution to every other node (the challenge is
// one node's); it returns nil when one took it.
func (n *Node) SendSolution(ctx context.Context, cid feeds.FeedRef, sc, cc, sol string) error {
	var errs []error
	for _, ep := range n.linkEndpoints(nil) {
		var ok bool
		err := ep.Async(ctx, &ok, MethodSendSolution, cid.String(), sc, cc, sol)
		if err == nil {
			return nil
		}
		errs = append(errs, failure(err))
	}
	if len(errs) == 0 {
		return errors.New("mesh: no other node is linked")
	}
	return errors.Join(errs...)
}
