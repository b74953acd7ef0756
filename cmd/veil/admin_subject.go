package main

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"strings"
	"time"

	"github.com/veil-e2ee/veil/server"
	"github.com/veil-e2ee/veil/server/audit"
	"github.com/veil-e2ee/veil/server/dr"
	"github.com/veil-e2ee/veil/server/store"
	"github.com/veil-e2ee/veil/server/store/postgres"
	"github.com/veil-e2ee/veil/server/store/sqlite"
)

// veil admin export / erase: the data-subject rights, run by an admin
// against the server's database.

func (f *adminFlags) openStore(ctx context.Context) (store.Store, error) {
	octx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	db := f.database()
	if dr.IsPostgres(db) {
		return postgres.Open(octx, db)
	}
	return sqlite.Open(octx, db)
}

func parseAccountArg(s string) (store.AccountID, error) {
	var id store.AccountID
	u := strings.ReplaceAll(strings.TrimSpace(s), "-", "")
	if len(u) != 32 {
		return id, fmt.Errorf("%q is not an account id (a UUID)", s)
	}
	b, err := hex.DecodeString(u)
	if err != nil {
		return id, fmt.Errorf("%q is not an account id (a UUID)", s)
	}
	copy(id[:], b)
	return id, nil
}

// auditAccount records an admin action about an account in the audit
// log (under its pseudonym), as recordAdmin does; without the server
// secret it says so and goes on.
func auditAccount(ctx context.Context, st store.Store, secretPath string, typ string, id store.AccountID, stderr io.Writer) error {
	var k *audit.Keys
	if secret, err := loadSecret(secretPath, false); err == nil {
		if k, err = audit.DeriveKeys(secret); err != nil {
			return err
		}
	}
	al, ok := st.(store.AuditLog)
	if !ok {
		return fmt.Errorf("%w: the store has no audit log", server.ErrConfig)
	}
	return recordAdmin(ctx, al, k, typ, &id, map[string]string{"by": "admin"}, stderr)
}

func runAdminExport(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs, f := newAdminFlags("export", stderr)
	secretFile := fs.String("secret-file", "", "the server secret `file` (keys the audit log, where the export is recorded); default <data>/server.secret")
	pos, err := parseAdmin(fs, args, 1, 1, "ACCOUNT")
	if err != nil {
		return err
	}
	id, err := parseAccountArg(pos[0])
	if err != nil {
		return err
	}
	st, err := f.openStore(ctx)
	if err != nil {
		return err
	}
	defer st.Close()
	x, err := server.ExportAccount(ctx, st, id)
	if errors.Is(err, store.ErrNotFound) {
		return fmt.Errorf("no account %s in this database", id)
	}
	if err != nil {
		return err
	}
	path := *secretFile
	if path == "" {
		path = filepath.Join(f.data, "server.secret")
	}
	if err := auditAccount(ctx, st, path, "account_exported", id, stderr); err != nil {
		return err
	}
	if f.json {
		return writeJSON(stdout, x)
	}
	b, _ := json.MarshalIndent(x, "", "  ")
	fmt.Fprintf(stdout, "%s\n", b)
	return nil
}

func runAdminErase(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs, f := newAdminFlags("erase", stderr)
	secretFile := fs.String("secret-file", "", "the server secret `file` (signs the receipt); default <data>/server.secret")
	yes := fs.Bool("yes", false, "erase without asking (the account, its devices, keys, queued envelopes and blobs; no undo)")
	pos, err := parseAdmin(fs, args, 1, 1, "ACCOUNT")
	if err != nil {
		return err
	}
	id, err := parseAccountArg(pos[0])
	if err != nil {
		return err
	}
	if !*yes {
		return errors.New("erasing cannot be undone: run again with --yes")
	}
	path := *secretFile
	if path == "" {
		path = filepath.Join(f.data, "server.secret")
	}
	secret, err := loadSecret(path, false)
	if err != nil {
		return err
	}
	st, err := f.openStore(ctx)
	if err != nil {
		return err
	}
	defer st.Close()
	rc, err := server.Erase(ctx, st, secret, id, time.Now())
	if errors.Is(err, store.ErrNotFound) {
		return fmt.Errorf("no account %s in this database", id)
	}
	if errors.Is(err, server.ErrUnderHold) {
		return fmt.Errorf("account %s is under legal hold: lift the hold first ('veil admin legal-hold list %s')", id, id)
	}
	if err != nil {
		return err
	}
	if err := auditAccount(ctx, st, path, "account_erased", id, stderr); err != nil {
		return err
	}
	if f.json {
		return writeJSON(stdout, rc)
	}
	b, _ := json.MarshalIndent(rc, "", "  ")
	fmt.Fprintf(stdout, "erased account %s: %d devices, %d prekeys, %d envelopes, %d blobs; no row names it any more.\nreceipt (verify with the key at /v1/receipts/key):\n%s\n",
		rc.AccountID, rc.Devices, rc.PreKeys, rc.Envelopes, rc.Blobs, b)
	return nil
}
