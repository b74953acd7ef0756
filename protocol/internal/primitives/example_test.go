package primitives_test

import (
	"crypto/hmac"
	"fmt"

	"github.com/veil-e2ee/veil/protocol/internal/primitives"
)

// The shape of one Signal message body: derive cipher key, MAC key and IV with HKDF, encrypt
// with AES-256-CBC, authenticate with HMAC-SHA256, and undo it all on the other side.
func Example() {
	seed := []byte("message key seed from the chain")
	var keys [80]byte
	primitives.HKDF(keys[:], seed, nil, []byte("WhisperMessageKeys"))
	cipherKey, macKey, iv := keys[:32], keys[32:64], keys[64:]

	ct, err := primitives.EncryptCBC(nil, cipherKey, iv, []byte("hello, Bob"))
	if err != nil {
		panic(err)
	}
	tag := primitives.HMACSHA256(nil, macKey, []byte{0x44}, ct)

	// Receiver: check the MAC first, in constant time, then decrypt.
	if !hmac.Equal(tag, primitives.HMACSHA256(nil, macKey, []byte{0x44}, ct)) {
		panic("bad MAC")
	}
	pt, err := primitives.DecryptCBC(nil, cipherKey, iv, ct)
	fmt.Println(len(ct), string(pt), err)
	// Output: 16 hello, Bob <nil>
}
