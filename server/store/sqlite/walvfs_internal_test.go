package sqlite

import (
	"bytes"
	"database/sql"
	"encoding/binary"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/ncruces/go-sqlite3/driver"
	"github.com/ncruces/go-sqlite3/vfs"
)

// recFile records the writes that reach it; everything else is a
// no-op.
type recFile struct {
	vfs.File
	data   []byte
	writes []string // "off+len"
}

func (f *recFile) WriteAt(p []byte, off int64) (int, error) {
	f.writes = append(f.writes, fmt.Sprintf("%d+%d", off, len(p)))
	if end := off + int64(len(p)); end > int64(len(f.data)) {
		f.data = append(f.data, make([]byte, end-int64(len(f.data)))...)
	}
	copy(f.data[off:], p)
	return len(p), nil
}

func (f *recFile) ReadAt(p []byte, off int64) (int, error) { return copy(p, f.data[off:]), nil }
func (f *recFile) Size() (int64, error)                    { return int64(len(f.data)), nil }
func (f *recFile) Sync(vfs.SyncFlag) error                 { return nil }
func (f *recFile) Truncate(int64) error                    { return nil }
func (f *recFile) Close() error                            { return nil }

func frameHeader(page, commit uint32) []byte {
	h := make([]byte, walFrameHeaderSize)
	binary.BigEndian.PutUint32(h, page)
	binary.BigEndian.PutUint32(h[4:], commit)
	return h
}

func TestWALFramesOneWritePerCommit(t *testing.T) {
	const pg = 512
	rec := &recFile{}
	f := &walFrames{File: rec}
	page := bytes.Repeat([]byte{7}, pg)
	off := int64(walHeaderSize)
	write := func(p []byte) {
		t.Helper()
		if n, err := f.WriteAt(p, off); err != nil || n != len(p) {
			t.Fatalf("WriteAt = %d, %v", n, err)
		}
		off += int64(len(p))
	}
	if _, err := f.WriteAt(make([]byte, walHeaderSize), 0); err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		write(frameHeader(uint32(i+1), 0))
		write(page)
	}
	if len(rec.writes) != 0 {
		t.Fatalf("frames of an unfinished transaction reached the file: %v", rec.writes)
	}
	write(frameHeader(4, 4))
	write(page)
	if want := fmt.Sprintf("0+%d", off); len(rec.writes) != 1 || rec.writes[0] != want {
		t.Fatalf("writes = %v, want one write %s", rec.writes, want)
	}

	// The next transaction: a read flushes what is buffered, so SQLite
	// reads back what it wrote.
	rec.writes = nil
	write(frameHeader(5, 0))
	write(page)
	got := make([]byte, pg)
	if _, err := f.ReadAt(got, off-pg); err != nil || !bytes.Equal(got, page) {
		t.Fatalf("read back %v: %x", err, got[:8])
	}
	if len(rec.writes) != 1 {
		t.Fatalf("writes before the read = %v", rec.writes)
	}
	// A write right after a read goes straight to the file (SQLite
	// rewriting checksums after the commit frame).
	rec.writes = nil
	if _, err := f.WriteAt(frameHeader(5, 9), off-pg-walFrameHeaderSize); err != nil {
		t.Fatal(err)
	}
	if len(rec.writes) != 1 || len(f.buf) != 0 {
		t.Fatalf("a write after a read was buffered: writes %v, %d bytes buffered", rec.writes, len(f.buf))
	}

	// An out-of-order write flushes first; sync, size, truncate and close
	// flush too.
	for name, op := range map[string]func() error{
		"out of order": func() error { _, err := f.WriteAt(page, walHeaderSize+walFrameHeaderSize); return err },
		"sync":         func() error { return f.Sync(0) },
		"size":         func() error { _, err := f.Size(); return err },
		"truncate":     func() error { return f.Truncate(off) },
		"close":        f.Close,
	} {
		rec.writes = nil
		write(frameHeader(6, 0))
		if err := op(); err != nil {
			t.Fatal(err)
		}
		if len(rec.writes) == 0 || rec.writes[0] != fmt.Sprintf("%d+%d", off-walFrameHeaderSize, walFrameHeaderSize) {
			t.Fatalf("%s: buffered header not written first: %v", name, rec.writes)
		}
		f.flush()
	}
}

// TestWALFramesVisibleAndRecoverable runs transactions large enough to
// spill pages mid-transaction and to rewrite frames in place (with a tiny
// page cache), and after each commit checks that a connection that does
// not use the VFS (as another process) sees it, and that the files alone
// (as after kill -9, without the shared memory) recover it.
func TestWALFramesVisibleAndRecoverable(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "t.db")
	w, err := driver.Open("file:"+path+"?vfs="+walVFSName+"&_pragma=journal_mode(wal)&_pragma=synchronous(normal)&_pragma=cache_size(4)", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	w.SetMaxOpenConns(1)
	other, err := driver.Open("file:"+path+"?_pragma=journal_mode(wal)", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	if _, err := w.Exec(`CREATE TABLE t (k INTEGER PRIMARY KEY, v BLOB NOT NULL)`); err != nil {
		t.Fatal(err)
	}
	rows, want := 0, 0
	for round := range 12 {
		// Even rounds: 60 rows in a transaction that spills pages and
		// rewrites some in place. Odd rounds: one small row.
		n := 60
		if round%2 == 1 {
			n = 1
		}
		tx, err := w.Begin()
		if err != nil {
			t.Fatal(err)
		}
		for i := range n {
			if _, err := tx.Exec(`INSERT INTO t (k, v) VALUES (?, ?)`, rows+i, bytes.Repeat([]byte{byte(round)}, 900)); err != nil {
				t.Fatal(err)
			}
		}
		want += n
		if n > 1 {
			if _, err := tx.Exec(`UPDATE t SET v = randomblob(900) WHERE k >= ?`, rows); err != nil {
				t.Fatal(err)
			}
			if round%4 == 2 {
				res, err := tx.Exec(`DELETE FROM t WHERE k % 7 = 0 AND k >= ?`, rows)
				if err != nil {
					t.Fatal(err)
				}
				d, _ := res.RowsAffected()
				want -= int(d)
			}
		}
		if err := tx.Commit(); err != nil {
			t.Fatal(err)
		}
		rows += n
		// Nothing more goes through the writing connection before the
		// checks: it would flush on its own.
		var got int
		if err := other.QueryRow(`SELECT count(*) FROM t`).Scan(&got); err != nil || got != want {
			t.Fatalf("round %d: another connection counts %d rows (%v), want %d", round, got, err, want)
		}
		if got := recovered(t, path, round); got != want {
			t.Fatalf("round %d: the files alone recover %d rows, want %d", round, got, want)
		}
	}
}

// recovered copies the database and its WAL (not the shared memory) and
// counts the rows SQLite recovers from them, after an integrity check.
func recovered(t *testing.T, path string, round int) int {
	t.Helper()
	dst := filepath.Join(t.TempDir(), fmt.Sprintf("copy%d.db", round))
	for _, suffix := range []string{"", "-wal"} {
		b, err := os.ReadFile(path + suffix)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(dst+suffix, b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	db, err := sql.Open("sqlite3", "file:"+dst)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var check string
	if err := db.QueryRow(`PRAGMA integrity_check`).Scan(&check); err != nil || check != "ok" {
		t.Fatalf("integrity_check: %q, %v", check, err)
	}
	var n int
	if err := db.QueryRow(`SELECT count(*) FROM t`).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}
