package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/spf13/cobra"

	"github.com/cask-ssb/cask/room"
	"github.com/cask-ssb/cask/room/roomdb"
)

func newMigrateDBCmd() *cobra.Command {
	var from, to string
	var force bool
	cmd := &cobra.Command{
		Use:   "migrate-db --from DB --to DB",
		Short: "Copy a room's database: SQLite to PostgreSQL or back",
		Long: `Copy every table of a room's database (members, invites, aliases, denied
keys, web sessions, mode and landing text) into another one, in one
transaction on the target. DB is sqlite:PATH (or a path) or
postgres://USER@HOST:PORT/DATABASE; both are migrated to the current schema
first. A target that already holds members is refused unless --force, which
replaces its contents. Stop the room (every node) while it runs, then start
it with --db set to the target. Prints the counts copied, as JSON.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if from == "" || to == "" {
				return usageErr("migrate-db: give both --from and --to")
			}
			if from == to {
				return usageErr("migrate-db: --from and --to are the same database")
			}
			for name, v := range map[string]string{"--from": from, "--to": to} {
				if _, _, err := roomdb.ParseDBURL(v, ""); err != nil {
					return usageErr("%s: %w", name, err)
				}
			}
			ctx, cancel := context.WithTimeout(cmd.Context(), 30*time.Minute)
			defer cancel()
			counts, err := migrateDB(ctx, from, to, force)
			if err != nil {
				if errors.Is(err, roomdb.ErrNotEmpty) {
					return &exitError{code: 1, err: err}
				}
				return err
			}
			b, _ := json.Marshal(counts)
			fmt.Fprintln(cmd.OutOrStdout(), string(b))
			return nil
		},
	}
	cmd.Flags().StringVar(&from, "from", "", "source database: sqlite:PATH, a path, or postgres://...")
	cmd.Flags().StringVar(&to, "to", "", "target database: sqlite:PATH, a path, or postgres://...")
	cmd.Flags().BoolVar(&force, "force", false, "replace the target's contents even if it holds members")
	return cmd
}

func migrateDB(ctx context.Context, from, to string, force bool) (roomdb.Counts, error) {
	// The mode given here is only stored in a new, empty database, and
	// the copy then replaces it with the source's.
	o := roomdb.Options{Mode: roomdb.Mode(room.Defaults("").Mode)}
	// A SQLite source must exist: opening would create an empty one.
	if kind, path, _ := roomdb.ParseDBURL(from, ""); kind == roomdb.BackendSQLite {
		if _, err := os.Stat(path); err != nil {
			return roomdb.Counts{}, fmt.Errorf("--from: %w", err)
		}
	}
	src, err := roomdb.OpenStore(ctx, from, "", o)
	if err != nil {
		return roomdb.Counts{}, fmt.Errorf("--from: %w", err)
	}
	defer src.Close()
	dst, err := roomdb.OpenStore(ctx, to, "", o)
	if err != nil {
		return roomdb.Counts{}, fmt.Errorf("--to: %w", err)
	}
	defer dst.Close()
	return roomdb.Copy(ctx, src, dst, force)
}
