package postgres_test

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/veil-e2ee/veil/server/store"
	"github.com/veil-e2ee/veil/server/store/postgres"
	"github.com/veil-e2ee/veil/server/store/postgres/pgtest"
	"github.com/veil-e2ee/veil/server/store/storetest"
)

// openNodes opens n stores on one fresh schema at the same time, as n
// server processes starting together would: the migrations must apply
// once and none of the opens may fail.
func openNodes(t *testing.T, n int) []*postgres.Store {
	t.Helper()
	dsn := pgtest.DSN(t)
	nodes := make([]*postgres.Store, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() { nodes[i], errs[i] = postgres.Open(t.Context(), dsn) })
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("node %d: Open: %v", i, err)
		}
		t.Cleanup(func() { nodes[i].Close() })
	}
	var applied int
	if err := nodes[0].Pool().QueryRow(t.Context(), `SELECT count(*) FROM schema_migrations`).Scan(&applied); err != nil {
		t.Fatal(err)
	}
	files, err := filepath.Glob("migrations/*.sql")
	if err != nil {
		t.Fatal(err)
	}
	if applied != len(files) {
		t.Fatalf("schema_migrations has %d rows, want %d", applied, len(files))
	}
	return nodes
}

func TestNodesShareOneDatabase(t *testing.T) {
	nodes := openNodes(t, 4)
	a, b := nodes[0], nodes[1]
	ctx := t.Context()
	acc := storetest.ID(1)
	up := storetest.Upload(1, 1, 20)
	if _, err := a.CreateAccount(ctx, store.NewAccount{ID: acc, Username: "alice", IdentityKey: []byte("ik"), RegistrationID: 1001,
		CredentialHash: []byte("h"), PreKeys: up, Now: storetest.Epoch}); err != nil {
		t.Fatal(err)
	}
	if _, err := b.CreateAccount(ctx, store.NewAccount{ID: storetest.ID(2), Username: "alice", IdentityKey: []byte("ik"), RegistrationID: 1,
		CredentialHash: []byte("h"), PreKeys: up, Now: storetest.Epoch}); !errors.Is(err, store.ErrUsernameTaken) {
		t.Fatalf("CreateAccount on another node with a taken name: %v", err)
	}

	// 50 fetchers spread over 4 nodes share 20 one-time keys.
	var mu sync.Mutex
	var got []uint32
	var wg sync.WaitGroup
	for i := range 50 {
		wg.Go(func() {
			bs, err := nodes[i%len(nodes)].TakeBundles(context.Background(), acc, 1)
			if err != nil {
				t.Error(err)
				return
			}
			if bs[0].PreKey != nil {
				mu.Lock()
				got = append(got, bs[0].PreKey.KeyID)
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	slices.Sort(got)
	if len(got) != 20 || len(slices.Compact(slices.Clone(got))) != 20 {
		t.Fatalf("keys handed out across nodes: %v; want 1..20 once each", got)
	}

	// Senders on every node, the reader on node b paging by seq.
	const each = 30
	for i, n := range nodes {
		wg.Go(func() {
			for j := range each {
				snd := store.Send{MessageID: storetest.MsgID(i*each + j), Recipient: acc, Now: storetest.Epoch,
					Envelopes: []store.OutgoingEnvelope{{DeviceID: 1, RegistrationID: 1001, Type: 1, Content: []byte{byte(j)}}}}
				if _, err := n.Deliver(context.Background(), snd); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	envs, err := b.Pending(ctx, acc, 1, 0, 1000)
	if err != nil {
		t.Fatal(err)
	}
	if len(envs) != len(nodes)*each {
		t.Fatalf("%d envelopes queued, want %d", len(envs), len(nodes)*each)
	}
}

func TestNotifyListenAcrossNodes(t *testing.T) {
	nodes := openNodes(t, 2)
	ctx, cancel := context.WithCancel(t.Context())
	got := make(chan string, 10)
	listening := make(chan error, 1)
	go func() { listening <- nodes[1].Listen(ctx, "veil wake", func(p string) { got <- p }) }()
	// LISTEN takes effect asynchronously: notify until one arrives.
	deadline := time.After(10 * time.Second)
	for i := 0; ; i++ {
		if err := nodes[0].Notify(t.Context(), "veil wake", fmt.Sprint("ping ", i)); err != nil {
			t.Fatal(err)
		}
		select {
		case p := <-got:
			if p[:5] != "ping " {
				t.Fatalf("payload %q", p)
			}
			cancel()
			if err := <-listening; err != nil {
				t.Fatalf("Listen returned %v after cancel, want nil", err)
			}
			return
		case err := <-listening:
			t.Fatalf("Listen ended early: %v", err)
		case <-deadline:
			t.Fatal("no notification within 10s")
		case <-time.After(50 * time.Millisecond):
		}
	}
}
