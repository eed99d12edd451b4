//go:build !wasip1

package sdk

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/signal"
	"syscall"
)

const underWASI = false

// ABIVersion is the highest ABI version the host speaks; 0 in a native
// build, where there is no host.
func ABIVersion() int { return 0 }

// mainContext ends on SIGINT or SIGTERM: a native helper has no host to
// stop it.
func mainContext() (context.Context, func()) {
	return signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
}

// nativeClient follows the host's rules where they make sense for a
// program that runs as the user: no environment proxies (a helper run
// under signet's HTTPS_PROXY must not loop through signet), no cookies,
// at most MaxRedirects redirects, to http(s) only. It has no allow-list:
// natively the helper is trusted like any other program the user runs.
func nativeClient() *http.Client {
	return &http.Client{
		Transport: &http.Transport{Proxy: nil, ForceAttemptHTTP2: true},
		CheckRedirect: func(req *http.Request, via []*http.Request) error {
			if len(via) > MaxRedirects {
				return ErrRedirects
			}
			if req.URL.Scheme != "https" && req.URL.Scheme != "http" {
				return ErrDeniedScheme
			}
			return nil
		},
	}
}

// Fetch sends req with net/http and returns the whole response. Its
// errors wrap a Status, as under signet.
func Fetch(ctx context.Context, req Request) (*Response, error) {
	if err := checkRequest(req); err != nil {
		return nil, err
	}
	if req.Timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, req.Timeout)
		defer cancel()
	}
	var body io.Reader
	if len(req.Body) > 0 {
		body = bytes.NewReader(req.Body)
	}
	hr, err := http.NewRequestWithContext(ctx, method(req), req.URL, body)
	if err != nil {
		return nil, fetchError(req, ErrBadRequest, "")
	}
	for _, h := range req.Header {
		hr.Header.Add(h[0], h[1])
	}
	resp, err := nativeClient().Do(hr)
	if err != nil {
		return nil, fetchError(req, classify(ctx, err), causeOf(err))
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, MaxResponseBody+1))
	if err != nil {
		return nil, fetchError(req, classify(ctx, err), causeOf(err))
	}
	if len(b) > MaxResponseBody {
		return nil, fetchError(req, ErrLimitSize, "")
	}
	out := &Response{StatusCode: resp.StatusCode, Body: b}
	for name, values := range resp.Header {
		for _, v := range values {
			out.Header = append(out.Header, [2]string{name, v})
		}
	}
	return out, nil
}

func classify(ctx context.Context, err error) Status {
	var s Status
	switch {
	case errors.As(err, &s):
		return s
	case errors.Is(err, context.DeadlineExceeded), errors.Is(ctx.Err(), context.DeadlineExceeded):
		return ErrTimeout
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return ErrTimeout
	}
	return ErrNetwork
}

// causeOf is err's text without the URL that *url.Error adds (its query
// may carry a secret; fetchError names the URL without it).
func causeOf(err error) string {
	var ue *url.Error
	if errors.As(err, &ue) {
		err = ue.Err
	}
	var s Status
	if errors.As(err, &s) {
		return "" // already the status
	}
	return err.Error()
}

// Log writes one line to stderr: a native helper's caller shows stderr.
func Log(level Level, format string, args ...any) {
	fmt.Fprintf(os.Stderr, "%s: %s\n", level, fmt.Sprintf(format, args...))
}
