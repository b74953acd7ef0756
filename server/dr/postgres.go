package dr

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/veil-e2ee/veil/server/store/postgres"
)

// libpqParams are the URL query parameters pg_dump and pg_restore (libpq)
// understand; pgx-only ones (search_path, pool_max_conns, …) are left out
// of the URL handed to them.
var libpqParams = map[string]bool{
	"sslmode": true, "sslcert": true, "sslkey": true, "sslrootcert": true, "sslcrl": true,
	"sslpassword": true, "sslcompression": true, "sslsni": true, "sslcrldir": true,
	"connect_timeout": true, "application_name": true, "target_session_attrs": true,
	"options": true, "passfile": true, "channel_binding": true, "gssencmode": true,
	"krbsrvname": true, "service": true, "host": true, "hostaddr": true, "port": true,
	"keepalives": true, "keepalives_idle": true, "keepalives_interval": true, "keepalives_count": true,
	"tcp_user_timeout": true, "require_auth": true,
}

// pgTarget is a database for the command-line tools: a URL without the
// password (so it does not show in the process list) and the environment
// that carries the password instead.
type pgTarget struct {
	url string
	env []string
}

// libpqTarget turns a postgres:// URL as the store takes it into one for
// libpq, optionally naming another database.
func libpqTarget(dsn, dbname string) (pgTarget, error) {
	u, err := url.Parse(dsn)
	if err != nil || (u.Scheme != "postgres" && u.Scheme != "postgresql") {
		// The URL may hold a password: do not echo it.
		return pgTarget{}, fmt.Errorf("dr: invalid PostgreSQL URL")
	}
	env := os.Environ()
	if u.User != nil {
		if pw, ok := u.User.Password(); ok {
			env = append(env, "PGPASSWORD="+pw)
			u.User = url.User(u.User.Username())
		}
	}
	q := url.Values{}
	for k, v := range u.Query() {
		if libpqParams[k] {
			q[k] = v
		}
	}
	u.RawQuery = q.Encode()
	if dbname != "" {
		u.Path = "/" + dbname
		u.RawPath = ""
	}
	return pgTarget{url: u.String(), env: env}, nil
}

// withParam returns dsn with the query parameter k set to v (pgx passes
// unknown parameters, such as search_path, to the server).
func withParam(dsn, k, v string) (string, error) {
	u, err := url.Parse(dsn)
	if err != nil {
		return "", fmt.Errorf("dr: invalid PostgreSQL URL")
	}
	q := u.Query()
	q.Set(k, v)
	u.RawQuery = q.Encode()
	return u.String(), nil
}

// withDatabase returns dsn naming another database.
func withDatabase(dsn, dbname string) (string, error) {
	u, err := url.Parse(dsn)
	if err != nil {
		return "", fmt.Errorf("dr: invalid PostgreSQL URL")
	}
	u.Path = "/" + dbname
	u.RawPath = ""
	return u.String(), nil
}

// runTool runs a PostgreSQL program and returns its trimmed stderr in the
// error when it fails.
func runTool(ctx context.Context, env []string, prog string, args ...string) error {
	cmd := exec.CommandContext(ctx, prog, args...)
	cmd.Env = env
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	cmd.Stdout = &stderr
	if err := cmd.Run(); err != nil {
		msg := strings.TrimSpace(stderr.String())
		if len(msg) > 2000 {
			msg = msg[:2000] + "…"
		}
		if msg == "" {
			msg = err.Error()
		}
		return fmt.Errorf("%w: %s: %s", ErrTool, filepath.Base(prog), msg)
	}
	return nil
}

// backupPostgres dumps the store's schema with pg_dump -Fc inside a
// REPEATABLE READ snapshot exported by a transaction that also counts the
// rows, so the dump and the manifest describe the same committed state.
func backupPostgres(ctx context.Context, dsn, out string, opts *BackupOptions) (*Manifest, error) {
	prog := opts.PGDump
	if prog == "" {
		prog = "pg_dump"
	}
	if _, err := exec.LookPath(prog); err != nil {
		return nil, fmt.Errorf("%w: %s not found (install the PostgreSQL client tools of the server's major version or newer): %v", ErrTool, prog, err)
	}
	target, err := libpqTarget(dsn, "")
	if err != nil {
		return nil, err
	}
	out, err = filepath.Abs(out)
	if err != nil {
		return nil, fmt.Errorf("dr: %v", err)
	}
	tmp, err := claim(out)
	if err != nil {
		return nil, err
	}
	ok := false
	defer func() {
		if !ok {
			os.Remove(tmp)
		}
	}()
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		return nil, fmt.Errorf("%w: connect: %v", ErrNoDatabase, err)
	}
	defer conn.Close(context.Background())
	tx, err := conn.BeginTx(ctx, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly})
	if err != nil {
		return nil, fmt.Errorf("dr: begin snapshot: %v", err)
	}
	defer tx.Rollback(context.Background())
	created := opts.now()
	var snapshot, schema string
	if err := tx.QueryRow(ctx, `SELECT pg_export_snapshot(), current_schema()`).Scan(&snapshot, &schema); err != nil {
		return nil, fmt.Errorf("dr: export snapshot: %v", err)
	}
	m := &Manifest{Format: Format, FormatVersion: FormatVersion, Backend: BackendPostgres,
		Created: created, File: filepath.Base(out), PGSchema: schema}
	if m.SchemaVersion, m.Tables, err = pgState(ctx, tx, schema); err != nil {
		return nil, err
	}
	// pg_dump imports the snapshot; the exporting transaction must stay
	// open until it has (it stays open until pg_dump is done).
	if err := runTool(ctx, target.env, prog, "--format=custom", "--snapshot="+snapshot,
		"--schema="+quoteIdent(schema), "--file="+tmp, "--dbname="+target.url); err != nil {
		return nil, err
	}
	if err := tx.Rollback(ctx); err != nil {
		return nil, fmt.Errorf("dr: end snapshot: %v", err)
	}
	if err := finish(tmp, out); err != nil {
		return nil, fmt.Errorf("dr: %v", err)
	}
	if m.Size, m.SHA256, err = fileDigest(out); err != nil {
		return nil, fmt.Errorf("dr: %v", err)
	}
	if err := writeManifest(m, out); err != nil {
		return nil, fmt.Errorf("dr: write manifest: %v", err)
	}
	ok = true
	return m, nil
}

type pgQuerier interface {
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

// pgState reads the schema version and every table's row count in schema.
func pgState(ctx context.Context, q pgQuerier, schema string) (int, map[string]int64, error) {
	rows, err := q.Query(ctx, `SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
		WHERE n.nspname = $1 AND c.relkind IN ('r', 'p') ORDER BY 1`, schema)
	if err != nil {
		return 0, nil, fmt.Errorf("dr: list tables: %v", err)
	}
	names, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return 0, nil, fmt.Errorf("dr: list tables: %v", err)
	}
	if len(names) == 0 {
		return 0, nil, fmt.Errorf("%w: schema %q has no tables", ErrNoDatabase, schema)
	}
	counts := make(map[string]int64, len(names))
	for _, n := range names {
		var c int64
		if err := q.QueryRow(ctx, `SELECT count(*) FROM `+quoteIdent(schema)+`.`+quoteIdent(n)).Scan(&c); err != nil {
			return 0, nil, fmt.Errorf("dr: count %s: %v", n, err)
		}
		counts[n] = c
	}
	var v *int64
	if err := q.QueryRow(ctx, `SELECT max(version) FROM `+quoteIdent(schema)+`.schema_migrations`).Scan(&v); err != nil {
		return 0, nil, fmt.Errorf("dr: schema version: %v", err)
	}
	if v == nil {
		return 0, nil, fmt.Errorf("dr: schema version: no migrations recorded")
	}
	return int(*v), counts, nil
}

// drillPostgres restores the dump into a new database on the scratch
// server, checks it and drops the database again.
func drillPostgres(ctx context.Context, data string, m *Manifest, r *Report, opts *DrillOptions) error {
	if opts.Scratch == "" {
		return fmt.Errorf("dr: a PostgreSQL drill needs a scratch server: pass --scratch postgres://… (or --db)")
	}
	if !IsPostgres(opts.Scratch) {
		return fmt.Errorf("dr: the scratch server must be a postgres:// URL")
	}
	prog := opts.PGRestore
	if prog == "" {
		prog = "pg_restore"
	}
	if _, err := exec.LookPath(prog); err != nil {
		return fmt.Errorf("%w: %s not found: %v", ErrTool, prog, err)
	}
	admin, err := pgx.Connect(ctx, opts.Scratch)
	if err != nil {
		return fmt.Errorf("dr: connect to the scratch server: %v", err)
	}
	defer admin.Close(context.Background())
	var rnd [6]byte
	rand.Read(rnd[:])
	name := "veil_drill_" + time.Now().UTC().Format("20060102150405") + "_" + hex.EncodeToString(rnd[:])
	if _, err := admin.Exec(ctx, `CREATE DATABASE `+quoteIdent(name)); err != nil {
		return fmt.Errorf("dr: create scratch database: %v", err)
	}
	r.Scratch = "database " + name + " (dropped)"
	defer func() {
		dctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if _, err := admin.Exec(dctx, `DROP DATABASE IF EXISTS `+quoteIdent(name)+` WITH (FORCE)`); err != nil {
			r.add("cleanup", false, "could not drop scratch database %s: %v", name, err)
			r.Scratch = "database " + name + " (NOT dropped)"
		}
	}()
	scratchDSN, err := withDatabase(opts.Scratch, name)
	if err != nil {
		return err
	}
	// A new database has a public schema; the dump creates its schema
	// itself, so take it away first.
	if err := execOnce(ctx, scratchDSN, `DROP SCHEMA IF EXISTS `+quoteIdent(m.PGSchema)+` CASCADE`); err != nil {
		return fmt.Errorf("dr: prepare scratch database: %v", err)
	}
	target, err := libpqTarget(opts.Scratch, name)
	if err != nil {
		return err
	}
	if err := runTool(ctx, target.env, prog, "--no-owner", "--no-acl", "--exit-on-error", "--dbname="+target.url, data); err != nil {
		r.add("pg_restore", false, "%v", err)
		return nil
	}
	r.add("pg_restore", true, "restored schema %s", m.PGSchema)
	storeDSN, err := withParam(scratchDSN, "search_path", m.PGSchema)
	if err != nil {
		return err
	}
	conn, err := pgx.Connect(ctx, storeDSN)
	if err != nil {
		return fmt.Errorf("dr: connect to the scratch database: %v", err)
	}
	before, counts, err := pgState(ctx, conn, m.PGSchema)
	conn.Close(context.Background())
	if err != nil {
		r.add("schema_version", false, "%v", err)
		return nil
	}
	if before == m.SchemaVersion {
		r.add("schema_version", true, "%d", before)
	} else {
		r.add("schema_version", false, "restored database is at version %d, manifest says %d", before, m.SchemaVersion)
	}
	compareCounts(r, m, counts)
	st, err := postgres.Open(ctx, storeDSN)
	if err != nil {
		r.add("store", false, "the store refuses the database: %v", err)
		return nil
	}
	perr := st.Ping(ctx)
	st.Close()
	if perr != nil {
		r.add("store", false, "opened, but: %v", perr)
		return nil
	}
	r.add("store", true, "server/store/postgres opens it")
	conn, err = pgx.Connect(ctx, storeDSN)
	if err != nil {
		return fmt.Errorf("dr: connect to the scratch database: %v", err)
	}
	defer conn.Close(context.Background())
	var after *int64
	err = conn.QueryRow(ctx, `SELECT max(version) FROM `+quoteIdent(m.PGSchema)+`.schema_migrations`).Scan(&after)
	switch {
	case err != nil:
		r.add("migrations", false, "%v", err)
	case after == nil || int(*after) != before:
		r.add("migrations", false, "opening applied migrations after version %d: the backup's schema is older than this binary's", before)
	default:
		r.add("migrations", true, "up to date at version %d", before)
	}
	return nil
}

func execOnce(ctx context.Context, dsn, sql string) error {
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		return err
	}
	defer conn.Close(context.Background())
	_, err = conn.Exec(ctx, sql)
	return err
}
