package sqlite

import (
	"context"
	"errors"
	"time"

	"github.com/veil-e2ee/veil/server/store"
)

var _ store.Provisioner = (*Store)(nil)

// CreateLinkToken implements [store.Provisioner].
func (s *Store) CreateLinkToken(ctx context.Context, tokenHash []byte, account store.AccountID, expires time.Time) error {
	err := s.write1(ctx, func(ctx context.Context, tx *wtx) error {
		_, err := tx.ExecContext(ctx, `INSERT INTO link_tokens (token_hash, account_id, expires) VALUES (?, ?, ?)`, tokenHash, account[:], expires.Unix())
		return err
	})
	return s.translate(ctx, err)
}

// UseLinkToken implements [store.Provisioner].
func (s *Store) UseLinkToken(ctx context.Context, tokenHash []byte, now time.Time) (store.AccountID, error) {
	var acct store.AccountID
	err := s.write1(ctx, func(ctx context.Context, tx *wtx) error {
		var b []byte
		err := tx.QueryRowContext(ctx, `DELETE FROM link_tokens WHERE token_hash = ? AND expires > ? RETURNING account_id`, tokenHash, now.Unix()).Scan(&b)
		if err != nil {
			return err
		}
		if len(b) != len(acct) {
			return errors.New("bad account id in link_tokens")
		}
		copy(acct[:], b)
		return nil
	})
	return acct, s.translate(ctx, err)
}

// PutProvisioning implements [store.Provisioner].
func (s *Store) PutProvisioning(ctx context.Context, idHash, message []byte, expires time.Time) error {
	exists := false // the writer wraps errors, so the outcome comes back by flag
	err := s.write1(ctx, func(ctx context.Context, tx *wtx) error {
		res, err := tx.ExecContext(ctx, `INSERT INTO provisioning (id_hash, message, expires) VALUES (?, ?, ?) ON CONFLICT DO NOTHING`, idHash, message, expires.Unix())
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

// TakeProvisioning implements [store.Provisioner].
func (s *Store) TakeProvisioning(ctx context.Context, idHash []byte, now time.Time) ([]byte, error) {
	var msg []byte
	err := s.write1(ctx, func(ctx context.Context, tx *wtx) error {
		return tx.QueryRowContext(ctx, `DELETE FROM provisioning WHERE id_hash = ? AND expires > ? RETURNING message`, idHash, now.Unix()).Scan(&msg)
	})
	return msg, s.translate(ctx, err)
}

// SweepProvisioning implements [store.Provisioner].
func (s *Store) SweepProvisioning(ctx context.Context, now time.Time) error {
	err := s.write(ctx, func(ctx context.Context, tx *wtx) error {
		if _, err := tx.ExecContext(ctx, `DELETE FROM link_tokens WHERE expires <= ?`, now.Unix()); err != nil {
			return err
		}
		_, err := tx.ExecContext(ctx, `DELETE FROM provisioning WHERE expires <= ?`, now.Unix())
		return err
	})
	return s.translate(ctx, err)
}
