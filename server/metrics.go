package server

import (
	"context"
	"errors"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/veil-e2ee/veil/server/store"
)

// metrics are the server's Prometheus metrics, on a registry of its own.
// Labels are route names, status codes, operation names and key kinds:
// never an account, device, username or address.
type metrics struct {
	reg             *prometheus.Registry
	requests        *prometheus.CounterVec
	requestDuration *prometheus.HistogramVec
	wsConnections   prometheus.Gauge
	wsReplaced      prometheus.Counter
	delivery        prometheus.Histogram
	pushed          prometheus.Counter
	acked           prometheus.Counter
	accepted        prometheus.Counter
	duplicates      prometheus.Counter
	queueDepth      prometheus.Histogram
	prekeyStock     *prometheus.HistogramVec
	lastResort      prometheus.Counter
	dbDuration      *prometheus.HistogramVec
	dbErrors        *prometheus.CounterVec
	rateLimited     *prometheus.CounterVec
	expired         prometheus.Counter
	panics          prometheus.Counter
	wakeErrors      prometheus.Counter
}

func newMetrics() *metrics {
	reg := prometheus.NewRegistry()
	m := &metrics{
		reg: reg,
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "veil_http_requests_total", Help: "HTTP requests by route and status code.",
		}, []string{"route", "code"}),
		requestDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "veil_http_request_duration_seconds", Help: "HTTP request handling time by route (WebSocket excluded).",
			Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5},
		}, []string{"route"}),
		wsConnections: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "veil_websocket_connections", Help: "Open device WebSocket connections on this node.",
		}),
		wsReplaced: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "veil_websocket_replaced_total", Help: "WebSocket connections closed because the same device connected again.",
		}),
		delivery: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "veil_delivery_latency_seconds", Help: "Time from an envelope's commit to its acknowledgement by a device connected at commit time.",
			Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10},
		}),
		pushed: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "veil_envelopes_pushed_total", Help: "Envelopes pushed over WebSocket (including re-pushes after reconnects).",
		}),
		acked: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "veil_envelopes_acked_total", Help: "Envelope acknowledgements processed (WebSocket and HTTP).",
		}),
		accepted: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "veil_envelopes_accepted_total", Help: "Envelopes committed to device queues.",
		}),
		duplicates: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "veil_messages_duplicate_total", Help: "Sends recognised as repeats of an already accepted message id.",
		}),
		queueDepth: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "veil_queue_depth", Help: "A device's queue depth, observed when it connects or fetches.",
			Buckets: []float64{0, 1, 10, 100, 1000, 10000, 100000},
		}),
		prekeyStock: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "veil_prekey_stock", Help: "One-time prekeys a device has left, observed when it uploads or reads its counts.",
			Buckets: []float64{0, 5, 10, 25, 50, 100, 250, 1000},
		}, []string{"kind"}),
		lastResort: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "veil_prekey_last_resort_total", Help: "Bundles handed out with the last-resort KEM key because one-time KEM keys ran out.",
		}),
		dbDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "veil_db_duration_seconds", Help: "Storage call latency by operation.",
			Buckets: []float64{.0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .25, 1},
		}, []string{"op"}),
		dbErrors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "veil_db_errors_total", Help: "Storage calls that failed for a reason other than a domain answer (not found, mismatch, …).",
		}, []string{"op"}),
		rateLimited: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "veil_rate_limited_total", Help: "Requests refused by a rate limit, by limit.",
		}, []string{"limit"}),
		expired: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "veil_envelopes_expired_total", Help: "Undelivered envelopes deleted by the expiry sweeper.",
		}),
		panics: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "veil_panics_total", Help: "Handler panics recovered (each answered 500 and logged).",
		}),
		wakeErrors: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "veil_wake_errors_total", Help: "Failures to publish a wake-up signal (delivery then waits for the next signal).",
		}),
	}
	reg.MustRegister(m.requests, m.requestDuration, m.wsConnections, m.wsReplaced, m.delivery, m.pushed, m.acked,
		m.accepted, m.duplicates, m.queueDepth, m.prekeyStock, m.lastResort, m.dbDuration, m.dbErrors,
		m.rateLimited, m.expired, m.panics, m.wakeErrors,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

// timedStore wraps a Store to record per-operation latency and faults.
type timedStore struct {
	s store.Store
	m *metrics
}

var _ store.Store = timedStore{}

func isDomainErr(err error) bool {
	var mm *store.DeviceMismatchError
	return errors.Is(err, store.ErrNotFound) || errors.Is(err, store.ErrUsernameTaken) ||
		errors.Is(err, store.ErrQueueFull) || errors.Is(err, store.ErrDeviceLimit) || errors.As(err, &mm)
}

func (t timedStore) obs(op string, start time.Time, err error) {
	t.m.dbDuration.WithLabelValues(op).Observe(time.Since(start).Seconds())
	if err != nil && !isDomainErr(err) {
		t.m.dbErrors.WithLabelValues(op).Inc()
	}
}

func (t timedStore) CreateAccount(ctx context.Context, a store.NewAccount) (r store.Account, err error) {
	defer func(s time.Time) { t.obs("create_account", s, err) }(time.Now())
	return t.s.CreateAccount(ctx, a)
}
func (t timedStore) Account(ctx context.Context, id store.AccountID) (r store.Account, err error) {
	defer func(s time.Time) { t.obs("account", s, err) }(time.Now())
	return t.s.Account(ctx, id)
}
func (t timedStore) AccountByUsername(ctx context.Context, u string) (r store.Account, err error) {
	defer func(s time.Time) { t.obs("account_by_username", s, err) }(time.Now())
	return t.s.AccountByUsername(ctx, u)
}
func (t timedStore) Device(ctx context.Context, a store.AccountID, d uint32) (r store.Device, err error) {
	defer func(s time.Time) { t.obs("device", s, err) }(time.Now())
	return t.s.Device(ctx, a, d)
}
func (t timedStore) Devices(ctx context.Context, a store.AccountID) (r []store.Device, err error) {
	defer func(s time.Time) { t.obs("devices", s, err) }(time.Now())
	return t.s.Devices(ctx, a)
}
func (t timedStore) TouchDevice(ctx context.Context, a store.AccountID, d uint32, now time.Time) (err error) {
	defer func(s time.Time) { t.obs("touch_device", s, err) }(time.Now())
	return t.s.TouchDevice(ctx, a, d, now)
}
func (t timedStore) AddDevice(ctx context.Context, a store.AccountID, nd store.NewDevice, max int) (r store.Device, err error) {
	defer func(s time.Time) { t.obs("add_device", s, err) }(time.Now())
	return t.s.AddDevice(ctx, a, nd, max)
}
func (t timedStore) RemoveDevice(ctx context.Context, a store.AccountID, d uint32) (err error) {
	defer func(s time.Time) { t.obs("remove_device", s, err) }(time.Now())
	return t.s.RemoveDevice(ctx, a, d)
}
func (t timedStore) StorePreKeys(ctx context.Context, a store.AccountID, d uint32, up store.PreKeyUpload) (err error) {
	defer func(s time.Time) { t.obs("store_prekeys", s, err) }(time.Now())
	return t.s.StorePreKeys(ctx, a, d, up)
}
func (t timedStore) PreKeyCounts(ctx context.Context, a store.AccountID, d uint32) (r store.PreKeyCounts, err error) {
	defer func(s time.Time) { t.obs("prekey_counts", s, err) }(time.Now())
	return t.s.PreKeyCounts(ctx, a, d)
}
func (t timedStore) TakeBundles(ctx context.Context, a store.AccountID, d uint32) (r []store.Bundle, err error) {
	defer func(s time.Time) { t.obs("take_bundles", s, err) }(time.Now())
	return t.s.TakeBundles(ctx, a, d)
}
func (t timedStore) Deliver(ctx context.Context, snd store.Send) (r store.SendResult, err error) {
	defer func(s time.Time) { t.obs("deliver", s, err) }(time.Now())
	return t.s.Deliver(ctx, snd)
}
func (t timedStore) Pending(ctx context.Context, a store.AccountID, d uint32, after int64, limit int) (r []store.Envelope, err error) {
	defer func(s time.Time) { t.obs("pending", s, err) }(time.Now())
	return t.s.Pending(ctx, a, d, after, limit)
}
func (t timedStore) Ack(ctx context.Context, a store.AccountID, d uint32, seq int64) (err error) {
	defer func(s time.Time) { t.obs("ack", s, err) }(time.Now())
	return t.s.Ack(ctx, a, d, seq)
}
func (t timedStore) QueueDepth(ctx context.Context, a store.AccountID, d uint32) (r int, err error) {
	defer func(s time.Time) { t.obs("queue_depth", s, err) }(time.Now())
	return t.s.QueueDepth(ctx, a, d)
}
func (t timedStore) Sweep(ctx context.Context, ec, dc time.Time) (r int, err error) {
	defer func(s time.Time) { t.obs("sweep", s, err) }(time.Now())
	return t.s.Sweep(ctx, ec, dc)
}
func (t timedStore) TakeToken(ctx context.Context, key []byte, burst int, interval time.Duration, now time.Time) (ok bool, ra time.Duration, err error) {
	defer func(s time.Time) { t.obs("take_token", s, err) }(time.Now())
	return t.s.TakeToken(ctx, key, burst, interval, now)
}
func (t timedStore) Ping(ctx context.Context) (err error) {
	defer func(s time.Time) { t.obs("ping", s, err) }(time.Now())
	return t.s.Ping(ctx)
}
func (t timedStore) Close() error { return t.s.Close() }
