package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net/http"
	"net/textproto"
	"net/url"
	"os"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/signet-proxy/signet/configs"
	"github.com/signet-proxy/signet/credentials"
	"github.com/signet-proxy/signet/proxy"
	"github.com/signet-proxy/signet/signer"
)

const debugUsage = "usage: signet debug sign [-c FILE] [flags] METHOD URL"

// Section markers of `debug sign`. The canonical request and the string to
// sign between them are exactly what AWS prints in a SignatureDoesNotMatch
// answer, so the two can be compared with diff.
const (
	markCanonical = "--- canonical request ---"
	markToSign    = "--- string to sign ---"
	markHeaders   = "--- headers sent ---"
)

// amzDateFormat is the X-Amz-Date format, accepted by --date as well as
// RFC 3339 so that a date can be pasted from a failed request.
const amzDateFormat = "20060102T150405Z"

func runDebug(ctx context.Context, c *cli, args []string) error {
	if len(args) == 0 {
		return usageError{errors.New("missing subcommand\n" + debugUsage)}
	}
	switch args[0] {
	case "sign":
		return runDebugSign(ctx, c, args[1:])
	case "-h", "--help", "help":
		return usageError{errors.New(debugUsage)}
	}
	return usageError{fmt.Errorf("unknown subcommand %q\n%s", args[0], debugUsage)}
}

// headerFlags collects repeated --header "Name: value" flags in order.
type headerFlags []string

func (h *headerFlags) String() string     { return strings.Join(*h, ", ") }
func (h *headerFlags) Set(v string) error { *h = append(*h, v); return nil }

// debugSign is one `debug sign` invocation.
type debugSign struct {
	method, rawURL string
	headers        headerFlags
	data           string
	source         string
	scope          signer.Scope // --service, --region
	now            time.Time    // --date; zero: the clock
}

// runDebugSign prints what signet would sign for one request: the route
// and source, the scope and where it came from, the canonical request, the
// string to sign, and the headers sent. The secret key and session token
// are never printed and the access key ID is shortened; the signature is
// printed, to compare with what AWS computed (it authorises only this
// request, for 15 minutes from its date).
func runDebugSign(ctx context.Context, c *cli, args []string) error {
	fs := flag.NewFlagSet("debug sign", flag.ContinueOnError)
	var cf configFlags
	cf.register(fs)
	var d debugSign
	fs.Var(&d.headers, "header", "request header `Name: value`; repeat for more (Host comes from the URL, Content-Length from --data)")
	fs.Var(&d.headers, "H", "same as --header")
	fs.StringVar(&d.data, "data", "", "request body: a `string`, or @FILE for a file's bytes, sent as they are")
	fs.StringVar(&d.data, "d", "", "same as --data")
	fs.StringVar(&d.source, "source", "", "sign with this source `name` instead of the route's (also signs a host no route matches)")
	fs.StringVar(&d.scope.Service, "service", "", "signing `name`, over the route's and the endpoint table's")
	fs.StringVar(&d.scope.Region, "region", "", "signing `region`, over the route's and the endpoint table's")
	date := fs.String("date", "", "sign at this `time` (RFC 3339 or 20060102T150405Z) instead of now")
	pos, err := parseInterleaved(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 2 {
		return usageError{fmt.Errorf("want METHOD and URL, got %d arguments\n%s", len(pos), debugUsage)}
	}
	d.method, d.rawURL = pos[0], pos[1]
	if *date != "" {
		if d.now, err = parseSigningDate(*date); err != nil {
			return usageError{err}
		}
	}
	cfg, err := cf.load(c)
	if err != nil {
		return err
	}
	return d.run(ctx, c, cfg)
}

// parseInterleaved parses flags that may come before, between or after the
// positional arguments, as `debug sign GET URL -H ...` is natural to type.
func parseInterleaved(fs *flag.FlagSet, args []string) ([]string, error) {
	fs.SetOutput(io.Discard)
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				return nil, usageError{fmt.Errorf("%s\n%s flags:\n%s", debugUsage, fs.Name(), flagUsage(fs))}
			}
			return nil, usageError{err}
		}
		args = fs.Args()
		if len(args) == 0 {
			return pos, nil
		}
		pos = append(pos, args[0])
		args = args[1:]
	}
}

func parseSigningDate(s string) (time.Time, error) {
	if t, err := time.Parse(time.RFC3339, s); err == nil {
		return t.UTC(), nil
	}
	if t, err := time.Parse(amzDateFormat, s); err == nil {
		return t, nil
	}
	return time.Time{}, fmt.Errorf("--date %q: want RFC 3339 like 2015-08-30T12:36:00Z, or 20150830T123600Z", s)
}

// debugRoute is what the config says about a request: which route (if
// any), the source, the scope overrides and the payload mode.
type debugRoute struct {
	label       string // "routes[0] (hosts ...)" or "none"
	source      string
	scope       signer.Scope
	scopeFrom   [2]string // where Service and Region of scope came from
	signingHost string
	scheme      string
	payload     signer.PayloadMode
}

// route finds the route the proxy would pick for u: the first whose hosts
// (with the proxy's own matcher) and path_prefix match.
func (d *debugSign) route(cfg *configs.Config, u *url.URL) (debugRoute, error) {
	dr := debugRoute{label: "none", scheme: u.Scheme, payload: signer.PayloadAuto}
	found := false
	for i, rc := range cfg.Routes {
		if rc.PathPrefix != "" && !strings.HasPrefix(u.Path, rc.PathPrefix) {
			continue
		}
		if !proxy.SignsHost([]proxy.Route{{Hosts: rc.Hosts}}, u.Host) {
			continue
		}
		dr = debugRoute{
			label:       fmt.Sprintf("routes[%d] (hosts %s)", i, strings.Join(rc.Hosts, ", ")),
			source:      rc.Source,
			scope:       signer.Scope{Service: rc.Service, Region: rc.Region},
			signingHost: rc.SigningHost,
			scheme:      rc.UpstreamScheme,
			payload:     signer.PayloadMode(rc.Payload),
		}
		dr.scopeFrom = [2]string{fmt.Sprintf("routes[%d].service", i), fmt.Sprintf("routes[%d].region", i)}
		found = true
		break
	}
	if d.source != "" {
		if _, ok := cfg.Sources[d.source]; !ok {
			return dr, usageError{fmt.Errorf("--source %q: no such source in the config", d.source)}
		}
		dr.source = d.source
	}
	if !found && d.source == "" {
		what := "forwards it unsigned (unmatched: forward)"
		if cfg.Unmatched == configs.UnmatchedDeny {
			what = "refuses it with 403 (unmatched: deny)"
		}
		return dr, fmt.Errorf("no route signs %s, so signet %s: add the host to a route, or give --source NAME to see how it would be signed", u.Host, what)
	}
	if d.scope.Service != "" {
		dr.scope.Service, dr.scopeFrom[0] = d.scope.Service, "--service"
	}
	if d.scope.Region != "" {
		dr.scope.Region, dr.scopeFrom[1] = d.scope.Region, "--region"
	}
	return dr, nil
}

func (d *debugSign) run(ctx context.Context, c *cli, cfg *configs.Config) error {
	u, err := url.Parse(d.rawURL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return usageError{fmt.Errorf("URL %q: want an absolute http:// or https:// URL", d.rawURL)}
	}
	if !validMethod(d.method) {
		return usageError{fmt.Errorf("METHOD %q: want an HTTP method like GET or PUT", d.method)}
	}
	dr, err := d.route(cfg, u)
	if err != nil {
		return err
	}
	out, cleanup, err := d.request(u, dr)
	if err != nil {
		return err
	}
	defer cleanup()
	scope, err := signer.ResolveScope(out.Host, out.Header, out.URL.RawQuery, dr.scope)
	if err != nil {
		return fmt.Errorf("%w (or give --service and --region)", err)
	}
	from := scopeOrigins(dr, out)

	cs, err := provision(ctx, cfg, slog.New(slog.DiscardHandler), forCheck)
	if err != nil {
		return err
	}
	defer cs.close()
	creds, err := cs.sources[dr.source].Credentials(ctx)
	if err != nil {
		return fmt.Errorf("source %s: %w", dr.source, err)
	}
	now := d.now
	if now.IsZero() {
		now = time.Now().UTC()
	}
	var traces []signer.Trace
	s := signer.NewTracing(signer.Options{Now: func() time.Time { return now }}, func(t signer.Trace) { traces = append(traces, t) })
	release, err := s.Sign(ctx, out, creds, signer.Params{Scope: scope, Payload: dr.payload})
	if err != nil {
		return err
	}
	defer release()
	if len(traces) != 1 {
		return fmt.Errorf("signed, but the SDK reported %d canonical requests instead of 1", len(traces))
	}

	var b bytes.Buffer
	tw := tabwriter.NewWriter(&b, 0, 0, 2, ' ', 0)
	fmt.Fprintf(tw, "request\t%s %s\n", out.Method, out.URL.Scheme+"://"+out.Host+out.URL.RequestURI())
	fmt.Fprintf(tw, "route\t%s\n", dr.label)
	fmt.Fprintf(tw, "source\t%s (%s), access key %s\n", dr.source, cfg.Sources[dr.source].Method, credentials.RedactKeyID(creds.AccessKeyID))
	fmt.Fprintf(tw, "service\t%s (from %s)\n", scope.Service, from[0])
	fmt.Fprintf(tw, "region\t%s (from %s)\n", scope.Region, from[1])
	fmt.Fprintf(tw, "date\t%s\n", now.UTC().Format(amzDateFormat))
	if err := tw.Flush(); err != nil {
		return err
	}
	fmt.Fprintf(&b, "\n%s\n%s\n%s\n%s\n", markCanonical, traces[0].CanonicalRequest, markToSign, traces[0].StringToSign)
	auth := out.Header.Get("Authorization")
	fmt.Fprintf(&b, "\nsigned headers  %s\n", authField(auth, "SignedHeaders"))
	fmt.Fprintf(&b, "signature       %s\n", authField(auth, "Signature"))
	fmt.Fprintf(&b, "\n%s\n", markHeaders)
	hdr := out.Header.Clone()
	hdr.Set("Host", out.Host)
	if out.ContentLength > 0 {
		hdr.Set("Content-Length", fmt.Sprint(out.ContentLength))
	}
	for _, k := range slices.Sorted(maps.Keys(hdr)) {
		for _, v := range hdr[k] {
			if k == "Authorization" {
				v = redactCredential(v, creds.AccessKeyID)
			}
			fmt.Fprintf(&b, "%s: %s\n", k, v)
		}
	}
	_, err = io.WriteString(c.stdout, redactor(creds).Replace(b.String()))
	return err
}

// request builds the request as the proxy hands it to the signer: the
// route's scheme and signing host, the path byte for byte as given, the
// headers as given.
func (d *debugSign) request(u *url.URL, dr debugRoute) (*http.Request, func(), error) {
	cleanup := func() {}
	out := &http.Request{
		Method:     d.method,
		URL:        &url.URL{Scheme: dr.scheme, Host: upstreamHostOf(u, dr.scheme), RawQuery: u.RawQuery},
		Proto:      "HTTP/1.1",
		ProtoMajor: 1,
		ProtoMinor: 1,
		Header:     http.Header{},
		Body:       http.NoBody,
	}
	out.Host = out.URL.Host
	if dr.signingHost != "" {
		out.Host = dr.signingHost
	}
	if err := signer.SetRawPath(out.URL, rawURLPath(d.rawURL)); err != nil {
		return nil, cleanup, usageError{fmt.Errorf("URL %q: %w", d.rawURL, err)}
	}
	for _, h := range d.headers {
		name, value, ok := strings.Cut(h, ":")
		name = strings.TrimSpace(name)
		if !ok || name == "" || !validHeaderName(name) {
			return nil, cleanup, usageError{fmt.Errorf("--header %q: want Name: value", h)}
		}
		name = textproto.CanonicalMIMEHeaderKey(name)
		switch name {
		case "Host":
			return nil, cleanup, usageError{fmt.Errorf("--header %q: the Host is the URL's (or the route's signing_host)", h)}
		case "Content-Length":
			return nil, cleanup, usageError{fmt.Errorf("--header %q: the length is that of --data", h)}
		}
		out.Header.Add(name, strings.TrimSpace(value))
	}
	switch {
	case strings.HasPrefix(d.data, "@"):
		f, err := os.Open(d.data[1:])
		if err != nil {
			return nil, cleanup, usageError{fmt.Errorf("--data: %w", err)}
		}
		st, err := f.Stat()
		if err != nil || !st.Mode().IsRegular() {
			f.Close()
			return nil, cleanup, usageError{fmt.Errorf("--data %s: not a regular file", d.data[1:])}
		}
		out.Body, out.ContentLength = f, st.Size()
		cleanup = func() { f.Close() }
	case d.data != "":
		out.Body, out.ContentLength = io.NopCloser(strings.NewReader(d.data)), int64(len(d.data))
	}
	if out.ContentLength == 0 {
		out.Body = http.NoBody
	}
	return out, cleanup, nil
}

// scopeOrigins says where the service and region came from, in the order
// signer.ResolveScope takes them: flags or route, then the client's
// placeholder signature, then the endpoint table.
func scopeOrigins(dr debugRoute, out *http.Request) [2]string {
	from := dr.scopeFrom
	in, hasIn := signer.IncomingScope(out.Header, out.URL.RawQuery)
	fill := func(i int, routeSet bool, inSet bool) {
		switch {
		case routeSet:
		case hasIn && inSet:
			from[i] = "the placeholder signature the request carries"
		default:
			from[i] = "signet's table of AWS endpoints"
		}
	}
	fill(0, dr.scope.Service != "", in.Service != "")
	fill(1, dr.scope.Region != "", in.Region != "")
	return from
}

// upstreamHostOf keeps an explicit port, but drops the client's default
// port when the route's scheme differs, as the proxy does.
func upstreamHostOf(u *url.URL, scheme string) string {
	port := u.Port()
	if port == "" || scheme == u.Scheme {
		return u.Host
	}
	if (u.Scheme == "http" && port == "80") || (u.Scheme == "https" && port == "443") {
		return u.Hostname()
	}
	return u.Host
}

// rawURLPath is the path of an absolute URL exactly as typed: what a
// client puts on its request line, which signet signs byte for byte.
func rawURLPath(raw string) string {
	_, rest, _ := strings.Cut(raw, "://")
	i := strings.IndexAny(rest, "/?#")
	if i < 0 || rest[i] != '/' {
		return "/"
	}
	p := rest[i:]
	if j := strings.IndexAny(p, "?#"); j >= 0 {
		p = p[:j]
	}
	return p
}

// authField returns a field of a SigV4 Authorization header.
func authField(auth, name string) string {
	_, rest, _ := strings.Cut(auth, " ")
	for f := range strings.SplitSeq(rest, ",") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(f), name+"="); ok {
			return v
		}
	}
	return ""
}

// redactor hides the secret key and the session token wherever they
// appear: the token is a signed header, so it is in the canonical request
// too. The secret never is, unless something is badly wrong.
func redactor(creds credentials.Credentials) *strings.Replacer {
	var pairs []string
	for _, s := range []string{creds.SessionToken, creds.SecretAccessKey} {
		if s != "" {
			pairs = append(pairs, s, configs.RedactedValue)
		}
	}
	return strings.NewReplacer(pairs...)
}

// redactCredential shortens the access key ID in an Authorization header's
// Credential field, and only there: a short ID replaced everywhere could
// change a path or header value that is shown.
func redactCredential(auth, keyID string) string {
	if keyID == "" {
		return auth
	}
	return strings.Replace(auth, "Credential="+keyID+"/", "Credential="+credentials.RedactKeyID(keyID)+"/", 1)
}

func validMethod(m string) bool {
	if m == "" {
		return false
	}
	for _, r := range m {
		if r < 'A' || r > 'Z' {
			return false
		}
	}
	return true
}

// validHeaderName accepts RFC 9110 token characters.
func validHeaderName(name string) bool {
	for i := 0; i < len(name); i++ {
		c := name[i]
		if c <= ' ' || c >= 0x7f || strings.IndexByte(`"(),/:;<=>?@[\]{}`, c) >= 0 {
			return false
		}
	}
	return true
}
