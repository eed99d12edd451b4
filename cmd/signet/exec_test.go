//go:build unix

package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// childEnv marks the test binary run as the command of `signet exec`
// (see execChild). It is SIGNETTEST_, not SIGNET_: signet reads SIGNET_*
// as config.
const childEnv = "SIGNETTEST_EXEC_CHILD"

func TestMain(m *testing.M) {
	if os.Getenv(childEnv) == "1" {
		os.Exit(execChild())
	}
	os.Exit(m.Run())
}

// execChild runs inside `signet exec`: it checks the variables it was
// given and fetches SIGNETTEST_EXEC_TARGET through HTTPS_PROXY, which
// proves the proxy is listening while the command runs. It prints the body
// on stdout and exits 0, or explains on stderr and exits 3.
func execChild() int {
	fail := func(format string, args ...any) int {
		fmt.Fprintf(os.Stderr, "exec child: "+format+"\n", args...)
		return 3
	}
	proxy := os.Getenv("HTTPS_PROXY")
	u, err := url.Parse(proxy)
	if err != nil || u.Scheme != "http" {
		return fail("HTTPS_PROXY=%q is not an http:// URL: %v", proxy, err)
	}
	if host, port, err := net.SplitHostPort(u.Host); err != nil || host != "127.0.0.1" || port == "0" {
		return fail("HTTPS_PROXY=%q is not 127.0.0.1 with a bound port", proxy)
	}
	for _, k := range []string{"https_proxy", "HTTP_PROXY", "http_proxy"} {
		if os.Getenv(k) != proxy {
			return fail("%s=%q, want %q", k, os.Getenv(k), proxy)
		}
	}
	for _, k := range []string{"SSL_CERT_FILE", "CURL_CA_BUNDLE", "NODE_EXTRA_CA_CERTS"} {
		if b, err := os.ReadFile(os.Getenv(k)); err != nil || !bytes.Contains(b, []byte("BEGIN CERTIFICATE")) {
			return fail("%s=%q holds no certificate: %v", k, os.Getenv(k), err)
		}
	}
	// An explicit proxy: ProxyFromEnvironment never proxies loopback
	// targets, and the target here is a test server on loopback.
	c := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{Proxy: http.ProxyURL(u)}}
	resp, err := c.Get(os.Getenv("SIGNETTEST_EXEC_TARGET"))
	if err != nil {
		return fail("GET through %s: %v", proxy, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != 200 {
		return fail("GET through %s: %d %q %v", proxy, resp.StatusCode, body, err)
	}
	os.Stdout.Write(body)
	return 0
}

func TestExecExitCodes(t *testing.T) {
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	// The child asks for exec-target.test, a name no resolver knows: only
	// signet, through its connect_to, can reach the test server for it.
	upstream := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Host != "exec-target.test" {
			http.Error(w, "unexpected Host "+r.Host, http.StatusBadRequest)
			return
		}
		io.WriteString(w, "hello through signet")
	}))
	defer upstream.Close()
	state := filepath.Join(t.TempDir(), "state")
	cfg := testConfig(t, state, "upstream:\n  connect_to: {\"exec-target.test:80\": \""+upstream.Listener.Addr().String()+"\"}\n")
	notExec := filepath.Join(t.TempDir(), "not-executable")
	writeFile(t, notExec, "#!/bin/sh\n")

	tests := []struct {
		name    string
		args    []string
		env     []string
		want    int
		wantOut string
		wantErr string
	}{
		{name: "exit status passes through", args: []string{"exec", "-c", cfg, "--", "sh", "-c", "exit 7"}, want: 7},
		{name: "success", args: []string{"exec", "-c", cfg, "--", "sh", "-c", "printf ok"}, want: exitOK, wantOut: "ok"},
		{name: "killed by a signal", args: []string{"exec", "-c", cfg, "--", "sh", "-c", "kill -TERM $$"}, want: 128 + int(syscall.SIGTERM)},
		{name: "child sees a live proxy", args: []string{"exec", "-c", cfg, "--", self},
			env:  []string{childEnv + "=1", "SIGNETTEST_EXEC_TARGET=http://exec-target.test/x"},
			want: exitOK, wantOut: "hello through signet"},
		{name: "flags of the command stay its own", args: []string{"exec", "-c", cfg, "--", "sh", "-c", `printf %s "$1"`, "sh", "-c"}, want: exitOK, wantOut: "-c"},
		{name: "command not found", args: []string{"exec", "-c", cfg, "--", "signet-no-such-command"}, want: exitNotFound, wantErr: "signet-no-such-command"},
		{name: "command path missing", args: []string{"exec", "-c", cfg, "--", "/nonexistent/cmd"}, want: exitNotFound, wantErr: "/nonexistent/cmd"},
		{name: "not executable", args: []string{"exec", "-c", cfg, "--", notExec}, want: exitCannotRun, wantErr: "permission denied"},
		{name: "no --", args: []string{"exec", "-c", cfg, "sh"}, want: exitConfig, wantErr: "missing --"},
		{name: "nothing after --", args: []string{"exec", "-c", cfg, "--"}, want: exitConfig, wantErr: "no command"},
		{name: "listen is exec's", args: []string{"exec", "-c", cfg, "--listen", "127.0.0.1:9", "--", "true"}, want: exitConfig, wantErr: "--listen"},
		{name: "bad config", args: []string{"exec", "--log-level", "loud", "--", "true"}, want: exitConfig, wantErr: "log.level"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			code, out, stderr := runCLI(t, testEnviron(t, tc.env...), tc.args...)
			if code != tc.want {
				t.Fatalf("exit %d, want %d\nstdout: %s\nstderr: %s", code, tc.want, out, stderr)
			}
			if out != tc.wantOut {
				t.Errorf("stdout %q, want %q", out, tc.wantOut)
			}
			if !strings.Contains(stderr, tc.wantErr) {
				t.Errorf("stderr %q does not contain %q", stderr, tc.wantErr)
			}
			// Logs at warn by default: a clean run says nothing of its own.
			if tc.want == exitOK && stderr != "" {
				t.Errorf("exec wrote to stderr on a clean run: %q", stderr)
			}
		})
	}
}

// A signal to signet goes to the command, which decides what it means;
// signet then stops and reports the command's status.
func TestExecForwardsSignals(t *testing.T) {
	cfg := testConfig(t, filepath.Join(t.TempDir(), "state"), "")
	ready := filepath.Join(t.TempDir(), "ready")
	// The loop is bounded: if no signal comes, the command exits 1 after
	// about 10 s instead of hanging the test.
	script := `trap 'exit 42' USR1; : > "$1"; i=0; while [ $i -lt 100 ]; do sleep 0.1; i=$((i+1)); done; exit 1`
	done := make(chan int, 1)
	var stdout, stderr bytes.Buffer
	go func() {
		done <- run(context.Background(), []string{"exec", "-c", cfg, "--", "sh", "-c", script, "sh", ready},
			&stdout, &stderr, testEnviron(t))
	}()
	deadline := time.Now().Add(10 * time.Second)
	for {
		if _, err := os.Stat(ready); err == nil {
			break
		}
		select {
		case code := <-done:
			t.Fatalf("exec ended (%d) before the command was ready: %s", code, &stderr)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("the command did not start within 10s: %s", &stderr)
		}
		time.Sleep(20 * time.Millisecond)
	}
	// exec subscribed to SIGUSR1 before starting the command, so the test
	// process is not killed by it.
	if err := syscall.Kill(os.Getpid(), syscall.SIGUSR1); err != nil {
		t.Fatal(err)
	}
	select {
	case code := <-done:
		if code != 42 {
			t.Errorf("exit %d, want 42 (the command's trap for SIGUSR1); stderr: %s", code, &stderr)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("exec did not return within 15s of SIGUSR1")
	}
}

func TestMergeEnv(t *testing.T) {
	got := mergeEnv([]string{"PATH=/bin", "HTTPS_PROXY=http://old", "https_proxy=http://old", "KEEP=1"},
		[]envVar{{"HTTPS_PROXY", "http://new"}, {"https_proxy", "http://new"}})
	want := []string{"PATH=/bin", "KEEP=1", "HTTPS_PROXY=http://new", "https_proxy=http://new"}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("mergeEnv = %q, want %q", got, want)
	}
}
