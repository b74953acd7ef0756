// Package client is Veil's client SDK: one Client per device, holding its
// keys, sessions, contacts, conversations and messages in an encrypted
// device store (client/devicestore), talking to a veil server over HTTP
// and a WebSocket.
//
// The life of a device:
//
//	c, err := client.Register(ctx, client.Config{Dir: dir, Unlock: client.Passphrase(p), Server: url}, "alice")
//	msg, err := c.Send(ctx, "bob", "hi")           // queued in the outbox, then sent
//	for ev, err := range c.Receive(ctx, client.ReceiveOptions{}) { … } // decrypted events
//	convs, err := c.Conversations(ctx)
//	sn, err := c.SafetyNumber(ctx, "bob")
//	err = c.Verify(ctx, "bob", digitsReadOutByBob)
//
// Guarantees. A received envelope is decrypted and the new ratchet state
// and the message are committed in one local transaction before it is
// acknowledged to the server, so a crash at any point loses nothing and
// shows nothing twice (redeliveries are recognised). Sends go through a
// persistent outbox and are retried, under the same transport id, until
// the server commits them. Sessions are set up on demand from prekey
// bundles; every send is encrypted to every device of the recipient and,
// as a sync transcript, to this account's other devices. A message that
// cannot be decrypted makes the receiver reset the session with that
// device and ask the sender to send it again, so a broken session heals
// without anyone doing anything. A contact whose identity key changes is
// still received from, but nothing is encrypted to them until the user
// accepts the new key (IdentityChangedError).
//
// A Client is safe for concurrent use. One process at a time should run
// Receive for a profile: a second receiver takes the stream over
// (ErrReplaced for the first).
package client

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"sync"
	"sync/atomic"
	"time"

	"github.com/veil-e2ee/veil/client/devicestore"
	"github.com/veil-e2ee/veil/client/internal/groups"
	"github.com/veil-e2ee/veil/protocol"
)

// Config says where a device keeps its store and how to reach the server.
type Config struct {
	// Dir is the profile directory holding the encrypted device store.
	Dir string
	// Unlock opens the store: Passphrase or KeyFile.
	Unlock Unlock
	// Server is the server's URL, e.g. http://127.0.0.1:7450. Register
	// needs it and stores it; Open uses the stored one when it is empty.
	Server string
	// HTTPClient carries the API calls (default: 30 s timeout).
	HTTPClient *http.Client
	// Logger gets operational events without content or identifiers
	// (default: discarded).
	Logger *slog.Logger
	// Now is the clock (default time.Now); tests move it to see keys
	// rotate.
	Now func() time.Time
	// Rand is the randomness source (default crypto/rand).
	Rand io.Reader
	// StoreOptions are passed to the device store (e.g. KDF costs).
	StoreOptions []devicestore.Option
	// DeviceName, when set, names this device (encrypted; shown in the
	// account's device lists) when Register or Link creates it.
	DeviceName string
	// Progress, when set, hears about long operations (history export,
	// upload, download and import when linking a device).
	Progress func(Progress)
	// TrustRoot, when set, is the server's sealed-sender trust root (33
	// bytes, as `veil server` prints it) that Register and Link must find;
	// otherwise the device pins the one the server shows at registration.
	TrustRoot []byte
	// SealedFromAnyone lets anyone, not only contacts who have this
	// account's profile key, send it sealed messages (set at Register;
	// later with SetSealedFromAnyone).
	SealedFromAnyone bool
	// GroupLimit bounds the members of a group (default 1,000). Every
	// device of every member must use the same limit.
	GroupLimit int
	// RevokedCertKeys are server key ids whose sender certificates this
	// device rejects (beyond libsignal's built-in list).
	RevokedCertKeys []uint32
}

// Unlock opens a device store.
type Unlock = devicestore.Unlock

// Passphrase unlocks a store with a passphrase (stretched with Argon2id).
func Passphrase(p string) Unlock { return devicestore.Passphrase(p) }

// KeyFile unlocks a store with the 32 bytes of a key file.
func KeyFile(b []byte) Unlock { return devicestore.KeyFile(b) }

// Client is one device of an account.
type Client struct {
	cfg   Config
	store *devicestore.Store
	api   *api
	self  Self
	id    protocol.IdentityKeyPair
	now   func() time.Time
	rand  io.Reader
	log   *slog.Logger

	flushMu sync.Mutex // one outbox flush at a time

	failMu   sync.Mutex
	failures map[string]int // undecryptable messages by cause, not yet reported
	keysMu   sync.Mutex     // one key maintenance at a time

	// compliance: this is the compliance device of a legal hold
	// (RegisterCompliance): it receives and never sends.
	compliance    bool
	lastHoldCheck atomic.Int64 // UnixNano of the last RefreshHolds (0: never)

	mu         sync.Mutex
	closed     bool
	aloneUntil time.Time // no other device of the account, as of lately (see aloneFor)
}

// Self is this device's account.
type Self struct {
	AccountID string
	DeviceID  uint32
	Username  string
	Server    string
}

var usernameRE = regexp.MustCompile(`^[a-z][a-z0-9_]{2,31}$`)

// ValidUsername reports whether s is a username the server accepts:
// 3–32 characters, lowercase a–z, digits and underscore, starting with a
// letter.
func ValidUsername(s string) bool { return usernameRE.MatchString(s) }

func (cfg *Config) defaults() {
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Rand == nil {
		cfg.Rand = rand.Reader
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.GroupLimit <= 0 {
		cfg.GroupLimit = groups.DefaultLimit
	}
}

func (cfg Config) storeOptions() []devicestore.Option {
	return append([]devicestore.Option{devicestore.WithClock(cfg.Now), devicestore.WithRand(cfg.Rand)}, cfg.StoreOptions...)
}

// Register creates a device store in cfg.Dir, generates this device's
// identity and prekeys, and registers a new account named username with
// it as the first device. Only public keys leave the device. If the
// server refuses (e.g. ErrUsernameTaken), the new store is removed again
// so the profile can be reused.
func Register(ctx context.Context, cfg Config, username string) (*Client, error) {
	cfg.defaults()
	if !ValidUsername(username) {
		return nil, fmt.Errorf("%w: username %q: use 3–32 lowercase letters, digits or _, starting with a letter", ErrInvalidArgument, username)
	}
	c, err := newDevice(ctx, cfg)
	if err != nil {
		return nil, err
	}
	if err := c.register(ctx, username); err != nil {
		c.abandon()
		return nil, err
	}
	c.nameSelf(ctx)
	return c, nil
}

// newDevice creates the store of a device that has no account yet
// (Register and Link).
func newDevice(ctx context.Context, cfg Config) (*Client, error) {
	a, err := newAPI(cfg.Server, cfg.HTTPClient)
	if err != nil {
		return nil, err
	}
	store, err := devicestore.Create(ctx, cfg.Dir, cfg.Unlock, cfg.storeOptions()...)
	if errors.Is(err, devicestore.ErrExists) {
		return nil, fmt.Errorf("%w (profile %s)", ErrAlreadyRegistered, cfg.Dir)
	}
	if err != nil {
		return nil, err
	}
	return &Client{cfg: cfg, store: store, api: a, now: cfg.Now, rand: cfg.Rand, log: cfg.Logger}, nil
}

// abandon closes and deletes the store of a device whose Register or
// Link failed, so the profile can be used again.
func (c *Client) abandon() {
	c.store.Close()
	removeStore(c.cfg.Dir)
}

// removeStore deletes the files of a store that Register created and
// could not finish.
func removeStore(dir string) {
	for _, f := range []string{"device.hdr", "device.db", "device.db-wal", "device.db-shm"} {
		os.Remove(filepath.Join(dir, f))
	}
	os.Remove(dir) // only if empty
}

func (c *Client) register(ctx context.Context, username string) error {
	id, err := protocol.GenerateIdentityKeyPair(c.rand)
	if err != nil {
		return err
	}
	reg, err := protocol.GenerateRegistrationID(c.rand)
	if err != nil {
		return err
	}
	c.id = id
	if c.cfg.TrustRoot != nil {
		// A server other than the one configured: stop before it holds an
		// account.
		if _, err := c.fetchTrustRoot(ctx); err != nil {
			return err
		}
	}
	var up prekeyUpload
	// The private halves are committed before the public ones are
	// published.
	err = c.store.Update(ctx, func(tx *devicestore.Tx) error {
		if err := tx.SetLocalIdentity(ctx, id, reg); err != nil {
			return err
		}
		up, err = c.newKeys(ctx, tx, keyPlan{signed: true, lastResort: true, oneTime: true, oneTimeKEM: true})
		return err
	})
	if err != nil {
		return err
	}
	req := registerRequest{Username: username, IdentityKey: id.Public.Bytes(), RegistrationID: reg, prekeyUpload: up}
	var resp registerResponse
	if err := c.api.do(ctx, "POST", "/v1/accounts", req, &resp); err != nil {
		if isCode(err, "username_taken") {
			return fmt.Errorf("%w: %s", ErrUsernameTaken, username)
		}
		return err
	}
	// A new account: whatever id the server gave it (keepAccount refuses an
	// empty one).
	if err := c.keepAccount(ctx, resp, resp.AccountID, username, nil); err != nil {
		return err
	}
	return c.sealedReady(ctx, nil)
}

// sealedReady sets up sealed sender after Register or Link. A trust root
// other than the configured one is an error; a network failure only
// postpones it (Open and Receive try again).
func (c *Client) sealedReady(ctx context.Context, pk []byte) error {
	err := c.setUpSealed(ctx, pk)
	if errors.Is(err, ErrProtocol) {
		return err
	}
	if err != nil {
		c.log.Warn("sealed sender not set up yet", "reason", errorCode(err))
	}
	return nil
}

// nameSelf sets this device's name from the Config, best effort (a
// device without a name works; it can be named later).
func (c *Client) nameSelf(ctx context.Context) {
	if c.cfg.DeviceName == "" {
		return
	}
	if err := c.SetDeviceName(ctx, 0, c.cfg.DeviceName); err != nil {
		c.log.Warn("could not name this device", "reason", errorCode(err))
	}
}

func (c *Client) setAccount(a devicestore.Account) {
	c.self = Self{AccountID: a.AccountID, DeviceID: a.DeviceID, Username: a.Username, Server: a.ServerURL}
	c.api.user = fmt.Sprintf("%s.%d", a.AccountID, a.DeviceID)
	c.api.cred = base64.StdEncoding.EncodeToString(a.Credential)
}

// Open opens the profile in cfg.Dir. A profile without an account is
// ErrNotRegistered; a wrong passphrase is devicestore.ErrWrongPassphrase.
func Open(ctx context.Context, cfg Config) (*Client, error) {
	cfg.defaults()
	store, err := devicestore.Open(ctx, cfg.Dir, cfg.Unlock, cfg.storeOptions()...)
	if errors.Is(err, devicestore.ErrNotFound) {
		return nil, fmt.Errorf("%w (no profile in %s)", ErrNotRegistered, cfg.Dir)
	}
	if err != nil {
		return nil, err
	}
	c, err := open(ctx, cfg, store)
	if err != nil {
		store.Close()
		return nil, err
	}
	return c, nil
}

func open(ctx context.Context, cfg Config, store *devicestore.Store) (*Client, error) {
	acct, err := store.Account(ctx)
	if errors.Is(err, devicestore.ErrNotFound) {
		return nil, fmt.Errorf("%w (profile %s)", ErrNotRegistered, cfg.Dir)
	}
	if err != nil {
		return nil, err
	}
	server := cfg.Server
	if server == "" {
		server = acct.ServerURL
	}
	a, err := newAPI(server, cfg.HTTPClient)
	if err != nil {
		return nil, err
	}
	id, err := store.IdentityKeyPair(ctx)
	if err != nil {
		return nil, err
	}
	c := &Client{cfg: cfg, store: store, api: a, id: id, now: cfg.Now, rand: cfg.Rand, log: cfg.Logger}
	c.setAccount(acct)
	c.self.Server = a.base.String()
	if v, _, err := store.Setting(ctx, settingCompliance); err != nil {
		return nil, err
	} else {
		c.compliance = v == 1
	}
	if root, _, err := store.BlobSetting(ctx, settingTrustRoot); err == nil && root == nil {
		// A profile from before sealed sender, or whose setup was cut short.
		if err := c.sealedReady(ctx, nil); err != nil {
			return nil, err
		}
	}
	return c, nil
}

// Self returns this device's account.
func (c *Client) Self() Self { return c.self }

// Close closes the device store. Receive loops end.
func (c *Client) Close() error {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return nil
	}
	c.closed = true
	c.mu.Unlock()
	// Wait for a running flush or key upload to finish with the store.
	c.flushMu.Lock()
	c.keysMu.Lock()
	defer c.flushMu.Unlock()
	defer c.keysMu.Unlock()
	return c.store.Close()
}

func (c *Client) isClosed() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.closed
}

// update runs fn in one device-store transaction with a Cipher whose
// stores are that transaction: ratchet state and whatever fn writes
// commit together or not at all.
func (c *Client) update(ctx context.Context, fn func(tx *devicestore.Tx, cipher *protocol.Cipher) error) error {
	return c.store.Update(ctx, func(tx *devicestore.Tx) error {
		return fn(tx, protocol.NewCipher(protocol.StoresOf(tx), c.rand, c.now))
	})
}

func (c *Client) newID() ([]byte, error) {
	b := make([]byte, 16)
	_, err := io.ReadFull(c.rand, b)
	return b, err
}
