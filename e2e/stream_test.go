//go:build linux

package e2e

import (
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

const streamHost = "bedrock-runtime.us-east-1.amazonaws.com"

// streamUpstream serves responses whose pace the test controls, and reports
// when a request's context ends. Requests name their channels by ?id=.
type streamUpstream struct {
	mu        sync.Mutex
	release   map[string]chan struct{} // closed by the test: send the next frame
	entered   map[string]chan struct{} // closed by the upstream: the request arrived
	cancelled map[string]chan struct{} // closed by the upstream: its context ended
	sigErrs   []error
}

func newStreamUpstream() *streamUpstream {
	return &streamUpstream{release: map[string]chan struct{}{}, entered: map[string]chan struct{}{}, cancelled: map[string]chan struct{}{}}
}

// expect makes the channels of request id.
func (u *streamUpstream) expect(id string) (release, entered, cancelled chan struct{}) {
	u.mu.Lock()
	defer u.mu.Unlock()
	release, entered, cancelled = make(chan struct{}), make(chan struct{}), make(chan struct{})
	u.release[id], u.entered[id], u.cancelled[id] = release, entered, cancelled
	return release, entered, cancelled
}

func (u *streamUpstream) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	id := q.Get("id")
	u.mu.Lock()
	release, entered, cancelled := u.release[id], u.entered[id], u.cancelled[id]
	if err := checkSigV4(r, "http"); err != nil {
		u.sigErrs = append(u.sigErrs, err)
	}
	u.mu.Unlock()
	if release == nil {
		http.Error(w, "unknown id", http.StatusBadRequest)
		return
	}
	close(entered)
	defer func() {
		// Only the end of the request's context counts: a handler
		// returning on its own is not a cancellation.
		if r.Context().Err() != nil {
			close(cancelled)
		}
	}()
	rc := http.NewResponseController(w)
	switch r.URL.Path {
	case "/frames":
		first, second := "frame-1:"+strings.Repeat("a", 100), "frame-2:"+strings.Repeat("b", 100)
		w.Header().Set("Content-Type", q.Get("ct"))
		if q.Get("length") == "known" {
			w.Header().Set("Content-Length", strconv.Itoa(len(first)+len(second)))
		}
		_, _ = io.WriteString(w, first)
		_ = rc.Flush()
		select {
		case <-release:
		case <-r.Context().Done():
			return
		}
		_, _ = io.WriteString(w, second)
	case "/hang-in-body":
		w.Header().Set("Content-Type", "application/octet-stream")
		_, _ = io.WriteString(w, "first")
		_ = rc.Flush()
		<-r.Context().Done()
	case "/hang-before-headers":
		<-r.Context().Done()
	}
}

// streamClients are Go clients of signet: the forward proxy (HTTP/1.1
// all the way) and an intercepted tunnel (HTTP/2 to signet).
func streamClients(t *testing.T, s *signetProc, state string) map[string]func() (*http.Client, string) {
	proxyURL, _ := url.Parse(s.ProxyURL())
	return map[string]func() (*http.Client, string){
		"forward": func() (*http.Client, string) {
			return &http.Client{Transport: &http.Transport{Proxy: http.ProxyURL(proxyURL)}}, "http://" + streamHost
		},
		"intercepted-h2": func() (*http.Client, string) {
			return &http.Client{Transport: &http.Transport{Proxy: http.ProxyURL(proxyURL), ForceAttemptHTTP2: true,
				TLSClientConfig: &tls.Config{RootCAs: signetCAPool(t, state)}}}, "https://" + streamHost
		},
	}
}

func startStreamSetup(t *testing.T) (*streamUpstream, *signetProc, string) {
	t.Helper()
	up := newStreamUpstream()
	ts := httptest.NewServer(up)
	t.Cleanup(ts.Close)
	state := filepath.Join(t.TempDir(), "state")
	s := startSignet(t, fmt.Sprintf(`listen: 127.0.0.1:0
state_dir: %[1]q
log: {level: debug, format: json}
sources:
  test: {method: static, static: {access_key_id: %[2]s, secret_access_key: %[3]q}}
routes:
  - {hosts: [%[4]s], source: test, upstream_scheme: http}
upstream:
  connect_to: {"%[4]s:80": %[5]q}
`, state, testAccessKey, testSecretKey, streamHost, strings.TrimPrefix(ts.URL, "http://")), 0)
	t.Cleanup(func() {
		up.mu.Lock()
		defer up.mu.Unlock()
		if len(up.sigErrs) > 0 {
			t.Errorf("upstream got requests whose signature did not verify: %v", up.sigErrs)
		}
	})
	return up, s, state
}

// within waits for ch, failing the test after a generous watchdog: a
// stream buffered by signet would otherwise hang the test.
func within(t *testing.T, ch <-chan struct{}, what string) {
	t.Helper()
	select {
	case <-ch:
	case <-time.After(time.Minute):
		t.Fatalf("%s did not happen within a minute", what)
	}
}

// TestStreamEventFramesFlushed: each frame of an event stream reaches the
// client before the upstream sends the next one, whether the length is
// known (flushed for the content type) or not.
func TestStreamEventFramesFlushed(t *testing.T) {
	up, s, state := startStreamSetup(t)
	streams := []struct{ ct, length string }{
		{"application/vnd.amazon.eventstream", "known"},
		{"text/event-stream; charset=utf-8", "known"},
		{"application/octet-stream", "unknown"},
	}
	for name, mk := range streamClients(t, s, state) {
		for i, st := range streams {
			t.Run(fmt.Sprintf("%s/%s/%s", name, st.ct, st.length), func(t *testing.T) {
				c, base := mk()
				defer c.CloseIdleConnections()
				id := fmt.Sprintf("%s-%d", name, i)
				release, _, _ := up.expect(id)
				resp, err := c.Get(base + "/frames?id=" + id + "&ct=" + url.QueryEscape(st.ct) + "&length=" + st.length)
				if err != nil {
					t.Fatal(err)
				}
				defer resp.Body.Close()
				first := make([]byte, len("frame-1:")+100)
				got := make(chan struct{})
				var rerr error
				go func() { _, rerr = io.ReadFull(resp.Body, first); close(got) }()
				within(t, got, "the first frame's arrival before the second was sent")
				if rerr != nil || !strings.HasPrefix(string(first), "frame-1:") {
					t.Fatalf("first frame %q: %v", first, rerr)
				}
				close(release)
				rest, err := io.ReadAll(resp.Body)
				if err != nil || string(rest) != "frame-2:"+strings.Repeat("b", 100) {
					t.Fatalf("second frame %q: %v", rest, err)
				}
			})
		}
	}
}

// TestStreamClientDisconnectCancelsUpstream: a client that goes away,
// before the upstream answered or in the middle of its body, ends the
// upstream request's context.
func TestStreamClientDisconnectCancelsUpstream(t *testing.T) {
	up, s, state := startStreamSetup(t)
	for name, mk := range streamClients(t, s, state) {
		for _, path := range []string{"/hang-before-headers", "/hang-in-body"} {
			t.Run(name+path, func(t *testing.T) {
				c, base := mk()
				defer c.CloseIdleConnections()
				id := name + path
				_, entered, cancelled := up.expect(id)
				ctx, cancel := context.WithCancel(context.Background())
				defer cancel()
				req, _ := http.NewRequestWithContext(ctx, "GET", base+path+"?id="+url.QueryEscape(id), nil)
				done, gotFirst := make(chan struct{}), make(chan struct{})
				go func() {
					defer close(done)
					resp, err := c.Do(req)
					if err != nil {
						return
					}
					defer resp.Body.Close()
					first := make([]byte, len("first"))
					if _, err := io.ReadFull(resp.Body, first); err == nil && string(first) == "first" {
						close(gotFirst)
					}
					_, _ = io.ReadAll(resp.Body)
				}()
				within(t, entered, "the request's arrival upstream")
				if path == "/hang-in-body" {
					within(t, gotFirst, "the first bytes of the body reaching the client")
				}
				cancel()
				within(t, cancelled, "the upstream request's cancellation")
				within(t, done, "the client's return")
			})
		}
	}
}
