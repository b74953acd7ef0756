package groups_test

import (
	"fmt"

	"github.com/veil-e2ee/veil/client/internal/converge"
	"github.com/veil-e2ee/veil/client/internal/groups"
)

// Alice creates a group with Bob and Carol and makes Bob an admin; Bob
// renames it and Alice removes Carol. Carol's device gets the ops in
// another order, one of them twice, and agrees.
func Example() {
	id := [groups.IDSize]byte{0x5e, 0xed}
	alice := &converge.Clock{Origin: "alice.1"}
	bob := &converge.Clock{Origin: "bob.1"}

	create := groups.Op{Group: id, Kind: groups.Create, Author: "alice", Stamp: alice.Now(1000), Name: "hikers", Members: []string{"bob", "carol"}}
	grant := groups.Op{Group: id, Kind: groups.SetAdmin, Author: "alice", Stamp: alice.Now(1001), Member: "bob", Admin: true}
	bob.Observe(grant.Stamp)
	rename := groups.Op{Group: id, Kind: groups.Rename, Author: "bob", Stamp: bob.Now(1002), Name: "walkers"}
	remove := groups.Op{Group: id, Kind: groups.Remove, Author: "alice", Stamp: alice.Now(1003), Member: "carol"}

	onAlice, onCarol := groups.NewLog(0), groups.NewLog(0)
	for _, op := range []groups.Op{create, grant, rename} {
		onAlice.Add(op)
	}
	before := onAlice.State()
	onAlice.Add(remove)
	after := onAlice.State()
	for _, c := range groups.Diff(before, after) {
		fmt.Println("change:", c.Kind, c.Member)
	}
	fmt.Println("send the removal to:", groups.Recipients(before, after))

	for _, op := range []groups.Op{remove, rename, create, rename, grant} {
		onCarol.Add(op)
	}
	s := onCarol.State()
	fmt.Printf("%q members %v admins %v removed %v epoch %d\n", s.Name, s.Members, s.Admins, s.Removed, s.Epoch)
	fmt.Println("Carol's device agrees:", fmt.Sprint(s) == fmt.Sprint(after))
	// Output:
	// change: left carol
	// send the removal to: [alice bob carol]
	// "walkers" members [alice bob] admins [alice bob] removed [carol] epoch 1
	// Carol's device agrees: true
}
