package xeddsa_test

import (
	"crypto/ecdh"
	"crypto/rand"
	"fmt"

	"github.com/veil-e2ee/veil/protocol/internal/xeddsa"
)

// One X25519 identity key both agrees secrets and signs, e.g. a signed prekey's public key.
func Example() {
	identity, _ := ecdh.X25519().GenerateKey(rand.Reader)
	var priv, pub [32]byte
	copy(priv[:], identity.Bytes())
	copy(pub[:], identity.PublicKey().Bytes())

	signedPreKey := append([]byte{0x05}, make([]byte, 32)...) // serialized public key
	var random [64]byte
	rand.Read(random[:])
	sig := xeddsa.Sign(&priv, signedPreKey, &random)

	fmt.Println(xeddsa.Verify(&pub, signedPreKey, &sig))
	signedPreKey[1] ^= 1
	fmt.Println(xeddsa.Verify(&pub, signedPreKey, &sig))
	// Output:
	// true
	// false
}
