package configs_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/signet-proxy/signet/configs"
)

// deployConfigs are the signet configs of the deployment examples in
// deploy/, one signet.yaml beside each example that runs it.
func deployConfigs(t *testing.T) []string {
	t.Helper()
	files, err := filepath.Glob("../deploy/*/signet.yaml")
	if err != nil || len(files) < 3 {
		t.Fatalf("deploy configs: %v %v (want kubernetes, systemd and compose)", files, err)
	}
	return files
}

// TestDeployExamples loads the config of every deployment example with
// the real loader, and checks that the example actually runs that file,
// so that the tested config is the deployed one.
func TestDeployExamples(t *testing.T) {
	// What in each example refers to its signet.yaml.
	refs := map[string]struct{ file, ref string }{
		"kubernetes": {"kustomization.yaml", "- signet.yaml"},
		"systemd":    {"signet.service", "-c /etc/signet/signet.yaml"},
		"compose":    {"compose.yaml", "./signet.yaml:/etc/signet/signet.yaml:ro"},
	}
	for _, f := range deployConfigs(t) {
		dir := filepath.Dir(f)
		name := filepath.Base(dir)
		t.Run(name, func(t *testing.T) {
			cfg, err := configs.Load(configs.LoadOptions{File: f, Environ: home})
			if err != nil {
				t.Fatal(err)
			}
			if err := cfg.Validate(); err != nil {
				t.Fatal(err)
			}
			if !filepath.IsAbs(cfg.StateDir) || strings.HasPrefix(cfg.StateDir, "/home/") {
				t.Errorf("state_dir %q: a deployment sets its own, not one under a home directory", cfg.StateDir)
			}
			r, ok := refs[name]
			if !ok {
				t.Fatalf("no reference check for deploy/%s: add one to refs", name)
			}
			b, err := os.ReadFile(filepath.Join(dir, r.file))
			if err != nil {
				t.Fatal(err)
			}
			if !strings.Contains(string(b), r.ref) {
				t.Errorf("%s does not run signet.yaml (no %q)", r.file, r.ref)
			}
		})
	}
}
