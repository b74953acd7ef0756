package dr

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"path/filepath"
	"strings"

	"github.com/ncruces/go-sqlite3/driver"

	"github.com/veil-e2ee/veil/server/store/sqlite"
)

// sqliteURI is the driver's URI for path with the given query.
func sqliteURI(path, query string) string {
	return "file:" + strings.ReplaceAll(url.PathEscape(path), "%2F", "/") + "?" + query
}

// backupSQLite copies the database at path with VACUUM INTO from a
// connection of its own (a read transaction: one committed state, while
// the server's writer goes on), turns the copy into a self-contained
// rollback-journal database, counts its rows and writes the manifest.
func backupSQLite(ctx context.Context, path, out string, opts *BackupOptions) (*Manifest, error) {
	if fi, err := os.Stat(path); err != nil {
		return nil, fmt.Errorf("%w: %s: %v", ErrNoDatabase, path, err)
	} else if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("%w: %s is not a file", ErrNoDatabase, path)
	}
	out, err := filepath.Abs(out)
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
	created := opts.now()
	// mode=ro: this connection never changes the server's database.
	// The busy timeout covers the moments the server checkpoints.
	src, err := driver.Open(sqliteURI(path, "mode=ro&_pragma=busy_timeout(10000)"))
	if err != nil {
		return nil, fmt.Errorf("dr: open %s: %v", path, err)
	}
	src.SetMaxOpenConns(1)
	_, err = src.ExecContext(ctx, `VACUUM INTO ?`, tmp)
	src.Close()
	if err != nil {
		return nil, fmt.Errorf("dr: snapshot %s: %v", path, err)
	}
	m := &Manifest{Format: Format, FormatVersion: FormatVersion, Backend: BackendSQLite,
		Created: created, File: filepath.Base(out)}
	if err := sealSQLite(ctx, tmp, m); err != nil {
		return nil, err
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

// sealSQLite switches the snapshot at path to the rollback journal (so the
// backup is one file, with no -wal or -shm beside it) and fills m's schema
// version and row counts from it.
func sealSQLite(ctx context.Context, path string, m *Manifest) error {
	db, err := driver.Open(sqliteURI(path, "_pragma=busy_timeout(10000)"))
	if err != nil {
		return fmt.Errorf("dr: open snapshot: %v", err)
	}
	defer db.Close()
	db.SetMaxOpenConns(1)
	var mode string
	if err := db.QueryRowContext(ctx, `PRAGMA journal_mode=DELETE`).Scan(&mode); err != nil {
		return fmt.Errorf("dr: snapshot journal mode: %v", err)
	}
	if m.SchemaVersion, err = sqliteSchemaVersion(ctx, db); err != nil {
		return err
	}
	if m.Tables, err = sqliteCounts(ctx, db); err != nil {
		return err
	}
	return db.Close()
}

func sqliteSchemaVersion(ctx context.Context, db *sql.DB) (int, error) {
	var v sql.NullInt64
	if err := db.QueryRowContext(ctx, `SELECT max(version) FROM schema_migrations`).Scan(&v); err != nil {
		return 0, fmt.Errorf("dr: schema version: %v", err)
	}
	if !v.Valid {
		return 0, fmt.Errorf("dr: schema version: no migrations recorded")
	}
	return int(v.Int64), nil
}

// sqliteCounts counts the rows of every table but SQLite's own.
func sqliteCounts(ctx context.Context, db *sql.DB) (map[string]int64, error) {
	rows, err := db.QueryContext(ctx, `SELECT name FROM sqlite_schema WHERE type = 'table' AND name NOT LIKE 'sqlite\_%' ESCAPE '\' ORDER BY name`)
	if err != nil {
		return nil, fmt.Errorf("dr: list tables: %v", err)
	}
	var names []string
	for rows.Next() {
		var n string
		if err := rows.Scan(&n); err != nil {
			rows.Close()
			return nil, fmt.Errorf("dr: list tables: %v", err)
		}
		names = append(names, n)
	}
	if err := errors.Join(rows.Err(), rows.Close()); err != nil {
		return nil, fmt.Errorf("dr: list tables: %v", err)
	}
	counts := make(map[string]int64, len(names))
	for _, n := range names {
		var c int64
		if err := db.QueryRowContext(ctx, `SELECT count(*) FROM `+quoteIdent(n)).Scan(&c); err != nil {
			return nil, fmt.Errorf("dr: count %s: %v", n, err)
		}
		counts[n] = c
	}
	return counts, nil
}

// quoteIdent quotes an SQL identifier (the same rule in SQLite and
// PostgreSQL).
func quoteIdent(s string) string {
	return `"` + strings.ReplaceAll(s, `"`, `""`) + `"`
}

// drillSQLite copies the backup into a temporary directory and checks the
// copy: integrity, foreign keys, schema version, row counts, then opens it
// with the store package (migrations must have nothing to do).
func drillSQLite(ctx context.Context, data string, m *Manifest, r *Report, opts *DrillOptions) error {
	dir, err := os.MkdirTemp(opts.TempDir, "veil-drill-")
	if err != nil {
		return fmt.Errorf("dr: scratch directory: %v", err)
	}
	defer removeAll(dir)
	scratch := filepath.Join(dir, "veil.db")
	if err := copyFile(data, scratch); err != nil {
		return fmt.Errorf("dr: copy the backup: %v", err)
	}
	r.Scratch = scratch + " (removed)"
	db, err := driver.Open(sqliteURI(scratch, "_pragma=busy_timeout(10000)"))
	if err != nil {
		r.add("open", false, "%v", err)
		return nil
	}
	db.SetMaxOpenConns(1)
	before, verr := sqliteChecks(ctx, db, m, r)
	db.Close()
	// The real store: it runs the migrations; with the binary that made
	// the backup there must be none left to apply.
	st, err := sqlite.Open(ctx, scratch)
	if err != nil {
		r.add("store", false, "the store refuses the database: %v", err)
		return nil
	}
	perr := st.Ping(ctx)
	if cerr := st.Close(); perr == nil {
		perr = cerr
	}
	if perr != nil {
		r.add("store", false, "opened, but: %v", perr)
		return nil
	}
	r.add("store", true, "server/store/sqlite opens it")
	db, err = driver.Open(sqliteURI(scratch, "_pragma=busy_timeout(10000)&_pragma=query_only(1)"))
	if err != nil {
		r.add("migrations", false, "reopen: %v", err)
		return nil
	}
	defer db.Close()
	after, err := sqliteSchemaVersion(ctx, db)
	switch {
	case err != nil:
		r.add("migrations", false, "%v", err)
	case verr != nil:
		r.add("migrations", false, "schema version unknown before opening")
	case after != before:
		r.add("migrations", false, "opening applied migrations %d..%d: the backup's schema is older than this binary's", before+1, after)
	default:
		r.add("migrations", true, "up to date at version %d", after)
	}
	return nil
}

// sqliteChecks runs the checks that need only SQLite and returns the
// schema version it found.
func sqliteChecks(ctx context.Context, db *sql.DB, m *Manifest, r *Report) (int, error) {
	var problems []string
	rows, err := db.QueryContext(ctx, `PRAGMA integrity_check(20)`)
	if err == nil {
		for rows.Next() {
			var s string
			if err = rows.Scan(&s); err != nil {
				break
			}
			problems = append(problems, s)
		}
		err = errors.Join(err, rows.Err(), rows.Close())
	}
	switch {
	case err != nil:
		r.add("integrity_check", false, "%v", err)
	case len(problems) == 1 && problems[0] == "ok":
		r.add("integrity_check", true, "ok")
	default:
		r.add("integrity_check", false, "%d problem(s): %s", len(problems), strings.Join(problems, "; "))
	}

	var fk []string
	n := 0
	rows, err = db.QueryContext(ctx, `PRAGMA foreign_key_check`)
	if err == nil {
		for rows.Next() {
			var table, parent string
			var rowid sql.NullInt64
			var idx int
			if err = rows.Scan(&table, &rowid, &parent, &idx); err != nil {
				break
			}
			n++
			if len(fk) < 5 {
				fk = append(fk, fmt.Sprintf("%s row %d has no %s row", table, rowid.Int64, parent))
			}
		}
		err = errors.Join(err, rows.Err(), rows.Close())
	}
	switch {
	case err != nil:
		r.add("foreign_key_check", false, "%v", err)
	case n == 0:
		r.add("foreign_key_check", true, "every reference resolves")
	default:
		r.add("foreign_key_check", false, "%d dangling reference(s): %s", n, strings.Join(fk, "; "))
	}

	v, verr := sqliteSchemaVersion(ctx, db)
	switch {
	case verr != nil:
		r.add("schema_version", false, "%v", verr)
	case v != m.SchemaVersion:
		r.add("schema_version", false, "restored database is at version %d, manifest says %d", v, m.SchemaVersion)
	default:
		r.add("schema_version", true, "%d", v)
	}

	counts, err := sqliteCounts(ctx, db)
	if err != nil {
		r.add("tables", false, "%v", err)
	} else {
		compareCounts(r, m, counts)
	}
	return v, verr
}

// copyFile copies src to a new file dst and syncs it.
func copyFile(src, dst string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	if err := out.Sync(); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}
