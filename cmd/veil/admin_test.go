package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/veil-e2ee/veil/server/dr"
	"github.com/veil-e2ee/veil/server/store/postgres"
	"github.com/veil-e2ee/veil/server/store/postgres/pgtest"
)

// The admin commands find the database exactly as veil server does.
func TestAdminDatabaseMatchesServer(t *testing.T) {
	for _, tc := range []struct{ data, db, want string }{
		{"./veil-data", "", filepath.Join("veil-data", "veil.db")},
		{"/var/lib/veil", "", "/var/lib/veil/veil.db"},
		{"/var/lib/veil", "/srv/other.db", "/srv/other.db"},
		{"/var/lib/veil", "postgres://veil@db/veil", "postgres://veil@db/veil"},
		{"/var/lib/veil", "postgresql://veil@db/veil", "postgresql://veil@db/veil"},
	} {
		f := &adminFlags{data: tc.data, db: tc.db}
		if got := f.database(); got != tc.want {
			t.Errorf("--data %q --db %q: %q, want %q", tc.data, tc.db, got, tc.want)
		}
		// veil server's openBackends takes the same branch.
		sf := &serverFlags{data: tc.data, db: tc.db}
		pg := strings.HasPrefix(sf.db, "postgres://") || strings.HasPrefix(sf.db, "postgresql://")
		if pg != strings.HasPrefix(f.database(), "postgres") {
			t.Errorf("--db %q: server and admin disagree on the backend", tc.db)
		}
	}
}

// Flags may come before or after the file; the environment fills the rest;
// a flag on the command line wins.
func TestAdminFlagsAnywhere(t *testing.T) {
	t.Setenv("VEIL_DB", "/from/env.db")
	t.Setenv("VEIL_SCRATCH", "")
	fs, f := newAdminFlags("restore-drill", &bytes.Buffer{})
	pos, err := parseAdmin(fs, []string{"b.db", "--json", "--data", "/d"}, 1, 1, "FILE")
	if err != nil {
		t.Fatal(err)
	}
	if len(pos) != 1 || pos[0] != "b.db" || !f.json || f.data != "/d" || f.db != "/from/env.db" {
		t.Fatalf("pos %v flags %+v", pos, f)
	}
	fs, f = newAdminFlags("backup", &bytes.Buffer{})
	if _, err := parseAdmin(fs, []string{"--db", "/cli.db"}, 0, 0, ""); err != nil || f.db != "/cli.db" {
		t.Fatalf("db %q err %v", f.db, err)
	}
	var stderr bytes.Buffer
	fs, _ = newAdminFlags("backup", &stderr)
	if _, err := parseAdmin(fs, []string{"extra"}, 0, 0, ""); !errors.Is(err, errUsage) || !strings.Contains(stderr.String(), "usage: veil admin backup") {
		t.Fatalf("err %v stderr %q", err, stderr.String())
	}
}

// Unknown subcommands are usage errors; help is not.
func TestAdminDispatch(t *testing.T) {
	var out, errb bytes.Buffer
	if err := run(context.Background(), []string{"admin", "nope"}, &out, &errb); !errors.Is(err, errUsage) {
		t.Fatalf("unknown subcommand: %v", err)
	}
	errb.Reset()
	if err := run(context.Background(), []string{"admin", "help"}, &out, &errb); err != nil || !strings.Contains(errb.String(), "backup") {
		t.Fatalf("help: %v %q", err, errb.String())
	}
	for name, c := range adminCommands {
		if c.summary == "" || c.run == nil {
			t.Errorf("admin command %q is incomplete", name)
		}
	}
}

// veil admin backup --db postgres://… and restore-drill (the scratch
// server defaults to --db) on the test PostgreSQL server.
func TestAdminPostgres(t *testing.T) {
	for _, p := range []string{"pg_dump", "pg_restore"} {
		if _, err := exec.LookPath(p); err != nil {
			if os.Getenv("CI") == "true" {
				t.Fatalf("%s is missing and CI=true, so this test must not be skipped: %v", p, err)
			}
			t.Skipf("SKIPPING: %s is not installed: %v", p, err)
		}
	}
	dsn := pgtest.DSN(t)
	ctx := context.Background()
	st, err := postgres.Open(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	st.Close()
	dir := t.TempDir()
	var out, errb bytes.Buffer
	if err := run(ctx, []string{"admin", "backup", "--db", dsn, "--out", dir, "--json"}, &out, &errb); err != nil {
		t.Fatalf("backup: %v\n%s", err, errb.String())
	}
	var res struct {
		File     string       `json:"file"`
		Manifest *dr.Manifest `json:"manifest"`
	}
	if err := json.Unmarshal(out.Bytes(), &res); err != nil {
		t.Fatalf("%v: %s", err, out.String())
	}
	if !strings.HasSuffix(res.File, ".pgdump") || res.Manifest.Backend != dr.BackendPostgres || res.Manifest.Tables["accounts"] != 0 {
		t.Fatalf("backup result %s", out.String())
	}
	out.Reset()
	if err := run(ctx, []string{"admin", "restore-drill", res.File, "--db", pgtest.URL()}, &out, &errb); err != nil {
		t.Fatalf("drill: %v\n%s", err, out.String())
	}
	if !strings.Contains(out.String(), "PASS  pg_restore") || !strings.Contains(out.String(), "PASS: all") {
		t.Fatalf("drill report:\n%s", out.String())
	}
	// Without a scratch server a PostgreSQL drill cannot run: a clear error.
	t.Setenv("VEIL_DB", "")
	if err := run(ctx, []string{"admin", "restore-drill", res.File}, &out, &errb); err == nil || !strings.Contains(err.Error(), "--scratch") {
		t.Fatalf("drill without scratch: %v", err)
	}
}
