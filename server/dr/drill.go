package dr

import (
	"context"
	"crypto/subtle"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"
)

// Check is one verification of a restore drill.
type Check struct {
	Name   string `json:"name"`
	Pass   bool   `json:"pass"`
	Detail string `json:"detail"`
}

// Report is the outcome of a restore drill.
type Report struct {
	File     string    `json:"file"`
	Manifest *Manifest `json:"manifest,omitempty"`
	// Scratch names where the backup was restored: a temporary file
	// (SQLite) or a database that has been dropped again (PostgreSQL).
	Scratch  string        `json:"scratch,omitempty"`
	Checks   []Check       `json:"checks"`
	Pass     bool          `json:"pass"`
	Duration time.Duration `json:"duration_ns"`
}

func (r *Report) add(name string, pass bool, format string, args ...any) {
	r.Checks = append(r.Checks, Check{Name: name, Pass: pass, Detail: fmt.Sprintf(format, args...)})
}

// Failed returns the checks that failed.
func (r *Report) Failed() []Check {
	var out []Check
	for _, c := range r.Checks {
		if !c.Pass {
			out = append(out, c)
		}
	}
	return out
}

// Err returns nil when the drill passed, and otherwise ErrDrillFailed
// naming the failed checks.
func (r *Report) Err() error {
	if r.Pass {
		return nil
	}
	var names []string
	for _, c := range r.Failed() {
		names = append(names, c.Name)
	}
	return fmt.Errorf("%w: %d of %d checks failed (%s)", ErrDrillFailed, len(names), len(r.Checks), strings.Join(names, ", "))
}

// WriteText writes the report for a person: one line per check, then
// the verdict.
func (r *Report) WriteText(w io.Writer) error {
	var b strings.Builder
	fmt.Fprintf(&b, "restore drill of %s\n", r.File)
	if m := r.Manifest; m != nil {
		fmt.Fprintf(&b, "  backup: %s, schema version %d, created %s\n", m.Backend, m.SchemaVersion, m.Created.Format(time.RFC3339))
	}
	if r.Scratch != "" {
		fmt.Fprintf(&b, "  restored into: %s\n", r.Scratch)
	}
	width := 0
	for _, c := range r.Checks {
		width = max(width, len(c.Name))
	}
	for _, c := range r.Checks {
		verdict := "PASS"
		if !c.Pass {
			verdict = "FAIL"
		}
		fmt.Fprintf(&b, "  %s  %-*s  %s\n", verdict, width, c.Name, c.Detail)
	}
	if r.Pass {
		fmt.Fprintf(&b, "PASS: all %d checks passed in %s\n", len(r.Checks), r.Duration.Round(time.Millisecond))
	} else {
		fmt.Fprintf(&b, "FAIL: %d of %d checks failed\n", len(r.Failed()), len(r.Checks))
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// DrillOptions tunes [Drill].
type DrillOptions struct {
	// Scratch is a postgres:// URL of a database on the server where the
	// drill may create (and then drop) a scratch database; required for a
	// PostgreSQL backup. The role needs CREATEDB.
	Scratch string
	// TempDir holds the SQLite scratch copy; empty means os.TempDir().
	TempDir string
	// PGRestore is the pg_restore program; empty means "pg_restore".
	PGRestore string
}

// Drill restores the backup file (the data file, or its manifest) into a
// scratch database and checks it; see the package documentation. It
// returns an error only when the drill could not run (say, no scratch
// server); a backup that fails a check yields a report with Pass false
// (and [Report.Err] says which checks failed).
func Drill(ctx context.Context, file string, opts *DrillOptions) (*Report, error) {
	if opts == nil {
		opts = &DrillOptions{}
	}
	start := time.Now()
	data, manifest := file, ManifestPath(file)
	if strings.HasSuffix(file, ManifestSuffix) {
		manifest = file
		data = ""
	}
	r := &Report{File: file}
	m, err := ReadManifest(manifest)
	if err != nil {
		r.add("manifest", false, "%v", err)
		r.Duration = time.Since(start)
		return r, nil
	}
	if data == "" {
		data = filepath.Join(filepath.Dir(manifest), m.File)
	}
	r.File, r.Manifest = data, m
	r.add("manifest", true, "format %d, %s, schema version %d, %d tables", m.FormatVersion, m.Backend, m.SchemaVersion, len(m.Tables))
	size, sum, err := fileDigest(data)
	switch {
	case err != nil:
		r.add("sha256", false, "cannot read the backup: %v", err)
	case size != m.Size:
		r.add("sha256", false, "file is %d bytes, manifest says %d: truncated or replaced", size, m.Size)
	case subtle.ConstantTimeCompare([]byte(sum), []byte(m.SHA256)) != 1:
		r.add("sha256", false, "file hashes to %s, manifest says %s: the file was altered or corrupted", sum, m.SHA256)
	default:
		r.add("sha256", true, "%d bytes, %s", size, sum)
	}
	if err == nil {
		switch m.Backend {
		case BackendSQLite:
			err = drillSQLite(ctx, data, m, r, opts)
		case BackendPostgres:
			err = drillPostgres(ctx, data, m, r, opts)
		}
		if err != nil {
			return nil, err
		}
	}
	r.Pass = !slices.ContainsFunc(r.Checks, func(c Check) bool { return !c.Pass })
	r.Duration = time.Since(start)
	return r, nil
}

// compareCounts adds a check per table: the restored count against the
// manifest's, and one for tables on only one side.
func compareCounts(r *Report, m *Manifest, got map[string]int64) {
	names := make([]string, 0, len(m.Tables))
	for n := range m.Tables {
		names = append(names, n)
	}
	slices.Sort(names)
	var extra []string
	for n := range got {
		if _, ok := m.Tables[n]; !ok {
			extra = append(extra, n)
		}
	}
	slices.Sort(extra)
	var missing []string
	for _, n := range names {
		if _, ok := got[n]; !ok {
			missing = append(missing, n)
		}
	}
	if len(missing) == 0 && len(extra) == 0 {
		r.add("tables", true, "%d tables, as in the manifest", len(names))
	} else {
		r.add("tables", false, "missing from the restore: [%s]; not in the manifest: [%s]", strings.Join(missing, " "), strings.Join(extra, " "))
	}
	for _, n := range names {
		g, ok := got[n]
		if !ok {
			continue
		}
		if g == m.Tables[n] {
			r.add("rows "+n, true, "%d", g)
		} else {
			r.add("rows "+n, false, "%d rows restored, manifest says %d", g, m.Tables[n])
		}
	}
}

// removeAll is os.RemoveAll for cleanups whose failure changes nothing.
func removeAll(dir string) { _ = os.RemoveAll(dir) }
