package dr_test

import (
	"context"
	"fmt"
	"log"
	"os"
	"path/filepath"

	"github.com/veil-e2ee/veil/server/dr"
	"github.com/veil-e2ee/veil/server/store/sqlite"
)

// A server's SQLite database is backed up while it is open, and the
// backup is then proven restorable by a drill.
func ExampleBackup() {
	dir, err := os.MkdirTemp("", "veil-dr-example")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)
	ctx := context.Background()
	db := filepath.Join(dir, "veil.db")
	st, err := sqlite.Open(ctx, db) // the running server's store
	if err != nil {
		log.Fatal(err)
	}
	defer st.Close()

	file := filepath.Join(dir, "backup.db")
	m, err := dr.Backup(ctx, db, file, nil)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("backend:", m.Backend, "accounts:", m.Tables["accounts"])
	fmt.Println("manifest:", filepath.Base(dr.ManifestPath(file)))

	rep, err := dr.Drill(ctx, file, nil)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("drill passed:", rep.Pass, rep.Err())
	// Output:
	// backend: sqlite accounts: 0
	// manifest: backup.db.manifest.json
	// drill passed: true <nil>
}
