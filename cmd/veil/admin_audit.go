package main

import (
	"context"
	"crypto/ed25519"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/veil-e2ee/veil/server/audit"
	"github.com/veil-e2ee/veil/server/dr"
	"github.com/veil-e2ee/veil/server/store"
	"github.com/veil-e2ee/veil/server/store/postgres"
	"github.com/veil-e2ee/veil/server/store/sqlite"
)

// `veil admin audit verify|export`: the server's audit log (server/audit).
// Both record themselves in the log when the server secret is at hand.

var errAuditFailed = errors.New("audit log failed verification")

func runAdminAudit(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	usage := func() {
		fmt.Fprintln(stderr, "usage: veil admin audit verify|export [flags]\n\n"+
			"  verify   check the hash chain and the signed checkpoints (of the database, or of an export with --file)\n"+
			"  export   write the log as JSON lines (entries and checkpoints)")
	}
	if len(args) == 0 {
		usage()
		return errUsage
	}
	switch args[0] {
	case "verify":
		return runAuditVerify(ctx, args[1:], stdout, stderr)
	case "export":
		return runAuditExport(ctx, args[1:], stdout, stderr)
	case "help", "-h", "--help":
		usage()
		return nil
	}
	fmt.Fprintf(stderr, "veil admin audit: unknown command %q\n", args[0])
	usage()
	return errUsage
}

// auditFlags adds the key flags to an admin command.
type auditFlags struct {
	*adminFlags
	secretFile, key string
}

func newAuditFlags(name string, stderr io.Writer) (*flag.FlagSet, *auditFlags) {
	fs, af := newAdminFlags(name, stderr)
	f := &auditFlags{adminFlags: af}
	fs.StringVar(&f.secretFile, "secret-file", "", "file with the server secret, as 'veil server' takes it (default <data>/server.secret); derives the audit keys")
	fs.StringVar(&f.key, "key", "", "the audit public key (hex) to verify checkpoints against, instead of deriving it from the secret")
	return fs, f
}

// keys loads the audit keys from the secret file; with --key and no
// secret file it returns only the public key (nothing is recorded then).
func (f *auditFlags) keys() (*audit.Keys, ed25519.PublicKey, error) {
	path := f.secretFile
	if path == "" {
		path = filepath.Join(f.data, "server.secret")
	}
	var pub ed25519.PublicKey
	if f.key != "" {
		b, err := hex.DecodeString(f.key)
		if err != nil || len(b) != ed25519.PublicKeySize {
			return nil, nil, fmt.Errorf("--key must be %d bytes in hex", ed25519.PublicKeySize)
		}
		pub = b
	}
	secret, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) && pub != nil && f.secretFile == "" {
		return nil, pub, nil
	}
	if err != nil {
		return nil, nil, fmt.Errorf("server secret (needed for the audit key; or give --key): %w", err)
	}
	k, err := audit.DeriveKeys(secret)
	if err != nil {
		return nil, nil, fmt.Errorf("server secret %s: %w", path, err)
	}
	if pub == nil {
		pub = k.Public
	}
	return k, pub, nil
}

// auditStore opens the server database (never creating one).
func (f *auditFlags) auditStore(ctx context.Context) (store.AuditLog, func(), error) {
	db := f.database()
	if dr.IsPostgres(db) {
		s, err := postgres.Open(ctx, db)
		if err != nil {
			return nil, nil, err
		}
		return s, func() { s.Close() }, nil
	}
	if _, err := os.Stat(db); err != nil {
		return nil, nil, fmt.Errorf("no database at %s: %w", db, err)
	}
	s, err := sqlite.Open(ctx, db)
	if err != nil {
		return nil, nil, err
	}
	return s, func() { s.Close() }, nil
}

// recordAdmin appends an admin event, about acct when it is not nil;
// failing to is an error (the action happened but is not in the log: the
// operator must know).
func recordAdmin(ctx context.Context, log store.AuditLog, k *audit.Keys, typ string, acct *store.AccountID, details map[string]string, stderr io.Writer) error {
	if k == nil {
		fmt.Fprintf(stderr, "note: no server secret, so this %s is not recorded in the audit log\n", strings.ReplaceAll(typ, "_", " "))
		return nil
	}
	rec := &audit.Recorder{Log: log, Keys: k}
	if _, err := rec.Record(ctx, audit.Event{Type: typ, Account: acct, Details: details}); err != nil {
		return fmt.Errorf("recording %s in the audit log: %w", typ, err)
	}
	return nil
}

func runAuditVerify(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs, f := newAuditFlags("audit verify", stderr)
	file := fs.String("file", "", "verify this export (from 'veil admin audit export') instead of the database")
	if _, err := parseAdmin(fs, args, 0, 0, ""); err != nil {
		return err
	}
	k, pub, err := f.keys()
	if err != nil {
		return err
	}
	var (
		src audit.Source
		log store.AuditLog
	)
	if *file != "" {
		fh, err := os.Open(*file)
		if err != nil {
			return err
		}
		m, err := audit.ReadExport(fh)
		fh.Close()
		if err != nil {
			return err
		}
		src = m
	} else {
		var closeFn func()
		log, closeFn, err = f.auditStore(ctx)
		if err != nil {
			return err
		}
		defer closeFn()
		src = log
	}
	rep, err := audit.Verify(ctx, src, pub)
	if err != nil {
		return err
	}
	if log != nil {
		result := "ok"
		if !rep.OK {
			result = "failed"
		}
		if err := recordAdmin(ctx, log, k, audit.AdminAuditVerify, nil, map[string]string{"result": result, "head": strconv.FormatUint(rep.HeadSeq, 10)}, stderr); err != nil {
			return err
		}
	}
	if f.json {
		if err := writeJSON(stdout, rep); err != nil {
			return err
		}
	} else if err := writeVerifyText(stdout, rep); err != nil {
		return err
	}
	if !rep.OK {
		return errAuditFailed
	}
	return nil
}

func writeVerifyText(w io.Writer, rep *audit.Report) error {
	var b strings.Builder
	if rep.OK {
		fmt.Fprintf(&b, "audit log OK: %d entries, head %d (hash %s)\n", rep.Entries, rep.HeadSeq, rep.HeadHash)
	} else {
		fmt.Fprintf(&b, "audit log FAILED verification: %d problem(s) in %d entries\n", len(rep.Problems), rep.Entries)
		for _, p := range rep.Problems {
			fmt.Fprintf(&b, "  seq %d: %s: %s\n", p.Seq, p.Kind, p.Detail)
		}
	}
	fmt.Fprintf(&b, "checkpoints: %d signed, the last at entry %d\n", rep.Checkpoints, rep.LastCheckpoint)
	if rep.PrunedThrough > 0 {
		fmt.Fprintf(&b, "retention: entries up to %d were pruned; the chain is verified from the signed checkpoint there\n", rep.PrunedThrough)
	}
	if rep.Unprotected > 0 {
		fmt.Fprintf(&b, "note: the %d entries after the last checkpoint chain correctly but are not yet signed: someone able to write to the database could cut or rewrite them undetectably\n", rep.Unprotected)
	}
	fmt.Fprintf(&b, "audit public key: %s\n", rep.PublicKey)
	_, err := io.WriteString(w, b.String())
	return err
}

func runAuditExport(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs, f := newAuditFlags("audit export", stderr)
	out := fs.String("out", "-", "file to write (created; never overwritten), or - for standard output")
	if _, err := parseAdmin(fs, args, 0, 0, ""); err != nil {
		return err
	}
	k, _, err := f.keys()
	if err != nil {
		return err
	}
	log, closeFn, err := f.auditStore(ctx)
	if err != nil {
		return err
	}
	defer closeFn()
	w := stdout
	var fh *os.File
	if *out != "-" {
		if fh, err = os.OpenFile(*out, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600); err != nil {
			return err
		}
		defer fh.Close()
		w = fh
	}
	n, err := audit.Export(ctx, log, w)
	if err != nil {
		return err
	}
	if fh != nil {
		if err := fh.Sync(); err != nil {
			return err
		}
	}
	if err := recordAdmin(ctx, log, k, audit.AdminAuditExport, nil, map[string]string{"entries": strconv.FormatUint(n, 10)}, stderr); err != nil {
		return err
	}
	if fh != nil {
		if f.json {
			return writeJSON(stdout, struct {
				File    string `json:"file"`
				Entries uint64 `json:"entries"`
				Time    string `json:"time"`
			}{*out, n, time.Now().UTC().Format(time.RFC3339)})
		}
		fmt.Fprintf(stdout, "exported %d entries to %s\n", n, *out)
	}
	return nil
}
