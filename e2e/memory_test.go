//go:build linux

package e2e

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

const (
	bigObjectSize = 512 << 20
	memoryLimit   = 100 << 20 // VmHWM bound for signet while moving bigObjectSize
)

// genReader yields n deterministic, incompressible-looking bytes without
// holding them: a 65521-byte (prime) block repeated.
type genReader struct {
	block []byte
	off   int64
	n     int64
}

func newGenReader(n int64) *genReader {
	b := make([]byte, 65521)
	x := uint32(2463534242)
	for i := range b {
		x ^= x << 13
		x ^= x >> 17
		x ^= x << 5
		b[i] = byte(x)
	}
	return &genReader{block: b, n: n}
}

func (g *genReader) Read(p []byte) (int, error) {
	if g.off >= g.n {
		return 0, io.EOF
	}
	if rem := g.n - g.off; int64(len(p)) > rem {
		p = p[:rem]
	}
	total := 0
	for total < len(p) {
		k := copy(p[total:], g.block[int(g.off%int64(len(g.block))):])
		total += k
		g.off += int64(k)
	}
	return total, nil
}

// TestMemoryLargeObject puts and gets a 512 MiB object through the forward
// proxy, streaming on the client side, and bounds signet's peak RSS. With
// `payload: signed` signet must spool the body to a private temp file (not
// memory) and remove it afterwards.
func TestMemoryLargeObject(t *testing.T) {
	if testing.Short() {
		t.Skip("moves 1 GiB; skipped with -short")
	}
	v := startVersity(t)
	for _, mode := range []string{"unsigned", "signed"} {
		t.Run(mode, func(t *testing.T) {
			// signet refuses a state directory that others can read:
			// it holds the CA key.
			state := filepath.Join(t.TempDir(), "state")
			if err := os.Mkdir(state, 0o700); err != nil {
				t.Fatal(err)
			}
			cfg := s3Config(v, testSecretKey, "    payload: "+mode, "state_dir: "+state+"\n")
			s := startSignet(t, cfg, 1)
			g := newGoClient(s.ProxyURL())
			bucket := "mem-" + mode
			obj := "http://" + s3Host + "/" + bucket + "/big.bin"
			if !want2xx(t, "create bucket", g.Do(t, "PUT", "http://"+s3Host+"/"+bucket, nil)) {
				t.FailNow()
			}

			// PUT, streamed from the generator; its sha256 on the way.
			h := sha256.New()
			req, err := http.NewRequest("PUT", obj, io.TeeReader(newGenReader(bigObjectSize), h))
			if err != nil {
				t.Fatal(err)
			}
			req.ContentLength = bigObjectSize
			req.Header.Set("Content-Type", "application/octet-stream")
			resp, err := g.c.Do(req)
			if err != nil {
				t.Fatalf("PUT: %v", err)
			}
			body, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
			resp.Body.Close()
			if resp.StatusCode/100 != 2 {
				t.Fatalf("PUT: %d X-Signet-Error %q\n%s", resp.StatusCode, resp.Header.Get("X-Signet-Error"), body)
			}
			putSum := hex.EncodeToString(h.Sum(nil))
			t.Logf("VmHWM after PUT: %.1f MiB", float64(vmHWM(t, s.Pid))/(1<<20))

			// GET, read and discarded while hashed.
			resp, err = g.c.Get(obj)
			if err != nil {
				t.Fatalf("GET: %v", err)
			}
			h.Reset()
			n, err := io.Copy(h, resp.Body)
			resp.Body.Close()
			if err != nil || resp.StatusCode != 200 {
				t.Fatalf("GET: status %d, %d bytes, %v", resp.StatusCode, n, err)
			}
			if n != bigObjectSize {
				t.Errorf("GET returned %d bytes, want %d", n, bigObjectSize)
			}
			if got := hex.EncodeToString(h.Sum(nil)); got != putSum {
				t.Errorf("GET sha256 %s, PUT sha256 %s", got, putSum)
			}

			hwm := vmHWM(t, s.Pid)
			t.Logf("signet VmHWM after 512 MiB PUT+GET (payload: %s): %.1f MiB (limit %d MiB)",
				mode, float64(hwm)/(1<<20), memoryLimit>>20)
			if hwm > memoryLimit {
				t.Errorf("signet peak RSS %.1f MiB exceeds %d MiB", float64(hwm)/(1<<20), memoryLimit>>20)
			}

			checkNoSpool(t, s)
			checkPayloadMode(t, s, mode)

			want2xx(t, "DELETE object", g.Do(t, "DELETE", obj, nil))
			want2xx(t, "delete bucket", g.Do(t, "DELETE", "http://"+s3Host+"/"+bucket, nil))
		})
	}
}

// checkPayloadMode finds signet's debug line for the big PUT and checks the
// payload strategy it used, so the "signed" case really exercised spooling.
func checkPayloadMode(t *testing.T, s *signetProc, mode string) {
	t.Helper()
	for _, l := range strings.Split(s.Logs.String(), "\n") {
		var ll struct {
			Msg           string `json:"msg"`
			Payload       string `json:"payload"`
			ContentLength int64  `json:"content_length"`
		}
		if json.Unmarshal([]byte(l), &ll) != nil || ll.Msg != "signed request" || ll.ContentLength != bigObjectSize {
			continue
		}
		t.Logf("signet signed the 512 MiB PUT with payload %q", ll.Payload)
		unsigned := strings.Contains(strings.ToLower(ll.Payload), "unsigned")
		if (mode == "unsigned") != unsigned {
			t.Errorf("route payload: %s, but signet used payload %q", mode, ll.Payload)
		}
		return
	}
	t.Errorf("no \"signed request\" debug line with content_length %d in signet's log", bigObjectSize)
}

// checkNoSpool: signet's private TMPDIR must be empty after the requests,
// and its state_dir must hold no large file (a leftover spool would be
// hundreds of MiB; the CA and caches are small).
func checkNoSpool(t *testing.T, s *signetProc) {
	t.Helper()
	ents, err := os.ReadDir(s.TempDir)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("checked signet's TMPDIR %s: %d entries", s.TempDir, len(ents))
	for _, e := range ents {
		t.Errorf("left in signet's TMPDIR: %s", e.Name())
	}
	if s.StateDir == "" {
		return
	}
	var files []string
	err = filepath.WalkDir(s.StateDir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		files = append(files, fmt.Sprintf("%s (%d bytes)", p, info.Size()))
		if info.Size() >= 1<<20 {
			t.Errorf("large file left in state_dir: %s (%d bytes)", p, info.Size())
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("checked state_dir %s: %q", s.StateDir, files)
}
