// Package postgres is the PostgreSQL storage backend of the Veil server:
// the [store.Store] contract on a pgx connection pool, correct when many
// server processes share one database.
//
// # Concurrency between nodes
//
//   - One-time prekeys are claimed with DELETE … WHERE seq = (SELECT …
//     ORDER BY seq LIMIT 1 FOR UPDATE SKIP LOCKED) RETURNING: two fetchers
//     never lock the same row, and a deleted row is never returned twice.
//     Keys go out in upload order except that concurrent fetchers take
//     neighbouring keys at once (and a key whose claiming transaction
//     rolled back goes out later); no fetcher waits behind another.
//   - Deliver locks the recipient's device rows (FOR NO KEY UPDATE, in
//     device order, so two senders cannot deadlock) before it checks the
//     device list and the idempotency record, and assigns each envelope's
//     seq from the device row's counter while holding that lock. Sends to
//     one device therefore commit in seq order: a reader that has seen
//     seq n can never later find a smaller seq appear, so paging with
//     "after n" skips nothing. (A global sequence would not give this: a
//     transaction holding seq 5 may commit after one holding seq 6.)
//   - Sends are stored in batches (deliverer.go): concurrent Deliver
//     calls share one transaction of a fixed number of statements and
//     one commit. A batch locks the device rows of all its recipients in
//     one statement ordered by (account, device), so batches lock device
//     rows in one global order and cannot deadlock one another.
//   - Acks are group-committed too (acker.go): one DELETE for every ack
//     waiting, from any device.
//   - Rate-limit buckets are one atomic upsert.
//   - Migrations run under a transaction-scoped advisory lock, so nodes
//     starting together apply each one exactly once.
//
// # Cross-node wake-ups
//
// [Store.Notify] and [Store.Listen] wrap PostgreSQL NOTIFY/LISTEN so the
// server can tell the node that holds a device's connection that mail
// arrived; [Store.Pool] exposes the pool for anything else.
//
// # Durability
//
// A method returns after COMMIT; with the server's default
// synchronous_commit=on that means the WAL is flushed.
package postgres

import (
	"context"
	"embed"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/veil-e2ee/veil/server/store"
	"github.com/veil-e2ee/veil/server/store/internal/rules"
)

//go:embed migrations/*.sql
var migrations embed.FS

// ErrSchemaTooNew is returned by [Open] when the database was migrated by
// a newer version of Veil.
var ErrSchemaTooNew = errors.New("store/postgres: database schema is newer than this binary")

// Store is the PostgreSQL implementation of [store.Store].
type Store struct {
	pool   *pgxpool.Pool
	closed atomic.Bool

	acks      chan *ackReq     // to the acker (acker.go)
	sends     chan *deliverReq // to the deliverers (deliverer.go)
	quit      chan struct{}
	ackerDone chan struct{}
	workers   sync.WaitGroup // the deliverers
}

var _ store.Store = (*Store)(nil)

// DefaultMaxConns is the pool size when the DSN sets no pool_max_conns.
// pgx's own default (the number of CPUs, at least 4) is too small for a
// server: a send holds its connection through a commit's WAL flush, and
// concurrent commits share one flush only if they run on separate
// connections.
const DefaultMaxConns = 32

// Open connects to the database named by dsn (a postgres:// URL or
// key=value string; pool settings such as pool_max_conns are accepted)
// and brings its schema up to date. The schema lives in the connection's
// current schema, so search_path selects it.
func Open(ctx context.Context, dsn string) (*Store, error) {
	cfg, err := pgxpool.ParseConfig(dsn)
	if err != nil {
		// The DSN may hold a password: do not echo it.
		return nil, fmt.Errorf("store/postgres: invalid connection string")
	}
	if !strings.Contains(dsn, "pool_max_conns") {
		cfg.MaxConns = DefaultMaxConns
	}
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("store/postgres: connect: %v", err)
	}
	if err := migrate(ctx, pool); err != nil {
		pool.Close()
		return nil, err
	}
	s := &Store{pool: pool, acks: make(chan *ackReq), sends: make(chan *deliverReq), quit: make(chan struct{}), ackerDone: make(chan struct{})}
	go s.acker()
	s.workers.Add(deliverWorkers)
	for range deliverWorkers {
		go s.deliverer(&s.workers)
	}
	return s, nil
}

// Pool returns the connection pool, for LISTEN/NOTIFY or metrics
// (pool.Stat). Do not close it; use [Store.Close].
func (s *Store) Pool() *pgxpool.Pool { return s.pool }

// Notify sends payload on channel to every listening connection of every
// node (pg_notify). Notifications are delivered only if and when the
// sending transaction commits; this one is sent on its own.
func (s *Store) Notify(ctx context.Context, channel, payload string) error {
	if s.closed.Load() {
		return store.ErrClosed
	}
	_, err := s.pool.Exec(ctx, `SELECT pg_notify($1, $2)`, channel, payload)
	return s.translate(ctx, err)
}

// Listen holds one pool connection LISTENing on channel and calls fn
// with each payload, in order, until ctx ends (it then returns nil). If
// the connection fails it returns the error: notifications may have been
// missed, so the caller should re-check whatever it waits for and call
// Listen again.
func (s *Store) Listen(ctx context.Context, channel string, fn func(payload string)) error {
	if s.closed.Load() {
		return store.ErrClosed
	}
	conn, err := s.pool.Acquire(ctx)
	if err != nil {
		return s.translate(ctx, err)
	}
	ident := pgx.Identifier{channel}.Sanitize()
	if _, err := conn.Exec(ctx, "LISTEN "+ident); err != nil {
		conn.Release()
		return s.translate(ctx, err)
	}
	defer func() {
		// The connection may be mid-wait after a cancel; do not hand a
		// listening connection back to the pool.
		conn.Conn().Close(context.Background())
		conn.Release()
	}()
	for {
		n, err := conn.Conn().WaitForNotification(ctx)
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return s.translate(ctx, err)
		}
		fn(n.Payload)
	}
}

// migrate applies the embedded migrations not yet recorded in
// schema_migrations, in version order, each in one transaction that
// first takes an advisory lock scoped to the current schema.
func migrate(ctx context.Context, pool *pgxpool.Pool) error {
	list, err := rules.Migrations(migrations, "migrations")
	if err != nil {
		return fmt.Errorf("store/postgres: migrate: %v", err)
	}
	// A database migrated by a newer binary (another node already
	// upgraded) may hold data this one does not know how to keep
	// consistent: refuse it.
	var newest *int64
	err = pool.QueryRow(ctx, `SELECT max(version) FROM schema_migrations`).Scan(&newest)
	switch code, _ := pgCode(err); {
	case err == nil:
		if newest != nil && len(list) > 0 && int(*newest) > list[len(list)-1].Version {
			return fmt.Errorf("%w: database schema version %d is newer than this binary's %d", ErrSchemaTooNew, *newest, list[len(list)-1].Version)
		}
	case code == codeUndefinedTable: // a new database
	default:
		return fmt.Errorf("store/postgres: migrate: %v", err)
	}
	for _, m := range list {
		err = pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
			if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock(7450, hashtext(current_schema()))`); err != nil {
				return err
			}
			if _, err := tx.Exec(ctx, `CREATE TABLE IF NOT EXISTS schema_migrations (
				version    integer     NOT NULL PRIMARY KEY,
				name       text        NOT NULL,
				applied_at timestamptz NOT NULL DEFAULT now())`); err != nil {
				return err
			}
			var done bool
			if err := tx.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM schema_migrations WHERE version = $1)`, m.Version).Scan(&done); err != nil {
				return err
			}
			if done {
				return nil
			}
			if _, err := tx.Exec(ctx, m.SQL); err != nil {
				return err
			}
			_, err := tx.Exec(ctx, `INSERT INTO schema_migrations (version, name) VALUES ($1, $2)`, m.Version, m.Name)
			return err
		})
		if err != nil {
			return fmt.Errorf("store/postgres: migrate %s: %v", m.Name, err)
		}
	}
	return nil
}

// PostgreSQL error codes the store translates.
const (
	codeUniqueViolation     = "23505"
	codeForeignKeyViolation = "23503"
	codeUndefinedTable      = "42P01"
	codeDeadlock            = "40P01"
)

func pgCode(err error) (code, constraint string) {
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		return pe.Code, pe.ConstraintName
	}
	return "", ""
}

// translate turns any error into the store's own errors: sentinels of
// package store pass through, pgx.ErrNoRows becomes ErrNotFound, a
// foreign-key violation means the device vanished (ErrNotFound), context
// errors are wrapped, and everything else becomes opaque text (never a
// pgx type).
func (s *Store) translate(ctx context.Context, err error) error {
	if err == nil {
		return nil
	}
	var mm *store.DeviceMismatchError
	code, _ := pgCode(err)
	switch {
	case errors.As(err, &mm),
		errors.Is(err, store.ErrNotFound), errors.Is(err, store.ErrUsernameTaken),
		errors.Is(err, store.ErrQueueFull), errors.Is(err, store.ErrDeviceLimit),
		errors.Is(err, store.ErrClosed), errors.Is(err, store.ErrInvalid),
		errors.Is(err, store.ErrConflict):
		return err
	case errors.Is(err, pgx.ErrNoRows):
		return store.ErrNotFound
	case code == codeForeignKeyViolation:
		return store.ErrNotFound
	case s.closed.Load():
		return store.ErrClosed
	case ctx.Err() != nil:
		return fmt.Errorf("store/postgres: %w", ctx.Err())
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return fmt.Errorf("store/postgres: %w", err)
	}
	return fmt.Errorf("store/postgres: %v", err)
}

// tx runs fn in one READ COMMITTED transaction and translates its error.
func (s *Store) tx(ctx context.Context, fn func(tx pgx.Tx) error) error {
	if s.closed.Load() {
		return store.ErrClosed
	}
	return s.translate(ctx, pgx.BeginFunc(ctx, s.pool, fn))
}

// Ping checks the database answers.
func (s *Store) Ping(ctx context.Context) error {
	if s.closed.Load() {
		return store.ErrClosed
	}
	return s.translate(ctx, s.pool.Ping(ctx))
}

// Close closes the pool, waiting for connections in use to be returned.
func (s *Store) Close() error {
	if s.closed.Swap(true) {
		return nil
	}
	close(s.quit)
	<-s.ackerDone
	s.workers.Wait()
	s.pool.Close()
	return nil
}
