package sqlite

import (
	"path/filepath"
	"testing"
)

// TestPragmas checks the settings durability and isolation rest on are
// in force on the writer and on the readers.
func TestPragmas(t *testing.T) {
	s, err := Open(t.Context(), filepath.Join(t.TempDir(), "veil.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	check := func(who string, q func(string) (string, error), pragma, want string) {
		t.Helper()
		got, err := q(pragma)
		if err != nil || got != want {
			t.Errorf("%s: PRAGMA %s = %q, %v; want %q", who, pragma, got, err, want)
		}
	}
	writer := func(p string) (v string, err error) {
		err = s.w.QueryRowContext(t.Context(), "PRAGMA "+p).Scan(&v)
		return
	}
	reader := func(p string) (v string, err error) {
		err = s.r.db.QueryRowContext(t.Context(), "PRAGMA "+p).Scan(&v)
		return
	}
	for _, c := range [][2]string{
		{"journal_mode", "wal"}, {"synchronous", "1"}, {"foreign_keys", "1"},
		{"busy_timeout", "10000"}, {"secure_delete", "1"}, {"query_only", "0"},
	} {
		check("writer", writer, c[0], c[1])
	}
	for _, c := range [][2]string{{"journal_mode", "wal"}, {"query_only", "1"}, {"foreign_keys", "1"}} {
		check("reader", reader, c[0], c[1])
	}
}
