// Package dr is the Veil server's disaster recovery: consistent online
// backups of the server database and restore drills that prove a backup
// can be restored.
//
// # Backups
//
// [Backup] writes two files: the data file and, beside it, a manifest
// named after it with ".manifest.json" appended ([ManifestPath]). On
// SQLite the data file is a self-contained SQLite database (rollback
// journal mode, no -wal file), made with VACUUM INTO from a connection of
// its own while the server keeps running: VACUUM INTO reads the database
// in one read transaction, so the copy is one committed state, and it
// rebuilds the file, so deleted envelopes' pages are not carried over. On
// PostgreSQL the data file is a pg_dump custom-format archive (-Fc) of
// the store's schema, taken in a REPEATABLE READ snapshot that the
// manifest's row counts share (pg_export_snapshot, pg_dump --snapshot).
//
// The manifest ([Manifest]) records the format version, the backend, the
// schema version (the newest schema_migrations row), the row count of
// every table, the file's size and SHA-256, and when the backup was made.
// Row counts are taken in the backup's own snapshot: on SQLite from the
// finished copy, on PostgreSQL in the exported snapshot.
//
// The server secret is not in the database (it is a file, by default
// <data>/server.secret): it is not part of a backup and must be backed up
// separately, and kept secret.
//
// # Restore drills
//
// [Drill] restores a backup into a scratch database and checks it: the
// manifest parses, the file's size and SHA-256 match, the real store
// package opens the restored database and finds its migrations up to date,
// the schema version equals the manifest's, every table's row count equals
// the manifest's and (SQLite) PRAGMA integrity_check and foreign_key_check
// find nothing. The [Report] lists every check with its numbers; a backup
// passes only if all pass. SQLite drills run on a copy in a temporary
// directory; PostgreSQL drills create a uniquely named database, restore
// into it with pg_restore and drop it afterwards.
package dr

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// Errors. Each is wrapped with context; test with errors.Is.
var (
	// ErrExists means the backup's output file (or its manifest) already
	// exists: a backup never overwrites one.
	ErrExists = errors.New("dr: backup file already exists")
	// ErrNoDatabase means the database to back up does not exist.
	ErrNoDatabase = errors.New("dr: no database")
	// ErrManifest means a manifest is missing, unreadable or invalid.
	ErrManifest = errors.New("dr: bad manifest")
	// ErrTool means an external program (pg_dump, pg_restore) is missing
	// or failed.
	ErrTool = errors.New("dr: external tool failed")
	// ErrDrillFailed means a restore drill ran and at least one check
	// failed; the report says which.
	ErrDrillFailed = errors.New("dr: restore drill failed")
)

// Backends named in a manifest.
const (
	BackendSQLite   = "sqlite"
	BackendPostgres = "postgres"
)

// Format and FormatVersion identify the manifest format.
const (
	Format        = "veil-backup"
	FormatVersion = 1
)

// ManifestSuffix is appended to a backup's file name to name its manifest.
const ManifestSuffix = ".manifest.json"

// Manifest describes one backup.
type Manifest struct {
	Format        string    `json:"format"`         // always Format
	FormatVersion int       `json:"format_version"` // FormatVersion
	Backend       string    `json:"backend"`        // BackendSQLite or BackendPostgres
	Created       time.Time `json:"created"`        // UTC, when the snapshot was taken
	// SchemaVersion is max(version) of schema_migrations in the snapshot.
	SchemaVersion int `json:"schema_version"`
	// File is the data file's base name; it lives beside the manifest.
	File   string `json:"file"`
	Size   int64  `json:"size"`
	SHA256 string `json:"sha256"` // hex
	// Tables maps every table of the snapshot to its row count.
	Tables map[string]int64 `json:"tables"`
	// PGSchema is the PostgreSQL schema that was dumped (PostgreSQL only).
	PGSchema string `json:"pg_schema,omitempty"`
}

// ManifestPath returns the manifest's path for a backup data file.
func ManifestPath(file string) string { return file + ManifestSuffix }

// ReadManifest reads and validates the manifest at path.
func ReadManifest(path string) (*Manifest, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrManifest, err)
	}
	return ParseManifest(b)
}

// ParseManifest parses and validates a manifest.
func ParseManifest(b []byte) (*Manifest, error) {
	var m Manifest
	dec := json.NewDecoder(strings.NewReader(string(b)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&m); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrManifest, err)
	}
	if dec.More() {
		return nil, fmt.Errorf("%w: trailing data", ErrManifest)
	}
	switch {
	case m.Format != Format:
		return nil, fmt.Errorf("%w: format %q, want %q", ErrManifest, m.Format, Format)
	case m.FormatVersion != FormatVersion:
		return nil, fmt.Errorf("%w: format version %d, this binary reads %d", ErrManifest, m.FormatVersion, FormatVersion)
	case m.Backend != BackendSQLite && m.Backend != BackendPostgres:
		return nil, fmt.Errorf("%w: unknown backend %q", ErrManifest, m.Backend)
	case m.File == "" || m.File != filepath.Base(m.File) || m.File == "." || m.File == "..":
		return nil, fmt.Errorf("%w: file name %q is not a plain name", ErrManifest, m.File)
	case m.Size < 0:
		return nil, fmt.Errorf("%w: negative size", ErrManifest)
	case len(m.SHA256) != 2*sha256.Size || !isHex(m.SHA256):
		return nil, fmt.Errorf("%w: sha256 is not 64 hex digits", ErrManifest)
	case m.SchemaVersion < 1:
		return nil, fmt.Errorf("%w: schema version %d", ErrManifest, m.SchemaVersion)
	case len(m.Tables) == 0:
		return nil, fmt.Errorf("%w: no tables", ErrManifest)
	case m.Backend == BackendPostgres && m.PGSchema == "":
		return nil, fmt.Errorf("%w: PostgreSQL backup without pg_schema", ErrManifest)
	}
	for name, n := range m.Tables {
		if name == "" || n < 0 {
			return nil, fmt.Errorf("%w: table %q with %d rows", ErrManifest, name, n)
		}
	}
	return &m, nil
}

func isHex(s string) bool {
	_, err := hex.DecodeString(s)
	return err == nil && strings.ToLower(s) == s
}

// fileDigest returns a file's size and hex SHA-256.
func fileDigest(path string) (int64, string, error) {
	f, err := os.Open(path)
	if err != nil {
		return 0, "", err
	}
	defer f.Close()
	h := sha256.New()
	n, err := io.Copy(h, bufio.NewReaderSize(f, 1<<20))
	if err != nil {
		return 0, "", err
	}
	return n, hex.EncodeToString(h.Sum(nil)), nil
}

// writeManifest writes m beside the data file, atomically (temporary file,
// fsync, rename, directory fsync).
func writeManifest(m *Manifest, dataPath string) error {
	b, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return err
	}
	b = append(b, '\n')
	path := ManifestPath(dataPath)
	tmp := path + ".partial"
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	if _, err := f.Write(b); err != nil {
		f.Close()
		os.Remove(tmp)
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		os.Remove(tmp)
		return err
	}
	if err := f.Close(); err != nil {
		os.Remove(tmp)
		return err
	}
	if err := os.Rename(tmp, path); err != nil {
		os.Remove(tmp)
		return err
	}
	return syncDir(filepath.Dir(path))
}

// claim checks that neither the backup file nor its manifest exists and
// returns the temporary name the data is written to first.
func claim(out string) (string, error) {
	for _, p := range []string{out, ManifestPath(out)} {
		if _, err := os.Lstat(p); err == nil {
			return "", fmt.Errorf("%w: %s", ErrExists, p)
		} else if !errors.Is(err, os.ErrNotExist) {
			return "", fmt.Errorf("dr: %v", err)
		}
	}
	tmp := out + ".partial"
	if err := os.Remove(tmp); err != nil && !errors.Is(err, os.ErrNotExist) {
		return "", fmt.Errorf("dr: %v", err)
	}
	return tmp, nil
}

// finish makes the data file private (it holds the server's metadata and
// queued ciphertext) and durable under its final name.
func finish(tmp, out string) error {
	if err := os.Chmod(tmp, 0o600); err != nil {
		return err
	}
	if err := syncFile(tmp); err != nil {
		return err
	}
	if err := os.Rename(tmp, out); err != nil {
		return err
	}
	return syncDir(filepath.Dir(out))
}

func syncFile(path string) error {
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		return err
	}
	defer f.Close()
	return f.Sync()
}

func syncDir(dir string) error {
	f, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer f.Close()
	return f.Sync()
}

// DefaultName returns the default file name of a backup made at t:
// veil-backup-20060102T150405Z.db (SQLite) or .pgdump (PostgreSQL).
func DefaultName(backend string, t time.Time) string {
	ext := ".db"
	if backend == BackendPostgres {
		ext = ".pgdump"
	}
	return "veil-backup-" + t.UTC().Format("20060102T150405Z") + ext
}

// IsPostgres reports whether a --db value names a PostgreSQL database.
func IsPostgres(db string) bool {
	return strings.HasPrefix(db, "postgres://") || strings.HasPrefix(db, "postgresql://")
}

// BackupOptions tunes [Backup].
type BackupOptions struct {
	// Now is the clock for the manifest's Created; nil means time.Now.
	Now func() time.Time
	// PGDump is the pg_dump program; empty means "pg_dump" on PATH.
	PGDump string
}

func (o *BackupOptions) now() time.Time {
	if o != nil && o.Now != nil {
		return o.Now().UTC()
	}
	return time.Now().UTC()
}

// Backup snapshots the database db (a SQLite file path, or a postgres://
// URL) into the file out and writes its manifest beside it. Neither file
// may exist yet. The server may keep running and writing meanwhile.
func Backup(ctx context.Context, db, out string, opts *BackupOptions) (*Manifest, error) {
	if opts == nil {
		opts = &BackupOptions{}
	}
	if IsPostgres(db) {
		return backupPostgres(ctx, db, out, opts)
	}
	return backupSQLite(ctx, db, out, opts)
}
