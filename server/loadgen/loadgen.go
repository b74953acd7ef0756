// Package loadgen drives a running Veil server the way many devices would:
// it registers accounts, holds a WebSocket per device, sends opaque 1 KiB
// envelopes and acknowledges what is pushed. It backs `veil bench server`
// and the server's end-to-end benchmarks.
//
// # What is measured
//
// A message's latency runs from just before its send request to the
// moment its envelope is pushed to the recipient's WebSocket: send,
// commit, wake-up, push. Throughput counts messages that went the whole
// way including acknowledgement and deletion (the server's
// veil_envelopes_acked_total counter).
package loadgen

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coder/websocket"
)

// ErrServer means the server answered a request with an unexpected status.
var ErrServer = errors.New("loadgen: unexpected server answer")

// ContentSize is the size of each test envelope.
const ContentSize = 1024

// Device is a registered device with its credential.
type Device struct {
	Account    string
	Credential string
	RegID      uint32
}

func (d Device) auth() string {
	return "Basic " + base64.StdEncoding.EncodeToString([]byte(d.Account+".1:"+d.Credential))
}

// Client talks to one server.
type Client struct {
	Base string
	HTTP *http.Client
	// sends carries Send's requests (sendconn.go); nil for a base URL
	// other than http://host:port, and then Send uses HTTP.
	sends *sendConns
}

// NewClient returns a client for the server at base (http://host:port).
func NewClient(base string, conns int) *Client {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.MaxIdleConnsPerHost = conns
	tr.MaxIdleConns = conns
	return &Client{Base: base, HTTP: &http.Client{Transport: tr, Timeout: 30 * time.Second}, sends: newSendConns(base, conns)}
}

func (c *Client) call(ctx context.Context, method, path string, d *Device, body any) (int, []byte, error) {
	var rd io.Reader
	if raw, ok := body.(json.RawMessage); ok {
		rd = bytes.NewReader(raw)
	} else if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return 0, nil, err
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.Base+path, rd)
	if err != nil {
		return 0, nil, err
	}
	if rd != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if d != nil {
		req.Header.Set("Authorization", d.auth())
	}
	res, err := c.HTTP.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	return res.StatusCode, b, err
}

// put sends a PUT with a JSON body over a lean connection when it can.
func (c *Client) put(ctx context.Context, path string, d *Device, body []byte) (int, []byte, error) {
	if c.sends == nil {
		return c.call(ctx, "PUT", path, d, json.RawMessage(body))
	}
	sc, err := c.sends.get(ctx)
	if err != nil {
		return 0, nil, err
	}
	code, resp, keep, err := sc.do(ctx, c.sends.host, path, d.auth(), body)
	if err != nil || !keep {
		sc.c.Close()
		if err != nil {
			return 0, nil, err
		}
		return code, resp, nil
	}
	out := append([]byte(nil), resp...)
	c.sends.put(sc)
	return code, out, nil
}

func rnd(n int) []byte {
	b := make([]byte, n)
	rand.Read(b)
	return b
}

// Register creates n accounts (one device each) named prefix_i.
func (c *Client) Register(ctx context.Context, prefix string, n int) ([]Device, error) {
	out := make([]Device, n)
	errs := make(chan error, n)
	sem := make(chan struct{}, 16)
	var wg sync.WaitGroup
	for i := range out {
		wg.Add(1)
		sem <- struct{}{}
		go func(i int) {
			defer wg.Done()
			defer func() { <-sem }()
			sk := func() map[string]any { return map[string]any{"key_id": 1, "public_key": rnd(33), "signature": rnd(64)} }
			reg := uint32(1 + i%16000)
			body := map[string]any{"username": fmt.Sprintf("%s_%d", prefix, i), "identity_key": rnd(33), "registration_id": reg,
				"signed_prekey": sk(), "last_resort_kem_prekey": sk()}
			code, b, err := c.call(ctx, "POST", "/v1/accounts", nil, body)
			if err != nil {
				errs <- err
				return
			}
			if code != 201 {
				errs <- fmt.Errorf("%w: register %d %.200s", ErrServer, code, b)
				return
			}
			var r struct {
				AccountID  string `json:"account_id"`
				Credential string `json:"credential"`
			}
			json.Unmarshal(b, &r)
			out[i] = Device{Account: r.AccountID, Credential: r.Credential, RegID: reg}
		}(i)
	}
	wg.Wait()
	close(errs)
	return out, <-errs
}

// Send sends one 1 KiB envelope stamped with the current time. The body
// is encoded by hand (as encoding/json would encode it): the load
// generator shares the machine with the server, so its own work is kept
// small.
func (c *Client) Send(ctx context.Context, from, to Device) error {
	var raw [ContentSize + 16]byte
	rand.Read(raw[8:])
	binary.BigEndian.PutUint64(raw[:8], uint64(time.Now().UnixNano()))
	content, mid := raw[:ContentSize], raw[ContentSize:]
	b := make([]byte, 0, 160+base64.StdEncoding.EncodedLen(ContentSize))
	b = append(b, `{"message_id":"`...)
	b = base64.StdEncoding.AppendEncode(b, mid)
	b = append(b, `","envelopes":[{"device_id":1,"registration_id":`...)
	b = strconv.AppendUint(b, uint64(to.RegID), 10)
	b = append(b, `,"type":1,"content":"`...)
	b = base64.StdEncoding.AppendEncode(b, content)
	b = append(b, `"}]}`...)
	code, body, err := c.put(ctx, "/v1/messages/"+to.Account, &from, b)
	if err != nil {
		return err
	}
	if code != 200 {
		return fmt.Errorf("%w: send %d %.200s", ErrServer, code, body)
	}
	return nil
}

// Receivers holds one WebSocket per device, acking every envelope and
// recording its latency.
type Receivers struct {
	mu       sync.Mutex
	lat      []time.Duration
	received atomic.Int64
	cancel   context.CancelFunc
	wg       sync.WaitGroup
	errs     chan error
}

// Receive connects every device and starts acknowledging.
func (c *Client) Receive(ctx context.Context, devs []Device) (*Receivers, error) {
	ctx, cancel := context.WithCancel(ctx)
	r := &Receivers{cancel: cancel, errs: make(chan error, len(devs))}
	ws := "ws" + strings.TrimPrefix(c.Base, "http") + "/v1/queue/websocket"
	for _, d := range devs {
		conn, _, err := websocket.Dial(ctx, ws, &websocket.DialOptions{HTTPHeader: http.Header{"Authorization": {d.auth()}}, HTTPClient: c.HTTP})
		if err != nil {
			r.Close()
			return nil, err
		}
		conn.SetReadLimit(1 << 20)
		r.wg.Add(1)
		go r.loop(ctx, conn)
	}
	return r, nil
}

type frame struct {
	Type     string `json:"type"`
	Envelope *struct {
		Seq     int64  `json:"seq"`
		Content []byte `json:"content"`
	} `json:"envelope"`
}

// envelopePrefix starts every envelope frame the server pushes.
const envelopePrefix = `{"type":"envelope","envelope":{"seq":`

// parseEnvelopeFrame returns an envelope frame's seq and the send time
// stamped in the first 8 bytes of its content (0 if the content is
// shorter). Frames in the server's own encoding are read without the
// JSON decoder; anything else goes through it. ok is false for frames
// that are not envelopes.
func parseEnvelopeFrame(b []byte) (seq, stamp int64, ok bool) {
	if rest, found := bytes.CutPrefix(b, []byte(envelopePrefix)); found {
		end := bytes.IndexByte(rest, ',')
		_, content, found := bytes.Cut(rest, []byte(`,"content":"`))
		if end > 0 && found {
			if n, err := strconv.ParseInt(string(rest[:end]), 10, 64); err == nil {
				// 12 base64 characters hold the first 9 bytes.
				var head [9]byte
				if len(content) >= 12 {
					if _, err := base64.StdEncoding.Decode(head[:], content[:12]); err == nil {
						return n, int64(binary.BigEndian.Uint64(head[:8])), true
					}
				}
			}
		}
	}
	var f frame
	if err := json.Unmarshal(b, &f); err != nil || f.Type != "envelope" || f.Envelope == nil {
		return 0, 0, false
	}
	if len(f.Envelope.Content) >= 8 {
		stamp = int64(binary.BigEndian.Uint64(f.Envelope.Content))
	}
	return f.Envelope.Seq, stamp, true
}

func (r *Receivers) loop(ctx context.Context, c *websocket.Conn) {
	defer r.wg.Done()
	defer c.CloseNow()
	ack := make([]byte, 0, 64)
	var buf bytes.Buffer // reused: the load generator shares the CPU
	for {
		buf.Reset()
		_, rd, err := c.Reader(ctx)
		if err == nil {
			_, err = buf.ReadFrom(rd)
		}
		if err != nil {
			if ctx.Err() == nil {
				r.errs <- err
			}
			return
		}
		seq, stamp, ok := parseEnvelopeFrame(buf.Bytes())
		if !ok {
			continue
		}
		if stamp != 0 {
			d := time.Since(time.Unix(0, stamp))
			r.mu.Lock()
			r.lat = append(r.lat, d)
			r.mu.Unlock()
		}
		r.received.Add(1)
		ack = strconv.AppendInt(append(ack[:0], `{"type":"ack","seq":`...), seq, 10)
		ack = append(ack, '}')
		if err := c.Write(ctx, websocket.MessageText, ack); err != nil {
			if ctx.Err() == nil {
				r.errs <- err
			}
			return
		}
	}
}

// Received is how many envelopes have been pushed so far.
func (r *Receivers) Received() int64 { return r.received.Load() }

// Latencies returns and resets the recorded latencies, sorted.
func (r *Receivers) Latencies() []time.Duration {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := r.lat
	r.lat = nil
	slices.Sort(out)
	return out
}

// Err reports the first connection failure, if any.
func (r *Receivers) Err() error {
	select {
	case err := <-r.errs:
		return err
	default:
		return nil
	}
}

// Close disconnects every device.
func (r *Receivers) Close() {
	r.cancel()
	r.wg.Wait()
}

// Percentile returns the p-th percentile (0–100) of sorted durations.
func Percentile(sorted []time.Duration, p float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	i := int(float64(len(sorted)-1) * p / 100)
	return sorted[i]
}

// Metric reads one unlabelled metric from the server's /metrics.
func (c *Client) Metric(ctx context.Context, name string) (float64, error) {
	code, b, err := c.call(ctx, "GET", "/metrics", nil, nil)
	if err != nil {
		return 0, err
	}
	if code != 200 {
		return 0, fmt.Errorf("%w: metrics %d", ErrServer, code)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, name+" "); ok {
			return strconv.ParseFloat(strings.TrimSpace(v), 64)
		}
	}
	return 0, fmt.Errorf("%w: metric %s missing", ErrServer, name)
}

// WaitAcked waits until the server has processed at least n acks.
func (c *Client) WaitAcked(ctx context.Context, n float64) error {
	for {
		v, err := c.Metric(ctx, "veil_envelopes_acked_total")
		if err != nil {
			return err
		}
		if v >= n {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(5 * time.Millisecond):
		}
	}
}

// Result is one run's figures.
type Result struct {
	Messages   int
	Elapsed    time.Duration
	PerSecond  float64
	P50, P99   time.Duration
	Max        time.Duration
	SendErrors int
}

func (r Result) String() string {
	return fmt.Sprintf("%d msgs in %v: %.0f msg/s, latency p50 %v p99 %v max %v",
		r.Messages, r.Elapsed.Round(time.Millisecond), r.PerSecond, r.P50.Round(10*time.Microsecond), r.P99.Round(10*time.Microsecond), r.Max.Round(10*time.Microsecond))
}

// Throughput sends total messages from concurrency goroutines, as fast as
// the server takes them, between random pairs of devs, and waits until
// every one is pushed and acknowledged.
func (c *Client) Throughput(ctx context.Context, devs []Device, rcv *Receivers, total, concurrency int) (Result, error) {
	ackBase, err := c.Metric(ctx, "veil_envelopes_acked_total")
	if err != nil {
		return Result{}, err
	}
	rcvBase := rcv.Received()
	rcv.Latencies()
	var next atomic.Int64
	var firstErr atomic.Value
	start := time.Now()
	var wg sync.WaitGroup
	for g := 0; g < concurrency; g++ {
		wg.Add(1)
		go func(g int) {
			defer wg.Done()
			for {
				i := next.Add(1) - 1
				if i >= int64(total) {
					return
				}
				from, to := pair(devs, int(i), g)
				if err := c.Send(ctx, from, to); err != nil {
					firstErr.CompareAndSwap(nil, err)
					return
				}
			}
		}(g)
	}
	wg.Wait()
	if err, _ := firstErr.Load().(error); err != nil {
		return Result{}, err
	}
	if err := c.WaitAcked(ctx, ackBase+float64(total)); err != nil {
		return Result{}, err
	}
	el := time.Since(start)
	lat := rcv.Latencies()
	if got := rcv.Received() - rcvBase; got < int64(total) {
		return Result{}, fmt.Errorf("%w: %d of %d pushed", ErrServer, got, total)
	}
	return Result{Messages: total, Elapsed: el, PerSecond: float64(total) / el.Seconds(),
		P50: Percentile(lat, 50), P99: Percentile(lat, 99), Max: Percentile(lat, 100)}, nil
}

// FixedRate sends rate messages per second for d, paced, each from its
// own goroutine (an open-loop load), and reports delivery latency.
func (c *Client) FixedRate(ctx context.Context, devs []Device, rcv *Receivers, rate int, d time.Duration) (Result, error) {
	ackBase, err := c.Metric(ctx, "veil_envelopes_acked_total")
	if err != nil {
		return Result{}, err
	}
	rcv.Latencies()
	total := int(float64(rate) * d.Seconds())
	interval := time.Second / time.Duration(rate)
	var wg sync.WaitGroup
	var errs atomic.Int64
	start := time.Now()
	sem := make(chan struct{}, 512)
	for i := 0; i < total; i++ {
		if wait := time.Until(start.Add(time.Duration(i) * interval)); wait > 0 {
			time.Sleep(wait)
		}
		sem <- struct{}{}
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			defer func() { <-sem }()
			from, to := pair(devs, i, 0)
			if err := c.Send(ctx, from, to); err != nil {
				errs.Add(1)
			}
		}(i)
	}
	wg.Wait()
	sent := total - int(errs.Load())
	if err := c.WaitAcked(ctx, ackBase+float64(sent)); err != nil {
		return Result{}, err
	}
	el := time.Since(start)
	lat := rcv.Latencies()
	return Result{Messages: sent, Elapsed: el, PerSecond: float64(sent) / el.Seconds(),
		P50: Percentile(lat, 50), P99: Percentile(lat, 99), Max: Percentile(lat, 100), SendErrors: int(errs.Load())}, nil
}

// Idle opens one idle WebSocket per device and returns a function that
// closes them.
func (c *Client) Idle(ctx context.Context, devs []Device) (func(), error) {
	ws := "ws" + strings.TrimPrefix(c.Base, "http") + "/v1/queue/websocket"
	var conns []*websocket.Conn
	closeAll := func() {
		for _, c := range conns {
			c.CloseNow()
		}
	}
	for _, d := range devs {
		conn, _, err := websocket.Dial(ctx, ws, &websocket.DialOptions{HTTPHeader: http.Header{"Authorization": {d.auth()}}})
		if err != nil {
			closeAll()
			return nil, err
		}
		// Read in the background so pings are answered and queue_empty
		// is consumed.
		go func() {
			for {
				if _, _, err := conn.Read(context.Background()); err != nil {
					return
				}
			}
		}()
		conns = append(conns, conn)
	}
	return closeAll, nil
}

// pair picks a sender and a different recipient for message i.
func pair(devs []Device, i, g int) (Device, Device) {
	f := i % len(devs)
	t := (i*7 + g + 1) % len(devs)
	if t == f {
		t = (t + 1) % len(devs)
	}
	return devs[f], devs[t]
}
