package interop_test

import (
	"fmt"
	"log"

	"github.com/veil-e2ee/veil/interop"
)

// Two libsignal devices set up a PQXDH session from a bundle and exchange a
// message. In a test, use interop.Start(t) instead of Launch; it skips the
// test when Node or the npm package is missing. (No Output line: the example
// needs Node, so it is compiled but not run.)
func Example() {
	p, err := interop.Launch()
	if err != nil {
		log.Fatal(err)
	}
	defer p.Close()

	if _, err := p.Create("alice", 0); err != nil {
		log.Fatal(err)
	}
	if _, err := p.Create("bob", 0); err != nil {
		log.Fatal(err)
	}
	bundle, err := p.Bundle("bob", 1, 1, 1, 1, true)
	if err != nil {
		log.Fatal(err)
	}
	if err := p.ProcessBundle("alice", "bob", 1, bundle); err != nil {
		log.Fatal(err)
	}
	msg, err := p.Encrypt("alice", "bob", 1, []byte("hello"))
	if err != nil {
		log.Fatal(err)
	}
	pt, err := p.Decrypt("bob", "alice", 1, msg)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(msg.Type == interop.MessageTypePreKey, string(pt))
}
