//go:build linux

package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/signet-proxy/signet/internal/iottest"
	"github.com/signet-proxy/signet/internal/ststest"
)

// iotSetup is a fake IoT credentials provider whose every session is also
// written into versitygw's IAM store, as a session of role, and a device
// certificate (EC, PKCS#8 PEM key) that may assume the role alias.
type iotSetup struct {
	fake  *iottest.Server
	dev   *iottest.Client
	alias string
	thing string
	files struct{ cert, key, ca string }

	mu      sync.Mutex
	minted  []iottest.Minted
	mintErr error
	// inHook is the time spent writing sessions into versitygw's store
	// (which pauses to check the write): test overhead, not signet's.
	inHook time.Duration
}

// startIoT starts the fake with role alias alias for role, and writes the
// device's certificate chain, key and the fake's CA into dir.
func startIoT(t *testing.T, v *versityIAM, role iamRole, dir string) *iotSetup {
	t.Helper()
	s := &iotSetup{alias: "signet-iot-alias", thing: "signet-e2e-device"}
	s.fake = iottest.New(t, iottest.Options{OnMint: func(m iottest.Minted) error {
		// AWS names an IoT session after the certificate ID.
		begin := time.Now()
		defer func() { s.mu.Lock(); s.inHook += time.Since(begin); s.mu.Unlock() }()
		err := v.addSession(ststest.Minted{
			AccessKeyID: m.AccessKeyID, SecretAccessKey: m.SecretAccessKey, SessionToken: m.SessionToken,
			Issued: m.Issued, Expires: m.Expires, RoleARN: m.RoleARN, RoleSessionName: m.CertificateID,
		}, role)
		s.mu.Lock()
		defer s.mu.Unlock()
		if err != nil {
			s.mintErr = err
			return err
		}
		s.minted = append(s.minted, m)
		return nil
	}})
	s.fake.AddRoleAlias(s.alias, role.ARN)
	s.dev = s.fake.CA().ClientCert(t, iottest.ClientOptions{Key: iottest.EC})
	s.fake.AttachThing(s.thing, s.dev.Cert)
	s.files.cert = writeTestFile(t, filepath.Join(dir, "device.cert.pem"), s.dev.CertPEM)
	s.files.key = writeTestFile(t, filepath.Join(dir, "device.private.key"), s.dev.PKCS8PEM(t))
	s.files.ca = writeTestFile(t, filepath.Join(dir, "iot-ca.pem"), s.fake.RootPEM())
	return s
}

func (s *iotSetup) mints() ([]iottest.Minted, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.minted), s.mintErr
}

// sourceYAML is an iot source block (indented for `sources:`) for the
// fake, with a PEM key.
func (s *iotSetup) sourceYAML(name string) string {
	return fmt.Sprintf(`  %s:
    method: iot
    iot:
      endpoint: "localhost:%s"
      role_alias: %s
      thing_name: %s
      certificate: %q
      private_key: %q
      ca_file: %q
      timeout: 10s
`, name, s.fake.Port(), s.alias, s.thing, s.files.cert, s.files.key, s.files.ca)
}

// TestIoTEndToEnd: signet gets its keys from the IoT credentials provider
// over mutual TLS (a PEM key) and signs curl's requests to S3 with them;
// versitygw, which knows only the sessions the fake minted, verifies them.
// It logs how long one IoT refresh takes, seen from the client.
func TestIoTEndToEnd(t *testing.T) {
	v := startVersityIAM(t, testAccessKey, testSecretKey)
	role := v.createRole(t, "signet-iot")
	const bucket, key, payload = "iot-bucket", "obj.txt", "signed with keys from IoT"
	rootc := newSDKClient("", testAccessKey, testSecretKey)
	if r := rootc.Do(t, "PUT", v.URL()+"/"+bucket, nil); r.Status != 200 {
		t.Fatalf("create bucket with the root keys: %d\n%s", r.Status, r.Body)
	}
	if r := rootc.Do(t, "PUT", v.URL()+"/"+bucket+"/"+key, []byte(payload)); r.Status != 200 {
		t.Fatalf("put object with the root keys: %d\n%s", r.Status, r.Body)
	}
	iot := startIoT(t, v, role, t.TempDir())

	cfg := fmt.Sprintf(`listen: 127.0.0.1:0
log: {level: debug, format: json}
sources:
%s    refresh: {mode: deferred}
routes:
  - hosts: ["%[2]s"]
    source: device
    upstream_scheme: http
upstream:
  connect_to:
    "%[2]s:80": "%[3]s"
`, iot.sourceYAML("device"), s3Host, v.Addr)
	s := startSignet(t, cfg, 0)
	if n := len(iot.fake.Calls()); n != 0 {
		t.Fatalf("signet called the credentials provider %d times before any request (deferred mode)", n)
	}
	curl := newCurlClient(t, s.ProxyURL())
	url := "http://" + s3Host + "/" + bucket + "/" + key

	// The first request waits for the refresh; the next ones do not.
	start := time.Now()
	r := curl.Do(t, "GET", url, nil)
	first := time.Since(start)
	if r.Status != 200 || string(r.Body) != payload {
		t.Fatalf("GET through signet: %d %s\n%s", r.Status, r.Header.Get("X-Signet-Error"), r.Body)
	}
	var steady []time.Duration
	for range 10 {
		start := time.Now()
		r := curl.Do(t, "GET", url, nil)
		steady = append(steady, time.Since(start))
		if r.Status != 200 || string(r.Body) != payload {
			t.Fatalf("GET through signet again: %d\n%s", r.Status, r.Body)
		}
	}
	slices.Sort(steady)
	median := steady[len(steady)/2]

	// The keys came from the fake, over mTLS with the device certificate,
	// and versitygw knew them only because the fake minted them.
	ms, err := iot.mints()
	if err != nil {
		t.Fatalf("writing the session into versitygw's IAM store: %v", err)
	}
	if len(ms) != 1 {
		t.Fatalf("the fake minted %d sessions, want 1", len(ms))
	}
	calls := iot.fake.Calls()
	if len(calls) != 1 || calls[0].Status != 200 || calls[0].CertificateID != iottest.Fingerprint(iot.dev.Cert) ||
		calls[0].ThingName != iot.thing || calls[0].ServerName != "localhost" || calls[0].RoleAlias != iot.alias {
		t.Errorf("calls to the credentials provider: %+v", calls)
	}
	logged := refreshedKeys(s.Logs.String(), "device")
	if len(logged) != 1 || logged[0] != redactKey(ms[0].AccessKeyID) {
		t.Errorf("signet logged refreshes %v, the fake minted %s", logged, redactKey(ms[0].AccessKeyID))
	}
	logs := s.Logs.String()
	keyPEM, err := os.ReadFile(iot.files.key)
	if err != nil {
		t.Fatal(err)
	}
	for what, secret := range map[string]string{"secret key": ms[0].SecretAccessKey, "session token": ms[0].SessionToken, "device key": string(keyPEM[40:80])} {
		if strings.Contains(logs, secret) {
			t.Errorf("signet's log shows the %s", what)
		}
	}
	iot.mu.Lock()
	hook := iot.inHook
	iot.mu.Unlock()
	us := func(d time.Duration) time.Duration { return d.Round(100 * time.Microsecond) }
	t.Logf("IoT refresh (PEM key, EC P-256, TLS %#x, loopback): first request %s, later ones %s (median), of which the test's OnMint "+
		"(writing versitygw's IAM store) took %s: one refresh (TCP + mTLS handshake + GET) took about %s",
		calls[0].TLSVersion, us(first), us(median), us(hook), us(first-median-hook))
}
