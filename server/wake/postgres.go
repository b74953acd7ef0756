package wake

import (
	"context"
	"encoding/hex"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// PostgresChannel is the LISTEN/NOTIFY channel the PostgreSQL waker uses.
const PostgresChannel = "veil_wake"

// Postgres is a Waker over PostgreSQL LISTEN/NOTIFY. One dedicated
// connection listens; notifications are sent through a small pool. The
// payload is the hex form of the 40-byte [Signal].
type Postgres struct {
	h      *hub
	pool   *pgxpool.Pool
	conn   *pgx.ConnConfig // the listener's (dsn without pool settings)
	log    *slog.Logger
	cancel context.CancelFunc
	done   chan struct{}

	mu     sync.Mutex
	closed bool
	ready  chan struct{}

	// Notify hands signals to one sender goroutine, which sends all that
	// are waiting in one statement: one round trip per batch instead of
	// one per envelope.
	out      chan string
	sendDone chan struct{}
}

// notifyQueue bounds the signals waiting to be sent; Notify blocks (until
// its context ends) when it is full.
const notifyQueue = 4096

// maxNotifyBatch bounds one pg_notify statement.
const maxNotifyBatch = 512

var _ Waker = (*Postgres)(nil)

// NewPostgres connects to the database at dsn (the server's own database)
// and starts listening. It returns once the listener is established, so a
// signal sent after NewPostgres returns on any node is received here.
func NewPostgres(ctx context.Context, dsn string, log *slog.Logger) (*Postgres, error) {
	cfg, err := pgxpool.ParseConfig(dsn)
	if err != nil {
		return nil, fmt.Errorf("wake: postgres config: %w", err)
	}
	cfg.MaxConns = 4
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("wake: postgres pool: %w", err)
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	lctx, cancel := context.WithCancel(context.Background())
	p := &Postgres{h: newHub(), pool: pool, conn: cfg.ConnConfig.Copy(), log: log, cancel: cancel, done: make(chan struct{}), ready: make(chan struct{}),
		out: make(chan string, notifyQueue), sendDone: make(chan struct{})}
	first := make(chan error, 1)
	go p.listen(lctx, first)
	select {
	case err := <-first:
		if err != nil {
			cancel()
			<-p.done
			pool.Close()
			return nil, err
		}
	case <-ctx.Done():
		cancel()
		<-p.done
		pool.Close()
		return nil, fmt.Errorf("wake: postgres listen: %w", ctx.Err())
	}
	go p.sender()
	return p, nil
}

// sender sends queued signals in batches until out is closed.
func (p *Postgres) sender() {
	defer close(p.sendDone)
	batch := make([]string, 0, maxNotifyBatch)
	for first := range p.out {
		batch = append(batch[:0], first)
	fill:
		for len(batch) < maxNotifyBatch {
			select {
			case s, ok := <-p.out:
				if !ok {
					break fill
				}
				batch = append(batch, s)
			default:
				break fill
			}
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		_, err := p.pool.Exec(ctx, "SELECT pg_notify($1, x) FROM unnest($2::text[]) AS x", PostgresChannel, batch)
		cancel()
		if err != nil {
			// Receivers rescan their queues periodically; a lost batch
			// only delays pushes.
			p.log.Warn("wake: postgres notify failed", "err", err, "signals", len(batch))
		}
	}
}

func (p *Postgres) listen(ctx context.Context, first chan<- error) {
	defer close(p.done)
	backoff := 50 * time.Millisecond
	for attempt := 0; ; attempt++ {
		// From the parsed config: pool settings in the DSN (such as
		// pool_max_conns) are not connection parameters.
		conn, err := pgx.ConnectConfig(ctx, p.conn)
		if err == nil {
			_, err = conn.Exec(ctx, "LISTEN "+PostgresChannel)
			if err != nil {
				conn.Close(context.Background())
			}
		}
		if err != nil {
			if first != nil {
				first <- fmt.Errorf("wake: postgres listen: %w", err)
				return
			}
			if ctx.Err() != nil {
				return
			}
			p.log.Warn("wake: postgres listener reconnect failed", "err", err)
			select {
			case <-ctx.Done():
				return
			case <-time.After(backoff):
			}
			backoff = min(backoff*2, 5*time.Second)
			continue
		}
		backoff = 50 * time.Millisecond
		if first != nil {
			first <- nil
			first = nil
		} else {
			// Signals may have been lost while disconnected.
			p.h.wakeAll()
		}
		err = p.receive(ctx, conn)
		conn.Close(context.Background())
		if ctx.Err() != nil {
			return
		}
		p.log.Warn("wake: postgres listener lost its connection", "err", err)
	}
}

func (p *Postgres) receive(ctx context.Context, conn *pgx.Conn) error {
	for {
		n, err := conn.WaitForNotification(ctx)
		if err != nil {
			return err
		}
		raw, err := hex.DecodeString(n.Payload)
		if err != nil {
			p.log.Warn("wake: ignoring malformed notification")
			continue
		}
		var s Signal
		if err := s.UnmarshalBinary(raw); err != nil {
			p.log.Warn("wake: ignoring malformed notification")
			continue
		}
		p.h.dispatch(s)
	}
}

// Notify implements [Waker]: it queues the signal for the sender, which
// publishes with pg_notify.
func (p *Postgres) Notify(ctx context.Context, s Signal) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return ErrClosed
	}
	b, _ := s.MarshalBinary()
	select {
	case p.out <- hex.EncodeToString(b):
		return nil
	case <-ctx.Done():
		return fmt.Errorf("wake: postgres notify: %w", ctx.Err())
	}
}

// Subscribe implements [Waker].
func (p *Postgres) Subscribe(k Key) (<-chan Signal, func()) { return p.h.subscribe(k) }

// Close stops listening and closes the pool.
func (p *Postgres) Close() error {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return nil
	}
	p.closed = true
	close(p.out) // Notify checks closed under mu before sending
	p.mu.Unlock()
	<-p.sendDone
	p.cancel()
	<-p.done
	p.pool.Close()
	return nil
}
