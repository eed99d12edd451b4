package configs

import (
	"encoding/json"
	stdmaps "maps"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// STS assumes an IAM role with AWS STS AssumeRole, optionally with MFA.
// The credentials that call STS come from another source (Source, role
// chaining), from a profile of the AWS config file (Profile), or from the
// AWS SDK default chain when neither is set.
type STS struct {
	// RoleARN is the role to assume: arn:aws:iam::123456789012:role/name.
	// Required unless Profile names a profile with role_arn.
	RoleARN string `koanf:"role_arn" yaml:"role_arn,omitempty" json:"role_arn,omitempty" toml:"role_arn,omitempty"`
	// RoleSessionName shows in CloudTrail; empty means the profile's, else
	// "signet".
	RoleSessionName string `koanf:"role_session_name" yaml:"role_session_name,omitempty" json:"role_session_name,omitempty" toml:"role_session_name,omitempty"`
	// Duration is the session lifetime, 15m to 12h; zero means the
	// profile's duration_seconds, else STS's default of one hour.
	Duration Duration `koanf:"duration" yaml:"duration,omitempty" json:"duration,omitempty" toml:"duration,omitempty"`
	// ExternalID is the external ID the role's trust policy asks for.
	ExternalID string `koanf:"external_id" yaml:"external_id,omitempty" json:"external_id,omitempty" toml:"external_id,omitempty"`
	// Policy is an inline session policy (JSON) that narrows the role.
	Policy string `koanf:"policy" yaml:"policy,omitempty" json:"policy,omitempty" toml:"policy,omitempty"`
	// PolicyARNs are managed session policies that narrow the role.
	PolicyARNs []string `koanf:"policy_arns" yaml:"policy_arns,omitempty" json:"policy_arns,omitempty" toml:"policy_arns,omitempty"`
	// Tags are session tags.
	Tags map[string]string `koanf:"tags" yaml:"tags,omitempty" json:"tags,omitempty" toml:"tags,omitempty"`
	// TransitiveTagKeys are keys of Tags that persist through role chaining.
	TransitiveTagKeys []string `koanf:"transitive_tag_keys" yaml:"transitive_tag_keys,omitempty" json:"transitive_tag_keys,omitempty" toml:"transitive_tag_keys,omitempty"`
	// SourceIdentity is the source identity set on the session.
	SourceIdentity string `koanf:"source_identity" yaml:"source_identity,omitempty" json:"source_identity,omitempty" toml:"source_identity,omitempty"`
	// SerialNumber is the MFA device ARN (or hardware serial). Required
	// with MFA or TokenCode, unless the profile has mfa_serial.
	SerialNumber string `koanf:"serial_number" yaml:"serial_number,omitempty" json:"serial_number,omitempty" toml:"serial_number,omitempty"`
	// TokenCode is a fixed 6-digit MFA code. STS accepts a code once, so
	// this only suits one short run; prefer MFA.
	TokenCode string `koanf:"token_code" yaml:"token_code,omitempty" json:"token_code,omitempty" toml:"token_code,omitempty"`
	// MFA runs a command for a fresh code on every refresh.
	MFA *MFA `koanf:"mfa" yaml:"mfa,omitempty" json:"mfa,omitempty" toml:"mfa,omitempty"`
	// Region is the STS region; empty means the profile's, else
	// AWS_REGION, else the role partition's main region.
	Region string `koanf:"region" yaml:"region,omitempty" json:"region,omitempty" toml:"region,omitempty"`
	// Endpoint overrides the regional endpoint https://sts.REGION.amazonaws.com:
	// an https URL, or http to a loopback host (tests).
	Endpoint string `koanf:"endpoint" yaml:"endpoint,omitempty" json:"endpoint,omitempty" toml:"endpoint,omitempty"`
	// Source names another source whose credentials call STS.
	Source string `koanf:"source" yaml:"source,omitempty" json:"source,omitempty" toml:"source,omitempty"`
	// Profile names a profile of the AWS config file (AWS_CONFIG_FILE or
	// ~/.aws/config) to read role_arn, source_profile, mfa_serial,
	// duration_seconds, external_id, role_session_name and region from.
	// Keys set here win over the profile's.
	Profile string `koanf:"profile" yaml:"profile,omitempty" json:"profile,omitempty" toml:"profile,omitempty"`
}

// MFA is a command that prints an MFA code, such as
// ["ykman", "oath", "accounts", "code", "--single", "AWS"]. It is run
// without a shell; the code is the last standalone 6-digit number it
// prints on stdout.
type MFA struct {
	// Command is an argv list, or a string split like a shell would split
	// it (quotes and backslashes) but never run by one.
	Command Command `koanf:"command" yaml:"command" json:"command" toml:"command"`
	// Timeout bounds one run; default 30s, at most 5m.
	Timeout Duration `koanf:"timeout" yaml:"timeout" json:"timeout" toml:"timeout"`
	// Env names the only environment variables the command gets, with
	// the values signet has; not even PATH is passed unless listed.
	Env []string `koanf:"env" yaml:"env,omitempty" json:"env,omitempty" toml:"env,omitempty"`
}

// Command is an argv list.
type Command []string

// Duration is a time.Duration that every output format writes as "1h0m0s",
// so that a rendered config loads back unchanged.
type Duration time.Duration

// MarshalText writes d like time.Duration.String.
func (d Duration) MarshalText() ([]byte, error) { return []byte(time.Duration(d).String()), nil }

// STS and MFA limits, from the STS AssumeRole API reference.
const (
	MinSTSDuration        = 15 * time.Minute
	MaxSTSDuration        = 12 * time.Hour
	maxChainedSTSDuration = time.Hour
	DefaultMFATimeout     = 30 * time.Second
	maxMFATimeout         = 5 * time.Minute
	maxSessionTags        = 50
	maxPolicyARNs         = 10
	maxInlinePolicy       = 2048
)

var (
	roleARNRE     = regexp.MustCompile(`^arn:aws(-cn|-us-gov)?:iam::[0-9]{12}:role/[\w+=,.@/-]+$`)
	policyARNRE   = regexp.MustCompile(`^arn:aws(-cn|-us-gov)?:iam::([0-9]{12}|aws):policy/[\w+=,.@/-]+$`)
	sessionNameRE = regexp.MustCompile(`^[\w+=,.@-]{2,64}$`)
	externalIDRE  = regexp.MustCompile(`^[\w+=,.@:/-]+$`)
	serialRE      = regexp.MustCompile(`^[\w+=/:,.@-]{9,256}$`)
	tokenCodeRE   = regexp.MustCompile(`^[0-9]{6}$`)
	tagRE         = regexp.MustCompile(`^[\p{L}\p{Z}\p{N}_.:/=+\-@]*$`)
	envNameRE     = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)
	profileNameRE = regexp.MustCompile(`^[^\s\[\]]+$`)
)

const (
	roleARNAccepted     = "an IAM role ARN like arn:aws:iam::123456789012:role/name (partitions aws, aws-cn, aws-us-gov)"
	stsEndpointAccepted = "an absolute https URL with no path, like https://sts.eu-west-1.amazonaws.com (http only to a loopback host)"
)

// normalizeSTS fills the defaults that do not depend on a profile.
func (s *STS) normalize() {
	if s.MFA != nil && s.MFA.Timeout == 0 {
		s.MFA.Timeout = Duration(DefaultMFATimeout)
	}
	if len(s.PolicyARNs) == 0 {
		s.PolicyARNs = nil
	}
	if len(s.Tags) == 0 {
		s.Tags = nil
	}
	if len(s.TransitiveTagKeys) == 0 {
		s.TransitiveTagKeys = nil
	}
	if s.MFA != nil && len(s.MFA.Env) == 0 {
		s.MFA.Env = nil
	}
}

func (s *STS) validate(p path) Errors {
	var errs Errors
	add := func(e *Error) {
		if e != nil {
			errs = append(errs, e)
		}
	}
	switch {
	case s.Source != "" && s.Profile != "":
		add(newError(p.field("profile"), s.Profile, "is set together with source",
			"either source (another signet source calls STS) or profile (a profile of ~/.aws/config), not both"))
	case s.Profile != "" && !profileNameRE.MatchString(s.Profile):
		add(newError(p.field("profile"), s.Profile, "is not a valid profile name", "a profile name of ~/.aws/config without spaces or brackets"))
	}
	switch {
	case s.RoleARN == "" && s.Profile == "":
		add(newError(p.field("role_arn"), "", "is required", roleARNAccepted+", or a profile that has role_arn"))
	case s.RoleARN != "" && !roleARNRE.MatchString(s.RoleARN):
		add(newError(p.field("role_arn"), s.RoleARN, "is not a valid role ARN", roleARNAccepted))
	}
	if v := s.RoleSessionName; v != "" && !sessionNameRE.MatchString(v) {
		add(newError(p.field("role_session_name"), v, "is not valid", "2 to 64 letters, digits and +=,.@_-"))
	}
	if d := time.Duration(s.Duration); d != 0 && (d < MinSTSDuration || d > MaxSTSDuration) {
		add(newError(p.field("duration"), d.String(), "is out of range", "a duration from 15m to 12h, or 0 for the profile's or STS's default (1h)"))
	}
	if v := s.ExternalID; v != "" && (len(v) < 2 || len(v) > 1224 || !externalIDRE.MatchString(v)) {
		add(newError(p.field("external_id"), v, "is not valid", "2 to 1224 letters, digits and +=,.@:/_-"))
	}
	if v := s.Policy; v != "" {
		switch {
		case utf8.RuneCountInString(v) > maxInlinePolicy:
			add(newError(p.field("policy"), "", "is longer than "+strconv.Itoa(maxInlinePolicy)+" characters", "a JSON policy document of at most 2048 characters"))
		case !json.Valid([]byte(v)):
			add(newError(p.field("policy"), "", "is not valid JSON", "a JSON policy document like {\"Version\":\"2012-10-17\",\"Statement\":[...]}"))
		}
	}
	if len(s.PolicyARNs) > maxPolicyARNs {
		add(newError(p.field("policy_arns"), "", "has more than "+strconv.Itoa(maxPolicyARNs)+" ARNs", "at most 10 managed policy ARNs"))
	}
	for i, a := range s.PolicyARNs {
		if !policyARNRE.MatchString(a) {
			add(newError(p.field("policy_arns").index(i), a, "is not a valid policy ARN", "a managed policy ARN like arn:aws:iam::aws:policy/ReadOnlyAccess"))
		}
	}
	if len(s.Tags) > maxSessionTags {
		add(newError(p.field("tags"), "", "has more than "+strconv.Itoa(maxSessionTags)+" tags", "at most 50 session tags"))
	}
	for _, k := range slices.Sorted(stdmaps.Keys(s.Tags)) {
		const accepted = "keys of 1 to 128 and values of up to 256 letters, digits, spaces and _.:/=+-@"
		if n := utf8.RuneCountInString(k); n == 0 || n > 128 || !tagRE.MatchString(k) {
			add(newError(p.field("tags").key(k), k, "is not a valid tag key", accepted))
		} else if v := s.Tags[k]; utf8.RuneCountInString(v) > 256 || !tagRE.MatchString(v) {
			add(newError(p.field("tags").key(k), v, "is not a valid tag value", accepted))
		}
	}
	for i, k := range s.TransitiveTagKeys {
		if _, ok := s.Tags[k]; !ok {
			add(newError(p.field("transitive_tag_keys").index(i), k, "is not a key of tags", "keys of the tags block"))
		}
	}
	if v := s.SourceIdentity; v != "" && !sessionNameRE.MatchString(v) {
		add(newError(p.field("source_identity"), v, "is not valid", "2 to 64 letters, digits and +=,.@_-"))
	}
	if v := s.SerialNumber; v != "" && !serialRE.MatchString(v) {
		add(newError(p.field("serial_number"), v, "is not valid", "an MFA device ARN like arn:aws:iam::123456789012:mfa/name, or a hardware serial"))
	}
	if v := s.TokenCode; v != "" && !tokenCodeRE.MatchString(v) {
		add(newError(p.field("token_code"), v, "is not a 6-digit code", "six digits, or better an mfa block with a command"))
	}
	if s.MFA != nil && s.TokenCode != "" {
		add(newError(p.field("token_code"), s.TokenCode, "is set together with mfa", "either mfa (a command run on every refresh) or token_code, not both"))
	}
	if (s.MFA != nil || s.TokenCode != "") && s.SerialNumber == "" && s.Profile == "" {
		add(newError(p.field("serial_number"), "", "is required with mfa or token_code", "the MFA device ARN, like arn:aws:iam::123456789012:mfa/name"))
	}
	if s.SerialNumber != "" && s.MFA == nil && s.TokenCode == "" {
		add(newError(p.field("mfa"), "", "is required when serial_number is set", "a mapping with command, the program that prints an MFA code"))
	}
	if s.MFA != nil {
		errs = append(errs, s.MFA.validate(p.field("mfa"))...)
	}
	add(optionalMatch(p.field("region"), s.Region, regionRE, regionAccepted))
	if s.Endpoint != "" {
		add(checkSTSEndpoint(p.field("endpoint"), s.Endpoint))
	}
	return errs
}

func (m *MFA) validate(p path) Errors {
	var errs Errors
	switch {
	case len(m.Command) == 0:
		errs = append(errs, newError(p.field("command"), "", "is required", "an argv list like [ykman, oath, accounts, code, --single, AWS]"))
	case m.Command[0] == "":
		errs = append(errs, newError(p.field("command").index(0), "", "is empty", "the program to run, a name looked up in PATH or a path"))
	}
	if d := time.Duration(m.Timeout); d <= 0 || d > maxMFATimeout {
		errs = append(errs, newError(p.field("timeout"), d.String(), "is out of range", "a duration greater than 0 and at most 5m"))
	}
	for i, n := range m.Env {
		if !envNameRE.MatchString(n) {
			errs = append(errs, newError(p.field("env").index(i), n, "is not a variable name", "names like HOME or YKMAN_OATH_DEVICE; values are taken from signet's environment"))
		}
	}
	return errs
}

func checkSTSEndpoint(p path, v string) *Error {
	return checkServiceURL(p, v, serviceURL{
		accepted:  stsEndpointAccepted,
		noPath:    true,
		noQuery:   true,
		plainRisk: "anyone on the path could read the keys STS sends",
	})
}

// validateSTSSources checks what needs every source at once: that each sts
// source's source exists, that no chain of them loops, and that a role
// assumed with another role's keys asks for at most one hour, the limit
// STS puts on role chaining.
func validateSTSSources(root path, sources map[string]Source) Errors {
	var errs Errors
	names := slices.Sorted(stdmaps.Keys(sources))
	reported := map[string]bool{}
	for _, name := range names {
		s := sources[name]
		if s.Method != MethodSTS || s.STS == nil || s.STS.Source == "" {
			continue
		}
		p := root.field("sources").key(name).field("sts").field("source")
		next, ok := sources[s.STS.Source]
		if !ok {
			errs = append(errs, newError(p, s.STS.Source, "is not a declared source", "one of the sources: "+strings.Join(names, ", ")))
			continue
		}
		if d := time.Duration(s.STS.Duration); next.Method == MethodSTS && d > maxChainedSTSDuration {
			errs = append(errs, newError(root.field("sources").key(name).field("sts").field("duration"), d.String(),
				"is more than 1h, and source "+s.STS.Source+" is an sts source: STS limits chained role sessions to one hour",
				"a duration from 15m to 1h"))
		}
		// Follow the chain; it either ends at a non-sts source or comes
		// back to a source already on it.
		chain := []string{name}
		cur := s.STS.Source
		for {
			if i := slices.Index(chain, cur); i >= 0 {
				cycle := append(slices.Clone(chain[i:]), cur)
				key := strings.Join(slices.Sorted(slices.Values(chain[i:])), ",")
				if !reported[key] && i == 0 {
					reported[key] = true
					errs = append(errs, newError(p, s.STS.Source, "forms a cycle: "+strings.Join(cycle, " → "),
						"a chain of sources that ends at a source of another method (chain, static)"))
				}
				break
			}
			cs, ok := sources[cur]
			if !ok || cs.Method != MethodSTS || cs.STS == nil || cs.STS.Source == "" {
				break
			}
			chain = append(chain, cur)
			cur = cs.STS.Source
		}
	}
	return errs
}

// commandHook reads mfa.command: a list as it is, a string split into
// words.
func commandHook(_ reflect.Type, to reflect.Type, data any) (any, error) {
	if to != reflect.TypeFor[Command]() {
		return data, nil
	}
	s, ok := data.(string)
	if !ok {
		return data, nil
	}
	argv, problem := splitCommand(s)
	if problem != "" {
		return nil, &valueError{value: s, problem: problem, accepted: "an argv list like [ykman, oath, accounts, code], or a string of words with quotes as in a shell"}
	}
	return Command(argv), nil
}

// splitCommand splits s into words the way a POSIX shell does with quotes
// and backslashes, and refuses what only a shell would do (pipes,
// redirections, variables, globs, ~), since the command is never run by
// one: a silently literal '|' would be worse than an error.
func splitCommand(s string) ([]string, string) {
	var (
		words  []string
		cur    strings.Builder
		inWord bool
	)
	rs := []rune(s)
	for i := 0; i < len(rs); i++ {
		r := rs[i]
		switch {
		case r == ' ' || r == '\t' || r == '\n':
			if inWord {
				words = append(words, cur.String())
				cur.Reset()
				inWord = false
			}
		case r == '\'':
			j := i + 1
			for j < len(rs) && rs[j] != '\'' {
				j++
			}
			if j == len(rs) {
				return nil, "has an unterminated single quote"
			}
			cur.WriteString(string(rs[i+1 : j]))
			i, inWord = j, true
		case r == '"':
			j := i + 1
			for ; j < len(rs) && rs[j] != '"'; j++ {
				if rs[j] == '\\' && j+1 < len(rs) && strings.ContainsRune("\"\\$`\n", rs[j+1]) {
					j++
					if rs[j] != '\n' {
						cur.WriteRune(rs[j])
					}
					continue
				}
				if rs[j] == '$' || rs[j] == '`' {
					return nil, "uses shell expansion (" + string(rs[j]) + ") but is never run by a shell"
				}
				cur.WriteRune(rs[j])
			}
			if j == len(rs) {
				return nil, "has an unterminated double quote"
			}
			i, inWord = j, true
		case r == '\\':
			if i+1 == len(rs) {
				return nil, "ends with a backslash"
			}
			i++
			if rs[i] != '\n' {
				cur.WriteRune(rs[i])
				inWord = true
			}
		case strings.ContainsRune("|&;<>()$`*?[", r), r == '~' && !inWord:
			return nil, "uses shell syntax (" + string(r) + ") but is never run by a shell"
		default:
			cur.WriteRune(r)
			inWord = true
		}
	}
	if inWord {
		words = append(words, cur.String())
	}
	if len(words) == 0 {
		return nil, "is empty"
	}
	return words, ""
}

func (s *STS) clone() *STS {
	out := *s
	out.PolicyARNs = slices.Clone(s.PolicyARNs)
	out.TransitiveTagKeys = slices.Clone(s.TransitiveTagKeys)
	out.Tags = stdmaps.Clone(s.Tags)
	if s.MFA != nil {
		m := *s.MFA
		m.Command = slices.Clone(m.Command)
		m.Env = slices.Clone(m.Env)
		out.MFA = &m
	}
	return &out
}
