// Package pgtest provides PostgreSQL to tests: an isolated schema on the
// shared test server that scripts/test.sh starts (MSGR_TEST_DATABASE_URL),
// and private throwaway servers that a test may crash and restart without
// disturbing the tests of other packages running in parallel.
package pgtest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"net/url"
	"os"
	"testing"

	"github.com/jackc/pgx/v5"
)

// DatabaseURL returns MSGR_TEST_DATABASE_URL or skips the test;
// scripts/test.sh always sets it.
func DatabaseURL(tb testing.TB) string {
	tb.Helper()
	u := os.Getenv("MSGR_TEST_DATABASE_URL")
	if u == "" {
		tb.Skip("MSGR_TEST_DATABASE_URL is not set; run ./scripts/test.sh, which starts a throwaway PostgreSQL")
	}
	return u
}

// FreshSchema creates an empty schema on the shared test server, dropped
// when the test ends, and returns a database URL whose connections use it.
// A schema per test is much cheaper than a database per test and isolates
// tests just as well. It skips the test when MSGR_TEST_DATABASE_URL is unset.
func FreshSchema(tb testing.TB) string {
	tb.Helper()
	base := DatabaseURL(tb)
	b := make([]byte, 8)
	rand.Read(b)
	schema := "t_" + hex.EncodeToString(b)

	ctx := context.Background()
	conn, err := pgx.Connect(ctx, base)
	if err != nil {
		tb.Fatalf("pgtest: connect to test database: %v", err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, "CREATE SCHEMA "+schema); err != nil {
		tb.Fatalf("pgtest: create schema: %v", err)
	}
	tb.Cleanup(func() {
		conn, err := pgx.Connect(ctx, base)
		if err != nil {
			tb.Errorf("pgtest: connect to drop schema: %v", err)
			return
		}
		defer conn.Close(ctx)
		if _, err := conn.Exec(ctx, "DROP SCHEMA "+schema+" CASCADE"); err != nil {
			tb.Errorf("pgtest: drop schema: %v", err)
		}
	})

	u, err := url.Parse(base)
	if err != nil {
		tb.Fatalf("pgtest: parse MSGR_TEST_DATABASE_URL: %v", err)
	}
	q := u.Query()
	q.Set("search_path", schema)
	u.RawQuery = q.Encode()
	return u.String()
}
