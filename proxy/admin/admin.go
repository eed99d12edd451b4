// Package admin serves signet's admin listener: liveness and readiness,
// Prometheus metrics, the state of the credential sources, whoami, and
// credential endpoints that let SDK apps beside signet use its refreshed
// keys (the ECS container-credentials format, and optionally an
// IMDSv2-compatible instance metadata endpoint).
//
// What needs which credential:
//
//   - /healthz: nothing, ever (a liveness probe).
//   - /v1/credentials/NAME: the token in Authorization, as the AWS SDKs send
//     AWS_CONTAINER_AUTHORIZATION_TOKEN. They put the token in that header
//     as it is, so Basic auth cannot be asked of them as well.
//   - /latest/... (IMDS): an IMDSv2 session token, which anyone who can
//     reach the listener can get; the config allows it on loopback only.
//   - everything else: Authorization: Basic when Options.Auth is set.
package admin

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/json"
	"fmt"
	"log/slog"
	"maps"
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/signet-proxy/signet/credentials"
)

// Catalog is the credential sources of one config.
type Catalog struct {
	// Sources by name.
	Sources map[string]credentials.Source
	// Required names the sources a route or reverse listener uses;
	// /readyz waits for these.
	Required []string
	// IMDSSource is the source the IMDS endpoint serves as the instance's
	// role.
	IMDSSource string
}

// PasswordChecker verifies Basic credentials; *proxy.BasicAuth is one.
type PasswordChecker interface {
	Verify(user, password string) bool
}

// WhoamiFunc asks AWS whom keys belong to (credentials.Whoami).
type WhoamiFunc func(ctx context.Context, c credentials.Credentials) (credentials.Identity, error)

// Options configure New.
type Options struct {
	// Catalog is the sources at start; SetCatalog replaces it on reload.
	Catalog Catalog
	// Token is what /v1/credentials/NAME requires in Authorization. Empty
	// turns the credential endpoint off (404).
	Token string
	// Auth, when set, is asked of every request but /healthz and the
	// credential endpoints.
	Auth PasswordChecker
	// Metrics serves /metrics; nil answers 404.
	Metrics http.Handler
	// Whoami answers /v1/whoami; nil means credentials.Whoami against STS
	// in us-east-1.
	Whoami WhoamiFunc
	// IMDS serves the IMDSv2-compatible endpoint under /latest/.
	IMDS bool
	// ReadyTimeout bounds how long /readyz waits for a source that is
	// fetching; default 2s.
	ReadyTimeout time.Duration
	// Now is the clock; nil means time.Now.
	Now    func() time.Time
	Logger *slog.Logger
}

const defaultReadyTimeout = 2 * time.Second

// Handler is the admin API. It is safe for concurrent use.
type Handler struct {
	mux       *http.ServeMux
	catalog   atomic.Pointer[Catalog]
	tokenHash [sha256.Size]byte
	hasToken  bool
	auth      PasswordChecker
	whoami    WhoamiFunc
	imds      *imds
	ready     time.Duration
	now       func() time.Time
	log       *slog.Logger
	draining  atomic.Bool
}

// New builds the admin handler.
func New(opts Options) (*Handler, error) {
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.ReadyTimeout <= 0 {
		opts.ReadyTimeout = defaultReadyTimeout
	}
	if opts.Whoami == nil {
		opts.Whoami = func(ctx context.Context, c credentials.Credentials) (credentials.Identity, error) {
			return credentials.Whoami(ctx, c, credentials.WhoamiOptions{})
		}
	}
	if opts.Token != "" {
		if err := CheckToken(opts.Token); err != nil {
			return nil, fmt.Errorf("admin: %w", err)
		}
	}
	h := &Handler{
		mux:      http.NewServeMux(),
		hasToken: opts.Token != "",
		// Compared as hashes so that the comparison takes the same time
		// whatever the length of what a client sends.
		tokenHash: sha256.Sum256([]byte(opts.Token)),
		auth:      opts.Auth,
		whoami:    opts.Whoami,
		ready:     opts.ReadyTimeout,
		now:       opts.Now,
		log:       opts.Logger,
	}
	h.SetCatalog(opts.Catalog)
	metricsHandler := opts.Metrics
	if metricsHandler == nil {
		metricsHandler = http.NotFoundHandler()
	}

	h.mux.HandleFunc("GET /healthz", h.serveHealthz)
	h.mux.Handle("GET /readyz", h.basic(http.HandlerFunc(h.serveReadyz)))
	h.mux.Handle("GET /metrics", h.basic(metricsHandler))
	h.mux.Handle("GET /v1/sources", h.basic(http.HandlerFunc(h.serveSources)))
	h.mux.Handle("GET /v1/whoami", h.basic(http.HandlerFunc(h.serveWhoami)))
	// No method in the pattern: the token is checked before anything
	// else, the method included.
	h.mux.HandleFunc("/v1/credentials/", h.serveCredentials)
	if opts.IMDS {
		im, err := newIMDS(h)
		if err != nil {
			return nil, err
		}
		h.imds = im
		h.mux.Handle("/latest/", im)
	}
	// Anything else is behind Basic auth too, so that a client without
	// it learns nothing, not even which paths exist.
	h.mux.Handle("/", h.basic(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, http.StatusNotFound, apiError{Code: "NotFound", Message: "no such admin endpoint"})
	})))
	return h, nil
}

// SetCatalog replaces the sources, on a reload. Requests already running
// finish with the catalog they started with.
func (h *Handler) SetCatalog(c Catalog) {
	c.Sources = maps.Clone(c.Sources)
	req := slices.Clone(c.Required)
	slices.Sort(req)
	c.Required = slices.Compact(req)
	h.catalog.Store(&c)
}

// SetDraining makes /readyz answer 503 from now on, so that a load
// balancer stops sending work while signet drains before it exits.
func (h *Handler) SetDraining() { h.draining.Store(true) }

// ServeHTTP routes a request.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) { h.mux.ServeHTTP(w, r) }

// basic requires Authorization: Basic when Auth is configured.
func (h *Handler) basic(next http.Handler) http.Handler {
	if h.auth == nil {
		return next
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if user, pass, ok := r.BasicAuth(); ok && h.auth.Verify(user, pass) {
			next.ServeHTTP(w, r)
			return
		}
		h.log.Info("admin authentication failed", "remote", r.RemoteAddr, "method", r.Method, "path", r.URL.Path)
		w.Header().Set("WWW-Authenticate", `Basic realm="signet admin", charset="UTF-8"`)
		writeJSON(w, http.StatusUnauthorized, apiError{Code: "Unauthorized", Message: "this endpoint requires authentication"})
	})
}

func (h *Handler) serveHealthz(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	_, _ = w.Write([]byte("ok\n"))
}

// sourceReadiness is one line of the /readyz answer.
type sourceReadiness struct {
	Source string `json:"source"`
	Ready  bool   `json:"ready"`
	Reason string `json:"reason,omitempty"`
}

type readiness struct {
	Ready    bool              `json:"ready"`
	Draining bool              `json:"draining,omitempty"`
	Sources  []sourceReadiness `json:"sources"`
}

// serveReadyz is 200 only while every required source gives valid
// credentials: exactly when a request signed with it would be signed.
// Asking the source (rather than reading its State) is what makes a
// source past its mandatory point with a failing refresh not ready, and a
// deferred source that has never fetched do its first fetch.
func (h *Handler) serveReadyz(w http.ResponseWriter, r *http.Request) {
	cat := h.catalog.Load()
	ctx, cancel := context.WithTimeout(r.Context(), h.ready)
	defer cancel()
	out := readiness{Ready: true, Sources: make([]sourceReadiness, len(cat.Required))}
	var wg sync.WaitGroup
	for i, name := range cat.Required {
		out.Sources[i].Source = name
		src, ok := cat.Sources[name]
		if !ok {
			out.Sources[i].Reason = "no such source in the config"
			continue
		}
		wg.Go(func() {
			c, err := src.Credentials(ctx)
			switch {
			case err != nil:
				out.Sources[i].Reason = redact(err.Error())
			case !c.Valid(h.now()):
				out.Sources[i].Reason = "credentials expired"
			default:
				out.Sources[i].Ready = true
			}
		})
	}
	wg.Wait()
	for _, s := range out.Sources {
		out.Ready = out.Ready && s.Ready
	}
	if h.draining.Load() {
		out.Ready, out.Draining = false, true
	}
	status := http.StatusOK
	if !out.Ready {
		status = http.StatusServiceUnavailable
	}
	writeJSON(w, status, out)
}

// sourceInfo is one source in /v1/sources. It holds no secret.
type sourceInfo struct {
	Name             string     `json:"name"`
	Method           string     `json:"method"`
	Required         bool       `json:"required"`
	Identity         string     `json:"identity,omitempty"`
	AccessKeyID      string     `json:"access_key_id,omitempty"` // redacted
	Expires          *time.Time `json:"expires,omitempty"`
	ExpiresInSeconds *int64     `json:"expires_in_seconds,omitempty"`
	LastRefresh      *time.Time `json:"last_refresh,omitempty"`
	LastError        string     `json:"last_error,omitempty"`
	RefreshCount     int        `json:"refresh_count"`
}

func (h *Handler) serveSources(w http.ResponseWriter, _ *http.Request) {
	cat := h.catalog.Load()
	now := h.now()
	out := struct {
		Sources []sourceInfo `json:"sources"`
	}{Sources: []sourceInfo{}}
	for _, name := range slices.Sorted(maps.Keys(cat.Sources)) {
		st := cat.Sources[name].State()
		info := sourceInfo{
			Name:         name,
			Method:       st.Method,
			Required:     slices.Contains(cat.Required, name),
			Identity:     st.Identity,
			LastError:    redact(st.LastError),
			RefreshCount: st.RefreshCount,
		}
		if st.AccessKeyID != "" {
			// State holds it redacted already; redacting again keeps a
			// State from some other Source implementation honest.
			info.AccessKeyID = redactKeyID(st.AccessKeyID)
		}
		if !st.Expires.IsZero() {
			exp := st.Expires.UTC()
			in := int64(st.Expires.Sub(now) / time.Second)
			info.Expires, info.ExpiresInSeconds = &exp, &in
		}
		if !st.LastRefresh.IsZero() {
			lr := st.LastRefresh.UTC()
			info.LastRefresh = &lr
		}
		out.Sources = append(out.Sources, info)
	}
	writeJSON(w, http.StatusOK, out)
}

type whoamiAnswer struct {
	Source  string `json:"source"`
	Account string `json:"account"`
	ARN     string `json:"arn"`
	UserID  string `json:"user_id"`
}

func (h *Handler) serveWhoami(w http.ResponseWriter, r *http.Request) {
	cat := h.catalog.Load()
	name := r.URL.Query().Get("source")
	if name == "" {
		writeJSON(w, http.StatusBadRequest, apiError{Code: "MissingSource",
			Message: "add ?source=NAME, one of: " + strings.Join(slices.Sorted(maps.Keys(cat.Sources)), ", ")})
		return
	}
	src, ok := cat.Sources[name]
	if !ok {
		writeJSON(w, http.StatusNotFound, apiError{Code: "NoSuchSource",
			Message: fmt.Sprintf("no source named %q; the sources are: %s", name, strings.Join(slices.Sorted(maps.Keys(cat.Sources)), ", "))})
		return
	}
	c, err := src.Credentials(r.Context())
	if err != nil {
		writeJSON(w, http.StatusServiceUnavailable, apiError{Code: "CredentialsUnavailable", Message: redact(err.Error())})
		return
	}
	id, err := h.whoami(r.Context(), c)
	if err != nil {
		writeJSON(w, http.StatusBadGateway, apiError{Code: "WhoamiFailed", Message: redact(err.Error())})
		return
	}
	writeJSON(w, http.StatusOK, whoamiAnswer{Source: name, Account: id.Account, ARN: id.ARN, UserID: id.UserID})
}

// ecsCredentials is the container credentials format the AWS SDKs read
// from AWS_CONTAINER_CREDENTIALS_FULL_URI.
type ecsCredentials struct {
	AccessKeyID     string `json:"AccessKeyId"`
	SecretAccessKey string `json:"SecretAccessKey"`
	Token           string `json:"Token,omitempty"`
	// Expiration is left out for keys that never expire: the SDKs then
	// keep them.
	Expiration string `json:"Expiration,omitempty"`
	RoleArn    string `json:"RoleArn,omitempty"`
	AccountID  string `json:"AccountId,omitempty"`
}

// apiError is the error body of the admin API, in the shape the SDKs'
// endpoint credentials client reads ({"code", "message"}).
type apiError struct {
	Code    string `json:"code"`
	Message string `json:"message"`
}

// unauthorized is the whole answer to a credential request without the
// right token: nothing in it depends on the request.
var unauthorized = apiError{Code: "Unauthorized", Message: "missing or wrong authorization token"}

func (h *Handler) serveCredentials(w http.ResponseWriter, r *http.Request) {
	if !h.hasToken {
		writeJSON(w, http.StatusNotFound, apiError{Code: "NotFound", Message: "the credential endpoint is off"})
		return
	}
	presented := r.Header.Get("Authorization")
	sum := sha256.Sum256([]byte(presented))
	if subtle.ConstantTimeCompare(sum[:], h.tokenHash[:]) != 1 {
		reason := "wrong token"
		if presented == "" {
			reason = "no token"
		}
		h.log.Warn("credential request refused", "remote", r.RemoteAddr, "reason", reason)
		writeJSON(w, http.StatusUnauthorized, unauthorized)
		return
	}
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		writeJSON(w, http.StatusMethodNotAllowed, apiError{Code: "MethodNotAllowed", Message: "use GET"})
		return
	}
	name := strings.TrimPrefix(r.URL.Path, "/v1/credentials/")
	src, ok := h.catalog.Load().Sources[name]
	if !ok || name == "" || strings.Contains(name, "/") {
		writeJSON(w, http.StatusNotFound, apiError{Code: "NoSuchSource", Message: fmt.Sprintf("no source named %q", name)})
		return
	}
	c, err := src.Credentials(r.Context())
	if err != nil {
		h.log.Warn("credential request failed", "source", name, "remote", r.RemoteAddr, "error", redact(err.Error()))
		writeJSON(w, http.StatusServiceUnavailable, apiError{Code: "CredentialsUnavailable", Message: redact(err.Error())})
		return
	}
	out := ecsCredentials{
		AccessKeyID:     c.AccessKeyID,
		SecretAccessKey: c.SecretAccessKey,
		Token:           c.SessionToken,
		RoleArn:         c.Identity,
		AccountID:       accountOf(c.Identity),
	}
	if c.CanExpire() {
		out.Expiration = c.Expires.UTC().Format(time.RFC3339)
	}
	h.log.Info("credentials served", "endpoint", "container", "source", name, "remote", r.RemoteAddr, "credentials", c)
	w.Header().Set("Cache-Control", "no-store")
	writeJSON(w, http.StatusOK, out)
}

// accountOf takes the account ID from an ARN
// (arn:aws:sts::123456789012:assumed-role/r/s); "" when there is none.
func accountOf(arn string) string {
	parts := strings.SplitN(arn, ":", 6)
	if len(parts) != 6 || parts[0] != "arn" || len(parts[4]) != 12 || strings.Trim(parts[4], "0123456789") != "" {
		return ""
	}
	return parts[4]
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	body, err := json.Marshal(v)
	if err != nil {
		// Only our own types are marshalled; none can fail.
		http.Error(w, "internal error", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	_, _ = w.Write(append(body, '\n'))
}
