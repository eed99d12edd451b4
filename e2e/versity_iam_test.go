//go:build linux

package e2e

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"

	"github.com/signet-proxy/signet/internal/ststest"
)

// versityIAM is versitygw v1.8.0 in IAM mode: the standalone IAM service
// (`versitygw iam --dir IAMDIR --private-ports SOCK`) and an S3 gateway
// that asks it, over the unix socket, for users, roles and sessions
// (`--iam-standalone-endpoint SOCK`). The gateway verifies temporary
// credentials for real: access key, secret, session token, and the
// session's expiry (an expired session is 403 InvalidAccessKeyId).
type versityIAM struct {
	*versity        // the S3 gateway
	IAMAddr  string // the IAM API, 127.0.0.1:PORT
	IAMDir   string // holds iam.json
	root     aws.Credentials
	mu       sync.Mutex // serialises our read-modify-writes of iam.json
}

// iamRole is a role created through the IAM API.
type iamRole struct {
	Name, ARN, ID string
}

// startVersityIAM runs the IAM service and the gateway with root keys
// ak/sk, both stopped at cleanup.
func startVersityIAM(tb testing.TB, ak, sk string) *versityIAM {
	tb.Helper()
	bin := needVersity(tb)
	// A unix socket path is limited to 108 bytes: t.TempDir() under a long
	// test name can exceed it, so the IAM directory is a short one.
	short, err := os.MkdirTemp("", "sgt-vgw-")
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { os.RemoveAll(short) })
	iamDir := filepath.Join(short, "iam")
	if err := os.Mkdir(iamDir, 0o700); err != nil {
		tb.Fatal(err)
	}
	sock := filepath.Join(short, "iam.sock")
	home := tb.TempDir()
	env := baseEnv(home, "ROOT_ACCESS_KEY_ID="+ak, "ROOT_SECRET_ACCESS_KEY="+sk)

	v := &versityIAM{IAMDir: iamDir, root: aws.Credentials{AccessKeyID: ak, SecretAccessKey: sk}}
	v.IAMAddr = startVersityProc(tb, bin, "versitygw iam", env, func(addr string) []string {
		return []string{"--port", addr, "--quiet", "iam", "--dir", iamDir, "--private-ports", sock}
	}, func(addr string) error {
		if _, err := os.Stat(sock); err != nil {
			return err
		}
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err != nil {
			return err
		}
		return c.Close()
	})

	data, noMeta := versityDataDir(tb, tb.TempDir())
	hc := &http.Client{Timeout: time.Second, Transport: &http.Transport{Proxy: nil}}
	gw := startVersityProc(tb, bin, "versitygw gateway", env,
		func(addr string) []string { return versityArgs(addr, noMeta, data, "--iam-standalone-endpoint", sock) },
		func(addr string) error { return healthOK(hc, "http://"+addr+"/health") })
	v.versity = &versity{Addr: gw, DataDir: data, NoMeta: noMeta}
	return v
}

// startVersityProc starts bin with args(addr) on a free loopback port
// (three tries, for a port taken meanwhile) until ready(addr) succeeds
// within 10 s, and stops it at cleanup. It returns addr.
func startVersityProc(tb testing.TB, bin, what string, env []string, args func(addr string) []string, ready func(addr string) error) string {
	tb.Helper()
	var lastErr error
	for attempt := 0; attempt < 3; attempt++ {
		addr := "127.0.0.1:" + strconv.Itoa(freePort(tb))
		cmd := exec.Command(bin, args(addr)...)
		cmd.Env = env
		out := &syncBuffer{}
		cmd.Stdout, cmd.Stderr = out, out
		if err := cmd.Start(); err != nil {
			tb.Fatalf("start %s: %v", what, err)
		}
		exited := make(chan struct{})
		var waitErr error
		go func() { waitErr = cmd.Wait(); close(exited) }()
		err := errors.New("not ready")
		deadline := time.Now().Add(10 * time.Second)
	poll:
		for i := 0; i < 400 && time.Now().Before(deadline); i++ {
			select {
			case <-exited:
				err = fmt.Errorf("exited: %v", waitErr)
				break poll
			default:
			}
			if err = ready(addr); err == nil {
				break
			}
			time.Sleep(25 * time.Millisecond)
		}
		if err != nil {
			_ = cmd.Process.Kill()
			<-exited
			lastErr = fmt.Errorf("%v\n%s output:\n%s", err, what, out.String())
			continue
		}
		tb.Cleanup(func() {
			_ = cmd.Process.Signal(syscall.SIGTERM)
			select {
			case <-exited:
			case <-time.After(10 * time.Second):
				_ = cmd.Process.Kill()
				<-exited
			}
			if tb.Failed() {
				tb.Logf("%s output:\n%s", what, out.String())
			}
		})
		return addr
	}
	tb.Fatalf("%s did not become ready in 3 attempts: %v", what, lastErr)
	return ""
}

// iamCall sends one IAM API action (form POST, Version 2010-05-08) signed
// with the root keys, and fails the test unless it is answered 200.
func (v *versityIAM) iamCall(tb testing.TB, action string, params url.Values) []byte {
	tb.Helper()
	form := url.Values{"Action": {action}, "Version": {"2010-05-08"}}
	for k, vs := range params {
		form[k] = vs
	}
	body := form.Encode()
	req, err := http.NewRequest(http.MethodPost, "http://"+v.IAMAddr+"/", strings.NewReader(body))
	if err != nil {
		tb.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded; charset=utf-8")
	sum := sha256.Sum256([]byte(body))
	if err := v4.NewSigner().SignHTTP(context.Background(), v.root, req, hex.EncodeToString(sum[:]), "iam", testRegion, time.Now()); err != nil {
		tb.Fatal(err)
	}
	c := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{Proxy: nil}}
	resp, err := c.Do(req)
	if err != nil {
		tb.Fatalf("IAM %s: %v", action, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		tb.Fatal(err)
	}
	if resp.StatusCode != 200 {
		tb.Fatalf("IAM %s: status %d:\n%s", action, resp.StatusCode, b)
	}
	return b
}

// createRole creates a role any principal may assume, with an inline
// policy allowing s3:*, and returns it.
func (v *versityIAM) createRole(tb testing.TB, name string) iamRole {
	tb.Helper()
	trust := `{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"AWS":"*"},"Action":"sts:AssumeRole"}]}`
	b := v.iamCall(tb, "CreateRole", url.Values{"RoleName": {name}, "AssumeRolePolicyDocument": {trust}})
	var r struct {
		Name string `xml:"CreateRoleResult>Role>RoleName"`
		ARN  string `xml:"CreateRoleResult>Role>Arn"`
		ID   string `xml:"CreateRoleResult>Role>RoleId"`
	}
	if err := xml.Unmarshal(b, &r); err != nil || r.ARN == "" || r.ID == "" || r.Name != name {
		tb.Fatalf("CreateRole answer %+v (%v):\n%s", r, err, b)
	}
	policy := `{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"s3:*","Resource":"*"}]}`
	v.iamCall(tb, "PutRolePolicy", url.Values{"RoleName": {name}, "PolicyName": {"s3-all"}, "PolicyDocument": {policy}})
	return iamRole{Name: r.Name, ARN: r.ARN, ID: r.ID}
}

// versitySession is a session in iam.json, as versitygw v1.8.0 stores it
// (iamapi/types.Session).
type versitySession struct {
	AccessKeyID     string    `json:"accessKeyId"`
	SecretAccessKey string    `json:"secretAccessKey"`
	SessionToken    string    `json:"sessionToken"`
	RoleARN         string    `json:"roleArn"`
	RoleName        string    `json:"roleName"`
	RoleID          string    `json:"roleId"`
	RoleSessionName string    `json:"roleSessionName"`
	Provider        string    `json:"provider"`
	Audience        string    `json:"audience"`
	Subject         string    `json:"subject"`
	CreateDate      time.Time `json:"createDate"`
	Expiration      time.Time `json:"expiration"`
}

// addSession makes a session the fake STS minted known to versitygw, as
// its own STS would: it is written into iam.json, which the IAM service
// reads on every request. role must be the role the session is of.
//
// The IAM service itself rewrites iam.json now and then (a role's
// RoleLastUsed, at most once a minute), read-modify-write without a lock
// across processes, so a write of ours that lands inside its window is
// lost. Hence the check after a pause, and the rewrite if it was.
func (v *versityIAM) addSession(m ststest.Minted, role iamRole) error {
	if m.RoleARN != role.ARN {
		return fmt.Errorf("session of role %s, but versitygw's role is %s", m.RoleARN, role.ARN)
	}
	s := versitySession{
		AccessKeyID: m.AccessKeyID, SecretAccessKey: m.SecretAccessKey, SessionToken: m.SessionToken,
		RoleARN: role.ARN, RoleName: role.Name, RoleID: role.ID, RoleSessionName: m.RoleSessionName,
		CreateDate: m.Issued.UTC(), Expiration: m.Expires.UTC(),
	}
	v.mu.Lock()
	defer v.mu.Unlock()
	for attempt := 0; attempt < 5; attempt++ {
		if err := v.writeSession(s); err != nil {
			return err
		}
		time.Sleep(100 * time.Millisecond)
		sessions, err := v.sessions()
		if err != nil {
			return err
		}
		if got, ok := sessions[m.AccessKeyID]; ok && got.SessionToken == m.SessionToken {
			return nil
		}
	}
	return fmt.Errorf("session %s did not stay in %s after 5 writes", m.AccessKeyID, v.iamFile())
}

func (v *versityIAM) iamFile() string { return filepath.Join(v.IAMDir, "iam.json") }

// writeSession adds s to iam.json, keeping every other field as it is, and
// replaces the file atomically (temp file, then rename).
func (v *versityIAM) writeSession(s versitySession) error {
	b, err := os.ReadFile(v.iamFile())
	if err != nil {
		return err
	}
	var conf map[string]json.RawMessage
	if err := json.Unmarshal(b, &conf); err != nil {
		return fmt.Errorf("%s: %w", v.iamFile(), err)
	}
	sessions := map[string]versitySession{}
	if raw, ok := conf["sessions"]; ok && !bytes.Equal(raw, []byte("null")) {
		if err := json.Unmarshal(raw, &sessions); err != nil {
			return fmt.Errorf("%s: sessions: %w", v.iamFile(), err)
		}
	}
	sessions[s.AccessKeyID] = s
	if conf["sessions"], err = json.Marshal(sessions); err != nil {
		return err
	}
	out, err := json.Marshal(conf)
	if err != nil {
		return err
	}
	tmp, err := os.CreateTemp(v.IAMDir, ".signettest-iam-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(out); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), v.iamFile())
}

// sessions reads the sessions of iam.json.
func (v *versityIAM) sessions() (map[string]versitySession, error) {
	b, err := os.ReadFile(v.iamFile())
	if err != nil {
		return nil, err
	}
	var conf struct {
		Sessions map[string]versitySession `json:"sessions"`
	}
	if err := json.Unmarshal(b, &conf); err != nil {
		return nil, fmt.Errorf("%s: %w", v.iamFile(), err)
	}
	return conf.Sessions, nil
}

// TestVersityIAMVerifiesSessions pins down what the refresh test relies
// on: versitygw accepts a session written into iam.json only with its
// secret and token, and rejects it once expired.
func TestVersityIAMVerifiesSessions(t *testing.T) {
	v := startVersityIAM(t, testAccessKey, testSecretKey)
	role := v.createRole(t, "signet-verify")
	rootc := newSDKClient("", testAccessKey, testSecretKey)
	bucket := v.URL() + "/verify-bucket"
	if r := rootc.Do(t, "PUT", bucket, nil); r.Status != 200 {
		t.Fatalf("create bucket with the root keys: %d\n%s", r.Status, r.Body)
	}
	if r := rootc.Do(t, "PUT", bucket+"/obj", []byte("hello")); r.Status != 200 {
		t.Fatalf("put object with the root keys: %d\n%s", r.Status, r.Body)
	}

	f := ststest.New(t, ststest.Options{PlainHTTP: true, OnMint: func(m ststest.Minted) error { return v.addSession(m, role) }})
	f.AddUser(testBaseKey, testBaseSecret, "arn:aws:iam::000000000000:user/signet-base")
	f.AddRole(ststest.Role{ARN: role.ARN})
	const life = 3 * time.Second
	f.SetLifetime(life)
	m := assumeRoleDirect(t, f, role.ARN)

	get := func(token string) result {
		c := newSDKClient("", m.AccessKeyID, m.SecretAccessKey)
		c.creds.SessionToken = token
		return c.Do(t, "GET", bucket+"/obj", nil)
	}
	if r := get(m.SessionToken); r.Status != 200 || string(r.Body) != "hello" {
		t.Fatalf("GET with the minted session: %d\n%s", r.Status, r.Body)
	}
	// Another last character: "X" unless it already is one.
	other := m.SessionToken[:len(m.SessionToken)-1] + "X"
	if other == m.SessionToken {
		other = m.SessionToken[:len(m.SessionToken)-1] + "Y"
	}
	if r := get(other); r.Status/100 == 2 || !bytes.Contains(r.Body, []byte("InvalidToken")) {
		t.Errorf("GET with another token: %d, want 400 InvalidToken\n%s", r.Status, r.Body)
	}
	if r := get(""); r.Status != 403 || !bytes.Contains(r.Body, []byte("InvalidAccessKeyId")) {
		t.Errorf("GET without the token: %d, want 403 InvalidAccessKeyId\n%s", r.Status, r.Body)
	}
	wrong := newSDKClient("", m.AccessKeyID, m.SecretAccessKey[1:]+"A")
	wrong.creds.SessionToken = m.SessionToken
	if r := wrong.Do(t, "GET", bucket+"/obj", nil); r.Status != 403 || !bytes.Contains(r.Body, []byte("SignatureDoesNotMatch")) {
		t.Errorf("GET with the wrong secret: %d, want 403 SignatureDoesNotMatch\n%s", r.Status, r.Body)
	}

	time.Sleep(time.Until(m.Expires) + 100*time.Millisecond)
	r := get(m.SessionToken)
	if r.Status != 403 || !bytes.Contains(r.Body, []byte("InvalidAccessKeyId")) {
		t.Errorf("GET with the session expired at %s: %d, want 403 InvalidAccessKeyId\n%s",
			m.Expires.UTC().Format(time.RFC3339), r.Status, r.Body)
	}
}

// Base keys the fake STS knows: those signet's static source `base` signs
// its AssumeRole calls with. versitygw does not know them.
const (
	testBaseKey    = "AKIASIGNETBASE000001"
	testBaseSecret = "sIgNeTbAsE/sEcReT+0001/aBcD0123456789xYz"
)

// assumeRoleDirect calls the fake STS's AssumeRole with the base keys and
// returns the session, as the fake handed it to OnMint.
func assumeRoleDirect(tb testing.TB, f *ststest.Server, roleARN string) ststest.Minted {
	tb.Helper()
	form := url.Values{"Action": {"AssumeRole"}, "Version": {"2011-06-15"}, "RoleArn": {roleARN},
		"RoleSessionName": {"signettest-direct"}, "DurationSeconds": {"900"}}
	body := form.Encode()
	req, err := http.NewRequest(http.MethodPost, f.URL()+"/", strings.NewReader(body))
	if err != nil {
		tb.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded; charset=utf-8")
	sum := sha256.Sum256([]byte(body))
	creds := aws.Credentials{AccessKeyID: testBaseKey, SecretAccessKey: testBaseSecret}
	if err := v4.NewSigner().SignHTTP(context.Background(), creds, req, hex.EncodeToString(sum[:]), "sts", f.Region(), time.Now()); err != nil {
		tb.Fatal(err)
	}
	c := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{Proxy: nil}}
	resp, err := c.Do(req)
	if err != nil {
		tb.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 {
		tb.Fatalf("AssumeRole: %d\n%s", resp.StatusCode, b)
	}
	var r struct {
		AccessKeyID     string `xml:"AssumeRoleResult>Credentials>AccessKeyId"`
		SecretAccessKey string `xml:"AssumeRoleResult>Credentials>SecretAccessKey"`
		SessionToken    string `xml:"AssumeRoleResult>Credentials>SessionToken"`
		Expiration      string `xml:"AssumeRoleResult>Credentials>Expiration"`
	}
	if err := xml.Unmarshal(b, &r); err != nil {
		tb.Fatalf("AssumeRole answer: %v\n%s", err, b)
	}
	exp, err := time.Parse(time.RFC3339, r.Expiration)
	if err != nil {
		tb.Fatalf("AssumeRole expiration %q: %v", r.Expiration, err)
	}
	// The answer's expiration is whole seconds; the session's own is not.
	return ststest.Minted{AccessKeyID: r.AccessKeyID, SecretAccessKey: r.SecretAccessKey,
		SessionToken: r.SessionToken, Expires: exp.Add(time.Second), RoleARN: roleARN}
}
