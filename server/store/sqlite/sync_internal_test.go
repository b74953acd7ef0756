package sqlite

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/veil-e2ee/veil/server/store"
)

// TestWriteWaitsForSync holds the syncer inside its WAL sync and checks
// that a committed write is not reported to its caller until the sync
// finishes, while the writer goes on running the next write.
func TestWriteWaitsForSync(t *testing.T) {
	s, err := Open(t.Context(), filepath.Join(t.TempDir(), "veil.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	entered, release := make(chan struct{}, 16), make(chan struct{})
	s.wal.hook = func() {
		entered <- struct{}{}
		<-release
	}
	ok := func(context.Context, *wtx) error { return nil }
	first := make(chan error, 1)
	go func() { first <- s.write(context.Background(), ok) }()
	<-entered // the first write is committed and its sync has begun
	second, ran := make(chan error, 1), make(chan struct{})
	go func() {
		second <- s.write(context.Background(), func(ctx context.Context, tx *wtx) error {
			close(ran)
			_, err := tx.ExecContext(ctx, `INSERT INTO idempotency (key, created_minute) VALUES (x'01', 1)`)
			return err
		})
	}()
	// The writer runs the second write while the first sync is held
	// (it then keeps its transaction open until the syncer is free).
	select {
	case <-ran:
	case <-time.After(5 * time.Second):
		close(release)
		t.Fatal("the writer waited for the syncer")
	}
	select {
	case err := <-first:
		t.Fatalf("write answered before its sync: %v", err)
	case err := <-second:
		t.Fatalf("write answered before its sync: %v", err)
	case <-time.After(50 * time.Millisecond):
	}
	close(release)
	for _, c := range []chan error{first, second} {
		if err := <-c; err != nil {
			t.Fatal(err)
		}
	}
	var n int
	if err := s.r.db.QueryRow(`SELECT count(*) FROM idempotency`).Scan(&n); err != nil || n != 1 {
		t.Fatalf("second write: %d rows, %v", n, err)
	}
	if err := s.Ping(context.Background()); err != nil {
		t.Fatal(err)
	}
	var _ store.Store = s
}
