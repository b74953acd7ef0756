package postgres

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/veil-e2ee/veil/server/store"
)

var _ store.AuditLog = (*Store)(nil)

// AppendAudit implements [store.AuditLog]. The head row is locked
// (SELECT … FOR UPDATE) for the transaction, so concurrent appends from
// any number of nodes queue behind each other and form one chain.
func (s *Store) AppendAudit(ctx context.Context, e store.AuditEntry, seal func(e *store.AuditEntry) error) (store.AuditEntry, error) {
	out := e
	err := s.tx(ctx, func(tx pgx.Tx) error {
		out = e
		var seq int64
		if err := tx.QueryRow(ctx, `SELECT seq, hash FROM audit_head WHERE id = 1 FOR UPDATE`).Scan(&seq, &out.PrevHash); err != nil {
			return err
		}
		out.Seq = uint64(seq) + 1
		out.Hash = nil
		if err := seal(&out); err != nil {
			return fmt.Errorf("%w: %v", store.ErrInvalid, err)
		}
		if _, err := tx.Exec(ctx, `INSERT INTO audit_log (seq, minute, type, account, device, details, prev_hash, hash) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)`,
			int64(out.Seq), out.Time.Unix(), out.Type, out.Account, int64(out.Device), string(out.Details), out.PrevHash, out.Hash); err != nil {
			return err
		}
		_, err := tx.Exec(ctx, `UPDATE audit_head SET seq = $1, hash = $2 WHERE id = 1`, int64(out.Seq), out.Hash)
		return err
	})
	if err != nil {
		return store.AuditEntry{}, err
	}
	out.Time = time.Unix(out.Time.Unix(), 0).UTC()
	return out, nil
}

// AuditHead implements [store.AuditLog].
func (s *Store) AuditHead(ctx context.Context) (uint64, []byte, error) {
	if s.closed.Load() {
		return 0, nil, store.ErrClosed
	}
	var (
		seq  int64
		hash []byte
	)
	if err := s.pool.QueryRow(ctx, `SELECT seq, hash FROM audit_head WHERE id = 1`).Scan(&seq, &hash); err != nil {
		return 0, nil, s.translate(ctx, err)
	}
	return uint64(seq), hash, nil
}

func auditLimit(n int) int {
	if n <= 0 || n > store.MaxAuditPage {
		return store.MaxAuditPage
	}
	return n
}

func sinceMinute(t time.Time) int64 {
	if t.IsZero() {
		return -1 << 62
	}
	return t.Unix()
}

// ListAudit implements [store.AuditLog].
func (s *Store) ListAudit(ctx context.Context, q store.AuditQuery) ([]store.AuditEntry, error) {
	if s.closed.Load() {
		return nil, store.ErrClosed
	}
	const cols = `SELECT seq, minute, type, account, device, details, prev_hash, hash FROM audit_log `
	var (
		rows pgx.Rows
		err  error
	)
	if q.Account != nil {
		rows, err = s.pool.Query(ctx, cols+`WHERE account = $1 AND seq > $2 AND minute >= $3 ORDER BY seq LIMIT $4`,
			q.Account, int64(q.After), sinceMinute(q.Since), auditLimit(q.Limit))
	} else {
		rows, err = s.pool.Query(ctx, cols+`WHERE seq > $1 AND minute >= $2 ORDER BY seq LIMIT $3`,
			int64(q.After), sinceMinute(q.Since), auditLimit(q.Limit))
	}
	if err != nil {
		return nil, s.translate(ctx, err)
	}
	defer rows.Close()
	var out []store.AuditEntry
	for rows.Next() {
		var (
			e             store.AuditEntry
			seq, min, dev int64
			details       string
		)
		if err := rows.Scan(&seq, &min, &e.Type, &e.Account, &dev, &details, &e.PrevHash, &e.Hash); err != nil {
			return nil, s.translate(ctx, err)
		}
		e.Seq, e.Time, e.Device, e.Details = uint64(seq), time.Unix(min, 0).UTC(), uint32(dev), []byte(details)
		out = append(out, e)
	}
	return out, s.translate(ctx, rows.Err())
}

// PutAuditCheckpoint implements [store.AuditLog].
func (s *Store) PutAuditCheckpoint(ctx context.Context, c store.AuditCheckpoint) error {
	if s.closed.Load() {
		return store.ErrClosed
	}
	_, err := s.pool.Exec(ctx, `INSERT INTO audit_checkpoints (seq, hash, signature, minute) VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING`,
		int64(c.Seq), c.Hash, c.Signature, c.Time.Unix())
	return s.translate(ctx, err)
}

// AuditCheckpoints implements [store.AuditLog].
func (s *Store) AuditCheckpoints(ctx context.Context, after uint64, limit int) ([]store.AuditCheckpoint, error) {
	if s.closed.Load() {
		return nil, store.ErrClosed
	}
	rows, err := s.pool.Query(ctx, `SELECT seq, hash, signature, minute FROM audit_checkpoints WHERE seq > $1 ORDER BY seq LIMIT $2`, int64(after), auditLimit(limit))
	if err != nil {
		return nil, s.translate(ctx, err)
	}
	defer rows.Close()
	var out []store.AuditCheckpoint
	for rows.Next() {
		var (
			c        store.AuditCheckpoint
			seq, min int64
		)
		if err := rows.Scan(&seq, &c.Hash, &c.Signature, &min); err != nil {
			return nil, s.translate(ctx, err)
		}
		c.Seq, c.Time = uint64(seq), time.Unix(min, 0).UTC()
		out = append(out, c)
	}
	return out, s.translate(ctx, rows.Err())
}
