package proxy

import (
	"io"
	"net/http"
	"net/url"
	"testing"

	"github.com/signet-proxy/signet/signer"
)

// BenchmarkReverseSmallGET runs client, signet and upstream in one process,
// so that a CPU profile shows the proxy's own share of a small GET:
//
//	go test -run '^$' -bench ReverseSmallGET -cpuprofile cpu.out ./proxy/
func BenchmarkReverseSmallGET(b *testing.B) {
	body := make([]byte, 1024)
	up := upstreamAddr(b, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { _, _ = w.Write(body) }))
	u, _ := url.Parse("http://" + up)
	tp := startProxy(b, Options{Reverse: []Reverse{{Upstream: u, Source: staticSource(b), Scope: signer.Scope{Service: "execute-api", Region: "us-east-1"}}}})
	c := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64}}
	target := "http://" + tp.reverse[0] + "/item"
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
}
