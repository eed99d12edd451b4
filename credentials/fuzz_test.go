package credentials

import (
	"bytes"
	"context"
	"encoding/json"
	"encoding/xml"
	"errors"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws/ratelimit"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	"github.com/aws/aws-sdk-go-v2/service/sts"
)

// Seeds here are the ones worth reading; the committed corpora under
// testdata/fuzz/ hold more (valid, edge and malformed answers).

// fuzzNow is the clock of the answer parsers: answers expire after it or
// are refused.
var fuzzNow = time.Date(2026, 11, 28, 11, 0, 0, 0, time.UTC)

// fixedClock is a Clock that stays at one instant.
type fixedClock time.Time

func (c fixedClock) Now() time.Time                       { return time.Time(c) }
func (fixedClock) After(d time.Duration) <-chan time.Time { return time.After(d) }

var (
	longDigits = regexp.MustCompile(`[0-9]{4,}`)
	secretish  = regexp.MustCompile(`[A-Za-z0-9/+=_-]{20,}`)
)

// lastStandaloneCode is the MFA rule written without a regexp, as the
// oracle: the last maximal run of ASCII word bytes ([0-9A-Za-z_]) that is
// exactly six digits.
func lastStandaloneCode(s string) string {
	isWord := func(c byte) bool {
		return c >= '0' && c <= '9' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c == '_'
	}
	code := ""
	for i := 0; i < len(s); {
		if !isWord(s[i]) {
			i++
			continue
		}
		j := i
		for j < len(s) && isWord(s[j]) {
			j++
		}
		if j-i == 6 && strings.Trim(s[i:j], "0123456789") == "" {
			code = s[i:j]
		}
		i = j
	}
	return code
}

// FuzzParseMFAOutput: the code is the oracle's (six ASCII digits, the last
// standalone ones), and an error holds nothing of stdout and, of stderr,
// no run of four digits or twenty key-like characters: both may hold a
// code or a secret.
func FuzzParseMFAOutput(f *testing.F) {
	f.Add("123456\n", "")
	f.Add("code: 111111\nnext: 222222 expires 1234567\n", "")
	f.Add("abc123456 _123456 1234567 é654321", "")
	f.Add("", "device not found; last code 987654 key AKIAIOSFODNN7EXAMPLEKEY")
	f.Add("no code", strings.Repeat("word ", 100))
	f.Fuzz(func(t *testing.T, stdout, stderr string) {
		code, err := parseMFAOutput(stdout, stderr)
		want := lastStandaloneCode(stdout)
		if err == nil {
			if code != want || len(code) != 6 || strings.Trim(code, "0123456789") != "" {
				t.Fatalf("parseMFAOutput(%q) = %q, want %q", stdout, code, want)
			}
			return
		}
		if code != "" || want != "" {
			t.Fatalf("parseMFAOutput(%q) = %q, %v; want %q", stdout, code, err, want)
		}
		_, empty := parseMFAOutput("", stderr)
		if empty == nil || err.Error() != empty.Error() {
			t.Fatalf("error %q depends on stdout (with none: %v)", err, empty)
		}
		msg := err.Error()
		if m := longDigits.FindString(msg); m != "" {
			t.Fatalf("error %q shows digits %q", msg, m)
		}
		if m := secretish.FindString(msg); m != "" {
			t.Fatalf("error %q shows key-like text %q", msg, m)
		}
		if len(msg) > 100+4*maxMFAStderr {
			t.Fatalf("error of %d bytes", len(msg))
		}
	})
}

// secretsOf are the values a reader could take for secrets: at least 12
// bytes (shorter ones could match words of the messages by chance), and
// each also with control characters as printable shows them.
func secretsOf(vals ...string) []string {
	var out []string
	for _, v := range vals {
		if len(v) >= 12 {
			out = append(out, v, printable(v, len(v)))
		}
	}
	return out
}

// FuzzIoTAnswer: any status and body of the credentials provider gives
// complete, unexpired credentials (only with 200) or an error, and an
// error never shows the body's secret key or session token.
func FuzzIoTAnswer(f *testing.F) {
	ok := `{"credentials":{"accessKeyId":"ASIAIOTEXAMPLE000001","secretAccessKey":"iotSecretExampleKey0123456789abcdefABCDEF","sessionToken":"iotSessionTokenExample/0123456789+abcdef==","expiration":"2026-11-28T12:00:00Z"}}`
	f.Add(uint16(200), []byte(ok))
	f.Add(uint16(203), []byte(ok))
	f.Add(uint16(403), []byte(`{"message":"Access Denied"}`))
	f.Add(uint16(200), []byte(ok[:120]))
	f.Add(uint16(502), []byte("<html>Bad Gateway</html>"))
	p := &IoT{roleAlias: "signet-device-role", thingName: "sensor-42", endpoint: "c1.credentials.iot.eu-central-1.amazonaws.com:443", clock: fixedClock(fuzzNow)}
	f.Fuzz(func(t *testing.T, status uint16, body []byte) {
		c, err := p.parseAnswer(int(status), body)
		if err == nil {
			if status != http.StatusOK || c.AccessKeyID == "" || c.SecretAccessKey == "" || c.SessionToken == "" ||
				!c.Expires.After(fuzzNow) || c.Origin != "iot:signet-device-role" {
				t.Fatalf("status %d: accepted %#v", status, c)
			}
			return
		}
		if c != (Credentials{}) {
			t.Fatalf("credentials %#v came with error %v", c, err)
		}
		var a iotAnswer
		_ = json.NewDecoder(bytes.NewReader(body)).Decode(&a)
		if a.Credentials == nil {
			return
		}
		for _, s := range secretsOf(a.Credentials.SecretAccessKey, a.Credentials.SessionToken) {
			// AWS's own message is shown as it is: it is not where a
			// server puts credentials.
			if strings.Contains(err.Error(), s) && !strings.Contains(a.Message, s) {
				t.Fatalf("error %q shows a secret of the body", err)
			}
		}
	})
}

// stsAnswer is an http.RoundTripper that gives every request one canned
// answer: the STS client under fuzz never dials.
type stsAnswer struct {
	status int
	body   []byte
}

func (a stsAnswer) RoundTrip(r *http.Request) (*http.Response, error) {
	if r.Body != nil {
		_, _ = io.Copy(io.Discard, r.Body)
		_ = r.Body.Close()
	}
	return &http.Response{
		Status: strconv.Itoa(a.status) + " " + http.StatusText(a.status), StatusCode: a.status,
		Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1,
		Header:        http.Header{"Content-Type": {"text/xml"}},
		Body:          io.NopCloser(bytes.NewReader(a.body)),
		ContentLength: int64(len(a.body)),
		Request:       r,
	}, nil
}

const fuzzMFACode = "907153"

// xmlElem finds, leniently, the elements whose text an STS error must
// not show (and Message, which it shows).
var xmlElem = regexp.MustCompile(`(?s)<(SecretAccessKey|SessionToken|Message)>(.*?)</(?:SecretAccessKey|SessionToken|Message)>`)

// FuzzSTSAnswer feeds any status and body to a real sts.Client behind
// STS.Retrieve: complete, unexpired credentials or an error; never a
// secret of the body or the MFA code in the error.
func FuzzSTSAnswer(f *testing.F) {
	creds := `<Credentials><AccessKeyId>ASIASTSEXAMPLE000001</AccessKeyId><SecretAccessKey>stsSecretExampleKey0123456789abcdefABCDEF</SecretAccessKey>` +
		`<SessionToken>stsSessionTokenExample/0123456789+abcdef==</SessionToken><Expiration>2026-11-28T12:00:00Z</Expiration></Credentials>`
	user := `<AssumedRoleUser><AssumedRoleId>AROAEXAMPLE:signet</AssumedRoleId><Arn>arn:aws:sts::123456789012:assumed-role/Admin/signet</Arn></AssumedRoleUser>`
	ok := `<AssumeRoleResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/"><AssumeRoleResult>` + creds + user +
		`</AssumeRoleResult><ResponseMetadata><RequestId>c6104cbe-af31-11e0-8154-cbc7ccf896c7</RequestId></ResponseMetadata></AssumeRoleResponse>`
	f.Add(uint16(200), []byte(ok))
	f.Add(uint16(200), []byte(ok[:strings.Index(ok, "stsSecret")+10]))
	f.Add(uint16(403), []byte(`<ErrorResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/"><Error><Type>Sender</Type><Code>AccessDenied</Code>`+
		`<Message>MultiFactorAuthentication failed with invalid MFA one time pass code 907153</Message></Error><RequestId>r-1</RequestId></ErrorResponse>`))
	f.Add(uint16(500), []byte(ok))
	f.Add(uint16(200), []byte("not xml"))

	base, err := NewSTS(context.Background(), STSOptions{
		RoleARN: "arn:aws:iam::123456789012:role/Admin", Region: "us-east-1", Endpoint: "https://sts.invalid",
		SerialNumber: "arn:aws:iam::111122223333:mfa/alice", TokenCode: fuzzMFACode,
		Base: func(context.Context) (Credentials, error) {
			return Credentials{AccessKeyID: "AKIABASEEXAMPLE00001", SecretAccessKey: "base-secret-example-key"}, nil
		},
		Getenv: func(string) string { return "" },
		Clock:  fixedClock(fuzzNow),
	})
	if err != nil {
		f.Fatal(err)
	}
	opts := base.client.Options()
	// The same number of attempts as in production, without the waits
	// between them and without the retry quota that a run of failures
	// would use up.
	opts.Retryer = retry.NewStandard(func(o *retry.StandardOptions) {
		o.MaxAttempts = stsAttempts
		o.Backoff = retry.BackoffDelayerFunc(func(int, error) (time.Duration, error) { return 0, nil })
		o.RateLimiter = ratelimit.None
	})
	f.Fuzz(func(t *testing.T, status uint16, body []byte) {
		if status < 100 || status > 599 {
			return
		}
		p := *base
		p.client = sts.New(opts, func(o *sts.Options) {
			o.HTTPClient = &http.Client{Transport: stsAnswer{int(status), body}}
		})
		c, err := p.Retrieve(context.Background())
		if err == nil {
			if c.AccessKeyID == "" || c.SecretAccessKey == "" || c.SessionToken == "" || !c.Expires.After(fuzzNow) {
				t.Fatalf("status %d: accepted %#v", status, c)
			}
			return
		}
		if c != (Credentials{}) {
			t.Fatalf("credentials %#v came with error %v", c, err)
		}
		var secrets []string
		messages, rest := "", string(body)
		for _, m := range xmlElem.FindAllStringSubmatch(string(body), -1) {
			if m[1] == "Message" {
				messages += m[2] + "\n"
				rest = strings.Replace(rest, m[0], "", 1)
			} else {
				secrets = append(secrets, m[2])
			}
		}
		msg := err.Error()
		for _, s := range secretsOf(secrets...) {
			if strings.Contains(msg, s) && !strings.Contains(messages, s) {
				t.Fatalf("error %q shows a secret of the body", msg)
			}
		}
		// STS's message may quote the code, and is shown with it hidden;
		// a body that has it elsewhere (or escaped) is not STS's.
		if strings.Contains(msg, fuzzMFACode) && !strings.Contains(rest, fuzzMFACode) && !strings.Contains(string(body), "&") {
			t.Fatalf("error %q shows the MFA code", msg)
		}
	})
}

// FuzzReadAWSProfile: no input panics; a profile that is read is read the
// same with another profile after it, and back from its own rendering.
func FuzzReadAWSProfile(f *testing.F) {
	f.Add([]byte("[profile dev]\nrole_arn = arn:aws:iam::123456789012:role/Admin\nsource_profile = base\nmfa_serial = arn:aws:iam::1:mfa/a\nduration_seconds = 3600\nregion = eu-west-1 # ireland\n"), "dev")
	f.Add([]byte("[default]\nregion=us-east-1\ns3 =\n  max_concurrent_requests = 20\n[profile default]\nexternal_id = x;y\n"), "default")
	f.Add([]byte("[profile a]\nduration_seconds = 1h\n"), "a")
	f.Add([]byte("[profile a\nrole_arn = x\n"), "a")
	f.Add([]byte("[sso-session s]\nsso_region = x\n[profile  b ]\nnot a pair\n"), "b")
	dir := f.TempDir()
	file := filepath.Join(dir, "config")
	read := func(t *testing.T, data []byte, name string) (AWSProfile, string) {
		if err := os.WriteFile(file, data, 0o600); err != nil {
			t.Fatal(err)
		}
		p, err := ReadAWSProfile(file, name)
		if err != nil {
			return p, err.Error()
		}
		return p, ""
	}
	const other = "signet-fuzz-other"
	f.Fuzz(func(t *testing.T, data []byte, name string) {
		if name == other {
			return
		}
		p, perr := read(t, data, name)
		if perr != "" && p != (AWSProfile{}) {
			t.Fatalf("profile %#v came with error %s", p, perr)
		}
		q, qerr := read(t, append(append([]byte(nil), data...), "\n[profile "+other+"]\nrole_arn = arn:aws:iam::1:role/x\n"...), name)
		if q != p || qerr != perr {
			t.Fatalf("another profile after it changed %#v, %q into %#v, %q", p, perr, q, qerr)
		}
		if perr != "" {
			return
		}
		if p.Name != name || p.Duration < 0 {
			t.Fatalf("read %#v for %q", p, name)
		}
		var b strings.Builder
		b.WriteString("[profile " + name + "]\n")
		for _, kv := range [][2]string{{"role_arn", p.RoleARN}, {"source_profile", p.SourceProfile}, {"mfa_serial", p.MFASerial},
			{"external_id", p.ExternalID}, {"role_session_name", p.RoleSessionName}, {"region", p.Region}} {
			b.WriteString(kv[0] + " = " + kv[1] + "\n")
		}
		if p.Duration > 0 {
			b.WriteString("duration_seconds = " + strconv.FormatInt(int64(p.Duration/time.Second), 10) + "\n")
		}
		back, berr := read(t, []byte(b.String()), name)
		if berr != "" || back != p {
			t.Fatalf("rendered %#v as\n%s\nread back %#v, %s", p, b.String(), back, berr)
		}
	})
}

// An answer that is not STS's XML was explained with the XML reader's
// message, which quotes the answer: here the start of a secret key.
// Found by FuzzSTSAnswer.
func TestSTSMalformedAnswerHidesIt(t *testing.T) {
	base, err := NewSTS(context.Background(), STSOptions{
		RoleARN: "arn:aws:iam::123456789012:role/Admin", Region: "us-east-1", Endpoint: "https://sts.invalid",
		Base: func(context.Context) (Credentials, error) {
			return Credentials{AccessKeyID: "AKIABASEEXAMPLE00001", SecretAccessKey: "base-secret-example-key"}, nil
		},
		Getenv: func(string) string { return "" },
	})
	if err != nil {
		t.Fatal(err)
	}
	body := `<AssumeRoleResponse><AssumeRoleResult><Credentials><SecretAccessKey>&wJalrXUtnFEMI0K7MDENG</SecretAccessKey>`
	base.client = sts.New(base.client.Options(), func(o *sts.Options) { o.HTTPClient = &http.Client{Transport: stsAnswer{200, []byte(body)}} })
	_, err = base.Retrieve(context.Background())
	if err == nil || strings.Contains(err.Error(), "wJalrXUtnFEMI") ||
		!strings.Contains(err.Error(), "is not STS's XML (check the endpoint): HTTP 200, XML syntax error on line 1") {
		t.Fatalf("Retrieve = %v", err)
	}
	if _, ok := errors.AsType[*xml.SyntaxError](err); !ok {
		t.Errorf("error %v does not wrap the *xml.SyntaxError", err)
	}
}
