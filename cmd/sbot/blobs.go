package main

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/spf13/cobra"

	"github.com/cask-ssb/cask/feeds"
	"github.com/cask-ssb/cask/muxrpc"
	"github.com/cask-ssb/cask/sbot/client"
)

// addBlobCmds adds `sbot blobs add|get|has|want`.
func addBlobCmds(root *cobra.Command) {
	group := &cobra.Command{Use: "blobs", Short: "Add, fetch and read blobs (files referenced by &…=.sha256 ids)"}
	root.AddCommand(group)
	sub := func(use, short string, nargs int, run func(cmd *cobra.Command, args []string, ctx context.Context, c *client.Client, out *jsonOut) error) *cobra.Command {
		cmd := &cobra.Command{Use: use, Short: short, Args: func(cmd *cobra.Command, args []string) error {
			if len(args) != nargs {
				return usageErr("%s: want %d argument(s)", cmd.Name(), nargs)
			}
			return nil
		}}
		cmd.RunE = func(cmd *cobra.Command, args []string) error {
			return clientRun(cmd, func(ctx context.Context, c *client.Client, out *jsonOut) error { return run(cmd, args, ctx, c, out) })
		}
		addClientFlags(cmd.Flags())
		group.AddCommand(cmd)
		return cmd
	}
	blobID := func(s string) (feeds.BlobRef, error) {
		ref, err := feeds.ParseBlobRef(s)
		if err != nil {
			return ref, usageErr("%w", err)
		}
		return ref, nil
	}

	sub("add FILE", "Store a file (- for stdin) as a blob; prints {id, size}", 1, func(cmd *cobra.Command, args []string, ctx context.Context, c *client.Client, out *jsonOut) error {
		var r io.Reader = cmd.InOrStdin()
		if args[0] != "-" {
			f, err := os.Open(args[0])
			if err != nil {
				return usageErr("%w", err)
			}
			defer f.Close()
			r = f
		}
		snk, err := c.Endpoint().Sink(ctx, muxrpc.Method{"blobs", "add"})
		if err != nil {
			return err
		}
		h := sha256.New()
		buf := make([]byte, 64*1024)
		var size int64
		for {
			k, rerr := io.ReadFull(r, buf)
			if k > 0 {
				h.Write(buf[:k])
				size += int64(k)
				if err := snk.WriteRaw(muxrpc.FlagBinary, buf[:k]); err != nil {
					return err
				}
			}
			if rerr == io.EOF || rerr == io.ErrUnexpectedEOF {
				break
			}
			if rerr != nil {
				snk.CloseWithError(rerr)
				return fmt.Errorf("read: %w", rerr)
			}
		}
		if err := snk.Close(); err != nil {
			return err
		}
		var ref feeds.BlobRef
		copy(ref[:], h.Sum(nil))
		return out.Encode(map[string]any{"id": ref.String(), "size": size})
	})

	sub("get ID", "Write a stored blob's bytes to stdout", 1, func(cmd *cobra.Command, args []string, ctx context.Context, c *client.Client, _ *jsonOut) error {
		ref, err := blobID(args[0])
		if err != nil {
			return err
		}
		src, err := c.Endpoint().Source(ctx, muxrpc.Method{"blobs", "get"}, ref.String())
		if err != nil {
			return err
		}
		w := bufio.NewWriter(cmd.OutOrStdout())
		wrote := false
		for body, err := range src.All(ctx) {
			if err != nil {
				var has bool
				if !wrote && c.Endpoint().Async(ctx, &has, muxrpc.Method{"blobs", "has"}, ref.String()) == nil && !has {
					return fmt.Errorf("blob %s not found (not stored here; sbot blobs want %s asks connected peers for it)", ref, ref)
				}
				return err
			}
			wrote = true
			if _, err := w.Write(body); err != nil {
				return err
			}
		}
		return w.Flush()
	})

	sub("has ID", "Print whether the blob is stored (true/false)", 1, func(_ *cobra.Command, args []string, ctx context.Context, c *client.Client, out *jsonOut) error {
		ref, err := blobID(args[0])
		if err != nil {
			return err
		}
		var has bool
		if err := c.Endpoint().Async(ctx, &has, muxrpc.Method{"blobs", "has"}, ref.String()); err != nil {
			return err
		}
		return out.Encode(has)
	})

	wantRun := func(cmd *cobra.Command, args []string, ctx context.Context, c *client.Client, out *jsonOut) error {
		ref, err := blobID(args[0])
		if err != nil {
			return err
		}
		var has bool
		if err := c.Endpoint().Async(ctx, &has, muxrpc.Method{"blobs", "has"}, ref.String()); err == nil && has {
			return out.Encode(true)
		}
		peers := "the connected peers"
		var st struct {
			Peers []json.RawMessage `json:"peers"`
		}
		if raw, err := c.Status(ctx); err == nil && json.Unmarshal(raw, &st) == nil {
			peers = fmt.Sprintf("%d connected peer(s)", len(st.Peers))
		}
		d, _ := cmd.Flags().GetDuration("timeout")
		if !cmd.Flags().Changed("timeout") {
			d = defaultWantTimeout
		}
		fmt.Fprintf(cmd.ErrOrStderr(), "sbot: waiting for blob %s from %s (up to %s; --timeout changes it, Ctrl-C stops)\n", ref, peers, d)
		var got json.RawMessage
		if err := c.Endpoint().Async(ctx, &got, muxrpc.Method{"blobs", "want"}, ref.String()); err != nil {
			if ctx.Err() != nil && !errors.Is(ctx.Err(), context.Canceled) {
				return &humanErr{fmt.Sprintf("blob %s not received from %s within %s", ref, peers, d), ctx.Err()}
			}
			return err
		}
		return out.Encode(got)
	}
	want := sub("want ID", "Ask connected peers for a blob and wait until it is stored (default --timeout 2m)", 1, wantRun)
	want.RunE = func(cmd *cobra.Command, args []string) error {
		return clientRunTimeout(cmd, defaultWantTimeout, func(ctx context.Context, c *client.Client, out *jsonOut) error {
			return wantRun(cmd, args, ctx, c, out)
		})
	}
}

// defaultWantTimeout bounds `blobs want` without --timeout.
const defaultWantTimeout = 2 * time.Minute
