package postgres

import (
	"context"
	"time"

	"github.com/veil-e2ee/veil/server/store"
)

var _ store.Blobs = (*Store)(nil)

// PutBlob implements [store.Blobs].
func (s *Store) PutBlob(ctx context.Context, idHash []byte, account store.AccountID, data []byte, expires time.Time) error {
	if s.closed.Load() {
		return store.ErrClosed
	}
	tag, err := s.pool.Exec(ctx, `INSERT INTO blobs (id_hash, account_id, data, expires) VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING`,
		idHash, uid(account), data, expires.Unix())
	if err == nil && tag.RowsAffected() == 0 {
		return store.ErrExists
	}
	return s.translate(ctx, err)
}

// TakeBlob implements [store.Blobs].
func (s *Store) TakeBlob(ctx context.Context, idHash []byte, account store.AccountID, now time.Time) ([]byte, error) {
	if s.closed.Load() {
		return nil, store.ErrClosed
	}
	var data []byte
	err := s.pool.QueryRow(ctx, `DELETE FROM blobs WHERE id_hash = $1 AND account_id = $2 AND expires > $3 RETURNING data`,
		idHash, uid(account), now.Unix()).Scan(&data)
	return data, s.translate(ctx, err)
}

// SweepBlobs implements [store.Blobs].
func (s *Store) SweepBlobs(ctx context.Context, now time.Time) error {
	if s.closed.Load() {
		return store.ErrClosed
	}
	_, err := s.pool.Exec(ctx, `DELETE FROM blobs WHERE expires <= $1`, now.Unix())
	return s.translate(ctx, err)
}
