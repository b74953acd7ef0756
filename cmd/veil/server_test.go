package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/coder/websocket"
)

func TestParseFlagsEnv(t *testing.T) {
	fs, f := newServerFlags()
	env := map[string]string{"VEIL_LISTEN": "0.0.0.0:1", "VEIL_DATA": "/env/data", "VEIL_RATE_PREKEYS": "off", "VEIL_MAX_QUEUE": "7"}
	if err := parseFlags(fs, []string{"--data", "/flag/data"}, func(k string) string { return env[k] }); err != nil {
		t.Fatal(err)
	}
	if f.listen != "0.0.0.0:1" || f.data != "/flag/data" || f.limits.PreKeyFetch.Burst != -1 || f.limits.MaxQueue != 7 {
		t.Fatalf("got %+v", f)
	}
	fs, _ = newServerFlags()
	fs.SetOutput(io.Discard)
	if err := parseFlags(fs, nil, func(k string) string {
		if k == "VEIL_RATE_SEND" {
			return "banana"
		}
		return ""
	}); err == nil || !strings.Contains(err.Error(), "VEIL_RATE_SEND") {
		t.Fatalf("bad env accepted: %v", err)
	}
	var out bytes.Buffer
	if err := run(context.Background(), []string{"nope"}, &out, &out); err != errUsage {
		t.Fatalf("unknown command: %v", err)
	}
}

// buildVeil compiles the binary once per test binary run.
var buildOnce struct {
	sync.Once
	path string
	err  error
}

func buildVeil(t *testing.T) string {
	t.Helper()
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "veil-bin-")
		if err != nil {
			buildOnce.err = err
			return
		}
		buildOnce.path = filepath.Join(dir, "veil")
		cmd := exec.Command("go", "build", "-o", buildOnce.path, ".")
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		if out, err := cmd.CombinedOutput(); err != nil {
			buildOnce.err = fmt.Errorf("%v: %s", err, out)
		}
	})
	if buildOnce.err != nil {
		t.Fatal(buildOnce.err)
	}
	return buildOnce.path
}

// child is a running 'veil server'.
type child struct {
	cmd  *exec.Cmd
	url  string
	logs string // path of its stderr
}

func startServer(t *testing.T, bin, data, logPath string) *child {
	t.Helper()
	lf, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	defer lf.Close()
	start, _ := lf.Seek(0, io.SeekEnd)
	cmd := exec.Command(bin, "server", "--listen", "127.0.0.1:0", "--data", data, "--log-level", "debug",
		"--rate-send", "off", "--rate-register", "off", "--rate-prekeys", "off")
	cmd.Stderr = lf
	cmd.Stdout = lf
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	c := &child{cmd: cmd, logs: logPath}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	deadline := time.Now().Add(15 * time.Second)
	for time.Now().Before(deadline) {
		b, _ := os.ReadFile(logPath)
		if int64(len(b)) > start {
			sc := bufio.NewScanner(bytes.NewReader(b[start:]))
			for sc.Scan() {
				var rec struct{ Msg, Addr string }
				if json.Unmarshal(sc.Bytes(), &rec) == nil && rec.Msg == "server: serving" {
					c.url = "http://" + rec.Addr
					return c
				}
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("server did not start; log:\n%s", readFile(logPath))
	return nil
}

func readFile(p string) string { b, _ := os.ReadFile(p); return string(b) }

type device struct {
	account, cred string
	regID         uint32
}

func (d device) auth() string {
	return "Basic " + base64.StdEncoding.EncodeToString([]byte(d.account+".1:"+d.cred))
}

var httpc = &http.Client{Timeout: 10 * time.Second}

func call(base, method, path string, d *device, body any) (int, []byte, error) {
	b, _ := json.Marshal(body)
	req, _ := http.NewRequest(method, base+path, bytes.NewReader(b))
	req.Header.Set("Content-Type", "application/json")
	if d != nil {
		req.Header.Set("Authorization", d.auth())
	}
	res, err := httpc.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer res.Body.Close()
	out, err := io.ReadAll(res.Body)
	return res.StatusCode, out, err
}

func rnd(n int) []byte { b := make([]byte, n); rand.Read(b); return b }

func register(t *testing.T, base, name string) device {
	t.Helper()
	sk := func() map[string]any { return map[string]any{"key_id": 1, "public_key": rnd(33), "signature": rnd(64)} }
	body := map[string]any{"username": name, "identity_key": rnd(33), "registration_id": 42, "signed_prekey": sk(), "last_resort_kem_prekey": sk()}
	code, b, err := call(base, "POST", "/v1/accounts", nil, body)
	if err != nil || code != 201 {
		t.Fatalf("register: %d %s %v", code, b, err)
	}
	var r struct{ AccountID, Credential string }
	json.Unmarshal(b, &r)
	var m map[string]string
	json.Unmarshal(b, &m)
	return device{account: m["account_id"], cred: m["credential"], regID: 42}
}

func send(base string, from, to device, id, content []byte) (int, error) {
	body := map[string]any{"message_id": id, "envelopes": []map[string]any{{"device_id": 1, "registration_id": to.regID, "type": 1, "content": content}}}
	code, _, err := call(base, "PUT", "/v1/messages/"+to.account, &from, body)
	return code, err
}

// receiveAll drains a device's queue over WebSocket, acking everything,
// and returns the envelopes (message id → contents seen, in order).
func receiveAll(t *testing.T, base string, d device) map[string][][]byte {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	c, _, err := websocket.Dial(ctx, "ws"+strings.TrimPrefix(base, "http")+"/v1/queue/websocket",
		&websocket.DialOptions{HTTPHeader: http.Header{"Authorization": {d.auth()}}})
	if err != nil {
		t.Fatal(err)
	}
	defer c.CloseNow()
	c.SetReadLimit(1 << 20)
	got := map[string][][]byte{}
	for {
		_, b, err := c.Read(ctx)
		if err != nil {
			t.Fatalf("read: %v", err)
		}
		var f struct {
			Type     string
			Envelope struct {
				Seq       int64
				MessageID []byte `json:"message_id"`
				Content   []byte
			}
		}
		json.Unmarshal(b, &f)
		if f.Type == "queue_empty" {
			// A clean close lets the server process the acks sent so far.
			c.Close(websocket.StatusNormalClosure, "")
			return got
		}
		k := string(f.Envelope.MessageID)
		got[k] = append(got[k], f.Envelope.Content)
		if err := c.Write(ctx, websocket.MessageText, []byte(fmt.Sprintf(`{"type":"ack","seq":%d}`, f.Envelope.Seq))); err != nil {
			t.Fatal(err)
		}
	}
}

// TestKill9 kills 'veil server' with SIGKILL in the middle of a send
// load, restarts it on the same data directory, resends every message
// whose answer never arrived (same ids), and checks the recipient gets
// every message acknowledged to its sender exactly once. It then scans
// the data directory and the logs for the envelope marker and the
// credentials.
func TestKill9(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the binary")
	}
	bin := buildVeil(t)
	data := t.TempDir()
	logPath := filepath.Join(t.TempDir(), "server.log")
	srv := startServer(t, bin, data, logPath)
	aliceName, bobName := "alice_kill9", "bob_kill9"
	alice := register(t, srv.url, aliceName)
	bob := register(t, srv.url, bobName)

	const marker = "VEIL-PLAINTEXT-MARKER-"
	type msg struct {
		id, content []byte
		acked       bool
	}
	var mu sync.Mutex
	var msgs []*msg
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for g := 0; g < 8; g++ {
		wg.Add(1)
		go func(g int) {
			defer wg.Done()
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				m := &msg{id: rnd(16), content: []byte(fmt.Sprintf("%s%d-%d-%x", marker, g, i, rnd(8)))}
				mu.Lock()
				msgs = append(msgs, m)
				mu.Unlock()
				code, err := send(srv.url, alice, bob, m.id, m.content)
				if err != nil {
					return // the server died under us; this one's fate is unknown
				}
				if code == 200 {
					mu.Lock()
					m.acked = true
					mu.Unlock()
				} else {
					t.Errorf("send: status %d", code)
					return
				}
			}
		}(g)
	}
	// Let the load run, then kill -9 mid-flight.
	time.Sleep(700 * time.Millisecond)
	if err := srv.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	srv.cmd.Wait()
	close(stop)
	wg.Wait()

	srv2 := startServer(t, bin, data, logPath)
	ackedBefore, resent := 0, 0
	for _, m := range msgs {
		if m.acked {
			ackedBefore++
			continue
		}
		resent++
		code, err := send(srv2.url, alice, bob, m.id, m.content)
		if err != nil || code != 200 {
			t.Fatalf("resend: %d %v", code, err)
		}
		m.acked = true
	}
	t.Logf("%d messages acknowledged before the kill, %d resent after restart", ackedBefore, resent)
	if ackedBefore < 50 {
		t.Fatalf("load too light to be meaningful: %d", ackedBefore)
	}
	got := receiveAll(t, srv2.url, bob)
	for _, m := range msgs {
		cs := got[string(m.id)]
		if len(cs) == 0 {
			t.Fatalf("message %x lost", m.id)
		}
		if len(cs) > 1 {
			t.Errorf("message %x delivered %d times", m.id, len(cs))
		}
		if !bytes.Equal(cs[0], m.content) {
			t.Fatalf("message %x content changed", m.id)
		}
		delete(got, string(m.id))
	}
	if len(got) != 0 {
		t.Fatalf("%d unexpected messages delivered", len(got))
	}
	// A second connection finds the queue empty: acks deleted everything.
	// The server processes the last acks just after the close handshake.
	deadline := time.Now().Add(5 * time.Second)
	for {
		code, b, err := call(srv2.url, "GET", "/v1/queue", &bob, nil)
		if err != nil || code != 200 {
			t.Fatalf("fetch: %d %v", code, err)
		}
		if bytes.Contains(b, []byte(`"envelopes":[]`)) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("envelopes survived their ack: %.200s", b)
		}
		time.Sleep(20 * time.Millisecond)
	}

	// Graceful stop, then scan what the server left on disk and in logs.
	srv2.cmd.Process.Signal(syscall.SIGTERM)
	if err := srv2.cmd.Wait(); err != nil {
		t.Fatalf("graceful stop: %v", err)
	}
	logs := readFile(logPath)
	for _, d := range []device{alice, bob} {
		raw, _ := base64.StdEncoding.DecodeString(d.cred)
		needles := map[string][]byte{"credential": []byte(d.cred), "raw credential": raw, "account id": []byte(d.account)}
		for what, n := range needles {
			if strings.Contains(logs, string(n)) {
				t.Errorf("%s found in logs", what)
			}
			scanDir(t, data, what, n)
		}
	}
	for _, name := range []string{aliceName, bobName} {
		if strings.Contains(logs, name) {
			t.Errorf("username %q found in logs", name)
		}
	}
	if strings.Contains(logs, marker) || strings.Contains(logs, base64.StdEncoding.EncodeToString([]byte(marker))[:20]) {
		t.Error("envelope content found in logs")
	}
	if clientIP := "127.0.0.1"; strings.Count(logs, clientIP) != strings.Count(logs, `"msg":"server: serving"`) {
		t.Error("client address found in logs")
	}
	// Every envelope was acknowledged and deleted: its bytes must be
	// nowhere in the data directory (secure_delete + checkpoint on close).
	scanDir(t, data, "envelope marker", []byte(marker))
}

func scanDir(t *testing.T, dir, what string, needle []byte) {
	t.Helper()
	filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, _ := os.ReadFile(p)
		if bytes.Contains(b, needle) {
			t.Errorf("%s found in %s", what, filepath.Base(p))
		}
		return nil
	})
}
