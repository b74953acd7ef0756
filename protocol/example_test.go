package protocol_test

import (
	"context"
	"crypto/rand"
	"fmt"
	"time"

	"github.com/veil-e2ee/veil/protocol"
)

// Alice starts a session with Bob from his prekey bundle (PQXDH), sends
// him a message, and Bob replies.
func Example() {
	ctx := context.Background()
	now := time.Now()

	// Bob's device: an identity, a registration id and prekeys. In a real
	// deployment the public halves go to the server as a bundle.
	bobID, _ := protocol.GenerateIdentityKeyPair(rand.Reader)
	bobStore := protocol.NewInMemoryStore(bobID, 1002)
	spk, _ := protocol.GenerateSignedPreKey(rand.Reader, bobID, 1, now)
	kyber, _ := protocol.GenerateKyberPreKey(rand.Reader, bobID, 1, true, now)
	otks, _ := protocol.GeneratePreKeys(rand.Reader, 100, 1)
	bobStore.StoreSignedPreKey(ctx, spk)
	bobStore.StoreKyberPreKey(ctx, kyber)
	bobStore.StorePreKey(ctx, otks[0])
	bundle := &protocol.PreKeyBundle{
		RegistrationID: 1002, DeviceID: 1, IdentityKey: bobID.Public,
		HasPreKey: true, PreKeyID: otks[0].ID, PreKey: otks[0].KeyPair.Public,
		SignedPreKeyID: spk.ID, SignedPreKey: spk.KeyPair.Public, SignedPreKeySignature: spk.Signature,
		KyberPreKeyID: kyber.ID, KyberPreKey: kyber.KeyPair.Public, KyberPreKeySignature: kyber.Signature,
	}

	// Alice's device.
	aliceID, _ := protocol.GenerateIdentityKeyPair(rand.Reader)
	aliceStore := protocol.NewInMemoryStore(aliceID, 1001)

	alice := protocol.NewCipher(protocol.StoresOf(aliceStore), rand.Reader, nil)
	bob := protocol.NewCipher(protocol.StoresOf(bobStore), rand.Reader, nil)
	aliceAddr := protocol.Address{Name: "alice", DeviceID: 1}
	bobAddr := protocol.Address{Name: "bob", DeviceID: 1}

	if err := alice.ProcessPreKeyBundle(ctx, bobAddr, bundle); err != nil {
		panic(err)
	}
	first, _ := alice.Encrypt(ctx, bobAddr, []byte("Hello Bob"))
	fmt.Println("first message is a PreKey message:", first.Type == protocol.PreKeyMessageType)

	pt, err := bob.Decrypt(ctx, aliceAddr, first)
	fmt.Printf("Bob reads %q (%v)\n", pt, err)

	reply, _ := bob.Encrypt(ctx, aliceAddr, []byte("Hi Alice"))
	pt, err = alice.Decrypt(ctx, bobAddr, reply)
	fmt.Printf("Alice reads %q (%v)\n", pt, err)

	// Both can compare safety numbers out of band.
	a, _ := protocol.NewSafetyNumber([]byte("alice"), aliceID.Public, []byte("bob"), bobID.Public)
	b, _ := protocol.NewSafetyNumber([]byte("bob"), bobID.Public, []byte("alice"), aliceID.Public)
	fmt.Println("safety numbers match:", a.Displayable == b.Displayable)

	// Output:
	// first message is a PreKey message: true
	// Bob reads "Hello Bob" (<nil>)
	// Alice reads "Hi Alice" (<nil>)
	// safety numbers match: true
}

// A session record survives being stored and reloaded (e.g. in the
// encrypted device database) between messages.
func ExampleParseSessionRecord() {
	rec := protocol.NewSessionRecord()
	stored := rec.Marshal() // what goes into the database (encrypted at rest)
	loaded, err := protocol.ParseSessionRecord(stored)
	fmt.Println(loaded.HasCurrentState(), err)
	// Output: false <nil>
}
