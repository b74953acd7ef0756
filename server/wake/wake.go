// Package wake tells server nodes that a device has new mail, so the node
// holding that device's WebSocket can push at once instead of polling.
//
// # Signals carry no identifiers
//
// A [Signal] names a device only by its [Key], an opaque 16-byte token the
// server derives with a keyed hash (HMAC) of the device address under a
// secret every node shares. The bus (PostgreSQL or NATS) therefore sees
// tokens, never account ids or usernames. A signal may also carry the
// sequence number and commit time of the envelope that caused it (used only
// for the delivery-latency metric) or a takeover id (a new connection of the
// device asks other connections to close).
//
// # Implementations
//
//   - [Local]: in-process, for a single node (the SQLite default).
//   - [NewPostgres]: PostgreSQL LISTEN/NOTIFY on the server's own database.
//   - [NewNATS]: a NATS subject per key.
//
// Delivery is best effort: a lost signal only delays a push until the next
// signal or reconnect, because the envelope itself is already committed in
// the database before any signal is sent. After a bus reconnect each
// implementation wakes every local subscriber, since signals may have been
// missed meanwhile.
package wake

import (
	"context"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"sync"
)

// ErrClosed is returned by Notify after Close.
var ErrClosed = errors.New("wake: closed")

// ErrBadPayload means a signal received from the bus was malformed.
var ErrBadPayload = errors.New("wake: malformed signal")

// Key is the opaque token naming one device on the wake bus.
type Key [16]byte

// String is the lowercase hex form of the key (safe to log: it is already
// a keyed hash).
func (k Key) String() string { return hex.EncodeToString(k[:]) }

// Signal is one wake-up for one device.
type Signal struct {
	Key Key
	// Seq and CommitUnixNano, when non-zero, identify the envelope whose
	// commit caused the signal; the receiving node uses them only to
	// measure delivery latency.
	Seq            int64
	CommitUnixNano int64
	// Takeover, when non-zero, is the id of a new connection of the device:
	// every other connection of that device closes.
	Takeover uint64
}

const payloadLen = 16 + 8 + 8 + 8

// MarshalBinary encodes the signal in its fixed 40-byte wire form.
func (s Signal) MarshalBinary() ([]byte, error) {
	b := make([]byte, payloadLen)
	copy(b, s.Key[:])
	binary.BigEndian.PutUint64(b[16:], uint64(s.Seq))
	binary.BigEndian.PutUint64(b[24:], uint64(s.CommitUnixNano))
	binary.BigEndian.PutUint64(b[32:], s.Takeover)
	return b, nil
}

// UnmarshalBinary decodes the fixed 40-byte wire form.
func (s *Signal) UnmarshalBinary(b []byte) error {
	if len(b) != payloadLen {
		return fmt.Errorf("%w: %d bytes", ErrBadPayload, len(b))
	}
	copy(s.Key[:], b)
	s.Seq = int64(binary.BigEndian.Uint64(b[16:]))
	s.CommitUnixNano = int64(binary.BigEndian.Uint64(b[24:]))
	s.Takeover = binary.BigEndian.Uint64(b[32:])
	return nil
}

// Waker announces and receives wake-ups.
type Waker interface {
	// Notify announces s to every node (including this one). It returns
	// once the signal is handed to the bus, not when it is received.
	Notify(ctx context.Context, s Signal) error
	// Subscribe returns a channel that receives the signals for key, and a
	// function that ends the subscription. The channel is buffered; a slow
	// reader loses signals except the most recent ones, which is harmless
	// because a signal only means "look at the database".
	Subscribe(key Key) (<-chan Signal, func())
	// Close stops the waker; subscriptions' channels stay open but silent.
	Close() error
}

// subBuffer is how many signals a subscriber may have pending.
const subBuffer = 8

// hub fans signals out to this process's subscribers.
type hub struct {
	mu   sync.Mutex
	subs map[Key]map[*sub]struct{}
	// onFirst and onLast, when set, run (under mu) when a key gains its
	// first or loses its last subscriber (NATS subscribes per key).
	onFirst func(Key)
	onLast  func(Key)
}

type sub struct{ ch chan Signal }

func newHub() *hub { return &hub{subs: make(map[Key]map[*sub]struct{})} }

func (h *hub) subscribe(k Key) (<-chan Signal, func()) {
	s := &sub{ch: make(chan Signal, subBuffer)}
	h.mu.Lock()
	m := h.subs[k]
	if m == nil {
		m = make(map[*sub]struct{})
		h.subs[k] = m
		if h.onFirst != nil {
			h.onFirst(k)
		}
	}
	m[s] = struct{}{}
	h.mu.Unlock()
	var once sync.Once
	return s.ch, func() {
		once.Do(func() {
			h.mu.Lock()
			defer h.mu.Unlock()
			m := h.subs[k]
			delete(m, s)
			if len(m) == 0 {
				delete(h.subs, k)
				if h.onLast != nil {
					h.onLast(k)
				}
			}
		})
	}
}

func (h *hub) dispatch(s Signal) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for sb := range h.subs[s.Key] {
		deliver(sb.ch, s)
	}
}

// wakeAll sends a bare signal to every subscriber (after a bus outage).
func (h *hub) wakeAll() {
	h.mu.Lock()
	defer h.mu.Unlock()
	for k, m := range h.subs {
		for sb := range m {
			deliver(sb.ch, Signal{Key: k})
		}
	}
}

// deliver never blocks: when the buffer is full, the oldest pending signal
// is dropped to make room (the newest carries the most useful latency
// sample and any signal means "look at the database").
func deliver(ch chan Signal, s Signal) {
	for {
		select {
		case ch <- s:
			return
		default:
		}
		select {
		case <-ch:
		default:
		}
	}
}

// Local is the in-process Waker for a single node.
type Local struct {
	h      *hub
	mu     sync.Mutex
	closed bool
}

var _ Waker = (*Local)(nil)

// NewLocal returns an in-process Waker.
func NewLocal() *Local { return &Local{h: newHub()} }

// Notify dispatches s to this process's subscribers.
func (l *Local) Notify(_ context.Context, s Signal) error {
	l.mu.Lock()
	closed := l.closed
	l.mu.Unlock()
	if closed {
		return ErrClosed
	}
	l.h.dispatch(s)
	return nil
}

// Subscribe implements [Waker].
func (l *Local) Subscribe(k Key) (<-chan Signal, func()) { return l.h.subscribe(k) }

// Close implements [Waker].
func (l *Local) Close() error {
	l.mu.Lock()
	l.closed = true
	l.mu.Unlock()
	return nil
}
