package tlsintercept

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func openTest(t *testing.T, dir string) (*Interceptor, error) {
	t.Helper()
	i, err := Open(context.Background(), Options{StateDir: dir, Allow: func(string) bool { return true }})
	if err == nil {
		t.Cleanup(func() { _ = i.Close() })
	}
	return i, err
}

func TestOpenCreatesPrivateCAAndReusesIt(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "state", "signet")
	first, err := openTest(t, dir)
	if err != nil {
		t.Fatalf("first Open: %v", err)
	}
	for path, want := range map[string]os.FileMode{
		dir:                            0o700,
		filepath.Join(dir, caKeyFile):  0o600,
		filepath.Join(dir, caCertFile): 0o644,
	} {
		info, err := os.Stat(path)
		if err != nil {
			t.Fatal(err)
		}
		if got := info.Mode().Perm(); got != want {
			t.Errorf("%s: mode %04o, want %04o", path, got, want)
		}
	}
	ca := first.CACert()
	if !ca.IsCA || ca.MaxPathLen != 0 || !ca.MaxPathLenZero || !strings.HasPrefix(ca.Subject.CommonName, "signet local CA ") {
		t.Errorf("CA certificate: IsCA %v MaxPathLen %d zero %v CN %q", ca.IsCA, ca.MaxPathLen, ca.MaxPathLenZero, ca.Subject.CommonName)
	}
	if years := ca.NotAfter.Sub(ca.NotBefore).Hours() / 24 / 365; years < 9.9 || years > 10.1 {
		t.Errorf("CA lifetime %.1f years, want 10", years)
	}
	if first.CAPath() != filepath.Join(dir, caCertFile) {
		t.Errorf("CAPath %q", first.CAPath())
	}
	if err := first.Close(); err != nil {
		t.Fatal(err)
	}

	second, err := openTest(t, dir)
	if err != nil {
		t.Fatalf("second Open: %v", err)
	}
	if !bytes.Equal(first.CACertPEM(), second.CACertPEM()) {
		t.Error("second Open made a new CA instead of reusing the first")
	}

	cert, pemBytes, path, err := LoadCA(dir)
	if err != nil {
		t.Fatalf("LoadCA: %v", err)
	}
	if !cert.Equal(second.CACert()) || !bytes.Equal(pemBytes, second.CACertPEM()) || path != second.CAPath() {
		t.Error("LoadCA returned a different CA than Open")
	}
}

func TestLoadCACreatesNothing(t *testing.T) {
	for name, dir := range map[string]string{
		"missing dir": filepath.Join(t.TempDir(), "nope"),
		"empty dir":   t.TempDir(),
	} {
		t.Run(name, func(t *testing.T) {
			if name == "empty dir" {
				if err := os.Chmod(dir, 0o700); err != nil {
					t.Fatal(err)
				}
			}
			_, _, _, err := LoadCA(dir)
			if !errors.Is(err, ErrNoCA) || !strings.Contains(err.Error(), "signet serve") {
				t.Fatalf("LoadCA = %v, want ErrNoCA suggesting signet serve", err)
			}
			if entries, _ := os.ReadDir(dir); len(entries) != 0 {
				t.Errorf("LoadCA created %v", entries)
			}
		})
	}
}

// TestOpenRefusesUnsafeOrBrokenCA: each case damages a good state
// directory in one way; Open and LoadCA must both refuse it with an error
// that names the path to fix.
func TestOpenRefusesUnsafeOrBrokenCA(t *testing.T) {
	otherDir := t.TempDir()
	if err := os.Chmod(otherDir, 0o700); err != nil {
		t.Fatal(err)
	}
	other, err := openTest(t, otherDir)
	if err != nil {
		t.Fatal(err)
	}
	otherKey, err := os.ReadFile(filepath.Join(otherDir, caKeyFile))
	if err != nil {
		t.Fatal(err)
	}
	_ = other.Close()

	tests := []struct {
		name     string
		damage   func(dir string) error
		wantPath string // file name in dir, or "" for dir itself
		wantText string
	}{
		{"group-readable dir", func(dir string) error { return os.Chmod(dir, 0o750) }, "", "chmod 700"},
		{"world-writable dir", func(dir string) error { return os.Chmod(dir, 0o707) }, "", "chmod 700"},
		{"key 0644", func(dir string) error { return os.Chmod(filepath.Join(dir, caKeyFile), 0o644) }, caKeyFile, "chmod 600"},
		{"key of another CA", func(dir string) error {
			return os.WriteFile(filepath.Join(dir, caKeyFile), otherKey, 0o600)
		}, caKeyFile, "does not match"},
		{"garbage certificate", func(dir string) error {
			return os.WriteFile(filepath.Join(dir, caCertFile), []byte("not PEM"), 0o644)
		}, caCertFile, "parse CA certificate"},
		{"garbage key", func(dir string) error {
			return os.WriteFile(filepath.Join(dir, caKeyFile), []byte("-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n"), 0o600)
		}, caKeyFile, "parse CA key"},
		{"certificate only", func(dir string) error { return os.Remove(filepath.Join(dir, caKeyFile)) }, caKeyFile, "missing"},
		{"key only", func(dir string) error { return os.Remove(filepath.Join(dir, caCertFile)) }, caCertFile, "missing"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "state")
			i, err := openTest(t, dir)
			if err != nil {
				t.Fatal(err)
			}
			_ = i.Close()
			if err := tt.damage(dir); err != nil {
				t.Fatal(err)
			}
			wantPath := dir
			if tt.wantPath != "" {
				wantPath = filepath.Join(dir, tt.wantPath)
			}
			_, openErr := openTest(t, dir)
			_, _, _, loadErr := LoadCA(dir)
			for fn, err := range map[string]error{"Open": openErr, "LoadCA": loadErr} {
				if err == nil {
					t.Fatalf("%s succeeded", fn)
				}
				if !strings.Contains(err.Error(), wantPath) || !strings.Contains(err.Error(), tt.wantText) {
					t.Errorf("%s error %q: want it to name %s and say %q", fn, err, wantPath, tt.wantText)
				}
			}
		})
	}
}

func TestOpenRejectsBadOptions(t *testing.T) {
	dir := t.TempDir()
	allow := func(string) bool { return true }
	tests := []struct {
		name string
		opts Options
		want string
	}{
		{"no state dir", Options{Allow: allow}, "StateDir"},
		{"no allow", Options{StateDir: dir}, "Allow"},
		{"negative cache", Options{StateDir: dir, Allow: allow, CacheSize: -1}, "CacheSize"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			i, err := Open(context.Background(), tt.opts)
			if err == nil {
				_ = i.Close()
				t.Fatal("Open succeeded")
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error %q does not mention %s", err, tt.want)
			}
		})
	}
}

func TestOpenRefusesExpiredCA(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "state")
	past := time.Now().Add(-11 * 365 * 24 * time.Hour)
	i, err := Open(context.Background(), Options{StateDir: dir, Allow: func(string) bool { return true }, Now: func() time.Time { return past }})
	if err != nil {
		t.Fatal(err)
	}
	_ = i.Close()
	if _, err := openTest(t, dir); err == nil || !strings.Contains(err.Error(), "expired") {
		t.Fatalf("Open with an expired CA = %v, want an expiry error", err)
	}
}
