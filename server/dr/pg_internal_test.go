package dr

import (
	"slices"
	"strings"
	"testing"
)

// pg_dump and pg_restore get a URL libpq accepts: no password (it goes in
// PGPASSWORD, out of the process list), no pgx-only parameters.
func TestLibpqTarget(t *testing.T) {
	tg, err := libpqTarget("postgres://veil:s3cr%40t@db.example:5433/veil?sslmode=require&search_path=tenant1&pool_max_conns=64", "")
	if err != nil {
		t.Fatal(err)
	}
	if tg.url != "postgres://veil@db.example:5433/veil?sslmode=require" {
		t.Fatalf("url %q", tg.url)
	}
	if !slices.Contains(tg.env, "PGPASSWORD=s3cr@t") {
		t.Fatalf("PGPASSWORD not in the environment")
	}
	tg, err = libpqTarget("postgresql://veil@db/veil", "veil_drill_1")
	if err != nil || tg.url != "postgresql://veil@db/veil_drill_1" || slices.ContainsFunc(tg.env, func(s string) bool { return strings.HasPrefix(s, "PGPASSWORD=s3") }) {
		t.Fatalf("url %q err %v", tg.url, err)
	}
	if _, err := libpqTarget("mysql://root:hunter2@x/y", ""); err == nil || strings.Contains(err.Error(), "hunter2") {
		t.Fatalf("err %v", err)
	}
}
