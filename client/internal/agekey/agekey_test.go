package agekey

import (
	"bytes"
	"crypto/ecdh"
	"crypto/rand"
	"io"
	"testing"

	"filippo.io/age"
)

// The identity made from a scalar is the age identity of that scalar: its
// recipient is the X25519 public key of the scalar, it round-trips
// through age's own parser, and it opens what is encrypted to it.
func TestIdentity(t *testing.T) {
	var k [32]byte
	rand.Read(k[:])
	id, err := Identity(k)
	if err != nil {
		t.Fatal(err)
	}
	priv, err := ecdh.X25519().NewPrivateKey(k[:])
	if err != nil {
		t.Fatal(err)
	}
	want, err := encode("age", priv.PublicKey().Bytes())
	if err != nil {
		t.Fatal(err)
	}
	if got := id.Recipient().String(); got != want {
		t.Fatalf("recipient %s, want %s", got, want)
	}
	again, err := age.ParseX25519Identity(id.String())
	if err != nil || again.String() != id.String() {
		t.Fatalf("round trip: %v", err)
	}
	var buf bytes.Buffer
	w, _ := age.Encrypt(&buf, id.Recipient())
	w.Write([]byte("hello"))
	w.Close()
	r, err := age.Decrypt(&buf, id)
	if err != nil {
		t.Fatal(err)
	}
	if b, _ := io.ReadAll(r); string(b) != "hello" {
		t.Fatalf("decrypted %q", b)
	}
}
