package room

import (
	"context"
	"log/slog"
)

// quietHandler logs warnings of a chatty component (muxrpc: one line per
// peer that leaves without a goodbye) at debug level.
type quietHandler struct{ h slog.Handler }

func (q quietHandler) Enabled(ctx context.Context, l slog.Level) bool {
	return q.h.Enabled(ctx, min(l, slog.LevelDebug))
}

func (q quietHandler) Handle(ctx context.Context, r slog.Record) error {
	if r.Level < slog.LevelError {
		r.Level = slog.LevelDebug
	}
	if !q.h.Enabled(ctx, r.Level) {
		return nil
	}
	return q.h.Handle(ctx, r)
}

func (q quietHandler) WithAttrs(a []slog.Attr) slog.Handler { return quietHandler{q.h.WithAttrs(a)} }
func (q quietHandler) WithGroup(n string) slog.Handler      { return quietHandler{q.h.WithGroup(n)} }
