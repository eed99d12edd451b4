package main

import (
	"encoding/xml"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"time"

	"github.com/signet-proxy/signet/extensions/sdk"
)

// buildRequest is the AssumeRoleWithWebIdentity call: an unsigned POST of
// the query-protocol form.
func buildRequest(cfg *config, token string, now time.Time) (sdk.Request, error) {
	form := url.Values{
		"Action":           {"AssumeRoleWithWebIdentity"},
		"Version":          {"2011-06-15"},
		"RoleArn":          {cfg.roleARN},
		"RoleSessionName":  {sessionName(cfg, now)},
		"WebIdentityToken": {token},
	}
	secs, err := durationSeconds(cfg.duration)
	if err != nil {
		return sdk.Request{}, err
	}
	if secs != "" {
		form.Set("DurationSeconds", secs)
	}
	u, err := url.Parse(endpointOf(cfg))
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
		return sdk.Request{}, fmt.Errorf("STS endpoint %q is not an http(s) URL", endpointOf(cfg))
	}
	if u.Path == "" {
		u.Path = "/"
	}
	return sdk.Request{
		Method: "POST",
		URL:    u.String(),
		Header: [][2]string{
			{"Content-Type", "application/x-www-form-urlencoded; charset=utf-8"},
			{"Accept", "text/xml"},
		},
		Body: []byte(form.Encode()),
	}, nil
}

type stsCredentials struct {
	AccessKeyID     string `xml:"AccessKeyId"`
	SecretAccessKey string `xml:"SecretAccessKey"`
	SessionToken    string `xml:"SessionToken"`
	Expiration      string `xml:"Expiration"`
}

type stsResponse struct {
	XMLName     xml.Name
	Credentials stsCredentials `xml:"AssumeRoleWithWebIdentityResult>Credentials"`
	RoleARN     string         `xml:"AssumeRoleWithWebIdentityResult>AssumedRoleUser>Arn"`
}

type stsErrorResponse struct {
	XMLName   xml.Name
	Code      string `xml:"Error>Code"`
	Message   string `xml:"Error>Message"`
	RequestID string `xml:"RequestId"`
}

// hint says what an operator checks for the STS errors a web identity
// setup meets.
func hint(code string) string {
	switch code {
	case "InvalidIdentityToken":
		return "check that the token's issuer is an IAM OIDC provider of the role's account, with the token's audience as a client ID"
	case "ExpiredTokenException":
		return "the token file holds an expired token: is whatever writes it still running?"
	case "AccessDenied":
		return "check that the role's trust policy allows this provider and the token's subject"
	case "IDPRejectedClaim":
		return "the identity provider rejected the token's claims"
	}
	return ""
}

// parseResponse reads STS's answer. Its errors quote STS's message, never
// the token (which is replaced should STS ever echo it).
func parseResponse(status int, body []byte, token string) (sdk.Credentials, string, error) {
	if status != 200 {
		var e stsErrorResponse
		if xml.Unmarshal(body, &e) != nil || e.XMLName.Local != "ErrorResponse" || e.Code == "" {
			return sdk.Credentials{}, "", fmt.Errorf("STS AssumeRoleWithWebIdentity: HTTP %d, and the body is not an STS error", status)
		}
		msg := fmt.Sprintf("STS AssumeRoleWithWebIdentity: %s: %s (HTTP %d, request id %s)",
			e.Code, strings.TrimSpace(e.Message), status, e.RequestID)
		if h := hint(e.Code); h != "" {
			msg += ": " + h
		}
		if token != "" {
			msg = strings.ReplaceAll(msg, token, "[token]")
		}
		return sdk.Credentials{}, "", errors.New(msg)
	}
	var r stsResponse
	if err := xml.Unmarshal(body, &r); err != nil {
		return sdk.Credentials{}, "", fmt.Errorf("STS AssumeRoleWithWebIdentity: the answer is not XML: %w", err)
	}
	if r.XMLName.Local != "AssumeRoleWithWebIdentityResponse" {
		return sdk.Credentials{}, "", fmt.Errorf("STS AssumeRoleWithWebIdentity: the answer is a %q, not an AssumeRoleWithWebIdentityResponse", r.XMLName.Local)
	}
	c := r.Credentials
	if c.AccessKeyID == "" || c.SecretAccessKey == "" || c.SessionToken == "" || c.Expiration == "" {
		return sdk.Credentials{}, "", errors.New("STS AssumeRoleWithWebIdentity: the answer lacks part of the credentials")
	}
	exp, err := time.Parse(time.RFC3339, strings.TrimSpace(c.Expiration))
	if err != nil {
		return sdk.Credentials{}, "", fmt.Errorf("STS AssumeRoleWithWebIdentity: Expiration %q: %w", c.Expiration, err)
	}
	return sdk.Credentials{
		AccessKeyID:     strings.TrimSpace(c.AccessKeyID),
		SecretAccessKey: strings.TrimSpace(c.SecretAccessKey),
		SessionToken:    strings.TrimSpace(c.SessionToken),
		Expiration:      exp,
	}, r.RoleARN, nil
}
