// Package sqlite is the embedded storage backend of the Veil server: the
// [store.Store] contract on one SQLite file through the pure-Go
// github.com/ncruces/go-sqlite3 driver (no cgo).
//
// # Durability
//
// The database runs in WAL mode: a method returns only after its
// transaction is committed and the WAL is synced (see below), so a kill -9
// (or power loss) at any moment loses nothing a caller was told had been
// stored.
//
// # Writes: one writer, group commit, pipelined sync
//
// SQLite has one writer at a time. Instead of letting connections contend
// for the lock (and fail with SQLITE_BUSY), every write goes to a single
// goroutine that owns the only writing connection. It runs the writes that
// are waiting in one transaction, each inside its own SAVEPOINT, and
// commits once: a failed write is rolled back to its savepoint and leaves
// no trace, the others commit together. Reads go to a separate pool of
// query-only connections, which WAL lets run beside the writer.
//
// The commit does not wait for the disk. The writer connection runs with
// synchronous=NORMAL, so COMMIT appends the batch to the WAL without an
// fsync and the writer goes straight on to the next batch; a second
// goroutine, the syncer, then fdatasyncs the WAL file once for every
// commit that is waiting and only after that tells each caller its write
// succeeded. The WAL is appended in order, so one sync makes every earlier
// commit durable too. Callers therefore still hear back only once their
// write is on disk, as with synchronous=FULL, but the fsync of one batch
// overlaps the execution of the next. (NORMAL keeps the database
// consistent on power loss: SQLite syncs the WAL before and the database
// after every checkpoint.) One difference remains: readers may see a
// committed write up to one fsync before it is durable. Should the
// machine lose power in that window, the write is lost although a reader
// saw it, and its caller, never told it succeeded, retries.
//
// A commit reaches the WAL in one write: the connections open the
// database through a VFS (walvfs.go) that gathers the frames SQLite
// writes to the WAL and writes them out when the commit frame arrives,
// before SQLite makes the commit visible to readers.
//
// # Schema
//
// Versioned migrations are embedded (migrations/*.sql) and applied in
// order by [Open], each in its own transaction, recorded in
// schema_migrations. docs/SCHEMA.md describes every column.
package sqlite

import (
	"context"
	"database/sql"
	"embed"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/ncruces/go-sqlite3"
	"github.com/ncruces/go-sqlite3/driver"

	"github.com/veil-e2ee/veil/server/store"
	"github.com/veil-e2ee/veil/server/store/internal/rules"
)

//go:embed migrations/*.sql
var migrations embed.FS

// ErrSchemaTooNew is returned by [Open] when the database was migrated by
// a newer version of Veil.
var ErrSchemaTooNew = errors.New("store/sqlite: database schema is newer than this binary")

// Option changes how [Open] opens the database.
type Option func(*config)

type config struct {
	readers  int
	maxBatch int
}

// WithReaders sets the number of read connections (default 4).
func WithReaders(n int) Option {
	return func(c *config) {
		if n > 0 {
			c.readers = n
		}
	}
}

// WithMaxBatch bounds how many writes share one commit (default 64);
// 1 disables group commit. A larger batch saves fsyncs but makes the
// first write of a batch wait for the others.
func WithMaxBatch(n int) Option {
	return func(c *config) {
		if n > 0 {
			c.maxBatch = n
		}
	}
}

// Store is the SQLite implementation of [store.Store]. It is safe for
// concurrent use; one process should open a given file at a time (a
// second process would still be correct, but would wait on SQLite's
// file lock).
type Store struct {
	w        *sql.DB
	r        *rdb
	maxBatch int

	// wprep holds the writer's prepared statements. Only the writer
	// goroutine touches it: a statement first seen inside a batch runs
	// unprepared and is prepared after the batch, when the single
	// connection is free again.
	wprep     map[string]*sql.Stmt
	toPrepare map[string]struct{}

	reqs    chan *writeReq
	quit    chan struct{}
	stopped chan struct{}
	closed  atomic.Bool
	once    sync.Once

	// The writer hands each committed batch to the syncer, which makes
	// the WAL durable and then answers the batch's callers.
	wal      *walFile
	synced   chan []*writeReq
	syncIdle chan struct{} // a token: the syncer waits for work
	syncDone chan struct{}
}

var _ store.Store = (*Store)(nil)

type writeReq struct {
	ctx  context.Context
	fn   func(ctx context.Context, tx *wtx) error
	done chan error
	// single: fn changes the database with at most one statement, which
	// SQLite applies or undoes whole by itself, so it needs no savepoint.
	single bool
}

// Open opens (creating if needed) the database file at path and brings
// its schema up to date.
func Open(ctx context.Context, path string, opts ...Option) (*Store, error) {
	cfg := config{readers: 4, maxBatch: 64}
	for _, o := range opts {
		o(&cfg)
	}
	base := "file:" + strings.ReplaceAll(url.PathEscape(path), "%2F", "/") +
		"?vfs=" + walVFSName + "&_pragma=busy_timeout(10000)&_pragma=journal_mode(wal)&_pragma=foreign_keys(on)"
	// synchronous=NORMAL: the syncer makes each commit durable (see the
	// package documentation). secure_delete: an acknowledged envelope's
	// bytes are overwritten in the database file, not left in a free page.
	// wal_autocheckpoint: the writer checkpoints every 10,000 WAL pages
	// (~40 MiB) instead of 1,000; the pages a queue rewrites all the time
	// (devices, index roots, the envelopes' tail) are then copied to the
	// database once per 10,000 frames, not ten times (+4 % throughput).
	// cache_size: the writer keeps up to 32 MiB of pages (SQLite's
	// default is 2 MiB); idempotency records are keyed by a hash, so
	// every send touches a random leaf of that table (+5 % on a database
	// of 40,000 messages, more as it grows).
	w, err := driver.Open(base+"&_pragma=synchronous(normal)&_pragma=wal_autocheckpoint(10000)&_pragma=cache_size(-32768)&_pragma=secure_delete(on)&_txlock=immediate", initConn)
	if err != nil {
		return nil, fmt.Errorf("store/sqlite: open: %v", err)
	}
	w.SetMaxOpenConns(1)
	w.SetMaxIdleConns(1)
	w.SetConnMaxLifetime(0)
	w.SetConnMaxIdleTime(0)
	if err := migrate(ctx, w); err != nil {
		w.Close()
		return nil, err
	}
	// The WAL exists now (migrate wrote through it); make its directory
	// entry durable before the first commit relies on syncing the file.
	wal := &walFile{path: path + "-wal", db: path}
	if err := wal.sync(); err != nil {
		w.Close()
		return nil, fmt.Errorf("store/sqlite: open: %v", err)
	}
	r, err := driver.Open(base+"&_pragma=synchronous(full)&_pragma=query_only(1)", initConn)
	if err != nil {
		w.Close()
		return nil, fmt.Errorf("store/sqlite: open: %v", err)
	}
	r.SetMaxOpenConns(cfg.readers)
	r.SetMaxIdleConns(cfg.readers)
	r.SetConnMaxIdleTime(0)
	if err := r.PingContext(ctx); err != nil {
		w.Close()
		r.Close()
		return nil, fmt.Errorf("store/sqlite: open: %v", err)
	}
	s := &Store{
		w: w, r: &rdb{db: r}, maxBatch: cfg.maxBatch,
		wprep: map[string]*sql.Stmt{}, toPrepare: map[string]struct{}{},
		reqs:    make(chan *writeReq),
		quit:    make(chan struct{}),
		stopped: make(chan struct{}),
		wal:     wal, synced: make(chan []*writeReq, syncQueue),
		syncIdle: make(chan struct{}, 1), syncDone: make(chan struct{}),
	}
	go s.writer()
	go s.syncer()
	return s, nil
}

// initConn configures every new connection. The query planner stability
// guarantee (QPSG) stops SQLite from re-preparing a statement whenever a
// bound value changes: this build of SQLite has STAT4, which otherwise
// recompiles statements like Pending's (a range on seq, a bound LIMIT) at
// every step after a rebind, so prepared statements saved nothing (about
// 9 % of the server's CPU went to the parser). The schema has no
// statistics tables, so the values had no plan to improve anyway.
func initConn(c *sqlite3.Conn) error {
	if _, err := c.Config(sqlite3.DBCONFIG_ENABLE_QPSG, true); err != nil {
		return fmt.Errorf("store/sqlite: enable QPSG: %v", err)
	}
	return nil
}

// migrate applies the embedded migrations that are not yet recorded, in
// version order, each in one transaction with its record.
func migrate(ctx context.Context, db *sql.DB) error {
	if _, err := db.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS schema_migrations (
		version    INTEGER NOT NULL PRIMARY KEY,
		name       TEXT    NOT NULL,
		applied_at INTEGER NOT NULL
	) STRICT`); err != nil {
		return fmt.Errorf("store/sqlite: migrate: %v", err)
	}
	list, err := rules.Migrations(migrations, "migrations")
	if err != nil {
		return fmt.Errorf("store/sqlite: migrate: %v", err)
	}
	// A database migrated by a newer binary may hold data this one does
	// not know how to keep consistent: refuse it.
	var newest sql.NullInt64
	if err := db.QueryRowContext(ctx, `SELECT max(version) FROM schema_migrations`).Scan(&newest); err != nil {
		return fmt.Errorf("store/sqlite: migrate: %v", err)
	}
	if len(list) > 0 && newest.Valid && int(newest.Int64) > list[len(list)-1].Version {
		return fmt.Errorf("%w: database schema version %d is newer than this binary's %d", ErrSchemaTooNew, newest.Int64, list[len(list)-1].Version)
	}
	for _, m := range list {
		if err := applyMigration(ctx, db, m.Version, m.Name, m.SQL); err != nil {
			return err
		}
	}
	return nil
}

func applyMigration(ctx context.Context, db *sql.DB, version int, name, body string) error {
	tx, err := db.BeginTx(ctx, nil) // BEGIN IMMEDIATE: other openers wait
	if err != nil {
		return fmt.Errorf("store/sqlite: migrate %s: %v", name, err)
	}
	defer tx.Rollback()
	var n int
	if err := tx.QueryRowContext(ctx, `SELECT count(*) FROM schema_migrations WHERE version = ?`, version).Scan(&n); err != nil {
		return fmt.Errorf("store/sqlite: migrate %s: %v", name, err)
	}
	if n > 0 {
		return nil
	}
	if _, err := tx.ExecContext(ctx, body); err != nil {
		return fmt.Errorf("store/sqlite: migrate %s: %v", name, err)
	}
	if _, err := tx.ExecContext(ctx, `INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, unixepoch())`, version, name); err != nil {
		return fmt.Errorf("store/sqlite: migrate %s: %v", name, err)
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("store/sqlite: migrate %s: %v", name, err)
	}
	return nil
}

// write runs fn in the writer goroutine's current transaction, inside a
// savepoint, and returns after the transaction committed (or with fn's
// error, after fn's changes were rolled back).
func (s *Store) write(ctx context.Context, fn func(ctx context.Context, tx *wtx) error) error {
	return s.submit(&writeReq{ctx: ctx, fn: fn})
}

// write1 is write for an fn that changes the database with at most one
// statement (any others only read): it runs without a savepoint.
func (s *Store) write1(ctx context.Context, fn func(ctx context.Context, tx *wtx) error) error {
	return s.submit(&writeReq{ctx: ctx, fn: fn, single: true})
}

func (s *Store) submit(r *writeReq) error {
	ctx := r.ctx
	if s.closed.Load() {
		return store.ErrClosed
	}
	r.done = make(chan error, 1)
	select {
	case s.reqs <- r:
	case <-s.quit:
		return store.ErrClosed
	case <-ctx.Done():
		return fmt.Errorf("store/sqlite: %w", ctx.Err())
	}
	// Wait even if ctx ends now: the caller must learn whether its write
	// committed. The writer stops fn's statements when ctx ends.
	return <-r.done
}

// syncQueue bounds the committed batches waiting for the syncer; the
// writer blocks when it is full.
const syncQueue = 256

func (s *Store) writer() {
	defer close(s.stopped)
	defer close(s.synced)
	for {
		select {
		case <-s.quit:
			return
		case r := <-s.reqs:
			s.batch(r)
		}
	}
}

// batch runs first and whatever writes queue up behind it, up to
// maxBatch, in one transaction.
func (s *Store) batch(first *writeReq) {
	var ran []*writeReq // committed together
	defer s.prepareNew()
	sqltx, err := s.w.BeginTx(context.Background(), nil)
	if err != nil {
		first.done <- s.translate(first.ctx, err)
		return
	}
	tx := &wtx{tx: sqltx, s: s}
	next := first
	for next != nil {
		if err := next.ctx.Err(); err != nil {
			next.done <- fmt.Errorf("store/sqlite: %w", err)
		} else if err := s.runOne(tx, next); err != nil {
			next.done <- err
		} else {
			ran = append(ran, next)
		}
		next = nil
		if len(ran) < s.maxBatch {
			select {
			case next = <-s.reqs:
			default:
				// Nothing is waiting. Commit at once if the syncer is
				// free; while it is still syncing earlier batches this
				// one would only queue behind them, so keep the
				// transaction open for the writes that arrive meanwhile:
				// fewer, larger commits write fewer WAL pages.
				if len(ran) > 0 {
					select {
					case next = <-s.reqs:
					case <-s.syncIdle:
					}
				}
			}
		}
	}
	if len(ran) == 0 {
		sqltx.Rollback()
		return
	}
	if err := sqltx.Commit(); err != nil {
		sqltx.Rollback()
		err = s.translate(context.Background(), err)
		for _, r := range ran {
			r.done <- err
		}
		return
	}
	s.synced <- ran
}

// syncer makes committed batches durable: one sync of the WAL for all the
// batches waiting, then their callers hear back. A failed sync fails every
// write it covered; those writes are committed, so their callers may find
// them applied (a retried send is then reported as a duplicate).
func (s *Store) syncer() {
	defer close(s.syncDone)
	var waiting []*writeReq
	for {
		select {
		case s.syncIdle <- struct{}{}:
		default: // the writer has not taken the last token yet
		}
		ran, ok := <-s.synced
		if !ok {
			return
		}
		waiting = append(waiting[:0], ran...)
	drain:
		for {
			select {
			case more, ok := <-s.synced:
				if !ok {
					break drain
				}
				waiting = append(waiting, more...)
			default:
				break drain
			}
		}
		err := s.wal.sync()
		if err != nil {
			err = fmt.Errorf("store/sqlite: sync: %v", err)
		}
		for _, r := range waiting {
			r.done <- err
		}
		clear(waiting)
	}
}

func (s *Store) runOne(tx *wtx, r *writeReq) (err error) {
	bg := context.Background()
	if r.single {
		defer func() {
			if p := recover(); p != nil {
				err = fmt.Errorf("store/sqlite: write panicked: %v", p)
			}
		}()
		return s.translate(r.ctx, r.fn(context.WithoutCancel(r.ctx), tx))
	}
	if _, err := tx.ExecContext(bg, `SAVEPOINT w`); err != nil {
		return s.translate(r.ctx, err)
	}
	defer func() {
		if p := recover(); p != nil {
			tx.ExecContext(bg, `ROLLBACK TO w`)
			tx.ExecContext(bg, `RELEASE w`)
			err = fmt.Errorf("store/sqlite: write panicked: %v", p)
		}
	}()
	// The statements run without the caller's cancellation: SQLite
	// answers an interrupted write inside an explicit transaction by
	// rolling back the whole transaction, which would take the other
	// writes of the batch with it. The caller's context was checked just
	// before; a write is a few statements, so it finishes promptly.
	if ferr := r.fn(context.WithoutCancel(r.ctx), tx); ferr != nil {
		if _, err := tx.ExecContext(bg, `ROLLBACK TO w`); err != nil {
			return s.translate(r.ctx, err)
		}
		if _, err := tx.ExecContext(bg, `RELEASE w`); err != nil {
			return s.translate(r.ctx, err)
		}
		return s.translate(r.ctx, ferr)
	}
	if _, err := tx.ExecContext(bg, `RELEASE w`); err != nil {
		return s.translate(r.ctx, err)
	}
	return nil
}

// prepareNew prepares the statements the last batch ran unprepared.
// Preparation is an optimisation: a statement that fails to prepare
// simply keeps running unprepared.
func (s *Store) prepareNew() {
	for q := range s.toPrepare {
		delete(s.toPrepare, q)
		if st, err := s.w.PrepareContext(context.Background(), q); err == nil {
			s.wprep[q] = st
		}
	}
}

// wtx is the writer's transaction; it runs prepared statements when it
// has them. Only the writer goroutine uses it.
type wtx struct {
	tx *sql.Tx
	s  *Store
}

func (t *wtx) stmt(ctx context.Context, q string) *sql.Stmt {
	if st, ok := t.s.wprep[q]; ok {
		return t.tx.StmtContext(ctx, st)
	}
	t.s.toPrepare[q] = struct{}{}
	return nil
}

func (t *wtx) ExecContext(ctx context.Context, q string, args ...any) (sql.Result, error) {
	if st := t.stmt(ctx, q); st != nil {
		return st.ExecContext(ctx, args...)
	}
	return t.tx.ExecContext(ctx, q, args...)
}

func (t *wtx) QueryContext(ctx context.Context, q string, args ...any) (*sql.Rows, error) {
	if st := t.stmt(ctx, q); st != nil {
		return st.QueryContext(ctx, args...)
	}
	return t.tx.QueryContext(ctx, q, args...)
}

func (t *wtx) QueryRowContext(ctx context.Context, q string, args ...any) *sql.Row {
	if st := t.stmt(ctx, q); st != nil {
		return st.QueryRowContext(ctx, args...)
	}
	return t.tx.QueryRowContext(ctx, q, args...)
}

// rdb is the read pool; it prepares each query once (database/sql then
// keeps it prepared on every connection that runs it).
type rdb struct {
	db   *sql.DB
	prep sync.Map // query string -> *sql.Stmt
}

func (r *rdb) stmt(ctx context.Context, q string) (*sql.Stmt, error) {
	if st, ok := r.prep.Load(q); ok {
		return st.(*sql.Stmt), nil
	}
	st, err := r.db.PrepareContext(ctx, q)
	if err != nil {
		return nil, err
	}
	if prev, loaded := r.prep.LoadOrStore(q, st); loaded {
		st.Close()
		return prev.(*sql.Stmt), nil
	}
	return st, nil
}

func (r *rdb) query(ctx context.Context, q string, args ...any) (*sql.Rows, error) {
	st, err := r.stmt(ctx, q)
	if err != nil {
		return nil, err
	}
	return st.QueryContext(ctx, args...)
}

// row is a *sql.Row or a preparation error, scanned the same way.
type row struct {
	r   *sql.Row
	err error
}

func (w row) Scan(dest ...any) error {
	if w.err != nil {
		return w.err
	}
	return w.r.Scan(dest...)
}

func (r *rdb) queryRow(ctx context.Context, q string, args ...any) row {
	st, err := r.stmt(ctx, q)
	if err != nil {
		return row{err: err}
	}
	return row{r: st.QueryRowContext(ctx, args...)}
}

// translate turns any error into the store's own errors: the sentinels
// of package store pass through, context errors are wrapped, and driver
// errors become opaque text (never a driver type, never sql.ErrNoRows).
func (s *Store) translate(ctx context.Context, err error) error {
	if err == nil {
		return nil
	}
	var mm *store.DeviceMismatchError
	switch {
	case errors.As(err, &mm),
		errors.Is(err, store.ErrNotFound), errors.Is(err, store.ErrUsernameTaken),
		errors.Is(err, store.ErrQueueFull), errors.Is(err, store.ErrDeviceLimit),
		errors.Is(err, store.ErrClosed), errors.Is(err, store.ErrInvalid),
		errors.Is(err, store.ErrConflict):
		return err
	case errors.Is(err, sql.ErrNoRows):
		return store.ErrNotFound
	case s.closed.Load():
		return store.ErrClosed
	case ctx.Err() != nil:
		return fmt.Errorf("store/sqlite: %w", ctx.Err())
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return fmt.Errorf("store/sqlite: %w", err)
	}
	return fmt.Errorf("store/sqlite: %v", err)
}

// isUnique reports a UNIQUE or PRIMARY KEY constraint violation.
func isUnique(err error) bool {
	return errors.Is(err, sqlite3.CONSTRAINT_UNIQUE) || errors.Is(err, sqlite3.CONSTRAINT_PRIMARYKEY)
}

// reader returns the read pool, or ErrClosed.
func (s *Store) reader() (*rdb, error) {
	if s.closed.Load() {
		return nil, store.ErrClosed
	}
	return s.r, nil
}

// Ping checks both connections answer.
func (s *Store) Ping(ctx context.Context) error {
	r, err := s.reader()
	if err != nil {
		return err
	}
	if err := r.db.PingContext(ctx); err != nil {
		return s.translate(ctx, err)
	}
	return s.write(ctx, func(ctx context.Context, tx *wtx) error {
		var one int
		return tx.QueryRowContext(ctx, `SELECT 1`).Scan(&one)
	})
}

// Checkpoint copies the WAL into the database file and truncates the
// WAL to zero bytes. After it, deleted envelopes survive nowhere in the
// files (secure_delete zeroes them in the database file); run it before
// copying the files for a backup, or to make deletions final at once
// instead of at SQLite's next automatic checkpoint.
func (s *Store) Checkpoint(ctx context.Context) error {
	if s.closed.Load() {
		return store.ErrClosed
	}
	// Outside the writer goroutine: a checkpoint cannot run inside a
	// transaction. The pool's only connection is handed over between
	// batches.
	conn, err := s.w.Conn(ctx)
	if err != nil {
		return s.translate(ctx, err)
	}
	defer conn.Close()
	var busy, logFrames, done int
	if err := conn.QueryRowContext(ctx, `PRAGMA wal_checkpoint(TRUNCATE)`).Scan(&busy, &logFrames, &done); err != nil {
		return s.translate(ctx, err)
	}
	if busy != 0 {
		return fmt.Errorf("store/sqlite: checkpoint blocked by readers")
	}
	return nil
}

// Close waits for the write in progress to commit, then closes the
// database. Later calls of any method return store.ErrClosed.
func (s *Store) Close() error {
	var err error
	s.once.Do(func() {
		s.closed.Store(true)
		close(s.quit)
		<-s.stopped
		<-s.syncDone
		s.wal.close()
		for _, st := range s.wprep {
			st.Close()
		}
		s.r.prep.Range(func(_, st any) bool { st.(*sql.Stmt).Close(); return true })
		err = errors.Join(s.w.Close(), s.r.db.Close())
		if err != nil {
			err = fmt.Errorf("store/sqlite: close: %v", err)
		}
	})
	return err
}
