package interop

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"sync"
	"testing"
	"time"
)

// LibsignalVersion is the exact @signalapp/libsignal-client release the peer
// runs. package.json pins it; [Start] refuses any other installed version.
const LibsignalVersion = "0.90.0"

// DefaultTimeout bounds one [Peer.Call], so that a wedged Node process fails a
// test instead of hanging it.
const DefaultTimeout = 2 * time.Minute

var (
	// ErrPeer matches every [*PeerError]: libsignal (or the peer's request
	// checks) rejected the request.
	ErrPeer = errors.New("interop: peer error")
	// ErrClosed is returned once the Node process has exited or the Peer was
	// closed.
	ErrClosed = errors.New("interop: peer closed")
	// ErrTimeout is returned when a call outlives its deadline; the Node
	// process is then killed, since its state is unknown.
	ErrTimeout = errors.New("interop: peer timed out")
	// ErrProtocol is returned for a response that does not follow the
	// JSON-lines protocol (bad JSON, wrong id). The peer is closed after it.
	ErrProtocol = errors.New("interop: malformed peer response")
	// ErrUnavailable is returned by [Launch] when Node or the pinned package
	// is missing.
	ErrUnavailable = errors.New("interop: reference peer unavailable")
)

// Error codes carried by [PeerError.Code]: libsignal's error names, plus
// BadRequest for requests the peer itself rejects.
const (
	CodeBadRequest        = "BadRequest"
	CodeGeneric           = "LibSignalError"
	CodeDuplicatedMessage = "DuplicatedMessage"
	CodeUntrustedIdentity = "UntrustedIdentity"
	CodeInvalidSession    = "InvalidSession"
	// CodeSealedSenderSelfSend: a sealed message whose certificate names the
	// recipient itself.
	CodeSealedSenderSelfSend = "SealedSenderSelfSend"
)

// PeerError is a request the Node peer answered with an error.
type PeerError struct {
	Method  string // the request's method
	Code    string // libsignal's error name, e.g. [CodeDuplicatedMessage]
	Message string // libsignal's message text
}

func (e *PeerError) Error() string {
	return fmt.Sprintf("interop: %s: %s: %s", e.Method, e.Code, e.Message)
}

// Is makes every PeerError match [ErrPeer].
func (e *PeerError) Is(target error) bool { return target == ErrPeer }

// HasCode reports whether err is a [*PeerError] with the given code.
func HasCode(err error, code string) bool {
	var pe *PeerError
	return errors.As(err, &pe) && pe.Code == code
}

// Peer is a running Node process hosting libsignal devices.
type Peer struct {
	mu     sync.Mutex // serializes calls: one request in flight
	nextID uint64
	broken error // set once the pipe can no longer be trusted

	cmd     *exec.Cmd
	stdin   io.WriteCloser
	lines   chan []byte
	closing chan struct{}
	exited  chan struct{}
	waitErr error // valid after exited is closed
	stderr  tailBuffer

	closeOnce sync.Once
}

// Dir returns the interop directory (where package.json and peer.mjs live):
// $VEIL_INTEROP_DIR if set, else this source file's directory (so that tests
// in any package find it), else — for -trimpath builds, whose file names are
// not paths — the nearest interop/peer.mjs above the working directory.
func Dir() (string, error) {
	if d := os.Getenv("VEIL_INTEROP_DIR"); d != "" {
		return d, nil
	}
	if _, file, _, ok := runtime.Caller(0); ok && filepath.IsAbs(file) {
		dir := filepath.Dir(file)
		if _, err := os.Stat(filepath.Join(dir, "peer.mjs")); err == nil {
			return dir, nil
		}
	}
	if wd, err := os.Getwd(); err == nil {
		for d := wd; ; d = filepath.Dir(d) {
			for _, c := range []string{d, filepath.Join(d, "interop")} {
				if _, err := os.Stat(filepath.Join(c, "peer.mjs")); err == nil {
					return c, nil
				}
			}
			if filepath.Dir(d) == d {
				break
			}
		}
	}
	return "", fmt.Errorf("%w: cannot find the interop directory (peer.mjs); set VEIL_INTEROP_DIR", ErrUnavailable)
}

// Start launches the Node peer for a test or benchmark and closes it in
// t.Cleanup. When Node or the pinned npm package is missing it skips the test
// saying how to install them, or fails it when CI=true.
func Start(t testing.TB) *Peer {
	t.Helper()
	p, err := Launch()
	if errors.Is(err, ErrUnavailable) {
		if os.Getenv("CI") == "true" {
			t.Fatalf("%v (CI=true: the libsignal reference peer is required)", err)
		}
		skipNotice.Do(func() {
			fmt.Fprintf(os.Stderr, "interop: SKIPPING libsignal interop tests: %v\n", err)
		})
		t.Skipf("SKIP (libsignal reference peer missing): %v", err)
	}
	if err != nil {
		t.Fatalf("interop: start the Node peer: %v", err)
	}
	t.Cleanup(func() {
		if err := p.Close(); err != nil {
			t.Errorf("interop: close the Node peer: %v", err)
		}
	})
	return p
}

var skipNotice sync.Once

// Launch starts the Node peer outside of a test. It returns an error matching
// [ErrUnavailable] when Node or the pinned package is missing.
func Launch() (*Peer, error) {
	dir, err := Dir()
	if err != nil {
		return nil, err
	}
	node, err := exec.LookPath("node")
	if err != nil {
		return nil, fmt.Errorf("%w: node is not on PATH; install Node >= 20.11, then run `make interop-deps` (cd interop && npm ci)", ErrUnavailable)
	}
	pkgJSON := filepath.Join(dir, "node_modules", "@signalapp", "libsignal-client", "package.json")
	raw, err := os.ReadFile(pkgJSON)
	if err != nil {
		return nil, fmt.Errorf("%w: @signalapp/libsignal-client is not installed in %s; run `make interop-deps` (cd interop && npm ci)", ErrUnavailable, dir)
	}
	var pkg struct{ Version string }
	if err := json.Unmarshal(raw, &pkg); err != nil {
		return nil, fmt.Errorf("interop: read %s: %w", pkgJSON, err)
	}
	if pkg.Version != LibsignalVersion {
		return nil, fmt.Errorf("interop: installed @signalapp/libsignal-client is %q, want %q; run `make interop-deps`", pkg.Version, LibsignalVersion)
	}

	cmd := exec.Command(node, "peer.mjs")
	cmd.Dir = dir
	p := &Peer{
		cmd:     cmd,
		lines:   make(chan []byte),
		closing: make(chan struct{}),
		exited:  make(chan struct{}),
	}
	cmd.Stderr = &p.stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return nil, fmt.Errorf("interop: %w", err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, fmt.Errorf("interop: %w", err)
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("interop: start %s: %w", node, err)
	}
	p.stdin = stdin
	go p.readLoop(stdout)

	// The first call doubles as a readiness check: it fails if Node cannot
	// load the native module, and confirms the version actually loaded.
	v, err := p.Version()
	if err != nil {
		p.Close()
		return nil, fmt.Errorf("interop: Node peer did not start: %w", err)
	}
	if v.Libsignal != LibsignalVersion {
		p.Close()
		return nil, fmt.Errorf("interop: Node peer loaded libsignal %q, want %q", v.Libsignal, LibsignalVersion)
	}
	return p, nil
}

// readLoop hands stdout lines to Call, then reaps the process. (Wait must not
// run before stdout is drained.)
func (p *Peer) readLoop(stdout io.Reader) {
	r := bufio.NewReaderSize(stdout, 64<<10)
	for {
		line, err := r.ReadBytes('\n')
		if len(line) > 0 && err == nil {
			select {
			case p.lines <- line:
			case <-p.closing:
			}
		}
		if err != nil {
			break
		}
	}
	p.waitErr = p.cmd.Wait()
	close(p.exited)
}

// Close kills the Node process and waits for it. It is safe to call more than
// once. The first call reports an error (matching [ErrClosed], with stderr)
// if the process had already died on its own, so a crash fails the test.
func (p *Peer) Close() error {
	var err error
	p.closeOnce.Do(func() {
		close(p.closing)
		p.stdin.Close()
		select {
		case <-p.exited:
			if p.waitErr != nil {
				err = p.exitError()
			}
		default:
			p.cmd.Process.Kill()
			<-p.exited
		}
	})
	return err
}

func (p *Peer) exitError() error {
	if tail := p.stderr.String(); tail != "" {
		return fmt.Errorf("%w: node exited: %v; stderr: %s", ErrClosed, p.waitErr, tail)
	}
	return fmt.Errorf("%w: node exited: %v", ErrClosed, p.waitErr)
}

// Call sends one request and decodes its result into resp (which may be nil).
// req must marshal to a JSON object; "id" and "method" are added.
func (p *Peer) Call(method string, req, resp any) error {
	ctx, cancel := context.WithTimeout(context.Background(), DefaultTimeout)
	defer cancel()
	return p.CallContext(ctx, method, req, resp)
}

// CallContext is [Peer.Call] with a caller-chosen deadline.
func (p *Peer) CallContext(ctx context.Context, method string, req, resp any) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.broken != nil {
		return p.broken
	}
	id := p.nextID
	line, err := encodeRequest(id, method, req)
	if err != nil {
		return err
	}
	select {
	case <-p.exited:
		return p.dead()
	case <-p.closing:
		return ErrClosed
	default:
	}
	p.nextID = id + 1
	if _, err := p.stdin.Write(line); err != nil {
		return p.dead()
	}

	var got []byte
	select {
	case got = <-p.lines:
	case <-p.exited:
		return p.dead()
	case <-p.closing:
		return ErrClosed
	case <-ctx.Done():
		p.broken = fmt.Errorf("%w: %s after %v", ErrTimeout, method, ctx.Err())
		go p.Close()
		return p.broken
	}
	result, err := decodeResponse(got, id, method)
	if errors.Is(err, ErrProtocol) {
		p.broken = err
		go p.Close()
		return err
	}
	if err != nil {
		return err
	}
	if resp == nil {
		return nil
	}
	if err := json.Unmarshal(result, resp); err != nil {
		return fmt.Errorf("%w: %s result: %v", ErrProtocol, method, err)
	}
	return nil
}

// dead reports why the process is gone, with its stderr.
func (p *Peer) dead() error {
	select {
	case <-p.closing:
		return ErrClosed
	default:
	}
	select {
	case <-p.exited:
		return p.exitError()
	case <-time.After(time.Second):
		return fmt.Errorf("%w: write to node failed; stderr: %s", ErrClosed, p.stderr.String())
	}
}

// encodeRequest merges id and method into req's JSON object.
func encodeRequest(id uint64, method string, req any) ([]byte, error) {
	fields := map[string]json.RawMessage{}
	if req != nil {
		raw, err := json.Marshal(req)
		if err != nil {
			return nil, fmt.Errorf("interop: encode %s request: %w", method, err)
		}
		if err := json.Unmarshal(raw, &fields); err != nil {
			return nil, fmt.Errorf("interop: %s request is not a JSON object: %w", method, err)
		}
	}
	m, _ := json.Marshal(method)
	fields["method"] = m
	fields["id"] = json.RawMessage(strconv.FormatUint(id, 10))
	line, err := json.Marshal(fields)
	if err != nil {
		return nil, fmt.Errorf("interop: encode %s request: %w", method, err)
	}
	return append(line, '\n'), nil
}

// decodeResponse checks one response line against the request id and returns
// its result, a *PeerError, or an error matching ErrProtocol.
func decodeResponse(line []byte, wantID uint64, method string) (json.RawMessage, error) {
	var r struct {
		ID     json.RawMessage `json:"id"`
		Result json.RawMessage `json:"result"`
		Error  *string         `json:"error"`
		Code   string          `json:"code"`
	}
	if err := json.Unmarshal(line, &r); err != nil {
		return nil, fmt.Errorf("%w: %s: %v", ErrProtocol, method, err)
	}
	if got := string(bytes.TrimSpace(r.ID)); got != strconv.FormatUint(wantID, 10) {
		return nil, fmt.Errorf("%w: %s: response id %.40q, want %d", ErrProtocol, method, got, wantID)
	}
	if r.Error != nil {
		code := r.Code
		if code == "" {
			code = CodeGeneric
		}
		return nil, &PeerError{Method: method, Code: code, Message: *r.Error}
	}
	if len(r.Result) == 0 || r.Result[0] != '{' {
		return nil, fmt.Errorf("%w: %s: response has neither an error nor a result object", ErrProtocol, method)
	}
	return r.Result, nil
}

// tailBuffer keeps the last stderrTail bytes written to it.
type tailBuffer struct {
	mu  sync.Mutex
	buf []byte
}

const stderrTail = 8 << 10

func (b *tailBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.buf = append(b.buf, p...)
	if over := len(b.buf) - stderrTail; over > 0 {
		b.buf = append(b.buf[:0], b.buf[over:]...)
	}
	return len(p), nil
}

func (b *tailBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return string(bytes.TrimSpace(b.buf))
}
