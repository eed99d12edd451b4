// Command goclient is a tiny HTTP client driven by the e2e tests, like
// urlclient.py: an ordinary Go program that takes its proxy from the
// environment (http.ProxyFromEnvironment) and its roots from the system
// (SSL_CERT_FILE), as any Go app would. It runs as its own process because
// net/http reads the proxy variables once per process: the test binary
// cannot be pointed at a new signet by changing its own environment.
//
// It reads one JSON request per line on stdin:
//
//	{"method": "PUT", "url": "https://host/raw/path", "body": "<base64>" | null}
//
// and answers one JSON line on stdout:
//
//	{"status": 200, "proto": "HTTP/2.0", "headers": [[name, value], ...], "body": "<base64>"}
//
// or {"error": "..."} when no HTTP answer came back. The path is sent byte
// for byte as given. The first line written is {"proxies": {...}}, the
// proxies chosen for an https and an http URL, so that the test can check
// that the environment was picked up.
package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"time"
)

type request struct {
	Method string  `json:"method"`
	URL    string  `json:"url"`
	Body   *[]byte `json:"body"`
}

type answer struct {
	Error   string      `json:"error,omitempty"`
	Status  int         `json:"status,omitempty"`
	Proto   string      `json:"proto,omitempty"`
	Headers [][2]string `json:"headers,omitempty"`
	Body    []byte      `json:"body,omitempty"`
}

func main() {
	out := json.NewEncoder(os.Stdout)
	proxies := map[string]string{}
	for scheme, probe := range map[string]string{"https": "https://example.com/", "http": "http://example.com/"} {
		req, _ := http.NewRequest("GET", probe, nil)
		if u, err := http.ProxyFromEnvironment(req); err == nil && u != nil {
			proxies[scheme] = u.String()
		}
	}
	if err := out.Encode(map[string]any{"proxies": proxies}); err != nil {
		os.Exit(1)
	}
	// The default transport: environment proxy, system roots, HTTP/2
	// attempted by ALPN.
	c := &http.Client{Timeout: time.Minute}
	in := bufio.NewScanner(os.Stdin)
	in.Buffer(make([]byte, 1<<20), 64<<20)
	for in.Scan() {
		if len(bytes.TrimSpace(in.Bytes())) == 0 {
			continue
		}
		var r request
		var a answer
		if err := json.Unmarshal(in.Bytes(), &r); err != nil {
			a.Error = fmt.Sprintf("bad request line: %v", err)
		} else {
			a = do(c, r)
		}
		if err := out.Encode(a); err != nil {
			os.Exit(1)
		}
	}
}

func do(c *http.Client, r request) answer {
	u, err := url.Parse(r.URL)
	if err != nil {
		return answer{Error: err.Error()}
	}
	var body io.Reader
	if r.Body != nil {
		body = bytes.NewReader(*r.Body)
	}
	req, err := http.NewRequest(r.Method, r.URL, body)
	if err != nil {
		return answer{Error: err.Error()}
	}
	// The parsed URL keeps RawPath, so the escaping is sent as given.
	req.URL = u
	resp, err := c.Do(req)
	if err != nil {
		return answer{Error: err.Error()}
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return answer{Error: "reading body: " + err.Error()}
	}
	a := answer{Status: resp.StatusCode, Proto: resp.Proto, Body: b}
	for k, vs := range resp.Header {
		for _, v := range vs {
			a.Headers = append(a.Headers, [2]string{k, v})
		}
	}
	return a
}
