package sqlite_test

import (
	"bufio"
	"context"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/veil-e2ee/veil/server/store"
	"github.com/veil-e2ee/veil/server/store/sqlite"
	"github.com/veil-e2ee/veil/server/store/storetest"
)

const childEnv = "VEIL_STORE_KILL_CHILD"

// TestKill9LosesNothingAcknowledged runs a child process that delivers
// from several goroutines and prints each message id only after Deliver
// returned, kills it with SIGKILL mid-load, reopens the database and
// checks every printed message is queued exactly once.
func TestKill9LosesNothingAcknowledged(t *testing.T) {
	if path := os.Getenv(childEnv); path != "" {
		killChild(path)
		return
	}
	if testing.Short() {
		t.Skip("starts a child process")
	}
	path := filepath.Join(t.TempDir(), "veil.db")
	s, err := sqlite.Open(t.Context(), path)
	if err != nil {
		t.Fatal(err)
	}
	bob := storetest.ID(2)
	if _, err := s.CreateAccount(t.Context(), store.NewAccount{ID: bob, Username: "bob", IdentityKey: []byte("ik"), RegistrationID: 1,
		CredentialHash: []byte("h"), PreKeys: storetest.Upload(1, 1, 0), Now: storetest.Epoch}); err != nil {
		t.Fatal(err)
	}
	s.Close()

	cmd := exec.Command(os.Args[0], "-test.run=^TestKill9LosesNothingAcknowledged$")
	cmd.Env = append(os.Environ(), childEnv+"="+path)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	acked := map[string]bool{}
	sc := bufio.NewScanner(out)
	deadline := time.Now().Add(60 * time.Second)
	for sc.Scan() && len(acked) < 400 && time.Now().Before(deadline) {
		if id, ok := strings.CutPrefix(sc.Text(), "acked "); ok {
			acked[id] = true
		}
	}
	cmd.Process.Kill() // SIGKILL: no deferred Close, no final checkpoint
	cmd.Wait()
	if len(acked) < 50 {
		t.Fatalf("child acknowledged only %d sends before the deadline", len(acked))
	}

	s, err = sqlite.Open(t.Context(), path)
	if err != nil {
		t.Fatalf("reopen after kill: %v", err)
	}
	defer s.Close()
	envs, err := s.Pending(t.Context(), bob, 1, 0, 1_000_000)
	if err != nil {
		t.Fatal(err)
	}
	queued := map[string]int{}
	for _, e := range envs {
		queued[hex.EncodeToString(e.MessageID[:])]++
	}
	for id := range acked {
		if queued[id] != 1 {
			t.Fatalf("acknowledged message %s is queued %d times after kill -9, want once", id, queued[id])
		}
	}
	t.Logf("%d sends acknowledged before SIGKILL, %d queued after restart", len(acked), len(envs))
}

// killChild delivers until it is killed, printing each message id after
// its Deliver returned.
func killChild(path string) {
	s, err := sqlite.Open(context.Background(), path)
	if err != nil {
		fmt.Fprintln(os.Stderr, "child:", err)
		os.Exit(1)
	}
	var n atomic.Uint64
	var mu sync.Mutex
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for {
				var id [16]byte
				binaryID := n.Add(1)
				for i := range 8 {
					id[15-i] = byte(binaryID >> (8 * i))
				}
				_, err := s.Deliver(context.Background(), store.Send{MessageID: id, Recipient: storetest.ID(2), Now: storetest.Epoch,
					Envelopes: []store.OutgoingEnvelope{{DeviceID: 1, RegistrationID: 1, Content: make([]byte, 512)}}})
				if err != nil {
					fmt.Fprintln(os.Stderr, "child:", err)
					os.Exit(1)
				}
				mu.Lock()
				fmt.Fprintf(os.Stdout, "acked %s\n", hex.EncodeToString(id[:]))
				mu.Unlock()
			}
		})
	}
	wg.Wait()
}
