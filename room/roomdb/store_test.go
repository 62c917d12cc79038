package roomdb_test

import (
	"context"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cask-ssb/cask/room/roomdb"
	"github.com/cask-ssb/cask/room/roomdb/pgtest"
	"github.com/cask-ssb/cask/room/roomdb/storetest"
)

func sqliteBackend(t *testing.T) storetest.Opener {
	path := filepath.Join(t.TempDir(), "room.sqlite")
	return func(o roomdb.Options) (roomdb.Store, error) { return roomdb.OpenSQLite(context.Background(), path, o) }
}

func postgresBackend(t *testing.T) storetest.Opener {
	url := pgtest.NewDatabase(t)
	return func(o roomdb.Options) (roomdb.Store, error) { return roomdb.OpenPostgres(context.Background(), url, o) }
}

// TestStore runs the conformance suite on both implementations.
func TestStore(t *testing.T) {
	for _, b := range []struct {
		name string
		open storetest.Backend
	}{
		{"sqlite", sqliteBackend},
		{"postgres", postgresBackend},
	} {
		t.Run(b.name, func(t *testing.T) { storetest.Run(t, b.open) })
	}
}

// TestCopyAcrossBackends moves a room SQLite -> PostgreSQL -> SQLite
// (room migrate-db) and finds every row, code and token intact.
func TestCopyAcrossBackends(t *testing.T) {
	ctx := context.Background()
	lite := storetest.MustOpen(t, sqliteBackend(t), roomdb.Options{})
	pg := storetest.MustOpen(t, postgresBackend(t), roomdb.Options{})
	back := storetest.MustOpen(t, sqliteBackend(t), roomdb.Options{})
	code, token := storetest.Fill(t, lite)
	if _, err := roomdb.Copy(ctx, lite, pg, false); err != nil {
		t.Fatal(err)
	}
	if _, err := roomdb.Copy(ctx, pg, back, false); err != nil {
		t.Fatal(err)
	}
	storetest.CheckCopy(t, lite, back, code, token)
	storetest.CheckCopy(t, lite, pg, code, token)
}

func TestParseDBURL(t *testing.T) {
	for _, c := range []struct {
		in     string
		kind   roomdb.Backend
		target string
		ok     bool
	}{
		{"", roomdb.BackendSQLite, "/repo/room.sqlite", true},
		{"sqlite:/x/room.db", roomdb.BackendSQLite, "/x/room.db", true},
		{"sqlite:///x/room.db", roomdb.BackendSQLite, "/x/room.db", true},
		{"sqlite:rel.db", roomdb.BackendSQLite, "rel.db", true},
		{"./room.db", roomdb.BackendSQLite, "./room.db", true},
		{"postgres://u@h:5432/db", roomdb.BackendPostgres, "postgres://u@h:5432/db", true},
		{"postgresql://u@h/db?sslmode=disable", roomdb.BackendPostgres, "postgresql://u@h/db?sslmode=disable", true},
		{"sqlite:", "", "", false},
		{"mysql://u@h/db", "", "", false},
	} {
		kind, target, err := roomdb.ParseDBURL(c.in, "/repo/room.sqlite")
		if (err == nil) != c.ok || kind != c.kind || target != c.target {
			t.Errorf("ParseDBURL(%q) = %q %q %v; want %q %q ok=%v", c.in, kind, target, err, c.kind, c.target, c.ok)
		}
	}
}

// TestPostgresUnreachable: a server that does not answer gives an error
// naming the host and port, never the password. No server is needed.
func TestPostgresUnreachable(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	// Port 1 on loopback: nothing listens there.
	_, err := roomdb.OpenStore(ctx, "postgres://room:s3cretpw@127.0.0.1:1/roomdb?connect_timeout=10", "", roomdb.Options{})
	if err == nil {
		t.Fatal("opened a database on 127.0.0.1:1")
	}
	msg := err.Error()
	if !strings.Contains(msg, "cannot reach PostgreSQL") || !strings.Contains(msg, "127.0.0.1:1") || strings.Contains(msg, "s3cretpw") {
		t.Fatalf("error %q: want it to name 127.0.0.1:1 and not the password", msg)
	}
	_, err = roomdb.OpenStore(ctx, "postgres://room:s3cretpw@127.0.0.1:1/roomdb?sslmode=bogus", "", roomdb.Options{})
	if err == nil || strings.Contains(err.Error(), "s3cretpw") {
		t.Fatalf("bad URL: %v", err)
	}
}
