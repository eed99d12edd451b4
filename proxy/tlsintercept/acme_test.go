package tlsintercept

import (
	"context"
	"crypto/x509"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// closedPort is a loopback port that was just listening and is now closed.
func closedPort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	if err := ln.Close(); err != nil {
		t.Fatal(err)
	}
	return port
}

func TestOpenACMEUnreachableCA(t *testing.T) {
	state := filepath.Join(t.TempDir(), "state")
	ca := "https://127.0.0.1:" + strconv.Itoa(closedPort(t)) + "/dir"
	start := time.Now()
	l, err := OpenACME(context.Background(), ACMEOptions{
		StateDir:      state,
		Names:         []string{"proxy.example.test"},
		CA:            ca,
		ChallengeAddr: "127.0.0.1:0",
		Timeout:       20 * time.Second,
	})
	elapsed := time.Since(start)
	if err == nil {
		l.Close()
		t.Fatal("OpenACME succeeded against a closed port")
	}
	t.Logf("error after %v: %v", elapsed, err)
	if !strings.Contains(err.Error(), ca) {
		t.Errorf("error does not name the CA %s: %v", ca, err)
	}
	if !strings.Contains(err.Error(), "proxy.example.test") {
		t.Errorf("error does not name the certificate's name: %v", err)
	}
	// Connection refused must fail at once, not after the whole timeout.
	if elapsed > 10*time.Second {
		t.Errorf("OpenACME took %v to report a refused connection", elapsed)
	}
	// The account and certificate storage is private even when nothing
	// was obtained.
	info, err := os.Stat(filepath.Join(state, acmeDirName))
	if err != nil {
		t.Fatal(err)
	}
	if checkModes && info.Mode().Perm() != 0o700 {
		t.Errorf("ACME directory has mode %04o, want 0700", info.Mode().Perm())
	}
}

// A CA that answers but refuses (here: no ACME directory at the URL) is an
// error too, naming the CA; so is a timeout, which names its length.
func TestOpenACMERefusingCA(t *testing.T) {
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "no ACME here", http.StatusForbidden)
	}))
	defer srv.Close()
	roots := x509.NewCertPool()
	roots.AddCert(srv.Certificate())
	ca := srv.URL + "/dir"
	start := time.Now()
	l, err := OpenACME(context.Background(), ACMEOptions{
		StateDir:      filepath.Join(t.TempDir(), "state"),
		Names:         []string{"proxy.example.test"},
		CA:            ca,
		TrustedRoots:  roots,
		ChallengeAddr: "127.0.0.1:0",
		Timeout:       20 * time.Second,
	})
	if err == nil {
		l.Close()
		t.Fatal("OpenACME succeeded against a server that is not an ACME CA")
	}
	t.Logf("error after %v: %v", time.Since(start), err)
	if !strings.Contains(err.Error(), ca) {
		t.Errorf("error does not name the CA %s: %v", ca, err)
	}
}

func TestOpenACMEHangingCATimesOut(t *testing.T) {
	// Accepts connections and never answers.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	done := make(chan struct{})
	defer close(done)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() { <-done; c.Close() }()
		}
	}()
	ca := "https://" + ln.Addr().String() + "/dir"
	start := time.Now()
	l, err := OpenACME(context.Background(), ACMEOptions{
		StateDir:      filepath.Join(t.TempDir(), "state"),
		Names:         []string{"proxy.example.test"},
		CA:            ca,
		ChallengeAddr: "127.0.0.1:0",
		Timeout:       time.Second,
	})
	elapsed := time.Since(start)
	if err == nil {
		l.Close()
		t.Fatal("OpenACME succeeded against a CA that never answers")
	}
	t.Logf("error after %v: %v", elapsed, err)
	if !strings.Contains(err.Error(), ca) || !strings.Contains(err.Error(), "gave up after 1s") {
		t.Errorf("error does not name the CA %s and the timeout: %v", ca, err)
	}
	if elapsed > 10*time.Second {
		t.Errorf("OpenACME took %v with a 1s timeout", elapsed)
	}
}

func TestOpenACMEOptions(t *testing.T) {
	good := func() ACMEOptions {
		return ACMEOptions{StateDir: filepath.Join(t.TempDir(), "state"), Names: []string{"a.example.test"}, CA: "https://127.0.0.1:1/dir"}
	}
	for name, tc := range map[string]struct {
		edit func(*ACMEOptions)
		want string
	}{
		"no names":       {func(o *ACMEOptions) { o.Names = nil }, "Names is empty"},
		"empty name":     {func(o *ACMEOptions) { o.Names = []string{""} }, "empty name"},
		"no CA":          {func(o *ACMEOptions) { o.CA = "" }, "not an http(s) URL"},
		"CA not a URL":   {func(o *ACMEOptions) { o.CA = "ftp://x/dir" }, "not an http(s) URL"},
		"bad addr":       {func(o *ACMEOptions) { o.ChallengeAddr = "nohostport" }, "ChallengeAddr"},
		"no state dir":   {func(o *ACMEOptions) { o.StateDir = "" }, "StateDir is empty"},
		"negative limit": {func(o *ACMEOptions) { o.Timeout = -time.Second }, "Timeout"},
		"open state dir": {func(o *ACMEOptions) {
			if err := os.Mkdir(o.StateDir, 0o700); err != nil {
				t.Fatal(err)
			}
			if err := os.Chmod(o.StateDir, 0o755); err != nil {
				t.Fatal(err)
			}
		}, "accessible by group or others"},
	} {
		t.Run(name, func(t *testing.T) {
			if name == "open state dir" && !checkModes {
				t.Skip("no file modes on this system")
			}
			o := good()
			tc.edit(&o)
			l, err := OpenACME(context.Background(), o)
			if err == nil {
				l.Close()
				t.Fatal("OpenACME accepted bad options")
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %q does not say %q", err, tc.want)
			}
		})
	}
}
