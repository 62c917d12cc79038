package client

import (
	"context"
	"encoding/json"
	"iter"

	"github.com/cask-ssb/cask/muxrpc"
)

// Typed helpers for the query methods (indexes): each takes the JS
// options as a map, so every option the daemon knows can be passed.

// MessagesByType streams the messages of a content type (opts: type,
// live, gt/gte/lt/lte on receive timestamps, reverse, limit, keys,
// values).
func (c *Client) MessagesByType(ctx context.Context, opts map[string]any) iter.Seq2[json.RawMessage, error] {
	return c.Stream(ctx, "messagesByType", opts)
}

// Links streams links (opts: source, dest, rel, live, reverse, keys,
// values, meta).
func (c *Client) Links(ctx context.Context, opts map[string]any) iter.Seq2[json.RawMessage, error] {
	return c.Stream(ctx, "links", opts)
}

// Query streams query.read (opts: query, live, reverse, limit).
func (c *Client) Query(ctx context.Context, opts map[string]any) iter.Seq2[json.RawMessage, error] {
	return c.Stream(ctx, "query.read", opts)
}

// Explain says how query.read would run opts.
func (c *Client) Explain(ctx context.Context, opts map[string]any) (json.RawMessage, error) {
	return c.async(ctx, "query.explain", opts)
}

// AboutSocialValue returns ssb-about's social value of dest's key (JSON
// null when nobody said anything).
func (c *Client) AboutSocialValue(ctx context.Context, key, dest string) (json.RawMessage, error) {
	return c.async(ctx, "about.socialValue", map[string]any{"key": key, "dest": dest})
}

// AboutLatestValue returns the latest value of dest's key.
func (c *Client) AboutLatestValue(ctx context.Context, key, dest string) (json.RawMessage, error) {
	return c.async(ctx, "about.latestValue", map[string]any{"key": key, "dest": dest})
}

// AboutLatestValues returns {key: latest value} for keys of dest.
func (c *Client) AboutLatestValues(ctx context.Context, keys []string, dest string) (json.RawMessage, error) {
	return c.async(ctx, "about.latestValues", map[string]any{"keys": keys, "dest": dest})
}

// FriendsGet returns edge weights (opts: source, dest; 1 follow, -1 block,
// -2 neither).
func (c *Client) FriendsGet(ctx context.Context, opts map[string]any) (json.RawMessage, error) {
	return c.async(ctx, "friends.get", opts)
}

// PrivatePublish encrypts content for recps (we are added) and publishes
// it; it returns the stored record (its content the box string).
func (c *Client) PrivatePublish(ctx context.Context, content any, recps []string) (json.RawMessage, error) {
	var out json.RawMessage
	err := c.e.Async(ctx, &out, muxrpc.ParseMethod("private.publish"), content, recps)
	return out, err
}

// PrivateUnbox decrypts a box string or a message with the daemon's key
// (JSON null when it is not for us).
func (c *Client) PrivateUnbox(ctx context.Context, boxOrMsg any) (json.RawMessage, error) {
	return c.async(ctx, "private.unbox", boxOrMsg)
}

// PrivateRead streams our decrypted private messages (opts: reverse,
// limit); nil opts for all.
func (c *Client) PrivateRead(ctx context.Context, opts map[string]any) iter.Seq2[json.RawMessage, error] {
	if opts == nil {
		opts = map[string]any{}
	}
	return c.Stream(ctx, "private.read", opts)
}

// Thread returns threads.thread of root: {messages, full}.
func (c *Client) Thread(ctx context.Context, root string) (json.RawMessage, error) {
	return c.Call1(ctx, "threads.thread", map[string]any{"root": root})
}

// Latest streams {id, sequence, ts} for every feed.
func (c *Client) Latest(ctx context.Context) iter.Seq2[json.RawMessage, error] {
	return c.Stream(ctx, "latest")
}

// FeedStream streams createFeedStream (claimed timestamp order).
func (c *Client) FeedStream(ctx context.Context, opts map[string]any) iter.Seq2[json.RawMessage, error] {
	if opts == nil {
		opts = map[string]any{}
	}
	return c.Stream(ctx, "createFeedStream", opts)
}

func (c *Client) async(ctx context.Context, method string, arg any) (json.RawMessage, error) {
	var out json.RawMessage
	err := c.e.Async(ctx, &out, muxrpc.ParseMethod(method), arg)
	return out, err
}
