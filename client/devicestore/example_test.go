package devicestore_test

import (
	"context"
	"crypto/rand"
	"fmt"
	"os"
	"time"

	"github.com/veil-e2ee/veil/client/devicestore"
	"github.com/veil-e2ee/veil/protocol"
)

// Bob's device keeps its keys in an encrypted device store. A PreKey
// message from Alice is decrypted and the message stored in one Update:
// the new session, the consumed prekeys and the message commit together,
// and only then would the SDK acknowledge the envelope to the server.
func Example() {
	ctx := context.Background()
	dir, _ := os.MkdirTemp("", "veil-device-")
	defer os.RemoveAll(dir)

	// Create the store (Open on later runs). The passphrase is stretched
	// with Argon2id (DefaultKDFParams) and a random salt.
	bobStore, err := devicestore.Create(ctx, dir, devicestore.Passphrase("correct horse battery staple"))
	if err != nil {
		panic(err)
	}
	defer bobStore.Close()

	// Bob's identity and prekeys, stored in one transaction.
	now := time.Now()
	bobID, _ := protocol.GenerateIdentityKeyPair(rand.Reader)
	spk, _ := protocol.GenerateSignedPreKey(rand.Reader, bobID, 1, now)
	kyber, _ := protocol.GenerateKyberPreKey(rand.Reader, bobID, 1, true, now)
	err = bobStore.Update(ctx, func(tx *devicestore.Tx) error {
		if err := tx.SetLocalIdentity(ctx, bobID, 1002); err != nil {
			return err
		}
		if err := tx.StoreSignedPreKey(ctx, spk); err != nil {
			return err
		}
		return tx.StoreKyberPreKey(ctx, kyber)
	})
	if err != nil {
		panic(err)
	}

	// Alice (in memory here) starts a session from Bob's bundle.
	aliceID, _ := protocol.GenerateIdentityKeyPair(rand.Reader)
	alice := protocol.NewCipher(protocol.StoresOf(protocol.NewInMemoryStore(aliceID, 1001)), rand.Reader, nil)
	aliceAddr := protocol.Address{Name: "alice", DeviceID: 1}
	bobAddr := protocol.Address{Name: "bob", DeviceID: 1}
	bundle := &protocol.PreKeyBundle{
		RegistrationID: 1002, DeviceID: 1, IdentityKey: bobID.Public,
		SignedPreKeyID: spk.ID, SignedPreKey: spk.KeyPair.Public, SignedPreKeySignature: spk.Signature,
		KyberPreKeyID: kyber.ID, KyberPreKey: kyber.KeyPair.Public, KyberPreKeySignature: kyber.Signature,
	}
	if err := alice.ProcessPreKeyBundle(ctx, bobAddr, bundle); err != nil {
		panic(err)
	}
	envelope, _ := alice.Encrypt(ctx, bobAddr, []byte("Hello Bob"))
	messageID := []byte("0123456789abcdef") // chosen by the sender, carried by the server

	// Receive: decrypt and store in one transaction.
	err = bobStore.Update(ctx, func(tx *devicestore.Tx) error {
		pt, err := protocol.NewCipher(protocol.StoresOf(tx), rand.Reader, nil).Decrypt(ctx, aliceAddr, envelope)
		if err != nil {
			return err // rolled back: the session and prekeys are as before
		}
		conv, err := tx.Conversation(ctx, aliceAddr.Name)
		if err != nil {
			return err
		}
		_, err = tx.InsertMessage(ctx, devicestore.Message{
			ConversationID: conv, Sender: aliceAddr.Name, SenderDevice: aliceAddr.DeviceID,
			MessageID: messageID, Body: pt, SentAt: now,
		})
		return err
	})
	fmt.Println("committed:", err == nil) // now the SDK acks the envelope

	// A redelivery (crash after commit, before the ack) is recognised.
	dup, _ := bobStore.HasMessage(ctx, "alice", messageID)
	fmt.Println("already stored:", dup)

	convs, _ := bobStore.Conversations(ctx)
	msgs, _ := bobStore.Messages(ctx, convs[0].ID, 0, 10)
	fmt.Printf("%s says %q\n", msgs[0].Sender, msgs[0].Body)
	// Output:
	// committed: true
	// already stored: true
	// alice says "Hello Bob"
}
