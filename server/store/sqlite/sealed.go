package sqlite

import (
	"context"
	"encoding/hex"
	"encoding/json"

	"github.com/veil-e2ee/veil/server/store"
)

var _ store.SealedAccess = (*Store)(nil)

// SetAccess implements [store.SealedAccess].
func (s *Store) SetAccess(ctx context.Context, account store.AccountID, a store.Access) error {
	err := s.write1(ctx, func(ctx context.Context, tx *wtx) error {
		res, err := tx.ExecContext(ctx, `UPDATE accounts SET access_key_hash = ?, unrestricted_access = ? WHERE id = ?`, a.KeyHash, a.Unrestricted, account[:])
		return mustAffect(res, err)
	})
	return s.translate(ctx, err)
}

// AccessOf implements [store.SealedAccess]. The ids travel as one JSON
// array of hex strings, so one prepared statement serves any number.
func (s *Store) AccessOf(ctx context.Context, accounts []store.AccountID) (map[store.AccountID]store.Access, error) {
	r, err := s.reader()
	if err != nil {
		return nil, err
	}
	ids := make([]string, len(accounts))
	for i, a := range accounts {
		ids[i] = hex.EncodeToString(a[:])
	}
	list, err := json.Marshal(ids)
	if err != nil {
		return nil, err
	}
	rows, err := r.query(ctx, `SELECT id, access_key_hash, unrestricted_access FROM accounts WHERE id IN (SELECT unhex(value) FROM json_each(?))`, string(list))
	if err != nil {
		return nil, s.translate(ctx, err)
	}
	defer rows.Close()
	out := make(map[store.AccountID]store.Access, len(accounts))
	for rows.Next() {
		var (
			id []byte
			a  store.Access
		)
		if err := rows.Scan(&id, &a.KeyHash, &a.Unrestricted); err != nil {
			return nil, s.translate(ctx, err)
		}
		var acc store.AccountID
		copy(acc[:], id)
		out[acc] = a
	}
	return out, s.translate(ctx, rows.Err())
}
