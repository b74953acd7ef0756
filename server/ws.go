package server

import (
	"context"
	"encoding/base64"
	"errors"
	"math/rand/v2"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/coder/websocket"

	"github.com/veil-e2ee/veil/server/store"
	"github.com/veil-e2ee/veil/server/wake"
)

// WebSocket close codes the server uses besides the standard ones.
const (
	// CloseReplaced: the same device opened a newer connection.
	CloseReplaced websocket.StatusCode = 4000
	// CloseDeviceRemoved: the device was unlinked.
	CloseDeviceRemoved websocket.StatusCode = 4001
)

// takeoverAll in a Signal's Takeover closes every connection of a device.
const takeoverAll = ^uint64(0)

// wsConn is one device connection registered on this node.
type wsConn struct {
	id       uint64
	replaced chan struct{}
	// direct carries envelopes just committed by a send on this node, so
	// the connection can push the next one without reading it back from
	// the store (see Server.pushLocal).
	direct chan *localEnvelope
}

// localEnvelope is a committed envelope handed from a send to a
// connection on the same node.
type localEnvelope struct {
	env    store.Envelope
	commit int64 // commit time (ns), for the delivery histogram
}

// directQueue bounds the envelopes waiting on one connection's direct
// channel; beyond it a send drops the hand-over and the connection reads
// the envelope from the store as it would for a send on another node.
const directQueue = 16

// pushLocal hands a committed envelope to the recipient device's
// connections on this node. It never blocks; the wake-up signal sent
// beside it remains the guarantee that the envelope is pushed.
func (s *Server) pushLocal(key wake.Key, le *localEnvelope) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for wc := range s.conns[key] {
		select {
		case wc.direct <- le:
		default:
		}
	}
}

// Frames. Server → client: envelope, queue_empty. Client → server: ack.
type wsFrame struct {
	Type     string        `json:"type"`
	Envelope *envelopeJSON `json:"envelope,omitempty"`
}

type wsAck struct {
	Type string `json:"type"`
	Seq  int64  `json:"seq"`
}

const maxClientFrame = 1024

var errBadFrame = errors.New("server: bad websocket frame")

// ackPrefix and ackSuffix frame the canonical ack, the form every
// client sends; parseClientFrame reads it without the JSON decoder.
const (
	ackPrefix = `{"type":"ack","seq":`
	ackSuffix = `}`
)

// parseClientFrame decodes one client frame; only {"type":"ack","seq":N}
// with N > 0 is valid. The canonical form (no spaces, fields in this
// order, N without leading zeros) is parsed by hand, as it arrives once
// per delivered envelope; anything else goes through the strict decoder,
// which accepts exactly the same values (FuzzClientFrame compares them).
func parseClientFrame(b []byte) (int64, error) {
	if seq, ok := parseCanonicalAck(b); ok {
		return seq, nil
	}
	return parseClientFrameJSON(b)
}

// parseCanonicalAck parses {"type":"ack","seq":N} with N in 1..10^18-1;
// ok is false for any other input.
func parseCanonicalAck(b []byte) (seq int64, ok bool) {
	if len(b) <= len(ackPrefix)+len(ackSuffix) || string(b[:len(ackPrefix)]) != ackPrefix || b[len(b)-1] != '}' {
		return 0, false
	}
	digits := b[len(ackPrefix) : len(b)-len(ackSuffix)]
	if len(digits) > 18 || digits[0] < '1' || digits[0] > '9' {
		return 0, false
	}
	for _, c := range digits {
		if c < '0' || c > '9' {
			return 0, false
		}
		seq = seq*10 + int64(c-'0')
	}
	return seq, true
}

// parseClientFrameJSON is parseClientFrame through the JSON decoder.
func parseClientFrameJSON(b []byte) (int64, error) {
	var a wsAck
	if e := decodeStrict(b, &a); e != nil {
		return 0, errBadFrame
	}
	if a.Type != "ack" || a.Seq < 1 {
		return 0, errBadFrame
	}
	return a.Seq, nil
}

func isUpgrade(r *http.Request) bool {
	return strings.EqualFold(r.Header.Get("Upgrade"), "websocket")
}

func (s *Server) handleWebSocket(w http.ResponseWriter, r *http.Request, p principal) error {
	if !isUpgrade(r) {
		return errNotWebSocket
	}
	s.mu.Lock()
	if s.shutdown {
		s.mu.Unlock()
		return errUnavailable
	}
	s.wsWG.Add(1)
	s.mu.Unlock()
	c, err := websocket.Accept(w, r, nil)
	if err != nil {
		s.wsWG.Done()
		// Accept has answered the client already.
		s.log.Debug("server: websocket accept failed", redactErr(err))
		return nil
	}
	c.SetReadLimit(maxClientFrame)
	s.m.wsConnections.Inc()
	// The connection lives on in a fresh goroutine and this handler
	// returns: the request goroutine's stack, grown while handling the
	// upgrade, is freed, which keeps idle connections light. Its context
	// ends with the server, not with the request.
	go func() {
		defer s.wsWG.Done()
		defer s.m.wsConnections.Dec()
		s.serveWS(s.baseCtx, c, p)
	}()
	return nil
}

func (s *Server) register(key wake.Key, wc *wsConn) {
	s.mu.Lock()
	defer s.mu.Unlock()
	m := s.conns[key]
	if m == nil {
		m = make(map[*wsConn]struct{})
		s.conns[key] = m
	}
	for old := range m {
		select {
		case old.replaced <- struct{}{}:
		default:
		}
	}
	m[wc] = struct{}{}
}

func (s *Server) unregister(key wake.Key, wc *wsConn) {
	s.mu.Lock()
	defer s.mu.Unlock()
	m := s.conns[key]
	delete(m, wc)
	if len(m) == 0 {
		delete(s.conns, key)
	}
}

// serveWS pushes the device's queue and processes its acks until the
// connection ends, is replaced, or the server shuts down.
func (s *Server) serveWS(parent context.Context, c *websocket.Conn, p principal) {
	ctx, cancel := context.WithCancel(parent)
	defer cancel()
	key := s.keys.wakeKey(p.account, p.device)
	wc := &wsConn{id: rand.Uint64() | 1, replaced: make(chan struct{}, 1), direct: make(chan *localEnvelope, directQueue)}
	if wc.id == takeoverAll {
		wc.id--
	}
	// Subscribe before the first read of the queue so no wake-up is lost.
	wakeCh, unsub := s.waker.Subscribe(key)
	defer unsub()
	s.register(key, wc)
	defer s.unregister(key, wc)
	s.notify(wake.Signal{Key: key, Takeover: wc.id})

	// A small buffer: the reader blocks when it is full, which is flow
	// control enough, and idle connections stay light.
	acks := make(chan int64, 32)
	readErr := make(chan error, 1)
	// The reader has its own context, ended only after the close
	// handshake below: cancelling a Read's context makes the library drop
	// the connection at once, before a proper close code is sent.
	readCtx, readCancel := context.WithCancel(context.Background())
	defer readCancel()
	go func() {
		for {
			typ, b, err := c.Read(readCtx)
			if err != nil {
				readErr <- err
				return
			}
			seq, perr := parseClientFrame(b)
			if typ != websocket.MessageText || perr != nil {
				readErr <- errBadFrame
				return
			}
			select {
			case acks <- seq:
			case <-readCtx.Done():
				return
			}
		}
	}()

	d := &delivery{s: s, c: c, p: p, inflight: make(map[int64]struct{}), latency: make(map[int64]int64)}
	if depth, err := s.st.QueueDepth(ctx, p.account, p.device); err == nil {
		s.m.queueDepth.Observe(float64(depth))
	}
	code, reason := d.run(ctx, wc, wakeCh, acks, readErr)
	if code == -1 {
		c.CloseNow()
		return
	}
	if err := c.Close(code, reason); err != nil {
		s.log.Debug("server: websocket close", "code", int(code), redactErr(err))
	}
}

// delivery is the state of one connection's push loop.
type delivery struct {
	s        *Server
	c        *websocket.Conn
	p        principal
	cursor   int64              // highest seq pushed
	inflight map[int64]struct{} // pushed, not yet acknowledged
	latency  map[int64]int64    // seq → commit time (ns), for the histogram
	handed   map[int64]struct{} // pushed directly, wake-up signal not yet seen
	rescan   bool               // look below cursor too (a wake for an older seq)
	more     bool               // the last fetch was cut short by the in-flight bound
	emptied  bool               // queue_empty sent
}

const maxLatencySamples = 4096

func (d *delivery) run(ctx context.Context, wc *wsConn, wakeCh <-chan wake.Signal, acks <-chan int64, readErr <-chan error) (websocket.StatusCode, string) {
	s := d.s
	ping := time.NewTicker(s.lim.PingInterval)
	defer ping.Stop()
	pingFailed := make(chan struct{}, 1)
	need := true
	for {
		if need && len(d.inflight) < s.lim.MaxInFlight {
			if err := d.fill(ctx); err != nil {
				return d.stopCode(ctx, err)
			}
			need = d.more && len(d.inflight) < s.lim.MaxInFlight
			if need {
				continue
			}
		}
		select {
		case <-ctx.Done():
			return d.stopCode(ctx, ctx.Err())
		case err := <-readErr:
			// Acks read before the close are honoured: a client may ack
			// its last envelopes and close at once.
			var seqs []int64
			for drained := false; !drained; {
				select {
				case seq := <-acks:
					seqs = append(seqs, seq)
				default:
					drained = true
				}
			}
			if err := d.ackAll(context.WithoutCancel(ctx), seqs); err != nil {
				return d.stopCode(ctx, err)
			}
			s.log.Debug("server: websocket read ended", redactErr(err))
			if errors.Is(err, errBadFrame) {
				return websocket.StatusPolicyViolation, "invalid frame: only {\"type\":\"ack\",\"seq\":N} text frames are accepted"
			}
			return -1, ""
		case <-wc.replaced:
			s.m.wsReplaced.Inc()
			return CloseReplaced, "replaced by a newer connection of this device"
		case <-pingFailed:
			return -1, ""
		case sig := <-wakeCh:
			// A send on this node hands its envelope over before it
			// signals: push what is handed over first, so that the signal
			// finds its envelope pushed and needs no queue read.
			if err := d.pushHanded(ctx, wc, nil, &need); err != nil {
				return d.stopCode(ctx, err)
			}
			// Take every signal already waiting: one queue read serves them all.
			for {
				code, reason, stop := d.onSignal(wc, sig)
				if stop {
					return code, reason
				}
				// A signal for an envelope already pushed (handed over
				// directly) needs no queue read.
				need = need || d.rescan || sig.Seq == 0 || sig.Seq > d.cursor
				select {
				case sig = <-wakeCh:
					continue
				default:
				}
				break
			}
		case le := <-wc.direct:
			if err := d.pushHanded(ctx, wc, le, &need); err != nil {
				return d.stopCode(ctx, err)
			}
		case seq := <-acks:
			// Take every ack already waiting, and delete them together.
			seqs := []int64{seq}
			for drained := false; !drained; {
				select {
				case seq := <-acks:
					seqs = append(seqs, seq)
				default:
					drained = true
				}
			}
			if err := d.ackAll(ctx, seqs); err != nil {
				return d.stopCode(ctx, err)
			}
			need = need || d.more
		case <-ping.C:
			// A device removed behind this node's back (an administrator's
			// erasure or lifted legal hold, run against the database) is
			// let go here at the latest.
			if _, err := s.st.Device(ctx, d.p.account, d.p.device); errors.Is(err, store.ErrNotFound) {
				return CloseDeviceRemoved, "device removed"
			}
			// A periodic rescan bounds the delay of any lost wake-up.
			d.rescan, need = true, true
			go func() {
				pctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), s.lim.PingInterval)
				defer cancel()
				if err := d.c.Ping(pctx); err != nil && ctx.Err() == nil {
					select {
					case pingFailed <- struct{}{}:
					default:
					}
				}
			}()
		}
	}
}

// pushHanded pushes le (if not nil) and every envelope already waiting
// on the connection's direct channel; need becomes true when one of them
// has to be read from the queue instead.
func (d *delivery) pushHanded(ctx context.Context, wc *wsConn, le *localEnvelope, need *bool) error {
	for {
		if le == nil {
			select {
			case le = <-wc.direct:
			default:
				return nil
			}
		}
		pushed, err := d.pushDirect(ctx, le, *need)
		if err != nil {
			return err
		}
		*need = *need || !pushed
		le = nil
	}
}

// pushDirect pushes an envelope handed over by a send on this node when
// it is exactly the next one (its seq follows the highest pushed: seqs
// are assigned consecutively per device) and nothing else is pending: no
// rescan, no queue read already due (fillDue), room in flight. pushed is
// false when the envelope was not pushed; the caller then reads the queue.
func (d *delivery) pushDirect(ctx context.Context, le *localEnvelope, fillDue bool) (pushed bool, err error) {
	e := &le.env
	if e.Seq <= d.cursor {
		return true, nil // already pushed by a queue read
	}
	if fillDue || d.rescan || d.more || e.Seq != d.cursor+1 || len(d.inflight) >= d.s.lim.MaxInFlight {
		return false, nil
	}
	fb := frameBufs.Get().(*[]byte)
	*fb = appendEnvelopeFrame((*fb)[:0], e)
	err = d.write(ctx, *fb)
	frameBufs.Put(fb)
	if err != nil {
		return false, err
	}
	d.s.m.pushed.Inc()
	d.inflight[e.Seq] = struct{}{}
	d.cursor = e.Seq
	// Its wake-up signal is still on the way (possibly through another
	// node's database connection) and may arrive after the ack.
	if d.handed == nil || len(d.handed) >= maxLatencySamples {
		d.handed = make(map[int64]struct{})
	}
	d.handed[e.Seq] = struct{}{}
	if le.commit > 0 {
		if len(d.latency) >= maxLatencySamples {
			clear(d.latency)
		}
		d.latency[e.Seq] = le.commit
	}
	return true, nil
}

// onSignal handles one wake-up; stop reports that the connection must
// close with code and reason.
func (d *delivery) onSignal(wc *wsConn, sig wake.Signal) (code websocket.StatusCode, reason string, stop bool) {
	switch {
	case sig.Takeover == takeoverAll:
		return CloseDeviceRemoved, "device removed", true
	case sig.Takeover != 0:
		if sig.Takeover != wc.id {
			d.s.m.wsReplaced.Inc()
			return CloseReplaced, "replaced by a newer connection of this device", true
		}
	default:
		if _, ok := d.handed[sig.Seq]; ok && sig.Seq > 0 {
			delete(d.handed, sig.Seq) // pushed directly already
			return 0, "", false
		}
		if sig.Seq > 0 && sig.CommitUnixNano > 0 {
			if len(d.latency) >= maxLatencySamples {
				clear(d.latency) // samples for envelopes acked elsewhere
			}
			d.latency[sig.Seq] = sig.CommitUnixNano
		}
		if sig.Seq > 0 && sig.Seq <= d.cursor {
			if _, pushed := d.inflight[sig.Seq]; !pushed {
				d.rescan = true
			}
		}
	}
	return 0, "", false
}

func (d *delivery) stopCode(ctx context.Context, err error) (websocket.StatusCode, string) {
	if d.s.baseCtx.Err() != nil {
		return websocket.StatusGoingAway, "server shutting down"
	}
	if ctx.Err() != nil {
		return -1, ""
	}
	if !errors.Is(err, store.ErrClosed) {
		d.s.log.Error("server: websocket delivery failed", redactErr(err))
	}
	return websocket.StatusInternalError, "server error; reconnect later"
}

// fill pushes queued envelopes up to the in-flight bound.
func (d *delivery) fill(ctx context.Context) error {
	s := d.s
	room := s.lim.MaxInFlight - len(d.inflight)
	after := d.cursor
	if d.rescan {
		after = 0
	}
	d.rescan = false
	// Skipped in-flight envelopes count against the fetch, so ask for them too.
	limit := room
	if after < d.cursor {
		limit += len(d.inflight)
	}
	envs, err := s.st.Pending(ctx, d.p.account, d.p.device, after, limit)
	if err != nil {
		return err
	}
	pushed := 0
	// Frame buffers are shared: an idle connection keeps none.
	fb := frameBufs.Get().(*[]byte)
	defer frameBufs.Put(fb)
	for _, e := range envs {
		if _, ok := d.inflight[e.Seq]; ok {
			continue
		}
		if pushed == room {
			break
		}
		*fb = appendEnvelopeFrame((*fb)[:0], &e)
		if err := d.write(ctx, *fb); err != nil {
			return err
		}
		s.m.pushed.Inc()
		d.inflight[e.Seq] = struct{}{}
		d.cursor = max(d.cursor, e.Seq)
		pushed++
	}
	d.more = len(envs) == limit
	if !d.more && !d.emptied {
		d.emptied = true
		if err := d.write(ctx, queueEmptyFrame); err != nil {
			return err
		}
	}
	return nil
}

// frameBufs holds buffers for encoding pushed frames (*[]byte); the
// library has written a frame when Write returns.
var frameBufs = sync.Pool{New: func() any { b := make([]byte, 0, 2048); return &b }}

// queueEmptyFrame is wsFrame{Type: "queue_empty"} encoded.
var queueEmptyFrame = []byte(`{"type":"queue_empty"}`)

// appendEnvelopeFrame appends wsFrame{Type: "envelope", Envelope:
// toEnvelopeJSON(e)} as encoding/json would encode it (TestEnvelopeFrame
// checks byte equality), without reflection and without the copies
// encoding/json makes of a base64 field: this runs once per push.
func appendEnvelopeFrame(b []byte, e *store.Envelope) []byte {
	b = append(b, `{"type":"envelope","envelope":{"seq":`...)
	b = strconv.AppendInt(b, e.Seq, 10)
	b = append(b, `,"message_id":"`...)
	b = base64.StdEncoding.AppendEncode(b, e.MessageID[:])
	b = append(b, `","type":`...)
	b = strconv.AppendUint(b, uint64(e.Type), 10)
	if e.Sender != (store.AccountID{}) {
		b = append(b, `,"sender":"`...)
		b = append(b, e.Sender.String()...)
		b = append(b, '"')
		if e.SenderDevice != 0 {
			b = append(b, `,"sender_device":`...)
			b = strconv.AppendUint(b, uint64(e.SenderDevice), 10)
		}
	}
	b = append(b, `,"content":"`...)
	b = base64.StdEncoding.AppendEncode(b, e.Content)
	b = append(b, `","received_at":`...)
	b = strconv.AppendInt(b, e.ReceivedAt.Unix(), 10)
	return append(b, "}}"...)
}

// write sends one text frame. The library has written b when it
// returns, so the caller may reuse b.
func (d *delivery) write(ctx context.Context, b []byte) error {
	// Not derived from ctx: the library drops the connection when a
	// write's context ends mid-write, and a shutdown must instead let the
	// write finish and send a close code.
	wctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), d.s.lim.WriteTimeout)
	defer cancel()
	return d.c.Write(wctx, websocket.MessageText, b)
}

// ackAll deletes acknowledged envelopes together (see Server.ackMany).
func (d *delivery) ackAll(ctx context.Context, seqs []int64) error {
	if len(seqs) == 0 {
		return nil
	}
	if err := d.s.ackMany(ctx, d.p, seqs); err != nil {
		return err
	}
	for _, seq := range seqs {
		d.acked(seq)
	}
	return nil
}

// acked updates the in-flight set and metrics after a delete.
func (d *delivery) acked(seq int64) {
	d.s.m.acked.Inc()
	delete(d.inflight, seq)
	if at, ok := d.latency[seq]; ok {
		delete(d.latency, seq)
		d.s.m.delivery.Observe(time.Since(time.Unix(0, at)).Seconds())
	}
}
