package main

import (
	"bytes"
	"context"
	"errors"
	"path/filepath"
	"strings"
	"testing"
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
