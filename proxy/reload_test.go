package proxy

import (
	"errors"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/signet-proxy/signet/credentials"
	"github.com/signet-proxy/signet/signer"
)

func namedStatic(t *testing.T, name, key string) credentials.Source {
	t.Helper()
	p, err := credentials.NewStatic(key, "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY", "")
	if err != nil {
		t.Fatal(err)
	}
	s := credentials.NewSource(name, p, credentials.SourceOptions{})
	t.Cleanup(func() { _ = s.Close() })
	return s
}

func keyOf(r received) string {
	_, cred, _ := strings.Cut(r.header.Get("Authorization"), "Credential=")
	key, _, _ := strings.Cut(cred, "/")
	return key
}

// TestReloadSwapsConfig: after Reload, new requests take the new routes,
// sources, reverse targets and unmatched policy; a request that started
// before finishes on the old ones; transports are kept while the upstream
// options are the same; a listener change is refused and changes nothing.
func TestReloadSwapsConfig(t *testing.T) {
	var recA, recB recorder
	release := make(chan struct{})
	started := make(chan struct{}, 1)
	slowA := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/slow" {
			started <- struct{}{}
			<-release
		}
		recA.handler(200, "A").ServeHTTP(w, r)
	})
	upA := upstreamAddr(t, slowA)
	upB := upstreamAddr(t, recB.handler(200, "B"))
	srcA, srcB := namedStatic(t, "a", "AKIDAAAAAAAAAAAAAAAA"), namedStatic(t, "b", "AKIDBBBBBBBBBBBBBBBB")
	scope := signer.Scope{Service: "execute-api", Region: "eu-west-1"}
	opts := func(src credentials.Source, up string, deny bool) Options {
		u, _ := url.Parse("http://" + up)
		return Options{
			Listen:        "127.0.0.1:0",
			Routes:        []Route{{Hosts: []string{"api.example.test"}, Source: src, Scope: scope, UpstreamScheme: "http"}},
			DenyUnmatched: deny,
			Reverse:       []Reverse{{Listen: "127.0.0.1:0", Upstream: u, Source: src, Scope: scope}},
			Upstream:      UpstreamOptions{ConnectTo: map[string]string{"api.example.test:80": up}},
		}
	}
	tp := startProxy(t, opts(srcA, upA, false))
	client := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{Proxy: http.ProxyURL(&url.URL{Scheme: "http", Host: tp.addr})}}
	get := func(u string) (int, string) {
		t.Helper()
		resp, err := client.Get(u)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}

	// A request in flight on the first config.
	slow := make(chan string, 1)
	go func() {
		resp, err := client.Get("http://api.example.test/slow")
		if err != nil {
			slow <- err.Error()
			return
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		slow <- string(b)
	}()
	<-started
	before := tp.srv.current()

	// The same upstream options: transports kept.
	o := opts(srcB, upA, false)
	if err := tp.srv.Reload(o); err != nil {
		t.Fatal(err)
	}
	if tp.srv.current().transport != before.transport {
		t.Errorf("a reload with the same upstream options replaced the transports")
	}
	if st, body := get("http://api.example.test/after"); st != 200 || body != "A" {
		t.Fatalf("after the first reload: %d %q", st, body)
	}

	// Another upstream (connect_to), the reverse target moved, unmatched
	// denied.
	o = opts(srcB, upB, true)
	if err := tp.srv.Reload(o); err != nil {
		t.Fatal(err)
	}
	if tp.srv.current().transport == before.transport {
		t.Errorf("a reload with other connect_to kept the transports")
	}
	if st, body := get("http://api.example.test/new"); st != 200 || body != "B" {
		t.Fatalf("after the second reload: %d %q", st, body)
	}
	if st, _ := get("http://unrouted.example.test/"); st != http.StatusForbidden {
		t.Errorf("unmatched request after reloading to deny: %d, want 403", st)
	}
	resp, body := rawRequest(t, tp.reverse[0], "GET /rev HTTP/1.1\r\nHost: x\r\n\r\n")
	if resp.StatusCode != 200 || body != "B" {
		t.Errorf("reverse listener after the reload: %d %q, want B's answer", resp.StatusCode, body)
	}

	close(release)
	if got := <-slow; got != "A" {
		t.Errorf("the request in flight across the reloads got %q, want A's answer", got)
	}
	for _, r := range recA.all() {
		want := "AKIDBBBBBBBBBBBBBBBB"
		if r.requestURI == "/slow" {
			want = "AKIDAAAAAAAAAAAAAAAA" // signed before the first reload
		}
		if keyOf(r) != want {
			t.Errorf("A got %s signed with %s, want %s", r.requestURI, keyOf(r), want)
		}
	}
	for _, r := range recB.all() {
		if keyOf(r) != "AKIDBBBBBBBBBBBBBBBB" {
			t.Errorf("B got %s signed with %s", r.requestURI, keyOf(r))
		}
	}

	// Listener changes need a new Server.
	cur := tp.srv.current()
	for _, bad := range []func(*Options){
		func(o *Options) { o.Listen = "127.0.0.1:1" },
		func(o *Options) { o.Reverse[0].Listen = "127.0.0.1:1" },
		func(o *Options) { o.Reverse = nil },
	} {
		o := opts(srcA, upA, false)
		bad(&o)
		if err := tp.srv.Reload(o); !errors.Is(err, ErrRestartNeeded) {
			t.Errorf("Reload with a listener change: %v, want ErrRestartNeeded", err)
		}
	}
	o = opts(srcA, upA, false)
	o.Routes[0].Source = nil
	if err := tp.srv.Reload(o); err == nil {
		t.Errorf("Reload with a route without a source succeeded")
	}
	if tp.srv.current() != cur {
		t.Errorf("a refused Reload changed the config")
	}
	if !tp.srv.SignsHost("api.example.test") || tp.srv.SignsHost("other.example.test") {
		t.Errorf("SignsHost does not follow the config in force")
	}
}
