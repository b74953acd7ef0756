package legalhold

import (
	"bufio"
	"bytes"
	"crypto/ed25519"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"regexp"
	"sort"
	"strings"
)

// An administrator is a name and an Ed25519 key pair. The private key
// stays with the administrator (a key file, `veil admin keygen`); the
// server and the admin tools know the public keys from the admins file,
// one administrator per line:
//
//	# name   public key (hex)
//	alice    3b6a27bcceb6a42d62a3a8d02a6f0d73653215771de243a63ac048a18b59da29
//
// Approvals name the administrator and carry their signature; a hold
// needs the approvals of M distinct administrators of the file.

// ErrBadKeyFile: a key file or admins file is malformed.
var ErrBadKeyFile = errors.New("legalhold: malformed key file")

const (
	keyFileHeader = "veil-admin-key v1"
	maxNameLen    = 32
	maxFileSize   = 64 << 10
)

var nameRE = regexp.MustCompile(`^[a-z0-9][a-z0-9._-]*$`)

// ValidName reports whether s can name an administrator: 1–32 of a–z,
// 0–9, '.', '_', '-', starting with a letter or digit.
func ValidName(s string) bool { return len(s) <= maxNameLen && nameRE.MatchString(s) }

// AdminKey is an administrator's signing key.
type AdminKey struct {
	Name    string
	Private ed25519.PrivateKey
}

// GenerateAdminKey makes a new key for the administrator name.
func GenerateAdminKey(name string, rand io.Reader) (*AdminKey, error) {
	if !ValidName(name) {
		return nil, fmt.Errorf("%w: %q is not a valid administrator name", ErrBadKeyFile, name)
	}
	_, priv, err := ed25519.GenerateKey(rand)
	if err != nil {
		return nil, err
	}
	return &AdminKey{Name: name, Private: priv}, nil
}

// Public returns the public half.
func (k *AdminKey) Public() ed25519.PublicKey { return k.Private.Public().(ed25519.PublicKey) }

// Sign signs message.
func (k *AdminKey) Sign(message []byte) []byte { return ed25519.Sign(k.Private, message) }

// AdminsLine is the key's line for the admins file.
func (k *AdminKey) AdminsLine() string {
	return fmt.Sprintf("%s %s", k.Name, hex.EncodeToString(k.Public()))
}

// MarshalText writes the key file (secret: keep it 0600).
func (k *AdminKey) MarshalText() ([]byte, error) {
	return fmt.Appendf(nil, "# veil administrator key of %s: keep it secret; its public half goes in the server's admins file\n%s\nname %s\nseed %s\n",
		k.Name, keyFileHeader, k.Name, hex.EncodeToString(k.Private.Seed())), nil
}

// ParseAdminKey reads a key file written by MarshalText.
func ParseAdminKey(b []byte) (*AdminKey, error) {
	if len(b) > maxFileSize {
		return nil, fmt.Errorf("%w: too large", ErrBadKeyFile)
	}
	var name, seed string
	header := false
	for _, line := range strings.Split(string(b), "\n") {
		line = strings.TrimSpace(line)
		switch {
		case line == "" || strings.HasPrefix(line, "#"):
		case line == keyFileHeader && !header:
			header = true
		case strings.HasPrefix(line, "name ") && header && name == "":
			name = strings.TrimSpace(line[len("name "):])
		case strings.HasPrefix(line, "seed ") && header && seed == "":
			seed = strings.TrimSpace(line[len("seed "):])
		default:
			return nil, fmt.Errorf("%w: unexpected line (is this a veil administrator key?)", ErrBadKeyFile)
		}
	}
	if !header || !ValidName(name) {
		return nil, fmt.Errorf("%w: missing %q header or a valid name", ErrBadKeyFile, keyFileHeader)
	}
	s, err := hex.DecodeString(seed)
	if err != nil || len(s) != ed25519.SeedSize {
		return nil, fmt.Errorf("%w: the seed must be %d bytes in hex", ErrBadKeyFile, ed25519.SeedSize)
	}
	return &AdminKey{Name: name, Private: ed25519.NewKeyFromSeed(s)}, nil
}

// Admins are the administrators a server knows, by name.
type Admins map[string]ed25519.PublicKey

// ParseAdmins reads an admins file. Names must be unique, and so must
// keys (one person, one vote).
func ParseAdmins(r io.Reader) (Admins, error) {
	data, err := io.ReadAll(io.LimitReader(r, maxFileSize+1))
	if err != nil {
		return nil, err
	}
	if len(data) > maxFileSize {
		return nil, fmt.Errorf("%w: admins file too large", ErrBadKeyFile)
	}
	out := Admins{}
	seen := map[string]bool{}
	sc := bufio.NewScanner(bytes.NewReader(data))
	n := 0
	for sc.Scan() {
		n++
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		f := strings.Fields(line)
		if len(f) != 2 || !ValidName(f[0]) {
			return nil, fmt.Errorf("%w: admins line %d: want \"NAME PUBLIC-KEY-HEX\"", ErrBadKeyFile, n)
		}
		k, err := hex.DecodeString(f[1])
		if err != nil || len(k) != ed25519.PublicKeySize {
			return nil, fmt.Errorf("%w: admins line %d: the key must be %d bytes in hex", ErrBadKeyFile, n, ed25519.PublicKeySize)
		}
		if _, dup := out[f[0]]; dup {
			return nil, fmt.Errorf("%w: admins line %d: %s listed twice", ErrBadKeyFile, n, f[0])
		}
		if seen[string(k)] {
			return nil, fmt.Errorf("%w: admins line %d: the same key is listed under two names", ErrBadKeyFile, n)
		}
		seen[string(k)] = true
		out[f[0]] = k
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrBadKeyFile, err)
	}
	return out, nil
}

// Names lists the administrators, sorted.
func (a Admins) Names() []string {
	out := make([]string, 0, len(a))
	for n := range a {
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}

// Verify checks that name is a known administrator and sig its
// signature of message.
func (a Admins) Verify(name string, message, sig []byte) error {
	k, ok := a[name]
	if !ok {
		return fmt.Errorf("%w: %q is not in the admins file", ErrBadApproval, name)
	}
	if len(sig) != ed25519.SignatureSize || !ed25519.Verify(k, message, sig) {
		return fmt.Errorf("%w: signature of %s", ErrBadApproval, name)
	}
	return nil
}

// Approval is one administrator's signature of a Request.
type Approval struct {
	Admin     string
	Signature []byte
}

// Approvers returns the distinct administrators whose approvals of r
// verify; approvals that do not verify are left out.
func (a Admins) Approvers(r *Request, approvals []Approval) []string {
	m := r.Message()
	seen := map[string]bool{}
	var out []string
	for _, ap := range approvals {
		if seen[ap.Admin] || a.Verify(ap.Admin, m, ap.Signature) != nil {
			continue
		}
		seen[ap.Admin] = true
		out = append(out, ap.Admin)
	}
	sort.Strings(out)
	return out
}
