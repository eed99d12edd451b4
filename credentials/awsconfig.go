package credentials

import (
	"bufio"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// AWSProfile is what an assume-role profile of the AWS config file says.
// Only the keys STS needs are kept; any other key (output, cli_pager, s3
// sub-sections, sso_*, keys of tools yet to come) is ignored.
type AWSProfile struct {
	Name            string
	RoleARN         string
	SourceProfile   string
	MFASerial       string
	Duration        time.Duration // from duration_seconds
	ExternalID      string
	RoleSessionName string
	Region          string
}

// maxDurationSeconds is the most seconds a time.Duration holds.
const maxDurationSeconds = math.MaxInt64 / int64(time.Second)

// AWSConfigFile is the AWS config file the CLI and SDKs read: getenv's
// AWS_CONFIG_FILE, else .aws/config in the home directory.
func AWSConfigFile(getenv func(string) string) (string, error) {
	if f := getenv("AWS_CONFIG_FILE"); f != "" {
		return expandHome(f, getenv)
	}
	home := getenv("HOME")
	if home == "" {
		home = getenv("USERPROFILE")
	}
	if home == "" {
		return "", errors.New("neither AWS_CONFIG_FILE nor HOME is set")
	}
	return filepath.Join(home, ".aws", "config"), nil
}

func expandHome(f string, getenv func(string) string) (string, error) {
	if f != "~" && !strings.HasPrefix(f, "~/") {
		return f, nil
	}
	home := getenv("HOME")
	if home == "" {
		return "", fmt.Errorf("%s starts with ~ and HOME is not set", f)
	}
	return filepath.Join(home, f[1:]), nil
}

// ReadAWSProfile reads profile name from the AWS config file at path:
// section [profile NAME], or [default] (or [profile default]) for
// "default". A missing profile, or a duration_seconds that is not a whole
// number of seconds, is an error.
func ReadAWSProfile(path, name string) (AWSProfile, error) {
	f, err := os.Open(path)
	if err != nil {
		return AWSProfile{}, fmt.Errorf("aws config: %w", err)
	}
	defer f.Close()

	p := AWSProfile{Name: name}
	var found, in bool
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	for n := 1; sc.Scan(); n++ {
		raw := sc.Text()
		line := strings.TrimSpace(raw)
		if line == "" || line[0] == '#' || line[0] == ';' {
			continue
		}
		if line[0] == '[' {
			end := strings.IndexByte(line, ']')
			if end < 0 {
				return AWSProfile{}, fmt.Errorf("aws config %s:%d: section header without ']'", path, n)
			}
			in = sectionIsProfile(strings.TrimSpace(line[1:end]), name)
			found = found || in
			continue
		}
		// An indented line belongs to the key above (a sub-section such
		// as "s3 =" followed by "  max_concurrent_requests = 20"); none of
		// the keys read here has one.
		if raw[0] == ' ' || raw[0] == '\t' {
			continue
		}
		if !in {
			continue
		}
		k, v, ok := strings.Cut(line, "=")
		if !ok {
			return AWSProfile{}, fmt.Errorf("aws config %s:%d: profile %s: a line that is not key = value", path, n, name)
		}
		k, v = strings.ToLower(strings.TrimSpace(k)), stripInlineComment(strings.TrimSpace(v))
		switch k {
		case "role_arn":
			p.RoleARN = v
		case "source_profile":
			p.SourceProfile = v
		case "mfa_serial":
			p.MFASerial = v
		case "external_id":
			p.ExternalID = v
		case "role_session_name":
			p.RoleSessionName = v
		case "region":
			p.Region = v
		case "duration_seconds":
			secs, err := strconv.Atoi(v)
			// Past maxDurationSeconds the Duration would wrap around.
			if err != nil || secs <= 0 || int64(secs) > maxDurationSeconds {
				return AWSProfile{}, fmt.Errorf("aws config %s:%d: profile %s: duration_seconds %q is not a whole number of seconds", path, n, name, v)
			}
			p.Duration = time.Duration(secs) * time.Second
		}
	}
	if err := sc.Err(); err != nil {
		return AWSProfile{}, fmt.Errorf("aws config %s: %w", path, err)
	}
	if !found {
		return AWSProfile{}, fmt.Errorf("aws config %s: profile %s not found", path, name)
	}
	return p, nil
}

// sectionIsProfile: the config file names profiles "profile NAME", except
// the default one, which may be plain "default".
func sectionIsProfile(section, name string) bool {
	if section == "default" {
		return name == "default"
	}
	kind, rest, ok := strings.Cut(section, " ")
	return ok && kind == "profile" && strings.TrimSpace(rest) == name
}

// stripInlineComment removes " # ..." and " ; ...": none of the values read
// here (ARNs, names, regions, external IDs) may contain '#' or ';'.
func stripInlineComment(v string) string {
	for i := 1; i < len(v); i++ {
		if (v[i] == '#' || v[i] == ';') && (v[i-1] == ' ' || v[i-1] == '\t') {
			return strings.TrimSpace(v[:i])
		}
	}
	return v
}
