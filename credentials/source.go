package credentials

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"
)

// Defaults of the refresh windows, the same points botocore uses.
const (
	DefaultAdvisory  = 15 * time.Minute
	DefaultMandatory = 10 * time.Minute
	DefaultTimeout   = 30 * time.Second

	minBackoff = time.Second
	maxBackoff = 5 * time.Minute
)

// ErrUnavailable is wrapped by every error a Source returns when it has no
// valid credentials to give.
var ErrUnavailable = errors.New("credentials unavailable")

// ErrRefreshFailed wraps ErrUnavailable when the source did hold keys and
// could not replace them in time: a passing outage, worth a retry, unlike a
// source that never worked.
var ErrRefreshFailed = fmt.Errorf("refresh failed: %w", ErrUnavailable)

// Refresh modes.
const (
	// ModeDeferred refreshes when a request needs credentials.
	ModeDeferred = "deferred"
	// ModeEager refreshes on a timer before the advisory point, so that no
	// request waits for a refresh.
	ModeEager = "eager"
)

// SourceOptions configure NewSource. Zero values take the defaults.
type SourceOptions struct {
	// Method names the provider kind for State ("static", "chain", ...).
	Method string
	// Mode is ModeDeferred (default) or ModeEager; eager refreshing runs
	// from Start until Close.
	Mode string
	// Advisory is how long before expiry a refresh is first tried while the
	// current keys keep being served.
	Advisory time.Duration
	// Mandatory is how long before expiry requests stop being served the
	// current keys and wait for a refresh instead.
	Mandatory time.Duration
	// Timeout bounds one provider call.
	Timeout time.Duration
	Clock   Clock
	Logger  *slog.Logger
}

// Refreshing is the Source every provider is wrapped in. Reads are one
// atomic load and a time comparison; only when the keys reach a refresh
// window does anything lock.
type Refreshing struct {
	name     string
	provider Provider
	opts     SourceOptions

	cur atomic.Pointer[entry]

	// ctx is the owner of background refreshes: Close cancels it.
	ctx     context.Context
	cancel  context.CancelFunc
	closed  atomic.Bool
	started atomic.Bool

	mu          sync.Mutex
	inflight    *flight
	failures    int
	lastAttempt time.Time // start of the latest fetch
	nextAttempt time.Time // no background fetch before this (backoff)
	state       State
}

var _ Source = (*Refreshing)(nil)

// entry is a set of credentials with the points in time, fixed when the keys
// were fetched, at which they should be refreshed.
type entry struct {
	creds     Credentials
	advisory  time.Time // zero when the keys never expire
	mandatory time.Time
}

type flight struct {
	done  chan struct{}
	entry *entry
	err   error
}

// NewSource wraps p in a refreshing cache named name. It starts nothing:
// the first fetch happens when someone asks for credentials.
func NewSource(name string, p Provider, opts SourceOptions) *Refreshing {
	if opts.Advisory <= 0 {
		opts.Advisory = DefaultAdvisory
	}
	if opts.Mandatory <= 0 {
		opts.Mandatory = DefaultMandatory
	}
	if opts.Mandatory > opts.Advisory {
		opts.Mandatory = opts.Advisory
	}
	if opts.Timeout <= 0 {
		opts.Timeout = DefaultTimeout
	}
	if opts.Clock == nil {
		opts.Clock = SystemClock{}
	}
	if opts.Mode == "" {
		opts.Mode = ModeDeferred
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	ctx, cancel := context.WithCancel(context.Background())
	return &Refreshing{
		name:     name,
		provider: p,
		opts:     opts,
		ctx:      ctx,
		cancel:   cancel,
		state:    State{Name: name, Method: opts.Method},
	}
}

// Name returns the source's name from the config.
func (s *Refreshing) Name() string { return s.name }

// Close stops any refresh in flight and closes the provider when it holds
// something (an HSM session). It is safe to call more than once.
func (s *Refreshing) Close() error {
	if !s.closed.CompareAndSwap(false, true) {
		return nil
	}
	s.cancel()
	if c, ok := s.provider.(io.Closer); ok {
		if err := c.Close(); err != nil {
			return fmt.Errorf("source %s: close provider: %w", s.name, err)
		}
	}
	return nil
}

// Start begins eager refreshing (a no-op in deferred mode): a fetch now,
// then one before each advisory point, with backoff after a failure. It
// returns at once; Close stops it. Reads still check expiry themselves, so
// keys stay correct when a timer fires late (a laptop that slept).
func (s *Refreshing) Start() {
	if s.opts.Mode != ModeEager || s.closed.Load() || !s.started.CompareAndSwap(false, true) {
		return
	}
	go s.eager()
}

func (s *Refreshing) eager() {
	defer func() {
		if r := recover(); r != nil {
			s.opts.Logger.Error("eager refresh stopped by a panic", "source", s.name, "panic", r)
		}
	}()
	for {
		now := s.opts.Clock.Now()
		e := s.cur.Load()
		var wait time.Duration
		switch {
		case e == nil:
		case e.advisory.IsZero():
			return // keys that never expire need no refresh
		default:
			wait = e.advisory.Sub(now)
		}
		s.mu.Lock()
		f := s.inflight
		if backoff := s.nextAttempt.Sub(now); f == nil && backoff > wait {
			wait = backoff
		}
		if f == nil && wait <= 0 {
			f = s.startLocked()
		}
		s.mu.Unlock()
		if f == nil {
			// Sleep, then look again: meanwhile a request may have
			// refreshed, or failed and pushed the next attempt out.
			select {
			case <-s.ctx.Done():
				return
			case <-s.opts.Clock.After(wait):
			}
			continue
		}
		select {
		case <-s.ctx.Done():
			return
		case <-f.done:
		}
	}
}

// Credentials returns keys that are valid now.
//
// Before the advisory point the cached keys are returned at once. Between
// the advisory and the mandatory point they are still returned at once, and
// a refresh is started in the background if none is running and the backoff
// allows. From the mandatory point on (or with no keys at all) the caller
// waits for the refresh, as long as its own context allows; if the refresh
// fails it gets the error, never expired keys.
func (s *Refreshing) Credentials(ctx context.Context) (Credentials, error) {
	now := s.opts.Clock.Now()
	e := s.cur.Load()
	if e != nil && (e.advisory.IsZero() || now.Before(e.advisory)) {
		return e.creds, nil
	}
	if e != nil && now.Before(e.mandatory) {
		s.refreshInBackground(now)
		return e.creds, nil
	}
	return s.wait(ctx, now)
}

func (s *Refreshing) refreshInBackground(now time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.inflight == nil && !now.Before(s.nextAttempt) {
		s.startLocked()
	}
}

func (s *Refreshing) wait(ctx context.Context, now time.Time) (Credentials, error) {
	s.mu.Lock()
	// A fetch may have finished between the caller's look at the cache and
	// taking the lock; its keys must not be fetched a second time.
	if e := s.cur.Load(); e != nil && e.creds.Valid(now) && (e.mandatory.IsZero() || now.Before(e.mandatory)) {
		s.mu.Unlock()
		return e.creds, nil
	}
	unavailable := ErrUnavailable
	if s.cur.Load() != nil {
		unavailable = ErrRefreshFailed
	}
	f := s.inflight
	if f == nil {
		retryAt := s.nextAttempt
		if unavailable == ErrRefreshFailed {
			// Requests are waiting on keys that are past the mandatory
			// point: the provider may be back long before a backoff grown
			// during the outage ends, so try again after a second.
			if soon := s.lastAttempt.Add(minBackoff); soon.Before(retryAt) {
				retryAt = soon
			}
		}
		if now.Before(retryAt) {
			// A fetch failed moments ago: answer with its error rather
			// than hammer the provider once per request.
			err := fmt.Errorf("source %s: %w: last refresh failed, next attempt in %s: %s",
				s.name, unavailable, retryAt.Sub(now).Round(time.Millisecond), s.state.LastError)
			s.mu.Unlock()
			return Credentials{}, err
		}
		f = s.startLocked()
	}
	s.mu.Unlock()

	select {
	case <-f.done:
	case <-ctx.Done():
		return Credentials{}, fmt.Errorf("source %s: waiting for refresh: %w", s.name, context.Cause(ctx))
	}
	if f.err != nil {
		return Credentials{}, fmt.Errorf("source %s: %w: %w", s.name, unavailable, f.err)
	}
	if !f.entry.creds.Valid(s.opts.Clock.Now()) {
		// Valid when fetched, expired while this caller was waiting.
		return Credentials{}, fmt.Errorf("source %s: %w: the refreshed keys expired before they could be used (%s)",
			s.name, unavailable, f.entry.creds.Expires.UTC().Format(time.RFC3339))
	}
	return f.entry.creds, nil
}

// startLocked starts the one fetch of this source; s.mu must be held. The
// fetch runs under the source's own context, not the caller's, so that a
// caller that gives up does not cancel it for everyone else waiting.
func (s *Refreshing) startLocked() *flight {
	s.lastAttempt = s.opts.Clock.Now()
	f := &flight{done: make(chan struct{})}
	s.inflight = f
	go s.fetch(f)
	return f
}

func (s *Refreshing) fetch(f *flight) {
	defer func() {
		if r := recover(); r != nil {
			s.finish(f, nil, fmt.Errorf("provider panicked: %v", r))
		}
	}()
	ctx, cancel := context.WithTimeout(s.ctx, s.opts.Timeout)
	defer cancel()
	creds, err := s.provider.Retrieve(ctx)
	if err == nil && (creds.AccessKeyID == "" || creds.SecretAccessKey == "") {
		err = errors.New("provider returned an empty access key id or secret")
	}
	if err == nil && !creds.Valid(s.opts.Clock.Now()) {
		// A failure like any other, so that the backoff applies: stored,
		// such keys would send every request straight back to the
		// provider.
		err = fmt.Errorf("provider returned keys that are already expired (%s)", creds.Expires.UTC().Format(time.RFC3339))
	}
	if err != nil {
		s.finish(f, nil, err)
		return
	}
	s.finish(f, s.newEntry(creds), nil)
}

func (s *Refreshing) finish(f *flight, e *entry, err error) {
	now := s.opts.Clock.Now()
	s.mu.Lock()
	if e != nil {
		s.cur.Store(e)
		s.failures = 0
		s.nextAttempt = time.Time{}
		s.state.AccessKeyID = RedactKeyID(e.creds.AccessKeyID)
		s.state.Identity = e.creds.Identity
		s.state.Expires = e.creds.Expires
		s.state.LastRefresh = now
		s.state.LastError = ""
		s.state.RefreshCount++
	} else {
		s.failures++
		backoff := backoffFor(s.failures)
		s.nextAttempt = now.Add(backoff)
		s.state.LastError = err.Error()
	}
	s.inflight = nil
	f.entry, f.err = e, err
	close(f.done)
	failures := s.failures // read under the lock: the next fetch may be finishing already
	s.mu.Unlock()

	if err != nil {
		s.opts.Logger.Warn("credential refresh failed", "source", s.name, "error", err, "failures", failures)
		return
	}
	s.opts.Logger.Info("credentials refreshed", "source", s.name, "credentials", e.creds)
}

// newEntry fixes the refresh points of freshly fetched keys. Windows are
// scaled down for short-lived keys (advisory at most half the lifetime,
// mandatory at most a quarter) so that 15-minute credentials are not
// refetched on every request, and the advisory point is moved earlier by up
// to a tenth of the window so that many replicas do not refresh in step.
func (s *Refreshing) newEntry(c Credentials) *entry {
	e := &entry{creds: c}
	if !c.CanExpire() {
		return e
	}
	lifetime := c.Expires.Sub(s.opts.Clock.Now())
	advisory := min(s.opts.Advisory, lifetime/2)
	mandatory := min(s.opts.Mandatory, lifetime/4)
	if advisory < 0 {
		advisory, mandatory = 0, 0
	}
	if advisory > mandatory {
		advisory += rand.N(advisory-mandatory) / 10
	}
	e.advisory = c.Expires.Add(-advisory)
	e.mandatory = c.Expires.Add(-mandatory)
	return e
}

// backoffFor is exponential with full jitter in its upper half.
func backoffFor(failures int) time.Duration {
	d := minBackoff << min(failures-1, 20)
	if d > maxBackoff || d <= 0 {
		d = maxBackoff
	}
	return d/2 + rand.N(d/2+1)
}

// State reports the source's state. It never holds a secret.
func (s *Refreshing) State() State {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.state
}
