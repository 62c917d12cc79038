// Package pgtest gives tests a fresh PostgreSQL database of their own on
// the server that CASK_TEST_POSTGRES names, dropped at cleanup.
//
// When CASK_TEST_POSTGRES is unset, tests run with -short are skipped and
// every other test fails with a message saying how to start a server
// (scripts/pg-test-server.sh start): they never pass without testing.
package pgtest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net/url"
	"os"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// EnvVar names the server URL, e.g. postgres://postgres@127.0.0.1:5432/postgres
// or postgres:///postgres?host=/tmp/cask-pg-0&user=postgres.
const EnvVar = "CASK_TEST_POSTGRES"

// ServerURL returns the server's URL, or skips (-short) or fails tb.
func ServerURL(tb testing.TB) string {
	tb.Helper()
	u := os.Getenv(EnvVar)
	if u != "" {
		return u
	}
	if testing.Short() {
		tb.Skipf("%s is not set (PostgreSQL tests skipped under -short)", EnvVar)
	}
	tb.Fatalf("%s is not set: this test needs a PostgreSQL server. Start a throwaway one with\n"+
		"  export %s=$(scripts/pg-test-server.sh start)\n"+
		"(stop it with scripts/pg-test-server.sh stop; make test does both), or run go test -short to skip it.", EnvVar, EnvVar)
	return ""
}

// NewDatabase creates database cask_test_<random> on the server and
// returns its URL; it is dropped when the test ends.
func NewDatabase(tb testing.TB) string {
	tb.Helper()
	server := ServerURL(tb)
	var b [8]byte
	_, _ = rand.Read(b[:])
	name := "cask_test_" + hex.EncodeToString(b[:])
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, server)
	if err != nil {
		tb.Fatalf("pgtest: connect to %s (from %s): %v", redacted(server), EnvVar, err)
	}
	defer conn.Close(context.Background())
	if _, err := conn.Exec(ctx, "CREATE DATABASE "+name); err != nil {
		tb.Fatalf("pgtest: create database %s: %v", name, err)
	}
	tb.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		defer cancel()
		conn, err := pgx.Connect(ctx, server)
		if err != nil {
			tb.Errorf("pgtest: drop database %s: %v", name, err)
			return
		}
		defer conn.Close(context.Background())
		if _, err := conn.Exec(ctx, "DROP DATABASE IF EXISTS "+name+" WITH (FORCE)"); err != nil {
			tb.Errorf("pgtest: drop database %s: %v", name, err)
		}
	})
	u, err := WithDatabase(server, name)
	if err != nil {
		tb.Fatal(err)
	}
	return u
}

// WithDatabase returns server's URL naming database name instead.
func WithDatabase(server, name string) (string, error) {
	u, err := url.Parse(server)
	if err != nil {
		return "", fmt.Errorf("pgtest: %s does not parse as a URL", EnvVar)
	}
	u.Path = "/" + name
	u.RawPath = ""
	q := u.Query()
	if q.Has("dbname") {
		q.Set("dbname", name)
		u.RawQuery = q.Encode()
	}
	return u.String(), nil
}

func redacted(s string) string {
	if u, err := url.Parse(s); err == nil {
		return u.Redacted()
	}
	return "the server"
}
