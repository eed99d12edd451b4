//go:build linux

package e2e

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// minSecretLen is the shortest string scanForSecrets looks for: anything
// shorter would match by chance (and is no credential signet handles).
const minSecretLen = 12

// scanForSecrets fails tb for every secret found in any blob: as it is,
// and as a log line, a JSON document or a URL would write it (quoted with
// escapes, JSON-escaped, query- and path-escaped). Secrets are what a test
// handed signet or saw it hand on: secret keys, session tokens, the admin
// token, signatures an upstream received. Blobs are what signet wrote:
// its logs, metrics, admin answers, error bodies.
//
// The failure names the secret by its first four characters and shows
// where it was found with the secret itself cut out, so the report does
// not spread it further.
func scanForSecrets(tb testing.TB, secrets []string, blobs ...[]byte) {
	tb.Helper()
	for _, s := range secrets {
		if len(s) < minSecretLen {
			tb.Errorf("scanForSecrets: a secret of %d characters would match by chance; pass real secrets only", len(s))
			continue
		}
		for i, b := range blobs {
			for _, form := range secretForms(s) {
				if at := bytes.Index(b, []byte(form)); at >= 0 {
					tb.Errorf("secret %s… found in blob %d (%d bytes) at offset %d: …%s…",
						s[:4], i, len(b), at, around(b, at, len(form)))
					break
				}
			}
		}
	}
}

// secretForms are the ways s may be written out.
func secretForms(s string) []string {
	forms := []string{s}
	add := func(f string) {
		for _, g := range forms {
			if g == f {
				return
			}
		}
		forms = append(forms, f)
	}
	q := strconv.Quote(s)
	add(q[1 : len(q)-1])
	j, _ := json.Marshal(s)
	add(string(j[1 : len(j)-1]))
	add(url.QueryEscape(s))
	add(url.PathEscape(s))
	return forms
}

// around is the text around a match, with the match itself replaced.
func around(b []byte, at, n int) string {
	from, to := max(0, at-60), min(len(b), at+n+60)
	return strconv.Quote(string(b[from:at]) + "<SECRET>" + string(b[at+n:to]))
}

// Files in signet's state directory that hold secrets on purpose, and
// so are not scanned: the local CA's key and the admin token. The spool
// directory is not scanned either: it holds request bodies (which may
// carry anything a client sent) only while a request is in flight, as
// unlinked files, and the fault tests check that it is empty.
var deliberateSecretFiles = map[string]bool{"ca-key.pem": true, "admin-token": true}

// maxScannedFile bounds one file read for the scan; larger ones (a
// compiled WebAssembly module in the cache, say) are skipped with a note.
const maxScannedFile = 64 << 20

// stateDir is the state directory signet used: the config's state_dir,
// else the default under the HOME the harness gave it.
func (s *signetProc) stateDir() string {
	if s.StateDir != "" {
		return s.StateDir
	}
	return filepath.Join(filepath.Dir(s.ConfigFile), "home", ".local", "state", "signet")
}

// scanWrittenFiles scans, for secrets, every regular file under dirs
// modified at or after since (so written by this signet, not by the test
// before it started), except deliberateSecretFiles and each dir's spool
// subdirectory. Missing dirs are fine: not every signet writes a state
// directory.
func scanWrittenFiles(tb testing.TB, secrets []string, since time.Time, dirs ...string) {
	tb.Helper()
	for _, root := range dirs {
		if root == "" {
			continue
		}
		spool := filepath.Join(root, "spool")
		err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
			if err != nil {
				if p == root && errors.Is(err, fs.ErrNotExist) {
					return fs.SkipDir
				}
				return err
			}
			if d.IsDir() {
				if p == spool {
					return fs.SkipDir
				}
				return nil
			}
			if !d.Type().IsRegular() || deliberateSecretFiles[d.Name()] {
				return nil
			}
			info, err := d.Info()
			if err != nil {
				return err
			}
			if info.ModTime().Before(since) {
				return nil
			}
			if info.Size() > maxScannedFile {
				tb.Logf("secret scan: %s (%d bytes) is too large to scan", p, info.Size())
				return nil
			}
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			before := tb.Failed()
			scanForSecrets(tb, secrets, b)
			if !before && tb.Failed() {
				tb.Logf("secret scan: the blob above is %s, which signet wrote", p)
			}
			return nil
		})
		if err != nil {
			tb.Errorf("secret scan of %s: %v", root, err)
		}
	}
}

// sigRE finds SigV4 signatures, in an Authorization header or a presigned
// query.
var sigRE = regexp.MustCompile(`(?:Signature=|X-Amz-Signature=)([0-9a-f]{64})`)

// signaturesIn returns the SigV4 signatures in s (header values, URLs).
func signaturesIn(s string) []string {
	var out []string
	for _, m := range sigRE.FindAllStringSubmatch(s, -1) {
		out = append(out, m[1])
	}
	return out
}

// leakWatch collects what a test must not find in signet's output: the
// secrets it used or saw, and the blobs signet wrote besides its logs.
// Scan checks them all with the logs of each signet.
type leakWatch struct {
	mu      sync.Mutex
	secrets []string
	blobs   [][]byte
	names   []string
}

// secret adds secrets to look for; empty ones are ignored.
func (w *leakWatch) secret(ss ...string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, s := range ss {
		if s != "" {
			w.secrets = append(w.secrets, s)
		}
	}
}

// blob adds something signet wrote (an answer body, a scrape).
func (w *leakWatch) blob(name string, b []byte) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.names = append(w.names, name)
	w.blobs = append(w.blobs, append([]byte(nil), b...))
}

// scan checks every blob and the logs of procs for every secret.
func (w *leakWatch) scan(tb testing.TB, procs ...*signetProc) {
	tb.Helper()
	w.mu.Lock()
	defer w.mu.Unlock()
	blobs := append([][]byte(nil), w.blobs...)
	names := append([]string(nil), w.names...)
	for i, p := range procs {
		blobs = append(blobs, []byte(p.Logs.String()))
		names = append(names, fmt.Sprintf("signet %d logs", i))
	}
	if len(w.secrets) == 0 {
		tb.Errorf("leak scan: no secrets to look for")
		return
	}
	var list strings.Builder
	for i, n := range names {
		fmt.Fprintf(&list, "\n  blob %d: %s", i, n)
	}
	before := tb.Failed()
	scanForSecrets(tb, w.secrets, blobs...)
	if !before && tb.Failed() {
		tb.Logf("leak scan blobs:%s", list.String())
	}
	tb.Logf("leak scan: %d secrets, none in %d blobs (%d bytes)", len(w.secrets), len(blobs), totalLen(blobs))
}

func totalLen(bs [][]byte) int {
	n := 0
	for _, b := range bs {
		n += len(b)
	}
	return n
}

// TestScanForSecretsFindsEveryForm: the scan catches a secret however it
// was written, and passes text without one.
func TestScanForSecretsFindsEveryForm(t *testing.T) {
	const secret = "sIgNeTtEsT/sEcReT+0001/xYz9876543210aBcD"
	for _, tc := range []struct {
		name string
		blob string
	}{
		{"raw", "secret=" + secret},
		{"slog text quoted", `msg="x" error="` + strconv.Quote(secret)[1:]},
		{"json", `{"k":` + mustJSON(t, secret) + `}`},
		{"query escaped", "https://h/?X-Amz-Credential=" + url.QueryEscape(secret)},
		{"path escaped", "/p/" + url.PathEscape(secret)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ft := &fakeTB{TB: t}
			scanForSecrets(ft, []string{secret}, []byte("nothing here"), []byte(tc.blob))
			if !ft.failed {
				t.Errorf("the secret in %q was not found", tc.blob)
			}
			if strings.Contains(ft.msg, secret) {
				t.Errorf("the report repeats the secret: %s", ft.msg)
			}
		})
	}
	ft := &fakeTB{TB: t}
	scanForSecrets(ft, []string{secret}, []byte("sIgNeTtEsT/sEcReT+0001/ and no more"))
	if ft.failed {
		t.Errorf("a prefix of the secret was reported: %s", ft.msg)
	}
}

func mustJSON(t *testing.T, s string) string {
	b, err := json.Marshal(s)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// fakeTB records failures instead of failing the test.
type fakeTB struct {
	testing.TB
	failed bool
	msg    string
}

func (f *fakeTB) Helper() {}

func (f *fakeTB) Errorf(format string, args ...any) {
	f.failed = true
	f.msg += fmt.Sprintf(format, args...)
}

func (f *fakeTB) Failed() bool { return f.failed }

// TestScanWrittenFiles: the scan of what signet wrote finds a secret in a
// file written since it started, and leaves alone older files, the
// deliberate secret stores and the spool.
func TestScanWrittenFiles(t *testing.T) {
	const secret = "sIgNeTtEsT/sEcReT+0001/xYz9876543210aBcD"
	dir := t.TempDir()
	write := func(rel string, mtime time.Time) {
		p := filepath.Join(dir, rel)
		if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
			t.Fatal(err)
		}
		writeTestFile(t, p, []byte("x "+secret+" y"))
		if err := os.Chtimes(p, mtime, mtime); err != nil {
			t.Fatal(err)
		}
	}
	since := time.Now()
	write("old.yaml", since.Add(-time.Hour))
	write("ca-key.pem", since.Add(time.Second))
	write("admin-token", since.Add(time.Second))
	write("spool/signet-body-1", since.Add(time.Second))
	ft := &fakeTB{TB: t}
	scanWrittenFiles(ft, []string{secret}, since, dir, filepath.Join(dir, "absent"))
	if ft.failed {
		t.Fatalf("reported: %s", ft.msg)
	}
	write("wasm-cache/new.bin", since.Add(time.Second))
	scanWrittenFiles(ft, []string{secret}, since, dir)
	if !ft.failed || strings.Contains(ft.msg, secret) {
		t.Errorf("a new file with the secret: failed %v, %q", ft.failed, ft.msg)
	}
}
