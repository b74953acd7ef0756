package server_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"

	"github.com/veil-e2ee/veil/server"
	"github.com/veil-e2ee/veil/server/store/sqlite"
)

// Example starts a server on a SQLite store and registers an account.
func Example() {
	dir, _ := os.MkdirTemp("", "veil-example-")
	defer os.RemoveAll(dir)
	st, err := sqlite.Open(context.Background(), filepath.Join(dir, "veil.db"))
	if err != nil {
		panic(err)
	}
	defer st.Close()
	secret := make([]byte, 32)
	rand.Read(secret)
	srv, err := server.New(server.Config{Store: st, Secret: secret})
	if err != nil {
		panic(err)
	}
	ts := httptest.NewServer(srv.Handler())
	defer ts.Close()

	key := func(n int) []byte { b := make([]byte, n); rand.Read(b); return b }
	body, _ := json.Marshal(map[string]any{
		"username": "alice", "identity_key": key(33), "registration_id": 1234,
		"signed_prekey":          map[string]any{"key_id": 1, "public_key": key(33), "signature": key(64)},
		"last_resort_kem_prekey": map[string]any{"key_id": 2, "public_key": key(1569), "signature": key(64)},
	})
	res, err := http.Post(ts.URL+"/v1/accounts", "application/json", bytes.NewReader(body))
	if err != nil {
		panic(err)
	}
	defer res.Body.Close()
	var reg struct {
		AccountID  string `json:"account_id"`
		DeviceID   uint32 `json:"device_id"`
		Credential string `json:"credential"`
	}
	json.NewDecoder(res.Body).Decode(&reg)
	cred, _ := base64.StdEncoding.DecodeString(reg.Credential)
	fmt.Println(res.StatusCode, "device", reg.DeviceID, "credential bytes", len(cred))
	// Output: 201 device 1 credential bytes 32
}
