package devicestore

import (
	"errors"
	"testing"
)

func testStore(t *testing.T) (*Store, string) {
	t.Helper()
	dir := t.TempDir()
	s, err := Create(t.Context(), dir, Passphrase("p"), WithKDFParams(KDFParams{Time: 1, Memory: 64, Threads: 1}))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s, dir
}

func TestMigrationsRecorded(t *testing.T) {
	s, dir := testStore(t)
	var v, n int
	if err := s.r.QueryRowContext(t.Context(), `SELECT max(version), count(*) FROM schema_migrations`).Scan(&v, &n); err != nil {
		t.Fatal(err)
	}
	if v != SchemaVersion() || n != SchemaVersion() {
		t.Fatalf("schema_migrations: max %d, %d rows; want %d", v, n, SchemaVersion())
	}
	// Reopening applies nothing twice.
	s.Close()
	s, err := Open(t.Context(), dir, Passphrase("p"))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	s.r.QueryRowContext(t.Context(), `SELECT count(*) FROM schema_migrations`).Scan(&n)
	if n != SchemaVersion() {
		t.Fatalf("%d migration rows after reopen", n)
	}
	// A database migrated by a newer program is refused.
	if _, err := s.w.ExecContext(t.Context(), `INSERT INTO schema_migrations VALUES (999, 0)`); err != nil {
		t.Fatal(err)
	}
	s.Close()
	if _, err := Open(t.Context(), dir, Passphrase("p")); !errors.Is(err, ErrSchemaTooNew) {
		t.Fatalf("Open of a newer schema: %v, want ErrSchemaTooNew", err)
	}
}

// FTS5 is registered on the writer and on every reader connection, and
// the pragmas the durability argument rests on are in force.
func TestConnections(t *testing.T) {
	s, _ := testStore(t)
	ctx := t.Context()
	if _, err := s.w.ExecContext(ctx, `CREATE VIRTUAL TABLE temp.probe USING fts5(body)`); err != nil {
		t.Fatalf("fts5 on the writer: %v", err)
	}
	var n int
	if err := s.r.QueryRowContext(ctx, `SELECT count(*) FROM pragma_module_list WHERE name = 'fts5'`).Scan(&n); err != nil || n != 1 {
		t.Fatalf("fts5 on a reader: %d, %v", n, err)
	}
	for pragma, want := range map[string]string{"journal_mode": "wal", "synchronous": "2", "foreign_keys": "1", "secure_delete": "1"} {
		var got string
		if err := s.w.QueryRowContext(ctx, `PRAGMA `+pragma).Scan(&got); err != nil || got != want {
			t.Errorf("writer PRAGMA %s = %q, %v; want %q", pragma, got, err, want)
		}
	}
	var q string
	if err := s.r.QueryRowContext(ctx, `PRAGMA query_only`).Scan(&q); err != nil || q != "1" {
		t.Errorf("reader query_only = %q, %v", q, err)
	}
}

// Driver errors are translated: the message never carries the driver's
// text (which can quote SQL), only the operation and the result code.
func TestDriverErrorsTranslated(t *testing.T) {
	s, _ := testStore(t)
	_, err := s.w.ExecContext(t.Context(), `INSERT INTO no_such_table VALUES ('SECRET-VALUE')`)
	if err == nil {
		t.Fatal("expected an error")
	}
	got := dbErr("probing", err)
	if !errors.Is(got, ErrStorage) || got.Error() != "devicestore: storage failure: probing: sqlite3: SQL logic error" {
		t.Fatalf("dbErr = %q", got)
	}
}
