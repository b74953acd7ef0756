package dr_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ncruces/go-sqlite3/driver"

	"github.com/veil-e2ee/veil/server"
	"github.com/veil-e2ee/veil/server/dr"
	"github.com/veil-e2ee/veil/server/loadgen"
	"github.com/veil-e2ee/veil/server/store"
	"github.com/veil-e2ee/veil/server/store/sqlite"
)

// startServer runs a real server over st on a loopback port and returns
// its base URL.
func startServer(t testing.TB, st store.Store) string {
	t.Helper()
	srv, err := server.New(server.Config{
		Store:  st,
		Secret: bytes.Repeat([]byte{0x5e}, 32),
		Limits: server.Limits{Register: server.Unlimited, Send: server.Unlimited, Lookup: server.Unlimited, Link: server.Unlimited},
	})
	if err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv.Start(l)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := srv.Shutdown(ctx); err != nil {
			t.Errorf("shutdown: %v", err)
		}
	})
	return "http://" + l.Addr().String()
}

// load keeps a server busy until stop is called: senders, a registration
// loop (new accounts, devices and prekeys) and receivers that acknowledge
// (delete) half the devices' envelopes. It returns how many sends and
// registrations completed so far.
type load struct {
	sends, regs atomic.Int64
	errs        chan error
	cancel      context.CancelFunc
	wg          sync.WaitGroup
	rcv         *loadgen.Receivers
}

func startLoad(t *testing.T, base string) *load {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	c := loadgen.NewClient(base, 16)
	devs, err := c.Register(ctx, "load", 16)
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	rcv, err := c.Receive(ctx, devs[:8])
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	ld := &load{errs: make(chan error, 16), cancel: cancel, rcv: rcv}
	for g := range 4 {
		ld.wg.Add(1)
		go func() {
			defer ld.wg.Done()
			r := rand.New(rand.NewPCG(uint64(g), 7))
			for ctx.Err() == nil {
				i := r.IntN(len(devs))
				from, to := devs[i], devs[(i+1+r.IntN(len(devs)-1))%len(devs)]
				if err := c.Send(ctx, from, to); err != nil {
					if ctx.Err() == nil {
						ld.errs <- err
					}
					return
				}
				ld.sends.Add(1)
			}
		}()
	}
	ld.wg.Add(1)
	go func() {
		defer ld.wg.Done()
		for i := 0; ctx.Err() == nil; i++ {
			if _, err := c.Register(ctx, fmt.Sprintf("extra%d", i), 2); err != nil {
				if ctx.Err() == nil {
					ld.errs <- err
				}
				return
			}
			ld.regs.Add(2)
		}
	}()
	t.Cleanup(ld.stop)
	return ld
}

func (ld *load) stop() {
	ld.cancel()
	ld.wg.Wait()
	ld.rcv.Close()
}

func (ld *load) err() error {
	select {
	case err := <-ld.errs:
		return err
	default:
		return nil
	}
}

// waitFor polls cond for up to 30 s.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for range 3000 {
		if cond() {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatalf("timed out waiting for %s", what)
}

func openSQLite(t testing.TB, path string) *sqlite.Store {
	t.Helper()
	st, err := sqlite.Open(context.Background(), path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

// queryInt runs a one-number query on a SQLite file, read-only.
func queryInt(t *testing.T, path, q string) int64 {
	t.Helper()
	db, err := driver.Open("file:" + path + "?mode=ro")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var n int64
	if err := db.QueryRow(q).Scan(&n); err != nil {
		t.Fatalf("%s: %v", q, err)
	}
	return n
}

func drill(t *testing.T, file string) *dr.Report {
	t.Helper()
	rep, err := dr.Drill(context.Background(), file, &dr.DrillOptions{TempDir: t.TempDir()})
	if err != nil {
		t.Fatalf("drill could not run: %v", err)
	}
	var b strings.Builder
	rep.WriteText(&b)
	t.Logf("%s", b.String())
	return rep
}

// A backup taken while the server registers accounts, stores sends and
// deletes acknowledged envelopes is one consistent state: the drill
// passes (integrity, foreign keys, counts, checksum, store opens without
// migrations) and the copy holds no envelope without its device and no
// envelope without its idempotency record (both are written in the
// send's transaction).
func TestSQLiteBackupUnderLoad(t *testing.T) {
	dir := t.TempDir()
	dbPath := filepath.Join(dir, "veil.db")
	st := openSQLite(t, dbPath)
	base := startServer(t, st)
	ld := startLoad(t, base)
	waitFor(t, "the first sends", func() bool {
		if err := ld.err(); err != nil {
			t.Fatalf("load: %v", err)
		}
		return ld.sends.Load() >= 200
	})

	out := t.TempDir()
	var concurrent int64
	for i := range 3 {
		before := ld.sends.Load()
		regsBefore := ld.regs.Load()
		file := filepath.Join(out, fmt.Sprintf("b%d.db", i))
		m, err := dr.Backup(context.Background(), dbPath, file, nil)
		if err != nil {
			t.Fatalf("backup %d: %v", i, err)
		}
		during := ld.sends.Load() - before
		concurrent += during
		t.Logf("backup %d: %d bytes, tables %v; %d sends and %d registrations completed during it", i, m.Size, m.Tables, during, ld.regs.Load()-regsBefore)
		if err := ld.err(); err != nil {
			t.Fatalf("load: %v", err)
		}
		if m.Backend != dr.BackendSQLite || m.SchemaVersion < 5 || m.Tables["accounts"] < 16 || m.Tables["devices"] != m.Tables["accounts"] {
			t.Fatalf("manifest %+v", m)
		}
		// One file, no WAL beside it, in rollback-journal mode.
		for _, side := range []string{"-wal", "-shm", "-journal", ".partial"} {
			if _, err := os.Stat(file + side); err == nil {
				t.Errorf("%s%s exists", file, side)
			}
		}
		hdr := make([]byte, 20)
		f, _ := os.Open(file)
		f.ReadAt(hdr, 0)
		f.Close()
		if hdr[18] != 1 || hdr[19] != 1 {
			t.Errorf("backup header read/write versions %d/%d, want 1/1 (rollback journal)", hdr[18], hdr[19])
		}
		rep := drill(t, file)
		if !rep.Pass || rep.Err() != nil {
			t.Fatalf("drill of backup %d failed: %v", i, rep.Err())
		}
		if n := queryInt(t, file, `SELECT count(*) FROM envelopes e WHERE NOT EXISTS (SELECT 1 FROM devices d WHERE d.account_id = e.account_id AND d.device_id = e.device_id)`); n != 0 {
			t.Errorf("backup %d: %d envelopes without a device", i, n)
		}
		if e, k := m.Tables["envelopes"], m.Tables["idempotency"]; e > k {
			t.Errorf("backup %d: %d envelopes but only %d idempotency records", i, e, k)
		}
		if m.Tables["envelopes"] == 0 && i == 2 {
			t.Errorf("no envelopes in the backup: the load did not reach the database")
		}
	}
	ld.stop()
	if err := ld.err(); err != nil {
		t.Fatalf("load: %v", err)
	}
	if concurrent == 0 {
		t.Fatalf("no send completed while a backup ran: the test did not test backups under load")
	}
	// The server kept working: the live database is still fine too.
	if n := queryInt(t, dbPath, `SELECT count(*) FROM accounts`); n < 16 {
		t.Fatalf("live database has %d accounts", n)
	}
}

// backupFixture makes a small backup (a server that handled a few sends)
// and returns its path.
func backupFixture(t *testing.T) string {
	t.Helper()
	dbPath := filepath.Join(t.TempDir(), "veil.db")
	st := openSQLite(t, dbPath)
	base := startServer(t, st)
	c := loadgen.NewClient(base, 4)
	ctx := context.Background()
	devs, err := c.Register(ctx, "fix", 4)
	if err != nil {
		t.Fatal(err)
	}
	for i := range 40 {
		if err := c.Send(ctx, devs[i%4], devs[(i+1)%4]); err != nil {
			t.Fatal(err)
		}
	}
	file := filepath.Join(t.TempDir(), "fixture.db")
	if _, err := dr.Backup(ctx, dbPath, file, nil); err != nil {
		t.Fatal(err)
	}
	return file
}

// cloneBackup copies a backup and its manifest into a new directory.
func cloneBackup(t *testing.T, file string) string {
	t.Helper()
	dst := filepath.Join(t.TempDir(), filepath.Base(file))
	for _, p := range [][2]string{{file, dst}, {dr.ManifestPath(file), dr.ManifestPath(dst)}} {
		b, err := os.ReadFile(p[0])
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p[1], b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return dst
}

func editManifest(t *testing.T, file string, edit func(m map[string]any)) {
	t.Helper()
	b, err := os.ReadFile(dr.ManifestPath(file))
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	edit(m)
	b, _ = json.Marshal(m)
	if err := os.WriteFile(dr.ManifestPath(file), b, 0o600); err != nil {
		t.Fatal(err)
	}
}

func failed(rep *dr.Report, name string) *dr.Check {
	for _, c := range rep.Failed() {
		if c.Name == name {
			return &c
		}
	}
	return nil
}

// Every kind of damage fails the drill, naming the check and the numbers.
func TestDrillDetectsDamage(t *testing.T) {
	good := backupFixture(t)
	if rep := drill(t, good); !rep.Pass {
		t.Fatalf("the intact fixture fails: %v", rep.Err())
	}
	// Drilling through the manifest's path works as well.
	if rep := drill(t, dr.ManifestPath(good)); !rep.Pass {
		t.Fatalf("drill via the manifest fails: %v", rep.Err())
	}
	size := func(p string) int64 {
		fi, err := os.Stat(p)
		if err != nil {
			t.Fatal(err)
		}
		return fi.Size()
	}
	pageSize := queryInt(t, good, `PRAGMA page_size`)

	cases := []struct {
		name   string
		damage func(t *testing.T, file string)
		check  string // a check that must fail
		detail string // in its detail
	}{
		{"flipped byte", func(t *testing.T, file string) {
			b, _ := os.ReadFile(file)
			b[len(b)/2] ^= 0x01
			os.WriteFile(file, b, 0o600)
		}, "sha256", "altered or corrupted"},
		{"truncated", func(t *testing.T, file string) {
			os.Truncate(file, size(file)/2)
		}, "sha256", "truncated"},
		{"row count edited", func(t *testing.T, file string) {
			editManifest(t, file, func(m map[string]any) {
				m["tables"].(map[string]any)["envelopes"] = m["tables"].(map[string]any)["envelopes"].(float64) + 1
			})
		}, "rows envelopes", "manifest says 41"},
		{"schema version edited", func(t *testing.T, file string) {
			editManifest(t, file, func(m map[string]any) { m["schema_version"] = 99 })
		}, "schema_version", "manifest says 99"},
		{"table added to manifest", func(t *testing.T, file string) {
			editManifest(t, file, func(m map[string]any) { m["tables"].(map[string]any)["secrets"] = 1 })
		}, "tables", "missing from the restore: [secrets]"},
		{"checksum edited", func(t *testing.T, file string) {
			editManifest(t, file, func(m map[string]any) { m["sha256"] = strings.Repeat("ab", 32) })
		}, "sha256", "manifest says abab"},
		{"manifest garbled", func(t *testing.T, file string) {
			os.WriteFile(dr.ManifestPath(file), []byte(`{"format":"veil-backup",`), 0o600)
		}, "manifest", "bad manifest"},
		{"manifest missing", func(t *testing.T, file string) {
			os.Remove(dr.ManifestPath(file))
		}, "manifest", "no such file"},
		{"data file missing", func(t *testing.T, file string) {
			os.Remove(file)
		}, "sha256", "cannot read the backup"},
		// Damage that the checksum cannot see, because whoever damaged the
		// file also rewrote the manifest: SQLite's own checks catch it.
		{"rehashed corruption", func(t *testing.T, file string) {
			b, _ := os.ReadFile(file)
			for p := int64(1); p*pageSize < int64(len(b)); p++ {
				b[p*pageSize] = 0x42 // not a b-tree page type
			}
			os.WriteFile(file, b, 0o600)
			sum := sha256.Sum256(b)
			editManifest(t, file, func(m map[string]any) {
				m["sha256"], m["size"] = hex.EncodeToString(sum[:]), len(b)
			})
		}, "integrity_check", ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			file := cloneBackup(t, good)
			tc.damage(t, file)
			rep := drill(t, file)
			if rep.Pass {
				t.Fatalf("damaged backup passes the drill")
			}
			if !errors.Is(rep.Err(), dr.ErrDrillFailed) {
				t.Fatalf("Err() = %v", rep.Err())
			}
			c := failed(rep, tc.check)
			if c == nil {
				t.Fatalf("check %q did not fail; failed: %v", tc.check, rep.Failed())
			}
			if !strings.Contains(c.Detail, tc.detail) {
				t.Fatalf("check %q: detail %q does not mention %q", tc.check, c.Detail, tc.detail)
			}
			var b strings.Builder
			rep.WriteText(&b)
			if !strings.Contains(b.String(), "FAIL  "+tc.check) || !strings.Contains(b.String(), "checks failed") {
				t.Fatalf("text report does not show the failure:\n%s", b.String())
			}
		})
	}
}

// A database whose server has stopped (no -wal or -shm left) backs up too,
// without a change to the database file, and the backup files are private
// to their owner.
func TestBackupStoppedServer(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	db := filepath.Join(dir, "veil.db")
	st, err := sqlite.Open(ctx, db)
	if err != nil {
		t.Fatal(err)
	}
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}
	before, err := os.ReadFile(db)
	if err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(dir, "b.db")
	if _, err := dr.Backup(ctx, db, file, nil); err != nil {
		t.Fatal(err)
	}
	after, _ := os.ReadFile(db)
	if !bytes.Equal(before, after) {
		t.Errorf("the backup changed the source database")
	}
	// The read-only connection may leave SQLite's empty -wal and -shm
	// companions beside a stopped database; the server opens it as before.
	st, err = sqlite.Open(ctx, db)
	if err != nil {
		t.Fatalf("the server cannot reopen its database after a backup: %v", err)
	}
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{file, dr.ManifestPath(file)} {
		fi, err := os.Stat(p)
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm() != 0o600 {
			t.Errorf("%s has mode %v, want 0600", p, fi.Mode().Perm())
		}
	}
	if rep := drill(t, file); !rep.Pass {
		t.Fatalf("drill: %v", rep.Err())
	}
}

// A backup never overwrites anything, and refuses a database that does
// not exist rather than creating an empty one.
func TestBackupRefusals(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	missing := filepath.Join(dir, "nope.db")
	if _, err := dr.Backup(ctx, missing, filepath.Join(dir, "b.db"), nil); !errors.Is(err, dr.ErrNoDatabase) {
		t.Fatalf("backup of a missing database: %v", err)
	}
	if _, err := os.Stat(missing); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("the backup created the missing database")
	}
	good := backupFixture(t)
	src := filepath.Join(dir, "src.db")
	b, _ := os.ReadFile(good)
	os.WriteFile(src, b, 0o600)
	if _, err := dr.Backup(ctx, src, good, nil); !errors.Is(err, dr.ErrExists) {
		t.Fatalf("backup over an existing file: %v", err)
	}
	other := filepath.Join(dir, "other.db")
	os.WriteFile(dr.ManifestPath(other), []byte("{}"), 0o600)
	if _, err := dr.Backup(ctx, src, other, nil); !errors.Is(err, dr.ErrExists) {
		t.Fatalf("backup over an existing manifest: %v", err)
	}
	if _, err := os.Stat(other); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("refused backup left a file")
	}
}

// The manifest is strict: unknown fields, other versions, path names.
func TestParseManifest(t *testing.T) {
	good := backupFixture(t)
	b, err := os.ReadFile(dr.ManifestPath(good))
	if err != nil {
		t.Fatal(err)
	}
	m, err := dr.ParseManifest(b)
	if err != nil {
		t.Fatal(err)
	}
	if m.File != "fixture.db" || m.Created.IsZero() || m.Created.Location() != time.UTC {
		t.Fatalf("manifest %+v", m)
	}
	for name, edit := range map[string]func(map[string]any){
		"unknown field":  func(m map[string]any) { m["extra"] = 1 },
		"format version": func(m map[string]any) { m["format_version"] = 2 },
		"backend":        func(m map[string]any) { m["backend"] = "mysql" },
		"path in file":   func(m map[string]any) { m["file"] = "../etc/passwd" },
		"short sha":      func(m map[string]any) { m["sha256"] = "abcd" },
		"negative rows":  func(m map[string]any) { m["tables"] = map[string]any{"accounts": -1} },
		"no tables":      func(m map[string]any) { m["tables"] = map[string]any{} },
		"pg no schema":   func(m map[string]any) { m["backend"] = "postgres" },
	} {
		var mm map[string]any
		json.Unmarshal(b, &mm)
		edit(mm)
		bb, _ := json.Marshal(mm)
		if _, err := dr.ParseManifest(bb); !errors.Is(err, dr.ErrManifest) {
			t.Errorf("%s: ParseManifest = %v, want ErrManifest", name, err)
		}
	}
}
