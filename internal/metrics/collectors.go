package metrics

import (
	"context"
	"errors"
	"io"
	"maps"
	"slices"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/signet-proxy/signet/credentials"
)

var (
	expiryDesc = prometheus.NewDesc(namespace+"_credential_time_to_expiry_seconds",
		"Seconds until the credentials a source holds expire; negative once expired. Sources whose keys never expire, or that hold none yet, have no series.",
		[]string{labelSource}, nil)

	cacheHitsDesc = prometheus.NewDesc(namespace+"_cache_hits_total",
		"Lookups that found their entry.", []string{labelCache}, nil)
	cacheMissesDesc = prometheus.NewDesc(namespace+"_cache_misses_total",
		"Lookups that did not find their entry.", []string{labelCache}, nil)
	cacheEvictionsDesc = prometheus.NewDesc(namespace+"_cache_evictions_total",
		"Entries dropped to make room for others.", []string{labelCache}, nil)
	cacheEntriesDesc = prometheus.NewDesc(namespace+"_cache_entries",
		"Entries held now.", []string{labelCache}, nil)
	cacheMaxEntriesDesc = prometheus.NewDesc(namespace+"_cache_max_entries",
		"The most entries the cache holds (cache.max_size).", []string{labelCache}, nil)
)

// expiryCollector reads the sources' states at scrape time, so the gauge
// is exact whenever it is read and nothing has to keep it up to date.
type expiryCollector struct{ m *Metrics }

func (c *expiryCollector) Describe(ch chan<- *prometheus.Desc) { ch <- expiryDesc }

func (c *expiryCollector) Collect(ch chan<- prometheus.Metric) {
	f := c.m.sources.Load()
	if f == nil || *f == nil {
		return
	}
	now := c.m.now()
	seen := map[string]bool{}
	for _, st := range (*f)() {
		// Two states with one name would make the scrape fail as a whole.
		if st.Expires.IsZero() || seen[st.Name] {
			continue
		}
		seen[st.Name] = true
		ch <- prometheus.MustNewConstMetric(expiryDesc, prometheus.GaugeValue, st.Expires.Sub(now).Seconds(), st.Name)
	}
}

// cacheCollector reads every registered cache's Stats at scrape time.
type cacheCollector struct{ m *Metrics }

func (c *cacheCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{cacheHitsDesc, cacheMissesDesc, cacheEvictionsDesc, cacheEntriesDesc, cacheMaxEntriesDesc} {
		ch <- d
	}
}

func (c *cacheCollector) Collect(ch chan<- prometheus.Metric) {
	c.m.mu.Lock()
	caches := maps.Clone(c.m.caches)
	c.m.mu.Unlock()
	// Stats may lock the cache: called outside our lock, in a stable order.
	for _, name := range slices.Sorted(maps.Keys(caches)) {
		s := caches[name]()
		ch <- prometheus.MustNewConstMetric(cacheHitsDesc, prometheus.CounterValue, float64(s.Hits), name)
		ch <- prometheus.MustNewConstMetric(cacheMissesDesc, prometheus.CounterValue, float64(s.Misses), name)
		ch <- prometheus.MustNewConstMetric(cacheEvictionsDesc, prometheus.CounterValue, float64(s.Evictions), name)
		ch <- prometheus.MustNewConstMetric(cacheEntriesDesc, prometheus.GaugeValue, float64(s.Len), name)
		if s.MaxSize > 0 {
			ch <- prometheus.MustNewConstMetric(cacheMaxEntriesDesc, prometheus.GaugeValue, float64(s.MaxSize), name)
		}
	}
}

// InstrumentProvider wraps the provider of source so that every fetch is
// counted (refreshes and failures), and for method "wasm" also timed as a
// WebAssembly call. Wrap before credentials.NewSource: the Source calls
// Retrieve exactly once per fetch. The wrapper closes p when the Source
// closes it. With a nil Metrics, p is returned as it is.
func (m *Metrics) InstrumentProvider(source, method string, p credentials.Provider) credentials.Provider {
	if m == nil {
		return p
	}
	return &instrumented{m: m, source: source, wasm: method == "wasm", p: p}
}

type instrumented struct {
	m      *Metrics
	source string
	wasm   bool
	p      credentials.Provider
}

var (
	errEmptyKeys = errors.New("provider returned an empty access key id or secret")
	errPanicked  = errors.New("provider panicked")
)

func (i *instrumented) Retrieve(ctx context.Context) (credentials.Credentials, error) {
	start := time.Now()
	returned := false
	defer func() {
		// A panic goes on to the Source, which recovers it as a failed
		// fetch; count it as one.
		if !returned {
			i.record(start, errPanicked)
		}
	}()
	c, err := i.p.Retrieve(ctx)
	returned = true
	if err == nil && (c.AccessKeyID == "" || c.SecretAccessKey == "") {
		// The Source refuses these keys: count what it will count.
		i.record(start, errEmptyKeys)
		return c, nil
	}
	i.record(start, err)
	return c, err
}

func (i *instrumented) record(start time.Time, err error) {
	i.m.Refresh(i.source, err)
	if i.wasm {
		i.m.WasmCall(i.source, time.Since(start), err)
	}
}

// Close closes the wrapped provider when it holds something (an HSM
// session), as credentials.Refreshing.Close expects of the provider.
func (i *instrumented) Close() error {
	if c, ok := i.p.(io.Closer); ok {
		return c.Close()
	}
	return nil
}

// Unwrap returns the wrapped provider.
func (i *instrumented) Unwrap() credentials.Provider { return i.p }
