package metrics

import (
	"strconv"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/prometheus/client_golang/prometheus"
)

// Request is what the proxy knows about one finished request.
type Request struct {
	// Service and Region are the signing name and region; empty for a
	// request that was not signed.
	Service, Region string
	// Status is the HTTP status sent to the client.
	Status int
	// Signing is the time signing took; 0 when the request was not signed.
	Signing time.Duration
	// Upstream is the time from sending the request upstream to its
	// response headers; 0 when no upstream answered.
	Upstream time.Duration
	// BytesIn and BytesOut are the request and response body bytes.
	BytesIn, BytesOut int64
}

// maxScopesPerRoute bounds the (service, region) pairs one route keeps
// series for. Both can come from a client (the scope of a placeholder
// signature), so without a bound a client could grow the registry without
// end; pairs past it are counted under "other".
const maxScopesPerRoute = 256

// Label values standing in for values that are not reported.
const (
	otherValue   = "other"
	invalidValue = "invalid"
)

// Route records the requests of one route. Get it once per route with
// Metrics.Route, when the config is built, and keep it: recording a request
// then costs a map lookup and a few atomic adds, with no allocation.
type Route struct {
	m    *Metrics
	name string

	signing, upstream prometheus.Observer
	bytesIn, bytesOut prometheus.Counter

	// scopes maps a (service, region) pair to its counters. Readers load
	// the map without locking; a new pair copies it under mu.
	scopes atomic.Pointer[map[scope]*scopeCounters]
	mu     sync.Mutex
	other  *scopeCounters // the pairs past maxScopesPerRoute; under mu
}

type scope struct{ service, region string }

// scopeCounters are the counters of the common status classes, resolved
// once; 1xx and the rest are looked up when they occur.
type scopeCounters struct {
	scope
	class [4]prometheus.Counter // 2xx, 3xx, 4xx, 5xx
}

// Route returns the recorder for the route named name ("routes[0]",
// "reverse[1]", "unmatched": any stable name from the config). The same
// name returns the same recorder, so a route that survives a reload keeps
// its series.
func (m *Metrics) Route(name string) *Route {
	if m == nil {
		return nil
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if r, ok := m.routes[name]; ok {
		return r
	}
	r := &Route{
		m:        m,
		name:     name,
		signing:  m.signing.WithLabelValues(name),
		upstream: m.upstream.WithLabelValues(name),
		bytesIn:  m.requestBytes.WithLabelValues(name),
		bytesOut: m.responseBytes.WithLabelValues(name),
	}
	empty := map[scope]*scopeCounters{}
	r.scopes.Store(&empty)
	m.routes[name] = r
	return r
}

// Observe records one finished request.
func (r *Route) Observe(q Request) {
	if r == nil {
		return
	}
	class := q.Status / 100
	if class >= 2 && class <= 5 {
		r.counters(q.Service, q.Region).class[class-2].Inc()
	} else {
		sc := r.counters(q.Service, q.Region)
		name := otherValue
		if class == 1 {
			name = "1xx"
		}
		r.m.requests.WithLabelValues(r.name, sc.service, sc.region, name).Inc()
	}
	if q.Signing > 0 {
		r.signing.Observe(q.Signing.Seconds())
	}
	if q.Upstream > 0 {
		r.upstream.Observe(q.Upstream.Seconds())
	}
	if q.BytesIn > 0 {
		r.bytesIn.Add(float64(q.BytesIn))
	}
	if q.BytesOut > 0 {
		r.bytesOut.Add(float64(q.BytesOut))
	}
}

func (r *Route) counters(service, region string) *scopeCounters {
	k := scope{service, region}
	if sc, ok := (*r.scopes.Load())[k]; ok {
		return sc
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	cur := *r.scopes.Load()
	if sc, ok := cur[k]; ok {
		return sc
	}
	if len(cur) >= maxScopesPerRoute {
		// Pairs past the bound are not stored: each would cost a map
		// copy, and they all share the "other" series anyway.
		if r.other == nil {
			r.other = r.newScope(scope{otherValue, otherValue})
		}
		return r.other
	}
	sc := r.newScope(scope{labelValue(service), labelValue(region)})
	next := make(map[scope]*scopeCounters, len(cur)+1)
	for key, v := range cur {
		next[key] = v
	}
	next[k] = sc
	r.scopes.Store(&next)
	return sc
}

func (r *Route) newScope(label scope) *scopeCounters {
	sc := &scopeCounters{scope: label}
	for i := range sc.class {
		sc.class[i] = r.m.requests.WithLabelValues(r.name, label.service, label.region, strconv.Itoa(i+2)+"xx")
	}
	return sc
}

// labelValue keeps a label value that a signing name or region can be;
// anything else (a client's garbage, which Prometheus would refuse if it
// is not UTF-8) is reported as "invalid".
func labelValue(v string) string {
	if len(v) > 64 || !utf8.ValidString(v) {
		return invalidValue
	}
	for i := range len(v) {
		c := v[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_' || c == '.') {
			return invalidValue
		}
	}
	return v
}
