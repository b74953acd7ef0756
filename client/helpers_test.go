package client

import (
	"context"
	"crypto/rand"
	"fmt"
	"log/slog"
	"net"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/veil-e2ee/veil/client/devicestore"
	"github.com/veil-e2ee/veil/server"
	"github.com/veil-e2ee/veil/server/store"
	"github.com/veil-e2ee/veil/server/store/postgres"
	"github.com/veil-e2ee/veil/server/store/postgres/pgtest"
	"github.com/veil-e2ee/veil/server/store/sqlite"
)

// fastKDF keeps tests quick; the default costs are tested in devicestore.
var fastKDF = devicestore.WithKDFParams(devicestore.KDFParams{Time: 1, Memory: 64, Threads: 1})

// testLimits are generous: the tests register many users and fetch many
// bundles from one address.
var testLimits = server.Limits{
	PreKeyFetch: server.Rate{Burst: 10000, Interval: time.Millisecond},
	Register:    server.Rate{Burst: 10000, Interval: time.Millisecond},
	Lookup:      server.Rate{Burst: 10000, Interval: time.Millisecond},
	Link:        server.Rate{Burst: 10000, Interval: time.Millisecond},
	Recover:     server.Rate{Burst: 10000, Interval: time.Millisecond},
}

// testServer is a real veil server on a loopback port, on SQLite (in a
// temporary directory) or on a private PostgreSQL schema.
type testServer struct {
	t       testing.TB
	backend string
	dsn     string // sqlite path or postgres DSN
	addr    string
	URL     string
	srv     *server.Server
	st      store.Store
	secret  []byte
	holds   server.LegalHoldConfig // legal holds (off unless a test sets them)
	logger  *slog.Logger           // the server's (nil: discarded)
}

func startServer(t testing.TB, backend string) *testServer {
	t.Helper()
	ts := &testServer{t: t, backend: backend, secret: make([]byte, 32)}
	rand.Read(ts.secret)
	switch backend {
	case "sqlite":
		ts.dsn = filepath.Join(t.TempDir(), "veil.db")
	case "postgres":
		ts.dsn = pgtest.DSN(t)
	default:
		t.Fatalf("unknown backend %q", backend)
	}
	ts.start()
	t.Cleanup(ts.stop)
	return ts
}

func (ts *testServer) start() {
	t := ts.t
	t.Helper()
	ctx := context.Background()
	var err error
	if ts.backend == "sqlite" {
		ts.st, err = sqlite.Open(ctx, ts.dsn)
	} else {
		ts.st, err = postgres.Open(ctx, ts.dsn)
	}
	if err != nil {
		t.Fatalf("opening the server store: %v", err)
	}
	ts.srv, err = server.New(server.Config{Store: ts.st, Secret: ts.secret, Limits: testLimits, LegalHold: ts.holds, Logger: ts.logger})
	if err != nil {
		t.Fatal(err)
	}
	addr := ts.addr
	if addr == "" {
		addr = "127.0.0.1:0"
	}
	var l net.Listener
	for i := 0; i < 50; i++ { // the old port may linger for a moment after a restart
		if l, err = net.Listen("tcp", addr); err == nil {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if err != nil {
		t.Fatalf("listen: %v", err)
	}
	ts.addr = l.Addr().String()
	ts.URL = "http://" + ts.addr
	ts.srv.Start(l)
}

func (ts *testServer) stop() {
	if ts.srv == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	ts.srv.Shutdown(ctx)
	ts.st.Close()
	ts.srv, ts.st = nil, nil
}

// restart stops the server and starts it again on the same database and
// port.
func (ts *testServer) restart() {
	ts.t.Helper()
	ts.stop()
	ts.start()
}

func backends(t *testing.T, fn func(t *testing.T, backend string)) {
	t.Run("sqlite", func(t *testing.T) { fn(t, "sqlite") })
	t.Run("postgres", func(t *testing.T) { fn(t, "postgres") })
}

var userSeq atomic.Int64

// uniqueName returns a fresh username with a readable prefix.
func uniqueName(prefix string) string {
	return fmt.Sprintf("%s_%d_%d", prefix, time.Now().UnixNano()%1_000_000, userSeq.Add(1))
}

const testPass = "correct horse battery staple"

func testConfig(dir, url string) Config {
	return Config{Dir: dir, Unlock: Passphrase(testPass), Server: url, StoreOptions: []devicestore.Option{fastKDF}}
}

// register makes a user with a profile in a temporary directory.
func register(t testing.TB, ts *testServer, prefix string) (*Client, Config) {
	t.Helper()
	cfg := testConfig(filepath.Join(t.TempDir(), prefix), ts.URL)
	c, err := Register(context.Background(), cfg, uniqueName(prefix))
	if err != nil {
		t.Fatalf("register %s: %v", prefix, err)
	}
	t.Cleanup(func() { c.Close() })
	return c, cfg
}

// reopen closes a client and opens its profile again (a client restart).
func reopen(t testing.TB, c *Client, cfg Config) *Client {
	t.Helper()
	c.Close()
	c2, err := Open(context.Background(), cfg)
	if err != nil {
		t.Fatalf("reopen: %v", err)
	}
	t.Cleanup(func() { c2.Close() })
	return c2
}

// drain receives until the queue is empty and returns the events.
func drain(t testing.TB, c *Client) []Event {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	var out []Event
	for ev, err := range c.Receive(ctx, ReceiveOptions{Once: true}) {
		if err != nil {
			t.Fatalf("receive: %v", err)
		}
		out = append(out, ev)
	}
	return out
}

// bodies returns the bodies of the message events.
func bodies(evs []Event) []string {
	var out []string
	for _, ev := range evs {
		if ev.Kind == EventMessage {
			out = append(out, ev.Message.Body)
		}
	}
	return out
}

func mustSend(t testing.TB, c *Client, to, text string) Message {
	t.Helper()
	m, err := c.Send(context.Background(), to, text)
	if err != nil {
		t.Fatalf("send %q: %v", text, err)
	}
	return m
}
