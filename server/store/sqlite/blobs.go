package sqlite

import (
	"context"
	"time"

	"github.com/veil-e2ee/veil/server/store"
)

var _ store.Blobs = (*Store)(nil)

// PutBlob implements [store.Blobs].
func (s *Store) PutBlob(ctx context.Context, idHash []byte, account store.AccountID, data []byte, expires time.Time) error {
	exists := false
	err := s.write1(ctx, func(ctx context.Context, tx *wtx) error {
		res, err := tx.ExecContext(ctx, `INSERT INTO blobs (id_hash, account_id, data, expires) VALUES (?, ?, ?, ?) ON CONFLICT DO NOTHING`,
			idHash, account[:], data, expires.Unix())
		if err != nil {
			return err
		}
		n, err := res.RowsAffected()
		exists = n == 0
		return err
	})
	if err == nil && exists {
		return store.ErrExists
	}
	return s.translate(ctx, err)
}

// TakeBlob implements [store.Blobs].
func (s *Store) TakeBlob(ctx context.Context, idHash []byte, account store.AccountID, now time.Time) ([]byte, error) {
	var data []byte
	err := s.write1(ctx, func(ctx context.Context, tx *wtx) error {
		return tx.QueryRowContext(ctx, `DELETE FROM blobs WHERE id_hash = ? AND account_id = ? AND expires > ? RETURNING data`,
			idHash, account[:], now.Unix()).Scan(&data)
	})
	return data, s.translate(ctx, err)
}

// SweepBlobs implements [store.Blobs].
func (s *Store) SweepBlobs(ctx context.Context, now time.Time) error {
	err := s.write1(ctx, func(ctx context.Context, tx *wtx) error {
		_, err := tx.ExecContext(ctx, `DELETE FROM blobs WHERE expires <= ?`, now.Unix())
		return err
	})
	return s.translate(ctx, err)
}
