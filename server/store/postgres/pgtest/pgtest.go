// Package pgtest gives tests a private PostgreSQL schema: [DSN] creates
// a fresh schema on the test server and returns a connection string whose
// search_path selects it; the schema is dropped when the test ends.
//
// # Where the server is
//
// VEIL_TEST_POSTGRES names the server (default
// postgres://postgres@127.0.0.1:5432/test?sslmode=disable). When it is
// unreachable the test is skipped with a message saying so, except when
// CI=true: in CI a missing PostgreSQL fails the test, so the PostgreSQL
// half of the suite can never be silently skipped.
package pgtest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"net/url"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// DefaultURL is used when VEIL_TEST_POSTGRES is unset.
const DefaultURL = "postgres://postgres@127.0.0.1:5432/test?sslmode=disable"

// URL returns the test server's connection string.
func URL() string {
	if u := os.Getenv("VEIL_TEST_POSTGRES"); u != "" {
		return u
	}
	return DefaultURL
}

// DSN creates a schema named veil_test_<random> and returns a DSN that
// uses it. It skips (or, in CI, fails) the test when PostgreSQL is
// unreachable.
func DSN(t testing.TB) string {
	t.Helper()
	base := URL()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, base)
	if err != nil {
		unreachable(t, err)
	}
	defer conn.Close(context.Background())
	var rnd [8]byte
	rand.Read(rnd[:])
	schema := "veil_test_" + hex.EncodeToString(rnd[:])
	if _, err := conn.Exec(ctx, "CREATE SCHEMA "+schema); err != nil {
		t.Fatalf("pgtest: create schema: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		c, err := pgx.Connect(ctx, base)
		if err != nil {
			t.Errorf("pgtest: drop schema %s: %v", schema, err)
			return
		}
		defer c.Close(context.Background())
		if _, err := c.Exec(ctx, "DROP SCHEMA "+schema+" CASCADE"); err != nil {
			t.Errorf("pgtest: drop schema %s: %v", schema, err)
		}
	})
	return withParam(t, base, "search_path", schema)
}

func withParam(t testing.TB, dsn, k, v string) string {
	if strings.HasPrefix(dsn, "postgres://") || strings.HasPrefix(dsn, "postgresql://") {
		u, err := url.Parse(dsn)
		if err != nil {
			t.Fatalf("pgtest: VEIL_TEST_POSTGRES is not a valid URL")
		}
		q := u.Query()
		q.Set(k, v)
		u.RawQuery = q.Encode()
		return u.String()
	}
	return dsn + " " + k + "=" + v
}

func unreachable(t testing.TB, err error) {
	t.Helper()
	if os.Getenv("CI") == "true" {
		t.Fatalf("pgtest: PostgreSQL at VEIL_TEST_POSTGRES is unreachable and CI=true, so this test must not be skipped: %v", err)
	}
	t.Skipf("pgtest: SKIPPING: PostgreSQL is unreachable (set VEIL_TEST_POSTGRES, default %s): %v", DefaultURL, err)
}
