package client

import (
	"context"
	"time"

	"github.com/veil-e2ee/veil/client/devicestore"
	"github.com/veil-e2ee/veil/protocol"
)

// Key maintenance, as Signal does it.
const (
	// PreKeyBatch one-time prekeys of each kind are generated at a time.
	PreKeyBatch = 100
	// PreKeyRefillBelow: when the server has fewer one-time prekeys of a
	// kind than this, a batch is uploaded.
	PreKeyRefillBelow = 10
	// KeyRotation is the age at which the signed prekey and the
	// last-resort KEM prekey are replaced.
	KeyRotation = 48 * time.Hour
	// KeyGrace is how long a replaced signed or last-resort prekey is
	// kept, so PreKey messages made from an older bundle still decrypt.
	// It matches the server's queue lifetime (30 days).
	KeyGrace = 30 * 24 * time.Hour
	// maxKeyID: key ids stay below 2^24, like Signal's, and wrap.
	maxKeyID = 1<<24 - 1
)

// Settings names (devicestore settings table).
const (
	setNextPreKeyID = "next_prekey_id"
	setNextKyberID  = "next_kyber_prekey_id"
	setNextSignedID = "next_signed_prekey_id"
)

type keyPlan struct{ signed, lastResort, oneTime, oneTimeKEM bool }

func (p keyPlan) any() bool { return p.signed || p.lastResort || p.oneTime || p.oneTimeKEM }

// nextIDs reserves n consecutive key ids from the counter name, wrapping
// below 2^24 and never using 0.
func nextIDs(ctx context.Context, tx *devicestore.Tx, name string, n int) ([]uint32, error) {
	v, ok, err := tx.Setting(ctx, name)
	if err != nil {
		return nil, err
	}
	if !ok || v < 1 || v > maxKeyID {
		v = 1
	}
	ids := make([]uint32, n)
	for i := range ids {
		ids[i] = uint32(v)
		if v++; v > maxKeyID {
			v = 1
		}
	}
	return ids, tx.SetSetting(ctx, name, v)
}

// newKeys generates the keys plan asks for, stores their private halves
// in tx and returns the public upload.
func (c *Client) newKeys(ctx context.Context, tx *devicestore.Tx, plan keyPlan) (prekeyUpload, error) {
	var up prekeyUpload
	now := c.now()
	if plan.signed {
		ids, err := nextIDs(ctx, tx, setNextSignedID, 1)
		if err != nil {
			return up, err
		}
		k, err := protocol.GenerateSignedPreKey(c.rand, c.id, ids[0], now)
		if err != nil {
			return up, err
		}
		if err := tx.StoreSignedPreKey(ctx, k); err != nil {
			return up, err
		}
		up.SignedPreKey = &keyJSON{k.ID, k.KeyPair.Public.Bytes(), k.Signature}
	}
	kyberCount := 0
	if plan.lastResort {
		kyberCount++
	}
	if plan.oneTimeKEM {
		kyberCount += PreKeyBatch
	}
	kyberIDs, err := nextIDs(ctx, tx, setNextKyberID, kyberCount)
	if err != nil {
		return up, err
	}
	for i, kid := range kyberIDs {
		lastResort := plan.lastResort && i == 0
		k, err := protocol.GenerateKyberPreKey(c.rand, c.id, kid, lastResort, now)
		if err != nil {
			return up, err
		}
		if err := tx.StoreKyberPreKey(ctx, k); err != nil {
			return up, err
		}
		j := keyJSON{k.ID, k.KeyPair.Public.Bytes(), k.Signature}
		if lastResort {
			up.LastResortKEM = &j
		} else {
			up.OneTimeKEMPreKeys = append(up.OneTimeKEMPreKeys, j)
		}
	}
	if plan.oneTime {
		ids, err := nextIDs(ctx, tx, setNextPreKeyID, PreKeyBatch)
		if err != nil {
			return up, err
		}
		for _, pid := range ids {
			kp, err := protocol.GenerateKeyPair(c.rand)
			if err != nil {
				return up, err
			}
			k := protocol.PreKeyRecord{ID: pid, KeyPair: kp}
			if err := tx.StorePreKey(ctx, k); err != nil {
				return up, err
			}
			up.OneTimePreKeys = append(up.OneTimePreKeys, keyJSON{KeyID: pid, PublicKey: kp.Public.Bytes()})
		}
	}
	return up, nil
}

// KeyReport says what MaintainKeys did.
type KeyReport struct {
	ServerPreKeys, ServerKEMPreKeys  int  // one-time keys left on the server before any refill
	RefilledPreKeys, RefilledKEM     int  // one-time keys uploaded
	RotatedSigned, RotatedLastResort bool // a new signed / last-resort key was uploaded
	Deleted                          int  // replaced keys deleted after their grace period
}

// MaintainKeys keeps this device reachable: it uploads a batch of
// one-time prekeys of a kind when the server has fewer than
// PreKeyRefillBelow, replaces the signed prekey and the last-resort KEM
// prekey when they are older than KeyRotation, and deletes replaced ones
// KeyGrace after their successor appeared. Receive runs it when the
// queue is drained and then every hour; call it yourself if you do not
// receive.
func (c *Client) MaintainKeys(ctx context.Context) (KeyReport, error) {
	c.keysMu.Lock()
	defer c.keysMu.Unlock()
	var rep KeyReport
	if c.isClosed() {
		return rep, ErrClosed
	}
	var counts prekeyCounts
	if err := c.api.do(ctx, "GET", "/v1/prekeys", nil, &counts); err != nil {
		return rep, err
	}
	rep.ServerPreKeys, rep.ServerKEMPreKeys = counts.OneTime, counts.OneTimeKEM
	now := c.now()
	spks, err := c.store.SignedPreKeyInfos(ctx)
	if err != nil {
		return rep, err
	}
	lrs, err := c.store.LastResortKyberInfos(ctx)
	if err != nil {
		return rep, err
	}
	plan := keyPlan{
		oneTime:    counts.OneTime < PreKeyRefillBelow,
		oneTimeKEM: counts.OneTimeKEM < PreKeyRefillBelow,
		signed:     len(spks) == 0 || !now.Before(spks[0].CreatedAt.Add(KeyRotation)),
		lastResort: len(lrs) == 0 || !now.Before(lrs[0].CreatedAt.Add(KeyRotation)),
	}
	if plan.any() {
		var up prekeyUpload
		err := c.store.Update(ctx, func(tx *devicestore.Tx) (err error) {
			up, err = c.newKeys(ctx, tx, plan)
			return err
		})
		if err != nil {
			return rep, err
		}
		// If this upload fails, the new private keys stay unpublished and
		// the next run makes others; nothing depends on them yet.
		if err := c.api.do(ctx, "PUT", "/v1/prekeys", up, nil); err != nil {
			return rep, err
		}
		rep.RefilledPreKeys, rep.RefilledKEM = len(up.OneTimePreKeys), len(up.OneTimeKEMPreKeys)
		rep.RotatedSigned, rep.RotatedLastResort = plan.signed, plan.lastResort
		c.log.Info("prekeys uploaded", "one_time", rep.RefilledPreKeys, "one_time_kem", rep.RefilledKEM,
			"signed", plan.signed, "last_resort", plan.lastResort)
	}
	// Delete replaced keys whose successor is older than the grace period
	// (lists are newest first; the newest is never deleted).
	err = c.store.Update(ctx, func(tx *devicestore.Tx) error {
		for _, l := range []struct {
			keys   []devicestore.KeyInfo
			remove func(context.Context, uint32) error
		}{{spks, tx.RemoveSignedPreKey}, {lrs, tx.RemoveKyberPreKey}} {
			for i := 1; i < len(l.keys); i++ {
				if now.Sub(l.keys[i-1].CreatedAt) >= KeyGrace {
					if err := l.remove(ctx, l.keys[i].ID); err != nil {
						return err
					}
					rep.Deleted++
				}
			}
		}
		if _, err := tx.PruneSendLog(ctx, now.Add(-sendLogLifetime)); err != nil {
			return err
		}
		return tx.PruneReceived(ctx, now.Add(-receivedLifetime))
	})
	return rep, err
}
