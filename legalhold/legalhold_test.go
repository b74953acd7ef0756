package legalhold

import (
	"bytes"
	"crypto/rand"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/veil-e2ee/veil/protocol"
)

func testCert(t *testing.T) (*Certificate, protocol.KeyPair) {
	t.Helper()
	root, err := protocol.GenerateKeyPair(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	dev, err := protocol.GenerateKeyPair(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	c := &Certificate{DeviceID: 7, Since: time.Unix(1_800_000_000, 0), IdentityKey: dev.Public.Bytes()}
	copy(c.Account[:], "account-id-16byt")
	copy(c.HoldID[:], "hold-id-16-bytes")
	if err := c.Sign(root, rand.Reader); err != nil {
		t.Fatal(err)
	}
	return c, root
}

func TestCertificateVerifies(t *testing.T) {
	c, root := testCert(t)
	if err := c.Verify(root.Public); err != nil {
		t.Fatalf("a fresh certificate does not verify: %v", err)
	}
	other, _ := protocol.GenerateKeyPair(rand.Reader)
	if err := c.Verify(other.Public); !errors.Is(err, ErrBadCertificate) {
		t.Fatalf("verified under another root: %v", err)
	}
}

// Every field is covered by the signature: changing any one breaks it.
func TestCertificateTamper(t *testing.T) {
	c, root := testCert(t)
	other, _ := protocol.GenerateKeyPair(rand.Reader)
	for name, edit := range map[string]func(c *Certificate){
		"account":      func(c *Certificate) { c.Account[0] ^= 1 },
		"device":       func(c *Certificate) { c.DeviceID++ },
		"hold":         func(c *Certificate) { c.HoldID[15] ^= 1 },
		"since":        func(c *Certificate) { c.Since = c.Since.Add(time.Second) },
		"identity key": func(c *Certificate) { c.IdentityKey = other.Public.Bytes() },
		"signature":    func(c *Certificate) { c.Signature = append([]byte(nil), c.Signature...); c.Signature[3] ^= 1 },
		"short key":    func(c *Certificate) { c.IdentityKey = c.IdentityKey[:32] },
		"no device":    func(c *Certificate) { c.DeviceID = 0 },
	} {
		cc := *c
		edit(&cc)
		if err := cc.Verify(root.Public); !errors.Is(err, ErrBadCertificate) {
			t.Errorf("%s changed: Verify = %v, want ErrBadCertificate", name, err)
		}
	}
}

func TestAccountHashDistinct(t *testing.T) {
	var a, b [IDSize]byte
	b[0] = 1
	if AccountHash(a) == AccountHash(b) || AccountHash(a) != AccountHash(a) {
		t.Fatal("account hashes must be deterministic and distinct")
	}
}

func TestApprovals(t *testing.T) {
	alice, _ := GenerateAdminKey("alice", rand.Reader)
	bob, _ := GenerateAdminKey("bob", rand.Reader)
	mallory, _ := GenerateAdminKey("mallory", rand.Reader)
	admins, err := ParseAdmins(strings.NewReader("# admins\n" + alice.AdminsLine() + "\n\n" + bob.AdminsLine() + "\n"))
	if err != nil {
		t.Fatal(err)
	}
	if got := admins.Names(); len(got) != 2 || got[0] != "alice" || got[1] != "bob" {
		t.Fatalf("names %v", got)
	}
	r := &Request{Reason: "case 42", RequestedAt: time.Unix(1_800_000_000, 0)}
	copy(r.HoldID[:], "hold-id-16-bytes")
	m := r.Message()
	aps := []Approval{
		{"alice", alice.Sign(m)},
		{"alice", alice.Sign(m)},                  // twice: one vote
		{"mallory", mallory.Sign(m)},              // not an admin
		{"bob", alice.Sign(m)},                    // alice's signature under bob's name
		{"bob", bob.Sign((&Request{}).Message())}, // another request
	}
	if got := admins.Approvers(r, aps); len(got) != 1 || got[0] != "alice" {
		t.Fatalf("approvers %v, want [alice]", got)
	}
	aps = append(aps, Approval{"bob", bob.Sign(m)})
	if got := admins.Approvers(r, aps); len(got) != 2 {
		t.Fatalf("approvers %v, want alice and bob", got)
	}
	// The reason is part of what is approved.
	r2 := *r
	r2.Reason = "case 43"
	if got := admins.Approvers(&r2, aps); len(got) != 0 {
		t.Fatalf("approvals of another reason counted: %v", got)
	}
}

func TestAdminKeyFile(t *testing.T) {
	k, err := GenerateAdminKey("carol.ops", rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := k.MarshalText()
	k2, err := ParseAdminKey(b)
	if err != nil {
		t.Fatal(err)
	}
	if k2.Name != k.Name || !bytes.Equal(k2.Private, k.Private) {
		t.Fatal("key file does not round-trip")
	}
	for _, bad := range []string{"", "name x\nseed 00\n", keyFileHeader + "\nname BAD NAME\nseed " + strings.Repeat("00", 32),
		keyFileHeader + "\nname x\nseed 0011", keyFileHeader + "\nname x\nseed " + strings.Repeat("00", 32) + "\nextra"} {
		if _, err := ParseAdminKey([]byte(bad)); !errors.Is(err, ErrBadKeyFile) {
			t.Errorf("ParseAdminKey(%q) = %v, want ErrBadKeyFile", bad, err)
		}
	}
	if _, err := GenerateAdminKey("Not Valid", rand.Reader); err == nil {
		t.Error("an invalid name was accepted")
	}
}

func TestParseAdminsRejects(t *testing.T) {
	a, _ := GenerateAdminKey("a", rand.Reader)
	line := a.AdminsLine()
	for name, in := range map[string]string{
		"one field":   "alice\n",
		"bad hex":     "alice zz\n",
		"short key":   "alice 0011\n",
		"twice":       line + "\n" + line + "\n",
		"same key":    line + "\n" + strings.Replace(line, "a ", "b ", 1) + "\n",
		"bad name":    "Alice " + strings.Fields(line)[1] + "\n",
		"three parts": line + " extra\n",
	} {
		if _, err := ParseAdmins(strings.NewReader(in)); !errors.Is(err, ErrBadKeyFile) {
			t.Errorf("%s: ParseAdmins = %v, want ErrBadKeyFile", name, err)
		}
	}
}

func FuzzParseAdmins(f *testing.F) {
	f.Add([]byte("# x\nalice " + strings.Repeat("ab", 32) + "\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		a, err := ParseAdmins(bytes.NewReader(b))
		if err != nil {
			return
		}
		for n, k := range a {
			if !ValidName(n) || len(k) != 32 {
				t.Fatalf("accepted %q with a %d-byte key", n, len(k))
			}
		}
	})
}

func FuzzParseAdminKey(f *testing.F) {
	k, _ := GenerateAdminKey("seed", rand.Reader)
	b, _ := k.MarshalText()
	f.Add(b)
	f.Fuzz(func(t *testing.T, b []byte) {
		k, err := ParseAdminKey(b)
		if err != nil {
			return
		}
		out, _ := k.MarshalText()
		k2, err := ParseAdminKey(out)
		if err != nil || k2.Name != k.Name || !bytes.Equal(k2.Private, k.Private) {
			t.Fatalf("accepted key does not round-trip: %v", err)
		}
	})
}
