package postgres

import (
	"context"

	"github.com/veil-e2ee/veil/server/store"
)

var _ store.SealedAccess = (*Store)(nil)

// SetAccess implements [store.SealedAccess].
func (s *Store) SetAccess(ctx context.Context, account store.AccountID, a store.Access) error {
	if s.closed.Load() {
		return store.ErrClosed
	}
	tag, err := s.pool.Exec(ctx, `UPDATE accounts SET access_key_hash = $1, unrestricted_access = $2 WHERE id = $3`, a.KeyHash, a.Unrestricted, uid(account))
	if err == nil && tag.RowsAffected() == 0 {
		err = store.ErrNotFound
	}
	return s.translate(ctx, err)
}

// AccessOf implements [store.SealedAccess].
func (s *Store) AccessOf(ctx context.Context, accounts []store.AccountID) (map[store.AccountID]store.Access, error) {
	if s.closed.Load() {
		return nil, store.ErrClosed
	}
	ids := make([][16]byte, len(accounts))
	for i, a := range accounts {
		ids[i] = uid(a)
	}
	rows, err := s.pool.Query(ctx, `SELECT id, access_key_hash, unrestricted_access FROM accounts WHERE id = ANY($1::uuid[])`, ids)
	if err != nil {
		return nil, s.translate(ctx, err)
	}
	defer rows.Close()
	out := make(map[store.AccountID]store.Access, len(accounts))
	for rows.Next() {
		var (
			id [16]byte
			a  store.Access
		)
		if err := rows.Scan(&id, &a.KeyHash, &a.Unrestricted); err != nil {
			return nil, s.translate(ctx, err)
		}
		out[store.AccountID(id)] = a
	}
	return out, s.translate(ctx, rows.Err())
}
