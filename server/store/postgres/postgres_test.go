package postgres_test

import (
	"database/sql"
	"errors"
	"sync"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/veil-e2ee/veil/server/store"
	"github.com/veil-e2ee/veil/server/store/postgres"
	"github.com/veil-e2ee/veil/server/store/postgres/pgtest"
	"github.com/veil-e2ee/veil/server/store/storetest"
)

// opener returns an open function for storetest.Run: one schema per
// test, reopened when the same test asks again.
func opener() func(t *testing.T) store.Store {
	var mu sync.Mutex
	dsns := map[*testing.T]string{}
	return func(t *testing.T) store.Store {
		t.Helper()
		mu.Lock()
		dsn, ok := dsns[t]
		mu.Unlock()
		if !ok {
			dsn = pgtest.DSN(t)
			mu.Lock()
			dsns[t] = dsn
			mu.Unlock()
		}
		s, err := postgres.Open(t.Context(), dsn)
		if err != nil {
			t.Fatalf("postgres.Open: %v", err)
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
		s, err := postgres.Open(b.Context(), pgtest.DSN(b))
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { s.Close() })
		return s
	})
}

// TestNoDriverErrors checks not-found answers are the store's own error
// and wrap neither pgx's nor database/sql's, and that a database failure
// does not expose a pgx type.
func TestNoDriverErrors(t *testing.T) {
	s := opener()(t)
	_, err := s.Account(t.Context(), storetest.ID(1))
	if !errors.Is(err, store.ErrNotFound) || errors.Is(err, pgx.ErrNoRows) || errors.Is(err, sql.ErrNoRows) {
		t.Fatalf("Account(unknown) = %v", err)
	}
	pg := s.(*postgres.Store)
	if _, err := pg.Pool().Exec(t.Context(), `DROP TABLE envelopes`); err != nil {
		t.Fatal(err)
	}
	_, err = s.QueueDepth(t.Context(), storetest.ID(1), 1)
	var pe *pgconn.PgError
	if err == nil || errors.As(err, &pe) {
		t.Fatalf("QueueDepth on a broken schema = %v (pgx error exposed: %v)", err, pe != nil)
	}
}

func TestRefusesNewerSchema(t *testing.T) {
	dsn := pgtest.DSN(t)
	s, err := postgres.Open(t.Context(), dsn)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Pool().Exec(t.Context(), `INSERT INTO schema_migrations (version, name) VALUES (999, '0999_future.sql')`); err != nil {
		t.Fatal(err)
	}
	s.Close()
	if _, err := postgres.Open(t.Context(), dsn); !errors.Is(err, postgres.ErrSchemaTooNew) {
		t.Fatalf("Open of a newer schema = %v, want ErrSchemaTooNew", err)
	}
}
