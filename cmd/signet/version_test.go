package main

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"strings"
	"testing"
)

func TestReadBuildInfo(t *testing.T) {
	vcs := func(kv ...string) []debug.BuildSetting {
		var out []debug.BuildSetting
		for i := 0; i < len(kv); i += 2 {
			out = append(out, debug.BuildSetting{Key: kv[i], Value: kv[i+1]})
		}
		return out
	}
	tests := []struct {
		name               string
		bi                 *debug.BuildInfo
		setVersion, commit string
		want               buildInfo
	}{
		{"go install @version", &debug.BuildInfo{GoVersion: "go1.26.8", Main: debug.Module{Version: "v1.2.3"}, Settings: vcs("CGO_ENABLED", "1")},
			"", "", buildInfo{Version: "v1.2.3", Go: "go1.26.8", CGO: "1"}},
		{"git checkout, dirty", &debug.BuildInfo{GoVersion: "go1.26.8", Main: debug.Module{Version: "(devel)"},
			Settings: vcs("vcs.revision", "0123abcd", "vcs.modified", "true", "vcs.time", "2026-01-02T03:04:05Z", "CGO_ENABLED", "0")},
			"", "", buildInfo{Version: "devel", Commit: "0123abcd", Modified: true, Time: "2026-01-02T03:04:05Z", Go: "go1.26.8", CGO: "0"}},
		{"-X overrides win", &debug.BuildInfo{GoVersion: "go1.26.8", Main: debug.Module{Version: "v0.0.0-20260101-0123abcd"},
			Settings: vcs("vcs.revision", "0123abcd", "vcs.modified", "true", "vcs.time", "2026-01-02T03:04:05Z")},
			"v9.9.9", "feedbeef", buildInfo{Version: "v9.9.9", Commit: "feedbeef", Go: "go1.26.8"}},
		{"no build info", nil, "", "", buildInfo{Version: "devel", Go: runtime.Version()}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := readBuildInfo(tt.bi, tt.setVersion, tt.commit)
			tt.want.Platform = runtime.GOOS + "/" + runtime.GOARCH
			if got != tt.want {
				t.Errorf("got  %+v\nwant %+v", got, tt.want)
			}
		})
	}
}

func TestVersionOutput(t *testing.T) {
	var out bytes.Buffer
	err := writeVersion(&cli{stdout: &out}, buildInfo{Version: "v1.2.3", Commit: "0123abcd", Modified: true,
		Time: "2026-01-02T03:04:05Z", Go: "go1.26.8", Platform: "linux/amd64", CGO: "1"})
	if err != nil {
		t.Fatal(err)
	}
	want := "signet v1.2.3\n" +
		"  commit     0123abcd (modified)\n" +
		"  committed  2026-01-02T03:04:05Z\n" +
		"  go         go1.26.8 linux/amd64\n" +
		"  pkcs11     yes (cgo)\n"
	if out.String() != want {
		t.Errorf("got\n%s\nwant\n%s", &out, want)
	}
	var stdout, stderr bytes.Buffer
	if code := run(context.Background(), []string{"version", "extra"}, &stdout, &stderr, nil); code != exitConfig {
		t.Errorf("version extra: exit %d", code)
	}
}

// TestVersionOfBuiltBinary builds signet the way the README does, with
// the -X overrides a Docker build passes, and reads what it prints.
func TestVersionOfBuiltBinary(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary")
	}
	bin := filepath.Join(t.TempDir(), "signet")
	build := exec.Command("go", "build", "-trimpath", "-ldflags", "-X main.version=v7.8.9 -X main.commit=c0ffee", "-o", bin, ".")
	build.Env = append(os.Environ(), "CGO_ENABLED=1")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	out, err := exec.Command(bin, "version").Output()
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"signet v7.8.9\n", "commit     c0ffee\n", "go         " + runtime.Version(), "pkcs11     yes (cgo)"} {
		if !strings.Contains(string(out), want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(string(out), "modified") {
		t.Errorf("a -X commit is reported as modified:\n%s", out)
	}
}
