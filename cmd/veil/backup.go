package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/veil-e2ee/veil/client"
	"github.com/veil-e2ee/veil/client/devicestore"
)

// veil backup: encrypted backups, verification, restore, and the
// recovery key's escrow among trustees.

const backupUsage = `usage: veil backup SUBCOMMAND [flags] ...

  create --out FILE        write an encrypted backup of this account (to your recovery key,
                           or --backup-passphrase-file; --escrow age1… also to an organisation)
  verify FILE              check that a backup opens and is complete (touches no device)
  restore FILE             rebuild this account on a new device (--home) from a backup
  split K N                split your recovery key into N shares for trustees; any K rebuild it
  combine SHARE...         rebuild the recovery key from K shares

The recovery key, passphrase or escrow identity come from --recovery-key-file,
--backup-passphrase-file or --identity-file, else you are asked.`

type backupSecretFlags struct {
	keyFile, passFile, identityFile string
}

func (b *backupSecretFlags) register(fs interface {
	StringVar(*string, string, string, string)
}) {
	fs.StringVar(&b.keyFile, "recovery-key-file", "", "read the recovery key from this `file` (create: write it there when new)")
	fs.StringVar(&b.passFile, "backup-passphrase-file", "", "encrypt/open with the passphrase in this `file` instead of the recovery key")
	fs.StringVar(&b.identityFile, "identity-file", "", "open with this age identity `file` (an organisation's escrow key)")
}

// secret reads what opens a backup, asking on the terminal if no file
// says.
func (b *backupSecretFlags) secret(stderr io.Writer) (client.BackupSecret, error) {
	read := func(path string) (string, error) {
		bs, err := os.ReadFile(path)
		return strings.TrimSpace(string(bs)), err
	}
	switch {
	case b.passFile != "":
		p, err := read(b.passFile)
		return client.BackupSecret{Passphrase: p}, err
	case b.identityFile != "":
		s, err := read(b.identityFile)
		if err != nil {
			return client.BackupSecret{}, err
		}
		for _, line := range strings.Split(s, "\n") { // age identity files may hold comments
			if line = strings.TrimSpace(line); strings.HasPrefix(line, "AGE-SECRET-KEY-") {
				return client.BackupSecret{AgeIdentity: line}, nil
			}
		}
		return client.BackupSecret{}, errors.New("the identity file holds no AGE-SECRET-KEY-1… line")
	case b.keyFile != "":
		k, err := read(b.keyFile)
		return client.BackupSecret{RecoveryKey: k}, err
	}
	fmt.Fprint(stderr, "recovery key: ")
	line, err := bufio.NewReader(os.Stdin).ReadString('\n')
	if err != nil && line == "" {
		return client.BackupSecret{}, errors.New("no recovery key given (use --recovery-key-file, --backup-passphrase-file or --identity-file)")
	}
	return client.BackupSecret{RecoveryKey: strings.TrimSpace(line)}, nil
}

func runBackup(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		fmt.Fprintln(stderr, backupUsage)
		if len(args) == 0 {
			return errUsage
		}
		return nil
	}
	switch args[0] {
	case "create":
		return backupCreate(ctx, args[1:], stdout, stderr)
	case "verify":
		return backupVerify(args[1:], stdout, stderr)
	case "restore":
		return backupRestore(ctx, args[1:], stdout, stderr)
	case "split":
		return backupSplit(ctx, args[1:], stdout, stderr)
	case "combine":
		return backupCombine(args[1:], stdout, stderr)
	}
	fmt.Fprintf(stderr, "veil backup: unknown subcommand %q\n\n%s\n", args[0], backupUsage)
	return errUsage
}

func backupCreate(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs, f := newClientFlagSet("backup create", "[flags] --out FILE", "Writes an encrypted backup of this account: identity key, contacts and their\n"+
		"verification, groups, settings and messages (never ratchet sessions).", stderr)
	var (
		out    string
		bs     backupSecretFlags
		escrow multiFlag
		upload bool
	)
	fs.StringVar(&out, "out", "", "the backup `file` to write (- for standard output)")
	fs.BoolVar(&upload, "upload", false, "also keep the backup on the server (opaque to it; one per account, at most 64 MiB)")
	bs.register(fs)
	fs.Var(&escrow, "escrow", "also encrypt to this organisation escrow key (age1…); repeatable")
	if _, err := parseArgs(fs, args, 0, 0); err != nil {
		return err
	}
	if out == "" {
		return errors.New("say where the backup goes: --out FILE")
	}
	opts := client.BackupOptions{Escrow: escrow, Upload: upload}
	if bs.passFile != "" {
		p, err := os.ReadFile(bs.passFile)
		if err != nil {
			return err
		}
		opts.Passphrase = strings.TrimSpace(string(p))
	}
	if bs.keyFile != "" {
		if k, err := os.ReadFile(bs.keyFile); err == nil && len(strings.TrimSpace(string(k))) > 0 {
			opts.RecoveryKey = strings.TrimSpace(string(k))
		}
	}
	if !f.json {
		f.progress = func(p client.Progress) {
			if p.Stage == "backup" && p.Total > 0 {
				n := 30 * p.Done / p.Total
				fmt.Fprintf(stderr, "\rbackup [%s%s] %d/%d bytes", strings.Repeat("#", n), strings.Repeat(".", 30-n), p.Done, p.Total)
			}
		}
	}
	c, err := f.open(ctx, stderr)
	if err != nil {
		return err
	}
	defer c.Close()
	var w io.Writer = stdout
	var file *os.File
	if out != "-" {
		if file, err = os.OpenFile(out+".partial", os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600); err != nil {
			return err
		}
		defer os.Remove(out + ".partial")
		w = file
	}
	info, err := c.CreateBackup(ctx, w, opts)
	if err != nil {
		if file != nil {
			file.Close()
		}
		return explain(err)
	}
	if file != nil {
		if err := file.Sync(); err != nil {
			return err
		}
		if err := file.Close(); err != nil {
			return err
		}
		if err := os.Rename(out+".partial", out); err != nil {
			return err
		}
	}
	if !f.json {
		fmt.Fprintln(stderr)
	}
	if info.NewRecoveryKey != "" && bs.keyFile != "" {
		if err := os.WriteFile(bs.keyFile, []byte(info.NewRecoveryKey+"\n"), 0o600); err != nil {
			return fmt.Errorf("the backup is written, but the recovery key could not be saved to %s: %v", bs.keyFile, err)
		}
	}
	if f.json {
		obj := map[string]any{"file": out, "messages": info.Messages, "bytes": info.Bytes, "escrow": info.Escrow, "uploaded": info.Uploaded}
		if info.NewRecoveryKey != "" && bs.keyFile == "" {
			obj["recovery_key"] = info.NewRecoveryKey
		}
		printJSON(stdout, obj)
		return nil
	}
	fmt.Fprintf(stdout, "backup of %d messages written to %s (%d bytes)\n", info.Messages, out, info.Bytes)
	if info.Uploaded {
		fmt.Fprintln(stdout, "a copy is kept on the server; 'veil backup restore --from-server --username NAME' gets it back with your recovery key")
	}
	for _, e := range info.Escrow {
		fmt.Fprintf(stdout, "ESCROW: this backup can also be opened by the holder of %s\n", e)
	}
	switch {
	case info.NewRecoveryKey != "" && bs.keyFile != "":
		fmt.Fprintf(stdout, "your new recovery key was written to %s; keep it safe and apart from the backup\n", bs.keyFile)
	case info.NewRecoveryKey != "":
		fmt.Fprintf(stdout, "\nYour recovery key (shown once; write it down and keep it apart from the backup):\n\n    %s\n\n"+
			"It opens your backups and recovers your account if you lose every device.\n", info.NewRecoveryKey)
	}
	return nil
}

func backupVerify(args []string, stdout, stderr io.Writer) error {
	fs, f := newClientFlagSet("backup verify", "[flags] FILE", "Checks that a backup opens and is complete, without touching any device.", stderr)
	var bs backupSecretFlags
	bs.register(fs)
	pos, err := parseArgs(fs, args, 1, 1)
	if err != nil {
		return err
	}
	file, err := os.Open(pos[0])
	if err != nil {
		return err
	}
	defer file.Close()
	sec, err := bs.secret(stderr)
	if err != nil {
		return err
	}
	sum, err := client.VerifyBackup(file, sec)
	if err != nil {
		return explainBackup(err)
	}
	if f.json {
		printJSON(stdout, map[string]any{"ok": true, "account_id": sum.AccountID, "username": sum.Username, "server": sum.Server, "messages": sum.Messages, "created_at": sum.CreatedAt})
		return nil
	}
	fmt.Fprintf(stdout, "OK: backup of %s (%d messages, made %s) opens and is complete\n", sum.Username, sum.Messages, sum.CreatedAt.Local().Format("2006-01-02 15:04"))
	return nil
}

func backupRestore(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs, f := newClientFlagSet("backup restore", "[flags] FILE", "Rebuilds this account on a new device (a new --home) from a backup. The server replaces\n"+
		"every device of the account by this one; contacts keep the same safety number.", stderr)
	var bs backupSecretFlags
	bs.register(fs)
	kdfTime := fs.Uint("kdf-time", uint(devicestore.DefaultKDFParams.Time), "Argon2id passes for the new profile's passphrase")
	kdfMem := fs.Uint("kdf-memory", uint(devicestore.DefaultKDFParams.Memory), "Argon2id memory in `KiB`")
	fromServer := fs.Bool("from-server", false, "fetch the backup the account keeps on the server (needs --username and the recovery key)")
	username := fs.String("username", "", "your username, with --from-server")
	minArgs := 1
	if hasFlag(args, "from-server") {
		minArgs = 0
	}
	pos, err := parseArgs(fs, args, minArgs, 1)
	if err != nil {
		return err
	}
	sec, err := bs.secret(stderr)
	if err != nil {
		return err
	}
	var file io.Reader
	if *fromServer {
		if *username == "" || f.server == "" || sec.RecoveryKey == "" {
			return errors.New("--from-server needs --username, --server and the recovery key")
		}
		b, err := client.FetchBackup(ctx, f.server, *username, sec.RecoveryKey, nil)
		if err != nil {
			return explainBackup(err)
		}
		file = bytes.NewReader(b)
	} else {
		fh, err := os.Open(pos[0])
		if err != nil {
			return err
		}
		defer fh.Close()
		file = fh
	}
	u, err := f.unlock(true, stderr)
	if err != nil {
		return err
	}
	kdf := devicestore.KDFParams{Time: uint32(*kdfTime), Memory: uint32(*kdfMem), Threads: devicestore.DefaultKDFParams.Threads}
	cfg := client.Config{Dir: f.home, Unlock: u, Server: f.server, DeviceName: defaultDeviceName(),
		StoreOptions: []devicestore.Option{devicestore.WithKDFParams(kdf)}}
	if !f.json {
		cfg.Progress = progressBar(stderr)
	}
	c, err := client.RestoreBackup(ctx, cfg, file, sec)
	if errors.Is(err, client.ErrAlreadyRegistered) {
		return fmt.Errorf("%s already holds a Veil profile; restore into a new --home", f.home)
	}
	if err != nil {
		return explainBackup(err)
	}
	defer c.Close()
	s := c.Self()
	if f.json {
		printJSON(stdout, map[string]any{"username": s.Username, "account_id": s.AccountID, "device_id": s.DeviceID, "home": f.home})
		return nil
	}
	fmt.Fprintf(stdout, "restored %s as device %d in %s; your other devices were signed out\n", s.Username, s.DeviceID, f.home)
	return nil
}

func backupSplit(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs, f := newClientFlagSet("backup split", "[flags] K N", "Splits your recovery key into N shares for trustees: any K of them rebuild it\n"+
		"(veil backup combine), fewer reveal nothing. This is key escrow: give each share to one person.", stderr)
	pos, err := parseArgs(fs, args, 2, 2)
	if err != nil {
		return err
	}
	var k, n int
	if _, err := fmt.Sscan(pos[0], &k); err != nil {
		return fmt.Errorf("K %q is not a number", pos[0])
	}
	if _, err := fmt.Sscan(pos[1], &n); err != nil {
		return fmt.Errorf("N %q is not a number", pos[1])
	}
	c, err := f.open(ctx, stderr)
	if err != nil {
		return err
	}
	defer c.Close()
	shares, err := c.SplitRecoveryKey(ctx, k, n)
	if err != nil {
		return explain(err)
	}
	if f.json {
		printJSON(stdout, map[string]any{"k": k, "n": n, "shares": shares})
		return nil
	}
	fmt.Fprintf(stdout, "ESCROW: your recovery key is now split %d-of-%d. Give each share to a different trustee;\nany %d of them together can open your backups and recover your account.\n\n", k, n, k)
	for i, s := range shares {
		fmt.Fprintf(stdout, "share %d: %s\n", i+1, s)
	}
	return nil
}

func backupCombine(args []string, stdout, stderr io.Writer) error {
	fs, f := newClientFlagSet("backup combine", "[flags] SHARE...", "Rebuilds a recovery key from enough trustee shares.", stderr)
	pos, err := parseArgs(fs, args, 1, -1)
	if err != nil {
		return err
	}
	k, err := client.CombineRecoveryKey(pos)
	if err != nil {
		return fmt.Errorf("the shares do not combine: %v", err)
	}
	if f.json {
		printJSON(stdout, map[string]any{"recovery_key": k})
		return nil
	}
	fmt.Fprintf(stdout, "recovery key: %s\n", k)
	return nil
}

func explainBackup(err error) error {
	switch {
	case errors.Is(err, client.ErrBackupKey):
		return errors.New("this recovery key, passphrase or identity does not open the backup")
	case errors.Is(err, client.ErrBackupCorrupt):
		return fmt.Errorf("the backup file is damaged or incomplete: %v", err)
	}
	return explain(err)
}

// multiFlag is a repeatable string flag.
type multiFlag []string

func (m *multiFlag) String() string     { return strings.Join(*m, ",") }
func (m *multiFlag) Set(v string) error { *m = append(*m, v); return nil }
