package sqlite_test

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"sync"
	"testing"

	"github.com/veil-e2ee/veil/server/store"
	"github.com/veil-e2ee/veil/server/store/sqlite"
	"github.com/veil-e2ee/veil/server/store/storetest"
)

// TestGroupCommitIsolation runs writes that succeed, writes that fail
// and writes whose context is cancelled, all at once so they share
// batches: each failure must leave no trace and must not disturb the
// writes committed beside it.
func TestGroupCommitIsolation(t *testing.T) {
	ctx := t.Context()
	s, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "veil.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	newAcc := func(i int, name string) store.NewAccount {
		return store.NewAccount{ID: storetest.ID(byte(i)), Username: name, IdentityKey: []byte("ik"), RegistrationID: 1,
			CredentialHash: []byte("h"), PreKeys: storetest.Upload(1, 1, 2), Now: storetest.Epoch}
	}
	if _, err := s.CreateAccount(ctx, newAcc(200, "taken")); err != nil {
		t.Fatal(err)
	}
	cancelled, cancel := context.WithCancel(ctx)
	cancel()
	const n = 60
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			switch i % 3 {
			case 0:
				_, errs[i] = s.CreateAccount(ctx, newAcc(i+1, fmt.Sprint("user", i)))
			case 1:
				_, errs[i] = s.CreateAccount(ctx, newAcc(i+1, "taken"))
			case 2:
				_, errs[i] = s.CreateAccount(cancelled, newAcc(i+1, fmt.Sprint("user", i)))
			}
		})
	}
	wg.Wait()
	for i, err := range errs {
		_, lookErr := s.Account(ctx, storetest.ID(byte(i+1)))
		switch i % 3 {
		case 0:
			if err != nil || lookErr != nil {
				t.Fatalf("write %d: %v, then lookup %v; want stored", i, err, lookErr)
			}
		case 1:
			if !errors.Is(err, store.ErrUsernameTaken) || !errors.Is(lookErr, store.ErrNotFound) {
				t.Fatalf("write %d: %v, then lookup %v; want ErrUsernameTaken and nothing stored", i, err, lookErr)
			}
		case 2:
			if !errors.Is(err, context.Canceled) || !errors.Is(lookErr, store.ErrNotFound) {
				t.Fatalf("write %d: %v, then lookup %v; want context.Canceled and nothing stored", i, err, lookErr)
			}
		}
	}
}
