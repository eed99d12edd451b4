package sdk

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func ExampleWriteCredentials() {
	_ = WriteCredentials(os.Stdout, Credentials{
		AccessKeyID:     "ASIAEXAMPLE",
		SecretAccessKey: "secret",
		SessionToken:    "token",
		Expiration:      time.Date(2026, 11, 28, 12, 0, 0, 0, time.FixedZone("CET", 3600)),
	})
	_ = WriteCredentials(os.Stdout, Credentials{AccessKeyID: "AKIAEXAMPLE", SecretAccessKey: "secret"})
	// Output:
	// {"Version":1,"AccessKeyId":"ASIAEXAMPLE","SecretAccessKey":"secret","SessionToken":"token","Expiration":"2026-11-28T11:00:00Z"}
	// {"Version":1,"AccessKeyId":"AKIAEXAMPLE","SecretAccessKey":"secret"}
}

func TestWriteCredentialsRefusesIncompleteKeys(t *testing.T) {
	for _, c := range []Credentials{{AccessKeyID: "A"}, {SecretAccessKey: "s"}} {
		var b bytes.Buffer
		if err := WriteCredentials(&b, c); err == nil || b.Len() != 0 {
			t.Errorf("WriteCredentials(%+v) = %v, wrote %q", c, err, b.String())
		}
	}
}

func TestRunPrintsOnlyOnSuccess(t *testing.T) {
	var out bytes.Buffer
	err := run(context.Background(), func(context.Context) (Credentials, error) {
		return Credentials{}, errors.New("no luck")
	}, &out)
	if err == nil || out.Len() != 0 {
		t.Errorf("failing fetch: err %v, stdout %q", err, out.String())
	}
	err = run(context.Background(), func(context.Context) (Credentials, error) {
		return Credentials{AccessKeyID: "A", SecretAccessKey: "s"}, nil
	}, &out)
	var got map[string]any
	if err != nil || json.Unmarshal(out.Bytes(), &got) != nil || got["Version"] != 1.0 {
		t.Errorf("err %v, stdout %q", err, out.String())
	}
}

func TestParseArgsFallsBackToTheEnvironment(t *testing.T) {
	cases := []struct {
		name   string
		args   []string
		env    map[string]string
		region string
		role   string
		err    string
	}{
		{"flags", []string{"-region", "eu-west-1", "-role", "r1"}, nil, "eu-west-1", "r1", ""},
		{"environment", nil, map[string]string{"AWS_REGION": "ap-south-1", "ROLE": "r2"}, "ap-south-1", "r2", ""},
		{"the flag wins", []string{"-region", "eu-west-1"}, map[string]string{"AWS_REGION": "ap-south-1"}, "eu-west-1", "", ""},
		{"empty variable is unset", nil, map[string]string{"AWS_REGION": ""}, "us-east-1", "", ""},
		{"unknown flag", []string{"-nope"}, nil, "", "", "not defined"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			fs := flag.NewFlagSet("t", flag.ContinueOnError)
			fs.SetOutput(io.Discard)
			region := fs.String("region", "us-east-1", "")
			role := fs.String("role", "", "")
			err := ParseArgs(fs, tc.args, map[string]string{"region": "AWS_REGION", "role": "ROLE"}, func(k string) string { return tc.env[k] })
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("error %v, want %q", err, tc.err)
				}
				return
			}
			if err != nil || *region != tc.region || *role != tc.role {
				t.Errorf("region %q role %q err %v", *region, *role, err)
			}
		})
	}
	fs := flag.NewFlagSet("t", flag.ContinueOnError)
	if err := ParseArgs(fs, nil, map[string]string{"ghost": "GHOST"}, func(string) string { return "x" }); err == nil {
		t.Errorf("a variable naming an undefined flag was accepted")
	}
}

func TestStatusErrors(t *testing.T) {
	denied := []Status{ErrDeniedHost, ErrDeniedScheme, ErrDeniedAddress, ErrNotAllowed}
	for s := Status(1); s <= 13; s++ {
		err := fmt.Errorf("wrapped: %w", s)
		if !errors.Is(err, s) {
			t.Errorf("errors.Is(%v, itself) is false", s)
		}
		isDenied := false
		for _, d := range denied {
			isDenied = isDenied || d == s
		}
		if errors.Is(err, ErrDenied) != isDenied {
			t.Errorf("errors.Is(%d, ErrDenied) = %v", s, !isDenied)
		}
		if s.Error() == "" {
			t.Errorf("status %d has no text", s)
		}
	}
	if Status(99).Error() != "host status 99" {
		t.Errorf("unknown status text %q", Status(99).Error())
	}
}

func TestCheckRequest(t *testing.T) {
	cases := []struct {
		req  Request
		want Status
	}{
		{Request{URL: "https://sts.amazonaws.com/"}, 0},
		{Request{URL: "http://127.0.0.1:80/x", Method: "POST", Header: [][2]string{{"Authorization", "Bearer x"}}}, 0},
		{Request{URL: "ftp://host/"}, ErrDeniedScheme},
		{Request{URL: "https:///nohost"}, ErrBadRequest},
		{Request{URL: "https://h/", Method: "GE T"}, ErrBadRequest},
		{Request{URL: "https://h/", Header: [][2]string{{"Host", "evil"}}}, ErrBadRequest},
		{Request{URL: "https://h/", Header: [][2]string{{"content-length", "1"}}}, ErrBadRequest},
		{Request{URL: "https://h/", Header: [][2]string{{"Proxy-Authorization", "x"}}}, ErrBadRequest},
		{Request{URL: "https://h/", Header: [][2]string{{"Transfer-Encoding", "chunked"}}}, ErrBadRequest},
		{Request{URL: "https://h/", Header: [][2]string{{"Connection", "close"}}}, ErrBadRequest},
		{Request{URL: "https://h/", Header: [][2]string{{"X-A", "v\r\nX-Injected: 1"}}}, ErrBadRequest},
		{Request{URL: "https://h/", Header: [][2]string{{"Bad Name", "v"}}}, ErrBadRequest},
	}
	for _, tc := range cases {
		err := checkRequest(tc.req)
		switch {
		case tc.want == 0 && err != nil:
			t.Errorf("%+v: %v", tc.req, err)
		case tc.want != 0 && !errors.Is(err, tc.want):
			t.Errorf("%+v: %v, want %v", tc.req, err, tc.want)
		}
	}
}

func TestRedactURL(t *testing.T) {
	for in, want := range map[string]string{
		"https://user:pw@h.example/p?token=secret#frag": "https://h.example/p",
		"http://127.0.0.1:8080/creds":                   "http://127.0.0.1:8080/creds",
		"%zz":                                           "(invalid URL)",
	} {
		if got := redactURL(in); got != want {
			t.Errorf("redactURL(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestFetchNative(t *testing.T) {
	mux := http.NewServeMux()
	mux.HandleFunc("/echo", func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		w.Header().Add("X-Multi", "1")
		w.Header().Add("X-Multi", "2")
		fmt.Fprintf(w, "%s %s %s", r.Method, r.Header.Get("X-Test"), b)
	})
	mux.HandleFunc("/loop", func(w http.ResponseWriter, r *http.Request) { http.Redirect(w, r, "/loop", http.StatusFound) })
	mux.HandleFunc("/big", func(w http.ResponseWriter, r *http.Request) { w.Write(make([]byte, MaxResponseBody+1)) })
	mux.HandleFunc("/slow", func(w http.ResponseWriter, r *http.Request) { <-r.Context().Done() })
	srv := httptest.NewServer(mux)
	defer srv.Close()
	ctx := context.Background()

	resp, err := Fetch(ctx, Request{Method: "PUT", URL: srv.URL + "/echo", Header: [][2]string{{"X-Test", "yes"}}, Body: []byte("body")})
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != 200 || string(resp.Body) != "PUT yes body" || resp.HeaderValue("x-multi") != "1" {
		t.Errorf("got %d %q headers %v", resp.StatusCode, resp.Body, resp.Header)
	}
	n := 0
	for _, h := range resp.Header {
		if h[0] == "X-Multi" {
			n++
		}
	}
	if n != 2 {
		t.Errorf("repeated header kept %d times, want 2", n)
	}
	for path, want := range map[string]Status{"/loop": ErrRedirects, "/big": ErrLimitSize} {
		if _, err := Fetch(ctx, Request{URL: srv.URL + path}); !errors.Is(err, want) {
			t.Errorf("%s: %v, want %v", path, err, want)
		}
	}
	if _, err := Fetch(ctx, Request{URL: srv.URL + "/slow", Timeout: 50 * time.Millisecond}); !errors.Is(err, ErrTimeout) {
		t.Errorf("/slow: %v, want ErrTimeout", err)
	}
}

func TestReadFile(t *testing.T) {
	dir := t.TempDir()
	small, big := filepath.Join(dir, "small"), filepath.Join(dir, "big")
	if err := os.WriteFile(small, []byte("ok"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(big, make([]byte, MaxInput+1), 0o600); err != nil {
		t.Fatal(err)
	}
	if b, err := ReadFile(small); err != nil || string(b) != "ok" {
		t.Errorf("ReadFile(small) = %q, %v", b, err)
	}
	if _, err := ReadFile(big); err == nil || !strings.Contains(err.Error(), "more than") {
		t.Errorf("ReadFile(big) = %v", err)
	}
	if _, err := ReadFile(filepath.Join(dir, "absent")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("ReadFile(absent) = %v", err)
	}
}

func FuzzParseHeaderPairs(f *testing.F) {
	f.Add([]byte(`[["Content-Type","text/xml"],["X-A","1"],["X-A","2"]]`))
	f.Add([]byte(`[]`))
	f.Add([]byte(`[["only-one"]]`))
	f.Add([]byte(`{"a":"b"}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		pairs, err := parseHeaderPairs(b)
		if err != nil {
			return
		}
		again, err := json.Marshal(pairs)
		if err != nil {
			t.Fatal(err)
		}
		if back, err := parseHeaderPairs(again); err != nil || len(back) != len(pairs) {
			t.Errorf("round trip: %v, %d pairs of %d", err, len(back), len(pairs))
		}
	})
}
