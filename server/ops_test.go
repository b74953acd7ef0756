package server

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"math/big"
	"net"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// TestFaultsAnswerCleanly: a store fault is a logged 500 with a JSON body,
// a closed store a 503, a panic a 500 counted in veil_panics_total; the
// server keeps serving.
func TestFaultsAnswerCleanly(t *testing.T) {
	e, ms := newFaultEnv(t)
	alice := e.register(uniqueName("alice"), 0, 0)
	bob := e.register(uniqueName("bob"), 0, 0)
	var mode atomic.Value
	mode.Store("")
	ms.Inject(func(op string) error {
		if op != "Deliver" {
			return nil
		}
		switch mode.Load() {
		case "fault":
			return errors.New("disk on fire at 10.1.2.3")
		case "closed":
			return errClosedStore
		case "panic":
			panic("boom")
		}
		return nil
	})
	for m, want := range map[string]int{"fault": 500, "closed": 503, "panic": 500} {
		mode.Store(m)
		r := e.sendTo(alice, bob.account, randBytes(16), []dev{bob}, []byte("x"))
		if r.status != want {
			t.Fatalf("%s: %d %s", m, r.status, r.body)
		}
		checkErrorBody(t, r)
	}
	mode.Store("")
	if r := e.sendTo(alice, bob.account, randBytes(16), []dev{bob}, []byte("x")); r.status != 200 {
		t.Fatalf("after faults: %d", r.status)
	}
	logs := e.logs.String()
	if !strings.Contains(logs, "handler panic") || !strings.Contains(logs, "request failed") {
		t.Fatalf("faults not logged:\n%s", logs)
	}
	if strings.Contains(logs, "10.1.2.3") {
		t.Fatal("address from an error message reached the logs")
	}
	r := e.do("GET", "/metrics", nil, nil)
	if !strings.Contains(string(r.body), "veil_panics_total 1") {
		t.Fatal("panic not counted")
	}
}

func checkErrorBody(t *testing.T, r resp) {
	t.Helper()
	if m := r.json(t); m["error"] == nil {
		t.Fatalf("no error object: %s", r.body)
	}
}

// TestGracefulShutdownDrains: a request in flight when Shutdown starts
// completes with its real answer; new connections are refused.
func TestGracefulShutdownDrains(t *testing.T) {
	e, ms := newFaultEnv(t)
	alice := e.register(uniqueName("alice"), 0, 0)
	bob := e.register(uniqueName("bob"), 0, 0)
	entered := make(chan struct{}, 1)
	ms.Inject(func(op string) error {
		if op == "Deliver" {
			entered <- struct{}{}
			time.Sleep(300 * time.Millisecond)
		}
		return nil
	})
	got := make(chan resp, 1)
	go func() { got <- e.sendTo(alice, bob.account, randBytes(16), []dev{bob}, []byte("x")) }()
	<-entered
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := e.srv.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	if r := <-got; r.status != 200 {
		t.Fatalf("in-flight send: %d %s", r.status, r.body)
	}
	if d, _ := ms.QueueDepth(context.Background(), bob.accountID(t), 1); d != 1 {
		t.Fatalf("queue depth %d", d)
	}
	if _, err := http.Get(e.url + "/healthz"); err == nil {
		t.Fatal("server still accepting after shutdown")
	}
}

func TestReadiness(t *testing.T) {
	e, ms := newFaultEnv(t)
	if r := e.do("GET", "/readyz", nil, nil); r.status != 200 {
		t.Fatalf("readyz: %d", r.status)
	}
	ms.Inject(func(op string) error {
		if op == "Ping" {
			return errors.New("db down")
		}
		return nil
	})
	if r := e.do("GET", "/readyz", nil, nil); r.status != 503 || r.code(t) != "unavailable" {
		t.Fatalf("readyz with db down: %d %s", r.status, r.body)
	}
	if r := e.do("GET", "/healthz", nil, nil); r.status != 200 {
		t.Fatalf("healthz: %d", r.status)
	}
}

// TestMetricsAndLogsHoldNoIdentifiers runs a flow, then checks the
// metrics exposition and the logs for account ids, usernames,
// credentials and content.
func TestMetricsAndLogsHoldNoIdentifiers(t *testing.T) {
	e := newEnv(t)
	aliceName, bobName := uniqueName("alice"), uniqueName("bob")
	alice := e.register(aliceName, 2, 2)
	bob := e.register(bobName, 2, 2)
	content := []byte("CONTENT-MARKER-0123456789")
	e.do("GET", "/v1/usernames/"+bobName, &alice, nil)
	e.do("GET", "/v1/bundles/"+bob.account, &alice, nil)
	ws := e.dial(bob)
	ws.mustNext(2 * time.Second) // queue_empty
	e.sendTo(alice, bob.account, randBytes(16), []dev{bob}, content)
	f := ws.mustNext(2 * time.Second)
	ws.ack(f.Envelope.Seq)
	e.do("GET", "/v1/prekeys", &bob, nil)
	e.do("PUT", "/v1/messages/"+bob.account, &alice, []byte("garbage"))
	// Wait for the ack to be processed (the delivery-latency histogram is
	// only fed when the envelope was handed over with its commit time,
	// which a loaded machine may not do: not something to wait for).
	waitFor(t, func() bool {
		r := e.do("GET", "/metrics", nil, nil)
		return strings.Contains(string(r.body), "veil_envelopes_acked_total 1")
	})
	metrics := string(e.do("GET", "/metrics", nil, nil).body)
	for _, want := range []string{`veil_http_requests_total{code="200",route="send"} 1`, "veil_websocket_connections 1",
		`veil_db_duration_seconds_count{op="deliver"}`, `veil_prekey_stock_count{kind="ec"}`, "veil_queue_depth_count",
		`veil_http_requests_total{code="400",route="send"} 1`} {
		if !strings.Contains(metrics, want) {
			t.Errorf("metrics lack %s", want)
		}
	}
	logs := e.logs.String()
	for _, d := range []dev{alice, bob} {
		for what, s := range map[string]string{"account id": d.account, "credential": d.cred, "auth header": d.auth()} {
			if strings.Contains(metrics, s) {
				t.Errorf("%s in metrics", what)
			}
			if strings.Contains(logs, s) {
				t.Errorf("%s in logs", what)
			}
		}
	}
	for _, s := range []string{aliceName, bobName, string(content)} {
		if strings.Contains(metrics, s) || strings.Contains(logs, s) {
			t.Errorf("%q in metrics or logs", s)
		}
	}
	if !strings.Contains(logs, "acct:") {
		t.Error("account pseudonyms missing from logs")
	}
}

func TestTLS(t *testing.T) {
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "veil-test"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert := tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
	srv, err := New(Config{Store: openSQLite(t, t.TempDir()), Secret: testSecret, TLS: &tls.Config{Certificates: []tls.Certificate{cert}}})
	if err != nil {
		t.Fatal(err)
	}
	l, _ := net.Listen("tcp", "127.0.0.1:0")
	srv.Start(l)
	defer srv.Shutdown(context.Background())
	pool := x509.NewCertPool()
	parsed, _ := x509.ParseCertificate(der)
	pool.AddCert(parsed)
	c := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	res, err := c.Get("https://" + l.Addr().String() + "/healthz")
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != 200 || res.TLS == nil {
		t.Fatalf("https: %d", res.StatusCode)
	}
	// Plain HTTP on the TLS port fails.
	if res, err := http.Get("http://" + l.Addr().String() + "/healthz"); err == nil && res.StatusCode == 200 {
		t.Fatal("plain HTTP served on the TLS listener")
	}
}

func TestNewValidatesConfig(t *testing.T) {
	if _, err := New(Config{Secret: testSecret}); !errors.Is(err, ErrConfig) {
		t.Fatalf("no store: %v", err)
	}
	ms := newStoreForConfig(t)
	if _, err := New(Config{Store: ms, Secret: []byte("short")}); !errors.Is(err, ErrConfig) {
		t.Fatalf("short secret: %v", err)
	}
	if _, err := New(Config{Store: ms, Secret: testSecret, Limits: Limits{EnvelopeTTL: 48 * time.Hour, DedupWindow: time.Hour}}); !errors.Is(err, ErrConfig) {
		t.Fatalf("dedup shorter than ttl: %v", err)
	}
}
