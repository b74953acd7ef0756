package server

import (
	"bufio"
	"context"
	"crypto/rand"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/veil-e2ee/veil/server/store"
	"github.com/veil-e2ee/veil/server/wake"
)

// Rate is a token bucket: Burst requests at once, then one more every
// Interval. A zero Burst disables the limit.
type Rate struct {
	Burst    int
	Interval time.Duration
}

// Limits are the server's bounds. Zero fields take the defaults listed in
// [DefaultLimits]; docs/OPERATIONS.md explains each.
type Limits struct {
	// MaxQueue bounds each device's queue; a send that would exceed it
	// for any addressed device is refused whole (429 recipient_queue_full)
	// and nothing is stored, so an accepted message is never dropped.
	MaxQueue int
	// QueueFullRetry is the Retry-After given with recipient_queue_full.
	QueueFullRetry time.Duration
	// EnvelopeTTL is how long an undelivered envelope is kept.
	EnvelopeTTL time.Duration
	// DedupWindow is how long a message id is remembered after it was
	// first accepted; it must be at least EnvelopeTTL.
	DedupWindow time.Duration
	// SweepInterval is how often expired envelopes are deleted.
	SweepInterval time.Duration
	// BlobTTL is how long a history archive waits for its new device.
	BlobTTL time.Duration
	// AuditRetention is how long audit entries are kept: older ones are
	// pruned up to a signed checkpoint, which stays as the anchor
	// verification starts from. Negative keeps them forever.
	AuditRetention time.Duration
	// InactiveAccounts erases accounts none of whose devices was seen for
	// this long (their data, not only their devices); zero or negative
	// keeps them (the default).
	InactiveAccounts time.Duration
	// DeviceExpiry removes a linked device (never an account's oldest) that
	// has not connected for this long; negative disables it.
	DeviceExpiry time.Duration
	// MaxInFlight is how many pushed, unacknowledged envelopes a
	// WebSocket may have.
	MaxInFlight int
	// PingInterval is the WebSocket keepalive period; a connection that
	// does not answer a ping within PingInterval is closed.
	PingInterval time.Duration
	// WriteTimeout bounds one WebSocket write.
	WriteTimeout time.Duration
	// MaxDevices bounds the devices of an account.
	MaxDevices int
	// PreKeyFetch limits bundle fetches per requester account and target
	// account.
	PreKeyFetch Rate
	// Send limits sends per sending device.
	Send Rate
	// Register limits registrations per client address.
	Register Rate
	// Lookup limits username lookups per requester account.
	Lookup Rate
	// Link limits device links per account.
	Link Rate
	// SealedSend limits sealed (senderless) sends per client address and
	// recipient; SealedMulti sealed sender v2 sends per client address.
	// The client address is only hashed into the bucket key.
	SealedSend  Rate
	SealedMulti Rate
	// Recover limits account-recovery attempts per account and,
	// separately, per client address.
	Recover Rate
}

// DefaultLimits are the limits used for zero fields of Config.Limits.
var DefaultLimits = Limits{
	MaxQueue:       10000,
	QueueFullRetry: 60 * time.Second,
	EnvelopeTTL:    30 * 24 * time.Hour,
	DedupWindow:    31 * 24 * time.Hour,
	DeviceExpiry:   30 * 24 * time.Hour,
	SweepInterval:  10 * time.Minute,
	MaxInFlight:    256,
	PingInterval:   30 * time.Second,
	WriteTimeout:   10 * time.Second,
	MaxDevices:     6,
	PreKeyFetch:    Rate{Burst: 6, Interval: 100 * time.Second},
	Send:           Rate{Burst: 1000, Interval: time.Millisecond},
	Register:       Rate{Burst: 6, Interval: 30 * time.Second},
	Lookup:         Rate{Burst: 30, Interval: 2 * time.Second},
	Link:           Rate{Burst: 6, Interval: 2 * time.Minute},
	SealedSend:     Rate{Burst: 1000, Interval: 10 * time.Millisecond},
	SealedMulti:    Rate{Burst: 200, Interval: 50 * time.Millisecond},
	Recover:        Rate{Burst: 5, Interval: 12 * time.Minute},
	BlobTTL:        24 * time.Hour,
	AuditRetention: 365 * 24 * time.Hour,
}

func (l Limits) withDefaults() Limits {
	d := DefaultLimits
	set := func(v *int, def int) {
		if *v == 0 {
			*v = def
		}
	}
	setD := func(v *time.Duration, def time.Duration) {
		if *v == 0 {
			*v = def
		}
	}
	setR := func(v *Rate, def Rate) {
		if v.Burst == 0 && v.Interval == 0 {
			*v = def
		}
	}
	set(&l.MaxQueue, d.MaxQueue)
	setD(&l.QueueFullRetry, d.QueueFullRetry)
	setD(&l.EnvelopeTTL, d.EnvelopeTTL)
	setD(&l.DedupWindow, d.DedupWindow)
	setD(&l.SweepInterval, d.SweepInterval)
	setD(&l.DeviceExpiry, d.DeviceExpiry)
	set(&l.MaxInFlight, d.MaxInFlight)
	setD(&l.PingInterval, d.PingInterval)
	setD(&l.WriteTimeout, d.WriteTimeout)
	set(&l.MaxDevices, d.MaxDevices)
	setR(&l.PreKeyFetch, d.PreKeyFetch)
	setR(&l.Send, d.Send)
	setR(&l.Register, d.Register)
	setR(&l.Lookup, d.Lookup)
	setR(&l.Link, d.Link)
	setR(&l.SealedSend, d.SealedSend)
	setR(&l.SealedMulti, d.SealedMulti)
	setR(&l.Recover, d.Recover)
	setD(&l.BlobTTL, d.BlobTTL)
	setD(&l.AuditRetention, d.AuditRetention)
	return l
}

// Unlimited is a Rate that disables a limit (Burst < 0).
var Unlimited = Rate{Burst: -1}

// Config is everything a Server needs. Store and Secret are required.
type Config struct {
	// Store holds all state. The Server does not close it.
	Store store.Store
	// Waker carries "new mail" signals between nodes; nil means an
	// in-process waker (single node). The Server closes it on Shutdown.
	Waker wake.Waker
	// Secret (at least 32 random bytes, the same on every node) keys the
	// pseudonyms used for rate-limit buckets, wake-up signals and log
	// lines. It must be kept secret.
	Secret []byte
	// Now is the clock; nil means time.Now.
	Now func() time.Time
	// Rand is the source of account ids and credentials; nil means
	// crypto/rand.
	Rand io.Reader
	// Logger receives structured logs; nil discards them.
	Logger *slog.Logger
	// Limits; zero fields take DefaultLimits.
	Limits Limits
	// TLS, when set, makes Serve speak HTTPS.
	TLS *tls.Config
	// ClientIPHeader, when set (e.g. "X-Forwarded-For" behind a trusted
	// reverse proxy), names the header whose first value is the client
	// address used for the registration limit. The address is only ever
	// hashed, never stored or logged.
	ClientIPHeader string
	// SenderCertTTL is how long issued sealed-sender certificates are
	// valid; zero means DefaultSenderCertTTL.
	SenderCertTTL time.Duration
	// CertKeyID numbers the server key that signs sender certificates
	// (derived from Secret and the id; zero means 1). Change it to rotate
	// the key; clients can be told to reject a revoked id.
	CertKeyID uint32
	// LegalHold configures disclosed legal holds (off unless set; see
	// docs/COMPLIANCE.md).
	LegalHold LegalHoldConfig
}

// Server is the blind relay: HTTP API, WebSocket delivery, sweeper.
type Server struct {
	cfg     Config
	lim     Limits
	st      store.Store
	batcher store.BatchAcker // nil when the store cannot batch acks
	local   *localBuckets    // rate limits kept in memory (localrate.go)
	waker   wake.Waker
	log     *slog.Logger
	now     func() time.Time
	rand    io.Reader
	keys    keys
	cert    certKeys
	obs     *observability
	auth    authCache
	m       *metrics
	aud     *auditState
	handler http.Handler
	routes  []*route

	baseCtx    context.Context
	cancelBase context.CancelFunc

	mu       sync.Mutex
	http     *http.Server
	started  bool
	shutdown bool
	conns    map[wake.Key]map[*wsConn]struct{}
	wsWG     sync.WaitGroup
	bgWG     sync.WaitGroup
	ready    atomic.Bool

	// observe, when set (tests), sees every answered route and status.
	observe func(route string, code int)
}

// New validates cfg and builds a Server. It starts nothing.
func New(cfg Config) (*Server, error) {
	if cfg.Store == nil {
		return nil, fmt.Errorf("%w: Store is required", ErrConfig)
	}
	if len(cfg.Secret) < 32 {
		return nil, fmt.Errorf("%w: Secret must be at least 32 bytes", ErrConfig)
	}
	s := &Server{cfg: cfg, lim: cfg.Limits.withDefaults(), waker: cfg.Waker, log: cfg.Logger, now: cfg.Now, rand: cfg.Rand, local: newLocalBuckets()}
	if s.lim.DedupWindow < s.lim.EnvelopeTTL {
		return nil, fmt.Errorf("%w: DedupWindow must be at least EnvelopeTTL", ErrConfig)
	}
	if s.waker == nil {
		s.waker = wake.NewLocal()
	}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	if s.now == nil {
		s.now = time.Now
	}
	if s.rand == nil {
		s.rand = rand.Reader
	}
	s.keys = deriveKeys(cfg.Secret)
	if _, ok := cfg.Store.(store.SealedAccess); !ok {
		return nil, fmt.Errorf("%w: the Store must implement store.SealedAccess", ErrConfig)
	}
	if _, ok := cfg.Store.(store.Recovery); !ok {
		return nil, fmt.Errorf("%w: the Store must implement store.Recovery", ErrConfig)
	}
	if _, ok := cfg.Store.(store.BackupStore); !ok {
		return nil, fmt.Errorf("%w: the Store must implement store.BackupStore", ErrConfig)
	}
	if _, ok := cfg.Store.(store.DataSubject); !ok {
		return nil, fmt.Errorf("%w: the Store must implement store.DataSubject", ErrConfig)
	}
	if s.cfg.SenderCertTTL == 0 {
		s.cfg.SenderCertTTL = DefaultSenderCertTTL
	}
	if s.cfg.CertKeyID == 0 {
		s.cfg.CertKeyID = 1
	}
	var err error
	hctx, hcancel := context.WithTimeout(context.Background(), 30*time.Second)
	err = setupHolds(hctx, cfg.Store, &s.cfg.LegalHold)
	hcancel()
	if err != nil {
		return nil, err
	}
	if s.cert, err = deriveCertKeys(cfg.Secret, s.cfg.CertKeyID, s.rand); err != nil {
		return nil, fmt.Errorf("%w: sealed-sender keys: %v", ErrConfig, err)
	}
	s.m = newMetrics()
	s.obs = newObservability(s.m.reg)
	if s.aud, err = newAuditState(cfg, s.now, s.m.reg); err != nil {
		return nil, err
	}
	s.st = timedStore{s: cfg.Store, m: s.m}
	if b, ok := cfg.Store.(store.BatchAcker); ok {
		s.batcher = b
	}
	s.conns = make(map[wake.Key]map[*wsConn]struct{})
	s.baseCtx, s.cancelBase = context.WithCancel(context.Background())
	s.handler = s.buildMux()
	return s, nil
}

// Handler is the server's HTTP handler (for embedding or httptest).
func (s *Server) Handler() http.Handler { return s.handler }

// Registry is the server's own Prometheus registry (served at /metrics).
func (s *Server) Registry() *prometheus.Registry { return s.m.reg }

// Ready reports whether the server is serving and not shutting down.
func (s *Server) Ready() bool { return s.ready.Load() }

// Serve accepts connections on l until Shutdown; it returns nil after a
// clean shutdown.
func (s *Server) Serve(l net.Listener) error {
	s.mu.Lock()
	if s.started || s.shutdown {
		s.mu.Unlock()
		return ErrAlreadyStarted
	}
	s.started = true
	s.http = &http.Server{
		Handler:           s.handler,
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       60 * time.Second,
		IdleTimeout:       120 * time.Second,
		MaxHeaderBytes:    16 << 10,
		ErrorLog:          slog.NewLogLogger(redactingHandler{s.log.Handler()}, slog.LevelDebug),
		BaseContext:       func(net.Listener) context.Context { return s.baseCtx },
	}
	srv := s.http
	s.bgWG.Add(1)
	go s.sweeper()
	s.mu.Unlock()
	if s.cfg.TLS != nil {
		l = tls.NewListener(l, s.cfg.TLS)
	}
	s.ready.Store(true)
	s.log.Info("server: serving", "addr", l.Addr().String(), "tls", s.cfg.TLS != nil)
	err := srv.Serve(l)
	if errors.Is(err, http.ErrServerClosed) {
		return nil
	}
	return err
}

// Start runs Serve in the background and returns at once. Errors from
// Serve are logged.
func (s *Server) Start(l net.Listener) {
	go func() {
		if err := s.Serve(l); err != nil {
			s.log.Error("server: serve failed", redactErr(err))
		}
	}()
}

// Shutdown stops accepting connections, waits for in-flight requests,
// closes WebSockets with "going away" (clients reconnect elsewhere; their
// unacknowledged envelopes stay queued), stops the sweeper and closes the
// waker. It does not close the Store.
func (s *Server) Shutdown(ctx context.Context) error {
	s.mu.Lock()
	if s.shutdown {
		s.mu.Unlock()
		return nil
	}
	s.shutdown = true
	srv := s.http
	s.mu.Unlock()
	s.ready.Store(false)
	var err error
	if srv != nil {
		err = srv.Shutdown(ctx)
	}
	// Hijacked WebSocket connections are not tracked by http.Server.
	s.cancelBase()
	done := make(chan struct{})
	go func() { s.wsWG.Wait(); s.bgWG.Wait(); close(done) }()
	select {
	case <-done:
	case <-ctx.Done():
		err = errors.Join(err, ctx.Err())
	}
	err = errors.Join(err, s.waker.Close())
	s.log.Info("server: stopped")
	return err
}

func (s *Server) sweeper() {
	defer s.bgWG.Done()
	t := time.NewTicker(s.lim.SweepInterval)
	defer t.Stop()
	for {
		s.sweepOnce()
		select {
		case <-s.baseCtx.Done():
			return
		case <-t.C:
		}
	}
}

// sweepOnce deletes expired envelopes and old idempotency records.
func (s *Server) sweepOnce() {
	defer s.observeSweep()
	defer s.pruneAudit()
	s.sweepProvisioning()
	s.sweepInactive()
	s.auditCheckpoint()
	now := s.now()
	ctx, cancel := context.WithTimeout(s.baseCtx, time.Minute)
	defer cancel()
	n, err := s.st.Sweep(ctx, now.Add(-s.lim.EnvelopeTTL), now.Add(-s.lim.DedupWindow))
	if err != nil {
		if s.baseCtx.Err() == nil {
			s.log.Warn("server: sweep failed", redactErr(err))
		}
		return
	}
	if n > 0 {
		s.m.expired.Add(float64(n))
		s.log.Info("server: expired undelivered envelopes", "count", n)
	}
}

// statusWriter records the status for metrics and logs; it passes
// Hijack through for WebSockets.
type statusWriter struct {
	http.ResponseWriter
	status int
}

func (w *statusWriter) WriteHeader(code int) {
	if w.status == 0 {
		w.status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	return w.ResponseWriter.Write(b)
}

func (w *statusWriter) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	hj, ok := w.ResponseWriter.(http.Hijacker)
	if !ok {
		return nil, nil, errors.New("server: connection cannot be hijacked")
	}
	c, rw, err := hj.Hijack()
	if err == nil && w.status == 0 {
		w.status = http.StatusSwitchingProtocols
	}
	return c, rw, err
}

func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// instrument wraps every route: panic recovery, metrics, request log.
func (s *Server) instrument(name string, h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		sw := &statusWriter{ResponseWriter: w}
		start := time.Now()
		defer func() {
			if v := recover(); v != nil {
				if v == http.ErrAbortHandler {
					panic(v)
				}
				s.m.panics.Inc()
				s.log.Error("server: handler panic", "route", name,
					"panic", redact(fmt.Sprint(v)), "stack", redact(string(debug.Stack())))
				if sw.status == 0 {
					writeError(sw, errInternal)
				}
			}
			code := sw.status
			if code == 0 {
				code = http.StatusOK
			}
			s.m.requests.WithLabelValues(name, fmt.Sprint(code)).Inc()
			if s.observe != nil {
				s.observe(name, code)
			}
			if code != http.StatusSwitchingProtocols {
				s.m.requestDuration.WithLabelValues(name).Observe(time.Since(start).Seconds())
			}
			lvl := slog.LevelDebug
			if code >= 500 {
				lvl = slog.LevelError
			}
			s.log.Log(r.Context(), lvl, "http", "route", name, "method", r.Method, "code", code,
				"dur_ms", float64(time.Since(start).Microseconds())/1000)
		}()
		h.ServeHTTP(sw, r)
	})
}

func (s *Server) metricsHandler() http.Handler {
	return promhttp.HandlerFor(s.m.reg, promhttp.HandlerOpts{ErrorLog: slog.NewLogLogger(s.log.Handler(), slog.LevelWarn)})
}

// redactingHandler scrubs the message of records from net/http's error
// log, which can include client addresses (TLS handshake errors).
type redactingHandler struct{ slog.Handler }

func (h redactingHandler) Handle(ctx context.Context, r slog.Record) error {
	nr := slog.NewRecord(r.Time, r.Level, redact(r.Message), r.PC)
	return h.Handler.Handle(ctx, nr)
}
