package server

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/veil-e2ee/veil/internal/syncbuf"
	"github.com/veil-e2ee/veil/server/internal/faultstore"
	"github.com/veil-e2ee/veil/server/store"
	"github.com/veil-e2ee/veil/server/store/sqlite"
	"github.com/veil-e2ee/veil/server/wake"
)

type env struct {
	t    *testing.T
	srv  *Server
	url  string
	st   store.Store
	logs *syncbuf.Buffer
	dir  string
}

type envOpt func(*Config)

func withLimits(f func(*Limits)) envOpt { return func(c *Config) { f(&c.Limits) } }
func withStore(st store.Store) envOpt   { return func(c *Config) { c.Store = st } }
func withWaker(w wake.Waker) envOpt     { return func(c *Config) { c.Waker = w } }

// testClock is a settable clock for a test server: now reads it, advance
// moves it.
func testClock(start time.Time) (now func() time.Time, advance func(time.Duration)) {
	var mu sync.Mutex
	t := start
	return func() time.Time { mu.Lock(); defer mu.Unlock(); return t },
		func(d time.Duration) { mu.Lock(); defer mu.Unlock(); t = t.Add(d) }
}

func withClock(f func() time.Time) envOpt {
	return func(c *Config) { c.Now = f }
}

var testSecret = bytes.Repeat([]byte{0x5e}, 32)

// openSQLite opens a fresh SQLite store in a temp dir.
func openSQLite(t testing.TB, dir string) store.Store {
	t.Helper()
	st, err := sqlite.Open(context.Background(), filepath.Join(dir, "veil.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

// newEnv starts a server on port 0 over the real SQLite store (unless an
// option swaps the store), with generous rate limits unless overridden.
func newEnv(t *testing.T, opts ...envOpt) *env {
	t.Helper()
	e := &env{t: t, logs: &syncbuf.Buffer{}, dir: t.TempDir()}
	cfg := Config{
		Secret: testSecret,
		Logger: slog.New(slog.NewJSONHandler(e.logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
		Limits: Limits{Register: Unlimited, Send: Unlimited, Lookup: Unlimited, Link: Unlimited, PingInterval: 5 * time.Second},
	}
	for _, o := range opts {
		o(&cfg)
	}
	if cfg.Store == nil {
		cfg.Store = openSQLite(t, e.dir)
	}
	e.st = cfg.Store
	srv, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	srv.observe = observed.record
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv.Start(l)
	e.srv = srv
	e.url = "http://" + l.Addr().String()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := srv.Shutdown(ctx); err != nil {
			t.Errorf("shutdown: %v", err)
		}
	})
	return e
}

// newFaultEnv is newEnv over a fault-injecting wrapper of the SQLite store.
func newFaultEnv(t *testing.T, opts ...envOpt) (*env, *faultstore.Store) {
	fs := faultstore.Wrap(openSQLite(t, t.TempDir()))
	return newEnv(t, append([]envOpt{withStore(fs)}, opts...)...), fs
}

// dev is a registered device as a client sees it.
type dev struct {
	account  string
	id       uint32
	cred     string
	regID    uint32
	identity []byte
}

func (d dev) auth() string {
	return "Basic " + base64.StdEncoding.EncodeToString([]byte(fmt.Sprintf("%s.%d:%s", d.account, d.id, d.cred)))
}

func (d dev) accountID(t testing.TB) store.AccountID {
	id, ok := parseAccountID(d.account)
	if !ok {
		t.Fatalf("bad account id %q", d.account)
	}
	return id
}

type resp struct {
	status int
	header http.Header
	body   []byte
}

func (r resp) json(t testing.TB) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(r.body, &m); err != nil {
		t.Fatalf("status %d: body is not JSON: %q", r.status, r.body)
	}
	return m
}

func (r resp) code(t testing.TB) string {
	t.Helper()
	m := r.json(t)
	e, ok := m["error"].(map[string]any)
	if !ok {
		t.Fatalf("status %d: no error object: %s", r.status, r.body)
	}
	return e["code"].(string)
}

// do sends a request; body may be nil, []byte or a value to marshal.
func (e *env) do(method, path string, d *dev, body any) resp {
	e.t.Helper()
	return doReq(e.t, e.url, method, path, d, body, "application/json")
}

func doReq(t testing.TB, base, method, path string, d *dev, body any, ctype string) resp {
	t.Helper()
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case []byte:
		rd = bytes.NewReader(b)
	case string:
		rd = strings.NewReader(b)
	default:
		j, err := json.Marshal(b)
		if err != nil {
			t.Fatal(err)
		}
		rd = bytes.NewReader(j)
	}
	req, err := http.NewRequest(method, base+path, rd)
	if err != nil {
		t.Fatal(err)
	}
	if rd != nil && ctype != "" {
		req.Header.Set("Content-Type", ctype)
	}
	if d != nil {
		req.Header.Set("Authorization", d.auth())
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return resp{status: res.StatusCode, header: res.Header, body: b}
}

func randBytes(n int) []byte {
	b := make([]byte, n)
	rand.Read(b)
	return b
}

var keyIDs struct {
	mu sync.Mutex
	n  uint32
}

func nextKeyID() uint32 {
	keyIDs.mu.Lock()
	defer keyIDs.mu.Unlock()
	keyIDs.n++
	return keyIDs.n
}

func signedKey(size int) map[string]any {
	return map[string]any{"key_id": nextKeyID(), "public_key": randBytes(size), "signature": randBytes(64)}
}

// keysBody is a prekey set with nEC one-time EC and nKEM one-time KEM keys.
func keysBody(nEC, nKEM int) map[string]any {
	ec := []map[string]any{}
	for i := 0; i < nEC; i++ {
		ec = append(ec, map[string]any{"key_id": nextKeyID(), "public_key": randBytes(33)})
	}
	kem := []map[string]any{}
	for i := 0; i < nKEM; i++ {
		kem = append(kem, signedKey(1569))
	}
	return map[string]any{
		"signed_prekey": signedKey(33), "last_resort_kem_prekey": signedKey(1569),
		"one_time_prekeys": ec, "one_time_kem_prekeys": kem,
	}
}

var userSeq struct {
	mu sync.Mutex
	n  int
}

func uniqueName(prefix string) string {
	userSeq.mu.Lock()
	defer userSeq.mu.Unlock()
	userSeq.n++
	return fmt.Sprintf("%s_%d", prefix, userSeq.n)
}

// register creates an account with nEC/nKEM one-time keys.
func (e *env) register(name string, nEC, nKEM int) dev {
	e.t.Helper()
	return registerAt(e.t, e.url, name, nEC, nKEM)
}

func registerAt(t testing.TB, base, name string, nEC, nKEM int) dev {
	t.Helper()
	body := keysBody(nEC, nKEM)
	ik := randBytes(33)
	reg := uint32(1 + len(name)*37%16000)
	body["username"] = name
	body["identity_key"] = ik
	body["registration_id"] = reg
	r := doReq(t, base, "POST", "/v1/accounts", nil, body, "application/json")
	if r.status != 201 {
		t.Fatalf("register %s: %d %s", name, r.status, r.body)
	}
	m := r.json(t)
	return dev{account: m["account_id"].(string), id: uint32(m["device_id"].(float64)), cred: m["credential"].(string), regID: reg, identity: ik}
}

// link adds a device to d's account.
func (e *env) link(d dev, regID uint32) dev {
	e.t.Helper()
	body := keysBody(2, 2)
	body["registration_id"] = regID
	r := e.do("POST", "/v1/devices", &d, body)
	if r.status != 201 {
		e.t.Fatalf("link: %d %s", r.status, r.body)
	}
	m := r.json(e.t)
	return dev{account: d.account, id: uint32(m["device_id"].(float64)), cred: m["credential"].(string), regID: regID, identity: d.identity}
}

type env1 struct {
	DeviceID       uint32 `json:"device_id"`
	RegistrationID uint32 `json:"registration_id"`
	Type           uint8  `json:"type"`
	Content        []byte `json:"content"`
}

// sendTo sends content to the given recipient devices under msgID.
func (e *env) sendTo(from dev, to string, msgID []byte, targets []dev, content []byte) resp {
	e.t.Helper()
	return sendAt(e.t, e.url, from, to, msgID, targets, content)
}

func sendAt(t testing.TB, base string, from dev, to string, msgID []byte, targets []dev, content []byte) resp {
	t.Helper()
	var envs []env1
	for _, d := range targets {
		envs = append(envs, env1{DeviceID: d.id, RegistrationID: d.regID, Type: 1, Content: content})
	}
	return doReq(t, base, "PUT", "/v1/messages/"+to, &from, map[string]any{"message_id": msgID, "envelopes": envs}, "application/json")
}

// wsClient is a test WebSocket client.
type wsClient struct {
	t testing.TB
	c *websocket.Conn
}

func (e *env) dial(d dev) *wsClient {
	e.t.Helper()
	return dialAt(e.t, e.url, d)
}

func dialAt(t testing.TB, base string, d dev) *wsClient {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c, _, err := websocket.Dial(ctx, "ws"+strings.TrimPrefix(base, "http")+"/v1/queue/websocket",
		&websocket.DialOptions{HTTPHeader: http.Header{"Authorization": {d.auth()}}})
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	c.SetReadLimit(1 << 20)
	w := &wsClient{t: t, c: c}
	t.Cleanup(func() { c.CloseNow() })
	return w
}

type frame struct {
	Type     string `json:"type"`
	Envelope *struct {
		Seq          int64  `json:"seq"`
		MessageID    []byte `json:"message_id"`
		Type         uint8  `json:"type"`
		Sender       string `json:"sender"`
		SenderDevice uint32 `json:"sender_device"`
		Content      []byte `json:"content"`
		ReceivedAt   int64  `json:"received_at"`
	} `json:"envelope"`
}

// next reads one frame, failing after timeout.
func (w *wsClient) next(timeout time.Duration) (frame, error) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	_, b, err := w.c.Read(ctx)
	if err != nil {
		return frame{}, err
	}
	var f frame
	if err := json.Unmarshal(b, &f); err != nil {
		w.t.Fatalf("bad frame %q: %v", b, err)
	}
	return f, nil
}

func (w *wsClient) mustNext(timeout time.Duration) frame {
	w.t.Helper()
	f, err := w.next(timeout)
	if err != nil {
		w.t.Fatalf("read frame: %v", err)
	}
	return f
}

func (w *wsClient) ack(seq int64) {
	w.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := w.c.Write(ctx, websocket.MessageText, []byte(fmt.Sprintf(`{"type":"ack","seq":%d}`, seq))); err != nil {
		w.t.Fatalf("ack: %v", err)
	}
}

func envOr(k, def string) string {
	if v := os.Getenv(k); v != "" {
		return v
	}
	return def
}

func skipOrFail(t testing.TB, what string, err error) {
	t.Helper()
	if os.Getenv("CI") == "true" {
		t.Fatalf("%s unreachable (required when CI=true): %v", what, err)
	}
	t.Skipf("SKIPPING: %s unreachable: %v", what, err)
}

// observed collects every (route, status) answered in this test binary;
// TestMain checks each one is documented in the route table (and so in
// openapi.json).
var observed = &observations{seen: map[string]map[int]bool{}}

type observations struct {
	mu   sync.Mutex
	seen map[string]map[int]bool
}

func (o *observations) record(route string, code int) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.seen[route] == nil {
		o.seen[route] = map[int]bool{}
	}
	o.seen[route][code] = true
}

func TestMain(m *testing.M) {
	code := m.Run()
	if code == 0 {
		s := &Server{}
		allowed := map[string][]int{"unknown": {404}}
		for _, r := range s.routeTable() {
			allowed[r.name] = r.codes
		}
		for route, codes := range observed.seen {
			for c := range codes {
				if !slices.Contains(allowed[route], c) {
					fmt.Fprintf(os.Stderr, "route %q answered %d, which is not documented\n", route, c)
					code = 1
				}
			}
		}
	}
	os.Exit(code)
}

func doReqWith(t testing.TB, base, method, path string, headers map[string]string, body []byte) resp {
	t.Helper()
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequest(method, base+path, rd)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range headers {
		req.Header.Set(k, v)
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return resp{status: res.StatusCode, header: res.Header, body: b}
}

var errClosedStore = store.ErrClosed

func newStoreForConfig(t *testing.T) store.Store { return openSQLite(t, t.TempDir()) }
