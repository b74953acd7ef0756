package devicestore

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ncruces/go-sqlite3/driver"
	"lukechampine.com/adiantum"

	"github.com/veil-e2ee/veil/client/devicestore/internal/tokenize"
)

// decryptedFile returns the plaintext of an encrypted store file: the
// adiantum VFS encrypts each 4 KiB block with the page key, tweaked by
// the block's file offset (little-endian).
func decryptedFile(t *testing.T, path string, pageKey []byte) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	c := adiantum.New(pageKey)
	out := make([]byte, 0, len(b))
	var tweak [8]byte
	for off := 0; off+4096 <= len(b); off += 4096 {
		binary.LittleEndian.PutUint64(tweak[:], uint64(off))
		block := bytes.Clone(b[off : off+4096])
		out = append(out, c.Decrypt(block, tweak[:])...)
	}
	return out
}

func storeKeys(t *testing.T, dir, pass string) *keys {
	t.Helper()
	hb, err := os.ReadFile(filepath.Join(dir, HeaderFile))
	if err != nil {
		t.Fatal(err)
	}
	h, err := parseHeader(hb)
	if err != nil {
		t.Fatal(err)
	}
	k, err := deriveKeys(h, Passphrase(pass))
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// shadowContains reports which rows of the search index's shadow tables
// (and the messages table) hold b.
func shadowContains(t *testing.T, s *Store, b []byte) []string {
	t.Helper()
	var found []string
	for _, q := range []string{
		`SELECT 'data ' || id, block FROM messages_fts_data`,
		`SELECT 'idx ' || segid || '/' || pgno, term FROM messages_fts_idx`,
		`SELECT 'docsize ' || id, sz FROM messages_fts_docsize`,
		`SELECT 'config ' || k, CAST(v AS BLOB) FROM messages_fts_config`,
		`SELECT 'message ' || id, body FROM messages`,
	} {
		rows, err := s.w.Query(q)
		if err != nil {
			t.Fatalf("%s: %v", q, err)
		}
		for rows.Next() {
			var name string
			var v []byte
			if err := rows.Scan(&name, &v); err != nil {
				t.Fatal(err)
			}
			if bytes.Contains(v, b) {
				found = append(found, name)
			}
		}
		rows.Close()
	}
	return found
}

// TestSearchSecureDelete: a message deleted with DELETE FROM messages
// (as expiry does) leaves its words neither in the search results, nor
// in any row of the index's shadow tables, nor anywhere in the
// decrypted database file after a checkpoint, nor in the encrypted
// files. Controls show each scan finds the word before the delete.
func TestSearchSecureDelete(t *testing.T) {
	ctx := t.Context()
	dir := t.TempDir()
	const pass = "secure delete test"
	s, err := Create(ctx, dir, Passphrase(pass), WithKDFParams(KDFParams{Time: 1, Memory: 64, Threads: 1}))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	k := storeKeys(t, dir, pass)
	defer k.clear()

	// The unique word: FTS5 stores a term prefix-compressed against its
	// neighbour, so the scans look for its tail, which is always stored
	// whole.
	r := make([]byte, 8)
	rand.Read(r)
	word := "qx" + hex.EncodeToString(r)
	tail := []byte(word[len(word)-12:])

	v := newBenchVocab(3, 2000)
	fillMessages(t, s, v, 3000, 1000, 100, 0)
	var id int64
	if err := s.Update(ctx, func(tx *Tx) error {
		id, err = tx.InsertMessage(ctx, Message{ConversationID: 1, Sender: "peer01", SenderDevice: 1, MessageID: []byte("secret"),
			Body: []byte("the vault code is " + word + " do not share")})
		return err
	}); err != nil {
		t.Fatal(err)
	}
	fillMessages(t, s, v, 1000, 1000, 100, 3000) // more segments after it
	if err := s.Checkpoint(ctx); err != nil {
		t.Fatal(err)
	}

	// Controls.
	if hits, err := s.Search(ctx, SearchQuery{Text: word}); err != nil || len(hits) != 1 || hits[0].Message.ID != id {
		t.Fatalf("before delete: %d hits, %v", len(hits), err)
	}
	if found := shadowContains(t, s, tail); len(found) < 2 {
		t.Fatalf("before delete: the word is in %v, want the message and an index block", found)
	}
	plain := decryptedFile(t, filepath.Join(dir, DatabaseFile), k.page[:])
	if !bytes.Contains(plain, tail) || !bytes.Contains(plain, []byte("SQLite format 3")) {
		t.Fatalf("control: the decrypted database (%d bytes) does not hold the word", len(plain))
	}

	if err := s.Update(ctx, func(tx *Tx) error {
		_, err := tx.tx.ExecContext(ctx, `DELETE FROM messages WHERE id = ?`, id)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	if err := s.Checkpoint(ctx); err != nil {
		t.Fatal(err)
	}

	for _, q := range []string{word, word[:6] + "*", "vault code"} {
		if hits, err := s.Search(ctx, SearchQuery{Text: q}); err != nil || len(hits) != 0 {
			t.Errorf("after delete: Search(%q) = %d hits, %v", q, len(hits), err)
		}
	}
	if found := shadowContains(t, s, tail); len(found) > 0 {
		t.Errorf("after delete: the word is still in %v", found)
	}
	if plain := decryptedFile(t, filepath.Join(dir, DatabaseFile), k.page[:]); bytes.Contains(plain, tail) {
		i := bytes.Index(plain, tail)
		t.Errorf("after delete: the decrypted database holds the word at page %d", i/4096+1)
	}
	if found, _ := scan(t, dir, secrets{"word": []byte(word), "tail": tail}); len(found) > 0 {
		t.Errorf("after delete: encrypted files hold %v", found)
	}
	// The rest of the index still works.
	if hits, err := s.Search(ctx, SearchQuery{Text: v.words[5]}); err != nil || len(hits) == 0 {
		t.Errorf("after delete: common word: %d hits, %v", len(hits), err)
	}
}

// TestSearchNoPlaintext: indexed words (Latin and CJK) do not appear in
// any file of the store, before and after a checkpoint; a control with
// the same data in an unencrypted database finds them.
func TestSearchNoPlaintext(t *testing.T) {
	ctx := t.Context()
	markers := secrets{}
	var bodies []string
	for i := range 20 {
		r := make([]byte, 6)
		rand.Read(r)
		w := fmt.Sprintf("idx%s", hex.EncodeToString(r))
		markers[w] = []byte(w)
		bodies = append(bodies, fmt.Sprintf("message %d mentions %s and 東京都%d", i, w, i))
	}
	markers["東京都"] = []byte("東京都")
	write := func(s *Store) {
		if err := s.Update(ctx, func(tx *Tx) error {
			c, err := tx.Conversation(ctx, "bob")
			if err != nil {
				return err
			}
			for i, b := range bodies {
				if _, err := tx.InsertMessage(ctx, Message{ConversationID: c, Sender: "bob", MessageID: []byte{byte(i)}, Body: []byte(b)}); err != nil {
					return err
				}
			}
			return nil
		}); err != nil {
			t.Fatal(err)
		}
	}
	dir := t.TempDir()
	s, err := Create(ctx, dir, Passphrase("p"), WithKDFParams(KDFParams{Time: 1, Memory: 64, Threads: 1}))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	write(s)
	for _, w := range []string{"東京", string(markers[firstKey(markers)])} {
		if hits, err := s.Search(ctx, SearchQuery{Text: w}); err != nil || len(hits) == 0 {
			t.Fatalf("Search(%q): %d hits, %v", w, len(hits), err)
		}
	}
	if found, _ := scan(t, dir, markers); len(found) > 0 {
		t.Errorf("before checkpoint: %v", found)
	}
	if err := s.Checkpoint(ctx); err != nil {
		t.Fatal(err)
	}
	if found, _ := scan(t, dir, markers); len(found) > 0 {
		t.Errorf("after checkpoint: %v", found)
	}

	// Control: unencrypted, the index and the bodies are in the file.
	plainDir := t.TempDir()
	db, err := openPlainForTest(plainDir)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	write(db)
	if err := db.Checkpoint(ctx); err != nil {
		t.Fatal(err)
	}
	if found, _ := scan(t, plainDir, markers); len(found) < len(markers) {
		t.Errorf("control: found only %v", found)
	}
}

func firstKey(m secrets) string {
	for k := range m {
		if strings.HasPrefix(k, "idx") {
			return k
		}
	}
	return ""
}

// FuzzSearchQuery: no query text makes Search fail other than with
// ErrInvalidQuery (no FTS5 syntax error, no storage error, no panic),
// and an error never quotes the query.
func FuzzSearchQuery(f *testing.F) {
	for _, s := range []string{"fox", `"brown fox"`, "quar*", "a OR b -c", "(a OR (b AND c)) NOT d", "東京", "NEAR(a b)", "body:x", `"`, "(", "-", "*", "a AND", "\x00", "🎉"} {
		f.Add(s)
	}
	ctx := context.Background()
	s, err := Create(ctx, f.TempDir(), Passphrase("fuzz"), WithKDFParams(KDFParams{Time: 1, Memory: 64, Threads: 1}))
	if err != nil {
		f.Fatal(err)
	}
	defer s.Close()
	fillMessages(f, s, newBenchVocab(5, 500), 200, 200, 60, 0)
	f.Fuzz(func(t *testing.T, q string) {
		_, err := s.Search(ctx, SearchQuery{Text: q, Limit: 5})
		if err != nil && !errors.Is(err, ErrInvalidQuery) {
			t.Fatalf("Search(%q): %v", q, err)
		}
		if err != nil {
			// The reasons are fixed phrases: no query bytes in them.
			reason, ok := strings.CutPrefix(err.Error(), ErrInvalidQuery.Error()+": ")
			if !ok || strings.Trim(reason, "abcdefghijklmnopqrstuvwxyzANDORNT -") != "" {
				t.Fatalf("error %q is not a fixed reason", err)
			}
		}
	})
}

// openPlainForTest is a Store over an unencrypted database, for
// controls.
func openPlainForTest(dir string) (*Store, error) {
	db, err := driver.Open("file:"+filepath.Join(dir, "plain.db")+"?_pragma=journal_mode(wal)", initConn)
	if err != nil {
		return nil, err
	}
	db.SetMaxOpenConns(1)
	s := &Store{w: db, r: db, reader: reader{q: db}, now: time.Now, stmts: newStmtCache()}
	if err := s.migrate(context.Background()); err != nil {
		db.Close()
		return nil, err
	}
	return s, nil
}

// FuzzSnippet: any body and query give a snippet that, without its
// markers and ellipses, is text of the body.
func FuzzSnippet(f *testing.F) {
	f.Add("Où est la crème brûlée ?", "creme")
	f.Add("東京都に住んでいます", "東京")
	f.Add("½ ﬁne Ａ１ party", "1 fi*")
	f.Add(strings.Repeat("word ", 40)+"needle", "needle")
	f.Fuzz(func(t *testing.T, body, query string) {
		terms, prefixes := tokenize.QueryTerms(query)
		sn := snippet(body, terms, prefixes)
		strip := strings.NewReplacer(HighlightStart, "", HighlightEnd, "")
		plain, text := strip.Replace(sn), strip.Replace(body)
		for _, part := range strings.Split(plain, SnippetEllipsis) {
			if !strings.Contains(text, part) {
				t.Fatalf("snippet %q: %q is not in the body", sn, part)
			}
		}
		open := false
		for _, c := range []byte(sn) {
			switch string(c) {
			case HighlightStart:
				if open {
					t.Fatalf("nested marker in %q", sn)
				}
				open = true
			case HighlightEnd:
				if !open {
					t.Fatalf("unopened marker in %q", sn)
				}
				open = false
			}
		}
		if open {
			t.Fatalf("unclosed marker in %q", sn)
		}
	})
}
