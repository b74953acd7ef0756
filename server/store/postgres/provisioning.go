package postgres

import (
	"context"
	"time"

	"github.com/veil-e2ee/veil/server/store"
)

var _ store.Provisioner = (*Store)(nil)

// CreateLinkToken implements [store.Provisioner].
func (s *Store) CreateLinkToken(ctx context.Context, tokenHash []byte, account store.AccountID, expires time.Time) error {
	if s.closed.Load() {
		return store.ErrClosed
	}
	_, err := s.pool.Exec(ctx, `INSERT INTO link_tokens (token_hash, account_id, expires) VALUES ($1, $2, $3)`, tokenHash, uid(account), expires.Unix())
	return s.translate(ctx, err)
}

// UseLinkToken implements [store.Provisioner].
func (s *Store) UseLinkToken(ctx context.Context, tokenHash []byte, now time.Time) (store.AccountID, error) {
	if s.closed.Load() {
		return store.AccountID{}, store.ErrClosed
	}
	var acct [16]byte
	err := s.pool.QueryRow(ctx, `DELETE FROM link_tokens WHERE token_hash = $1 AND expires > $2 RETURNING account_id`, tokenHash, now.Unix()).Scan(&acct)
	return store.AccountID(acct), s.translate(ctx, err)
}

// PutProvisioning implements [store.Provisioner].
func (s *Store) PutProvisioning(ctx context.Context, idHash, message []byte, expires time.Time) error {
	if s.closed.Load() {
		return store.ErrClosed
	}
	tag, err := s.pool.Exec(ctx, `INSERT INTO provisioning (id_hash, message, expires) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING`, idHash, message, expires.Unix())
	if err == nil && tag.RowsAffected() == 0 {
		return store.ErrExists
	}
	return s.translate(ctx, err)
}

// TakeProvisioning implements [store.Provisioner].
func (s *Store) TakeProvisioning(ctx context.Context, idHash []byte, now time.Time) ([]byte, error) {
	if s.closed.Load() {
		return nil, store.ErrClosed
	}
	var msg []byte
	err := s.pool.QueryRow(ctx, `DELETE FROM provisioning WHERE id_hash = $1 AND expires > $2 RETURNING message`, idHash, now.Unix()).Scan(&msg)
	return msg, s.translate(ctx, err)
}

// SweepProvisioning implements [store.Provisioner].
func (s *Store) SweepProvisioning(ctx context.Context, now time.Time) error {
	if s.closed.Load() {
		return store.ErrClosed
	}
	if _, err := s.pool.Exec(ctx, `DELETE FROM link_tokens WHERE expires <= $1`, now.Unix()); err != nil {
		return s.translate(ctx, err)
	}
	_, err := s.pool.Exec(ctx, `DELETE FROM provisioning WHERE expires <= $1`, now.Unix())
	return s.translate(ctx, err)
}
