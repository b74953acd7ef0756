package archive

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"

	"filippo.io/age"
)

func TestAppendRead(t *testing.T) {
	dir := t.TempDir()
	org, _ := age.GenerateX25519Identity()
	if c, err := Cursor(dir); err != nil || c != 0 {
		t.Fatalf("empty cursor %d %v", c, err)
	}
	first := []Record{{ID: 3, Body: "secret one", Direction: "in"}, {ID: 5, Body: "secret two", Direction: "out"}}
	if err := Append(dir, first, org.Recipient()); err != nil {
		t.Fatal(err)
	}
	if c, _ := Cursor(dir); c != 5 {
		t.Fatalf("cursor %d, want 5", c)
	}
	// A crash after a segment but before its cursor moved leaves a
	// repeat: the reader drops it.
	if err := Append(dir, []Record{{ID: 5, Body: "secret two"}, {ID: 9, Body: "secret three"}}, org.Recipient()); err != nil {
		t.Fatal(err)
	}
	var got []string
	if err := Read(dir, func(r Record) error { got = append(got, r.Body); return nil }, org); err != nil {
		t.Fatal(err)
	}
	if len(got) != 3 || got[0] != "secret one" || got[2] != "secret three" {
		t.Fatalf("read %q", got)
	}
	// Only the organisation's key opens it; no plaintext on disk.
	other, _ := age.GenerateX25519Identity()
	if err := Read(dir, func(Record) error { return nil }, other); err == nil {
		t.Fatal("another key opened the archive")
	}
	files, _ := filepath.Glob(filepath.Join(dir, "*"))
	for _, f := range files {
		b, _ := os.ReadFile(f)
		if bytes.Contains(b, []byte("secret")) {
			t.Fatalf("plaintext in %s", f)
		}
	}
	// Nothing to append writes no segment and keeps the cursor.
	if err := Append(dir, nil, org.Recipient()); err != nil {
		t.Fatal(err)
	}
	if after, _ := filepath.Glob(filepath.Join(dir, "*")); len(after) != len(files) {
		t.Fatalf("an empty append wrote files: %v", after)
	}
	if c, _ := Cursor(dir); c != 9 {
		t.Fatalf("cursor %d after an empty append, want 9", c)
	}
}
