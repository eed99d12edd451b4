package tlsintercept

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"log/slog"
	"net"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"
)

// newInterceptor opens an Interceptor that allows hosts under
// allowed.test and the loopback addresses.
func newInterceptor(tb testing.TB, now func() time.Time) *Interceptor {
	tb.Helper()
	i, err := Open(context.Background(), Options{
		StateDir: filepath.Join(tb.TempDir(), "state"),
		Allow: func(host string) bool {
			return strings.HasSuffix(host, ".allowed.test") || host == "127.0.0.1" || host == "::1"
		},
		Now: now,
	})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { _ = i.Close() })
	return i
}

// loopback is a TCP listener for handshakes; it has kernel buffers, so
// the server's post-handshake session tickets never block the client.
func loopback(tb testing.TB) net.Listener {
	tb.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { _ = ln.Close() })
	return ln
}

// handshake runs one TLS handshake between a client using cc and a server
// using sc and returns the client's view and both errors. The server
// goroutine ends before it returns.
func handshake(ln net.Listener, sc, cc *tls.Config) (tls.ConnectionState, error, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	serverErr := make(chan error, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			serverErr <- err
			return
		}
		s := tls.Server(c, sc)
		serverErr <- s.HandshakeContext(ctx)
		_ = s.Close()
	}()
	raw, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		return tls.ConnectionState{}, err, <-serverErr
	}
	c := tls.Client(raw, cc)
	clientErr := c.HandshakeContext(ctx)
	state := c.ConnectionState()
	_ = c.Close()
	return state, clientErr, <-serverErr
}

func clientConfig(i *Interceptor, serverName string, protos ...string) *tls.Config {
	roots := x509.NewCertPool()
	roots.AddCert(i.CACert())
	return &tls.Config{RootCAs: roots, ServerName: serverName, NextProtos: protos}
}

func TestHandshake(t *testing.T) {
	i := newInterceptor(t, nil)
	ln := loopback(t)
	tests := []struct {
		name       string
		server     *tls.Config
		clientSNI  string // what the client sends; "" sends none
		verifyName string // the name the client verifies the leaf for
		protos     []string
		wantErr    string // in the server's error; "" for success
		wantProto  string
	}{
		{name: "allowed host", server: i.ServerConfig(), clientSNI: "s3.allowed.test", verifyName: "s3.allowed.test"},
		{name: "allowed host h2", server: i.ServerConfig(), clientSNI: "h2.allowed.test", verifyName: "h2.allowed.test", protos: []string{"h2", "http/1.1"}, wantProto: "h2"},
		{name: "allowed host http/1.1", server: i.ServerConfig(), clientSNI: "h1.allowed.test", verifyName: "h1.allowed.test", protos: []string{"http/1.1"}, wantProto: "http/1.1"},
		{name: "disallowed host", server: i.ServerConfig(), clientSNI: "evil.example", verifyName: "evil.example", wantErr: "not intercepted"},
		{name: "no SNI without tunnel host", server: i.ServerConfig(), verifyName: "x.allowed.test", wantErr: "no server name"},
		{name: "tunnel host matches SNI", server: i.ServerConfigFor("tun.allowed.test"), clientSNI: "tun.allowed.test", verifyName: "tun.allowed.test"},
		{name: "tunnel host case and dot", server: i.ServerConfigFor("Case.Allowed.Test."), clientSNI: "case.allowed.test", verifyName: "case.allowed.test"},
		{name: "SNI differs from tunnel host", server: i.ServerConfigFor("tun.allowed.test"), clientSNI: "other.allowed.test", verifyName: "other.allowed.test", wantErr: `"other.allowed.test" but the tunnel is to "tun.allowed.test"`},
		{name: "no SNI uses tunnel host", server: i.ServerConfigFor("nosni.allowed.test"), verifyName: "nosni.allowed.test"},
		{name: "no SNI tunnel to IPv4", server: i.ServerConfigFor("127.0.0.1"), verifyName: "127.0.0.1"},
		{name: "no SNI tunnel to IPv6", server: i.ServerConfigFor("[::1]"), verifyName: "::1"},
		{name: "no SNI tunnel to disallowed host", server: i.ServerConfigFor("evil.example"), verifyName: "evil.example", wantErr: "not intercepted"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cc := clientConfig(i, tt.verifyName, tt.protos...)
			if tt.clientSNI == "" {
				// crypto/tls sends no SNI for an IP ServerName, and
				// verifies against VerifyConnection below instead.
				cc.ServerName = ""
				cc.InsecureSkipVerify = true // replaced by the explicit check below
				roots, name := cc.RootCAs, tt.verifyName
				cc.VerifyConnection = func(cs tls.ConnectionState) error {
					_, err := cs.PeerCertificates[0].Verify(x509.VerifyOptions{Roots: roots, DNSName: name})
					return err
				}
			}
			state, clientErr, serverErr := handshake(ln, tt.server, cc)
			if tt.wantErr != "" {
				if serverErr == nil || !strings.Contains(serverErr.Error(), tt.wantErr) {
					t.Fatalf("server error %v, want one containing %q", serverErr, tt.wantErr)
				}
				if clientErr == nil {
					t.Fatal("client handshake succeeded")
				}
				return
			}
			if clientErr != nil || serverErr != nil {
				t.Fatalf("handshake: client %v, server %v", clientErr, serverErr)
			}
			leaf := state.PeerCertificates[0]
			if _, err := leaf.Verify(x509.VerifyOptions{Roots: cc.RootCAs, DNSName: tt.verifyName}); err != nil {
				t.Errorf("leaf does not verify to the CA for %s: %v", tt.verifyName, err)
			}
			if n := len(leaf.DNSNames) + len(leaf.IPAddresses); n != 1 {
				t.Errorf("leaf has %d SANs (%v %v), want exactly the host", n, leaf.DNSNames, leaf.IPAddresses)
			}
			if len(leaf.ExtKeyUsage) != 1 || leaf.ExtKeyUsage[0] != x509.ExtKeyUsageServerAuth || leaf.IsCA {
				t.Errorf("leaf ExtKeyUsage %v IsCA %v", leaf.ExtKeyUsage, leaf.IsCA)
			}
			if life := leaf.NotAfter.Sub(leaf.NotBefore); life > 8*24*time.Hour {
				t.Errorf("leaf lifetime %v, want about a week", life)
			}
			if leaf.SerialNumber.BitLen() < 64 {
				t.Errorf("leaf serial %v looks not random", leaf.SerialNumber)
			}
			if state.NegotiatedProtocol != tt.wantProto {
				t.Errorf("ALPN %q, want %q", state.NegotiatedProtocol, tt.wantProto)
			}
		})
	}
	st := i.Stats()
	if st.Denied < 3 || st.Issued == 0 {
		t.Errorf("stats %+v: want denials and issuances counted", st)
	}
}

func TestSecondHandshakeHitsCache(t *testing.T) {
	i := newInterceptor(t, nil)
	ln := loopback(t)
	for range 3 {
		if _, cerr, serr := handshake(ln, i.ServerConfig(), clientConfig(i, "cached.allowed.test")); cerr != nil || serr != nil {
			t.Fatalf("handshake: client %v, server %v", cerr, serr)
		}
	}
	if st := i.Stats(); st.Issued != 1 || st.Misses != 1 || st.Hits != 2 {
		t.Errorf("stats %+v, want 1 issued, 1 miss, 2 hits", st)
	}
}

// TestConcurrentHandshakesIssueOnce: a burst of clients to a host nobody
// has visited yet must cost one signature, not fifty.
func TestConcurrentHandshakesIssueOnce(t *testing.T) {
	i := newInterceptor(t, nil)
	ln := loopback(t)
	const n = 50
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for range n {
		wg.Go(func() {
			_, cerr, serr := handshake(ln, i.ServerConfig(), clientConfig(i, "burst.allowed.test"))
			if err := errors.Join(cerr, serr); err != nil {
				errs <- err
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if got := i.Stats().Issued; got != 1 {
		t.Errorf("issuer called %d times for one host, want 1", got)
	}
}

// TestRenewal: a leaf inside its renewal window is served while certmagic
// asks the issuer for a new one, which later handshakes then get.
func TestRenewal(t *testing.T) {
	var mu sync.Mutex
	offset := -6 * 24 * time.Hour // the first leaf looks six days old
	now := func() time.Time {
		mu.Lock()
		defer mu.Unlock()
		return time.Now().Add(offset)
	}
	i := newInterceptor(t, now)
	ln := loopback(t)
	cc := clientConfig(i, "renew.allowed.test")

	state, cerr, serr := handshake(ln, i.ServerConfig(), cc)
	if cerr != nil || serr != nil {
		t.Fatalf("first handshake: client %v, server %v", cerr, serr)
	}
	old := state.PeerCertificates[0]
	mu.Lock()
	offset = 0
	mu.Unlock()

	// The next handshake finds the leaf in its last third and starts a
	// renewal in the background.
	if _, cerr, serr := handshake(ln, i.ServerConfig(), cc); cerr != nil || serr != nil {
		t.Fatalf("second handshake: client %v, server %v", cerr, serr)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		state, cerr, serr := handshake(ln, i.ServerConfig(), cc)
		if cerr != nil || serr != nil {
			t.Fatalf("handshake: client %v, server %v", cerr, serr)
		}
		if leaf := state.PeerCertificates[0]; !leaf.Equal(old) {
			if !leaf.NotAfter.After(old.NotAfter) {
				t.Errorf("renewed leaf expires %v, not after the old %v", leaf.NotAfter, old.NotAfter)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("leaf not renewed; stats %+v", i.Stats())
		}
		time.Sleep(20 * time.Millisecond)
	}
	if got := i.Stats().Issued; got != 2 {
		t.Errorf("issued %d, want 2 (first issue and one renewal)", got)
	}
}

func TestCloseStopsGoroutinesAndRefusesHandshakes(t *testing.T) {
	before := runtime.NumGoroutine()
	i, err := Open(context.Background(), Options{StateDir: filepath.Join(t.TempDir(), "s"), Allow: func(string) bool { return true }})
	if err != nil {
		t.Fatal(err)
	}
	ln := loopback(t)
	if _, cerr, serr := handshake(ln, i.ServerConfig(), clientConfig(i, "a.allowed.test")); cerr != nil || serr != nil {
		t.Fatalf("handshake: client %v, server %v", cerr, serr)
	}
	if err := i.Close(); err != nil {
		t.Fatal(err)
	}
	if err := i.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	if _, _, serr := handshake(ln, i.ServerConfig(), clientConfig(i, "a.allowed.test")); serr == nil || !strings.Contains(serr.Error(), "closed") {
		t.Errorf("handshake after Close: server error %v, want closed", serr)
	}
	// Goroutines of finished connections may take a moment to exit.
	deadline := time.Now().Add(5 * time.Second)
	for runtime.NumGoroutine() > before {
		if time.Now().After(deadline) {
			buf := make([]byte, 1<<16)
			t.Fatalf("%d goroutines after Close, %d before:\n%s", runtime.NumGoroutine(), before, buf[:runtime.Stack(buf, true)])
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestCertmagicLogsReachSlog: certmagic's zap logs arrive in the slog
// logger, tagged, with its routine Info lines demoted to Debug.
func TestCertmagicLogsReachSlog(t *testing.T) {
	var buf safeBuffer
	i, err := Open(context.Background(), Options{
		StateDir: filepath.Join(t.TempDir(), "s"),
		Allow:    func(string) bool { return true },
		Logger:   slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug})),
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = i.Close() })
	ln := loopback(t)
	if _, cerr, serr := handshake(ln, i.ServerConfig(), clientConfig(i, "log.allowed.test")); cerr != nil || serr != nil {
		t.Fatalf("handshake: client %v, server %v", cerr, serr)
	}
	out := buf.String()
	for line := range strings.Lines(out) {
		if strings.Contains(line, `msg="certificate obtained successfully"`) {
			if !strings.Contains(line, "level=DEBUG") || !strings.Contains(line, "component=certmagic") {
				t.Errorf("certmagic line not tagged or not demoted: %s", line)
			}
			return
		}
	}
	t.Errorf("certmagic's issuance log missing:\n%s", out)
}

type safeBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *safeBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *safeBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// TestLeafCachePolicy: the leaf cache keeps what its policy says when it
// is full. After a is used three times and b once, adding c drops b under
// LFU (used least often) and a under LRU (used least recently); a handshake
// for the host still held is a hit, for the dropped one a miss.
func TestLeafCachePolicy(t *testing.T) {
	for _, tt := range []struct {
		policy        string
		kept, dropped string
	}{
		{"lfu", "a.allowed.test", "b.allowed.test"},
		{"lru", "b.allowed.test", "a.allowed.test"},
	} {
		t.Run(tt.policy, func(t *testing.T) {
			i, err := Open(context.Background(), Options{
				StateDir: filepath.Join(t.TempDir(), "state"), CacheSize: 2, CachePolicy: tt.policy,
				Allow: func(host string) bool { return strings.HasSuffix(host, ".allowed.test") },
			})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = i.Close() })
			ln := loopback(t)
			shake := func(host string) {
				t.Helper()
				if _, cerr, serr := handshake(ln, i.ServerConfigFor(host), clientConfig(i, host)); cerr != nil || serr != nil {
					t.Fatalf("handshake with %s: client %v, server %v", host, cerr, serr)
				}
			}
			for _, h := range []string{"a.allowed.test", "a.allowed.test", "a.allowed.test", "b.allowed.test", "c.allowed.test"} {
				shake(h)
			}
			st := i.CacheStats()
			if st.Evictions != 1 || st.Len != 2 || st.MaxSize != 2 {
				t.Fatalf("cache stats %+v, want one eviction, 2 of 2 held", st)
			}
			before := i.Stats()
			shake(tt.kept)
			if after := i.Stats(); after.Hits != before.Hits+1 {
				t.Errorf("%s: stats %+v after %+v, want a hit", tt.kept, after, before)
			}
			before = i.Stats()
			shake(tt.dropped)
			if after := i.Stats(); after.Misses != before.Misses+1 {
				t.Errorf("%s: stats %+v after %+v, want a miss", tt.dropped, after, before)
			}
			if got := i.LeavesIssued(); got < 3 {
				t.Errorf("LeavesIssued = %d, want at least the 3 hosts", got)
			}
		})
	}
}

func TestOpenRefusesUnknownCachePolicy(t *testing.T) {
	_, err := Open(context.Background(), Options{StateDir: filepath.Join(t.TempDir(), "s"),
		Allow: func(string) bool { return true }, CachePolicy: "fifo"})
	if err == nil || !strings.Contains(err.Error(), "fifo") {
		t.Errorf("Open with policy fifo = %v, want an error naming it", err)
	}
}
