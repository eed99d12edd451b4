//go:build cgo

package pkcs11

import (
	"bufio"
	"bytes"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// defaultSoftHSM2Module is where Debian's softhsm2 package puts the module;
// SIGNETTEST_SOFTHSM2_MODULE overrides it.
const defaultSoftHSM2Module = "/usr/lib/softhsm/libsofthsm2.so"

// A token made for one test in its own SoftHSM2 directory, with two keys:
// "ec" (id 01, P-256, generated in the token) and "rsa" (id 03, RSA-2048,
// imported, so its public half is known to the test).
type testToken struct {
	module string
	label  string
	serial string
	slot   int
	pin    string
	rsa    *rsa.PublicKey
	// other is a second token in the same module, so that "not found"
	// errors have more than one token to list.
	other string
}

const (
	testPIN   = "pin-7351-secret"
	testSOPIN = "so-pin-9906-secret"
)

// newTestToken makes a private SoftHSM2 token directory, points
// SOFTHSM2_CONF at it for this test (so the test cannot be parallel),
// and creates the token and its keys. Without SoftHSM2 it skips, or fails
// when CI=true.
func newTestToken(tb testing.TB) *testToken {
	tb.Helper()
	module := os.Getenv("SIGNETTEST_SOFTHSM2_MODULE")
	if module == "" {
		module = defaultSoftHSM2Module
	}
	var missing []string
	for _, tool := range []string{"softhsm2-util", "pkcs11-tool"} {
		if _, err := exec.LookPath(tool); err != nil {
			missing = append(missing, tool)
		}
	}
	if _, err := os.Stat(module); err != nil {
		missing = append(missing, "module "+module+" (set SIGNETTEST_SOFTHSM2_MODULE)")
	}
	if len(missing) > 0 {
		msg := "SoftHSM2 is not available: missing " + strings.Join(missing, ", ") +
			" (apt-get install softhsm2 opensc, or run scripts/test.sh)"
		if os.Getenv("CI") == "true" {
			tb.Fatal(msg)
		}
		tb.Skip(msg)
	}

	dir := tb.TempDir()
	tokens := filepath.Join(dir, "tokens")
	if err := os.Mkdir(tokens, 0o700); err != nil {
		tb.Fatal(err)
	}
	conf := filepath.Join(dir, "softhsm2.conf")
	confText := fmt.Sprintf("directories.tokendir = %s\nobjectstore.backend = file\nlog.level = ERROR\n", tokens)
	if err := os.WriteFile(conf, []byte(confText), 0o600); err != nil {
		tb.Fatal(err)
	}
	tb.Setenv("SOFTHSM2_CONF", conf)

	tok := &testToken{module: module, label: "signet-test", pin: testPIN, other: "spare"}
	run(tb, "softhsm2-util", "--init-token", "--free", "--label", tok.label, "--so-pin", testSOPIN, "--pin", testPIN)
	run(tb, "softhsm2-util", "--init-token", "--free", "--label", tok.other, "--so-pin", testSOPIN, "--pin", testPIN)
	run(tb, "pkcs11-tool", "--module", module, "--token-label", tok.label, "--login", "--pin", testPIN,
		"--keypairgen", "--key-type", "EC:prime256v1", "--id", "01", "--label", "ec")

	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		tb.Fatal(err)
	}
	der, err := x509.MarshalPKCS8PrivateKey(key) // softhsm2-util --import reads PKCS#8
	if err != nil {
		tb.Fatal(err)
	}
	keyFile := filepath.Join(dir, "rsa.pem")
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), 0o600); err != nil {
		tb.Fatal(err)
	}
	run(tb, "softhsm2-util", "--import", keyFile, "--token", tok.label, "--label", "rsa", "--id", "03", "--pin", testPIN)
	tok.rsa = &key.PublicKey

	tok.slot, tok.serial = findSlot(tb, run(tb, "softhsm2-util", "--show-slots"), tok.label)
	return tok
}

// run runs a tool and returns its output; a failure fails the test with
// the output.
func run(tb testing.TB, name string, args ...string) string {
	tb.Helper()
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		tb.Fatalf("%s %s: %v\n%s", name, args[0], err, out)
	}
	return string(out)
}

// findSlot reads the slot and serial number of the token labelled label
// from `softhsm2-util --show-slots`.
func findSlot(tb testing.TB, out, label string) (int, string) {
	tb.Helper()
	var (
		slot   = -1
		serial string
	)
	sc := bufio.NewScanner(bytes.NewReader([]byte(out)))
	for sc.Scan() {
		line := sc.Text()
		if s, ok := strings.CutPrefix(line, "Slot "); ok {
			n, err := strconv.Atoi(strings.TrimSpace(s))
			if err != nil {
				tb.Fatalf("softhsm2-util --show-slots: %q", line)
			}
			slot, serial = n, ""
			continue
		}
		k, v, ok := strings.Cut(strings.TrimSpace(line), ":")
		if !ok {
			continue
		}
		switch v = strings.TrimSpace(v); k {
		case "Serial number":
			serial = v
		case "Label":
			if v == label && slot >= 0 {
				return slot, serial
			}
		}
	}
	tb.Fatalf("softhsm2-util --show-slots lists no token %q:\n%s", label, out)
	return 0, ""
}

// options returns Options for this token, by label, and the given key.
func (tok *testToken) options(keyLabel string, keyID []byte) Options {
	return Options{Module: tok.module, TokenLabel: tok.label, KeyLabel: keyLabel, KeyID: keyID, PIN: tok.pin}
}

// open opens a key and closes it at the end of the test: a Key left open
// would keep the module initialized with this test's SOFTHSM2_CONF.
func (tok *testToken) open(tb testing.TB, opts Options) *Key {
	tb.Helper()
	k, err := Open(opts)
	if err != nil {
		tb.Fatalf("Open(%v): %v", opts, err)
	}
	tb.Cleanup(func() {
		if err := k.Close(); err != nil {
			tb.Errorf("Close: %v", err)
		}
	})
	return k
}
