package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// suiteDir holds AWS's SigV4 test vectors (see signer/suite_test.go).
const suiteDir = "../../../shared/sigv4-test-suite/v4"

type suiteCase struct {
	Credentials struct {
		AccessKeyID     string `json:"access_key_id"`
		SecretAccessKey string `json:"secret_access_key"`
		Token           string `json:"token"`
	} `json:"credentials"`
	Region    string `json:"region"`
	Service   string `json:"service"`
	SignBody  bool   `json:"sign_body"`
	Timestamp string `json:"timestamp"`
}

// suiteArgs turns a case's request.txt into debug sign's arguments: the
// method, the URL, a --header per header line, --data for the body.
func suiteArgs(t *testing.T, raw string, signBody bool) []string {
	t.Helper()
	head, body, _ := strings.Cut(raw, "\n\n")
	lines := strings.Split(head, "\n")
	method, rest, _ := strings.Cut(lines[0], " ")
	target := rest[:strings.LastIndexByte(rest, ' ')]
	var host string
	var headers []string
	for _, l := range lines[1:] {
		if l == "" {
			continue
		}
		name, value, _ := strings.Cut(l, ":")
		switch strings.ToLower(name) {
		case "host":
			host = value
		case "content-length":
		default:
			headers = append(headers, "--header", l)
		}
	}
	args := append([]string{method, "https://" + host + target}, headers...)
	if body != "" {
		args = append(args, "--data", body)
	}
	if signBody {
		// sign_body: the client sends its payload hash, which signet keeps.
		sum := sha256.Sum256([]byte(body))
		args = append(args, "--header", "X-Amz-Content-Sha256: "+hex.EncodeToString(sum[:]))
	}
	return args
}

// section returns the text between two marker lines of debug sign's output.
func section(t *testing.T, out, from, to string) string {
	t.Helper()
	_, rest, ok := strings.Cut(out, "\n"+from+"\n")
	if !ok {
		t.Fatalf("no %q in output:\n%s", from, out)
	}
	got, _, ok := strings.Cut(rest, "\n"+to+"\n")
	if !ok {
		t.Fatalf("no %q after %q in output:\n%s", to, from, out)
	}
	return got
}

// TestDebugSignMatchesSuite: with the suite's fixed clock and credentials,
// debug sign prints AWS's canonical request, string to sign and signature
// byte for byte, and never the secret key or session token.
func TestDebugSignMatchesSuite(t *testing.T) {
	cases := []string{
		"get-vanilla",
		"get-vanilla-query",
		"get-vanilla-query-order-key-case",
		"get-vanilla-empty-query-key",
		"get-vanilla-query-unreserved",
		"get-unreserved",
		"get-header-value-trim",
		"get-header-key-duplicate",
		"post-vanilla",
		"post-vanilla-query",
		"post-header-key-case",
		"post-header-value-case",
		"post-x-www-form-urlencoded",
		"post-x-www-form-urlencoded-parameters",
		"get-vanilla-with-session-token",
		"post-sts-header-before",
	}
	for _, name := range cases {
		t.Run(name, func(t *testing.T) {
			dir := filepath.Join(suiteDir, name)
			read := func(f string) string {
				b, err := os.ReadFile(filepath.Join(dir, f))
				if err != nil {
					t.Fatal(err)
				}
				return string(b)
			}
			var c suiteCase
			if err := json.Unmarshal([]byte(read("context.json")), &c); err != nil {
				t.Fatal(err)
			}
			home := t.TempDir()
			cfg := filepath.Join(home, "signet.yaml")
			writeFile(t, cfg, "sources:\n  suite:\n    method: static\n    static:\n"+
				"      access_key_id: "+c.Credentials.AccessKeyID+"\n"+
				"      secret_access_key: "+c.Credentials.SecretAccessKey+"\n"+
				"      session_token: '"+c.Credentials.Token+"'\n"+
				"routes:\n  - hosts: [example.amazonaws.com]\n    source: suite\n")
			args := append([]string{"debug", "sign", "-c", cfg, "--service", c.Service, "--region", c.Region, "--date", c.Timestamp},
				suiteArgs(t, read("request.txt"), c.SignBody)...)
			var stdout, stderr bytes.Buffer
			if code := run(context.Background(), args, &stdout, &stderr, []string{"HOME=" + home, "AWS_EC2_METADATA_DISABLED=true"}); code != exitOK {
				t.Fatalf("exit %d\nargs %q\nstderr: %s", code, args, &stderr)
			}
			out := stdout.String()

			wantCanonical := read("header-canonical-request.txt")
			if tok := c.Credentials.Token; tok != "" {
				// The token is a signed header; debug sign hides it.
				wantCanonical = strings.ReplaceAll(wantCanonical, tok, "REDACTED")
			}
			if got := section(t, out, markCanonical, markToSign); got != wantCanonical {
				t.Errorf("canonical request\n got %q\nwant %q", got, wantCanonical)
			}
			if got, want := section(t, out, markToSign, ""), read("header-string-to-sign.txt"); got != want {
				t.Errorf("string to sign\n got %q\nwant %q", got, want)
			}
			sig := strings.TrimSpace(read("header-signature.txt"))
			if !strings.Contains(out, "\nsignature       "+sig+"\n") {
				t.Errorf("signature %s not in output:\n%s", sig, out)
			}
			var wantAuth string
			for l := range strings.SplitSeq(read("header-signed-request.txt"), "\n") {
				if v, ok := strings.CutPrefix(l, "Authorization:"); ok {
					wantAuth = strings.Replace(v, "Credential="+c.Credentials.AccessKeyID+"/", "Credential=AKID…MPLE/", 1)
				}
			}
			if !strings.Contains(out, "\nAuthorization: "+wantAuth+"\n") {
				t.Errorf("Authorization %q not in output:\n%s", wantAuth, out)
			}
			for _, secret := range []string{c.Credentials.SecretAccessKey, c.Credentials.Token, c.Credentials.AccessKeyID} {
				if secret != "" && strings.Contains(out+stderr.String(), secret) {
					t.Errorf("output contains %q:\n%s", secret, out)
				}
			}
		})
	}
}

// TestDebugSignResolvesLikeTheProxy: the route, source and scope come from
// the config as the proxy takes them, and each is said where it came from.
func TestDebugSignResolvesLikeTheProxy(t *testing.T) {
	home := t.TempDir()
	cfg := filepath.Join(home, "signet.yaml")
	writeFile(t, cfg, `sources:
  prod:
    method: static
    static: {access_key_id: AKIAIOSFODNN7EXAMPLE, secret_access_key: very-secret-value-123}
  other:
    method: static
    static: {access_key_id: AKIAOTHEREXAMPLE0001, secret_access_key: other-secret-value-456}
routes:
  - hosts: ["api.example.com"]
    source: other
  - hosts: ["*.amazonaws.com"]
    path_prefix: /private/
    source: other
  - hosts: ["*.amazonaws.com"]
    source: prod
unmatched: deny
`)
	env := []string{"HOME=" + home, "AWS_EC2_METADATA_DISABLED=true"}
	const date = "--date=20240102T030405Z"
	tests := []struct {
		name     string
		args     []string
		want     int
		wantOut  []string
		wantErr  string
		notInOut []string
	}{
		{name: "endpoint table", args: []string{"GET", "https://sqs.eu-west-1.amazonaws.com/?Action=ListQueues", date}, want: exitOK,
			wantOut: []string{"route    routes[2] (hosts *.amazonaws.com)", "source   prod (static), access key AKIA…MPLE",
				"service  sqs (from signet's table of AWS endpoints)", "region   eu-west-1 (from signet's table of AWS endpoints)",
				"20240102/eu-west-1/sqs/aws4_request", "\nAction=ListQueues\n"}},
		{name: "path prefix picks the route", args: []string{"GET", "https://sqs.eu-west-1.amazonaws.com/private/q", date}, want: exitOK,
			wantOut: []string{"routes[1]", "source   other (static)"}},
		{name: "s3 streams unsigned", args: []string{"PUT", "https://b.s3.us-west-2.amazonaws.com/k", "-d", "hello", date}, want: exitOK,
			wantOut: []string{"\nUNSIGNED-PAYLOAD\n--- string to sign", "content-length:5\n", "X-Amz-Content-Sha256: UNSIGNED-PAYLOAD\n"}},
		{name: "body from a file is hashed", args: []string{"POST", "https://sqs.eu-west-1.amazonaws.com/", "--data", "@" + cfg, date}, want: exitOK,
			wantOut: []string{"content-length:"}, notInOut: []string{"UNSIGNED-PAYLOAD"}},
		{name: "placeholder scope", args: []string{"GET", "https://api.example.com/items", date,
			"-H", "Authorization: AWS4-HMAC-SHA256 Credential=AKIDUMMY/20240101/ap-south-1/execute-api/aws4_request, SignedHeaders=host, Signature=0000000000"},
			want: exitOK, wantOut: []string{"service  execute-api (from the placeholder signature the request carries)", "20240102/ap-south-1/execute-api/aws4_request"},
			notInOut: []string{"AKIDUMMY", "Signature=0000000000"}},
		{name: "flags over the table", args: []string{"GET", "https://sqs.eu-west-1.amazonaws.com/", "--region", "us-east-2", date}, want: exitOK,
			wantOut: []string{"region   us-east-2 (from --region)", "service  sqs (from signet's table"}},
		{name: "unknown host on a route", args: []string{"GET", "https://api.example.com/", date}, want: exitFail, wantErr: "--service and --region"},
		{name: "no route, deny", args: []string{"GET", "https://example.org/", date}, want: exitFail, wantErr: "refuses it with 403"},
		{name: "no route, --source", args: []string{"GET", "https://example.org/", "--source", "prod", "--service", "svc", "--region", "us-east-1", date},
			want: exitOK, wantOut: []string{"route    none", "source   prod"}},
		{name: "unknown source", args: []string{"GET", "https://sqs.eu-west-1.amazonaws.com/", "--source", "nope"}, want: exitConfig, wantErr: `--source "nope"`},
		{name: "host header refused", args: []string{"GET", "https://sqs.eu-west-1.amazonaws.com/", "-H", "Host: x"}, want: exitConfig, wantErr: "Host is the URL's"},
		{name: "relative URL", args: []string{"GET", "/path"}, want: exitConfig, wantErr: "absolute"},
		{name: "one argument", args: []string{"GET"}, want: exitConfig, wantErr: "METHOD and URL"},
		{name: "bad date", args: []string{"GET", "https://sqs.eu-west-1.amazonaws.com/", "--date", "yesterday"}, want: exitConfig, wantErr: "--date"},
		{name: "bad header", args: []string{"GET", "https://sqs.eu-west-1.amazonaws.com/", "-H", "no colon"}, want: exitConfig, wantErr: "Name: value"},
		{name: "missing data file", args: []string{"PUT", "https://sqs.eu-west-1.amazonaws.com/", "-d", "@" + filepath.Join(home, "absent")}, want: exitConfig, wantErr: "--data"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			args := append([]string{"debug", "sign", "-c", cfg}, tt.args...)
			if code := run(context.Background(), args, &stdout, &stderr, env); code != tt.want {
				t.Fatalf("exit %d, want %d\nstdout: %s\nstderr: %s", code, tt.want, &stdout, &stderr)
			}
			for _, w := range tt.wantOut {
				if !strings.Contains(stdout.String(), w) {
					t.Errorf("stdout lacks %q:\n%s", w, &stdout)
				}
			}
			if !strings.Contains(stderr.String(), tt.wantErr) {
				t.Errorf("stderr %q lacks %q", &stderr, tt.wantErr)
			}
			for _, n := range append(tt.notInOut, "very-secret-value-123", "other-secret-value-456", "AKIAIOSFODNN7EXAMPLE") {
				if strings.Contains(stdout.String()+stderr.String(), n) {
					t.Errorf("output contains %q:\n%s", n, &stdout)
				}
			}
		})
	}
}

func TestDebugUsage(t *testing.T) {
	for _, args := range [][]string{{"debug"}, {"debug", "frob"}, {"debug", "sign", "-h"}} {
		var stdout, stderr bytes.Buffer
		if code := run(context.Background(), args, &stdout, &stderr, nil); code != exitConfig {
			t.Errorf("%q: exit %d, want %d", args, code, exitConfig)
		}
		if !strings.Contains(stderr.String(), "debug sign") {
			t.Errorf("%q: stderr %q lacks the usage", args, &stderr)
		}
	}
}

// FuzzDebugRequest: whatever URL and header a user types, building the
// request neither panics nor loses the path's bytes.
func FuzzDebugRequest(f *testing.F) {
	f.Add("https://example.amazonaws.com/a%2Fb/c?x=1#frag", "X-Amz-Meta-A: b")
	f.Add("http://h:80/", "Host: x")
	f.Add("https://h?q", "")
	f.Add("https://h/%zz", ":")
	f.Fuzz(func(t *testing.T, rawURL, header string) {
		p := rawURLPath(rawURL)
		if !strings.HasPrefix(p, "/") || strings.ContainsAny(p, "?#") {
			t.Fatalf("rawURLPath(%q) = %q", rawURL, p)
		}
		u, err := url.Parse(rawURL)
		if err != nil || u.Host == "" {
			return
		}
		d := &debugSign{method: "GET", rawURL: rawURL, headers: headerFlags{header}}
		out, cleanup, err := d.request(u, debugRoute{scheme: "https", payload: "auto"})
		defer cleanup()
		if err != nil {
			return
		}
		if got := out.URL.EscapedPath(); out.URL.Opaque == "" && got != p {
			t.Fatalf("path %q became %q", p, got)
		}
	})
}
