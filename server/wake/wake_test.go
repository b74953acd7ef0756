package wake

import (
	"context"
	"fmt"
	"os"
	"testing"
	"time"
)

func testPostgresDSN(t *testing.T) string {
	t.Helper()
	dsn := os.Getenv("VEIL_TEST_POSTGRES")
	if dsn == "" {
		dsn = "postgres://postgres@127.0.0.1:5432/test?sslmode=disable"
	}
	return dsn
}

func skipOrFail(t *testing.T, what string, err error) {
	t.Helper()
	if os.Getenv("CI") == "true" {
		t.Fatalf("%s unreachable (required when CI=true): %v", what, err)
	}
	t.Skipf("SKIPPING: %s unreachable: %v", what, err)
}

func testNATSURL() string {
	if u := os.Getenv("VEIL_TEST_NATS"); u != "" {
		return u
	}
	return "nats://127.0.0.1:4222"
}

func TestSignalRoundTrip(t *testing.T) {
	s := Signal{Key: Key{1, 2, 3}, Seq: 42, CommitUnixNano: -5, Takeover: 1<<63 + 7}
	b, _ := s.MarshalBinary()
	var got Signal
	if err := got.UnmarshalBinary(b); err != nil {
		t.Fatal(err)
	}
	if got != s {
		t.Fatalf("got %+v, want %+v", got, s)
	}
	if err := got.UnmarshalBinary(b[:39]); err == nil {
		t.Fatal("short payload accepted")
	}
}

func FuzzSignal(f *testing.F) {
	b, _ := Signal{Key: Key{9}, Seq: 1}.MarshalBinary()
	f.Add(b)
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, in []byte) {
		var s Signal
		if err := s.UnmarshalBinary(in); err != nil {
			return
		}
		out, _ := s.MarshalBinary()
		if string(out) != string(in) {
			t.Fatalf("not canonical: %x vs %x", in, out)
		}
	})
}

// exercise checks that a signal notified on a reaches a subscriber on b
// (two nodes) within the given bound, and that other keys stay silent.
func exercise(t *testing.T, a, b Waker, bound time.Duration) {
	t.Helper()
	k := Key{0xaa, byte(time.Now().UnixNano())}
	other := Key{0xbb, byte(time.Now().UnixNano())}
	ch, cancel := b.Subscribe(k)
	defer cancel()
	och, ocancel := b.Subscribe(other)
	defer ocancel()
	for i := 0; i < 20; i++ {
		start := time.Now()
		if err := a.Notify(context.Background(), Signal{Key: k, Seq: int64(i + 1)}); err != nil {
			t.Fatal(err)
		}
		select {
		case s := <-ch:
			if s.Key != k || s.Seq != int64(i+1) {
				t.Fatalf("got %+v", s)
			}
			if d := time.Since(start); d > bound {
				t.Errorf("signal %d took %v (> %v)", i, d, bound)
			}
		case <-time.After(2 * time.Second):
			t.Fatalf("signal %d not received", i)
		}
	}
	select {
	case s := <-och:
		t.Fatalf("unrelated key woken: %+v", s)
	default:
	}
	cancel()
	// After unsubscribing, nothing arrives (and nothing blocks).
	if err := a.Notify(context.Background(), Signal{Key: k}); err != nil {
		t.Fatal(err)
	}
}

func TestLocal(t *testing.T) {
	l := NewLocal()
	exercise(t, l, l, 10*time.Millisecond)
	// A full buffer never blocks Notify.
	k := Key{7}
	ch, cancel := l.Subscribe(k)
	defer cancel()
	for i := 0; i < subBuffer*3; i++ {
		_ = l.Notify(context.Background(), Signal{Key: k, Seq: int64(i)})
	}
	var last Signal
	for len(ch) > 0 {
		last = <-ch
	}
	if last.Seq != subBuffer*3-1 {
		t.Fatalf("newest signal lost: last seq %d", last.Seq)
	}
	l.Close()
	if err := l.Notify(context.Background(), Signal{Key: k}); err == nil {
		t.Fatal("notify after close succeeded")
	}
}

func TestPostgresTwoNodes(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	a, err := NewPostgres(ctx, testPostgresDSN(t), nil)
	if err != nil {
		skipOrFail(t, "PostgreSQL (VEIL_TEST_POSTGRES)", err)
	}
	defer a.Close()
	b, err := NewPostgres(ctx, testPostgresDSN(t), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	exercise(t, a, b, 100*time.Millisecond)
}

func TestNATSTwoNodes(t *testing.T) {
	a, err := NewNATS(testNATSURL(), nil)
	if err != nil {
		skipOrFail(t, "NATS (VEIL_TEST_NATS)", err)
	}
	defer a.Close()
	b, err := NewNATS(testNATSURL(), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	exercise(t, a, b, 100*time.Millisecond)
}

func Example() {
	w := NewLocal()
	defer w.Close()
	ch, stop := w.Subscribe(Key{1})
	defer stop()
	_ = w.Notify(context.Background(), Signal{Key: Key{1}, Seq: 7})
	s := <-ch
	fmt.Println("woken for seq", s.Seq)
	// Output: woken for seq 7
}
