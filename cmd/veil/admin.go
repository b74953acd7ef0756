package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/veil-e2ee/veil/server/dr"
)

// adminCommands is the table of `veil admin` subcommands, dispatched by
// runAdmin. Each takes the flags of [adminFlags] (--db, --data, --json)
// plus its own; add new administration tools as rows here.
var adminCommands = map[string]command{
	"backup":        {"write a consistent snapshot of the server database and its manifest", runAdminBackup},
	"restore-drill": {"restore a backup into a scratch database, check it, report pass/fail", runAdminRestoreDrill},
	"audit":         {"verify the audit log's hash chain and signed checkpoints, or export it as JSON lines", runAdminAudit},
	"export":        {"write everything the server holds about an account, as JSON", runAdminExport},
	"erase":         {"erase an account and everything about it; prints a signed receipt", runAdminErase},
	"keygen":        {"make an administrator's signing key (for legal-hold approvals)", runAdminKeygen},
	"legal-hold":    {"request, approve, list and lift disclosed legal holds; run a compliance device", runAdminLegalHold},
}

func runAdmin(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 || args[0] == "help" || args[0] == "-h" || args[0] == "--help" {
		adminUsage(stderr)
		if len(args) == 0 {
			return errUsage
		}
		return nil
	}
	c, ok := adminCommands[args[0]]
	if !ok {
		fmt.Fprintf(stderr, "veil admin: unknown command %q\n\n", args[0])
		adminUsage(stderr)
		return errUsage
	}
	return c.run(ctx, args[1:], stdout, stderr)
}

func adminUsage(w io.Writer) {
	fmt.Fprintln(w, "usage: veil admin <command> [flags]\n\ncommands:")
	names := make([]string, 0, len(adminCommands))
	for n := range adminCommands {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		fmt.Fprintf(w, "  %-14s %s\n", n, adminCommands[n].summary)
	}
	fmt.Fprintln(w, "\nEvery command takes --db and --data as 'veil server' does, and --json.\nrun 'veil admin <command> -h' for a command's flags")
}

// adminFlags are the flags every admin command shares.
type adminFlags struct {
	data, db string
	json     bool
}

func newAdminFlags(name string, stderr io.Writer) (*flag.FlagSet, *adminFlags) {
	fs := flag.NewFlagSet("veil admin "+name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	f := &adminFlags{}
	fs.StringVar(&f.data, "data", "./veil-data", "data directory of the server (its SQLite database is veil.db there)")
	fs.StringVar(&f.db, "db", "", "database: empty for SQLite in the data directory, a file path for SQLite elsewhere, or postgres://… for PostgreSQL")
	fs.BoolVar(&f.json, "json", false, "print JSON")
	return fs, f
}

// database resolves --db and --data exactly as `veil server` does: a
// postgres:// URL, a SQLite file path, or veil.db in the data directory.
func (f *adminFlags) database() string {
	switch {
	case dr.IsPostgres(f.db):
		return f.db
	case f.db != "":
		return f.db
	}
	return filepath.Join(f.data, "veil.db")
}

// parseAdmin parses flags that may come before or after the positional
// arguments (veil admin restore-drill FILE --json), then fills flags not
// given from the environment; it returns the positional arguments. On a
// usage error it prints the error and the flags and returns errUsage.
func parseAdmin(fs *flag.FlagSet, args []string, minPos, maxPos int, posUsage string) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				return nil, err
			}
			return nil, errUsage // the flag package printed why
		}
		if fs.NArg() == 0 {
			break
		}
		pos = append(pos, fs.Arg(0))
		args = fs.Args()[1:]
	}
	if err := parseFlags(fs, nil, os.Getenv); err != nil {
		fmt.Fprintf(fs.Output(), "%s: %v\n", fs.Name(), err)
		return nil, errUsage
	}
	if len(pos) < minPos || len(pos) > maxPos {
		fmt.Fprintf(fs.Output(), "usage: %s [flags] %s\n", fs.Name(), posUsage)
		fs.PrintDefaults()
		return nil, errUsage
	}
	return pos, nil
}

func writeJSON(w io.Writer, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	_, err = fmt.Fprintf(w, "%s\n", b)
	return err
}

func runAdminBackup(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs, f := newAdminFlags("backup", stderr)
	out := fs.String("out", ".", "backup file to write, or an existing directory to write veil-backup-<time>.db (or .pgdump) in; its manifest goes beside it as FILE"+dr.ManifestSuffix)
	pgDump := fs.String("pg-dump", "pg_dump", "pg_dump program (PostgreSQL)")
	if _, err := parseAdmin(fs, args, 0, 0, ""); err != nil {
		return err
	}
	db := f.database()
	backend := dr.BackendSQLite
	if dr.IsPostgres(db) {
		backend = dr.BackendPostgres
	}
	now := time.Now().UTC()
	file := *out
	if fi, err := os.Stat(file); err == nil && fi.IsDir() {
		file = filepath.Join(file, dr.DefaultName(backend, now))
	}
	m, err := dr.Backup(ctx, db, file, &dr.BackupOptions{PGDump: *pgDump, Now: func() time.Time { return now }})
	if err != nil {
		return err
	}
	abs, _ := filepath.Abs(file)
	if f.json {
		return writeJSON(stdout, struct {
			File         string       `json:"file"`
			ManifestFile string       `json:"manifest_file"`
			Manifest     *dr.Manifest `json:"manifest"`
		}{abs, dr.ManifestPath(abs), m})
	}
	var b strings.Builder
	fmt.Fprintf(&b, "backup written: %s (%s, %d bytes, schema version %d)\n", abs, m.Backend, m.Size, m.SchemaVersion)
	fmt.Fprintf(&b, "manifest: %s\n", dr.ManifestPath(abs))
	fmt.Fprintf(&b, "sha256: %s\n", m.SHA256)
	names := make([]string, 0, len(m.Tables))
	for n := range m.Tables {
		names = append(names, n)
	}
	sort.Strings(names)
	b.WriteString("rows:")
	for _, n := range names {
		fmt.Fprintf(&b, " %s=%d", n, m.Tables[n])
	}
	b.WriteString("\nnote: the server secret (server.secret in the data directory, or --secret-file) is not in the backup; back it up separately and keep it secret\n")
	_, err = io.WriteString(stdout, b.String())
	return err
}

func runAdminRestoreDrill(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs, f := newAdminFlags("restore-drill", stderr)
	scratch := fs.String("scratch", "", "PostgreSQL: postgres://… URL of a database on the server where the drill may create and drop a scratch database (needs CREATEDB); default: --db when it is postgres://")
	pgRestore := fs.String("pg-restore", "pg_restore", "pg_restore program (PostgreSQL)")
	pos, err := parseAdmin(fs, args, 1, 1, "FILE")
	if err != nil {
		return err
	}
	if *scratch == "" && dr.IsPostgres(f.db) {
		*scratch = f.db
	}
	rep, err := dr.Drill(ctx, pos[0], &dr.DrillOptions{Scratch: *scratch, PGRestore: *pgRestore})
	if err != nil {
		return err
	}
	if f.json {
		if err := writeJSON(stdout, rep); err != nil {
			return err
		}
	} else if err := rep.WriteText(stdout); err != nil {
		return err
	}
	return rep.Err()
}
