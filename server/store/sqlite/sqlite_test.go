package sqlite_test

import (
	"database/sql"
	"errors"
	"path/filepath"
	"sync"
	"testing"

	"github.com/veil-e2ee/veil/server/store"
	"github.com/veil-e2ee/veil/server/store/sqlite"
	"github.com/veil-e2ee/veil/server/store/storetest"
)

// opener returns an open function for storetest.Run: one database file
// per test, reopened when the same test asks again.
func opener() func(t *testing.T) store.Store {
	var mu sync.Mutex
	paths := map[*testing.T]string{}
	return func(t *testing.T) store.Store {
		t.Helper()
		mu.Lock()
		p, ok := paths[t]
		if !ok {
			p = filepath.Join(t.TempDir(), "veil.db")
			paths[t] = p
		}
		mu.Unlock()
		s, err := sqlite.Open(t.Context(), p)
		if err != nil {
			t.Fatalf("sqlite.Open: %v", err)
		}
		t.Cleanup(func() { s.Close() })
		return s
	}
}

func TestConformance(t *testing.T) {
	storetest.Run(t, opener())
}

func BenchmarkStore(b *testing.B) {
	storetest.Bench(b, func(b *testing.B) store.Store {
		s, err := sqlite.Open(b.Context(), filepath.Join(b.TempDir(), "veil.db"))
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { s.Close() })
		return s
	})
}

// TestNoDriverErrors checks not-found answers are the store's own error
// and do not wrap database/sql's.
func TestNoDriverErrors(t *testing.T) {
	s := opener()(t)
	_, err := s.Account(t.Context(), storetest.ID(1))
	if !errors.Is(err, store.ErrNotFound) || errors.Is(err, sql.ErrNoRows) {
		t.Fatalf("Account(unknown) = %v (wraps sql.ErrNoRows: %v)", err, errors.Is(err, sql.ErrNoRows))
	}
	_, err = s.TakeBundles(t.Context(), storetest.ID(1), 0)
	if !errors.Is(err, store.ErrNotFound) || errors.Is(err, sql.ErrNoRows) {
		t.Fatalf("TakeBundles(unknown) = %v", err)
	}
}

func TestRefusesNewerSchema(t *testing.T) {
	path := filepath.Join(t.TempDir(), "veil.db")
	s, err := sqlite.Open(t.Context(), path)
	if err != nil {
		t.Fatal(err)
	}
	s.Close()
	// Pretend a newer binary migrated the file.
	db, err := sql.Open("sqlite3", "file:"+path)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.Exec(`INSERT INTO schema_migrations (version, name, applied_at) VALUES (999, '0999_future.sql', 0)`); err != nil {
		t.Fatal(err)
	}
	db.Close()
	if _, err := sqlite.Open(t.Context(), path); !errors.Is(err, sqlite.ErrSchemaTooNew) {
		t.Fatalf("Open of a newer schema = %v, want ErrSchemaTooNew", err)
	}
}
