package proxy

import (
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"testing"

	"github.com/signet-proxy/signet/internal/metrics"
	"github.com/signet-proxy/signet/signer"
)

// BenchmarkReverseSmallGET runs client, signet and upstream in one process,
// so that a CPU profile shows the proxy's own share of a small GET:
//
//	go test -run '^$' -bench ReverseSmallGET -cpuprofile cpu.out ./proxy/
//
// bare has neither metrics nor an access log; observed has both, the
// access log as JSON through a LineBuffer, as signet serves by default.
// forward goes through the forward proxy to a route without a scope, so
// that every request resolves its scope from the host (from the cache).
func BenchmarkReverseSmallGET(b *testing.B) {
	body := make([]byte, 1024)
	up := upstreamAddr(b, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { _, _ = w.Write(body) }))
	u, _ := url.Parse("http://" + up)
	for _, bc := range []struct {
		name     string
		observed bool
		forward  bool
	}{
		{"bare", false, false},
		{"observed", true, false},
		{"forward", true, true},
	} {
		b.Run(bc.name, func(b *testing.B) {
			opts := Options{
				Reverse:  []Reverse{{Upstream: u, Source: staticSource(b), Scope: signer.Scope{Service: "execute-api", Region: "us-east-1"}}},
				Routes:   []Route{{Hosts: []string{"*.amazonaws.com"}, Source: staticSource(b), UpstreamScheme: "http"}},
				Upstream: UpstreamOptions{ConnectTo: map[string]string{"*.amazonaws.com": up}},
			}
			if bc.observed {
				lb := NewLineBuffer(io.Discard)
				b.Cleanup(func() { _ = lb.Close() })
				opts.Metrics = metrics.New(metrics.Options{WithoutRuntime: true})
				opts.AccessLog = slog.New(slog.NewJSONHandler(lb, nil))
			}
			tp := startProxy(b, opts)
			tr := &http.Transport{MaxIdleConnsPerHost: 64}
			target := "http://" + tp.reverse[0] + "/item"
			if bc.forward {
				tr.Proxy = http.ProxyURL(&url.URL{Scheme: "http", Host: tp.addr})
				target = "http://execute-api.us-east-1.amazonaws.com/item"
			}
			c := &http.Client{Transport: tr}
			b.Cleanup(tr.CloseIdleConnections)
			b.ReportAllocs()
			b.SetParallelism(16)
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					resp, err := c.Get(target)
					if err != nil {
						b.Error(err)
						return
					}
					_, _ = io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
					if resp.StatusCode != 200 {
						b.Errorf("status %d", resp.StatusCode)
						return
					}
				}
			})
		})
	}
}
