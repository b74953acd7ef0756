package main

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/veil-e2ee/veil/server"
	"github.com/veil-e2ee/veil/server/store"
	"github.com/veil-e2ee/veil/server/store/postgres"
	"github.com/veil-e2ee/veil/server/store/sqlite"
	"github.com/veil-e2ee/veil/server/wake"
)

// rateFlag parses "BURST/INTERVAL" (e.g. "6/100s"); "off" disables.
type rateFlag struct{ r *server.Rate }

func (f rateFlag) String() string {
	if f.r == nil {
		return ""
	}
	if f.r.Burst < 0 {
		return "off"
	}
	return fmt.Sprintf("%d/%s", f.r.Burst, f.r.Interval)
}

func (f rateFlag) Set(s string) error {
	if s == "off" {
		*f.r = server.Unlimited
		return nil
	}
	b, i, ok := strings.Cut(s, "/")
	n, err1 := strconv.Atoi(b)
	d, err2 := time.ParseDuration(i)
	if !ok || err1 != nil || err2 != nil || n < 1 || d <= 0 {
		return errors.New("want BURST/INTERVAL, e.g. 6/100s, or off")
	}
	*f.r = server.Rate{Burst: n, Interval: d}
	return nil
}

type serverFlags struct {
	listen, data, db, tlsCert, tlsKey, nats, secretFile string
	logLevel, logFormat, clientIPHeader                 string
	shutdownTimeout                                     time.Duration
	limits                                              server.Limits
	senderCertTTL                                       time.Duration
	certKeyID                                           uint
	legalHold, admins                                   string
	holdApprovals                                       int
}

func newServerFlags() (*flag.FlagSet, *serverFlags) {
	fs := flag.NewFlagSet("veil server", flag.ContinueOnError)
	f := &serverFlags{limits: server.DefaultLimits}
	fs.StringVar(&f.listen, "listen", "127.0.0.1:7450", "address to listen on")
	fs.StringVar(&f.data, "data", "./veil-data", "data directory (SQLite database, server secret)")
	fs.StringVar(&f.db, "db", "", "database: empty for SQLite in the data directory, a file path for SQLite elsewhere, or postgres://… for PostgreSQL")
	fs.StringVar(&f.tlsCert, "tls-cert", "", "TLS certificate file (PEM); serve HTTPS when set with --tls-key")
	fs.StringVar(&f.tlsKey, "tls-key", "", "TLS private key file (PEM)")
	fs.StringVar(&f.nats, "nats", "", "NATS URL (nats://…) for cross-node wake-ups; default: PostgreSQL LISTEN/NOTIFY with --db postgres://, in-process otherwise")
	fs.StringVar(&f.secretFile, "secret-file", "", "file with the server secret (≥32 bytes, identical on every node); default <data>/server.secret, created if missing")
	fs.StringVar(&f.logLevel, "log-level", "info", "log level: debug, info, warn, error")
	fs.StringVar(&f.logFormat, "log-format", "json", "log format: json or text")
	fs.StringVar(&f.clientIPHeader, "client-ip-header", "", "header carrying the client address behind a trusted proxy (e.g. X-Forwarded-For)")
	fs.DurationVar(&f.shutdownTimeout, "shutdown-timeout", 30*time.Second, "how long a graceful shutdown may take")
	l := &f.limits
	fs.IntVar(&l.MaxQueue, "max-queue", l.MaxQueue, "most undelivered envelopes per device; a send beyond it gets 429 recipient_queue_full")
	fs.DurationVar(&l.EnvelopeTTL, "envelope-ttl", l.EnvelopeTTL, "how long undelivered envelopes are kept")
	fs.DurationVar(&l.DedupWindow, "dedup-window", l.DedupWindow, "how long message ids are remembered (≥ envelope-ttl)")
	fs.DurationVar(&l.SweepInterval, "sweep-interval", l.SweepInterval, "how often expired envelopes are deleted")
	fs.IntVar(&l.MaxInFlight, "max-inflight", l.MaxInFlight, "unacknowledged envelopes per WebSocket")
	fs.DurationVar(&l.PingInterval, "ping-interval", l.PingInterval, "WebSocket keepalive period")
	fs.IntVar(&l.MaxDevices, "max-devices", l.MaxDevices, "devices per account")
	fs.DurationVar(&l.DeviceExpiry, "device-expiry", l.DeviceExpiry, "remove a linked device unseen for this long (negative: never)")
	fs.DurationVar(&l.BlobTTL, "blob-ttl", l.BlobTTL, "how long a history archive waits for its new device")
	fs.DurationVar(&l.AuditRetention, "audit-retention", l.AuditRetention, "how long audit entries are kept (pruned up to a signed checkpoint; negative: forever)")
	fs.DurationVar(&l.InactiveAccounts, "inactive-accounts", 0, "erase accounts none of whose devices was seen for this long (0: keep them)")
	fs.Var(rateFlag{&l.PreKeyFetch}, "rate-prekeys", "prekey bundle fetches per requester and target account (BURST/INTERVAL or off)")
	fs.Var(rateFlag{&l.Send}, "rate-send", "sends per device")
	fs.Var(rateFlag{&l.Register}, "rate-register", "registrations per client address")
	fs.Var(rateFlag{&l.Lookup}, "rate-lookup", "username lookups per account")
	fs.Var(rateFlag{&l.Link}, "rate-link", "device links per account")
	fs.Var(rateFlag{&l.SealedSend}, "rate-sealed", "sealed (senderless) sends per client address and recipient")
	fs.Var(rateFlag{&l.SealedMulti}, "rate-sealed-multi", "sealed sender v2 (group) sends per client address")
	fs.Var(rateFlag{&l.Recover}, "rate-recover", "account-recovery attempts per account and per client address")
	fs.DurationVar(&f.senderCertTTL, "sender-cert-ttl", server.DefaultSenderCertTTL, "validity of issued sealed-sender certificates")
	fs.UintVar(&f.certKeyID, "cert-key-id", 1, "id of the key that signs sender certificates (change it to rotate the key)")
	fs.StringVar(&f.legalHold, "legal-hold", "off", "disclosed legal holds: off, on (approved holds can be activated), or never (disabled for good: recorded in the database, cannot be undone)")
	fs.StringVar(&f.admins, "admins", "", "the administrators whose approvals count for legal holds (lines \"NAME ED25519-PUBLIC-KEY-HEX\"); default <data>/admins")
	fs.IntVar(&f.holdApprovals, "legal-hold-approvals", server.DefaultHoldApprovals, "distinct administrators who must approve a legal hold (at least 2)")
	return fs, f
}

func runServer(ctx context.Context, args []string, _, stderr io.Writer) error {
	fs, f := newServerFlags()
	fs.SetOutput(stderr)
	if err := parseFlags(fs, args, os.Getenv); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		fmt.Fprintln(stderr, "veil server:", err)
		return errUsage
	}
	log, err := newLogger(stderr, f.logLevel, f.logFormat)
	if err != nil {
		return err
	}
	if (f.tlsCert == "") != (f.tlsKey == "") {
		return errors.New("--tls-cert and --tls-key go together")
	}
	if err := os.MkdirAll(f.data, 0o700); err != nil {
		return fmt.Errorf("data directory: %w", err)
	}
	secretPath := f.secretFile
	if secretPath == "" {
		secretPath = filepath.Join(f.data, "server.secret")
	}
	secret, err := loadSecret(secretPath, f.secretFile == "")
	if err != nil {
		return err
	}
	st, waker, err := openBackends(ctx, f, log)
	if err != nil {
		return err
	}
	defer st.Close()
	if f.certKeyID == 0 || f.certKeyID > 1<<32-1 {
		return errors.New("--cert-key-id must be between 1 and 4294967295")
	}
	cfg := server.Config{Store: st, Waker: waker, Secret: secret, Logger: log, Limits: f.limits, ClientIPHeader: f.clientIPHeader,
		SenderCertTTL: f.senderCertTTL, CertKeyID: uint32(f.certKeyID),
		LegalHold: server.LegalHoldConfig{Mode: server.HoldMode(f.legalHold), Approvals: f.holdApprovals}}
	if cfg.LegalHold.Mode == server.HoldsOn {
		if cfg.LegalHold.Admins, err = loadAdmins(f.admins, f.data); err != nil {
			waker.Close()
			return err
		}
	}
	if f.tlsCert != "" {
		cert, err := tls.LoadX509KeyPair(f.tlsCert, f.tlsKey)
		if err != nil {
			return fmt.Errorf("TLS: %w", err)
		}
		cfg.TLS = &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
	}
	srv, err := server.New(cfg)
	if err != nil {
		waker.Close()
		return err
	}
	l, err := net.Listen("tcp", f.listen)
	if err != nil {
		waker.Close()
		return err
	}
	log.Info("veil: sealed-sender trust root (clients pin it)", "trust_root", base64.StdEncoding.EncodeToString(srv.TrustRoot()))
	log.Info("veil: audit checkpoint key (veil admin audit verify --key)", "audit_key", hex.EncodeToString(srv.AuditKey()))
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(l) }()
	select {
	case err := <-errc:
		_ = srv.Shutdown(context.Background())
		return err
	case <-ctx.Done():
	}
	log.Info("veil: shutting down")
	sctx, cancel := context.WithTimeout(context.Background(), f.shutdownTimeout)
	defer cancel()
	return srv.Shutdown(sctx)
}

func newLogger(w io.Writer, level, format string) (*slog.Logger, error) {
	var lv slog.Level
	if err := lv.UnmarshalText([]byte(level)); err != nil {
		return nil, fmt.Errorf("--log-level: %w", err)
	}
	opts := &slog.HandlerOptions{Level: lv}
	switch format {
	case "json":
		return slog.New(slog.NewJSONHandler(w, opts)), nil
	case "text":
		return slog.New(slog.NewTextHandler(w, opts)), nil
	}
	return nil, fmt.Errorf("--log-format must be json or text")
}

// loadSecret reads the server secret, creating it (32 random bytes, mode
// 0600) when create is set and the file does not exist.
func loadSecret(path string, create bool) ([]byte, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) && create {
		b = make([]byte, 32)
		if _, err := rand.Read(b); err != nil {
			return nil, err
		}
		if err := os.WriteFile(path, b, 0o600); err != nil {
			return nil, fmt.Errorf("server secret: %w", err)
		}
		return b, nil
	}
	if err != nil {
		return nil, fmt.Errorf("server secret: %w", err)
	}
	if len(b) < 32 {
		return nil, fmt.Errorf("server secret %s: need at least 32 bytes", path)
	}
	return b, nil
}

func openBackends(ctx context.Context, f *serverFlags, log *slog.Logger) (store.Store, wake.Waker, error) {
	octx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	var st store.Store
	pg := strings.HasPrefix(f.db, "postgres://") || strings.HasPrefix(f.db, "postgresql://")
	if pg {
		s, err := postgres.Open(octx, f.db)
		if err != nil {
			return nil, nil, err
		}
		st = s
	} else {
		path := f.db
		if path == "" {
			path = filepath.Join(f.data, "veil.db")
		}
		s, err := sqlite.Open(octx, path)
		if err != nil {
			return nil, nil, err
		}
		st = s
	}
	var w wake.Waker
	var err error
	switch {
	case f.nats != "":
		w, err = wake.NewNATS(f.nats, log)
	case pg:
		w, err = wake.NewPostgres(octx, f.db, log)
	default:
		w = wake.NewLocal()
	}
	if err != nil {
		st.Close()
		return nil, nil, err
	}
	return st, w, nil
}
