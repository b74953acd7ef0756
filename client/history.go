package client

import (
	"bytes"
	"context"
	"crypto/aes"
	"crypto/cipher"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"google.golang.org/protobuf/encoding/protowire"

	"github.com/veil-e2ee/veil/client/devicestore"
	"github.com/veil-e2ee/veil/client/internal/content"
	"github.com/veil-e2ee/veil/client/internal/converge"
	"github.com/veil-e2ee/veil/client/internal/groups"
	"github.com/veil-e2ee/veil/protocol"
)

// History transfer: when a device approves a link, it writes the
// account's history — contacts with their identity keys and trust,
// messages with their merged state, reactions, read markers; never
// session records or prekeys — into an archive, encrypts it with a fresh
// key (AES-256-GCM), leaves it on the server as a blob (deleted on
// download or after 24 h) and puts the blob's id and key in the sealed
// provisioning message. The new device downloads, decrypts and imports
// it in one transaction, so it shows the same conversations.
//
// Archive (before encryption): "VEILHIST" ‖ version 1 ‖ protobuf fields
//
//	1 Identity { string name = 1; bytes key = 2; uint32 trust = 3; int64 first_seen = 4; }
//	2 Message  { string peer = 1; string sender = 2; uint32 sender_device = 3; bool outgoing = 4;
//	             bytes id = 5; bytes body = 6; int64 sent_at = 7; int64 received_at = 8; uint32 status = 9;
//	             bool edited = 10; bool deleted = 11; int64 time = 12; uint32 counter = 13; string origin = 14;
//	             int64 expires_at = 15; /* disappearing: when it goes (expired ones are not exported) */ }
//	3 Reaction { string sender = 1; bytes id = 2; string reactor = 3; string emoji = 4; int64 time = 5; uint32 counter = 6; string origin = 7; }
//	4 Read     { string peer = 1; int64 time = 2; uint32 counter = 3; string origin = 4; }
//	5 Contact  { string account = 1; string username = 2; }
//	6 Timer    { string peer = 1; uint32 seconds = 2; int64 time = 3; uint32 counter = 4; string origin = 5; }
//	7 GroupOp  { bytes group = 1; bytes op = 2; }      // every group's operation log
//	8 ProfileKey { string account = 1; bytes key = 2; } // contacts' profile keys (sealed sender)
//
// Encrypted blob: nonce 12 ‖ AES-256-GCM(key, nonce, archive, "veil history v1" ‖ blob id).

// Progress reports a long operation: Stage is "export", "upload",
// "download" or "import"; Done of Total items (bytes for transfers).
type Progress struct {
	Stage       string
	Done, Total int
}

const (
	historyMagic = "VEILHIST"
	historyAAD   = "veil history v1"
	// historyBatch: progress is reported every this many messages.
	historyBatch = 1000
)

var errHistory = errors.New("client: history archive is damaged")

func (c *Client) progress(stage string, done, total int) {
	if c.cfg.Progress != nil {
		c.cfg.Progress(Progress{Stage: stage, Done: done, Total: total})
	}
}

// exportHistory writes the archive.
func (c *Client) exportHistory(ctx context.Context) ([]byte, int, error) {
	total, err := c.store.CountMessages(ctx)
	if err != nil {
		return nil, 0, err
	}
	b := append([]byte(historyMagic), 1)
	ids, err := c.store.HistoryIdentities(ctx)
	if err != nil {
		return nil, 0, err
	}
	for _, r := range ids {
		var f []byte
		f = appendStr(f, 1, r.Name)
		f = appendBytes(f, 2, r.Key.Bytes())
		f = appendVarint(f, 3, uint64(r.Trust))
		f = appendVarint(f, 4, uint64(r.FirstSeen.UnixMilli()))
		b = appendBytes(b, 1, f)
	}
	cts, err := c.store.Contacts(ctx)
	if err != nil {
		return nil, 0, err
	}
	for _, ct := range cts {
		var f []byte
		f = appendStr(f, 1, ct.AccountID)
		f = appendStr(f, 2, ct.Username)
		b = appendBytes(b, 5, f)
	}
	n := 0
	err = c.store.EachHistoryMessage(ctx, func(h devicestore.HistoryMessage) error {
		var f []byte
		f = appendStr(f, 1, h.Peer)
		f = appendStr(f, 2, h.Sender)
		f = appendVarint(f, 3, uint64(h.SenderDevice))
		f = appendVarint(f, 4, b2u(h.Outgoing))
		f = appendBytes(f, 5, h.MessageID)
		f = appendBytes(f, 6, h.Body)
		f = appendVarint(f, 7, uint64(h.SentAt.UnixMilli()))
		f = appendVarint(f, 8, uint64(h.ReceivedAt.UnixMilli()))
		f = appendVarint(f, 9, uint64(h.Status))
		f = appendVarint(f, 10, b2u(h.Edited))
		f = appendVarint(f, 11, b2u(h.Deleted))
		f = appendVarint(f, 12, uint64(h.BodyStamp.Time))
		f = appendVarint(f, 13, uint64(h.BodyStamp.Counter))
		f = appendStr(f, 14, h.BodyStamp.Origin)
		if !h.ExpiresAt.IsZero() {
			f = appendVarint(f, 15, uint64(h.ExpiresAt.UnixMilli()))
		}
		b = appendBytes(b, 2, f)
		if n++; n%historyBatch == 0 {
			c.progress("export", n, total)
		}
		return ctx.Err()
	})
	if err != nil {
		return nil, 0, err
	}
	rs, err := c.store.HistoryReactions(ctx)
	if err != nil {
		return nil, 0, err
	}
	for _, r := range rs {
		var f []byte
		f = appendStr(f, 1, r.Sender)
		f = appendBytes(f, 2, r.MessageID)
		f = appendStr(f, 3, r.Reactor)
		f = appendStr(f, 4, r.Reaction.Emoji)
		f = appendVarint(f, 5, uint64(r.Reaction.Stamp.Time))
		f = appendVarint(f, 6, uint64(r.Reaction.Stamp.Counter))
		f = appendStr(f, 7, r.Reaction.Stamp.Origin)
		b = appendBytes(b, 3, f)
	}
	marks, err := c.store.HistoryReadMarkers(ctx)
	if err != nil {
		return nil, 0, err
	}
	for peer, s := range marks {
		var f []byte
		f = appendStr(f, 1, peer)
		f = appendVarint(f, 2, uint64(s.Time))
		f = appendVarint(f, 3, uint64(s.Counter))
		f = appendStr(f, 4, s.Origin)
		b = appendBytes(b, 4, f)
	}
	timers, err := c.store.HistoryTimers(ctx)
	if err != nil {
		return nil, 0, err
	}
	for peer, tm := range timers {
		var f []byte
		f = appendStr(f, 1, peer)
		f = appendVarint(f, 2, uint64(tm.Seconds))
		f = appendVarint(f, 3, uint64(tm.Time))
		f = appendVarint(f, 4, uint64(tm.Counter))
		f = appendStr(f, 5, tm.Origin)
		b = appendBytes(b, 6, f)
	}
	gids, err := c.store.GroupIDs(ctx)
	if err != nil {
		return nil, 0, err
	}
	for _, g := range gids {
		ops, err := c.store.GroupOps(ctx, g)
		if err != nil {
			return nil, 0, err
		}
		for _, op := range ops {
			var f []byte
			f = appendBytes(f, 1, g)
			f = appendBytes(f, 2, op)
			b = appendBytes(b, 7, f)
		}
	}
	pks, err := c.store.ProfileKeys(ctx)
	if err != nil {
		return nil, 0, err
	}
	for acct, k := range pks {
		var f []byte
		f = appendStr(f, 1, acct)
		f = appendBytes(f, 2, k)
		b = appendBytes(b, 8, f)
	}
	c.progress("export", n, total)
	return b, n, nil
}

func appendBytes(b []byte, num protowire.Number, v []byte) []byte {
	b = protowire.AppendTag(b, num, protowire.BytesType)
	return protowire.AppendBytes(b, v)
}

func appendStr(b []byte, num protowire.Number, v string) []byte {
	b = protowire.AppendTag(b, num, protowire.BytesType)
	return protowire.AppendString(b, v)
}

func appendVarint(b []byte, num protowire.Number, v uint64) []byte {
	b = protowire.AppendTag(b, num, protowire.VarintType)
	return protowire.AppendVarint(b, v)
}

func b2u(v bool) uint64 {
	if v {
		return 1
	}
	return 0
}

// historyArchive is a decoded archive.
type historyArchive struct {
	timers      map[string]devicestore.Timer
	groupOps    []groupOpRecord
	profileKeys map[string][]byte
	identities  []devicestore.IdentityRecord
	messages    []devicestore.HistoryMessage
	reactions   []devicestore.HistoryReaction
	reads       map[string]converge.Stamp
	contacts    []devicestore.Contact
}

// walk decodes the fields of one protobuf message: varints and bytes
// only; each field's value goes to fn.
func walk(b []byte, fn func(num protowire.Number, v []byte, x uint64) error) error {
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return errHistory
		}
		b = b[n:]
		var (
			v []byte
			x uint64
		)
		switch typ {
		case protowire.VarintType:
			x, n = protowire.ConsumeVarint(b)
		case protowire.BytesType:
			v, n = protowire.ConsumeBytes(b)
		default:
			return errHistory
		}
		if n < 0 {
			return errHistory
		}
		b = b[n:]
		if err := fn(num, v, x); err != nil {
			return err
		}
	}
	return nil
}

// parseHistory decodes an archive. Unknown fields are skipped; bad
// structure is errHistory.
func parseHistory(b []byte) (*historyArchive, error) {
	if len(b) < len(historyMagic)+1 || string(b[:len(historyMagic)]) != historyMagic || b[len(historyMagic)] != 1 {
		return nil, errHistory
	}
	a := &historyArchive{reads: map[string]converge.Stamp{}, timers: map[string]devicestore.Timer{}, profileKeys: map[string][]byte{}}
	err := walk(b[len(historyMagic)+1:], func(num protowire.Number, v []byte, _ uint64) error {
		switch num {
		case 1:
			var r devicestore.IdentityRecord
			var key []byte
			err := walk(v, func(n protowire.Number, v []byte, x uint64) error {
				switch n {
				case 1:
					r.Name = string(v)
				case 2:
					key = v
				case 3:
					r.Trust = devicestore.Trust(min(x, 255))
				case 4:
					r.FirstSeen = time.UnixMilli(int64(x))
				}
				return nil
			})
			if err != nil {
				return err
			}
			k, err := protocol.ParsePublicKey(key)
			if err != nil || r.Name == "" {
				return errHistory
			}
			r.Key = k
			a.identities = append(a.identities, r)
		case 2:
			var h devicestore.HistoryMessage
			err := walk(v, func(n protowire.Number, v []byte, x uint64) error {
				switch n {
				case 1:
					h.Peer = string(v)
				case 2:
					h.Sender = string(v)
				case 3:
					h.SenderDevice = uint32(min(x, 1<<31))
				case 4:
					h.Outgoing = x != 0
				case 5:
					h.MessageID = bytes.Clone(v)
				case 6:
					h.Body = bytes.Clone(v)
				case 7:
					h.SentAt = time.UnixMilli(int64(x))
				case 8:
					h.ReceivedAt = time.UnixMilli(int64(x))
				case 9:
					h.Status = devicestore.Status(min(x, 3))
				case 10:
					h.Edited = x != 0
				case 11:
					h.Deleted = x != 0
				case 12:
					h.BodyStamp.Time = int64(x)
				case 13:
					h.BodyStamp.Counter = uint32(min(x, 1<<32-1))
				case 14:
					h.BodyStamp.Origin = string(v)
				case 15:
					h.ExpiresAt = time.UnixMilli(int64(min(x, 1<<62)))
				}
				return nil
			})
			if err != nil {
				return err
			}
			if h.Peer == "" || h.Sender == "" || len(h.MessageID) == 0 {
				return errHistory
			}
			a.messages = append(a.messages, h)
		case 3:
			var r devicestore.HistoryReaction
			err := walk(v, func(n protowire.Number, v []byte, x uint64) error {
				switch n {
				case 1:
					r.Sender = string(v)
				case 2:
					r.MessageID = bytes.Clone(v)
				case 3:
					r.Reactor = string(v)
				case 4:
					r.Reaction.Emoji = string(v)
				case 5:
					r.Reaction.Stamp.Time = int64(x)
				case 6:
					r.Reaction.Stamp.Counter = uint32(min(x, 1<<32-1))
				case 7:
					r.Reaction.Stamp.Origin = string(v)
				}
				return nil
			})
			if err != nil {
				return err
			}
			if r.Sender == "" || r.Reactor == "" || len(r.MessageID) == 0 {
				return errHistory
			}
			a.reactions = append(a.reactions, r)
		case 4:
			var peer string
			var s converge.Stamp
			err := walk(v, func(n protowire.Number, v []byte, x uint64) error {
				switch n {
				case 1:
					peer = string(v)
				case 2:
					s.Time = int64(x)
				case 3:
					s.Counter = uint32(min(x, 1<<32-1))
				case 4:
					s.Origin = string(v)
				}
				return nil
			})
			if err != nil || peer == "" {
				return errHistory
			}
			a.reads[peer] = s
		case 5:
			var ct devicestore.Contact
			err := walk(v, func(n protowire.Number, v []byte, _ uint64) error {
				switch n {
				case 1:
					ct.AccountID = string(v)
				case 2:
					ct.Username = string(v)
				}
				return nil
			})
			if err != nil || ct.AccountID == "" {
				return errHistory
			}
			ct.DisplayName = ct.Username
			a.contacts = append(a.contacts, ct)
		case 6:
			var (
				peer string
				tm   devicestore.Timer
			)
			err := walk(v, func(n protowire.Number, v []byte, x uint64) error {
				switch n {
				case 1:
					peer = string(v)
				case 2:
					tm.Seconds = uint32(min(x, content.MaxTimer))
				case 3:
					tm.Time = int64(min(x, 1<<62))
				case 4:
					tm.Counter = uint32(min(x, 1<<32-1))
				case 5:
					tm.Origin = string(v)
				}
				return nil
			})
			if err != nil || peer == "" || tm.Origin == "" {
				return errHistory
			}
			a.timers[peer] = tm
		case 7:
			var g groupOpRecord
			err := walk(v, func(n protowire.Number, v []byte, _ uint64) error {
				switch n {
				case 1:
					g.group = bytes.Clone(v)
				case 2:
					g.op = bytes.Clone(v)
				}
				return nil
			})
			if err != nil || len(g.group) != 16 || len(g.op) == 0 {
				return errHistory
			}
			a.groupOps = append(a.groupOps, g)
		case 8:
			var (
				acct string
				k    []byte
			)
			err := walk(v, func(n protowire.Number, v []byte, _ uint64) error {
				switch n {
				case 1:
					acct = string(v)
				case 2:
					k = bytes.Clone(v)
				}
				return nil
			})
			if err != nil || acct == "" || len(k) != content.ProfileKeySize {
				return errHistory
			}
			a.profileKeys[acct] = k
		}
		return nil
	})
	return a, err
}

// groupOpRecord is one group operation in an archive.
type groupOpRecord struct{ group, op []byte }

func historyAEAD(key []byte) (cipher.AEAD, error) {
	blk, err := aes.NewCipher(key)
	if err != nil {
		return nil, err
	}
	return cipher.NewGCM(blk)
}

// sendHistory exports, encrypts and uploads the history; it returns the
// blob id and key.
func (c *Client) sendHistory(ctx context.Context) (id, key []byte, err error) {
	plain, _, err := c.exportHistory(ctx)
	if err != nil {
		return nil, nil, err
	}
	if id, err = c.newID(); err != nil {
		return nil, nil, err
	}
	key = make([]byte, 32)
	nonce := make([]byte, 12)
	if _, err := io.ReadFull(c.rand, key); err != nil {
		return nil, nil, err
	}
	if _, err := io.ReadFull(c.rand, nonce); err != nil {
		return nil, nil, err
	}
	g, err := historyAEAD(key)
	if err != nil {
		return nil, nil, err
	}
	blob := g.Seal(nonce, nonce, plain, append([]byte(historyAAD), id...))
	clear(plain)
	c.progress("upload", 0, len(blob))
	if err := c.api.raw(ctx, "PUT", "/v1/blobs/"+base64.RawURLEncoding.EncodeToString(id), blob, nil); err != nil {
		return nil, nil, err
	}
	c.progress("upload", len(blob), len(blob))
	return id, key, nil
}

// receiveHistory downloads, decrypts and imports a history archive in
// one transaction. It returns how many messages were new.
func (c *Client) receiveHistory(ctx context.Context, id, key []byte) (int, error) {
	c.progress("download", 0, 0)
	var blob []byte
	if err := c.api.raw(ctx, "GET", "/v1/blobs/"+base64.RawURLEncoding.EncodeToString(id), nil, &blob); err != nil {
		return 0, err
	}
	c.progress("download", len(blob), len(blob))
	g, err := historyAEAD(key)
	if err != nil {
		return 0, err
	}
	if len(blob) < 12+g.Overhead() {
		return 0, errHistory
	}
	plain, err := g.Open(nil, blob[:12], blob[12:], append([]byte(historyAAD), id...))
	if err != nil {
		return 0, fmt.Errorf("%w: it does not decrypt", errHistory)
	}
	a, err := parseHistory(plain)
	clear(plain)
	if err != nil {
		return 0, err
	}
	return c.importHistory(ctx, a)
}

func (c *Client) importHistory(ctx context.Context, a *historyArchive) (int, error) {
	total, added := len(a.messages), 0
	err := c.store.Update(ctx, func(tx *devicestore.Tx) error {
		for _, r := range a.identities {
			if err := tx.ImportIdentity(ctx, r.Name, r.Key, r.Trust, r.FirstSeen); err != nil {
				return err
			}
		}
		contacts := map[string]bool{}
		for _, ct := range a.contacts {
			if _, err := tx.Contact(ctx, ct.AccountID); errors.Is(err, devicestore.ErrNotFound) {
				if err := tx.PutContact(ctx, ct); err != nil {
					return err
				}
			} else if err != nil {
				return err
			}
			contacts[ct.AccountID] = true
		}
		for i, h := range a.messages {
			if !contacts[h.Peer] && !strings.HasPrefix(h.Peer, groupPrefix) {
				contacts[h.Peer] = true
				if err := c.importContact(ctx, tx, h.Peer); err != nil {
					return err
				}
			}
			ok, err := tx.ImportMessage(ctx, h)
			if err != nil {
				return err
			}
			if ok {
				added++
			}
			if (i+1)%historyBatch == 0 {
				c.progress("import", i+1, total)
			}
		}
		if err := tx.FinishImport(ctx); err != nil {
			return err
		}
		for _, r := range a.reactions {
			if err := tx.ImportReaction(ctx, r); err != nil {
				return err
			}
		}
		for peer, s := range a.reads {
			if _, err := tx.AdvanceReadMarker(ctx, peer, s); err != nil {
				return err
			}
		}
		for peer, tm := range a.timers {
			t := content.Timer{Conversation: peer, Seconds: tm.Seconds, Time: tm.Time, Counter: tm.Counter}
			if _, err := c.setTimer(ctx, tx, peer, t, tm.Origin); err != nil {
				return err
			}
		}
		for _, g := range a.groupOps {
			if _, err := groups.UnmarshalOp(g.op); err != nil {
				continue // not an operation this version understands
			}
			if _, err := tx.AddGroupOp(ctx, g.group, g.op); err != nil {
				return err
			}
		}
		for acct, k := range a.profileKeys {
			if err := tx.SetProfileKey(ctx, acct, k); err != nil {
				return err
			}
		}
		// Messages whose time ran out while the archive travelled go now.
		_, err := tx.Expire(ctx, c.now())
		return err
	})
	if err != nil {
		return 0, err
	}
	c.progress("import", total, total)
	return added, nil
}

// importContact makes sure a conversation's peer is a contact even if the
// archive did not name them (their username comes with their next
// message).
func (c *Client) importContact(ctx context.Context, tx *devicestore.Tx, account string) error {
	if _, err := tx.Contact(ctx, account); err == nil || !errors.Is(err, devicestore.ErrNotFound) {
		return err
	}
	return tx.PutContact(ctx, devicestore.Contact{AccountID: account})
}
