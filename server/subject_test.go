package server

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/veil-e2ee/veil/legalhold"
	"github.com/veil-e2ee/veil/server/store/postgres"
	"github.com/veil-e2ee/veil/server/store/postgres/pgtest"
)

// TestExportErase: on SQLite and PostgreSQL, the access right lists an
// account with its devices, queues and blobs; the erasure right removes
// it with everything about it, answers a receipt that verifies against
// the published key, and leaves no row and no byte naming the account in
// the database (the SQLite files are grepped; every PostgreSQL row is
// read as text).
func TestExportErase(t *testing.T) {
	for _, backend := range []string{"sqlite", "postgres"} {
		t.Run(backend, func(t *testing.T) {
			var opts []envOpt
			var pgDSN string
			if backend == "postgres" {
				pgDSN = pgtest.DSN(t)
				st, err := postgres.Open(context.Background(), pgDSN)
				if err != nil {
					t.Fatal(err)
				}
				t.Cleanup(func() { st.Close() })
				opts = append(opts, withStore(st))
			}
			e := newEnv(t, opts...)
			alice := e.register(uniqueName("alice"), 3, 3)
			alice2 := e.link(alice, 4242)
			bob := e.register(uniqueName("bob"), 2, 2)
			if r := e.sendTo(bob, alice.account, randBytes(16), []dev{alice, alice2}, []byte("queued-for-alice")); r.status != 200 {
				t.Fatalf("send: %d %s", r.status, r.body)
			}
			if r := e.sendTo(alice, bob.account, randBytes(16), []dev{bob}, []byte("from-alice-to-bob")); r.status != 200 {
				t.Fatalf("send: %d %s", r.status, r.body)
			}
			if r := doReqWith(t, e.url, "PUT", "/v1/blobs/"+strings.Repeat("A", 22), map[string]string{"Content-Type": "application/octet-stream", "Authorization": alice.auth()}, []byte("archive")); r.status != 204 {
				t.Fatalf("blob: %d %s", r.status, r.body)
			}

			r := e.do("GET", "/v1/accounts/me/export", &alice, nil)
			if r.status != 200 {
				t.Fatalf("export: %d %s", r.status, r.body)
			}
			var x Export
			if err := json.Unmarshal(r.body, &x); err != nil {
				t.Fatal(err)
			}
			if x.AccountID != alice.account || len(x.Devices) != 2 || x.Devices[0].QueuedEnvelopes != 1 || x.Devices[0].OneTimePreKeys != 3 || x.BlobCount != 1 {
				t.Fatalf("export: %s", r.body)
			}

			id, _ := parseAccountID(alice.account)
			if backend == "sqlite" { // control: the scan below can see the account
				if ck, ok := e.st.(interface{ Checkpoint(context.Context) error }); ok {
					ck.Checkpoint(context.Background())
				}
				b, _ := os.ReadFile(filepath.Join(e.dir, "veil.db"))
				if !bytes.Contains(b, id[:]) {
					t.Fatal("control: the database file does not hold the account id")
				}
			}

			// A legal hold keeps the account until it is lifted; then the
			// erasure takes the hold's records too.
			admin, _ := legalhold.GenerateAdminKey("ada", rand.Reader)
			tool := &HoldAdmin{Store: e.st, Secret: testSecret, Admins: legalhold.Admins{"ada": admin.Public()}}
			hold, err := tool.Request(context.Background(), admin, id, "erasure test: alice's case")
			if err != nil {
				t.Fatal(err)
			}
			if r := e.do("DELETE", "/v1/accounts/me", &alice, nil); r.status != 409 || !strings.Contains(string(r.body), "legal_hold") {
				t.Fatalf("erasing an account under hold: %d %s", r.status, r.body)
			}
			if hid, err := ParseHoldID(hold.ID); err != nil {
				t.Fatal(err)
			} else if _, err := tool.Lift(context.Background(), admin, hid, "case closed"); err != nil {
				t.Fatal(err)
			}

			r = e.do("DELETE", "/v1/accounts/me", &alice, nil)
			if r.status != 200 {
				t.Fatalf("erase: %d %s", r.status, r.body)
			}
			var rc Receipt
			if err := json.Unmarshal(r.body, &rc); err != nil {
				t.Fatal(err)
			}
			var key struct {
				PublicKey []byte `json:"public_key"`
			}
			json.Unmarshal(e.do("GET", "/v1/receipts/key", nil, nil).body, &key)
			if !VerifyReceipt(ed25519.PublicKey(key.PublicKey), &rc) || rc.AccountID != alice.account || rc.Devices != 2 || rc.Envelopes != 3 || rc.Blobs != 1 {
				t.Fatalf("receipt %+v does not verify", rc)
			}
			forged := rc
			forged.Envelopes++
			if VerifyReceipt(ed25519.PublicKey(key.PublicKey), &forged) {
				t.Fatal("an edited receipt verifies")
			}
			for _, d := range []dev{alice, alice2} {
				if r := e.do("GET", "/v1/devices", &d, nil); r.status != 401 {
					t.Fatalf("an erased device authenticates: %d", r.status)
				}
			}
			if r := e.do("GET", "/v1/bundles/"+alice.account, &bob, nil); r.status != 404 {
				t.Fatalf("bundles of an erased account: %d", r.status)
			}

			needles := [][]byte{id[:], []byte(alice.account), []byte(hex.EncodeToString(id[:])), []byte(strings.ReplaceAll(alice.account, "-", "")),
				[]byte("alice's case"), []byte(hex.EncodeToString([]byte("alice's case")))}
			if backend == "sqlite" {
				if ck, ok := e.st.(interface{ Checkpoint(context.Context) error }); ok {
					ck.Checkpoint(context.Background())
				}
				ents, _ := os.ReadDir(e.dir)
				for _, f := range ents {
					b, _ := os.ReadFile(filepath.Join(e.dir, f.Name()))
					for _, n := range needles {
						if i := bytes.Index(b, n); i >= 0 {
							t.Errorf("%s still holds the erased account (%q) at offset %d", f.Name(), n, i)
						}
					}
				}
				return
			}
			conn, err := pgx.Connect(context.Background(), pgDSN)
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close(context.Background())
			rows, err := conn.Query(context.Background(), `SELECT table_name FROM information_schema.tables WHERE table_schema = current_schema() AND table_type = 'BASE TABLE'`)
			if err != nil {
				t.Fatal(err)
			}
			var tables []string
			for rows.Next() {
				var n string
				rows.Scan(&n)
				tables = append(tables, n)
			}
			rows.Close()
			if len(tables) < 8 {
				t.Fatalf("found only tables %v", tables)
			}
			for _, tb := range tables {
				rows, err := conn.Query(context.Background(), `SELECT t::text FROM `+pgx.Identifier{tb}.Sanitize()+` t`)
				if err != nil {
					t.Fatal(err)
				}
				for rows.Next() {
					var line string
					rows.Scan(&line)
					for _, n := range needles[1:] {
						if strings.Contains(line, string(n)) {
							t.Errorf("table %s still names the erased account: %s", tb, line)
						}
					}
				}
				rows.Close()
			}
		})
	}
}
