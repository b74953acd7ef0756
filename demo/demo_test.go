package demo

import (
	"bytes"
	"context"
	"strings"
	"testing"
)

// TestDemo runs the whole demo: a real server on SQLite, two clients over
// loopback, PQXDH sessions, WebSocket delivery, safety numbers and the
// plaintext scan of the server's files.
func TestDemo(t *testing.T) {
	var out bytes.Buffer
	if err := Run(context.Background(), Options{Out: &out, DataDir: t.TempDir()}); err != nil {
		t.Fatalf("demo failed: %v\n%s", err, out.String())
	}
	s := out.String()
	for _, m := range conversation {
		if !strings.Contains(s, m.text) {
			t.Errorf("narration lacks the decrypted %q", m.text)
		}
	}
	if !strings.Contains(s, "PreKeySignalMessage") || !strings.Contains(s, "none found") {
		t.Errorf("unexpected narration:\n%s", s)
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
