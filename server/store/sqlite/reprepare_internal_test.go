package sqlite

import (
	"database/sql"
	"path/filepath"
	"testing"

	"github.com/ncruces/go-sqlite3"
)

// TestNoReprepare checks that a prepared statement with a range on a
// bound value and a bound LIMIT (the shape of Pending) is not compiled
// again when its bindings change, on the writer and on a reader. With
// STAT4 and without the planner stability guarantee SQLite re-prepares
// it at every step after a rebind.
func TestNoReprepare(t *testing.T) {
	s, err := Open(t.Context(), filepath.Join(t.TempDir(), "veil.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	const q = `SELECT seq, content FROM envelopes WHERE account_id = ? AND device_id = ? AND seq > ? ORDER BY seq LIMIT ?`
	for name, db := range map[string]*sql.DB{"writer": s.w, "reader": s.r.db} {
		conn, err := db.Conn(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		err = conn.Raw(func(dc any) error {
			c := dc.(interface{ Raw() *sqlite3.Conn }).Raw()
			st, _, err := c.Prepare(q)
			if err != nil {
				return err
			}
			defer st.Close()
			for i := range 20 {
				st.BindBlob(1, make([]byte, 16))
				st.BindInt(2, i+1)
				st.BindInt64(3, int64(i))
				st.BindInt(4, 10+i)
				for st.Step() {
				}
				if err := st.Reset(); err != nil {
					return err
				}
			}
			if n := st.Status(sqlite3.STMTSTATUS_REPREPARE, false); n != 0 {
				t.Errorf("%s: statement re-prepared %d times over 20 executions; want 0", name, n)
			}
			return nil
		})
		conn.Close()
		if err != nil {
			t.Fatal(err)
		}
	}
}
