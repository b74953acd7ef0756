package client

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/veil-e2ee/veil/client/devicestore"
	"github.com/veil-e2ee/veil/client/internal/content"
	"github.com/veil-e2ee/veil/client/internal/converge"
	"github.com/veil-e2ee/veil/protocol"
)

// Verification state syncs between a user's devices: marking a contact
// verified or not, or accepting their new key, on one device sends a
// Trust operation (hybrid-clock stamped) to the account's other devices,
// which apply it when they hold the same key, the latest decision
// winning.

// syncTrust tells this account's other devices what the user decided.
func (c *Client) syncTrust(ctx context.Context, account string, key protocol.PublicKey, trust devicestore.Trust) error {
	var id []byte
	err := c.store.Update(ctx, func(tx *devicestore.Tx) error {
		st, err := c.stamp(ctx, tx)
		if err != nil {
			return err
		}
		if err := tx.SetSetting(ctx, trustKey(account), packStamp(st)); err != nil {
			return err
		}
		payload, err := content.Marshal(content.Content{Trust: &content.Trust{Account: account, Key: key.Bytes(), Trust: uint32(trust),
			Time: st.Time, Counter: st.Counter}})
		if err != nil {
			return err
		}
		if id, err = c.newID(); err != nil {
			return err
		}
		_, err = tx.Enqueue(ctx, devicestore.OutboxItem{MessageID: id, Recipient: c.self.AccountID, Payload: payload})
		return err
	})
	if err != nil {
		return err
	}
	if err := c.flush(ctx, [][]byte{id}); err != nil && !errors.Is(err, ErrUnreachable) {
		return err
	}
	return nil
}

func trustKey(account string) string { return "trust:" + account }

// packStamp orders decisions: time, then counter (16 bits suffice here).
func packStamp(s converge.Stamp) int64 { return s.Time<<16 | int64(s.Counter&0xffff) }

// applyReceivedTrust applies a decision synced from another of our
// devices, if it is newer than the last one and about the key we hold.
func (c *Client) applyReceivedTrust(ctx context.Context, tx *devicestore.Tx, from protocol.Address, t *content.Trust) error {
	st := converge.Stamp{Time: t.Time, Counter: t.Counter, Origin: origin(from.Name, from.DeviceID)}
	if err := c.observe(ctx, tx, st); err != nil {
		return err
	}
	last, _, err := tx.Setting(ctx, trustKey(t.Account))
	if err != nil || packStamp(st) <= last {
		return err
	}
	key, err := protocol.ParsePublicKey(t.Key)
	if err != nil {
		return nil // not a key: ignore
	}
	rec, err := tx.IdentityRecord(ctx, t.Account)
	if errors.Is(err, devicestore.ErrNotFound) {
		// First we hear of them: take the key as the other device knew it.
		if err := tx.ImportIdentity(ctx, t.Account, key, devicestore.Trust(t.Trust), c.now()); err != nil {
			return err
		}
		return tx.SetSetting(ctx, trustKey(t.Account), packStamp(st))
	}
	if err != nil {
		return err
	}
	if !rec.Key.Equal(key) {
		return nil // about another key: this device decides for itself
	}
	switch devicestore.Trust(t.Trust) {
	case devicestore.Verified:
		err = tx.SetVerified(ctx, t.Account, key, true)
	case devicestore.Trusted:
		if rec.Trust == devicestore.Changed {
			err = tx.AcceptIdentity(ctx, t.Account, key)
		} else {
			err = tx.SetVerified(ctx, t.Account, key, false)
		}
	}
	if err != nil {
		return err
	}
	if rec.Trust == devicestore.Changed {
		if err := releaseHeldTx(ctx, tx, t.Account, c.now()); err != nil {
			return err
		}
	}
	return tx.SetSetting(ctx, trustKey(t.Account), packStamp(st))
}

// releaseHeldTx makes the sends held for an account due now.
func releaseHeldTx(ctx context.Context, tx *devicestore.Tx, account string, now time.Time) error {
	items, err := tx.Outbox(ctx, time.UnixMilli(1<<62), 1000)
	if err != nil {
		return err
	}
	for _, it := range items {
		if it.Recipient == account {
			if err := tx.RecordAttempt(ctx, it.MessageID, now, it.LastError); err != nil {
				return fmt.Errorf("releasing held sends: %w", err)
			}
		}
	}
	return nil
}
