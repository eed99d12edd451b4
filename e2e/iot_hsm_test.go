//go:build linux && cgo

package e2e

import (
	"crypto"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/signet-proxy/signet/credentials/pkcs11"
	"github.com/signet-proxy/signet/internal/iottest"
)

const (
	hsmToken = "signet-e2e"
	hsmPIN   = "5678"
)

// softHSM is a SoftHSM2 token in a directory of the test's own.
type softHSM struct {
	module, conf string
}

func needSoftHSM(t *testing.T) *softHSM {
	t.Helper()
	module := os.Getenv("SIGNETTEST_SOFTHSM2_MODULE")
	if module == "" {
		module = "/usr/lib/softhsm/libsofthsm2.so"
	}
	if _, err := os.Stat(module); err != nil {
		missing(t, "SoftHSM2 module %s: %v (apt-get install softhsm2; scripts/test.sh does)", module, err)
	}
	needCommand(t, "softhsm2-util")
	needCommand(t, "pkcs11-tool")
	dir := t.TempDir()
	tokens := filepath.Join(dir, "tokens")
	if err := os.Mkdir(tokens, 0o700); err != nil {
		t.Fatal(err)
	}
	h := &softHSM{module: module, conf: filepath.Join(dir, "softhsm2.conf")}
	writeTestFile(t, h.conf, []byte("directories.tokendir = "+tokens+"\nobjectstore.backend = file\nlog.level = ERROR\n"))
	// This process opens the token too (to read a generated key's
	// public half), and the module reads SOFTHSM2_CONF when it loads.
	t.Setenv("SOFTHSM2_CONF", h.conf)
	h.run(t, "softhsm2-util", "--init-token", "--free", "--label", hsmToken, "--so-pin", "1234", "--pin", hsmPIN)
	return h
}

func (h *softHSM) run(t *testing.T, name string, args ...string) {
	t.Helper()
	cmd := exec.Command(name, args...)
	cmd.Env = append(os.Environ(), "SOFTHSM2_CONF="+h.conf)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("%s %v: %v\n%s", name, args, err, out)
	}
}

// generateEC makes a P-256 key pair inside the token and returns its
// public key, read back through signet's own PKCS#11 loader.
func (h *softHSM) generateEC(t *testing.T, label, id string) crypto.PublicKey {
	t.Helper()
	h.run(t, "pkcs11-tool", "--module", h.module, "--token-label", hsmToken, "--login", "--pin", hsmPIN,
		"--keypairgen", "--key-type", "EC:prime256v1", "--id", id, "--label", label)
	k, err := pkcs11.Open(pkcs11.Options{Module: h.module, TokenLabel: hsmToken, KeyLabel: label, PIN: hsmPIN})
	if err != nil {
		t.Fatal(err)
	}
	defer k.Close()
	return k.Public()
}

// importKey puts a PKCS#8 PEM key into the token.
func (h *softHSM) importKey(t *testing.T, keyPEM []byte, label, id string) {
	t.Helper()
	file := writeTestFile(t, filepath.Join(t.TempDir(), label+".pem"), keyPEM)
	h.run(t, "softhsm2-util", "--import", file, "--token", hsmToken, "--label", label, "--id", id, "--pin", hsmPIN)
}

// deviceCert issues a device certificate for pub from the fake's CA.
func deviceCert(t *testing.T, ca *iottest.CA, pub crypto.PublicKey) ([]byte, *x509.Certificate) {
	t.Helper()
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(time.Now().UnixNano()),
		Subject:      pkix.Name{CommonName: "signet-hsm-device"},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.Cert, pub, ca.Key)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	return append(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), ca.PEM...), cert
}

// TestIoTWithHSMKey: the device key lives in a real PKCS#11 token
// (SoftHSM2), an EC P-256 key generated in the token and an RSA-2048 key
// imported from PEM. Each is the mTLS key signet uses to get keys from the
// IoT credentials provider; curl's requests through signet reach
// versitygw signed with them and are verified there.
func TestIoTWithHSMKey(t *testing.T) {
	hsm := needSoftHSM(t)
	v := startVersityIAM(t, testAccessKey, testSecretKey)
	role := v.createRole(t, "signet-iot-hsm")
	const bucket, key, payload = "hsm-bucket", "obj.txt", "signed with keys from an HSM-held device key"
	rootc := newSDKClient("", testAccessKey, testSecretKey)
	if r := rootc.Do(t, "PUT", v.URL()+"/"+bucket, nil); r.Status != 200 {
		t.Fatalf("create bucket: %d\n%s", r.Status, r.Body)
	}
	if r := rootc.Do(t, "PUT", v.URL()+"/"+bucket+"/"+key, []byte(payload)); r.Status != 200 {
		t.Fatalf("put object: %d\n%s", r.Status, r.Body)
	}
	dir := t.TempDir()
	iot := startIoT(t, v, role, dir)
	ca := iot.fake.CA()

	ecPub := hsm.generateEC(t, "device-ec", "01")
	rsaDev := ca.ClientCert(t, iottest.ClientOptions{Key: iottest.RSA})
	hsm.importKey(t, rsaDev.PKCS8PEM(t), "device-rsa", "03")
	pinFile := writeTestFile(t, filepath.Join(dir, "pin"), []byte(hsmPIN+"\n"))

	for _, tc := range []struct {
		name, label string
		pub         crypto.PublicKey
	}{
		{"ec-generated-in-token", "device-ec", ecPub},
		{"rsa-imported", "device-rsa", rsaDev.Key.Public()},
	} {
		t.Run(tc.name, func(t *testing.T) {
			certPEM, cert := deviceCert(t, ca, tc.pub)
			iot.fake.AttachThing(iot.thing, cert)
			certFile := writeTestFile(t, filepath.Join(dir, tc.name+".cert.pem"), certPEM)
			before := len(iot.fake.Calls())
			s := startSignetEnv(t, fmt.Sprintf(`listen: 127.0.0.1:0
log: {level: debug, format: json}
sources:
  device:
    method: iot
    iot:
      endpoint: "localhost:%s"
      role_alias: %s
      thing_name: %s
      certificate: %q
      pkcs11: {module: %q, token_label: %s, key_label: %s, pin_file: %q}
      ca_file: %q
routes:
  - hosts: ["%[10]s"]
    source: device
    upstream_scheme: http
upstream:
  connect_to:
    "%[10]s:80": "%[11]s"
`, iot.fake.Port(), iot.alias, iot.thing, certFile, hsm.module, hsmToken, tc.label, pinFile, iot.files.ca, s3Host, v.Addr),
				0, "SOFTHSM2_CONF="+hsm.conf)
			curl := newCurlClient(t, s.ProxyURL())
			iot.mu.Lock()
			hookBefore := iot.inHook
			iot.mu.Unlock()
			start := time.Now()
			r := curl.Do(t, "GET", "http://"+s3Host+"/"+bucket+"/"+key, nil)
			took := time.Since(start)
			if r.Status != 200 || string(r.Body) != payload {
				t.Fatalf("GET through signet: %d %s\n%s", r.Status, r.Header.Get("X-Signet-Error"), r.Body)
			}
			calls := iot.fake.Calls()[before:]
			if len(calls) != 1 || calls[0].Status != 200 || calls[0].CertificateID != iottest.Fingerprint(cert) {
				t.Fatalf("calls to the credentials provider: %+v", calls)
			}
			// Less the time the test's own hook spent writing the session
			// into versitygw's store, which is not signet's.
			iot.mu.Lock()
			hook := iot.inHook - hookBefore
			iot.mu.Unlock()
			t.Logf("first request through signet, with an IoT refresh over mTLS with the %s token key: %v (%v less the test's session write)", tc.name, took, took-hook)
		})
	}
}
