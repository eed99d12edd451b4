package tlsintercept

import (
	"strconv"
	"testing"
)

// BenchmarkHandshake measures a full TLS handshake over loopback TCP
// between a crypto/tls client that trusts the CA and a server using
// ServerConfigFor: new-host issues a certificate every iteration,
// cached-host serves one from certmagic's cache.
func BenchmarkHandshake(b *testing.B) {
	b.Run("new-host", func(b *testing.B) {
		i := newInterceptor(b, nil)
		ln := loopback(b)
		n := 0
		for b.Loop() {
			n++
			host := "h" + strconv.Itoa(n) + ".allowed.test"
			if _, cerr, serr := handshake(ln, i.ServerConfigFor(host), clientConfig(i, host)); cerr != nil || serr != nil {
				b.Fatalf("handshake: client %v, server %v", cerr, serr)
			}
		}
	})
	b.Run("cached-host", func(b *testing.B) {
		i := newInterceptor(b, nil)
		ln := loopback(b)
		const host = "cached.allowed.test"
		sc, cc := i.ServerConfigFor(host), clientConfig(i, host)
		for b.Loop() {
			if _, cerr, serr := handshake(ln, sc, cc); cerr != nil || serr != nil {
				b.Fatalf("handshake: client %v, server %v", cerr, serr)
			}
		}
	})
}
