package devicestore

import (
	"context"
	"database/sql"
	"sync"
)

// maxCachedStmts bounds the statement cache (the SDK uses a few dozen
// distinct statements).
const maxCachedStmts = 256

// stmtCache keeps prepared statements on the writer connection, so a
// transaction does not parse the same SQL again for every row: the
// receive path runs a dozen statements per message. A statement met for
// the first time inside a transaction runs unprepared and is prepared
// after the commit, when the single writer connection is free again
// (preparing on the pool during the transaction would wait for it).
type stmtCache struct {
	mu      sync.Mutex
	stmts   map[string]*sql.Stmt
	pending map[string]bool
	closed  bool
}

func newStmtCache() *stmtCache {
	return &stmtCache{stmts: map[string]*sql.Stmt{}, pending: map[string]bool{}}
}

// lookup returns the prepared statement for query, or nil (and notes the
// query for prepareMissing).
func (c *stmtCache) lookup(query string) *sql.Stmt {
	if c == nil {
		return nil
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	st := c.stmts[query]
	if st == nil && len(c.stmts)+len(c.pending) < maxCachedStmts {
		c.pending[query] = true
	}
	return st
}

// prepareMissing prepares the statements noted since the last call. A
// statement that fails to prepare is simply not cached. The lock is not
// held while preparing: preparing waits for the writer connection, which
// another Update may hold while it looks statements up.
func (c *stmtCache) prepareMissing(ctx context.Context, db *sql.DB) {
	if c == nil {
		return
	}
	c.mu.Lock()
	var qs []string
	for q := range c.pending {
		qs = append(qs, q)
		delete(c.pending, q)
	}
	c.mu.Unlock()
	for _, q := range qs {
		st, err := db.PrepareContext(ctx, q)
		if err != nil {
			continue
		}
		c.mu.Lock()
		if c.stmts[q] == nil && !c.closed {
			c.stmts[q] = st
			st = nil
		}
		c.mu.Unlock()
		if st != nil {
			st.Close()
		}
	}
}

func (c *stmtCache) close() {
	if c == nil {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.closed = true
	for q, st := range c.stmts {
		st.Close()
		delete(c.stmts, q)
	}
}

// cachedTx runs a transaction's statements through the cache. A
// statement the cache does not have yet is prepared on the transaction
// and kept for the rest of it (a long import runs the same few
// statements a hundred thousand times).
type cachedTx struct {
	tx    *sql.Tx
	cache *stmtCache
	local map[string]*sql.Stmt // prepared on this transaction; closed with it
}

func (t cachedTx) stmt(ctx context.Context, query string) *sql.Stmt {
	if st := t.local[query]; st != nil {
		return st
	}
	if st := t.cache.lookup(query); st != nil {
		st = t.tx.StmtContext(ctx, st) // reuses the statement prepared on this connection
		if t.local != nil {
			t.local[query] = st
		}
		return st
	}
	if t.local == nil {
		return nil
	}
	st, err := t.tx.PrepareContext(ctx, query)
	if err != nil {
		return nil // run it unprepared; the error, if real, shows there
	}
	t.local[query] = st
	return st
}

func (t cachedTx) ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error) {
	if st := t.stmt(ctx, query); st != nil {
		return st.ExecContext(ctx, args...)
	}
	return t.tx.ExecContext(ctx, query, args...)
}

func (t cachedTx) QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error) {
	if st := t.stmt(ctx, query); st != nil {
		return st.QueryContext(ctx, args...)
	}
	return t.tx.QueryContext(ctx, query, args...)
}

func (t cachedTx) QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row {
	if st := t.stmt(ctx, query); st != nil {
		return st.QueryRowContext(ctx, args...)
	}
	return t.tx.QueryRowContext(ctx, query, args...)
}
