package sqlite

import (
	"context"
	"database/sql"
	"fmt"
	"time"

	"github.com/veil-e2ee/veil/server/store"
)

var _ store.AuditLog = (*Store)(nil)

// AppendAudit implements [store.AuditLog]. The single writer serialises
// appends; the head row moves in the same transaction.
func (s *Store) AppendAudit(ctx context.Context, e store.AuditEntry, seal func(e *store.AuditEntry) error) (store.AuditEntry, error) {
	out := e
	err := s.write(ctx, func(ctx context.Context, tx *wtx) error {
		out = e
		var seq int64
		if err := tx.QueryRowContext(ctx, `SELECT seq, hash FROM audit_head WHERE id = 1`).Scan(&seq, &out.PrevHash); err != nil {
			return err
		}
		out.Seq = uint64(seq) + 1
		out.Hash = nil
		if err := seal(&out); err != nil {
			return fmt.Errorf("%w: %v", store.ErrInvalid, err)
		}
		if _, err := tx.ExecContext(ctx, `INSERT INTO audit_log (seq, minute, type, account, device, details, prev_hash, hash) VALUES (?, ?, ?, ?, ?, ?, ?, ?)`,
			int64(out.Seq), out.Time.Unix(), out.Type, nullBytes(out.Account), int64(out.Device), string(out.Details), out.PrevHash, out.Hash); err != nil {
			return err
		}
		_, err := tx.ExecContext(ctx, `UPDATE audit_head SET seq = ?, hash = ? WHERE id = 1`, int64(out.Seq), out.Hash)
		return err
	})
	if err != nil {
		return store.AuditEntry{}, s.translate(ctx, err)
	}
	out.Time = time.Unix(out.Time.Unix(), 0).UTC()
	return out, nil
}

func nullBytes(b []byte) any {
	if b == nil {
		return nil
	}
	return b
}

// AuditHead implements [store.AuditLog].
func (s *Store) AuditHead(ctx context.Context) (uint64, []byte, error) {
	r, err := s.reader()
	if err != nil {
		return 0, nil, err
	}
	var (
		seq  int64
		hash []byte
	)
	if err := r.queryRow(ctx, `SELECT seq, hash FROM audit_head WHERE id = 1`).Scan(&seq, &hash); err != nil {
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

// sinceMinute is the lower time bound of an AuditQuery.
func sinceMinute(t time.Time) int64 {
	if t.IsZero() {
		return -1 << 62
	}
	return t.Unix()
}

// ListAudit implements [store.AuditLog].
func (s *Store) ListAudit(ctx context.Context, q store.AuditQuery) ([]store.AuditEntry, error) {
	r, err := s.reader()
	if err != nil {
		return nil, err
	}
	const cols = `SELECT seq, minute, type, account, device, details, prev_hash, hash FROM audit_log `
	var rows *sql.Rows
	if q.Account != nil {
		rows, err = r.query(ctx, cols+`WHERE account = ? AND seq > ? AND minute >= ? ORDER BY seq LIMIT ?`,
			q.Account, int64(q.After), sinceMinute(q.Since), auditLimit(q.Limit))
	} else {
		rows, err = r.query(ctx, cols+`WHERE seq > ? AND minute >= ? ORDER BY seq LIMIT ?`,
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
	err := s.write1(ctx, func(ctx context.Context, tx *wtx) error {
		_, err := tx.ExecContext(ctx, `INSERT INTO audit_checkpoints (seq, hash, signature, minute) VALUES (?, ?, ?, ?) ON CONFLICT DO NOTHING`,
			int64(c.Seq), c.Hash, c.Signature, c.Time.Unix())
		return err
	})
	return s.translate(ctx, err)
}

// AuditCheckpoints implements [store.AuditLog].
func (s *Store) AuditCheckpoints(ctx context.Context, after uint64, limit int) ([]store.AuditCheckpoint, error) {
	r, err := s.reader()
	if err != nil {
		return nil, err
	}
	rows, err := r.query(ctx, `SELECT seq, hash, signature, minute FROM audit_checkpoints WHERE seq > ? ORDER BY seq LIMIT ?`, int64(after), auditLimit(limit))
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
