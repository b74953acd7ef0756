package devicestore_test

import (
	"bytes"
	"crypto/rand"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/veil-e2ee/veil/client/devicestore"
)

func TestWrongPassphrase(t *testing.T) {
	s, dir := newStore(t)
	update(t, s, func(tx *devicestore.Tx) error {
		return tx.PutContact(t.Context(), devicestore.Contact{AccountID: "b", Username: "bob"})
	})
	s.Close()
	for _, u := range []devicestore.Unlock{
		devicestore.Passphrase("correct horse battery stapler"),
		devicestore.Passphrase(strings.ToUpper(testPass)),
		devicestore.KeyFile(bytes.Repeat([]byte{1}, 32)), // a key file for a passphrase store
	} {
		_, err := devicestore.Open(t.Context(), dir, u)
		if !errors.Is(err, devicestore.ErrWrongPassphrase) {
			t.Fatalf("Open with %v: %v, want ErrWrongPassphrase", u, err)
		}
		if strings.Contains(err.Error(), "stapler") || strings.Contains(err.Error(), "CORRECT") {
			t.Fatalf("error string shows the passphrase: %v", err)
		}
	}
	// The right one still works and the data is there.
	s2, err := devicestore.Open(t.Context(), dir, devicestore.Passphrase(testPass))
	if err != nil {
		t.Fatal(err)
	}
	defer s2.Close()
	if c, err := s2.Contact(t.Context(), "b"); err != nil || c.Username != "bob" {
		t.Fatalf("Contact after reopen = %+v, %v", c, err)
	}
}

func TestKeyFileUnlock(t *testing.T) {
	dir := t.TempDir()
	kf, err := devicestore.GenerateKeyFile(rand.Reader)
	if err != nil || len(kf) != 32 {
		t.Fatalf("GenerateKeyFile = %d bytes, %v", len(kf), err)
	}
	s, err := devicestore.Create(t.Context(), dir, devicestore.KeyFile(kf))
	if err != nil {
		t.Fatal(err)
	}
	update(t, s, func(tx *devicestore.Tx) error {
		return tx.PutContact(t.Context(), devicestore.Contact{AccountID: "c", Username: "carol"})
	})
	s.Close()
	hdr, err := os.ReadFile(filepath.Join(dir, devicestore.HeaderFile))
	if err != nil || bytes.Contains(hdr, kf) {
		t.Fatalf("header holds the key file (%v)", err)
	}
	other := bytes.Clone(kf)
	other[31] ^= 1
	if _, err := devicestore.Open(t.Context(), dir, devicestore.KeyFile(other)); !errors.Is(err, devicestore.ErrWrongPassphrase) {
		t.Fatalf("Open with another key file: %v", err)
	}
	if _, err := devicestore.Open(t.Context(), dir, devicestore.Passphrase(string(kf))); !errors.Is(err, devicestore.ErrWrongPassphrase) {
		t.Fatalf("Open with the key file's bytes as a passphrase: %v", err)
	}
	s, err = devicestore.Open(t.Context(), dir, devicestore.KeyFile(kf))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if c, err := s.Contact(t.Context(), "c"); err != nil || c.Username != "carol" {
		t.Fatalf("Contact = %+v, %v", c, err)
	}
}

func TestInvalidUnlock(t *testing.T) {
	for _, u := range []devicestore.Unlock{
		devicestore.Passphrase(""),
		devicestore.KeyFile(make([]byte, 31)),
		devicestore.KeyFile(make([]byte, 33)),
		{},
	} {
		if _, err := devicestore.Create(t.Context(), t.TempDir(), u); !errors.Is(err, devicestore.ErrInvalidUnlock) {
			t.Errorf("Create with %v: %v, want ErrInvalidUnlock", u, err)
		}
	}
	for _, u := range []devicestore.Unlock{devicestore.Passphrase("hunter2"), devicestore.KeyFile([]byte("hunter2"))} {
		for _, f := range []string{"%v", "%+v", "%#v", "%s"} {
			if strings.Contains(sprintf(f, u), "hunter2") {
				t.Errorf("%s of Unlock shows the secret", f)
			}
		}
	}
}

func TestCreateOpenFiles(t *testing.T) {
	ctx := t.Context()
	dir := t.TempDir()
	if _, err := devicestore.Open(ctx, dir, devicestore.Passphrase(testPass)); !errors.Is(err, devicestore.ErrNotFound) {
		t.Fatalf("Open of an empty directory: %v, want ErrNotFound", err)
	}
	// A database without its header is what a crashed Create leaves: the
	// next Create replaces it.
	if err := os.WriteFile(filepath.Join(dir, devicestore.DatabaseFile), []byte("half-created"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := devicestore.Open(ctx, dir, devicestore.Passphrase(testPass)); !errors.Is(err, devicestore.ErrNotFound) {
		t.Fatalf("Open without a header: %v, want ErrNotFound", err)
	}
	s, err := devicestore.Create(ctx, dir, devicestore.Passphrase(testPass), devicestore.WithKDFParams(fastKDF))
	if err != nil {
		t.Fatalf("Create over a half-created store: %v", err)
	}
	s.Close()
	if _, err := devicestore.Create(ctx, dir, devicestore.Passphrase(testPass), devicestore.WithKDFParams(fastKDF)); !errors.Is(err, devicestore.ErrExists) {
		t.Fatalf("Create over a store: %v, want ErrExists", err)
	}
	fi, err := os.Stat(filepath.Join(dir, devicestore.HeaderFile))
	if err != nil || fi.Size() != 67 {
		t.Fatalf("header file: %v, %v", fi, err)
	}
	s, err = devicestore.Open(ctx, dir, devicestore.Passphrase(testPass))
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{devicestore.HeaderFile, devicestore.DatabaseFile, devicestore.DatabaseFile + "-wal", devicestore.DatabaseFile + "-shm"} {
		if fi, err := os.Stat(filepath.Join(dir, name)); err != nil || fi.Mode().Perm() != 0o600 {
			t.Errorf("%s: %v, %v; want mode 0600", name, fi.Mode(), err)
		}
	}
	s.Close()
	// A header edited to other costs no longer unlocks.
	hdrPath := filepath.Join(dir, devicestore.HeaderFile)
	hdr, _ := os.ReadFile(hdrPath)
	edited := bytes.Clone(hdr)
	edited[13]++ // Argon2id time cost
	os.WriteFile(hdrPath, edited, 0o600)
	if _, err := devicestore.Open(ctx, dir, devicestore.Passphrase(testPass)); !errors.Is(err, devicestore.ErrWrongPassphrase) {
		t.Fatalf("Open with edited costs: %v, want ErrWrongPassphrase", err)
	}
	os.WriteFile(hdrPath, hdr[:40], 0o600)
	if _, err := devicestore.Open(ctx, dir, devicestore.Passphrase(testPass)); !errors.Is(err, devicestore.ErrInvalidHeader) {
		t.Fatalf("Open with a truncated header: %v, want ErrInvalidHeader", err)
	}
	os.WriteFile(hdrPath, hdr, 0o600)
	// The header without its database: not a store (no silent empty one).
	os.Rename(filepath.Join(dir, devicestore.DatabaseFile), filepath.Join(dir, "moved"))
	if _, err := devicestore.Open(ctx, dir, devicestore.Passphrase(testPass)); !errors.Is(err, devicestore.ErrNotFound) {
		t.Fatalf("Open without the database: %v, want ErrNotFound", err)
	}
	// The database of another store under this header: corrupt, not a
	// silent empty store.
	other, otherDir := newStore(t)
	update(t, other, func(tx *devicestore.Tx) error {
		return tx.PutContact(ctx, devicestore.Contact{AccountID: "x", Username: "x"})
	})
	if err := other.Close(); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(filepath.Join(otherDir, devicestore.DatabaseFile))
	if err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(dir, devicestore.DatabaseFile), b, 0o600)
	if _, err := devicestore.Open(ctx, dir, devicestore.Passphrase(testPass)); !errors.Is(err, devicestore.ErrCorrupt) {
		t.Fatalf("Open of another store's database: %v, want ErrCorrupt", err)
	}
}
