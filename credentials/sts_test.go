package credentials

import (
	"context"
	"errors"
	"fmt"
	"os"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sts"

	"github.com/signet-proxy/signet/internal/ststest"
)

const (
	testRole   = "arn:aws:iam::123456789012:role/Admin"
	testRole2  = "arn:aws:iam::444455556666:role/Audit"
	testSerial = "arn:aws:iam::111122223333:mfa/alice"
	baseKey    = "AKIABASEEXAMPLE00001"
	baseSecret = "base-secret-example-key"
	baseUser   = "arn:aws:iam::111122223333:user/alice"
)

// newFake starts a fake STS that knows the base user and the test roles,
// and keeps the SDK away from this machine's AWS setup and proxies.
func newFake(t *testing.T) *ststest.Server {
	t.Helper()
	isolateAWSEnv(t)
	t.Setenv("HTTPS_PROXY", "http://127.0.0.1:1") // signet itself: must not be used
	t.Setenv("HTTP_PROXY", "http://127.0.0.1:1")
	f := ststest.New(t, ststest.Options{})
	f.AddUser(baseKey, baseSecret, baseUser)
	f.AddRole(ststest.Role{ARN: testRole, MaxSessionDuration: 12 * time.Hour})
	f.AddRole(ststest.Role{ARN: testRole2, MaxSessionDuration: 12 * time.Hour})
	return f
}

func staticBase(t *testing.T, key, secret string) func(context.Context) (Credentials, error) {
	t.Helper()
	p, err := NewStatic(key, secret, "")
	if err != nil {
		t.Fatal(err)
	}
	return NewSource("base", p, SourceOptions{}).Credentials
}

func newTestSTS(t *testing.T, f *ststest.Server, opts STSOptions) *STS {
	t.Helper()
	if opts.RoleARN == "" && opts.Profile == "" {
		opts.RoleARN = testRole
	}
	if opts.Endpoint == "" {
		opts.Endpoint = f.URL()
	}
	opts.RootCAs = f.RootCAs()
	if opts.Region == "" && opts.Profile == "" {
		opts.Region = f.Region()
	}
	p, err := NewSTS(context.Background(), opts)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// counterScript prints a new code on every run.
func counterScript(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	return script(t, `n=$(/bin/cat `+dir+`/n 2>/dev/null || echo 100000); n=$((n+1)); echo $n > `+dir+`/n; echo "code $n"`)
}

func TestSTSAssumeRole(t *testing.T) {
	f := newFake(t)
	p := newTestSTS(t, f, STSOptions{
		Base:              staticBase(t, baseKey, baseSecret),
		Duration:          2 * time.Hour,
		ExternalID:        "ext-1",
		Policy:            `{"Version":"2012-10-17","Statement":[]}`,
		PolicyARNs:        []string{"arn:aws:iam::aws:policy/ReadOnlyAccess"},
		Tags:              map[string]string{"team": "platform", "cost": "42"},
		TransitiveTagKeys: []string{"team"},
		SourceIdentity:    "alice",
	})
	before := time.Now()
	c, err := p.Retrieve(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(c.AccessKeyID, "ASIA") || c.SecretAccessKey == "" || c.SessionToken == "" || c.Origin != "sts:"+testRole {
		t.Errorf("credentials = %v, origin %q", c, c.Origin)
	}
	if d := c.Expires.Sub(before); d < 2*time.Hour-time.Minute || d > 2*time.Hour+time.Minute {
		t.Errorf("expires in %s, want 2h", d)
	}
	call, _ := f.LastCall()
	want := ststest.Call{
		Action: "AssumeRole", AccessKeyID: baseKey, RoleARN: testRole, RoleSessionName: "signet", DurationSeconds: 7200,
		ExternalID: "ext-1", Policy: `{"Version":"2012-10-17","Statement":[]}`, PolicyARNs: []string{"arn:aws:iam::aws:policy/ReadOnlyAccess"},
		Tags: map[string]string{"team": "platform", "cost": "42"}, TransitiveTags: []string{"team"}, SourceIdentity: "alice",
	}
	if !reflect.DeepEqual(call, want) {
		t.Errorf("call = %+v\nwant   %+v", call, want)
	}
	// Every Retrieve is one call with fresh keys.
	c2, err := p.Retrieve(context.Background())
	if err != nil || c2.AccessKeyID == c.AccessKeyID || f.CallCount() != 2 {
		t.Errorf("second Retrieve: %v, %v, calls %d", c2, err, f.CallCount())
	}
	// The keys work: the fake knows them as the assumed role.
	if arn, ok := f.IdentityOf(c.AccessKeyID); !ok || arn != "arn:aws:sts::123456789012:assumed-role/Admin/signet" {
		t.Errorf("identity = %q, %v", arn, ok)
	}
}

func TestSTSLifetimeFromFake(t *testing.T) {
	f := newFake(t)
	f.SetLifetime(15 * time.Minute)
	p := newTestSTS(t, f, STSOptions{Base: staticBase(t, baseKey, baseSecret)})
	c, err := p.Retrieve(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if d := time.Until(c.Expires); d > 15*time.Minute || d < 14*time.Minute {
		t.Errorf("expires in %s, want 15m", d)
	}
}

func TestSTSMFA(t *testing.T) {
	f := newFake(t)
	f.AddRole(ststest.Role{ARN: testRole, RequireMFA: true, MFASerial: testSerial})
	base := staticBase(t, baseKey, baseSecret)

	t.Run("fresh code each refresh", func(t *testing.T) {
		m, err := NewMFACommand([]string{counterScript(t)}, MFAOptions{})
		if err != nil {
			t.Fatal(err)
		}
		p := newTestSTS(t, f, STSOptions{Base: base, SerialNumber: testSerial, MFA: m})
		for i := range 2 {
			if _, err := p.Retrieve(context.Background()); err != nil {
				t.Fatalf("refresh %d: %v", i, err)
			}
			call, _ := f.LastCall()
			if call.SerialNumber != testSerial || call.TokenCode != fmt.Sprint(100001+i) {
				t.Errorf("refresh %d: serial %q code %q", i, call.SerialNumber, call.TokenCode)
			}
		}
	})
	t.Run("reused code is refused", func(t *testing.T) {
		m, err := NewMFACommand([]string{script(t, "echo 777777")}, MFAOptions{})
		if err != nil {
			t.Fatal(err)
		}
		p := newTestSTS(t, f, STSOptions{Base: base, SerialNumber: testSerial, MFA: m})
		if _, err := p.Retrieve(context.Background()); err != nil {
			t.Fatal(err)
		}
		_, err = p.Retrieve(context.Background())
		var se *STSError
		if !errors.As(err, &se) || se.Code != "AccessDenied" {
			t.Fatalf("err = %v, want an AccessDenied STSError", err)
		}
		for _, s := range []string{testRole, "MultiFactorAuthentication failed with invalid MFA one time pass code", "already used"} {
			if !strings.Contains(err.Error(), s) {
				t.Errorf("error %q does not contain %q", err, s)
			}
		}
		if strings.Contains(err.Error(), "777777") {
			t.Errorf("error leaks the code: %v", err)
		}
	})
	t.Run("no MFA", func(t *testing.T) {
		p := newTestSTS(t, f, STSOptions{Base: base})
		_, err := p.Retrieve(context.Background())
		if err == nil || !strings.Contains(err.Error(), "AccessDenied: User: "+baseUser+" is not authorized to perform: sts:AssumeRole on resource: "+testRole) ||
			!strings.Contains(err.Error(), "trust policy") {
			t.Fatalf("err = %v", err)
		}
	})
	t.Run("wrong serial", func(t *testing.T) {
		m, _ := NewMFACommand([]string{counterScript(t)}, MFAOptions{})
		p := newTestSTS(t, f, STSOptions{Base: base, SerialNumber: "arn:aws:iam::111122223333:mfa/bob", MFA: m})
		_, err := p.Retrieve(context.Background())
		if err == nil || !strings.Contains(err.Error(), "unable to validate MFA code") || !strings.Contains(err.Error(), "check serial_number") {
			t.Fatalf("err = %v", err)
		}
	})
	t.Run("command fails", func(t *testing.T) {
		m, _ := NewMFACommand([]string{script(t, "echo 'no yubikey' >&2; exit 2")}, MFAOptions{})
		p := newTestSTS(t, f, STSOptions{Base: base, SerialNumber: testSerial, MFA: m})
		n := f.CallCount()
		_, err := p.Retrieve(context.Background())
		if err == nil || !strings.Contains(err.Error(), testRole) || !strings.Contains(err.Error(), "no yubikey") || f.CallCount() != n {
			t.Fatalf("err = %v, calls %d → %d", err, n, f.CallCount())
		}
	})
	t.Run("static token code", func(t *testing.T) {
		p := newTestSTS(t, f, STSOptions{Base: base, SerialNumber: testSerial, TokenCode: "135790"})
		if _, err := p.Retrieve(context.Background()); err != nil {
			t.Fatal(err)
		}
	})
}

func TestSTSFailures(t *testing.T) {
	tests := []struct {
		name    string
		setup   func(*ststest.Server)
		opts    func(*testing.T) STSOptions
		timeout time.Duration
		errHas  []string
		calls   int // AssumeRole calls the fake saw; 0: don't check
	}{
		{name: "internal error, retried once", setup: func(f *ststest.Server) { f.FailAlways(ststest.FailInternal) },
			errHas: []string{"InternalFailure", "STS failed; signet retries"}, calls: 2},
		{name: "throttled, retried once", setup: func(f *ststest.Server) { f.FailAlways(ststest.FailThrottle) },
			errHas: []string{"Throttling: Rate exceeded", "STS is throttling"}, calls: 2},
		{name: "one throttle then success", setup: func(f *ststest.Server) { f.FailNext(ststest.FailThrottle, 1) }, calls: 2},
		{name: "hang", setup: func(f *ststest.Server) { f.FailAlways(ststest.FailHang) }, timeout: 300 * time.Millisecond,
			errHas: []string{"no answer from", "in time"}, calls: 1},
		{name: "malformed XML", setup: func(f *ststest.Server) { f.FailAlways(ststest.FailMalformed) },
			errHas: []string{"is not STS's XML", "check the endpoint"}},
		{name: "already expired", setup: func(f *ststest.Server) { f.FailAlways(ststest.FailExpired) },
			errHas: []string{"sent credentials that expired", "clock"}, calls: 1},
		{name: "unknown role", opts: func(t *testing.T) STSOptions {
			return STSOptions{RoleARN: "arn:aws:iam::123456789012:role/Nope", Base: staticBase(t, baseKey, baseSecret)}
		}, errHas: []string{"role/Nope: AccessDenied", "is not authorized", "request id"}},
		{name: "wrong secret", opts: func(t *testing.T) STSOptions { return STSOptions{Base: staticBase(t, baseKey, "wrong")} },
			errHas: []string{"SignatureDoesNotMatch", "secret key"}, calls: -1},
		{name: "unknown key", opts: func(t *testing.T) STSOptions { return STSOptions{Base: staticBase(t, "AKIAUNKNOWN000000000", "x")} },
			errHas: []string{"InvalidClientTokenId", "not valid"}, calls: -1},
		{name: "duration over the role's maximum", setup: func(f *ststest.Server) { f.AddRole(ststest.Role{ARN: testRole}) },
			opts: func(t *testing.T) STSOptions {
				return STSOptions{Base: staticBase(t, baseKey, baseSecret), Duration: 2 * time.Hour}
			},
			errHas: []string{"ValidationError", "MaxSessionDuration", "check duration"}},
		{name: "base source fails", opts: func(t *testing.T) STSOptions {
			return STSOptions{Base: func(context.Context) (Credentials, error) { return Credentials{}, errors.New("base is down") }}
		}, errHas: []string{"base is down"}, calls: -1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFake(t)
			if tt.setup != nil {
				tt.setup(f)
			}
			opts := STSOptions{Base: staticBase(t, baseKey, baseSecret)}
			if tt.opts != nil {
				opts = tt.opts(t)
			}
			p := newTestSTS(t, f, opts)
			ctx := context.Background()
			if tt.timeout > 0 {
				var cancel context.CancelFunc
				ctx, cancel = context.WithTimeout(ctx, tt.timeout)
				defer cancel()
			}
			c, err := p.Retrieve(ctx)
			switch {
			case tt.calls == -1:
				if n := f.CallCount(); n != 0 {
					t.Errorf("fake recorded %d calls, want none with a bad signature", n)
				}
			case tt.calls > 0:
				if n := f.CallCount(); n != tt.calls {
					t.Errorf("fake saw %d calls, want %d", n, tt.calls)
				}
			}
			if len(tt.errHas) == 0 {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if err == nil {
				t.Fatalf("Retrieve = %v, want an error", c)
			}
			for _, s := range append([]string{"sts: assume role " + opts.RoleARN}, tt.errHas...) {
				if !strings.Contains(err.Error(), s) {
					t.Errorf("error %q does not contain %q", err, s)
				}
			}
			if strings.Contains(err.Error(), baseSecret) || strings.Contains(err.Error(), "<SecretAccessKey>") {
				t.Errorf("error leaks a secret: %v", err)
			}
		})
	}
}

func TestSTSRoleChaining(t *testing.T) {
	f := newFake(t)
	first := newTestSTS(t, f, STSOptions{Base: staticBase(t, baseKey, baseSecret)})
	firstSource := NewSource("admin", first, SourceOptions{Method: "sts"})
	defer firstSource.Close()
	second := newTestSTS(t, f, STSOptions{RoleARN: testRole2, Base: firstSource.Credentials, RoleSessionName: "audit"})
	c, err := second.Retrieve(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	calls := f.Calls()
	if len(calls) != 2 || calls[0].RoleARN != testRole || calls[1].RoleARN != testRole2 {
		t.Fatalf("calls = %+v", calls)
	}
	// The first role's session signed the second call.
	signer, _ := f.IdentityOf(calls[1].AccessKeyID)
	if signer != "arn:aws:sts::123456789012:assumed-role/Admin/signet" {
		t.Errorf("second call signed by %q", signer)
	}
	if me, _ := f.IdentityOf(c.AccessKeyID); me != "arn:aws:sts::444455556666:assumed-role/Audit/audit" {
		t.Errorf("chained keys belong to %q", me)
	}
	// STS refuses chained sessions longer than an hour.
	long := newTestSTS(t, f, STSOptions{RoleARN: testRole2, Base: firstSource.Credentials, Duration: 2 * time.Hour})
	if _, err := long.Retrieve(context.Background()); err == nil || !strings.Contains(err.Error(), "1 hour session limit") {
		t.Errorf("err = %v", err)
	}
}

func TestSTSDefaultChainAndProfile(t *testing.T) {
	f := newFake(t)
	f.AddUser("AKIADEFAULTEXAMPLE", "default-secret", "arn:aws:iam::111122223333:user/default")
	f.AddUser("AKIADEVEXAMPLE0001", "dev-secret", "arn:aws:iam::111122223333:user/dev")
	f.AddRole(ststest.Role{ARN: testRole, RequireMFA: true, MFASerial: testSerial, ExternalID: "ext-42", MaxSessionDuration: time.Hour})

	t.Run("default chain", func(t *testing.T) {
		f.AddRole(ststest.Role{ARN: testRole2})
		p := newTestSTS(t, f, STSOptions{RoleARN: testRole2})
		if _, err := p.Retrieve(context.Background()); err != nil {
			t.Fatal(err)
		}
		if call, _ := f.LastCall(); call.AccessKeyID != "AKIADEFAULTEXAMPLE" {
			t.Errorf("signed by %s, want the default profile's key", call.AccessKeyID)
		}
	})
	t.Run("profile", func(t *testing.T) {
		cfgFile := os.Getenv("AWS_CONFIG_FILE")
		prof := "[profile dev]\nregion = eu-west-1\n\n[profile admin]\nrole_arn = " + testRole + "\nsource_profile = dev\n" +
			"mfa_serial = " + testSerial + "\nduration_seconds = 1800\nexternal_id = ext-42\nrole_session_name = alice\n" +
			"region = " + f.Region() + "\noutput = json\ncli_pager =\nsso_start_url = https://x.awsapps.com/start\ns3 =\n  addressing_style = path\n"
		if err := os.WriteFile(cfgFile, []byte(prof), 0o600); err != nil {
			t.Fatal(err)
		}
		m, _ := NewMFACommand([]string{counterScript(t)}, MFAOptions{})
		p := newTestSTS(t, f, STSOptions{Profile: "admin", MFA: m})
		if _, err := p.Retrieve(context.Background()); err != nil {
			t.Fatal(err)
		}
		call, _ := f.LastCall()
		if call.AccessKeyID != "AKIADEVEXAMPLE0001" || call.RoleARN != testRole || call.RoleSessionName != "alice" ||
			call.DurationSeconds != 1800 || call.ExternalID != "ext-42" || call.SerialNumber != testSerial {
			t.Errorf("call = %+v", call)
		}
		// Options win over the profile.
		p = newTestSTS(t, f, STSOptions{Profile: "admin", MFA: m, RoleSessionName: "override"})
		if _, err := p.Retrieve(context.Background()); err != nil {
			t.Fatal(err)
		}
		if call, _ := f.LastCall(); call.RoleSessionName != "override" {
			t.Errorf("session name = %q", call.RoleSessionName)
		}
	})
	t.Run("profile errors", func(t *testing.T) {
		cfgFile := os.Getenv("AWS_CONFIG_FILE")
		body := "[profile nomfa]\nrole_arn = " + testRole + "\nmfa_serial = " + testSerial + "\n[profile self]\nrole_arn = " + testRole + "\nsource_profile = self\n[profile norole]\nregion = us-east-1\n"
		if err := os.WriteFile(cfgFile, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
		for name, want := range map[string]string{
			"missing": "profile missing not found",
			"nomfa":   "needs an mfa command",
			"self":    "names the profile itself",
			"norole":  "has no role_arn",
		} {
			_, err := NewSTS(context.Background(), STSOptions{Profile: name})
			if err == nil || !strings.Contains(err.Error(), want) {
				t.Errorf("profile %s: err = %v, want %q", name, err, want)
			}
		}
	})
}

// TestFakeGetCallerIdentity checks the fake's whoami with keys it minted,
// signed with the minted secret and session token.
func TestFakeGetCallerIdentity(t *testing.T) {
	f := newFake(t)
	p := newTestSTS(t, f, STSOptions{Base: staticBase(t, baseKey, baseSecret)})
	c, err := p.Retrieve(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	client := sts.New(sts.Options{
		Region:       f.Region(),
		BaseEndpoint: aws.String(f.URL()),
		HTTPClient:   stsHTTPClient(f.RootCAs()),
		Credentials:  baseProvider(func(context.Context) (Credentials, error) { return c, nil }),
	})
	out, err := client.GetCallerIdentity(context.Background(), &sts.GetCallerIdentityInput{})
	if err != nil {
		t.Fatal(err)
	}
	if aws.ToString(out.Arn) != "arn:aws:sts::123456789012:assumed-role/Admin/signet" || aws.ToString(out.Account) != "123456789012" {
		t.Errorf("identity = %s %s", aws.ToString(out.Arn), aws.ToString(out.Account))
	}
	// A wrong session token is refused.
	bad := c
	bad.SessionToken = "forged"
	client = sts.New(sts.Options{
		Region: f.Region(), BaseEndpoint: aws.String(f.URL()), HTTPClient: stsHTTPClient(f.RootCAs()),
		Credentials: baseProvider(func(context.Context) (Credentials, error) { return bad, nil }),
	})
	if _, err := client.GetCallerIdentity(context.Background(), &sts.GetCallerIdentityInput{}); err == nil || !strings.Contains(err.Error(), "InvalidClientTokenId") {
		t.Errorf("forged token: err = %v", err)
	}
}
