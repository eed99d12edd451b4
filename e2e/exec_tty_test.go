//go:build linux

package e2e

import (
	"fmt"
	"path/filepath"
	"strings"
	"testing"
)

// countInterrupts counts the SIGINTs it gets in the 1.5 s after the first,
// enough for a forwarded duplicate to arrive, then prints the count.
const countInterrupts = `
import signal, sys, time
n = 0
def on_int(sig, frame):
    global n
    n += 1
signal.signal(signal.SIGINT, on_int)
print("ready", flush=True)
deadline = time.time() + 10
while time.time() < deadline and n == 0:
    time.sleep(0.01)
time.sleep(1.5)
print("interrupts=%d" % n, flush=True)
`

// TestExecTerminalInterrupt: a Ctrl-C in the terminal reaches the command
// of `signet exec` once. The terminal signals the whole foreground process
// group, signet included; had signet forwarded its copy too, a program
// that reads a second interrupt as "abort now" would skip its clean
// shutdown.
func TestExecTerminalInterrupt(t *testing.T) {
	bin := needSignet(t)
	py := needCommand(t, "python3")
	dir := t.TempDir()
	cfg := writeTestFile(t, filepath.Join(dir, "signet.yaml"), []byte(fmt.Sprintf(`state_dir: %q
sources:
  test: {method: static, static: {access_key_id: %s, secret_access_key: %q}}
routes:
  - hosts: ["*.amazonaws.com"]
    source: test
`, filepath.Join(dir, "state"), testAccessKey, testSecretKey)))
	driver, err := filepath.Abs(filepath.Join("testdata", "ptyint.py"))
	if err != nil {
		t.Fatal(err)
	}
	r := runBinary(t, baseEnv(dir, "AWS_EC2_METADATA_DISABLED=true"), py, driver,
		bin, "exec", "-c", cfg, "--", py, "-c", countInterrupts)
	if r.Code != 0 || !strings.Contains(r.Stdout, "interrupts=1") {
		t.Errorf("exit %d, output %q; want 0 and interrupts=1\nstderr: %s", r.Code, r.Stdout, r.Stderr)
	}
}
