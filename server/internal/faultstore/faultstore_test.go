package faultstore_test

import (
	"context"
	"errors"
	"path/filepath"
	"sync"
	"testing"

	"github.com/veil-e2ee/veil/server/internal/faultstore"
	"github.com/veil-e2ee/veil/server/store"
	"github.com/veil-e2ee/veil/server/store/sqlite"
	"github.com/veil-e2ee/veil/server/store/storetest"
)

var (
	mu    sync.Mutex
	paths = map[*testing.T]string{}
)

// open wraps a SQLite store: one file per test, reopened when the same
// test asks again (the conformance suite reopens to check durability).
func open(t *testing.T) store.Store {
	mu.Lock()
	p, ok := paths[t]
	if !ok {
		p = filepath.Join(t.TempDir(), "veil.db")
		paths[t] = p
	}
	mu.Unlock()
	s, err := sqlite.Open(context.Background(), p)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return faultstore.Wrap(s)
}

// TestConformance: without faults the wrapper is the store it wraps.
func TestConformance(t *testing.T) {
	storetest.Run(t, open)
}

func TestInject(t *testing.T) {
	f := open(t).(*faultstore.Store)
	boom := errors.New("boom")
	f.Inject(func(op string) error {
		if op == "Ping" {
			return boom
		}
		return nil
	})
	if err := f.Ping(context.Background()); !errors.Is(err, boom) {
		t.Fatalf("Ping = %v", err)
	}
	if _, err := f.QueueDepth(context.Background(), store.AccountID{1}, 1); errors.Is(err, boom) {
		t.Fatal("fault hit another method")
	}
	f.Inject(nil)
	if err := f.Ping(context.Background()); err != nil {
		t.Fatal(err)
	}
}
