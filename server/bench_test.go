package server

import (
	"context"
	"log/slog"
	"net"
	"testing"
	"time"

	"github.com/veil-e2ee/veil/server/loadgen"
	"github.com/veil-e2ee/veil/server/store"
	"github.com/veil-e2ee/veil/server/store/postgres"
	"github.com/veil-e2ee/veil/server/store/postgres/pgtest"
	"github.com/veil-e2ee/veil/server/wake"
)

// benchServer starts an in-process server for a benchmark.
func benchServer(b *testing.B, st store.Store, w wake.Waker) string {
	b.Helper()
	srv, err := New(Config{Store: st, Waker: w, Secret: testSecret, Logger: slog.New(slog.DiscardHandler),
		Limits: Limits{Register: Unlimited, Send: Unlimited, PreKeyFetch: Unlimited, MaxQueue: 1 << 30}})
	if err != nil {
		b.Fatal(err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	srv.Start(l)
	b.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		srv.Shutdown(ctx)
	})
	return "http://" + l.Addr().String()
}

// benchEndToEnd measures authenticated send → commit → push over
// WebSocket → ack → delete with 100 connected devices and 32 concurrent
// senders; b.N is the message count.
func benchEndToEnd(b *testing.B, base string) {
	ctx := context.Background()
	c := loadgen.NewClient(base, 64)
	devs, err := c.Register(ctx, "b", 100)
	if err != nil {
		b.Fatal(err)
	}
	rcv, err := c.Receive(ctx, devs)
	if err != nil {
		b.Fatal(err)
	}
	defer rcv.Close()
	b.ResetTimer()
	r, err := c.Throughput(ctx, devs, rcv, b.N, 32)
	if err != nil {
		b.Fatal(err)
	}
	b.ReportMetric(r.PerSecond, "msgs/s")
	b.ReportMetric(float64(r.P50.Microseconds())/1000, "p50-ms")
	b.ReportMetric(float64(r.P99.Microseconds())/1000, "p99-ms")
}

func BenchmarkEndToEndSQLite(b *testing.B) {
	benchEndToEnd(b, benchServer(b, openSQLite(b, b.TempDir()), nil))
}

func BenchmarkEndToEndPostgres(b *testing.B) {
	dsn := pgtest.DSN(b)
	st, err := postgres.Open(context.Background(), dsn)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { st.Close() })
	w, err := wake.NewPostgres(context.Background(), dsn, nil)
	if err != nil {
		b.Fatal(err)
	}
	benchEndToEnd(b, benchServer(b, st, w))
}

// benchFixedRate sends 1,000 msg/s for 5 s (b.N is ignored beyond one
// run) and reports delivery latency.
func benchFixedRate(b *testing.B, base string) {
	ctx := context.Background()
	c := loadgen.NewClient(base, 256)
	devs, err := c.Register(ctx, "f", 100)
	if err != nil {
		b.Fatal(err)
	}
	rcv, err := c.Receive(ctx, devs)
	if err != nil {
		b.Fatal(err)
	}
	defer rcv.Close()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		r, err := c.FixedRate(ctx, devs, rcv, 1000, 5*time.Second)
		if err != nil {
			b.Fatal(err)
		}
		b.ReportMetric(r.PerSecond, "msgs/s")
		b.ReportMetric(float64(r.P50.Microseconds())/1000, "p50-ms")
		b.ReportMetric(float64(r.P99.Microseconds())/1000, "p99-ms")
	}
}

func BenchmarkFixedRate1000SQLite(b *testing.B) {
	benchFixedRate(b, benchServer(b, openSQLite(b, b.TempDir()), nil))
}

func BenchmarkFixedRate1000Postgres(b *testing.B) {
	dsn := pgtest.DSN(b)
	st, err := postgres.Open(context.Background(), dsn)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { st.Close() })
	w, err := wake.NewPostgres(context.Background(), dsn, nil)
	if err != nil {
		b.Fatal(err)
	}
	benchFixedRate(b, benchServer(b, st, w))
}
