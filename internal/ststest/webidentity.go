package ststest

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/asn1"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"math"
	"math/big"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"
)

// OIDCProvider is an OpenID Connect identity provider registered in the
// fake's account, like an IAM OIDC provider.
type OIDCProvider struct {
	// Issuer is the tokens' iss, e.g. "https://oidc.example.com".
	Issuer string
	// ClientIDs are the audiences accepted: a token's aud must hold one.
	ClientIDs []string
	// Keys verify the tokens' signatures: *rsa.PublicKey for RS256,
	// *ecdsa.PublicKey on P-256 for ES256. Any of them may have signed.
	Keys []crypto.PublicKey
}

// AddOIDCProvider registers p, replacing a provider of the same issuer.
func (s *Server) AddOIDCProvider(p OIDCProvider) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.oidc[p.Issuer] = p
}

// SignJWT makes a compact JWS of claims, signed with key: RS256 for an RSA
// key, ES256 for an ECDSA P-256 key. A test passes the claims it wants,
// wrong ones included (iss, sub, aud as a string or a list, exp, nbf, iat
// as Unix seconds).
func SignJWT(key crypto.Signer, claims map[string]any) (string, error) {
	var alg string
	switch k := key.Public().(type) {
	case *rsa.PublicKey:
		alg = "RS256"
	case *ecdsa.PublicKey:
		if k.Curve != elliptic.P256() {
			return "", errors.New("ststest: SignJWT: ES256 needs a P-256 key")
		}
		alg = "ES256"
	default:
		return "", fmt.Errorf("ststest: SignJWT: unsupported key type %T", k)
	}
	header, err := json.Marshal(map[string]string{"alg": alg, "typ": "JWT", "kid": "ststest"})
	if err != nil {
		return "", err
	}
	payload, err := json.Marshal(claims)
	if err != nil {
		return "", fmt.Errorf("ststest: SignJWT: claims: %w", err)
	}
	input := b64(header) + "." + b64(payload)
	digest := sha256.Sum256([]byte(input))
	sig, err := key.Sign(rand.Reader, digest[:], crypto.SHA256)
	if err != nil {
		return "", fmt.Errorf("ststest: SignJWT: sign: %w", err)
	}
	if alg == "ES256" {
		// A crypto.Signer gives ASN.1; JWS wants r||s, 32 bytes each
		// (RFC 7518 section 3.4).
		var rs struct{ R, S *big.Int }
		if _, err := asn1.Unmarshal(sig, &rs); err != nil {
			return "", fmt.Errorf("ststest: SignJWT: ECDSA signature: %w", err)
		}
		sig = make([]byte, 64)
		rs.R.FillBytes(sig[:32])
		rs.S.FillBytes(sig[32:])
	}
	return input + "." + b64(sig), nil
}

func b64(b []byte) string { return base64.RawURLEncoding.EncodeToString(b) }

// jwtClaims are the registered claims the fake checks.
type jwtClaims struct {
	Issuer    string   `json:"iss"`
	Subject   string   `json:"sub"`
	Audience  audience `json:"aud"`
	Expiry    *float64 `json:"exp"`
	NotBefore *float64 `json:"nbf"`
	IssuedAt  *float64 `json:"iat"`
}

// audience is aud: one string or a list of them (RFC 7519 section 4.1.3).
type audience []string

func (a *audience) UnmarshalJSON(b []byte) error {
	var one string
	if err := json.Unmarshal(b, &one); err == nil {
		*a = audience{one}
		return nil
	}
	var many []string
	if err := json.Unmarshal(b, &many); err != nil {
		return errors.New("aud is neither a string nor a list of strings")
	}
	*a = many
	return nil
}

func invalidToken(msg string) *apiError { return sender(400, "InvalidIdentityToken", msg) }

// parseJWT splits and decodes a compact JWS, without checking its signature.
func parseJWT(token string) (alg string, claims jwtClaims, signed, sig []byte, err error) {
	parts := strings.Split(token, ".")
	if len(parts) != 3 {
		return "", claims, nil, nil, errors.New("not three dot-separated parts")
	}
	hb, err := base64.RawURLEncoding.DecodeString(parts[0])
	if err != nil {
		return "", claims, nil, nil, fmt.Errorf("header: %w", err)
	}
	var header struct {
		Alg string `json:"alg"`
	}
	if err := json.Unmarshal(hb, &header); err != nil {
		return "", claims, nil, nil, fmt.Errorf("header: %w", err)
	}
	pb, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		return "", claims, nil, nil, fmt.Errorf("payload: %w", err)
	}
	if err := json.Unmarshal(pb, &claims); err != nil {
		return "", claims, nil, nil, fmt.Errorf("payload: %w", err)
	}
	sig, err = base64.RawURLEncoding.DecodeString(parts[2])
	if err != nil {
		return "", claims, nil, nil, fmt.Errorf("signature: %w", err)
	}
	return header.Alg, claims, []byte(parts[0] + "." + parts[1]), sig, nil
}

// verifySignature reports whether one of keys signed input with alg.
func verifySignature(alg string, keys []crypto.PublicKey, input, sig []byte) bool {
	digest := sha256.Sum256(input)
	for _, k := range keys {
		switch k := k.(type) {
		case *rsa.PublicKey:
			if alg == "RS256" && rsa.VerifyPKCS1v15(k, crypto.SHA256, digest[:], sig) == nil {
				return true
			}
		case *ecdsa.PublicKey:
			if alg == "ES256" && len(sig) == 64 && k.Curve == elliptic.P256() &&
				ecdsa.Verify(k, digest[:], new(big.Int).SetBytes(sig[:32]), new(big.Int).SetBytes(sig[32:])) {
				return true
			}
		}
	}
	return false
}

// checkToken checks a web identity token as STS does, in its order: the
// JWT's form, its issuer, signature, lifetime, audience. It returns the
// audience matched.
func checkToken(token string, providers map[string]OIDCProvider, now time.Time) (jwtClaims, string, *apiError) {
	alg, claims, input, sig, err := parseJWT(token)
	if err != nil {
		return claims, "", invalidToken("The ID Token provided is not a valid JWT. (You may see this error if you sent an Access Token)")
	}
	p, ok := providers[claims.Issuer]
	if !ok {
		return claims, "", invalidToken("No OpenIDConnect provider found in your account for " + claims.Issuer)
	}
	if alg != "RS256" && alg != "ES256" {
		return claims, "", invalidToken("Unsupported token signing algorithm: " + alg)
	}
	if !verifySignature(alg, p.Keys, input, sig) {
		return claims, "", invalidToken("Couldn't verify the token's signature with the keys of the OpenID Connect provider " + claims.Issuer)
	}
	unix := float64(now.UnixNano()) / 1e9
	switch {
	case claims.Expiry == nil:
		return claims, "", invalidToken("Missing a required claim: exp")
	case unix >= *claims.Expiry:
		return claims, "", sender(400, "ExpiredTokenException", fmt.Sprintf(
			"Token expired: current date/time %d must be before the expiration date/time %d", int64(unix), int64(math.Floor(*claims.Expiry))))
	case claims.NotBefore != nil && unix < *claims.NotBefore:
		return claims, "", invalidToken("Token used before its nbf (not before) time")
	case claims.IssuedAt != nil && unix < *claims.IssuedAt:
		return claims, "", invalidToken("Token used before issued")
	}
	for _, a := range claims.Audience {
		if slices.Contains(p.ClientIDs, a) {
			return claims, a, nil
		}
	}
	return claims, "", invalidToken("Incorrect token audience")
}

var sessionNamePattern = regexp.MustCompile(`^[\w+=,.@-]*$`)

// validation is a ValidationError of one parameter, in AWS's words.
func validation(param, constraint string) *apiError {
	return sender(400, "ValidationError", "1 validation error detected: Value at '"+param+"' failed to satisfy constraint: "+constraint)
}

// checkWebIdentityInput is STS's input validation, before the token is
// looked at.
func checkWebIdentityInput(c Call, token string, dur int) *apiError {
	switch {
	case c.RoleARN == "":
		return validation("roleArn", "Member must not be null")
	case len(c.RoleARN) < 20:
		return validation("roleArn", "Member must have length greater than or equal to 20")
	case c.RoleSessionName == "":
		return validation("roleSessionName", "Member must not be null")
	case len(c.RoleSessionName) < 2:
		return validation("roleSessionName", "Member must have length greater than or equal to 2")
	case len(c.RoleSessionName) > 64:
		return validation("roleSessionName", "Member must have length less than or equal to 64")
	case !sessionNamePattern.MatchString(c.RoleSessionName):
		return validation("roleSessionName", `Member must satisfy regular expression pattern: [\w+=,.@-]*`)
	case token == "":
		return validation("webIdentityToken", "Member must not be null")
	case len(token) < 4:
		return validation("webIdentityToken", "Member must have length greater than or equal to 4")
	case len(token) > 20000:
		return validation("webIdentityToken", "Member must have length less than or equal to 20000")
	case dur < 900:
		return validation("durationSeconds", "Member must have value greater than or equal to 900")
	case dur > 43200:
		return validation("durationSeconds", "Member must have value less than or equal to 43200")
	}
	return nil
}

func (s *Server) assumeRoleWithWebIdentity(w http.ResponseWriter, r *http.Request, reqID string, form url.Values) {
	c := Call{
		Action:          "AssumeRoleWithWebIdentity",
		RoleARN:         form.Get("RoleArn"),
		RoleSessionName: form.Get("RoleSessionName"),
		Policy:          form.Get("Policy"),
	}
	for i := 1; form.Has("PolicyArns.member." + strconv.Itoa(i) + ".arn"); i++ {
		c.PolicyARNs = append(c.PolicyARNs, form.Get("PolicyArns.member."+strconv.Itoa(i)+".arn"))
	}
	token := form.Get("WebIdentityToken")
	dur := 3600
	if v := form.Get("DurationSeconds"); v != "" {
		dur, _ = strconv.Atoi(v)
		c.DurationSeconds = dur
	}

	s.mu.Lock()
	fail := s.faults.Take()
	role, roleKnown := s.roles[c.RoleARN]
	lifetime := s.lifetime
	providers := maps.Clone(s.oidc)
	s.mu.Unlock()

	finish := s.finisher(w, reqID, &c)
	if s.answerFailure(w, r, reqID, fail, c, finish) {
		return
	}

	if e := checkWebIdentityInput(c, token, dur); e != nil {
		finish(e)
		return
	}
	claims, aud, e := checkToken(token, providers, s.now())
	c.Issuer, c.Subject, c.Audience = claims.Issuer, claims.Subject, aud
	if e != nil {
		finish(e)
		return
	}
	if !roleKnown || !slices.Contains(role.OIDCIssuers, claims.Issuer) || (role.OIDCSubject != "" && role.OIDCSubject != claims.Subject) {
		finish(sender(403, "AccessDenied", "Not authorized to perform sts:AssumeRoleWithWebIdentity"))
		return
	}
	if time.Duration(dur)*time.Second > role.MaxSessionDuration {
		finish(sender(400, "ValidationError", "The requested DurationSeconds exceeds the MaxSessionDuration set for this role."))
		return
	}

	provider := strings.TrimPrefix(claims.Issuer, "https://")
	newKey, minted, e := s.mint(c.RoleARN, c.RoleSessionName, dur, lifetime, fail,
		Minted{Provider: provider, Audience: aud, Subject: claims.Subject})
	if e != nil {
		finish(e)
		return
	}
	finish(nil)
	s.mu.Lock()
	s.principals[newKey] = minted
	s.mu.Unlock()

	inner := "<SubjectFromWebIdentityToken>" + esc(claims.Subject) + "</SubjectFromWebIdentityToken>" +
		"<Audience>" + esc(aud) + "</Audience>" + sessionXML(newKey, minted) +
		"<Provider>" + esc(provider) + "</Provider>"
	if fail == FailMalformed {
		w.Header().Set("Content-Type", "text/xml")
		full := xmlBody("AssumeRoleWithWebIdentityResponse", "AssumeRoleWithWebIdentityResult", reqID, inner)
		cut := strings.Index(full, minted.secret) + 10
		_, _ = io.WriteString(w, full[:cut])
		return
	}
	writeXML(w, "AssumeRoleWithWebIdentityResponse", "AssumeRoleWithWebIdentityResult", reqID, inner)
}

// mint makes a role session: its keys, its lifetime (dur seconds, or the
// fake's SetLifetime, or already over with FailExpired), and OnMint's
// approval. extra carries what only some actions fill in. The caller
// records the principal once the call is logged.
func (s *Server) mint(roleARN, sessionName string, dur int, lifetime time.Duration, fail Failure, extra Minted) (string, principal, *apiError) {
	now := s.now()
	expires := now.Add(time.Duration(dur) * time.Second)
	if lifetime > 0 {
		expires = now.Add(lifetime)
	}
	if fail == FailExpired {
		expires = now.Add(-time.Minute)
	}
	roleName := roleARN[strings.LastIndexByte(roleARN, '/')+1:]
	p := principal{
		secret:  randomSecret(40),
		token:   "FQoGZXIvYXdzE" + randomSecret(180),
		arn:     "arn:" + partition(roleARN) + ":sts::" + accountOf(roleARN) + ":assumed-role/" + roleName + "/" + sessionName,
		userID:  "AROA" + randomID(17) + ":" + sessionName,
		expires: expires,
		chained: true,
	}
	key := "ASIA" + randomID(16)
	if s.onMint != nil {
		m := extra
		m.AccessKeyID, m.SecretAccessKey, m.SessionToken = key, p.secret, p.token
		m.Issued, m.Expires = now, expires
		m.RoleARN, m.RoleSessionName = roleARN, sessionName
		m.AssumedRoleARN, m.AssumedRoleID = p.arn, p.userID
		if err := s.onMint(m); err != nil {
			return "", principal{}, &apiError{status: 500, typ: "Receiver", code: "InternalFailure", message: "OnMint: " + err.Error()}
		}
	}
	return key, p, nil
}

// sessionXML is the AssumedRoleUser and Credentials of a minted session.
func sessionXML(key string, p principal) string {
	return fmt.Sprintf("<AssumedRoleUser><Arn>%s</Arn><AssumedRoleId>%s</AssumedRoleId></AssumedRoleUser>"+
		"<Credentials><AccessKeyId>%s</AccessKeyId><SecretAccessKey>%s</SecretAccessKey><SessionToken>%s</SessionToken><Expiration>%s</Expiration></Credentials>",
		esc(p.arn), esc(p.userID), key, p.secret, p.token, p.expires.UTC().Format("2006-01-02T15:04:05Z"))
}
