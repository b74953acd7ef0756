package devicestore

import (
	"context"
	"crypto/rand"
	"database/sql"
	"embed"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/url"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/ncruces/go-sqlite3"
	"github.com/ncruces/go-sqlite3/driver"
	_ "github.com/ncruces/go-sqlite3/vfs/adiantum" // registers the "adiantum" VFS
)

// File names inside a store's directory.
const (
	DatabaseFile = "device.db"  // encrypted (with its -wal and -shm)
	HeaderFile   = "device.hdr" // plaintext: salt, KDF costs, key check
)

//go:embed migrations/*.sql
var migrationFS embed.FS

// Store is one device's encrypted database. It is safe for concurrent
// use: writes are serialized through Update (one connection); reads run
// on a pool of reader connections and see the last committed state.
type Store struct {
	reader
	w, r  *sql.DB
	now   func() time.Time
	stmts *stmtCache // prepared statements of the writer connection

	closeOnce sync.Once
	closeErr  error
}

// Option changes how Create and Open work.
type Option func(*options)

type options struct {
	rand    io.Reader
	now     func() time.Time
	kdf     KDFParams
	readers int
}

// WithRand sets the randomness source for the salt (default crypto/rand).
func WithRand(r io.Reader) Option { return func(o *options) { o.rand = r } }

// WithClock sets the clock used for the times the store records.
func WithClock(now func() time.Time) Option { return func(o *options) { o.now = now } }

// WithKDFParams sets the Argon2id costs of a new passphrase store
// (Create only; Open uses the costs recorded in the header). Lower costs
// are for tests.
func WithKDFParams(p KDFParams) Option { return func(o *options) { o.kdf = p } }

// WithReaders sets the number of reader connections (default 4).
func WithReaders(n int) Option { return func(o *options) { o.readers = max(n, 1) } }

func buildOptions(opts []Option) options {
	o := options{rand: rand.Reader, now: time.Now, kdf: DefaultKDFParams, readers: 4}
	for _, f := range opts {
		f(&o)
	}
	return o
}

// Create makes a new store in dir (created if missing) locked with u.
// It fails with ErrExists if dir already holds a store.
//
// The header file is written last, atomically: it is the commit point. A
// database file without a header is what a crashed Create leaves behind
// (its key is lost with the unwritten salt), so Create replaces it.
func Create(ctx context.Context, dir string, u Unlock, opts ...Option) (*Store, error) {
	if err := u.validate(); err != nil {
		return nil, err
	}
	o := buildOptions(opts)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("devicestore: creating directory: %w", err)
	}
	hdrPath := filepath.Join(dir, HeaderFile)
	if _, err := os.Stat(hdrPath); err == nil {
		return nil, fmt.Errorf("%w: a device store is already in the directory", ErrExists)
	} else if !errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("devicestore: reading header: %w", err)
	}
	dbPath := filepath.Join(dir, DatabaseFile)
	for _, suffix := range []string{"", "-wal", "-shm", "-journal"} {
		if err := os.Remove(dbPath + suffix); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("devicestore: removing a half-created database: %w", err)
		}
	}

	h, err := newHeader(o.rand, u, o.kdf)
	if err != nil {
		return nil, err
	}
	k, err := deriveKeys(h, u)
	if err != nil {
		return nil, err
	}
	defer k.clear()
	h.check = h.checkValue(k)

	s, err := open(ctx, dbPath, k, true, o)
	if err != nil {
		return nil, err
	}
	if err := writeFileAtomic(hdrPath, h.marshal()); err != nil {
		s.Close()
		return nil, fmt.Errorf("devicestore: writing header: %w", err)
	}
	return s, nil
}

// Open unlocks the store in dir with u. A wrong passphrase or key file is
// ErrWrongPassphrase (detected from the header, before SQLite sees the
// key); a directory without a store is ErrNotFound.
func Open(ctx context.Context, dir string, u Unlock, opts ...Option) (*Store, error) {
	if err := u.validate(); err != nil {
		return nil, err
	}
	o := buildOptions(opts)
	b, err := os.ReadFile(filepath.Join(dir, HeaderFile))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("%w: no device store in the directory", ErrNotFound)
	} else if err != nil {
		return nil, fmt.Errorf("devicestore: reading header: %w", err)
	}
	h, err := parseHeader(b)
	if err != nil {
		return nil, err
	}
	k, err := deriveKeys(h, u)
	if err != nil {
		return nil, err
	}
	defer k.clear()
	if !h.verify(k) {
		return nil, ErrWrongPassphrase
	}
	dbPath := filepath.Join(dir, DatabaseFile)
	if _, err := os.Stat(dbPath); errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("%w: the header is there but the database file is missing", ErrNotFound)
	}
	return open(ctx, dbPath, k, false, o)
}

func open(ctx context.Context, path string, k *keys, create bool, o options) (*Store, error) {
	mode := "rw"
	if create {
		mode = "rwc"
	}
	// The page key goes in the URI as hexkey, as the adiantum VFS reads
	// it. Go strings cannot be cleared; the DSN lives as long as the pools.
	q := url.Values{}
	q.Set("vfs", "adiantum")
	q.Set("mode", mode)
	base := "file:" + (&url.URL{Path: path}).EscapedPath() + "?" + q.Encode() +
		"&hexkey=" + hex.EncodeToString(k.page[:]) +
		"&_pragma=busy_timeout(10000)&_pragma=foreign_keys(on)&_pragma=temp_store(memory)"

	// Writer: one connection, BEGIN IMMEDIATE, WAL, fsync at commit
	// (synchronous=full) so a committed Update survives power loss before
	// the SDK acknowledges the envelope.
	w, err := driver.Open(base+"&_pragma=journal_mode(wal)&_pragma=synchronous(full)&_pragma=secure_delete(on)&_txlock=immediate", initConn)
	if err != nil {
		return nil, dbErr("opening database", err)
	}
	w.SetMaxOpenConns(1)
	w.SetConnMaxIdleTime(0)
	s := &Store{w: w, now: o.now, stmts: newStmtCache()}
	if err := w.PingContext(ctx); err != nil {
		w.Close()
		return nil, dbErr("opening database", err)
	}
	if err := s.migrate(ctx); err != nil {
		w.Close()
		return nil, err
	}
	// SQLite creates its files 0666 less the umask; they are encrypted,
	// but other users have no business reading them either.
	for _, suffix := range []string{"", "-wal", "-shm"} {
		if err := os.Chmod(path+suffix, 0o600); err != nil && !errors.Is(err, fs.ErrNotExist) {
			w.Close()
			return nil, fmt.Errorf("devicestore: restricting file permissions: %w", err)
		}
	}
	r, err := driver.Open(base+"&_pragma=query_only(1)", initConn)
	if err != nil {
		w.Close()
		return nil, dbErr("opening database", err)
	}
	r.SetMaxOpenConns(o.readers)
	r.SetMaxIdleConns(o.readers) // keep them: each new one re-runs the pragmas and FTS5 registration
	s.r = r
	s.reader = reader{q: r}
	return s, nil
}

// initConn runs on every new connection: FTS5 and the search tokenizer
// (search.go: initSearchConn) are set up so search works on any connection.
func initConn(c *sqlite3.Conn) error {
	return initSearchConn(c)
}

type migration struct {
	version int
	sql     string
}

func migrations() ([]migration, error) {
	ents, err := fs.ReadDir(migrationFS, "migrations")
	if err != nil {
		return nil, err
	}
	var ms []migration
	for _, e := range ents {
		n, _, ok := strings.Cut(e.Name(), "_")
		v, err := strconv.Atoi(n)
		if !ok || err != nil {
			return nil, fmt.Errorf("devicestore: bad migration name %q", e.Name())
		}
		b, err := migrationFS.ReadFile("migrations/" + e.Name())
		if err != nil {
			return nil, err
		}
		ms = append(ms, migration{v, string(b)})
	}
	sort.Slice(ms, func(i, j int) bool { return ms[i].version < ms[j].version })
	return ms, nil
}

// SchemaVersion is the newest schema this package knows.
func SchemaVersion() int {
	ms, _ := migrations()
	return ms[len(ms)-1].version
}

// migrate applies the migrations the database lacks, each in its own
// transaction, recorded in schema_migrations.
func (s *Store) migrate(ctx context.Context) error {
	ms, err := migrations()
	if err != nil {
		return err
	}
	if _, err := s.w.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS schema_migrations (
		version INTEGER PRIMARY KEY, applied_at INTEGER NOT NULL)`); err != nil {
		return dbErr("creating schema_migrations", err)
	}
	var cur int
	if err := s.w.QueryRowContext(ctx, `SELECT coalesce(max(version), 0) FROM schema_migrations`).Scan(&cur); err != nil {
		return dbErr("reading schema version", err)
	}
	if cur > ms[len(ms)-1].version {
		return fmt.Errorf("%w: version %d, this program knows up to %d", ErrSchemaTooNew, cur, ms[len(ms)-1].version)
	}
	for _, m := range ms {
		if m.version <= cur {
			continue
		}
		tx, err := s.w.BeginTx(ctx, nil)
		if err != nil {
			return dbErr("migrating", err)
		}
		if _, err := tx.ExecContext(ctx, m.sql); err != nil {
			tx.Rollback()
			return dbErr(fmt.Sprintf("applying migration %d", m.version), err)
		}
		if _, err := tx.ExecContext(ctx, `INSERT INTO schema_migrations (version, applied_at) VALUES (?, ?)`, m.version, s.now().UnixMilli()); err != nil {
			tx.Rollback()
			return dbErr("recording migration", err)
		}
		if err := tx.Commit(); err != nil {
			return dbErr("committing migration", err)
		}
	}
	return nil
}

// Close closes the database. Committed data is durable whether or not
// Close is called.
func (s *Store) Close() error {
	s.closeOnce.Do(func() {
		var errs []error
		if s.r != nil {
			errs = append(errs, s.r.Close())
		}
		s.stmts.close()
		errs = append(errs, s.w.Close())
		if err := errors.Join(errs...); err != nil {
			s.closeErr = dbErr("closing", err)
		}
	})
	return s.closeErr
}

// Update runs fn in one write transaction and commits if fn returns nil;
// otherwise (or if fn panics) it rolls back, leaving the store exactly as
// it was, and returns fn's error. Updates are serialized.
//
// This is how ratchet state and application data commit together: the
// Tx is a [protocol.AllStores], so a Cipher built over it in fn writes its
// session changes into the same transaction as the message fn stores.
// The tx must not be used after fn returns, and fn must not call Update
// (there is one writer connection: a nested Update would wait forever).
// fn may call the Store's read methods, which see the last commit, not
// fn's uncommitted writes; read through tx for those.
func (s *Store) Update(ctx context.Context, fn func(tx *Tx) error) (err error) {
	sqlTx, err := s.w.BeginTx(ctx, nil)
	if err != nil {
		return dbErr("beginning transaction", err)
	}
	q := cachedTx{tx: sqlTx, cache: s.stmts, local: map[string]*sql.Stmt{}}
	tx := &Tx{reader: reader{q: q}, tx: q, now: s.now}
	committed := false
	defer func() {
		if !committed {
			sqlTx.Rollback()
		}
	}()
	if err := fn(tx); err != nil {
		return err
	}
	if err := indexPending(ctx, sqlTx); err != nil { // search.go: new messages into the search index
		return err
	}
	if err := sqlTx.Commit(); err != nil {
		return dbErr("committing", err)
	}
	committed = true
	s.stmts.prepareMissing(ctx, s.w)
	return nil
}

// Checkpoint copies the WAL into the database file and truncates it
// (both encrypted). The SDK may call it when idle; SQLite also
// checkpoints on its own.
func (s *Store) Checkpoint(ctx context.Context) error {
	_, err := s.w.ExecContext(ctx, `PRAGMA wal_checkpoint(TRUNCATE)`)
	return dbErr("checkpointing", err)
}

// writeFileAtomic writes b to path through a temporary file, fsyncs it,
// renames it into place and fsyncs the directory.
func writeFileAtomic(path string, b []byte) error {
	dir := filepath.Dir(path)
	f, err := os.CreateTemp(dir, ".hdr-*")
	if err != nil {
		return err
	}
	tmp := f.Name()
	defer os.Remove(tmp)
	if _, err := f.Write(b); err != nil {
		f.Close()
		return err
	}
	if err := f.Chmod(0o600); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp, path); err != nil {
		return err
	}
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}
