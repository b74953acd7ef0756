package wake

import (
	"context"
	"fmt"
	"log/slog"
	"sync"

	"github.com/nats-io/nats.go"
)

// NATSSubjectPrefix prefixes the per-key subjects ("veil.wake.<hex key>").
const NATSSubjectPrefix = "veil.wake."

// NATS is a Waker over a NATS server: one subject per device key, so a
// node receives only the signals for devices connected to it.
type NATS struct {
	h    *hub
	nc   *nats.Conn
	log  *slog.Logger
	mu   sync.Mutex
	subs map[Key]*nats.Subscription
}

var _ Waker = (*NATS)(nil)

// NewNATS connects to the NATS server at url.
func NewNATS(url string, log *slog.Logger) (*NATS, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	n := &NATS{h: newHub(), log: log, subs: make(map[Key]*nats.Subscription)}
	nc, err := nats.Connect(url,
		nats.Name("veil-server"),
		nats.MaxReconnects(-1),
		nats.ReconnectHandler(func(*nats.Conn) {
			log.Info("wake: nats reconnected")
			n.h.wakeAll()
		}),
		nats.DisconnectErrHandler(func(_ *nats.Conn, err error) {
			log.Warn("wake: nats disconnected", "err", err)
		}),
	)
	if err != nil {
		return nil, fmt.Errorf("wake: nats connect: %w", err)
	}
	n.nc = nc
	n.h.onFirst = n.subscribeKey
	n.h.onLast = n.unsubscribeKey
	return n, nil
}

func (n *NATS) subscribeKey(k Key) {
	sub, err := n.nc.Subscribe(NATSSubjectPrefix+k.String(), func(m *nats.Msg) {
		var s Signal
		if err := s.UnmarshalBinary(m.Data); err != nil {
			n.log.Warn("wake: ignoring malformed nats signal")
			return
		}
		n.h.dispatch(s)
	})
	if err != nil {
		n.log.Warn("wake: nats subscribe failed", "err", err)
		return
	}
	n.mu.Lock()
	n.subs[k] = sub
	n.mu.Unlock()
}

func (n *NATS) unsubscribeKey(k Key) {
	n.mu.Lock()
	sub := n.subs[k]
	delete(n.subs, k)
	n.mu.Unlock()
	if sub != nil {
		_ = sub.Unsubscribe()
	}
}

// Notify implements [Waker] by publishing on the key's subject. The
// subscription is created in the handler goroutine, so Flush makes the
// interest visible to the server before callers rely on it.
func (n *NATS) Notify(_ context.Context, s Signal) error {
	if n.nc.IsClosed() {
		return ErrClosed
	}
	b, _ := s.MarshalBinary()
	if err := n.nc.Publish(NATSSubjectPrefix+s.Key.String(), b); err != nil {
		return fmt.Errorf("wake: nats publish: %w", err)
	}
	return nil
}

// Subscribe implements [Waker]. It returns once the server knows about the
// subscription.
func (n *NATS) Subscribe(k Key) (<-chan Signal, func()) {
	ch, cancel := n.h.subscribe(k)
	_ = n.nc.Flush()
	return ch, cancel
}

// Close drains nothing and closes the connection.
func (n *NATS) Close() error {
	n.nc.Close()
	return nil
}
