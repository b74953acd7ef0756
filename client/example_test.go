package client_test

import (
	"context"
	"fmt"
	"log"
	"net"
	"os"
	"path/filepath"
	"time"

	"github.com/veil-e2ee/veil/client"
	"github.com/veil-e2ee/veil/client/devicestore"
	"github.com/veil-e2ee/veil/server"
	"github.com/veil-e2ee/veil/server/store/sqlite"
)

// startServer runs a veil server on SQLite on a loopback port, as
// `veil server` would.
func startServer(dir string) (url string, stop func()) {
	ctx := context.Background()
	st, err := sqlite.Open(ctx, filepath.Join(dir, "veil.db"))
	if err != nil {
		log.Fatal(err)
	}
	srv, err := server.New(server.Config{Store: st, Secret: make([]byte, 32)})
	if err != nil {
		log.Fatal(err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		log.Fatal(err)
	}
	srv.Start(l)
	return "http://" + l.Addr().String(), func() { srv.Shutdown(ctx); st.Close() }
}

// Two people register, exchange a message, and compare safety numbers.
func Example() {
	dir, _ := os.MkdirTemp("", "veil-example")
	defer os.RemoveAll(dir)
	url, stop := startServer(dir)
	defer stop()
	ctx := context.Background()
	suffix := fmt.Sprint(time.Now().UnixNano() % 1e6)

	open := func(name string) *client.Client {
		c, err := client.Register(ctx, client.Config{
			Dir:    filepath.Join(dir, name), // the device's encrypted store
			Unlock: client.Passphrase("a passphrase only " + name + " knows"),
			Server: url,
			// Cheap key stretching for the example; leave unset for the default.
			StoreOptions: []devicestore.Option{devicestore.WithKDFParams(devicestore.KDFParams{Time: 1, Memory: 64, Threads: 1})},
		}, name+"_"+suffix)
		if err != nil {
			log.Fatal(err)
		}
		return c
	}
	alice, bob := open("alice"), open("bob")
	defer alice.Close()
	defer bob.Close()

	// Alice writes to Bob by username; the session is set up on demand.
	msg, err := alice.Send(ctx, bob.Self().Username, "Hello Bob!")
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("alice:", msg.Status)

	// Bob receives until his queue is drained.
	for ev, err := range bob.Receive(ctx, client.ReceiveOptions{Once: true}) {
		if err != nil {
			log.Fatal(err)
		}
		if ev.Kind == client.EventMessage {
			fmt.Printf("bob got %q from alice: %v\n", ev.Message.Body, ev.Contact == alice.Self().Username)
		}
	}

	// They compare safety numbers (in person, or over a call) and mark
	// each other verified.
	sa, _ := alice.SafetyNumber(ctx, bob.Self().Username)
	sb, _ := bob.SafetyNumber(ctx, alice.Self().Username)
	fmt.Println("same safety number:", sa.Digits == sb.Digits, len(sa.Digits), "digits")
	if err := alice.Verify(ctx, bob.Self().Username, sb.String()); err != nil {
		log.Fatal(err)
	}
	ct, _ := alice.Contact(ctx, bob.Self().Username)
	fmt.Println("bob verified:", ct.Verified())
	// Output:
	// alice: sent
	// bob got "Hello Bob!" from alice: true
	// same safety number: true 60 digits
	// bob verified: true
}
