//go:build linux

package e2e

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// TestSecurityMDNamesRealTests keeps SECURITY.md honest: every test or
// fuzz target it cites for a threat must exist, so that renaming or
// deleting one cannot leave a threat covered only on paper.
func TestSecurityMDNamesRealTests(t *testing.T) {
	doc, err := os.ReadFile(filepath.Join("..", "SECURITY.md"))
	if err != nil {
		t.Fatal(err)
	}
	cited := map[string]bool{}
	for _, m := range regexp.MustCompile("`((?:Test|Fuzz)[A-Za-z0-9_]+)[^`]*`").FindAllSubmatch(doc, -1) {
		cited[string(m[1])] = true
	}
	if len(cited) < 50 {
		t.Fatalf("SECURITY.md cites %d tests; the threat tables must have been lost", len(cited))
	}
	defined := map[string]bool{}
	def := regexp.MustCompile(`(?m)^func ((?:Test|Fuzz)[A-Za-z0-9_]+)\(`)
	err = filepath.WalkDir("..", func(path string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && (d.Name() == ".git" || d.Name() == "testdata") {
			return filepath.SkipDir
		}
		if d.IsDir() || !strings.HasSuffix(path, "_test.go") {
			return nil
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		for _, m := range def.FindAllSubmatch(b, -1) {
			defined[string(m[1])] = true
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	for name := range cited {
		if !defined[name] {
			t.Errorf("SECURITY.md cites %s, which no _test.go file defines", name)
		}
	}
}
