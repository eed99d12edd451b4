// Package metrics owns signet's Prometheus metrics: one registry per
// process (never the global default), the collectors on it, and small
// recording methods for the request path, the credential sources, the
// caches and the WebAssembly providers.
//
// Everything is safe on a nil *Metrics and a nil *Route, so a component
// built without metrics (a test, an embedding) records nothing and needs no
// checks.
package metrics

import (
	"log/slog"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/signet-proxy/signet/credentials"
	"github.com/signet-proxy/signet/internal/cache"
)

const namespace = "signet"

// Label names.
const (
	labelRoute     = "route"
	labelService   = "service"
	labelRegion    = "region"
	labelCodeClass = "code_class"
	labelSource    = "source"
	labelCache     = "cache"
)

// Buckets, in seconds. Signing one request takes about 10-20µs, but a body
// that must be hashed is spooled first, which takes as long as the upload;
// an upstream answers in milliseconds to minutes (long polls, large
// objects); a WebAssembly provider runs for milliseconds up to its timeout.
var (
	signingBuckets  = []float64{.00001, .000025, .00005, .0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .25, 1, 5, 30}
	upstreamBuckets = []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60, 300}
	wasmBuckets     = []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60, 300}
)

// Options configure New.
type Options struct {
	// Now is the clock for seconds to expiry; nil means time.Now.
	Now func() time.Time
	// Logger receives errors met while serving a scrape; nil discards them.
	Logger *slog.Logger
	// WithoutRuntime leaves out the Go runtime and process collectors.
	WithoutRuntime bool
}

// Metrics is the registry and every collector on it. Build it once per
// process with New; it outlives config reloads, so counters keep counting
// when routes and sources are rebuilt.
type Metrics struct {
	reg *prometheus.Registry
	now func() time.Time
	log *slog.Logger

	requests      *prometheus.CounterVec
	signing       *prometheus.HistogramVec
	upstream      *prometheus.HistogramVec
	requestBytes  *prometheus.CounterVec
	responseBytes *prometheus.CounterVec

	refreshes       *prometheus.CounterVec
	refreshFailures *prometheus.CounterVec
	wasmDuration    *prometheus.HistogramVec
	wasmFailures    *prometheus.CounterVec

	sources atomic.Pointer[func() []credentials.State]
	leaves  atomic.Pointer[func() uint64]

	mu     sync.Mutex
	routes map[string]*Route
	caches map[string]func() cache.Stats
}

// New builds the registry with every signet collector on it.
func New(opts Options) *Metrics {
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	m := &Metrics{
		reg:    prometheus.NewRegistry(),
		now:    opts.Now,
		log:    opts.Logger,
		routes: map[string]*Route{},
		caches: map[string]func() cache.Stats{},

		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: namespace, Name: "requests_total",
			Help: "Requests answered, by route, signing name, region and status class (2xx...). Signet's own error answers count too.",
		}, []string{labelRoute, labelService, labelRegion, labelCodeClass}),
		signing: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: namespace, Name: "signing_duration_seconds",
			Help:    "Time to sign a request, including hashing (and spooling) a body that needs a payload hash.",
			Buckets: signingBuckets,
		}, []string{labelRoute}),
		upstream: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: namespace, Name: "upstream_duration_seconds",
			Help:    "Time from sending a request upstream to receiving the response headers.",
			Buckets: upstreamBuckets,
		}, []string{labelRoute}),
		requestBytes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: namespace, Name: "request_bytes_total",
			Help: "Request body bytes received from clients and sent upstream.",
		}, []string{labelRoute}),
		responseBytes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: namespace, Name: "response_bytes_total",
			Help: "Response body bytes received from upstreams and sent to clients.",
		}, []string{labelRoute}),

		refreshes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: namespace, Name: "credential_refreshes_total",
			Help: "Credential fetches started by a source, successful or not.",
		}, []string{labelSource}),
		refreshFailures: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: namespace, Name: "credential_refresh_failures_total",
			Help: "Credential fetches that failed.",
		}, []string{labelSource}),
		wasmDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: namespace, Name: "wasm_call_duration_seconds",
			Help:    "Time of one run of a WebAssembly credential provider.",
			Buckets: wasmBuckets,
		}, []string{labelSource}),
		wasmFailures: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: namespace, Name: "wasm_call_failures_total",
			Help: "Runs of a WebAssembly credential provider that failed.",
		}, []string{labelSource}),
	}
	m.reg.MustRegister(
		m.requests, m.signing, m.upstream, m.requestBytes, m.responseBytes,
		m.refreshes, m.refreshFailures, m.wasmDuration, m.wasmFailures,
		&expiryCollector{m: m}, &cacheCollector{m: m},
		prometheus.NewCounterFunc(prometheus.CounterOpts{
			Namespace: namespace, Name: "leaf_certificates_issued_total",
			Help: "Leaf certificates signed by the local CA for intercepted hosts.",
		}, m.leavesIssued),
	)
	if !opts.WithoutRuntime {
		m.reg.MustRegister(
			collectors.NewGoCollector(),
			collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		)
	}
	return m
}

// Registry returns the registry, for tests and for adding collectors.
func (m *Metrics) Registry() *prometheus.Registry {
	if m == nil {
		return nil
	}
	return m.reg
}

// Handler serves the registry in the Prometheus exposition formats, for
// /metrics on the admin listener.
func (m *Metrics) Handler() http.Handler {
	if m == nil {
		return http.NotFoundHandler()
	}
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{
		ErrorLog:      slogPrinter{m.log},
		ErrorHandling: promhttp.ContinueOnError,
	})
}

type slogPrinter struct{ log *slog.Logger }

func (p slogPrinter) Println(v ...any) {
	p.log.Warn("metrics: scrape", "error", slog.AnyValue(v))
}

// SetSources gives the function that lists the sources' states at scrape
// time, for seconds to expiry. A reload passes a new one (or the same
// function reading the current config).
func (m *Metrics) SetSources(states func() []credentials.State) {
	if m != nil {
		m.sources.Store(&states)
	}
}

// SetLeafCertificatesIssued gives the function that reads how many leaf
// certificates the local CA has signed (tlsintercept.Interceptor.Stats).
func (m *Metrics) SetLeafCertificatesIssued(issued func() uint64) {
	if m != nil {
		m.leaves.Store(&issued)
	}
}

func (m *Metrics) leavesIssued() float64 {
	if f := m.leaves.Load(); f != nil && *f != nil {
		return float64((*f)())
	}
	return 0
}

// AddCache reports a cache's figures under name (the label "cache"),
// reading them at scrape time. Adding a name again replaces its function.
func (m *Metrics) AddCache(name string, stats func() cache.Stats) {
	if m == nil || stats == nil {
		return
	}
	m.mu.Lock()
	m.caches[name] = stats
	m.mu.Unlock()
}

// RemoveCache stops reporting a cache.
func (m *Metrics) RemoveCache(name string) {
	if m == nil {
		return
	}
	m.mu.Lock()
	delete(m.caches, name)
	m.mu.Unlock()
}

// ForgetSource deletes the series of a source that a reload removed.
func (m *Metrics) ForgetSource(name string) {
	if m == nil {
		return
	}
	for _, v := range []*prometheus.MetricVec{m.refreshes.MetricVec, m.refreshFailures.MetricVec, m.wasmFailures.MetricVec, m.wasmDuration.MetricVec} {
		v.DeleteLabelValues(name)
	}
}

// Refresh records one credential fetch of source and whether it failed.
func (m *Metrics) Refresh(source string, err error) {
	if m == nil {
		return
	}
	m.refreshes.WithLabelValues(source).Inc()
	if err != nil {
		m.refreshFailures.WithLabelValues(source).Inc()
	}
}

// WasmCall records one run of a WebAssembly provider.
func (m *Metrics) WasmCall(source string, d time.Duration, err error) {
	if m == nil {
		return
	}
	m.wasmDuration.WithLabelValues(source).Observe(d.Seconds())
	if err != nil {
		m.wasmFailures.WithLabelValues(source).Inc()
	}
}
