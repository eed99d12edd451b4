package admin

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"time"
)

// Server is the admin listener: bound by Listen, so that a port in use is
// an error at start, then served by Serve until its context ends.
type Server struct {
	ln  net.Listener
	srv *http.Server
	log *slog.Logger
	v6  bool // the address asked for was an IPv6 one
}

// Limits bound what one client can make the admin listener hold; a zero
// field takes its default.
type Limits struct {
	// ReadHeaderTimeout bounds the time to read a request's headers;
	// default 10s. A whole request may take 30s, or this if longer.
	ReadHeaderTimeout time.Duration
	// MaxHeaderBytes bounds a request's headers; default 64 KiB.
	MaxHeaderBytes int
}

// Admin listener defaults.
const (
	defaultReadHeaderTimeout = 10 * time.Second
	defaultReadTimeout       = 30 * time.Second
	defaultMaxHeaderBytes    = 64 << 10
)

// Listen binds addr ("127.0.0.1:8081"; port 0 picks a free one) for h,
// with the default Limits.
func Listen(ctx context.Context, addr string, h http.Handler, log *slog.Logger) (*Server, error) {
	return ListenWith(ctx, addr, h, log, Limits{})
}

// ListenWith is Listen with limits.
func ListenWith(ctx context.Context, addr string, h http.Handler, log *slog.Logger, lim Limits) (*Server, error) {
	if lim.ReadHeaderTimeout <= 0 {
		lim.ReadHeaderTimeout = defaultReadHeaderTimeout
	}
	if lim.MaxHeaderBytes <= 0 {
		lim.MaxHeaderBytes = defaultMaxHeaderBytes
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	var lc net.ListenConfig
	ln, err := lc.Listen(ctx, "tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("admin: listen on %s: %w", addr, err)
	}
	log.Info("listening", "listener", "admin", "addr", ln.Addr().String())
	host, _, _ := net.SplitHostPort(addr)
	return &Server{
		ln:  ln,
		log: log,
		v6:  strings.Contains(host, ":"),
		srv: &http.Server{
			Handler:           h,
			ReadHeaderTimeout: lim.ReadHeaderTimeout,
			ReadTimeout:       max(defaultReadTimeout, lim.ReadHeaderTimeout),
			// Not a WriteTimeout: /readyz and the credential endpoints
			// may wait for a refresh, bounded by the source's timeout.
			IdleTimeout:    2 * time.Minute,
			MaxHeaderBytes: lim.MaxHeaderBytes,
			ErrorLog:       slog.NewLogLogger(log.Handler(), slog.LevelWarn),
		},
	}, nil
}

// Addr is the bound address.
func (s *Server) Addr() net.Addr { return s.ln.Addr() }

// URL is the base URL of the listener, "http://127.0.0.1:8081", with an
// unspecified address (0.0.0.0, ::) turned into loopback so that local
// clients can use it.
func (s *Server) URL() string {
	a, ok := s.ln.Addr().(*net.TCPAddr)
	if !ok {
		return "http://" + s.ln.Addr().String()
	}
	ip := a.IP
	if ip.IsUnspecified() {
		// Go reports 0.0.0.0 as :: on a dual-stack socket, so ask what
		// was asked for.
		ip = net.IPv4(127, 0, 0, 1)
		if s.v6 {
			ip = net.IPv6loopback
		}
	}
	return "http://" + net.JoinHostPort(ip.String(), fmt.Sprint(a.Port))
}

// Serve serves until ctx ends, then lets requests finish for up to drain.
// It returns the listener's error, or nil after a clean shutdown.
func (s *Server) Serve(ctx context.Context, drain time.Duration) error {
	errc := make(chan error, 1)
	go func() { errc <- s.srv.Serve(s.ln) }()
	select {
	case err := <-errc:
		if errors.Is(err, http.ErrServerClosed) {
			return nil
		}
		return fmt.Errorf("admin: serve: %w", err)
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), drain)
	defer cancel()
	if err := s.srv.Shutdown(sctx); err != nil {
		s.log.Warn("admin drain incomplete, closing connections", "error", err)
		_ = s.srv.Close()
	}
	if err := <-errc; err != nil && !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("admin: serve: %w", err)
	}
	return nil
}

// Close closes the listener without serving (a start that failed later).
func (s *Server) Close() error { return s.ln.Close() }
