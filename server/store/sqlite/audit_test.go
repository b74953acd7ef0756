package sqlite_test

import (
	"database/sql"
	"path/filepath"
	"testing"

	"github.com/ncruces/go-sqlite3/driver"

	"github.com/veil-e2ee/veil/server/store"
	"github.com/veil-e2ee/veil/server/store/sqlite"
	"github.com/veil-e2ee/veil/server/store/storetest"
)

// TestAuditTamper edits the database file behind the store's back (a
// second connection, as an intruder with file access would).
func TestAuditTamper(t *testing.T) {
	storetest.AuditTamper(t, func(t *testing.T) (store.Store, storetest.Exec) {
		p := filepath.Join(t.TempDir(), "veil.db")
		s, err := sqlite.Open(t.Context(), p)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		var db *sql.DB
		exec := func(t *testing.T, q string, args ...any) {
			t.Helper()
			if db == nil {
				if db, err = driver.Open("file:" + p + "?_pragma=busy_timeout(10000)"); err != nil {
					t.Fatal(err)
				}
				t.Cleanup(func() { db.Close() })
			}
			if _, err := db.ExecContext(t.Context(), q, args...); err != nil {
				t.Fatalf("%s: %v", q, err)
			}
		}
		return s, exec
	})
}

func BenchmarkAuditAppend(b *testing.B) {
	s, err := sqlite.Open(b.Context(), filepath.Join(b.TempDir(), "veil.db"))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { s.Close() })
	storetest.BenchAuditAppend(b, s)
}
