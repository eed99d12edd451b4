// Package ststest is a strict fake of AWS STS for tests: AssumeRole and
// GetCallerIdentity over the AWS query protocol, with every request's
// SigV4 signature checked against the keys the fake knows (its users and
// the sessions it minted), MFA checked like AWS checks it (a code is
// accepted once), AssumeRoleWithWebIdentity (unsigned, as in AWS) with
// the token checked as a JWT of an OIDC provider the test registers, and
// failures on demand. Options.OnMint hands every minted session to the
// test, so that a real verifier can learn it.
package ststest

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"encoding/xml"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"

	"github.com/signet-proxy/signet/internal/faketest"
)

// Failure is a way the fake can be told to fail an AssumeRole call.
type Failure int

// Failures. Each applies to AssumeRole calls whose signature is valid and
// to AssumeRoleWithWebIdentity calls.
const (
	// FailInternal answers 500 InternalFailure.
	FailInternal Failure = iota + 1
	// FailThrottle answers 400 Throttling, "Rate exceeded".
	FailThrottle
	// FailHang answers nothing until the client gives up.
	FailHang
	// FailMalformed answers 200 with XML cut off in the middle of the
	// secret key.
	FailMalformed
	// FailExpired answers credentials whose Expiration has passed.
	FailExpired
	// FailNotXML answers 200 with a body that is not XML at all, as a
	// captive portal or a misrouted proxy would; nothing is minted.
	FailNotXML
	// FailWrongFields answers 200 with well-formed XML of the action
	// whose Credentials carry no field under its AWS name; nothing is
	// minted.
	FailWrongFields
)

// Role is a role the fake lets callers assume.
type Role struct {
	ARN string
	// MFASerial, when set, is the only MFA device accepted; RequireMFA
	// refuses calls without MFA, like a trust policy with
	// aws:MultiFactorAuthPresent.
	MFASerial  string
	RequireMFA bool
	// ExternalID, when set, must be sent.
	ExternalID string
	// MaxSessionDuration defaults to 1h, as in IAM.
	MaxSessionDuration time.Duration
	// OIDCIssuers are the identity providers (their iss, as registered
	// with AddOIDCProvider) whose tokens may assume the role with
	// AssumeRoleWithWebIdentity, like a trust policy's Federated
	// principal; none refuses every web identity.
	OIDCIssuers []string
	// OIDCSubject, when set, is the only sub accepted, like a trust
	// policy's condition on PROVIDER:sub.
	OIDCSubject string
}

// Call is one request the fake received with a valid signature.
type Call struct {
	Action string
	// AccessKeyID signed the request; "" for AssumeRoleWithWebIdentity.
	AccessKeyID     string
	RoleARN         string
	RoleSessionName string
	DurationSeconds int
	ExternalID      string
	SerialNumber    string
	TokenCode       string
	Policy          string
	PolicyARNs      []string
	Tags            map[string]string
	TransitiveTags  []string
	SourceIdentity  string
	// Issuer, Subject and Audience are the web identity token's iss, sub
	// and the aud the fake matched (AssumeRoleWithWebIdentity, when the
	// token could be read).
	Issuer, Subject, Audience string
	// Error is the AWS error code answered, "" for success.
	Error string
}

type principal struct {
	secret, token string
	arn, userID   string
	expires       time.Time // zero for users
	chained       bool      // minted by AssumeRole: a role session
}

// Server is the fake. Its methods are safe for concurrent use.
type Server struct {
	srv    *httptest.Server
	region string
	now    func() time.Time

	mu         sync.Mutex
	principals map[string]principal
	roles      map[string]Role
	used       map[string]bool // serial + "/" + code
	oidc       map[string]OIDCProvider
	lifetime   time.Duration
	faults     faketest.Faults[Failure]
	calls      faketest.Log[Call]
	onMint     func(Minted) error
}

// Options configure New.
type Options struct {
	// Region is the only region the fake accepts in a signature's scope;
	// default us-east-1.
	Region string
	// PlainHTTP serves http:// instead of TLS.
	PlainHTTP bool
	// Now is the fake's clock; default time.Now.
	Now func() time.Time
	// OnMint, when set, is called with every session the fake mints,
	// before the answer is sent, so that a test can make the session known
	// to a real verifier first. An error fails the call with 500
	// InternalFailure and the session is not minted.
	OnMint func(Minted) error
}

// Minted is a session AssumeRole or AssumeRoleWithWebIdentity minted.
type Minted struct {
	AccessKeyID     string
	SecretAccessKey string
	SessionToken    string
	// Issued and Expires are the session's lifetime; Expires is what the
	// answer's Expiration says (in the past with FailExpired).
	Issued  time.Time
	Expires time.Time
	// RoleARN is the role assumed, RoleSessionName the caller's name for
	// the session.
	RoleARN         string
	RoleSessionName string
	// AssumedRoleARN and AssumedRoleID identify the session, as in
	// AssumedRoleUser.
	AssumedRoleARN string
	AssumedRoleID  string
	// Provider, Audience and Subject are, for AssumeRoleWithWebIdentity,
	// the token's issuer (without https://), matched aud and sub.
	Provider, Audience, Subject string
}

// New starts a fake STS that is closed when the test ends.
func New(t testing.TB, opts Options) *Server {
	t.Helper()
	s := &Server{
		region:     opts.Region,
		now:        opts.Now,
		principals: map[string]principal{},
		roles:      map[string]Role{},
		used:       map[string]bool{},
		oidc:       map[string]OIDCProvider{},
		onMint:     opts.OnMint,
	}
	if s.region == "" {
		s.region = "us-east-1"
	}
	if s.now == nil {
		s.now = time.Now
	}
	if opts.PlainHTTP {
		s.srv = httptest.NewServer(http.HandlerFunc(s.serve))
	} else {
		s.srv = httptest.NewTLSServer(http.HandlerFunc(s.serve))
	}
	t.Cleanup(s.srv.Close)
	return s
}

// URL is the endpoint, for BaseEndpoint.
func (s *Server) URL() string { return s.srv.URL }

// Region is the region signatures must be scoped to.
func (s *Server) Region() string { return s.region }

// RootCAs trust the fake's TLS certificate.
func (s *Server) RootCAs() *x509.CertPool {
	pool := x509.NewCertPool()
	if c := s.srv.Certificate(); c != nil {
		pool.AddCert(c)
	}
	return pool
}

// CertificatePEM is the fake's TLS certificate in PEM, for a program
// that reads its trust store from a file; nil with PlainHTTP.
func (s *Server) CertificatePEM() []byte {
	c := s.srv.Certificate()
	if c == nil {
		return nil
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Raw})
}

// AddUser makes long-term keys known, as an IAM user with ARN arn.
func (s *Server) AddUser(accessKeyID, secret, arn string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.principals[accessKeyID] = principal{secret: secret, arn: arn, userID: "AIDA" + randomID(16)}
}

// AddRole makes a role assumable.
func (s *Server) AddRole(r Role) {
	if r.MaxSessionDuration == 0 {
		r.MaxSessionDuration = time.Hour
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.roles[r.ARN] = r
}

// SetLifetime makes minted credentials live for d, whatever
// DurationSeconds asked; zero goes back to DurationSeconds.
func (s *Server) SetLifetime(d time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.lifetime = d
}

// FailNext fails the next n AssumeRole calls with f.
func (s *Server) FailNext(f Failure, n int) {
	s.faults.FailNext(f, n)
}

// FailAlways fails every AssumeRole call with f until FailAlways(0).
func (s *Server) FailAlways(f Failure) {
	s.faults.FailAlways(f)
}

// FailCycle fails AssumeRole calls in a repeating pattern, pattern[i] for
// the i-th call (0 for success): FailCycle(0, 0, FailInternal) fails every
// third. FailNext and FailAlways take precedence; FailCycle() ends it.
func (s *Server) FailCycle(pattern ...Failure) {
	s.faults.FailCycle(pattern...)
}

// Calls returns the calls received so far with a valid signature.
func (s *Server) Calls() []Call {
	return s.calls.All()
}

// CallCount is len(Calls()).
func (s *Server) CallCount() int {
	return s.calls.Len()
}

// LastCall is the latest call; ok is false when there was none.
func (s *Server) LastCall() (c Call, ok bool) {
	return s.calls.Last()
}

// IdentityOf returns the ARN of the principal that owns an access key
// (an assumed-role ARN for keys the fake minted).
func (s *Server) IdentityOf(accessKeyID string) (string, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	p, ok := s.principals[accessKeyID]
	return p.arn, ok
}

// apiError is an answer in AWS's error shape.
type apiError struct {
	status             int
	typ, code, message string
}

func sender(status int, code, msg string) *apiError {
	return &apiError{status: status, typ: "Sender", code: code, message: msg}
}

func (s *Server) serve(w http.ResponseWriter, r *http.Request) {
	reqID := randomUUID()
	body, err := io.ReadAll(io.LimitReader(r.Body, 1<<20))
	if err != nil || r.Method != http.MethodPost {
		writeError(w, reqID, sender(400, "InvalidAction", "Could not find operation for this request."))
		return
	}
	form, err := url.ParseQuery(string(body))
	if err != nil {
		writeError(w, reqID, sender(400, "MalformedQueryString", "The query string is malformed."))
		return
	}
	if form.Get("Action") == "AssumeRoleWithWebIdentity" {
		// STS takes this action unsigned: the web identity token is the
		// caller's credential, and a signature is not looked at.
		if form.Get("Version") != "2011-06-15" {
			writeError(w, reqID, sender(400, "InvalidAction", "Could not find operation AssumeRoleWithWebIdentity for version "+form.Get("Version")))
			return
		}
		s.assumeRoleWithWebIdentity(w, r, reqID, form)
		return
	}
	akid, p, apiErr := s.verify(r, body)
	if apiErr != nil {
		writeError(w, reqID, apiErr)
		return
	}
	if form.Get("Version") != "2011-06-15" {
		writeError(w, reqID, sender(400, "InvalidAction", "Could not find operation "+form.Get("Action")+" for version "+form.Get("Version")))
		return
	}
	switch form.Get("Action") {
	case "AssumeRole":
		s.assumeRole(w, r, reqID, akid, p, form)
	case "GetCallerIdentity":
		s.record(Call{Action: "GetCallerIdentity", AccessKeyID: akid})
		account := accountOf(p.arn)
		writeXML(w, "GetCallerIdentityResponse", "GetCallerIdentityResult", reqID,
			fmt.Sprintf("<Arn>%s</Arn><UserId>%s</UserId><Account>%s</Account>", esc(p.arn), esc(p.userID), account))
	default:
		writeError(w, reqID, sender(400, "InvalidAction", "Could not find operation "+form.Get("Action")+" for version 2011-06-15"))
	}
}

func (s *Server) record(c Call) { s.calls.Add(c) }

// verify checks the SigV4 signature by signing a copy of the request, made
// of only the headers the client says it signed, with the secret the fake
// holds for the access key, and comparing the two signatures.
func (s *Server) verify(r *http.Request, body []byte) (string, principal, *apiError) {
	auth := r.Header.Get("Authorization")
	if auth == "" {
		return "", principal{}, sender(403, "MissingAuthenticationToken", "Request is missing Authentication Token")
	}
	alg, rest, _ := strings.Cut(auth, " ")
	fields := map[string]string{}
	for f := range strings.SplitSeq(rest, ",") {
		k, v, _ := strings.Cut(strings.TrimSpace(f), "=")
		fields[k] = v
	}
	scope := strings.Split(fields["Credential"], "/")
	if alg != "AWS4-HMAC-SHA256" || len(scope) != 5 || fields["SignedHeaders"] == "" || fields["Signature"] == "" {
		return "", principal{}, sender(400, "IncompleteSignature", "Authorization header requires Credential, SignedHeaders and Signature.")
	}
	akid := scope[0]
	s.mu.Lock()
	p, known := s.principals[akid]
	s.mu.Unlock()
	if !known {
		return "", principal{}, sender(403, "InvalidClientTokenId", "The security token included in the request is invalid.")
	}
	signed := strings.Split(fields["SignedHeaders"], ";")
	token := r.Header.Get("X-Amz-Security-Token")
	if token != p.token || (p.token != "" && !slices.Contains(signed, "x-amz-security-token")) {
		return "", principal{}, sender(403, "InvalidClientTokenId", "The security token included in the request is invalid.")
	}
	now := s.now()
	if !p.expires.IsZero() && !now.Before(p.expires) {
		return "", principal{}, sender(400, "ExpiredToken", "The security token included in the request is expired")
	}
	t, err := time.Parse("20060102T150405Z", r.Header.Get("X-Amz-Date"))
	if err != nil || !slices.Contains(signed, "x-amz-date") {
		return "", principal{}, sender(400, "IncompleteSignature", "Authorization header requires existence of either a 'X-Amz-Date' or a 'Date' header.")
	}
	if d := now.Sub(t); d > 15*time.Minute || d < -15*time.Minute {
		return "", principal{}, sender(403, "SignatureDoesNotMatch", "Signature expired: "+t.Format("20060102T150405Z")+" is now earlier than "+now.Add(-15*time.Minute).UTC().Format("20060102T150405Z"))
	}
	if scope[1] != t.Format("20060102") || scope[2] != s.region || scope[3] != "sts" || scope[4] != "aws4_request" {
		return "", principal{}, sender(403, "SignatureDoesNotMatch", "Credential should be scoped to a valid region, service and date: "+fields["Credential"])
	}

	cp, err := http.NewRequestWithContext(context.Background(), r.Method, "https://"+r.Host+r.URL.RequestURI(), nil)
	if err != nil {
		return "", principal{}, sender(400, "InvalidRequest", "bad request URI")
	}
	cp.Host = r.Host
	for _, h := range signed {
		switch h {
		case "host", "x-amz-date", "x-amz-security-token":
		case "content-length":
			cp.ContentLength = r.ContentLength
		default:
			cp.Header[http.CanonicalHeaderKey(h)] = r.Header.Values(h)
		}
	}
	sum := sha256.Sum256(body)
	creds := aws.Credentials{AccessKeyID: akid, SecretAccessKey: p.secret, SessionToken: p.token}
	if err := v4.NewSigner().SignHTTP(context.Background(), creds, cp, hex.EncodeToString(sum[:]), "sts", s.region, t); err != nil {
		return "", principal{}, sender(500, "InternalFailure", err.Error())
	}
	_, want, _ := strings.Cut(cp.Header.Get("Authorization"), "Signature=")
	if subtle.ConstantTimeCompare([]byte(want), []byte(fields["Signature"])) != 1 {
		return "", principal{}, sender(403, "SignatureDoesNotMatch",
			"The request signature we calculated does not match the signature you provided. Check your AWS Secret Access Key and signing method. Consult the service documentation for details.")
	}
	return akid, p, nil
}

func (s *Server) assumeRole(w http.ResponseWriter, r *http.Request, reqID, akid string, caller principal, form url.Values) {
	c := Call{
		Action:          "AssumeRole",
		AccessKeyID:     akid,
		RoleARN:         form.Get("RoleArn"),
		RoleSessionName: form.Get("RoleSessionName"),
		ExternalID:      form.Get("ExternalId"),
		SerialNumber:    form.Get("SerialNumber"),
		TokenCode:       form.Get("TokenCode"),
		Policy:          form.Get("Policy"),
		SourceIdentity:  form.Get("SourceIdentity"),
	}
	for i := 1; form.Has("PolicyArns.member." + strconv.Itoa(i) + ".arn"); i++ {
		c.PolicyARNs = append(c.PolicyARNs, form.Get("PolicyArns.member."+strconv.Itoa(i)+".arn"))
	}
	for i := 1; form.Has("Tags.member." + strconv.Itoa(i) + ".Key"); i++ {
		if c.Tags == nil {
			c.Tags = map[string]string{}
		}
		c.Tags[form.Get("Tags.member."+strconv.Itoa(i)+".Key")] = form.Get("Tags.member." + strconv.Itoa(i) + ".Value")
	}
	for i := 1; form.Has("TransitiveTagKeys.member." + strconv.Itoa(i)); i++ {
		c.TransitiveTags = append(c.TransitiveTags, form.Get("TransitiveTagKeys.member."+strconv.Itoa(i)))
	}
	dur := 3600
	if v := form.Get("DurationSeconds"); v != "" {
		dur, _ = strconv.Atoi(v)
		c.DurationSeconds = dur
	}

	s.mu.Lock()
	fail := s.faults.Take()
	role, roleKnown := s.roles[c.RoleARN]
	lifetime := s.lifetime
	s.mu.Unlock()

	finish := s.finisher(w, reqID, &c)
	if s.answerFailure(w, r, reqID, fail, c, finish) {
		return
	}

	if e := s.checkAssumeRole(c, dur, caller, role, roleKnown); e != nil {
		finish(e)
		return
	}

	newKey, minted, e := s.mint(c.RoleARN, c.RoleSessionName, dur, lifetime, fail, Minted{})
	if e != nil {
		finish(e)
		return
	}
	finish(nil)
	s.mu.Lock()
	s.principals[newKey] = minted
	s.mu.Unlock()

	inner := sessionXML(newKey, minted)
	if c.SourceIdentity != "" {
		inner += "<SourceIdentity>" + esc(c.SourceIdentity) + "</SourceIdentity>"
	}
	if fail == FailMalformed {
		w.Header().Set("Content-Type", "text/xml")
		full := xmlBody("AssumeRoleResponse", "AssumeRoleResult", reqID, inner)
		cut := strings.Index(full, minted.secret) + 10
		_, _ = io.WriteString(w, full[:cut])
		return
	}
	writeXML(w, "AssumeRoleResponse", "AssumeRoleResult", reqID, inner)
}

// checkAssumeRole applies AWS's rules, in AWS's order: input validation,
// then authorization, then MFA.
func (s *Server) checkAssumeRole(c Call, dur int, caller principal, role Role, roleKnown bool) *apiError {
	switch {
	case c.RoleARN == "":
		return sender(400, "ValidationError", "1 validation error detected: Value null at 'roleArn' failed to satisfy constraint: Member must not be null")
	case c.RoleSessionName == "":
		return sender(400, "ValidationError", "1 validation error detected: Value null at 'roleSessionName' failed to satisfy constraint: Member must not be null")
	case dur < 900:
		return sender(400, "ValidationError", fmt.Sprintf("1 validation error detected: Value '%d' at 'durationSeconds' failed to satisfy constraint: Member must have value greater than or equal to 900", dur))
	case dur > 43200:
		return sender(400, "ValidationError", fmt.Sprintf("1 validation error detected: Value '%d' at 'durationSeconds' failed to satisfy constraint: Member must have value less than or equal to 43200", dur))
	case c.TokenCode != "" && (len(c.TokenCode) != 6 || strings.Trim(c.TokenCode, "0123456789") != ""):
		return sender(400, "ValidationError", "1 validation error detected: Value at 'tokenCode' failed to satisfy constraint: Member must satisfy regular expression pattern: [\\d]* and have length 6")
	}
	notAuthorized := sender(403, "AccessDenied", "User: "+caller.arn+" is not authorized to perform: sts:AssumeRole on resource: "+c.RoleARN)
	if !roleKnown || (role.ExternalID != "" && role.ExternalID != c.ExternalID) {
		return notAuthorized
	}
	if role.RequireMFA && c.SerialNumber == "" && c.TokenCode == "" {
		return notAuthorized
	}
	if c.SerialNumber != "" || c.TokenCode != "" {
		switch {
		case c.SerialNumber == "" || c.TokenCode == "":
			return sender(403, "AccessDenied", "MultiFactorAuthentication failed, must provide both MFA serial number and one time pass code.")
		case role.MFASerial != "" && c.SerialNumber != role.MFASerial:
			return sender(403, "AccessDenied", "MultiFactorAuthentication failed, unable to validate MFA code.  Please verify your MFA serial number is valid and associated with this user.")
		}
		key := c.SerialNumber + "/" + c.TokenCode
		s.mu.Lock()
		reused := s.used[key]
		s.used[key] = true
		s.mu.Unlock()
		if reused {
			return sender(403, "AccessDenied", "MultiFactorAuthentication failed with invalid MFA one time pass code.")
		}
	}
	switch {
	case caller.chained && dur > 3600:
		return sender(400, "ValidationError", "The requested DurationSeconds exceeds the 1 hour session limit for roles assumed by role chaining.")
	case time.Duration(dur)*time.Second > role.MaxSessionDuration:
		return sender(400, "ValidationError", "The requested DurationSeconds exceeds the MaxSessionDuration set for this role.")
	}
	return nil
}

const stsNS = "https://sts.amazonaws.com/doc/2011-06-15/"

func xmlBody(response, result, reqID, inner string) string {
	return `<` + response + ` xmlns="` + stsNS + `">` + "\n  <" + result + ">" + inner + "</" + result + ">\n" +
		"  <ResponseMetadata><RequestId>" + reqID + "</RequestId></ResponseMetadata>\n</" + response + ">\n"
}

func writeXML(w http.ResponseWriter, response, result, reqID, inner string) {
	w.Header().Set("Content-Type", "text/xml")
	w.Header().Set("X-Amzn-Requestid", reqID)
	_, _ = io.WriteString(w, xmlBody(response, result, reqID, inner))
}

func writeError(w http.ResponseWriter, reqID string, e *apiError) {
	w.Header().Set("Content-Type", "text/xml")
	w.Header().Set("X-Amzn-Requestid", reqID)
	w.WriteHeader(e.status)
	_, _ = fmt.Fprintf(w, `<ErrorResponse xmlns="%s">
  <Error>
    <Type>%s</Type>
    <Code>%s</Code>
    <Message>%s</Message>
  </Error>
  <RequestId>%s</RequestId>
</ErrorResponse>
`, stsNS, e.typ, e.code, esc(e.message), reqID)
}

func esc(s string) string {
	var b bytes.Buffer
	_ = xml.EscapeText(&b, []byte(s))
	return b.String()
}

func accountOf(arn string) string {
	parts := strings.Split(arn, ":")
	if len(parts) < 5 {
		return ""
	}
	return parts[4]
}

func partition(arn string) string {
	parts := strings.Split(arn, ":")
	if len(parts) < 2 {
		return "aws"
	}
	return parts[1]
}

const idChars = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567"

func randomID(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	for i := range b {
		b[i] = idChars[int(b[i])%len(idChars)]
	}
	return string(b)
}

const secretChars = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"

func randomSecret(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	for i := range b {
		b[i] = secretChars[int(b[i])%len(secretChars)]
	}
	return string(b)
}

func randomUUID() string {
	b := make([]byte, 16)
	_, _ = rand.Read(b)
	h := hex.EncodeToString(b)
	return h[:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:]
}

// answerFailure answers a call with the failure queued for it, when that
// failure is one answered before the call is looked at, and reports
// whether it did. finish records c and writes the error.
func (s *Server) answerFailure(w http.ResponseWriter, r *http.Request, reqID string, fail Failure, c Call, finish func(*apiError)) bool {
	switch fail {
	case FailNotXML:
		c.Error = "(not XML)"
		s.record(c)
		w.Header().Set("Content-Type", "text/plain")
		_, _ = io.WriteString(w, "upstream connect error or disconnect/reset before headers. reset reason: overflow\n")
	case FailWrongFields:
		c.Error = "(wrong fields)"
		s.record(c)
		// Values in the shape of real ones, minted for no one.
		inner := "<Credentials><AccessKey>ASIA" + randomID(16) + "</AccessKey><Secret>" + randomSecret(40) +
			"</Secret><Token>" + randomSecret(60) + "</Token><Expiry>" + s.now().Add(time.Hour).UTC().Format(time.RFC3339) +
			"</Expiry></Credentials>"
		writeXML(w, c.Action+"Response", c.Action+"Result", reqID, inner)
	case FailInternal:
		finish(&apiError{status: 500, typ: "Receiver", code: "InternalFailure", message: "The request processing has failed because of an unknown error, exception or failure."})
	case FailThrottle:
		finish(sender(400, "Throttling", "Rate exceeded"))
	case FailHang:
		c.Error = "(hang)"
		s.record(c)
		<-r.Context().Done()
		// Abort rather than return: a handler that returns has answered
		// 200 with an empty body, which a client still listening would
		// take for an answer.
		panic(http.ErrAbortHandler)
	default:
		return false
	}
	return true
}

// finisher ends a call: it records *c as it stands then, with e's code
// when e is an error, and writes e to the client.
func (s *Server) finisher(w http.ResponseWriter, reqID string, c *Call) func(e *apiError) {
	return func(e *apiError) {
		if e != nil {
			c.Error = e.code
		}
		s.record(*c)
		if e != nil {
			writeError(w, reqID, e)
		}
	}
}
