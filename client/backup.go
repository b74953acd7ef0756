package client

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"filippo.io/age"
	"google.golang.org/protobuf/encoding/protowire"

	"github.com/veil-e2ee/veil/client/devicestore"
	"github.com/veil-e2ee/veil/client/internal/agekey"
	"github.com/veil-e2ee/veil/client/internal/content"
	"github.com/veil-e2ee/veil/client/internal/recoverykey"
	"github.com/veil-e2ee/veil/client/internal/shamir"
	"github.com/veil-e2ee/veil/protocol"
)

// Backups: one file, encrypted with age (filippo.io/age), holding what
// rebuilds this account on a new device — the identity key, the profile
// key, the pinned trust root, the recovery credential, and the history
// (contacts with their identity keys and verification, groups, timers,
// messages, reactions, read markers, contacts' profile keys). Never the
// ratchet sessions or prekeys: restoring old ratchet state is what makes
// other messengers fail with "Bad MAC"; a restored device starts fresh
// sessions, which its contacts see as a session reset. docs/CLIENT.md
// ("Backups and recovery").

const (
	backupMagic   = "VEILBACKUP"
	backupVersion = 1
	// ScryptWorkFactor is log2 of scrypt's N for passphrase backups.
	ScryptWorkFactor = 18
	settingRecovery  = "recovery_key"
)

var (
	// ErrBackupKey: the key, passphrase or identity does not open this
	// backup.
	ErrBackupKey = errors.New("client: this key does not open the backup")
	// ErrBackupCorrupt: the file is not a whole, unmodified Veil backup.
	ErrBackupCorrupt = errors.New("client: the backup is damaged or incomplete")
)

// BackupOptions choose how a backup is encrypted.
type BackupOptions struct {
	// Passphrase, when set, encrypts the backup with scrypt (work factor
	// 2^ScryptWorkFactor) instead of the recovery key. age allows no other
	// recipient beside a passphrase, so Escrow must then be empty.
	Passphrase string
	// RecoveryKey, when set, is the recovery key to encrypt to (as
	// written down); otherwise the one this device keeps is used, or a
	// new one is made (and returned in BackupInfo, to be shown once).
	RecoveryKey string
	// Escrow are age recipients ("age1…") of an organisation that can
	// also open the backup, e.g. with the age tool. Off by default; every
	// one is listed in BackupInfo so the user sees it.
	Escrow []string
	// Upload also keeps the backup on the server (opaque to it, at most
	// 64 MiB, one per account, replacing the previous one), from where
	// FetchBackup gets it back with the username and recovery key.
	Upload bool
}

// BackupInfo describes a backup just written.
type BackupInfo struct {
	Messages int
	Bytes    int64
	// NewRecoveryKey is set when this backup made the account's recovery
	// key: show it to the user once; it is what restores the account.
	NewRecoveryKey string
	Escrow         []string
	CreatedAt      time.Time
	Uploaded       bool // also kept on the server
}

// BackupSecret opens a backup: the recovery key, the passphrase, or an
// escrow age identity ("AGE-SECRET-KEY-1…").
type BackupSecret struct {
	RecoveryKey string
	Passphrase  string
	AgeIdentity string
}

// backupPayload is what a backup holds, before encryption.
type backupPayload struct {
	AccountID, Username, Server string
	IdentityPrivate             []byte
	ProfileKey, TrustRoot       []byte
	RecoveryCredential          []byte
	CreatedAt                   time.Time
	History                     []byte
	Messages                    int
	HistorySum                  []byte
}

// recoveryKey returns this account's recovery key, making (and
// registering) one when there is none; fresh reports that.
func (c *Client) recoveryKey(ctx context.Context, given string) (k recoverykey.Key, fresh bool, err error) {
	if given != "" {
		if k, err = recoverykey.Parse(given); err != nil {
			return k, false, fmt.Errorf("%w: recovery key: %v", ErrInvalidArgument, err)
		}
	} else if b, ok, err := c.store.BlobSetting(ctx, settingRecovery); err != nil {
		return k, false, err
	} else if ok && len(b) == len(k) {
		copy(k[:], b)
		return k, false, nil
	} else if k, err = recoverykey.New(c.rand); err != nil {
		return k, false, err
	} else {
		fresh = true
	}
	// The server must know the credential before the key is relied on.
	cred := k.Derive("recovery-credential")
	if err := c.api.do(ctx, "PUT", "/v1/accounts/me/recovery", map[string]any{"credential": cred[:]}, nil); err != nil {
		return k, false, fmt.Errorf("registering the recovery key with the server: %w", err)
	}
	err = c.store.Update(ctx, func(tx *devicestore.Tx) error { return tx.SetBlobSetting(ctx, settingRecovery, k[:]) })
	return k, fresh, err
}

// CreateBackup writes an encrypted backup of this account to w.
func (c *Client) CreateBackup(ctx context.Context, w io.Writer, opts BackupOptions) (BackupInfo, error) {
	if opts.Passphrase != "" && len(opts.Escrow) > 0 {
		return BackupInfo{}, fmt.Errorf("%w: a passphrase backup cannot also be encrypted to escrow keys; use the recovery key", ErrInvalidArgument)
	}
	var escrow []age.Recipient
	for _, e := range opts.Escrow {
		r, err := age.ParseX25519Recipient(strings.TrimSpace(e))
		if err != nil {
			return BackupInfo{}, fmt.Errorf("%w: escrow key %q is not an age X25519 recipient (age1…)", ErrInvalidArgument, e)
		}
		escrow = append(escrow, r)
	}
	k, fresh, err := c.recoveryKey(ctx, opts.RecoveryKey)
	if err != nil {
		return BackupInfo{}, err
	}
	var recipients []age.Recipient
	if opts.Passphrase != "" {
		r, err := age.NewScryptRecipient(opts.Passphrase)
		if err != nil {
			return BackupInfo{}, fmt.Errorf("%w: %v", ErrInvalidArgument, err)
		}
		r.SetWorkFactor(ScryptWorkFactor)
		recipients = append(recipients, r)
	} else {
		id, err := agekey.Identity(k.Derive("backup"))
		if err != nil {
			return BackupInfo{}, err
		}
		recipients = append(recipients, id.Recipient())
	}
	recipients = append(recipients, escrow...)

	history, n, err := c.exportHistory(ctx)
	if err != nil {
		return BackupInfo{}, err
	}
	pk, err := c.profileKey(ctx)
	if err != nil {
		return BackupInfo{}, err
	}
	root, _, err := c.store.BlobSetting(ctx, settingTrustRoot)
	if err != nil {
		return BackupInfo{}, err
	}
	sum := sha256.Sum256(history)
	cred := k.Derive("recovery-credential")
	p := backupPayload{AccountID: c.self.AccountID, Username: c.self.Username, Server: c.self.Server,
		IdentityPrivate: c.id.Private.Bytes(), ProfileKey: pk, TrustRoot: root, RecoveryCredential: cred[:],
		CreatedAt: c.now(), History: history, Messages: n, HistorySum: sum[:]}
	plain := p.marshal()
	clear(p.IdentityPrivate)

	var copyBuf *bytes.Buffer
	if opts.Upload {
		copyBuf = &bytes.Buffer{}
		w = io.MultiWriter(w, copyBuf)
	}
	cw := &countingWriter{w: w}
	bw := bufio.NewWriterSize(cw, 1<<20)
	aw, err := age.Encrypt(bw, recipients...)
	if err != nil {
		return BackupInfo{}, err
	}
	const chunk = 4 << 20
	for off := 0; off < len(plain); off += chunk {
		if _, err := aw.Write(plain[off:min(off+chunk, len(plain))]); err != nil {
			return BackupInfo{}, err
		}
		c.progress("backup", min(off+chunk, len(plain)), len(plain))
		if err := ctx.Err(); err != nil {
			return BackupInfo{}, err
		}
	}
	clear(plain)
	if err := aw.Close(); err != nil {
		return BackupInfo{}, err
	}
	if err := bw.Flush(); err != nil {
		return BackupInfo{}, err
	}
	if copyBuf != nil {
		if err := c.api.raw(ctx, "PUT", "/v1/accounts/me/backup", copyBuf.Bytes(), nil); err != nil {
			if isCode(err, "backup_too_large") {
				return BackupInfo{}, fmt.Errorf("%w: the backup is written, but it is too large to keep on the server", ErrInvalidArgument)
			}
			return BackupInfo{}, fmt.Errorf("the backup is written, but keeping it on the server failed: %w", err)
		}
	}
	info := BackupInfo{Messages: n, Bytes: cw.n, Escrow: opts.Escrow, CreatedAt: p.CreatedAt, Uploaded: opts.Upload}
	if fresh {
		info.NewRecoveryKey = k.String()
	}
	return info, nil
}

type countingWriter struct {
	w io.Writer
	n int64
}

func (c *countingWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}

// BackupSummary is what VerifyBackup found.
type BackupSummary struct {
	AccountID, Username, Server string
	Messages                    int
	CreatedAt                   time.Time
}

// VerifyBackup proves a backup opens with secret and is complete (every
// part present, the history's checksum and message count right) without
// touching any device.
func VerifyBackup(r io.Reader, secret BackupSecret) (BackupSummary, error) {
	p, err := openBackup(r, secret)
	if err != nil {
		return BackupSummary{}, err
	}
	defer clear(p.IdentityPrivate)
	return BackupSummary{AccountID: p.AccountID, Username: p.Username, Server: p.Server, Messages: p.Messages, CreatedAt: p.CreatedAt}, nil
}

// openBackup decrypts and checks a backup.
func openBackup(r io.Reader, secret BackupSecret) (*backupPayload, error) {
	var ids []age.Identity
	switch {
	case secret.RecoveryKey != "":
		k, err := recoverykey.Parse(secret.RecoveryKey)
		if err != nil {
			return nil, fmt.Errorf("%w: recovery key: %v", ErrInvalidArgument, err)
		}
		id, err := agekey.Identity(k.Derive("backup"))
		if err != nil {
			return nil, err
		}
		ids = append(ids, id)
	case secret.Passphrase != "":
		id, err := age.NewScryptIdentity(secret.Passphrase)
		if err != nil {
			return nil, fmt.Errorf("%w: %v", ErrInvalidArgument, err)
		}
		id.SetMaxWorkFactor(22)
		ids = append(ids, id)
	case secret.AgeIdentity != "":
		id, err := age.ParseX25519Identity(strings.TrimSpace(secret.AgeIdentity))
		if err != nil {
			return nil, fmt.Errorf("%w: escrow identity: %v", ErrInvalidArgument, err)
		}
		ids = append(ids, id)
	default:
		return nil, fmt.Errorf("%w: a recovery key, passphrase or escrow identity is needed", ErrInvalidArgument)
	}
	ar, err := age.Decrypt(bufio.NewReaderSize(r, 1<<20), ids...)
	if err != nil {
		var nm *age.NoIdentityMatchError
		if errors.As(err, &nm) {
			return nil, ErrBackupKey
		}
		return nil, fmt.Errorf("%w: %v", ErrBackupCorrupt, err)
	}
	plain, err := io.ReadAll(ar)
	if err != nil {
		// age authenticates every 64 KiB chunk and the end: a flipped
		// byte or a cut file fails here.
		return nil, fmt.Errorf("%w: %v", ErrBackupCorrupt, err)
	}
	defer clear(plain)
	p, err := parseBackup(plain)
	if err != nil {
		return nil, err
	}
	sum := sha256.Sum256(p.History)
	if subtle.ConstantTimeCompare(sum[:], p.HistorySum) != 1 {
		return nil, fmt.Errorf("%w: the history does not match its checksum", ErrBackupCorrupt)
	}
	a, err := parseHistory(p.History)
	if err != nil || len(a.messages) != p.Messages {
		return nil, fmt.Errorf("%w: the history is not complete", ErrBackupCorrupt)
	}
	return p, nil
}

// RestoreBackup rebuilds a device from a backup in cfg.Dir (a new
// profile): it proves the account is ours to the server with the
// recovery credential inside the backup, which replaces every device of
// the account by this one, then imports the history. Sessions start
// afresh: contacts' next messages reach this device under new sessions,
// and ours to them begin with a session reset. A backup that does not
// open, or a refusal, leaves nothing behind.
func RestoreBackup(ctx context.Context, cfg Config, r io.Reader, secret BackupSecret) (*Client, error) {
	cfg.defaults()
	p, err := openBackup(r, secret)
	if err != nil {
		return nil, err
	}
	defer clear(p.IdentityPrivate)
	if cfg.Server == "" {
		cfg.Server = p.Server
	}
	if cfg.TrustRoot == nil {
		cfg.TrustRoot = p.TrustRoot
	}
	c, err := newDevice(ctx, cfg)
	if err != nil {
		return nil, err
	}
	if err := c.restore(ctx, p, secret); err != nil {
		c.abandon()
		return nil, err
	}
	return c, nil
}

func (c *Client) restore(ctx context.Context, p *backupPayload, secret BackupSecret) error {
	priv, err := protocol.ParsePrivateKey(p.IdentityPrivate)
	if err != nil {
		return fmt.Errorf("%w: identity key", ErrBackupCorrupt)
	}
	reg, up, err := c.newDeviceKeys(ctx, protocol.NewKeyPair(priv))
	if err != nil {
		return err
	}
	body := struct {
		Credential     []byte `json:"credential"`
		RegistrationID uint32 `json:"registration_id"`
		prekeyUpload
	}{p.RecoveryCredential, reg, up}
	var resp registerResponse
	if err := c.api.do(ctx, "POST", "/v1/accounts/"+p.AccountID+"/recover", body, &resp); err != nil {
		if isCode(err, "recovery_denied") {
			return fmt.Errorf("%w: the server does not accept this backup's recovery credential (a newer recovery key replaced it?)", ErrBackupKey)
		}
		return err
	}
	err = c.keepAccount(ctx, resp, p.AccountID, p.Username, func(tx *devicestore.Tx) error {
		if len(p.TrustRoot) > 0 {
			if err := tx.SetBlobSetting(ctx, settingTrustRoot, p.TrustRoot); err != nil {
				return err
			}
		}
		if secret.RecoveryKey != "" {
			if k, err := recoverykey.Parse(secret.RecoveryKey); err == nil {
				return tx.SetBlobSetting(ctx, settingRecovery, k[:])
			}
		}
		return nil
	})
	if err != nil {
		return err
	}
	if err := c.sealedReady(ctx, p.ProfileKey); err != nil {
		return err
	}
	a, err := parseHistory(p.History)
	if err != nil {
		return fmt.Errorf("%w: history", ErrBackupCorrupt)
	}
	if _, err := c.importHistory(ctx, a); err != nil {
		return err
	}
	c.nameSelf(ctx)
	return nil
}

// CombineRecoveryKey rebuilds a recovery key from k of the n trustee
// shares SplitRecoveryKey made.
func CombineRecoveryKey(shares []string) (string, error) {
	return combineShares(shares)
}

func (p *backupPayload) marshal() []byte {
	b := append([]byte(backupMagic), backupVersion)
	b = appendStr(b, 1, p.AccountID)
	b = appendStr(b, 2, p.Username)
	b = appendStr(b, 3, p.Server)
	b = appendBytes(b, 4, p.IdentityPrivate)
	b = appendBytes(b, 5, p.ProfileKey)
	b = appendBytes(b, 6, p.TrustRoot)
	b = appendBytes(b, 7, p.RecoveryCredential)
	b = appendVarint(b, 8, uint64(p.CreatedAt.UnixMilli()))
	b = appendVarint(b, 10, uint64(p.Messages))
	b = appendBytes(b, 11, p.HistorySum)
	b = appendBytes(b, 9, p.History) // last: the bulk
	return b
}

func parseBackup(b []byte) (*backupPayload, error) {
	if len(b) < len(backupMagic)+1 || !bytes.Equal(b[:len(backupMagic)], []byte(backupMagic)) {
		return nil, fmt.Errorf("%w: not a Veil backup", ErrBackupCorrupt)
	}
	if b[len(backupMagic)] != backupVersion {
		return nil, fmt.Errorf("%w: backup format %d is newer than this program", ErrBackupCorrupt, b[len(backupMagic)])
	}
	p := &backupPayload{}
	seen := map[protowire.Number]bool{}
	err := walk(b[len(backupMagic)+1:], func(num protowire.Number, v []byte, x uint64) error {
		if seen[num] {
			return errHistory
		}
		seen[num] = true
		switch num {
		case 1:
			p.AccountID = string(v)
		case 2:
			p.Username = string(v)
		case 3:
			p.Server = string(v)
		case 4:
			p.IdentityPrivate = bytes.Clone(v)
		case 5:
			p.ProfileKey = bytes.Clone(v)
		case 6:
			p.TrustRoot = bytes.Clone(v)
		case 7:
			p.RecoveryCredential = bytes.Clone(v)
		case 8:
			p.CreatedAt = time.UnixMilli(int64(min(x, 1<<62)))
		case 9:
			p.History = bytes.Clone(v)
		case 10:
			p.Messages = int(min(x, 1<<40))
		case 11:
			p.HistorySum = bytes.Clone(v)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrBackupCorrupt, err)
	}
	for _, n := range []protowire.Number{1, 2, 3, 4, 5, 7, 9, 11} {
		if !seen[n] {
			return nil, fmt.Errorf("%w: part %d is missing", ErrBackupCorrupt, n)
		}
	}
	if len(p.IdentityPrivate) != 32 || len(p.ProfileKey) != content.ProfileKeySize || len(p.RecoveryCredential) != 32 || len(p.HistorySum) != 32 {
		return nil, fmt.Errorf("%w: a key has the wrong length", ErrBackupCorrupt)
	}
	return p, nil
}

// SplitRecoveryKey splits this account's recovery key into n shares for
// trustees, any k of which rebuild it (CombineRecoveryKey) and fewer of
// which say nothing about it (Shamir's scheme). This is key escrow: show
// the user that it happened and to whom the shares went.
func (c *Client) SplitRecoveryKey(ctx context.Context, k, n int) ([]string, error) {
	key, _, err := c.recoveryKey(ctx, "")
	if err != nil {
		return nil, err
	}
	shares, err := shamir.Split(key[:], k, n, c.rand)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrInvalidArgument, err)
	}
	out := make([]string, len(shares))
	for i, s := range shares {
		out[i] = s.Encode()
	}
	return out, nil
}

func combineShares(texts []string) (string, error) {
	var shares []shamir.Share
	for i, t := range texts {
		s, err := shamir.ParseShare(t)
		if err != nil {
			return "", fmt.Errorf("%w: share %d: %v", ErrInvalidArgument, i+1, err)
		}
		shares = append(shares, s)
	}
	secret, err := shamir.Combine(shares)
	if err != nil {
		return "", fmt.Errorf("%w: %v", ErrInvalidArgument, err)
	}
	defer clear(secret)
	var k recoverykey.Key
	if len(secret) != len(k) {
		return "", fmt.Errorf("%w: the shares do not hold a recovery key", ErrInvalidArgument)
	}
	copy(k[:], secret)
	return k.String(), nil
}

// FetchBackup gets the backup an account keeps on the server, for someone
// who has lost every device: the username and the recovery key are all it
// takes (the server checks the credential derived from the key, limits
// guesses, and never sees inside the backup). hc may be nil.
func FetchBackup(ctx context.Context, server, username, recoveryKey string, hc *http.Client) ([]byte, error) {
	k, err := recoverykey.Parse(recoveryKey)
	if err != nil {
		return nil, fmt.Errorf("%w: recovery key: %v", ErrInvalidArgument, err)
	}
	a, err := newAPI(server, hc)
	if err != nil {
		return nil, err
	}
	cred := k.Derive("recovery-credential")
	var resp struct {
		Backup []byte `json:"backup"`
	}
	err = a.do(ctx, "POST", "/v1/recovery/backup", map[string]any{"username": username, "credential": cred[:]}, &resp)
	switch {
	case isCode(err, "recovery_denied"):
		return nil, fmt.Errorf("%w: the server has no account %q with this recovery key", ErrBackupKey, username)
	case isCode(err, "backup_not_found"):
		return nil, fmt.Errorf("%w: %s keeps no backup on the server", ErrNoSuchUser, username)
	case err != nil:
		return nil, err
	}
	return resp.Backup, nil
}
