//go:build linux

package e2e

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/signet-proxy/signet/internal/ststest"
)

// BenchmarkEagerRefreshLatency measures what an eager refresh costs the
// requests that run while it happens: p99 latency of small GETs through
// signet that overlap an AssumeRole call (the fake STS takes 300 ms to
// answer) versus those that do not. Sessions live 20 s and refresh 10 s
// before expiry, so 40 s of load spans about four refreshes. Run it alone:
//
//	go test -run '^$' -bench EagerRefreshLatency -benchtime 1x ./e2e/
func BenchmarkEagerRefreshLatency(b *testing.B) {
	const (
		stsDelay = 300 * time.Millisecond
		lifetime = 20 * time.Second
		loadFor  = 40 * time.Second
		clients  = 8
		role     = "arn:aws:iam::111122223333:role/Bench"
	)
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !strings.Contains(r.Header.Get("Authorization"), "Credential=ASIA") {
			http.Error(w, "not signed with session keys", http.StatusForbidden)
			return
		}
		_, _ = io.WriteString(w, "ok")
	}))
	b.Cleanup(up.Close)

	var mu sync.Mutex
	var mints []time.Time
	sts := ststest.New(b, ststest.Options{PlainHTTP: true, OnMint: func(ststest.Minted) error {
		mu.Lock()
		mints = append(mints, time.Now())
		mu.Unlock()
		time.Sleep(stsDelay)
		return nil
	}})
	sts.AddUser("AKIAIOSFODNN7EXAMPLE", "base-secret", "arn:aws:iam::111122223333:user/bench")
	sts.AddRole(ststest.Role{ARN: role, MaxSessionDuration: time.Hour})
	sts.SetLifetime(lifetime)

	s := startSignet(b, fmt.Sprintf(`listen: 127.0.0.1:0
log: {level: info, format: json}
sources:
  base: {method: static, static: {access_key_id: AKIAIOSFODNN7EXAMPLE, secret_access_key: base-secret}}
  role:
    method: sts
    sts: {role_arn: %q, source: base, endpoint: %q, region: %q}
    refresh: {mode: eager, advisory: 10s, mandatory: 2s}
routes:
  - {hosts: [api.bench.test], source: role, service: execute-api, region: us-east-1, upstream_scheme: http}
upstream:
  connect_to: {"api.bench.test:80": %q}
`, role, sts.URL(), sts.Region(), strings.TrimPrefix(up.URL, "http://")), 0)

	type sample struct {
		start time.Time
		took  time.Duration
	}
	for range b.N {
		c := newGoClient(s.ProxyURL()).c
		var smu sync.Mutex
		var samples []sample
		failed := 0
		deadline := time.Now().Add(loadFor)
		var wg sync.WaitGroup
		for range clients {
			wg.Go(func() {
				for time.Now().Before(deadline) {
					t0 := time.Now()
					resp, err := c.Get("http://api.bench.test/item")
					ok := err == nil && resp.StatusCode == 200
					if err == nil {
						_, _ = io.Copy(io.Discard, resp.Body)
						resp.Body.Close()
					}
					smu.Lock()
					if ok {
						samples = append(samples, sample{t0, time.Since(t0)})
					} else {
						failed++
					}
					smu.Unlock()
				}
			})
		}
		wg.Wait()
		mu.Lock()
		refreshes := append([]time.Time(nil), mints...)
		mu.Unlock()
		if failed > 0 {
			b.Fatalf("%d requests failed", failed)
		}
		var during, between []time.Duration
		for _, sm := range samples {
			overlaps := false
			for _, m := range refreshes {
				if sm.start.Before(m.Add(stsDelay)) && sm.start.Add(sm.took).After(m) {
					overlaps = true
				}
			}
			if overlaps {
				during = append(during, sm.took)
			} else {
				between = append(between, sm.took)
			}
		}
		if len(refreshes) < 3 || len(during) == 0 {
			b.Fatalf("%d refreshes, %d requests during them: too few to compare", len(refreshes), len(during))
		}
		b.ReportMetric(float64(len(refreshes)), "refreshes")
		b.ReportMetric(float64(len(samples)), "requests")
		b.ReportMetric(p99(during).Seconds()*1000, "p99-during-ms")
		b.ReportMetric(p99(between).Seconds()*1000, "p99-between-ms")
	}
}

func p99(ds []time.Duration) time.Duration {
	slices.Sort(ds)
	return ds[(len(ds)*99)/100]
}
