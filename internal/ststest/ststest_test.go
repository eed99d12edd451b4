package ststest

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/xml"
	"errors"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
)

const (
	userKey    = "AKIAOWNTEST000000001"
	userSecret = "ststest/secret/0001"
	roleARN    = "arn:aws:iam::123456789012:role/ststest"
)

type assumeRoleResponse struct {
	AccessKeyID     string `xml:"AssumeRoleResult>Credentials>AccessKeyId"`
	SecretAccessKey string `xml:"AssumeRoleResult>Credentials>SecretAccessKey"`
	SessionToken    string `xml:"AssumeRoleResult>Credentials>SessionToken"`
	Expiration      string `xml:"AssumeRoleResult>Credentials>Expiration"`
	ARN             string `xml:"AssumeRoleResult>AssumedRoleUser>Arn"`
	ID              string `xml:"AssumeRoleResult>AssumedRoleUser>AssumedRoleId"`
}

// assumeRole calls the fake with a signed AssumeRole request.
func assumeRole(t *testing.T, s *Server, duration string) (int, []byte) {
	t.Helper()
	form := url.Values{"Action": {"AssumeRole"}, "Version": {"2011-06-15"}, "RoleArn": {roleARN},
		"RoleSessionName": {"sess"}, "DurationSeconds": {duration}}
	body := form.Encode()
	req, err := http.NewRequest(http.MethodPost, s.URL()+"/", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	sum := sha256.Sum256([]byte(body))
	creds := aws.Credentials{AccessKeyID: userKey, SecretAccessKey: userSecret}
	if err := v4.NewSigner().SignHTTP(context.Background(), creds, req, hex.EncodeToString(sum[:]), "sts", s.Region(), time.Now()); err != nil {
		t.Fatal(err)
	}
	resp, err := (&http.Client{Timeout: 5 * time.Second}).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, b
}

func TestOnMintSeesTheAnsweredSession(t *testing.T) {
	var got []Minted
	s := New(t, Options{PlainHTTP: true, OnMint: func(m Minted) error {
		got = append(got, m)
		return nil
	}})
	s.AddUser(userKey, userSecret, "arn:aws:iam::123456789012:user/u")
	s.AddRole(Role{ARN: roleARN})
	s.SetLifetime(40 * time.Second)
	before := time.Now()
	status, body := assumeRole(t, s, "900")
	if status != 200 {
		t.Fatalf("status %d: %s", status, body)
	}
	var r assumeRoleResponse
	if err := xml.Unmarshal(body, &r); err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 {
		t.Fatalf("OnMint called %d times, want 1", len(got))
	}
	m := got[0]
	if m.AccessKeyID != r.AccessKeyID || m.SecretAccessKey != r.SecretAccessKey || m.SessionToken != r.SessionToken ||
		m.AssumedRoleARN != r.ARN || m.AssumedRoleID != r.ID || m.RoleARN != roleARN || m.RoleSessionName != "sess" {
		t.Errorf("OnMint got %+v, the answer was %+v", m, r)
	}
	if m.Expires.UTC().Format("2006-01-02T15:04:05Z") != r.Expiration {
		t.Errorf("OnMint expiry %v, answer %s", m.Expires, r.Expiration)
	}
	if life := m.Expires.Sub(m.Issued); life != 40*time.Second || m.Issued.Before(before) {
		t.Errorf("issued %v, lifetime %v; want 40s from after %v", m.Issued, life, before)
	}
	if _, ok := s.IdentityOf(m.AccessKeyID); !ok {
		t.Errorf("minted key %s unknown to the fake", m.AccessKeyID)
	}
}

func TestOnMintErrorFailsTheCall(t *testing.T) {
	var keys []string
	s := New(t, Options{PlainHTTP: true, OnMint: func(m Minted) error {
		keys = append(keys, m.AccessKeyID)
		return errors.New("store is read-only")
	}})
	s.AddUser(userKey, userSecret, "arn:aws:iam::123456789012:user/u")
	s.AddRole(Role{ARN: roleARN})
	status, body := assumeRole(t, s, "900")
	if status != 500 || !strings.Contains(string(body), "<Code>InternalFailure</Code>") || !strings.Contains(string(body), "store is read-only") {
		t.Errorf("status %d, body %s; want 500 InternalFailure with OnMint's error", status, body)
	}
	if len(keys) != 1 {
		t.Fatalf("OnMint called %d times, want 1", len(keys))
	}
	if _, ok := s.IdentityOf(keys[0]); ok {
		t.Errorf("a key whose OnMint failed was minted anyway")
	}
	if c, ok := s.LastCall(); !ok || c.Error != "InternalFailure" {
		t.Errorf("last call %+v, want one recorded with InternalFailure", c)
	}
}

func TestFailCycle(t *testing.T) {
	s := New(t, Options{PlainHTTP: true})
	s.AddUser(userKey, userSecret, "arn:aws:iam::123456789012:user/u")
	s.AddRole(Role{ARN: roleARN})
	s.FailCycle(0, 0, FailInternal)
	var got []int
	for range 6 {
		status, _ := assumeRole(t, s, "900")
		got = append(got, status)
	}
	if want := []int{200, 200, 500, 200, 200, 500}; !slices.Equal(got, want) {
		t.Errorf("statuses %v, want %v", got, want)
	}
	s.FailCycle()
	if status, body := assumeRole(t, s, "900"); status != 200 {
		t.Errorf("after FailCycle(): %d %s", status, body)
	}
}

// TestGarbageFailures: FailNotXML and FailWrongFields answer 200 with
// nothing a client can take credentials from, mint nothing, and are
// recorded; the next call succeeds.
func TestGarbageFailures(t *testing.T) {
	var minted int
	s := New(t, Options{PlainHTTP: true, OnMint: func(Minted) error { minted++; return nil }})
	s.AddUser(userKey, userSecret, "arn:aws:iam::123456789012:user/u")
	s.AddRole(Role{ARN: roleARN})
	for _, tc := range []struct {
		f    Failure
		code string
		ok   func(body []byte) bool
	}{
		{FailNotXML, "(not XML)", func(b []byte) bool {
			var v struct{}
			return xml.Unmarshal(b, &v) != nil
		}},
		{FailWrongFields, "(wrong fields)", func(b []byte) bool {
			var r assumeRoleResponse
			return xml.Unmarshal(b, &r) == nil && r.AccessKeyID == "" && r.SecretAccessKey == "" &&
				r.SessionToken == "" && r.Expiration == "" && strings.Contains(string(b), "<AssumeRoleResult>")
		}},
	} {
		s.FailNext(tc.f, 1)
		status, body := assumeRole(t, s, "900")
		if status != 200 || !tc.ok(body) {
			t.Errorf("failure %d: %d %s", tc.f, status, body)
		}
		if c, ok := s.LastCall(); !ok || c.Error != tc.code || c.Action != "AssumeRole" {
			t.Errorf("failure %d recorded as %+v", tc.f, c)
		}
	}
	if minted != 0 {
		t.Errorf("garbage answers minted %d sessions", minted)
	}
	if status, body := assumeRole(t, s, "900"); status != 200 || minted != 1 {
		t.Errorf("after the failures: %d (minted %d) %s", status, minted, body)
	}
}
