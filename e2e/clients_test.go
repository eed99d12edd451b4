//go:build linux

package e2e

import (
	"bufio"
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// result is one HTTP answer as a client saw it.
type result struct {
	Status int
	Header http.Header
	Body   []byte
}

// client sends one request whose URL is used byte for byte on the wire
// (absolute-form through the proxy, origin-form otherwise).
type client interface {
	Name() string
	Do(t testing.TB, method, rawURL string, body []byte) result
}

// ------------------------------------------------------------ Go net/http

type goClient struct {
	c *http.Client
}

// newGoClient goes through the forward proxy when proxyURL is set, directly
// otherwise (never through an environment proxy).
func newGoClient(proxyURL string) *goClient {
	tr := &http.Transport{Proxy: nil, MaxIdleConnsPerHost: 64}
	if proxyURL != "" {
		u, err := url.Parse(proxyURL)
		if err != nil {
			panic(err)
		}
		tr.Proxy = http.ProxyURL(u)
	}
	return &goClient{c: &http.Client{Transport: tr, Timeout: 2 * time.Minute}}
}

func (g *goClient) Name() string { return "go" }

// parseRawURL parses rawURL and checks that Go will send its path exactly as
// written.
func parseRawURL(t testing.TB, rawURL string) *url.URL {
	t.Helper()
	u, err := url.Parse(rawURL)
	if err != nil {
		t.Fatalf("parse %q: %v", rawURL, err)
	}
	wantPath := rawURL[len(u.Scheme)+3+len(u.Host):]
	if i := strings.IndexByte(wantPath, '?'); i >= 0 {
		wantPath = wantPath[:i]
	}
	if got := u.EscapedPath(); got != wantPath {
		t.Fatalf("Go would send path %q for %q, not %q", got, rawURL, wantPath)
	}
	return u
}

func (g *goClient) Do(t testing.TB, method, rawURL string, body []byte) result {
	t.Helper()
	u := parseRawURL(t, rawURL)
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequest(method, u.String(), rd)
	if err != nil {
		t.Fatal(err)
	}
	req.URL = u
	resp, err := g.c.Do(req)
	if err != nil {
		t.Fatalf("go %s %s: %v", method, rawURL, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("go %s %s: reading body: %v", method, rawURL, err)
	}
	return result{Status: resp.StatusCode, Header: resp.Header, Body: b}
}

// ------------------------------------------------------------------- curl

type curlClient struct {
	bin   string
	proxy string // http://ADDR, or "" for direct
	// env, when set, is curl's whole environment and decides the proxy
	// and CA (HTTPS_PROXY, CURL_CA_BUNDLE): no -x, no --noproxy.
	env   []string
	dir   string
	extra []string
	n     int
	mu    sync.Mutex
}

func newCurlClient(t testing.TB, proxyURL string, extra ...string) *curlClient {
	return &curlClient{bin: needCommand(t, "curl"), proxy: proxyURL, dir: t.TempDir(), extra: extra}
}

// newEnvCurl is curl configured by its environment alone.
func newEnvCurl(t testing.TB, env []string) *curlClient {
	return &curlClient{bin: needCommand(t, "curl"), env: env, dir: t.TempDir()}
}

func (c *curlClient) Name() string { return "curl" }

func (c *curlClient) Do(t testing.TB, method, rawURL string, body []byte) result {
	t.Helper()
	c.mu.Lock()
	c.n++
	n := c.n
	c.mu.Unlock()
	bodyOut := filepath.Join(c.dir, fmt.Sprintf("out-%d", n))
	hdrOut := filepath.Join(c.dir, fmt.Sprintf("hdr-%d", n))
	args := []string{"-sS", "-g", "--path-as-is", "--max-time", "120",
		"-X", method, "-o", bodyOut, "-D", hdrOut, "-w", "%{http_code}"}
	switch {
	case c.env != nil:
	case c.proxy != "":
		args = append(args, "-x", c.proxy)
	default:
		args = append(args, "--noproxy", "*")
	}
	if body != nil {
		in := filepath.Join(c.dir, fmt.Sprintf("in-%d", n))
		if err := os.WriteFile(in, body, 0o600); err != nil {
			t.Fatal(err)
		}
		args = append(args, "--data-binary", "@"+in, "-H", "Content-Type: application/octet-stream")
	}
	args = append(args, c.extra...)
	args = append(args, rawURL)
	cmd := exec.Command(c.bin, args...)
	cmd.Env = c.env
	if cmd.Env == nil {
		cmd.Env = baseEnv(c.dir)
	}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("curl %s %s: %v\n%s", method, rawURL, err, stderr.String())
	}
	status, err := strconv.Atoi(strings.TrimSpace(string(out)))
	if err != nil {
		t.Fatalf("curl printed %q, not a status", out)
	}
	b, _ := os.ReadFile(bodyOut)
	hb, _ := os.ReadFile(hdrOut)
	return result{Status: status, Header: lastHeaderBlock(hb), Body: b}
}

// lastHeaderBlock parses the final response's headers from curl -D output
// (which also holds 100 Continue blocks).
func lastHeaderBlock(b []byte) http.Header {
	blocks := strings.Split(strings.ReplaceAll(string(b), "\r\n", "\n"), "\n\n")
	h := http.Header{}
	for i := len(blocks) - 1; i >= 0; i-- {
		blk := strings.TrimSpace(blocks[i])
		if blk == "" {
			continue
		}
		for _, l := range strings.Split(blk, "\n")[1:] {
			if k, v, ok := strings.Cut(l, ":"); ok {
				h.Add(strings.TrimSpace(k), strings.TrimSpace(v))
			}
		}
		break
	}
	return h
}

// ----------------------------------------------------------- python urllib

type pyClient struct {
	mu  sync.Mutex
	in  io.WriteCloser
	out *bufio.Scanner
}

// newPyClient runs testdata/urlclient.py with HTTP_PROXY=proxyURL.
func newPyClient(t testing.TB, proxyURL string) *pyClient {
	t.Helper()
	py := needCommand(t, "python3")
	script, err := filepath.Abs(filepath.Join("testdata", "urlclient.py"))
	if err != nil {
		t.Fatal(err)
	}
	home := t.TempDir()
	cmd := exec.Command(py, script)
	cmd.Env = baseEnv(home, "HTTP_PROXY="+proxyURL, "http_proxy="+proxyURL, "PYTHONIOENCODING=utf-8")
	stderr := &syncBuffer{}
	cmd.Stderr = stderr
	in, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	outR, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { cmd.Wait(); close(done) }()
	t.Cleanup(func() {
		in.Close()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			cmd.Process.Kill()
			<-done
		}
		if t.Failed() && stderr.String() != "" {
			t.Logf("python stderr:\n%s", stderr.String())
		}
	})
	sc := bufio.NewScanner(outR)
	sc.Buffer(make([]byte, 1<<20), 64<<20)
	if !sc.Scan() {
		t.Fatalf("python client said nothing: %v\n%s", sc.Err(), stderr.String())
	}
	var hello struct {
		Proxies map[string]string `json:"proxies"`
	}
	if err := json.Unmarshal(sc.Bytes(), &hello); err != nil {
		t.Fatalf("python hello %q: %v", sc.Bytes(), err)
	}
	if got := hello.Proxies["http"]; got != proxyURL {
		t.Fatalf("urllib picked up http proxy %q from HTTP_PROXY, want %q", got, proxyURL)
	}
	return &pyClient{in: in, out: sc}
}

func (p *pyClient) Name() string { return "python" }

func (p *pyClient) Do(t testing.TB, method, rawURL string, body []byte) result {
	t.Helper()
	req := map[string]any{"method": method, "url": rawURL, "body": nil}
	if body != nil {
		req["body"] = base64.StdEncoding.EncodeToString(body)
	}
	line, _ := json.Marshal(req)
	p.mu.Lock()
	defer p.mu.Unlock()
	if _, err := p.in.Write(append(line, '\n')); err != nil {
		t.Fatalf("python client: %v", err)
	}
	if !p.out.Scan() {
		t.Fatalf("python client stopped: %v", p.out.Err())
	}
	var ans struct {
		Error   string      `json:"error"`
		Status  int         `json:"status"`
		Headers [][2]string `json:"headers"`
		Body    string      `json:"body"`
	}
	if err := json.Unmarshal(p.out.Bytes(), &ans); err != nil {
		t.Fatalf("python answer %q: %v", p.out.Bytes(), err)
	}
	if ans.Error != "" {
		t.Fatalf("python %s %s: %s", method, rawURL, ans.Error)
	}
	b, err := base64.StdEncoding.DecodeString(ans.Body)
	if err != nil {
		t.Fatal(err)
	}
	h := http.Header{}
	for _, kv := range ans.Headers {
		h.Add(kv[0], kv[1])
	}
	return result{Status: ans.Status, Header: h, Body: b}
}
