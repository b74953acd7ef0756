package sqlite

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
)

// walFile syncs the database's write-ahead log from outside SQLite: the
// syncer's half of the pipelined commit. Only the syncer goroutine (and
// Open, before it starts) uses it.
type walFile struct {
	path string // the WAL: <database>-wal
	db   string // the database file
	f    *os.File
	fi   fs.FileInfo
	// hook, when set (tests), runs at the start of every sync.
	hook func()
}

// sync makes everything written to the WAL so far durable. SQLite keeps
// the WAL file while the database is open; should it have been replaced
// (every connection closed and reopened), the new file is opened and its
// directory synced too, so the file's name survives a power loss with
// its contents. With no WAL at all, whatever SQLite committed is in the
// database file, which is synced instead.
func (w *walFile) sync() error {
	if w.hook != nil {
		w.hook()
	}
	fi, err := os.Stat(w.path)
	if errors.Is(err, fs.ErrNotExist) {
		w.close()
		return syncPath(w.db)
	}
	if err != nil {
		return err
	}
	if w.f == nil || !os.SameFile(fi, w.fi) {
		w.close()
		f, err := os.OpenFile(w.path, os.O_RDWR, 0)
		if err != nil {
			return err
		}
		if err := syncPath(filepath.Dir(w.path)); err != nil {
			f.Close()
			return err
		}
		w.f, w.fi = f, fi
	}
	return datasync(w.f)
}

func (w *walFile) close() {
	if w.f != nil {
		w.f.Close()
		w.f, w.fi = nil, nil
	}
}

// syncPath fsyncs a file or directory by name.
func syncPath(name string) error {
	f, err := os.Open(name)
	if err != nil {
		return err
	}
	defer f.Close()
	return f.Sync()
}
