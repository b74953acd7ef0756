// Package wycheproof finds the shared Wycheproof test vectors for the
// protocol's known-answer tests: $VEIL_WYCHEPROOF, else
// <module root>/../shared/testdata/wycheproof. Missing vectors skip the
// test loudly, or fail it when CI=true, so CI never passes on an empty run.
// Only tests import it.
package wycheproof

import (
	"os"
	"path/filepath"
	"testing"
)

// Dir returns the vectors' directory.
func Dir() string {
	if d := os.Getenv("VEIL_WYCHEPROOF"); d != "" {
		return d
	}
	wd, err := os.Getwd()
	if err != nil {
		return ""
	}
	for d := wd; ; d = filepath.Dir(d) {
		if _, err := os.Stat(filepath.Join(d, "go.mod")); err == nil {
			return filepath.Join(d, "..", "shared", "testdata", "wycheproof")
		}
		if filepath.Dir(d) == d {
			return ""
		}
	}
}

// Read returns one vector file, or skips (fails under CI=true) the test
// when it cannot be read.
func Read(t testing.TB, name string) []byte {
	t.Helper()
	path := filepath.Join(Dir(), name)
	b, err := os.ReadFile(path)
	if err != nil {
		msg := "Wycheproof vectors not found (set VEIL_WYCHEPROOF or provide ../shared/testdata/wycheproof next to the module root): " + err.Error()
		if os.Getenv("CI") == "true" {
			t.Fatal(msg)
		}
		t.Skip("SKIPPING: " + msg)
	}
	return b
}
