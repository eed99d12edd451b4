package main

import (
	"context"
	"errors"
	"flag"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/signet-proxy/signet/extensions/sdk"
)

// broker is an ECS-style credential endpoint that wants one Authorization
// value and records what it got.
func broker(t *testing.T, wantAuth string) (*httptest.Server, *[]string) {
	t.Helper()
	var got []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got = append(got, r.Header.Get("Authorization"))
		w.Header().Set("Content-Type", "application/json")
		if r.Method != http.MethodGet || r.URL.Path != "/creds" {
			w.WriteHeader(http.StatusNotFound)
			io.WriteString(w, `{"code":"NotFound","message":"no such path"}`)
			return
		}
		if r.Header.Get("Authorization") != wantAuth {
			w.WriteHeader(http.StatusUnauthorized)
			io.WriteString(w, `{"code":"AccessDenied","message":"bad authorization token"}`)
			return
		}
		io.WriteString(w, `{"AccessKeyId":"ASIABROKER","SecretAccessKey":"brokersecret","Token":"brokertoken","Expiration":"2031-01-02T03:04:05Z","RoleArn":"arn:aws:iam::1:role/x"}`)
	}))
	t.Cleanup(srv.Close)
	return srv, &got
}

func parse(t *testing.T, args []string, env map[string]string) *config {
	t.Helper()
	fs := flag.NewFlagSet("http-broker", flag.ContinueOnError)
	cfg := bindFlags(fs)
	if err := sdk.ParseArgs(fs, args, envNames(), func(k string) string { return env[k] }); err != nil {
		t.Fatal(err)
	}
	cfg.token = env["AWS_CONTAINER_AUTHORIZATION_TOKEN"]
	return cfg
}

func TestFetchSendsTheTokenAsItIs(t *testing.T) {
	dir := t.TempDir()
	tokenFile := filepath.Join(dir, "token")
	if err := os.WriteFile(tokenFile, []byte("Bearer from-file\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name     string
		wantAuth string // what the broker wants
		args     []string
		env      map[string]string
		sent     string // what it must get
		err      string
	}{
		{"raw token", "s3cr3t-raw", nil, map[string]string{"AWS_CONTAINER_AUTHORIZATION_TOKEN": "s3cr3t-raw"}, "s3cr3t-raw", ""},
		{"bearer token", "Bearer abc.def", nil, map[string]string{"AWS_CONTAINER_AUTHORIZATION_TOKEN": "Bearer abc.def"}, "Bearer abc.def", ""},
		{"the file wins", "Bearer from-file", []string{"-token-file", tokenFile}, map[string]string{"AWS_CONTAINER_AUTHORIZATION_TOKEN": "from-env"}, "Bearer from-file", ""},
		{"file from the environment", "Bearer from-file", nil, map[string]string{"AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE": tokenFile}, "Bearer from-file", ""},
		{"wrong token", "right", nil, map[string]string{"AWS_CONTAINER_AUTHORIZATION_TOKEN": "wrong"}, "wrong", "HTTP 401: AccessDenied: bad authorization token"},
		{"no token", "right", nil, nil, "", "HTTP 401"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			srv, got := broker(t, tc.wantAuth)
			env := map[string]string{"AWS_CONTAINER_CREDENTIALS_FULL_URI": srv.URL + "/creds"}
			for k, v := range tc.env {
				env[k] = v
			}
			c, err := fetch(context.Background(), parse(t, tc.args, env))
			if len(*got) != 1 || (*got)[0] != tc.sent {
				t.Errorf("broker got Authorization %q, want %q", *got, tc.sent)
			}
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("error %v, want %q", err, tc.err)
				}
				if tc.sent != "" && strings.Contains(err.Error(), tc.sent) {
					t.Errorf("the error holds the token")
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			want := sdk.Credentials{AccessKeyID: "ASIABROKER", SecretAccessKey: "brokersecret", SessionToken: "brokertoken",
				Expiration: time.Date(2031, 1, 2, 3, 4, 5, 0, time.UTC)}
			if c != want {
				t.Errorf("got %+v", c)
			}
		})
	}
}

func TestBuildRequest(t *testing.T) {
	cases := []struct {
		name string
		args []string
		env  map[string]string
		url  string
		err  string
	}{
		{"full URI", []string{"-url", "https://broker.example/creds"}, nil, "https://broker.example/creds", ""},
		{"relative URI", nil, map[string]string{"AWS_CONTAINER_CREDENTIALS_RELATIVE_URI": "/v2/credentials/abc"}, "http://169.254.170.2/v2/credentials/abc", ""},
		{"full wins", []string{"-relative-uri", "/x"}, map[string]string{"AWS_CONTAINER_CREDENTIALS_FULL_URI": "https://b/"}, "https://b/", ""},
		{"nothing", nil, nil, "", "no broker"},
		{"relative without slash", []string{"-relative-uri", "v2"}, nil, "", "must start with /"},
		{"not http", []string{"-url", "file:///etc/passwd"}, nil, "", "not an http(s) URL"},
		{"token with a line break", []string{"-url", "https://b/"}, map[string]string{"AWS_CONTAINER_AUTHORIZATION_TOKEN": "a\r\nX-Evil: 1"}, "", "line break"},
		{"empty token file", []string{"-url", "https://b/", "-token-file", os.DevNull}, nil, "", "is empty"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			req, err := buildRequest(parse(t, tc.args, tc.env))
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("error %v, want %q", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if req.URL != tc.url || (req.Method != "" && req.Method != "GET") {
				t.Errorf("%s %s, want GET %s", req.Method, req.URL, tc.url)
			}
		})
	}
}

func TestFetchNetworkError(t *testing.T) {
	srv, _ := broker(t, "x")
	srv.Close()
	_, err := fetch(context.Background(), &config{url: srv.URL + "/creds?secret=q"})
	if !errors.Is(err, sdk.ErrNetwork) {
		t.Errorf("error %v, want one wrapping sdk.ErrNetwork", err)
	}
	if err != nil && strings.Contains(err.Error(), "secret=q") {
		t.Errorf("the error holds the URL's query: %v", err)
	}
}

func TestParseResponse(t *testing.T) {
	cases := []struct {
		name   string
		status int
		body   string
		want   sdk.Credentials
		err    string
	}{
		{"long-term keys", 200, `{"AccessKeyId":"AKIA1","SecretAccessKey":"s"}`, sdk.Credentials{AccessKeyID: "AKIA1", SecretAccessKey: "s"}, ""},
		{"not JSON", 200, `<html>`, sdk.Credentials{}, "not JSON"},
		{"no secret", 200, `{"AccessKeyId":"AKIA1"}`, sdk.Credentials{}, "lacks"},
		{"bad expiration", 200, `{"AccessKeyId":"A","SecretAccessKey":"s","Expiration":"soon"}`, sdk.Credentials{}, `Expiration "soon"`},
		{"error without JSON", 500, `internal error with AKIA1/secret`, sdk.Credentials{}, "HTTP 500"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c, err := parseResponse(tc.status, []byte(tc.body))
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("error %v, want %q", err, tc.err)
				}
				if strings.Contains(err.Error(), "secret") {
					t.Errorf("the error quotes the body: %v", err)
				}
				return
			}
			if err != nil || c != tc.want {
				t.Errorf("got %+v, %v", c, err)
			}
		})
	}
}

func FuzzParseResponse(f *testing.F) {
	f.Add(200, []byte(`{"AccessKeyId":"A","SecretAccessKey":"s","Token":"t","Expiration":"2031-01-02T03:04:05Z"}`))
	f.Add(401, []byte(`{"code":"AccessDenied","message":"no"}`))
	f.Add(200, []byte(`{`))
	f.Fuzz(func(t *testing.T, status int, body []byte) {
		c, err := parseResponse(status, body)
		if err == nil && (status != 200 || c.AccessKeyID == "" || c.SecretAccessKey == "") {
			t.Errorf("accepted %d %+v", status, c)
		}
	})
}
