package demo

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestDemo runs the whole demo: a real server on SQLite, two clients over
// loopback, PQXDH sessions, WebSocket delivery, safety numbers and the
// plaintext scan of the server's files.
func TestDemo(t *testing.T) {
	var out bytes.Buffer
	keep := t.TempDir()
	if err := Run(context.Background(), Options{Out: &out, Keep: keep}); err != nil {
		t.Fatalf("demo failed: %v\n%s", err, out.String())
	}
	s := out.String()
	// Each message shows on the sender's and the recipient's screen (Run
	// itself fails unless the recipient read exactly what was sent).
	for _, m := range conversation {
		sent, read := clip("> "+m.text, 34), clip("< "+m.text, 34)
		if !strings.Contains(s, sent) || !strings.Contains(s, read) {
			t.Errorf("narration lacks %q or %q", sent, read)
		}
	}
	for _, want := range []string{"PreKey, sender known", "sealed, no sender", "none found", "they match", "veil messages --home"} {
		if !strings.Contains(s, want) {
			t.Errorf("narration lacks %q:\n%s", want, s)
		}
	}
	// --keep leaves the server database, both stores and the passphrases.
	for _, f := range []string{"server/veil.db", "alice/device.db", "alice/device.hdr", "bob/device.db", "alice.passphrase"} {
		if _, err := os.Stat(filepath.Join(keep, f)); err != nil {
			t.Errorf("kept directory lacks %s: %v", f, err)
		}
	}
}

func TestScanFindsPlaintext(t *testing.T) {
	dir := t.TempDir()
	msgs := []struct{ from, text string }{{"a", "a secret message that is long enough"}}
	if found, err := scanForPlaintext(dir, msgs); err != nil || found != "" {
		t.Fatalf("empty dir: %q %v", found, err)
	}
	if err := writeFile(dir+"/f", []byte("xx"+msgs[0].text[8:30]+"yy")); err != nil {
		t.Fatal(err)
	}
	if found, _ := scanForPlaintext(dir, msgs); found == "" {
		t.Fatal("the scan misses plaintext")
	}
}
