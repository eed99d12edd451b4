package metrics_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/signet-proxy/signet/credentials"
	"github.com/signet-proxy/signet/internal/cache"
	"github.com/signet-proxy/signet/internal/metrics"
)

func newMetrics(t *testing.T, now time.Time) *metrics.Metrics {
	t.Helper()
	return metrics.New(metrics.Options{Now: func() time.Time { return now }, WithoutRuntime: true})
}

func TestRequests(t *testing.T) {
	m := newMetrics(t, time.Now())
	r := m.Route("routes[0]")
	if m.Route("routes[0]") != r {
		t.Error("Route returned a new recorder for a known name")
	}
	for _, q := range []metrics.Request{
		{Service: "s3", Region: "eu-west-1", Status: 200, Signing: 20 * time.Microsecond, Upstream: 3 * time.Millisecond, BytesIn: 10, BytesOut: 1000},
		{Service: "s3", Region: "eu-west-1", Status: 204, Signing: 20 * time.Microsecond, Upstream: 3 * time.Millisecond},
		{Service: "s3", Region: "eu-west-1", Status: 403, Signing: 20 * time.Microsecond, Upstream: 3 * time.Millisecond, BytesOut: 200},
		{Service: "sqs", Region: "us-east-1", Status: 503, BytesIn: 5}, // refused before signing
		{Service: "sqs", Region: "us-east-1", Status: 101, Signing: time.Microsecond, Upstream: time.Millisecond},
		{Service: "sqs", Region: "us-east-1", Status: 0},
	} {
		r.Observe(q)
	}
	m.Route("unmatched").Observe(metrics.Request{Status: 302, Upstream: time.Millisecond, BytesOut: 7})

	want := `
# HELP signet_requests_total Requests answered, by route, signing name, region and status class (2xx...). Signet's own error answers count too.
# TYPE signet_requests_total counter
signet_requests_total{code_class="1xx",region="us-east-1",route="routes[0]",service="sqs"} 1
signet_requests_total{code_class="2xx",region="eu-west-1",route="routes[0]",service="s3"} 2
signet_requests_total{code_class="2xx",region="us-east-1",route="routes[0]",service="sqs"} 0
signet_requests_total{code_class="2xx",region="",route="unmatched",service=""} 0
signet_requests_total{code_class="3xx",region="eu-west-1",route="routes[0]",service="s3"} 0
signet_requests_total{code_class="3xx",region="us-east-1",route="routes[0]",service="sqs"} 0
signet_requests_total{code_class="3xx",region="",route="unmatched",service=""} 1
signet_requests_total{code_class="4xx",region="eu-west-1",route="routes[0]",service="s3"} 1
signet_requests_total{code_class="4xx",region="us-east-1",route="routes[0]",service="sqs"} 0
signet_requests_total{code_class="4xx",region="",route="unmatched",service=""} 0
signet_requests_total{code_class="5xx",region="eu-west-1",route="routes[0]",service="s3"} 0
signet_requests_total{code_class="5xx",region="us-east-1",route="routes[0]",service="sqs"} 1
signet_requests_total{code_class="5xx",region="",route="unmatched",service=""} 0
signet_requests_total{code_class="other",region="us-east-1",route="routes[0]",service="sqs"} 1
# HELP signet_request_bytes_total Request body bytes received from clients and sent upstream.
# TYPE signet_request_bytes_total counter
signet_request_bytes_total{route="routes[0]"} 15
signet_request_bytes_total{route="unmatched"} 0
# HELP signet_response_bytes_total Response body bytes received from upstreams and sent to clients.
# TYPE signet_response_bytes_total counter
signet_response_bytes_total{route="routes[0]"} 1200
signet_response_bytes_total{route="unmatched"} 7
`
	if err := testutil.GatherAndCompare(m.Registry(), strings.NewReader(want),
		"signet_requests_total", "signet_request_bytes_total", "signet_response_bytes_total"); err != nil {
		t.Error(err)
	}
	// Signing is observed for the 4 signed requests, upstream for those
	// plus the unmatched one.
	for name, n := range map[string]uint64{"signet_signing_duration_seconds": 4, "signet_upstream_duration_seconds": 5} {
		if got := histogramCount(t, m, name); got != n {
			t.Errorf("%s: %d observations, want %d", name, got, n)
		}
	}
}

func histogramCount(t *testing.T, m *metrics.Metrics, name string) uint64 {
	t.Helper()
	mfs, err := m.Registry().Gather()
	if err != nil {
		t.Fatal(err)
	}
	var n uint64
	for _, mf := range mfs {
		if mf.GetName() == name {
			for _, mt := range mf.GetMetric() {
				n += mt.GetHistogram().GetSampleCount()
			}
		}
	}
	return n
}

// A client controls the scope of a placeholder signature; it must not be
// able to grow the registry without bound, nor crash it with bad UTF-8.
func TestRequestLabelsBounded(t *testing.T) {
	m := newMetrics(t, time.Now())
	r := m.Route("routes[0]")
	for i := range 1000 {
		r.Observe(metrics.Request{Service: "s3", Region: fmt.Sprintf("r-%d", i), Status: 200})
	}
	r.Observe(metrics.Request{Service: "s3\xff", Region: "x y", Status: 200})
	series := testutil.CollectAndCount(m.Registry(), "signet_requests_total")
	if max := (256 + 1) * 4; series > max {
		t.Errorf("%d series after 1000 regions, want at most %d", series, max)
	}
	// 256 pairs get their own series; the other 744 and the invalid one
	// share "other".
	if got := value(t, m, "signet_requests_total", map[string]string{"service": "other", "region": "other", "code_class": "2xx"}); got != 745 {
		t.Errorf("other: %v requests, want 745", got)
	}
}

func TestRequestLabelsInvalid(t *testing.T) {
	m := newMetrics(t, time.Now())
	m.Route("r").Observe(metrics.Request{Service: "s3\xff", Region: "x y", Status: 500})
	want := `
# HELP signet_requests_total Requests answered, by route, signing name, region and status class (2xx...). Signet's own error answers count too.
# TYPE signet_requests_total counter
signet_requests_total{code_class="2xx",region="invalid",route="r",service="invalid"} 0
signet_requests_total{code_class="3xx",region="invalid",route="r",service="invalid"} 0
signet_requests_total{code_class="4xx",region="invalid",route="r",service="invalid"} 0
signet_requests_total{code_class="5xx",region="invalid",route="r",service="invalid"} 1
`
	if err := testutil.GatherAndCompare(m.Registry(), strings.NewReader(want), "signet_requests_total"); err != nil {
		t.Error(err)
	}
}

// value is the value of the one series of name with labels.
func value(t *testing.T, m *metrics.Metrics, name string, labels map[string]string) float64 {
	t.Helper()
	mfs, err := m.Registry().Gather()
	if err != nil {
		t.Fatal(err)
	}
	var found []float64
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	series:
		for _, mt := range mf.GetMetric() {
			for _, lp := range mt.GetLabel() {
				if v, ok := labels[lp.GetName()]; ok && v != lp.GetValue() {
					continue series
				}
			}
			switch {
			case mt.GetCounter() != nil:
				found = append(found, mt.GetCounter().GetValue())
			case mt.GetGauge() != nil:
				found = append(found, mt.GetGauge().GetValue())
			}
		}
	}
	if len(found) != 1 {
		t.Fatalf("%s%v: %d series, want 1", name, labels, len(found))
	}
	return found[0]
}

func TestObserveAllocatesNothing(t *testing.T) {
	m := newMetrics(t, time.Now())
	r := m.Route("routes[0]")
	q := metrics.Request{Service: "s3", Region: "eu-west-1", Status: 200, Signing: time.Microsecond, Upstream: time.Millisecond, BytesIn: 1, BytesOut: 1}
	r.Observe(q)
	if n := testing.AllocsPerRun(1000, func() { r.Observe(q) }); n != 0 {
		t.Errorf("Observe allocates %v times per request", n)
	}
}

func TestSourceExpiry(t *testing.T) {
	now := time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)
	m := newMetrics(t, now)
	// Nothing set yet: no series, and no failure.
	if n := testutil.CollectAndCount(m.Registry(), "signet_credential_time_to_expiry_seconds"); n != 0 {
		t.Errorf("%d series before SetSources", n)
	}
	m.SetSources(func() []credentials.State {
		return []credentials.State{
			{Name: "prod", Expires: now.Add(90 * time.Second)},
			{Name: "static"}, // never expires
			{Name: "old", Expires: now.Add(-5 * time.Second)},
			{Name: "prod", Expires: now.Add(time.Hour)}, // a duplicate must not break the scrape
		}
	})
	want := `
# HELP signet_credential_time_to_expiry_seconds Seconds until the credentials a source holds expire; negative once expired. Sources whose keys never expire, or that hold none yet, have no series.
# TYPE signet_credential_time_to_expiry_seconds gauge
signet_credential_time_to_expiry_seconds{source="old"} -5
signet_credential_time_to_expiry_seconds{source="prod"} 90
`
	if err := testutil.GatherAndCompare(m.Registry(), strings.NewReader(want), "signet_credential_time_to_expiry_seconds"); err != nil {
		t.Error(err)
	}
}

// closer is a provider holding a resource, as an IoT provider with an HSM
// session does.
type closer struct {
	credentials.ProviderFunc
	closed bool
}

func (c *closer) Close() error { c.closed = true; return nil }

func TestInstrumentProvider(t *testing.T) {
	m := newMetrics(t, time.Now())
	fail := true
	inner := &closer{ProviderFunc: func(context.Context) (credentials.Credentials, error) {
		if fail {
			return credentials.Credentials{}, errors.New("no network")
		}
		return credentials.Credentials{AccessKeyID: "AKIDEXAMPLE12345", SecretAccessKey: "secret"}, nil
	}}
	src := credentials.NewSource("plugin", m.InstrumentProvider("plugin", "wasm", inner), credentials.SourceOptions{Method: "wasm"})
	if _, err := src.Credentials(t.Context()); err == nil {
		t.Fatal("first fetch succeeded")
	}
	fail = false
	// The failed fetch set a backoff; a fresh source fetches at once.
	src2 := credentials.NewSource("plugin", m.InstrumentProvider("plugin", "wasm", inner), credentials.SourceOptions{Method: "wasm"})
	if _, err := src2.Credentials(t.Context()); err != nil {
		t.Fatal(err)
	}
	empty := credentials.ProviderFunc(func(context.Context) (credentials.Credentials, error) {
		return credentials.Credentials{AccessKeyID: "AKIDEXAMPLE12345"}, nil
	})
	src3 := credentials.NewSource("chain", m.InstrumentProvider("chain", "chain", empty), credentials.SourceOptions{})
	if _, err := src3.Credentials(t.Context()); err == nil {
		t.Fatal("empty secret accepted")
	}
	want := `
# HELP signet_credential_refresh_failures_total Credential fetches that failed.
# TYPE signet_credential_refresh_failures_total counter
signet_credential_refresh_failures_total{source="chain"} 1
signet_credential_refresh_failures_total{source="plugin"} 1
# HELP signet_credential_refreshes_total Credential fetches started by a source, successful or not.
# TYPE signet_credential_refreshes_total counter
signet_credential_refreshes_total{source="chain"} 1
signet_credential_refreshes_total{source="plugin"} 2
# HELP signet_wasm_call_failures_total Runs of a WebAssembly credential provider that failed.
# TYPE signet_wasm_call_failures_total counter
signet_wasm_call_failures_total{source="plugin"} 1
`
	if err := testutil.GatherAndCompare(m.Registry(), strings.NewReader(want),
		"signet_credential_refreshes_total", "signet_credential_refresh_failures_total", "signet_wasm_call_failures_total"); err != nil {
		t.Error(err)
	}
	if got := histogramCount(t, m, "signet_wasm_call_duration_seconds"); got != 2 {
		t.Errorf("wasm calls timed: %d, want 2", got)
	}
	if err := src2.Close(); err != nil || !inner.closed {
		t.Errorf("closing the source did not close the wrapped provider (err %v)", err)
	}
	m.ForgetSource("plugin")
	if n := testutil.CollectAndCount(m.Registry(), "signet_credential_refreshes_total"); n != 1 {
		t.Errorf("%d refresh series after ForgetSource, want 1", n)
	}
	var nilM *metrics.Metrics
	if p := nilM.InstrumentProvider("x", "wasm", empty); p == nil {
		t.Error("nil Metrics lost the provider")
	}
}

func TestInstrumentProviderCountsPanic(t *testing.T) {
	m := newMetrics(t, time.Now())
	boom := credentials.ProviderFunc(func(context.Context) (credentials.Credentials, error) { panic("boom") })
	src := credentials.NewSource("p", m.InstrumentProvider("p", "static", boom), credentials.SourceOptions{})
	if _, err := src.Credentials(t.Context()); err == nil {
		t.Fatal("a panicking provider gave credentials")
	}
	if got := value(t, m, "signet_credential_refresh_failures_total", map[string]string{"source": "p"}); got != 1 {
		t.Errorf("failures = %v, want 1", got)
	}
}

// The metrics show what each policy evicted.
func TestCacheMetrics(t *testing.T) {
	m := newMetrics(t, time.Now())
	for _, p := range []cache.Policy{cache.LRU, cache.LFU} {
		c, err := cache.New(cache.Options[string, int]{Policy: p, MaxSize: 2})
		if err != nil {
			t.Fatal(err)
		}
		m.AddCache("scope_"+string(p), c.Stats)
		c.Add("a", 1)
		c.Get("a")
		c.Get("a")
		c.Add("b", 2)
		c.Get("b")
		c.Add("c", 3) // LRU evicts a (b was read last); LFU evicts b (read less)
		c.Get("zz")
	}
	m.AddCache("gone", func() cache.Stats { return cache.Stats{Hits: 1} })
	m.RemoveCache("gone")
	want := `
# HELP signet_cache_entries Entries held now.
# TYPE signet_cache_entries gauge
signet_cache_entries{cache="scope_lfu"} 2
signet_cache_entries{cache="scope_lru"} 2
# HELP signet_cache_evictions_total Entries dropped to make room for others.
# TYPE signet_cache_evictions_total counter
signet_cache_evictions_total{cache="scope_lfu"} 1
signet_cache_evictions_total{cache="scope_lru"} 1
# HELP signet_cache_hits_total Lookups that found their entry.
# TYPE signet_cache_hits_total counter
signet_cache_hits_total{cache="scope_lfu"} 3
signet_cache_hits_total{cache="scope_lru"} 3
# HELP signet_cache_max_entries The most entries the cache holds (cache.max_size).
# TYPE signet_cache_max_entries gauge
signet_cache_max_entries{cache="scope_lfu"} 2
signet_cache_max_entries{cache="scope_lru"} 2
# HELP signet_cache_misses_total Lookups that did not find their entry.
# TYPE signet_cache_misses_total counter
signet_cache_misses_total{cache="scope_lfu"} 1
signet_cache_misses_total{cache="scope_lru"} 1
`
	if err := testutil.GatherAndCompare(m.Registry(), strings.NewReader(want),
		"signet_cache_entries", "signet_cache_evictions_total", "signet_cache_hits_total", "signet_cache_max_entries", "signet_cache_misses_total"); err != nil {
		t.Error(err)
	}
}

func TestLeafCertificates(t *testing.T) {
	m := newMetrics(t, time.Now())
	if got := value(t, m, "signet_leaf_certificates_issued_total", nil); got != 0 {
		t.Errorf("before SetLeafCertificatesIssued: %v", got)
	}
	m.SetLeafCertificatesIssued(func() uint64 { return 7 })
	if got := value(t, m, "signet_leaf_certificates_issued_total", nil); got != 7 {
		t.Errorf("issued = %v, want 7", got)
	}
}

// Every name follows the Prometheus conventions that promlint checks.
func TestLint(t *testing.T) {
	m := metrics.New(metrics.Options{})
	r := m.Route("routes[0]")
	r.Observe(metrics.Request{Service: "s3", Region: "eu-west-1", Status: 200, Signing: 1, Upstream: 1, BytesIn: 1, BytesOut: 1})
	m.Refresh("a", errors.New("x"))
	m.WasmCall("a", time.Millisecond, errors.New("x"))
	m.SetSources(func() []credentials.State {
		return []credentials.State{{Name: "a", Expires: time.Now().Add(time.Hour)}}
	})
	m.AddCache("c", func() cache.Stats { return cache.Stats{MaxSize: 1} })
	problems, err := testutil.GatherAndLint(m.Registry())
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		t.Errorf("%s: %s", p.Metric, p.Text)
	}
}

func TestHandler(t *testing.T) {
	m := metrics.New(metrics.Options{})
	m.Route("routes[0]").Observe(metrics.Request{Service: "s3", Region: "eu-west-1", Status: 200})
	srv := httptest.NewServer(m.Handler())
	defer srv.Close()
	resp, err := http.Get(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	for _, want := range []string{
		`signet_requests_total{code_class="2xx",region="eu-west-1",route="routes[0]",service="s3"} 1`,
		"go_goroutines", "process_resident_memory_bytes",
	} {
		if !strings.Contains(string(body), want) {
			t.Errorf("scrape lacks %q", want)
		}
	}
}

// A component built without metrics records nothing and does not crash.
func TestNilMetrics(t *testing.T) {
	var m *metrics.Metrics
	m.Route("x").Observe(metrics.Request{Status: 200})
	m.Refresh("a", nil)
	m.WasmCall("a", 1, nil)
	m.SetSources(nil)
	m.SetLeafCertificatesIssued(nil)
	m.AddCache("c", nil)
	m.RemoveCache("c")
	m.ForgetSource("a")
	if m.Registry() != nil {
		t.Error("nil Metrics has a registry")
	}
	rec := httptest.NewRecorder()
	m.Handler().ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	if rec.Code != http.StatusNotFound {
		t.Errorf("nil Metrics handler: %d", rec.Code)
	}
}

func BenchmarkObserve(b *testing.B) {
	m := metrics.New(metrics.Options{WithoutRuntime: true})
	r := m.Route("routes[0]")
	q := metrics.Request{Service: "s3", Region: "eu-west-1", Status: 200, Signing: 15 * time.Microsecond, Upstream: time.Millisecond, BytesIn: 1024, BytesOut: 1024}
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			r.Observe(q)
		}
	})
}
