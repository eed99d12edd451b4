package credentials

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// fakeClock is a settable Clock; its timers fire when Add passes them.
type fakeClock struct {
	mu      sync.Mutex
	now     time.Time
	waiters []fakeTimer
}

type fakeTimer struct {
	at time.Time
	ch chan time.Time
}

func (c *fakeClock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.now }

func (c *fakeClock) After(d time.Duration) <-chan time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	ch := make(chan time.Time, 1)
	c.waiters = append(c.waiters, fakeTimer{c.now.Add(d), ch})
	return ch
}

func (c *fakeClock) Add(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	kept := c.waiters[:0]
	for _, w := range c.waiters {
		if !w.at.After(c.now) {
			w.ch <- c.now
		} else {
			kept = append(kept, w)
		}
	}
	c.waiters = kept
	c.mu.Unlock()
}

// timers reports how many timers are waiting.
func (c *fakeClock) timers() int { c.mu.Lock(); defer c.mu.Unlock(); return len(c.waiters) }

// countingProvider hands out keys that live for lifetime, numbered by call,
// optionally failing or blocking until released.
type countingProvider struct {
	clock    Clock
	lifetime time.Duration
	calls    atomic.Int32
	fail     atomic.Bool
	gate     chan struct{} // when non-nil, each call waits for a receive
}

func (p *countingProvider) Retrieve(ctx context.Context) (Credentials, error) {
	n := p.calls.Add(1)
	if p.gate != nil {
		select {
		case <-p.gate:
		case <-ctx.Done():
			return Credentials{}, ctx.Err()
		}
	}
	if p.fail.Load() {
		return Credentials{}, errors.New("provider down")
	}
	c := Credentials{AccessKeyID: fmt.Sprintf("ASIAKEY%08d", n), SecretAccessKey: "secret", SessionToken: "token"}
	if p.lifetime != 0 {
		c.Expires = p.clock.Now().Add(p.lifetime)
	}
	return c, nil
}

func newTestSource(p *countingProvider, clk *fakeClock) *Refreshing {
	s := NewSource("test", p, SourceOptions{Method: "test", Clock: clk})
	return s
}

func TestSourceWindows(t *testing.T) {
	start := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	tests := []struct {
		name     string
		lifetime time.Duration
		advance  time.Duration // after the first fetch
		wantCall int32         // provider calls after the second read settles
		wantNew  bool          // second read returns new keys (it had to wait)
	}{
		{"fresh keys are cached", time.Hour, 30 * time.Minute, 1, false},
		{"just before advisory", time.Hour, 44 * time.Minute, 1, false},
		{"inside advisory: old keys served, refresh in background", time.Hour, 47 * time.Minute, 2, false},
		{"past mandatory: caller waits for new keys", time.Hour, 51 * time.Minute, 2, true},
		{"expired: caller waits for new keys", time.Hour, 61 * time.Minute, 2, true},
		// 15-minute keys: advisory scales to at most 7m30s, mandatory to 3m45s.
		{"short-lived keys not refetched early", 15 * time.Minute, 6 * time.Minute, 1, false},
		{"short-lived keys past scaled mandatory", 15 * time.Minute, 12 * time.Minute, 2, true},
		{"keys that never expire are never refetched", 0, 1000 * time.Hour, 1, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			clk := &fakeClock{now: start}
			p := &countingProvider{clock: clk, lifetime: tc.lifetime}
			s := newTestSource(p, clk)
			defer s.Close()
			first, err := s.Credentials(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			clk.Add(tc.advance)
			second, err := s.Credentials(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			waitIdle(t, s)
			if got := p.calls.Load(); got != tc.wantCall {
				t.Errorf("provider calls = %d, want %d", got, tc.wantCall)
			}
			if gotNew := second.AccessKeyID != first.AccessKeyID; gotNew != tc.wantNew {
				t.Errorf("second read returned new keys = %v, want %v", gotNew, tc.wantNew)
			}
			if !second.Valid(clk.Now()) {
				t.Errorf("returned keys are not valid at now")
			}
		})
	}
}

// waitIdle waits for a background refresh to finish.
func waitIdle(t *testing.T, s *Refreshing) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		s.mu.Lock()
		idle := s.inflight == nil
		s.mu.Unlock()
		if idle {
			return
		}
		time.Sleep(time.Millisecond)
	}
	t.Fatal("refresh still in flight after 5s")
}

func TestSourceOneFetchForManyCallers(t *testing.T) {
	clk := &fakeClock{now: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
	p := &countingProvider{clock: clk, lifetime: time.Hour, gate: make(chan struct{})}
	s := newTestSource(p, clk)
	defer s.Close()

	const callers = 1000
	var wg sync.WaitGroup
	errs := make(chan error, callers)
	for range callers {
		wg.Go(func() {
			if _, err := s.Credentials(context.Background()); err != nil {
				errs <- err
			}
		})
	}
	// Let every caller pile up on the one fetch, then release it.
	deadline := time.Now().Add(5 * time.Second)
	for p.calls.Load() == 0 && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	close(p.gate)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	if got := p.calls.Load(); got != 1 {
		t.Fatalf("provider calls = %d, want exactly 1", got)
	}
}

func TestSourceFailureKeepsServingUntilMandatory(t *testing.T) {
	clk := &fakeClock{now: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
	p := &countingProvider{clock: clk, lifetime: time.Hour}
	s := newTestSource(p, clk)
	defer s.Close()
	good, err := s.Credentials(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	p.fail.Store(true)

	clk.Add(47 * time.Minute) // advisory window
	got, err := s.Credentials(context.Background())
	if err != nil || got.AccessKeyID != good.AccessKeyID {
		t.Fatalf("in advisory window with failing provider: got %v, %v; want the current keys", got, err)
	}
	waitIdle(t, s)
	st := s.State()
	if !strings.Contains(st.LastError, "provider down") {
		t.Fatalf("State.LastError = %q, want the provider's error", st.LastError)
	}

	// Within the backoff no new attempt is made, however many reads.
	calls := p.calls.Load()
	for range 10 {
		if _, err := s.Credentials(context.Background()); err != nil {
			t.Fatal(err)
		}
	}
	waitIdle(t, s)
	if p.calls.Load() != calls {
		t.Fatalf("provider called %d more times inside the backoff", p.calls.Load()-calls)
	}

	clk.Add(5 * time.Minute) // past mandatory, backoff over
	if _, err := s.Credentials(context.Background()); !errors.Is(err, ErrRefreshFailed) || !errors.Is(err, ErrUnavailable) {
		t.Fatalf("past mandatory with failing provider: err = %v, want ErrRefreshFailed", err)
	}

	p.fail.Store(false)
	clk.Add(10 * time.Minute) // expired, backoff long over
	got, err = s.Credentials(context.Background())
	if err != nil {
		t.Fatalf("after recovery: %v", err)
	}
	if got.AccessKeyID == good.AccessKeyID || !got.Valid(clk.Now()) {
		t.Fatalf("after recovery got %v, want new valid keys", got)
	}
	if st := s.State(); st.LastError != "" || st.RefreshCount != 2 {
		t.Fatalf("State after recovery = %+v", st)
	}
}

func TestSourceNeverReturnsExpiredKeys(t *testing.T) {
	clk := &fakeClock{now: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
	p := &countingProvider{clock: clk, lifetime: -time.Minute} // provider hands out stale keys
	s := newTestSource(p, clk)
	defer s.Close()
	for range 5 {
		if _, err := s.Credentials(context.Background()); !errors.Is(err, ErrUnavailable) {
			t.Fatalf("err = %v, want ErrUnavailable for already-expired keys", err)
		}
	}
	// Expired keys are a failed refresh: the backoff holds the requests
	// that follow instead of sending each one to the provider.
	if n := p.calls.Load(); n != 1 {
		t.Fatalf("provider called %d times for 5 requests, want 1", n)
	}
	if st := s.State(); st.LastError == "" || st.RefreshCount != 0 {
		t.Fatalf("State = %+v, want a failed refresh", st)
	}
}

func TestSourceCallerContextBoundsWait(t *testing.T) {
	clk := &fakeClock{now: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
	p := &countingProvider{clock: clk, lifetime: time.Hour, gate: make(chan struct{})}
	s := newTestSource(p, clk)
	defer s.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	if _, err := s.Credentials(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("err = %v, want the caller's deadline", err)
	}
	// The fetch itself goes on for the next caller.
	close(p.gate)
	if _, err := s.Credentials(context.Background()); err != nil {
		t.Fatal(err)
	}
	if got := p.calls.Load(); got != 1 {
		t.Fatalf("provider calls = %d, want 1 (the abandoned wait must not start another)", got)
	}
}

func TestCredentialsNeverPrintSecrets(t *testing.T) {
	c := Credentials{AccessKeyID: "ASIAEXAMPLEKEY123456", SecretAccessKey: "wJalrXUtnFEMI/K7MDENG/bPxRfiCYzEXAMPLEKEY", SessionToken: "FwoGZXIvYXdzEXAMPLETOKEN"}
	for _, verb := range []string{"%v", "%+v", "%#v", "%s", "%q"} {
		out := fmt.Sprintf(verb, c)
		if strings.Contains(out, c.SecretAccessKey) || strings.Contains(out, c.SessionToken) || strings.Contains(out, c.AccessKeyID) {
			t.Errorf("%s printed a secret: %s", verb, out)
		}
	}
	out := fmt.Sprintf("%v", c.LogValue())
	if strings.Contains(out, c.SecretAccessKey) || strings.Contains(out, c.SessionToken) {
		t.Errorf("LogValue printed a secret: %s", out)
	}
}

func TestStaticRequiresKeys(t *testing.T) {
	if _, err := NewStatic("", "x", ""); err == nil {
		t.Fatal("want an error for a missing access key id")
	}
	s, err := NewStatic("AK", "SK", "")
	if err != nil {
		t.Fatal(err)
	}
	c, err := s.Retrieve(context.Background())
	if err != nil || c.AccessKeyID != "AK" || c.CanExpire() {
		t.Fatalf("Retrieve = %v, %v", c, err)
	}
}

// waitFor polls cond for up to 5 s.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}

func TestEagerRefreshesBeforeAdvisory(t *testing.T) {
	clk := &fakeClock{now: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
	p := &countingProvider{clock: clk, lifetime: time.Hour}
	s := NewSource("eager", p, SourceOptions{Mode: ModeEager, Clock: clk})
	defer s.Close()
	s.Start()
	// The first fetch happens at Start, before anyone asks.
	waitFor(t, "the first eager fetch", func() bool { return p.calls.Load() == 1 && clk.timers() == 1 })
	first, err := s.Credentials(context.Background())
	if err != nil || p.calls.Load() != 1 {
		t.Fatalf("read after eager fetch: %v, calls %d", err, p.calls.Load())
	}
	// Just past the (jittered) advisory point the timer fires and
	// refreshes; the read finds new keys without waiting.
	clk.Add(46 * time.Minute)
	waitFor(t, "the timed refresh", func() bool { return p.calls.Load() == 2 && clk.timers() == 1 })
	got, err := s.Credentials(context.Background())
	if err != nil || got.AccessKeyID == first.AccessKeyID {
		t.Fatalf("after timed refresh got %v, %v; want new keys", got, err)
	}
}

func TestEagerBacksOffAfterFailure(t *testing.T) {
	clk := &fakeClock{now: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
	p := &countingProvider{clock: clk, lifetime: time.Hour}
	p.fail.Store(true)
	s := NewSource("eager", p, SourceOptions{Mode: ModeEager, Clock: clk})
	defer s.Close()
	s.Start()
	waitFor(t, "the first attempt", func() bool { return p.calls.Load() == 1 && clk.timers() == 1 })
	// The retry waits for the backoff (at least half of one second), not
	// for the next request.
	clk.Add(400 * time.Millisecond)
	time.Sleep(20 * time.Millisecond)
	if p.calls.Load() != 1 {
		t.Fatalf("retried inside the backoff: %d calls", p.calls.Load())
	}
	p.fail.Store(false)
	clk.Add(2 * time.Second)
	waitFor(t, "the retry", func() bool { return p.calls.Load() == 2 })
	waitFor(t, "keys after the retry", func() bool { return s.State().RefreshCount == 1 })
}

func TestEagerStopsOnClose(t *testing.T) {
	clk := &fakeClock{now: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
	p := &countingProvider{clock: clk, lifetime: time.Hour}
	s := NewSource("eager", p, SourceOptions{Mode: ModeEager, Clock: clk})
	s.Start()
	waitFor(t, "the first fetch", func() bool { return clk.timers() == 1 })
	_ = s.Close()
	clk.Add(2 * time.Hour)
	time.Sleep(20 * time.Millisecond)
	if got := p.calls.Load(); got != 1 {
		t.Fatalf("provider called %d times after Close", got)
	}
}

// Past the mandatory point, a provider that is back is tried within a
// second, however long the backoff grew during the outage.
func TestRecoveryPastMandatoryIgnoresLongBackoff(t *testing.T) {
	clk := &fakeClock{now: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
	p := &countingProvider{clock: clk, lifetime: time.Hour}
	s := newTestSource(p, clk)
	defer s.Close()
	if _, err := s.Credentials(context.Background()); err != nil {
		t.Fatal(err)
	}
	p.fail.Store(true)
	start := clk.Now()
	clk.Add(46 * time.Minute)
	for range 7 { // failures in the advisory window grow the backoff
		_, _ = s.Credentials(context.Background())
		waitIdle(t, s)
		s.mu.Lock()
		next := s.nextAttempt
		s.mu.Unlock()
		clk.Add(next.Sub(clk.Now()) + time.Millisecond)
	}
	_, _ = s.Credentials(context.Background())
	waitIdle(t, s)
	s.mu.Lock()
	backoff := s.nextAttempt.Sub(clk.Now())
	s.mu.Unlock()
	if backoff < 30*time.Second || !clk.Now().Before(start.Add(50*time.Minute)) {
		t.Fatalf("backoff %s at %s: the test needs a long one inside the advisory window", backoff, clk.Now().Sub(start))
	}
	// One more failure just before the mandatory point, so that the
	// backoff reaches well past it.
	clk.Add(start.Add(50*time.Minute - time.Second).Sub(clk.Now()))
	_, _ = s.Credentials(context.Background())
	waitIdle(t, s)
	clk.Add(2 * time.Second) // past mandatory, deep inside the backoff
	s.mu.Lock()
	inBackoff := clk.Now().Before(s.nextAttempt)
	s.mu.Unlock()
	if !inBackoff {
		t.Fatal("the test needs the clock inside the backoff")
	}
	p.fail.Store(false)
	if _, err := s.Credentials(context.Background()); err != nil {
		t.Fatalf("provider is back, keys still valid, backoff %s: %v", backoff, err)
	}
}

// In eager mode a timer that fires while a request's refresh is in flight
// joins it, and after a failure waits for the backoff: one provider call
// per attempt, never two.
func TestEagerTimerJoinsRequestRefresh(t *testing.T) {
	clk := &fakeClock{now: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
	p := &countingProvider{clock: clk, lifetime: time.Hour}
	s := NewSource("eager", p, SourceOptions{Mode: ModeEager, Clock: clk})
	defer s.Close()
	s.Start()
	waitFor(t, "the first fetch", func() bool { return p.calls.Load() == 1 && clk.timers() == 1 })
	p.gate = make(chan struct{})
	p.fail.Store(true)
	// The advisory point is between 44m30s and 45m. A request at 44m10s is
	// before it (no refresh); then the clock jumps past it and the request
	// path and the timer both want a refresh at once.
	clk.Add(44*time.Minute + 10*time.Second)
	clk.mu.Lock()
	clk.now = clk.now.Add(time.Minute) // move time without firing timers yet
	clk.mu.Unlock()
	if _, err := s.Credentials(context.Background()); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the request's refresh", func() bool { return p.calls.Load() == 2 })
	clk.Add(0) // now the eager timer fires, during the flight
	time.Sleep(20 * time.Millisecond)
	p.gate <- struct{}{}
	waitIdle(t, s)
	waitFor(t, "the eager loop to sleep on the backoff", func() bool { return clk.timers() == 1 })
	time.Sleep(20 * time.Millisecond)
	if got := p.calls.Load(); got != 2 {
		t.Fatalf("provider calls = %d, want 2: the timer must join the flight and then back off", got)
	}
	close(p.gate)
}

// closingProvider counts Close calls.
type closingProvider struct {
	countingProvider
	closes atomic.Int32
}

func (p *closingProvider) Close() error { p.closes.Add(1); return nil }

// A source owns its provider: closing the source releases what the
// provider holds (an HSM session), once.
func TestSourceClosesItsProvider(t *testing.T) {
	p := &closingProvider{}
	s := NewSource("hsm", p, SourceOptions{})
	_ = s.Close()
	_ = s.Close()
	if got := p.closes.Load(); got != 1 {
		t.Fatalf("provider closed %d times, want 1", got)
	}
}
