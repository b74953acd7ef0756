package dr_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/veil-e2ee/veil/server/dr"
	"github.com/veil-e2ee/veil/server/store/postgres"
	"github.com/veil-e2ee/veil/server/store/postgres/pgtest"
)

// needPGTools skips (or, in CI, fails) when the PostgreSQL client tools
// are missing.
func needPGTools(t *testing.T) {
	t.Helper()
	for _, p := range []string{"pg_dump", "pg_restore"} {
		if _, err := exec.LookPath(p); err != nil {
			if os.Getenv("CI") == "true" {
				t.Fatalf("%s is missing and CI=true, so this test must not be skipped: %v", p, err)
			}
			t.Skipf("SKIPPING: %s is not installed: %v", p, err)
		}
	}
}

func openPG(t *testing.T) (string, *postgres.Store) {
	t.Helper()
	needPGTools(t)
	dsn := pgtest.DSN(t)
	st, err := postgres.Open(context.Background(), dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return dsn, st
}

// scratchDatabases lists the drill databases left on the test server.
func scratchDatabases(t *testing.T) []string {
	t.Helper()
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, pgtest.URL())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	rows, _ := conn.Query(ctx, `SELECT datname FROM pg_database WHERE datname LIKE 'veil\_drill\_%'`)
	names, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		t.Fatal(err)
	}
	return names
}

// A PostgreSQL backup taken while a server on the same database stores
// sends and registrations restores into a scratch database and passes the
// drill; the scratch database is gone afterwards; a damaged dump fails.
func TestPostgresBackupAndDrill(t *testing.T) {
	dsn, st := openPG(t)
	base := startServer(t, st)
	ld := startLoad(t, base)
	waitFor(t, "the first sends", func() bool {
		if err := ld.err(); err != nil {
			t.Fatalf("load: %v", err)
		}
		return ld.sends.Load() >= 100
	})
	left := len(scratchDatabases(t))
	ctx := context.Background()
	file := filepath.Join(t.TempDir(), "pg.pgdump")
	before := ld.sends.Load()
	m, err := dr.Backup(ctx, dsn, file, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("backup: %d bytes, schema %s v%d, tables %v; %d sends during it", m.Size, m.PGSchema, m.SchemaVersion, m.Tables, ld.sends.Load()-before)
	ld.stop()
	if err := ld.err(); err != nil {
		t.Fatalf("load: %v", err)
	}
	if m.Backend != dr.BackendPostgres || !strings.HasPrefix(m.PGSchema, "veil_test_") || m.SchemaVersion < 9 ||
		m.Tables["accounts"] < 16 || m.Tables["devices"] != m.Tables["accounts"] || m.Tables["envelopes"] > m.Tables["idempotency"] {
		t.Fatalf("manifest %+v", m)
	}
	rep, err := dr.Drill(ctx, file, &dr.DrillOptions{Scratch: pgtest.URL()})
	if err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	rep.WriteText(&b)
	t.Logf("%s", b.String())
	if !rep.Pass {
		t.Fatalf("drill failed: %v", rep.Err())
	}
	for _, want := range []string{"pg_restore", "schema_version", "rows envelopes", "store", "migrations"} {
		found := false
		for _, c := range rep.Checks {
			found = found || c.Name == want
		}
		if !found {
			t.Errorf("no %q check in the report", want)
		}
	}
	if n := len(scratchDatabases(t)); n != left {
		t.Errorf("%d scratch databases before the drill, %d after", left, n)
	}

	// A flipped byte: the checksum fails; pg_restore refuses or restores
	// something else, and the database is dropped all the same.
	bad := cloneBackup(t, file)
	raw, _ := os.ReadFile(bad)
	raw[len(raw)/2] ^= 0xff
	os.WriteFile(bad, raw, 0o600)
	rep, err = dr.Drill(ctx, bad, &dr.DrillOptions{Scratch: pgtest.URL()})
	if err != nil {
		t.Fatal(err)
	}
	if rep.Pass || failed(rep, "sha256") == nil {
		t.Fatalf("corrupted dump: pass %v, failed %v", rep.Pass, rep.Failed())
	}
	// Garbage for a dump, with a matching checksum: pg_restore fails.
	garbage := cloneBackup(t, file)
	junk := []byte("PGDMP not really")
	os.WriteFile(garbage, junk, 0o600)
	sum := sha256.Sum256(junk)
	editManifest(t, garbage, func(m map[string]any) {
		m["sha256"], m["size"] = hex.EncodeToString(sum[:]), len(junk)
	})
	rep, err = dr.Drill(ctx, garbage, &dr.DrillOptions{Scratch: pgtest.URL()})
	if err != nil {
		t.Fatal(err)
	}
	if rep.Pass || failed(rep, "pg_restore") == nil || failed(rep, "sha256") != nil {
		t.Fatalf("garbage dump: pass %v, failed %v", rep.Pass, rep.Failed())
	}
	if n := len(scratchDatabases(t)); n != left {
		t.Errorf("%d scratch databases before the drills, %d after", left, n)
	}
	// Without a scratch server the drill cannot run.
	if _, err := dr.Drill(ctx, file, nil); err == nil || !strings.Contains(err.Error(), "scratch") {
		t.Fatalf("drill without scratch: %v", err)
	}
}

// A missing pg_dump is a clear ErrTool error, which does not echo the
// URL's password.
func TestPostgresBackupMissingTool(t *testing.T) {
	_, err := dr.Backup(context.Background(), "postgres://u:secret@127.0.0.1:1/x", filepath.Join(t.TempDir(), "x.pgdump"),
		&dr.BackupOptions{PGDump: "/nonexistent/pg_dump", Now: time.Now})
	if !errors.Is(err, dr.ErrTool) || strings.Contains(err.Error(), "secret") {
		t.Fatalf("err = %v", err)
	}
}

// scripts/pg-backup.sh and scripts/pg-restore.sh, the manual procedure,
// work on a real store schema: the restored database has the same schema
// version and rows, and a dump that changed after it was taken is refused.
func TestPostgresScripts(t *testing.T) {
	for _, p := range []string{"sh", "sha256sum", "psql"} {
		if _, err := exec.LookPath(p); err != nil {
			if os.Getenv("CI") == "true" {
				t.Fatalf("%s is missing and CI=true, so this test must not be skipped: %v", p, err)
			}
			t.Skipf("SKIPPING: %s is not installed", p)
		}
	}
	dsn, st := openPG(t)
	ctx := context.Background()
	base := startServer(t, st)
	ld := startLoad(t, base)
	waitFor(t, "the first sends", func() bool { return ld.sends.Load() >= 50 })
	ld.stop()
	du, err := url.Parse(dsn)
	if err != nil {
		t.Fatal(err)
	}
	schema := du.Query().Get("search_path")
	root, _ := filepath.Abs("../../scripts")
	dir := t.TempDir()
	out, err := exec.CommandContext(ctx, "sh", filepath.Join(root, "pg-backup.sh"), pgtest.URL(), dir, schema).CombinedOutput()
	if err != nil {
		t.Fatalf("pg-backup.sh: %v\n%s", err, out)
	}
	files, _ := filepath.Glob(filepath.Join(dir, "*.pgdump"))
	if len(files) != 1 {
		t.Fatalf("pg-backup.sh wrote %v\n%s", files, out)
	}

	conn, err := pgx.Connect(ctx, pgtest.URL())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	target := "veil_drill_script_" + strings.TrimPrefix(schema, "veil_test_")
	if _, err := conn.Exec(ctx, "CREATE DATABASE "+target); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Exec(context.Background(), "DROP DATABASE IF EXISTS "+target+" WITH (FORCE)") })
	u, _ := url.Parse(pgtest.URL())
	u.Path = "/" + target
	out, err = exec.CommandContext(ctx, "sh", filepath.Join(root, "pg-restore.sh"), files[0], u.String()).CombinedOutput()
	if err != nil {
		t.Fatalf("pg-restore.sh: %v\n%s", err, out)
	}
	var src, dst [2]int64
	q := `SELECT (SELECT max(version) FROM ` + schema + `.schema_migrations), (SELECT count(*) FROM ` + schema + `.envelopes)`
	if err := conn.QueryRow(ctx, q).Scan(&src[0], &src[1]); err != nil {
		t.Fatal(err)
	}
	c2, err := pgx.Connect(ctx, u.String())
	if err != nil {
		t.Fatal(err)
	}
	defer c2.Close(ctx)
	if err := c2.QueryRow(ctx, q).Scan(&dst[0], &dst[1]); err != nil {
		t.Fatal(err)
	}
	if src != dst || src[1] == 0 {
		t.Fatalf("source (version, envelopes) %v, restored %v", src, dst)
	}

	f, _ := os.OpenFile(files[0], os.O_APPEND|os.O_WRONLY, 0)
	f.Write([]byte{0})
	f.Close()
	out, err = exec.CommandContext(ctx, "sh", filepath.Join(root, "pg-restore.sh"), files[0], u.String()).CombinedOutput()
	if err == nil || !strings.Contains(string(out), "altered or corrupted") {
		t.Fatalf("pg-restore.sh of an altered dump: %v\n%s", err, out)
	}
}
