//go:build linux

package e2e

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestREADMEQuickStart runs the README's quick start block as a newcomer
// would, in bash from the repository root. Only what cannot be shared
// with other tests changes: the demo directory and the two ports. It must
// end with the object read back through HTTPS_PROXY.
func TestREADMEQuickStart(t *testing.T) {
	needCommand(t, "curl")
	vgw := needVersity(t)
	root, err := repoRoot()
	if err != nil {
		t.Fatal(err)
	}
	readme, err := os.ReadFile(filepath.Join(root, "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	block := quickStartBlock(t, string(readme))

	dir := t.TempDir()
	script := strings.NewReplacer(
		"/tmp/signet-demo", dir,
		"127.0.0.1:7070", "127.0.0.1:"+strconv.Itoa(freePort(t)),
		"127.0.0.1:8080", "127.0.0.1:"+strconv.Itoa(freePort(t)),
	).Replace(block)
	// Whatever the block started in the background goes with the group.
	script = "set -euo pipefail\n" + script

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "bash", "-c", script)
	cmd.Dir = root
	// versitygw from the test peers comes first, so the block's
	// `go install` is not needed; the admin listener takes a free port
	// so parallel tests do not collide on its default.
	// The block's `go install` goes to a bin of the test's own, first on
	// PATH.
	bin := filepath.Join(dir, "bin")
	cmd.Env = append(withoutSignetVars(os.Environ()),
		"GOBIN="+bin,
		"PATH="+bin+":"+filepath.Dir(vgw)+":"+os.Getenv("PATH"),
		"SIGNET_ADMIN__LISTEN=127.0.0.1:0",
	)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	// A file, not a pipe: the servers the block leaves running in the
	// background keep its output open, and Wait would wait for them.
	out, err := os.Create(filepath.Join(dir, "output"))
	if err != nil {
		t.Fatal(err)
	}
	defer out.Close()
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = syscall.Kill(-cmd.Process.Pid, syscall.SIGTERM) })
	err = cmd.Wait()
	b, _ := os.ReadFile(out.Name())
	got := string(b)
	if err != nil {
		t.Fatalf("quick start failed: %v\n%s", err, got)
	}
	t.Logf("quick start output:\n%s", got)
	if !strings.Contains(got, "\nhello, signed world") {
		t.Fatalf("quick start did not read the object back; output:\n%s", got)
	}
}

// quickStartBlock is the sh block between the quickstart markers.
func quickStartBlock(t *testing.T, readme string) string {
	t.Helper()
	_, rest, ok := strings.Cut(readme, "<!-- quickstart -->")
	if !ok {
		t.Fatal("README.md has no <!-- quickstart --> marker")
	}
	body, _, ok := strings.Cut(rest, "<!-- /quickstart -->")
	if !ok {
		t.Fatal("README.md has no <!-- /quickstart --> marker")
	}
	body = strings.TrimSpace(body)
	body, ok = strings.CutPrefix(body, "```sh\n")
	if !ok || !strings.HasSuffix(body, "```") {
		t.Fatal("the quickstart block is not one ```sh fence")
	}
	return strings.TrimSuffix(body, "```")
}
