package credentials

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/xml"
	"errors"
	"fmt"
	"maps"
	"net"
	"net/http"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/sts"
	ststypes "github.com/aws/aws-sdk-go-v2/service/sts/types"
	"github.com/aws/smithy-go"
)

// DefaultRoleSessionName is the session name when neither the config nor
// the profile gives one.
const DefaultRoleSessionName = "signet"

// stsAttempts is how often one Retrieve calls STS: one retry for a
// dropped connection or a throttle, no more, because the Source that
// calls Retrieve backs off on its own.
const stsAttempts = 2

// STSOptions configure NewSTS. Fields left empty are taken from the
// profile when Profile is set.
type STSOptions struct {
	RoleARN         string
	RoleSessionName string        // default: the profile's, else DefaultRoleSessionName
	Duration        time.Duration // 0: the profile's, else STS's default (1h)
	ExternalID      string
	Policy          string
	PolicyARNs      []string
	Tags            map[string]string
	// TransitiveTagKeys are keys of Tags.
	TransitiveTagKeys []string
	SourceIdentity    string
	// SerialNumber is the MFA device; it needs MFA or TokenCode.
	SerialNumber string
	// TokenCode is a fixed MFA code, sent on every call; STS accepts each
	// code once. MFA is the way to refresh more than once.
	TokenCode string
	// MFA is run on every Retrieve for a fresh code.
	MFA *MFACommand

	// Region of STS; "" means the profile's, else AWS_REGION, else
	// AWS_DEFAULT_REGION, else the main region of the role's partition.
	Region string
	// Endpoint replaces https://sts.REGION.amazonaws.com.
	Endpoint string

	// Base gives the credentials that call STS (role chaining: the
	// Credentials method of another Source). Nil means the AWS SDK default
	// chain, or the profile's source_profile.
	Base func(ctx context.Context) (Credentials, error)
	// Profile is a profile of the AWS config file to read role_arn,
	// source_profile, mfa_serial, duration_seconds, external_id,
	// role_session_name and region from. It cannot be used with Base.
	Profile string

	// RootCAs verify STS's certificate; nil means the system roots.
	RootCAs *x509.CertPool
	// Getenv reads AWS_CONFIG_FILE, HOME and the region variables;
	// nil means os.Getenv.
	Getenv func(string) string
	Clock  Clock
}

// STS is a Provider that assumes a role with AWS STS AssumeRole: one call
// (and an MFA command run, when configured) per Retrieve.
type STS struct {
	roleARN   string
	endpoint  string // for errors
	input     sts.AssumeRoleInput
	tokenCode string
	mfa       *MFACommand
	client    *sts.Client
	clock     Clock
}

var _ Provider = (*STS)(nil)

// NewSTS builds the STS client once: its region, endpoint, HTTP client
// (never a proxy from the environment, since signet may be that proxy)
// and the credentials that sign its calls. It reads the profile, when one
// is named, so that a missing one fails at start. It calls nothing.
func NewSTS(ctx context.Context, opts STSOptions) (*STS, error) {
	if opts.Getenv == nil {
		opts.Getenv = os.Getenv
	}
	if opts.Clock == nil {
		opts.Clock = SystemClock{}
	}
	sourceProfile := ""
	if opts.Profile != "" {
		if opts.Base != nil {
			return nil, fmt.Errorf("sts: profile %s: a profile and a base source cannot both give the credentials that call STS", opts.Profile)
		}
		file, err := AWSConfigFile(opts.Getenv)
		if err != nil {
			return nil, fmt.Errorf("sts: profile %s: %w", opts.Profile, err)
		}
		prof, err := ReadAWSProfile(file, opts.Profile)
		if err != nil {
			return nil, fmt.Errorf("sts: %w", err)
		}
		if err := applyProfile(&opts, prof); err != nil {
			return nil, err
		}
		sourceProfile = prof.SourceProfile
	}
	if err := checkSTSOptions(opts); err != nil {
		return nil, err
	}

	httpClient := stsHTTPClient(opts.RootCAs)
	var creds aws.CredentialsProvider
	if opts.Base != nil {
		creds = baseProvider(opts.Base)
	} else {
		loadOpts := []func(*config.LoadOptions) error{config.WithHTTPClient(httpClient)}
		if sourceProfile != "" {
			loadOpts = append(loadOpts, config.WithSharedConfigProfile(sourceProfile))
		}
		cfg, err := config.LoadDefaultConfig(ctx, loadOpts...)
		if err != nil {
			return nil, fmt.Errorf("sts: assume role %s: load the AWS config for the credentials that call STS (source_profile %q): %w", opts.RoleARN, sourceProfile, err)
		}
		creds = cfg.Credentials
	}

	region := firstNonEmpty(opts.Region, opts.Getenv("AWS_REGION"), opts.Getenv("AWS_DEFAULT_REGION"), partitionRegion(opts.RoleARN))
	client := sts.New(sts.Options{
		Region:      region,
		Credentials: creds,
		HTTPClient:  httpClient,
		Retryer: retry.NewStandard(func(o *retry.StandardOptions) {
			o.MaxAttempts = stsAttempts
		}),
	}, func(o *sts.Options) {
		if opts.Endpoint != "" {
			o.BaseEndpoint = aws.String(opts.Endpoint)
		}
	})

	p := &STS{
		roleARN:   opts.RoleARN,
		endpoint:  opts.Endpoint,
		tokenCode: opts.TokenCode,
		mfa:       opts.MFA,
		client:    client,
		clock:     opts.Clock,
	}
	if p.endpoint == "" {
		p.endpoint = "STS in " + region
	}
	p.input = sts.AssumeRoleInput{
		RoleArn:           aws.String(opts.RoleARN),
		RoleSessionName:   aws.String(firstNonEmpty(opts.RoleSessionName, DefaultRoleSessionName)),
		ExternalId:        optional(opts.ExternalID),
		Policy:            optional(opts.Policy),
		SourceIdentity:    optional(opts.SourceIdentity),
		SerialNumber:      optional(opts.SerialNumber),
		TransitiveTagKeys: slices.Clone(opts.TransitiveTagKeys),
	}
	if opts.Duration > 0 {
		p.input.DurationSeconds = aws.Int32(int32(opts.Duration / time.Second))
	}
	for _, a := range opts.PolicyARNs {
		p.input.PolicyArns = append(p.input.PolicyArns, ststypes.PolicyDescriptorType{Arn: aws.String(a)})
	}
	for _, k := range slices.Sorted(maps.Keys(opts.Tags)) {
		p.input.Tags = append(p.input.Tags, ststypes.Tag{Key: aws.String(k), Value: aws.String(opts.Tags[k])})
	}
	return p, nil
}

// applyProfile fills what the options leave empty from the profile.
func applyProfile(opts *STSOptions, prof AWSProfile) error {
	if prof.SourceProfile == prof.Name {
		return fmt.Errorf("sts: profile %s: source_profile names the profile itself, which signet does not support: put its keys in a profile of their own", prof.Name)
	}
	opts.RoleARN = firstNonEmpty(opts.RoleARN, prof.RoleARN)
	opts.RoleSessionName = firstNonEmpty(opts.RoleSessionName, prof.RoleSessionName)
	opts.ExternalID = firstNonEmpty(opts.ExternalID, prof.ExternalID)
	opts.SerialNumber = firstNonEmpty(opts.SerialNumber, prof.MFASerial)
	opts.Region = firstNonEmpty(opts.Region, prof.Region)
	if opts.Duration == 0 {
		opts.Duration = prof.Duration
	}
	if opts.RoleARN == "" {
		return fmt.Errorf("sts: profile %s has no role_arn, and none is configured", prof.Name)
	}
	return nil
}

func checkSTSOptions(opts STSOptions) error {
	switch {
	case opts.RoleARN == "":
		return errors.New("sts: role_arn is required")
	case opts.SerialNumber != "" && opts.MFA == nil && opts.TokenCode == "":
		return fmt.Errorf("sts: assume role %s: MFA device %s needs an mfa command (or token_code) to give its code", opts.RoleARN, opts.SerialNumber)
	case (opts.MFA != nil || opts.TokenCode != "") && opts.SerialNumber == "":
		return fmt.Errorf("sts: assume role %s: an MFA code needs serial_number, the MFA device", opts.RoleARN)
	case opts.MFA != nil && opts.TokenCode != "":
		return fmt.Errorf("sts: assume role %s: token_code and an mfa command cannot both be set", opts.RoleARN)
	case opts.TokenCode != "" && !isTokenCode(opts.TokenCode):
		return fmt.Errorf("sts: assume role %s: token_code is not a 6-digit code", opts.RoleARN)
	case opts.Duration != 0 && (opts.Duration < 15*time.Minute || opts.Duration > 12*time.Hour):
		return fmt.Errorf("sts: assume role %s: duration %s is not between 15m and 12h", opts.RoleARN, opts.Duration)
	}
	return nil
}

// Timeout is how long one Retrieve may take: the MFA command's timeout
// plus DefaultTimeout for the call to STS. A Source around this provider
// should allow at least that much. Without an MFA command it is 0: the
// source's refresh.timeout alone bounds the call, so that a hanging STS
// holds a waiting request no longer than configured (a floor of
// DefaultTimeout here made any refresh.timeout below 30s void).
func (p *STS) Timeout() time.Duration {
	if p.mfa != nil {
		return p.mfa.Timeout() + DefaultTimeout
	}
	return 0
}

// Retrieve runs the MFA command, if any, and assumes the role once.
func (p *STS) Retrieve(ctx context.Context) (Credentials, error) {
	in := p.input
	code := p.tokenCode
	if p.mfa != nil {
		var err error
		if code, err = p.mfa.Token(ctx); err != nil {
			return Credentials{}, fmt.Errorf("sts: assume role %s: %w", p.roleARN, err)
		}
	}
	if code != "" {
		in.TokenCode = aws.String(code)
	}
	out, err := p.client.AssumeRole(ctx, &in)
	if err != nil {
		return Credentials{}, p.explain(err, code)
	}
	c := out.Credentials
	if c == nil || out.AssumedRoleUser == nil || aws.ToString(c.AccessKeyId) == "" || aws.ToString(c.SecretAccessKey) == "" || aws.ToString(c.SessionToken) == "" || c.Expiration == nil {
		return Credentials{}, fmt.Errorf("sts: assume role %s: %s answered without complete credentials", p.roleARN, p.endpoint)
	}
	if now := p.clock.Now(); !c.Expiration.After(now) {
		return Credentials{}, fmt.Errorf("sts: assume role %s: %s sent credentials that expired at %s, before now (%s): check this machine's clock",
			p.roleARN, p.endpoint, c.Expiration.UTC().Format(time.RFC3339), now.UTC().Format(time.RFC3339))
	}
	return Credentials{
		AccessKeyID:     aws.ToString(c.AccessKeyId),
		SecretAccessKey: aws.ToString(c.SecretAccessKey),
		SessionToken:    aws.ToString(c.SessionToken),
		Expires:         *c.Expiration,
		Origin:          "sts:" + p.roleARN,
		Identity:        aws.ToString(out.AssumedRoleUser.Arn),
	}, nil
}

// STSError is an error answer from STS: AWS's code and message, and what
// to check.
type STSError struct {
	RoleARN   string
	Code      string // AccessDenied, ExpiredToken, RegionDisabled, ...
	Message   string // AWS's message, with any MFA code hidden
	RequestID string
	Hint      string
	Err       error
}

func (e *STSError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "sts: assume role %s: %s: %s", e.RoleARN, e.Code, e.Message)
	if e.RequestID != "" {
		fmt.Fprintf(&b, " (request id %s)", e.RequestID)
	}
	if e.Hint != "" {
		b.WriteString("; ")
		b.WriteString(e.Hint)
	}
	return b.String()
}

func (e *STSError) Unwrap() error { return e.Err }

// explain turns what the SDK returned into an error that names the role,
// carries AWS's code and message, and says what to check.
func (p *STS) explain(err error, code string) error {
	var api smithy.APIError
	if !errors.As(err, &api) {
		if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled) {
			return fmt.Errorf("sts: assume role %s: no answer from %s in time (check the endpoint, region and network): %w", p.roleARN, p.endpoint, err)
		}
		var de *smithy.DeserializationError
		var xe *xml.SyntaxError
		if errors.As(err, &de) || errors.As(err, &xe) {
			// Not the XML reader's message: it quotes the answer (an
			// entity name, say), which may be part of a secret key.
			msg := fmt.Sprintf("sts: assume role %s: the answer from %s is not STS's XML (check the endpoint)", p.roleARN, p.endpoint)
			var what []string
			var re *awshttp.ResponseError
			if errors.As(err, &re) {
				what = append(what, fmt.Sprintf("HTTP %d", re.HTTPStatusCode()))
			}
			if xe != nil {
				what = append(what, fmt.Sprintf("XML syntax error on line %d", xe.Line))
			}
			if len(what) > 0 {
				msg += ": " + strings.Join(what, ", ")
			}
			return &hiddenError{msg: msg, err: err}
		}
		var netErr net.Error
		if errors.As(err, &netErr) {
			return fmt.Errorf("sts: assume role %s: cannot reach %s (check the endpoint, region and network): %w", p.roleARN, p.endpoint, err)
		}
		return fmt.Errorf("sts: assume role %s: calling %s: %w", p.roleARN, p.endpoint, err)
	}
	e := &STSError{RoleARN: p.roleARN, Code: api.ErrorCode(), Message: api.ErrorMessage(), Err: err}
	e.Code = strings.TrimSuffix(e.Code, "Exception")
	if code != "" {
		e.Message = strings.ReplaceAll(e.Message, code, "######")
	}
	var re *awshttp.ResponseError
	if errors.As(err, &re) {
		e.RequestID = re.ServiceRequestID()
	}
	e.Hint = stsHint(e.Code, e.Message, p.mfa != nil || code != "")
	return e
}

// hiddenError is err with a message of its own that does not show err's.
type hiddenError struct {
	msg string
	err error
}

func (e *hiddenError) Error() string { return e.msg }
func (e *hiddenError) Unwrap() error { return e.err }

func stsHint(code, msg string, mfa bool) string {
	switch code {
	case "AccessDenied":
		switch {
		case strings.Contains(msg, "one time pass code") && mfa:
			return "check that the MFA command prints the current code: STS refuses a code that was already used or is out of date"
		case strings.Contains(msg, "MultiFactorAuthentication"):
			return "check serial_number (the MFA device ARN of the identity that calls STS) and the MFA command"
		}
		return "check that the role's trust policy allows the identity that calls STS (and external_id, MFA or source_identity if it asks for them), and that this identity may call sts:AssumeRole on the role"
	case "ExpiredToken":
		return "check the credentials that call STS: they have expired (refresh the source or the profile's session)"
	case "InvalidClientTokenId":
		return "check the credentials that call STS: the access key or session token is not valid (deleted, mistyped, or from another partition)"
	case "SignatureDoesNotMatch":
		return "check the secret key of the credentials that call STS, and this machine's clock"
	case "RegionDisabled":
		return "check region: STS is not activated in it for the account (IAM account settings), or pick another region"
	case "ValidationError":
		return "check duration (15m to 12h, at most the role's maximum session duration, at most 1h when chaining roles), role_session_name, tags and the MFA code format"
	case "MalformedPolicyDocument":
		return "check policy, the inline session policy"
	case "PackedPolicyTooLarge":
		return "check policy, policy_arns and tags: together they are too large"
	case "Throttling", "ThrottlingException", "RequestLimitExceeded":
		return "STS is throttling; signet retries with backoff"
	case "InternalFailure", "ServiceUnavailable", "InternalError":
		return "STS failed; signet retries with backoff"
	}
	return ""
}

// baseProvider adapts a Source's Credentials to the SDK. There is no SDK
// cache on top: the Source already caches and refreshes in time.
func baseProvider(base func(context.Context) (Credentials, error)) aws.CredentialsProvider {
	return aws.CredentialsProviderFunc(func(ctx context.Context) (aws.Credentials, error) {
		c, err := base(ctx)
		if err != nil {
			return aws.Credentials{}, err
		}
		return aws.Credentials{
			AccessKeyID:     c.AccessKeyID,
			SecretAccessKey: c.SecretAccessKey,
			SessionToken:    c.SessionToken,
			Source:          c.Origin,
			CanExpire:       c.CanExpire(),
			Expires:         c.Expires,
		}, nil
	})
}

// stsHTTPClient never takes a proxy from the environment: signet may be
// the HTTPS_PROXY of its own environment, and would then wait for itself.
func stsHTTPClient(roots *x509.CertPool) *awshttp.BuildableClient {
	return awshttp.NewBuildableClient().WithTransportOptions(func(tr *http.Transport) {
		tr.Proxy = nil
		if tr.TLSClientConfig == nil {
			tr.TLSClientConfig = &tls.Config{MinVersion: tls.VersionTLS12}
		}
		if roots != nil {
			tr.TLSClientConfig.RootCAs = roots
		}
	})
}

// partitionRegion is the main region of a role ARN's partition.
func partitionRegion(roleARN string) string {
	switch {
	case strings.HasPrefix(roleARN, "arn:aws-cn:"):
		return "cn-north-1"
	case strings.HasPrefix(roleARN, "arn:aws-us-gov:"):
		return "us-gov-west-1"
	}
	return "us-east-1"
}

func isTokenCode(s string) bool {
	return len(s) == 6 && strings.Trim(s, "0123456789") == ""
}

func firstNonEmpty(vs ...string) string {
	for _, v := range vs {
		if v != "" {
			return v
		}
	}
	return ""
}

func optional(s string) *string {
	if s == "" {
		return nil
	}
	return aws.String(s)
}
