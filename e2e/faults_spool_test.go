//go:build linux

package e2e

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// Fault injection on request bodies: the disk of the spool fills up, and
// clients go away in the middle of an upload. Bodies through the forward
// proxy to S3 over plain http are hashed, so spooled (memory up to 1 MiB,
// then an unlinked temp file in state_dir/spool); with `payload:
// unsigned` they stream to versitygw as they arrive.

// needRoot fails under CI=true, and skips elsewhere, unless the test runs
// as root (mounting a tmpfs needs it).
func needRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		missing(t, "not root: cannot mount a tmpfs")
	}
}

// mountTmpfs mounts a tmpfs of size bytes (mode 0700) on dir, unmounted
// (lazily, so an open file cannot keep it) at cleanup.
func mountTmpfs(t *testing.T, dir string, size int) {
	t.Helper()
	if err := syscall.Mount("tmpfs", dir, "tmpfs", syscall.MS_NOSUID|syscall.MS_NODEV,
		fmt.Sprintf("size=%d,mode=0700", size)); err != nil {
		t.Fatalf("mount tmpfs on %s: %v", dir, err)
	}
	t.Cleanup(func() {
		if err := syscall.Unmount(dir, syscall.MNT_DETACH); err != nil {
			t.Errorf("unmount %s: %v", dir, err)
		}
	})
}

// usedBytes is how much of the filesystem of dir is in use.
func usedBytes(t *testing.T, dir string) int64 {
	t.Helper()
	var st syscall.Statfs_t
	if err := syscall.Statfs(dir, &st); err != nil {
		t.Fatal(err)
	}
	return int64(st.Blocks-st.Bfree) * st.Bsize
}

// spoolFiles lists what signet has open or left of its spool: entries in
// the spool directory and in its TMPDIR, and open descriptors of
// signet-body-* files (unlinked at once, so they show only in /proc).
func spoolFiles(t *testing.T, s *signetProc, spool string) []string {
	t.Helper()
	var out []string
	for _, d := range []string{spool, s.TempDir} {
		ents, err := os.ReadDir(d)
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range ents {
			out = append(out, filepath.Join(d, e.Name()))
		}
	}
	fdDir := fmt.Sprintf("/proc/%d/fd", s.Pid)
	fds, err := os.ReadDir(fdDir)
	if err != nil {
		t.Fatal(err)
	}
	for _, fd := range fds {
		if l, err := os.Readlink(filepath.Join(fdDir, fd.Name())); err == nil && strings.Contains(l, "signet-body-") {
			out = append(out, "fd "+fd.Name()+" -> "+l)
		}
	}
	return out
}

// waitNoSpool waits (10 s at most) until signet holds no spool file and
// the spool's filesystem is back to used bytes (when used >= 0).
func waitNoSpool(t *testing.T, s *signetProc, spool string, used int64) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		left := spoolFiles(t, s, spool)
		u := int64(-1)
		if used >= 0 {
			u = usedBytes(t, spool)
		}
		if len(left) == 0 && u <= used {
			return
		}
		if time.Now().After(deadline) {
			t.Errorf("10s after the failed upload signet still holds %v; spool filesystem uses %d bytes (%d before)", left, u, used)
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// spoolConfig is s3Config with a state_dir whose spool directory exists.
func spoolConfig(t *testing.T, v *versity, routeExtra string) (cfg, spool string) {
	t.Helper()
	state := filepath.Join(t.TempDir(), "state")
	spool = filepath.Join(state, "spool")
	if err := os.MkdirAll(spool, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(state, 0o700); err != nil {
		t.Fatal(err)
	}
	return s3Config(v, testSecretKey, routeExtra, "state_dir: "+state+"\n"), spool
}

// TestFaultSpoolDiskFull: the spool directory is a 2 MiB tmpfs and a
// client sends a 4 MiB body that must be hashed: past 1 MiB the spool
// moves to a file, which fills the disk. signet answers with its spool
// error (500 request-body-spool-failed; 507 spool-full would also do),
// the upload reaches no one, the disk is empty again, and the next
// requests succeed: one that fits in memory, and one of 1.5 MiB that
// needs the disk space the failed one took.
func TestFaultSpoolDiskFull(t *testing.T) {
	needRoot(t)
	v := startVersity(t)
	cfg, spool := spoolConfig(t, v, "")
	mountTmpfs(t, spool, 2<<20)
	s := startSignet(t, cfg, 1)
	base := "http://" + s3Host + "/diskfull"
	g := newGoClient(s.ProxyURL())
	if r := g.Do(t, "PUT", base, nil); r.Status != 200 {
		t.Fatalf("create bucket: %d\n%s", r.Status, r.Body)
	}
	used := usedBytes(t, spool)
	root := newSDKClient("", testAccessKey, testSecretKey)

	const size = 4 << 20
	body := make([]byte, size)
	if _, err := io.ReadFull(newGenReader(size), body); err != nil {
		t.Fatal(err)
	}
	for _, c := range []client{g, newCurlClient(t, s.ProxyURL())} {
		t.Run(c.Name(), func(t *testing.T) {
			r := c.Do(t, "PUT", base+"/big-"+c.Name(), body)
			code := r.Header.Get("X-Signet-Error")
			want := http.StatusInternalServerError
			if code == "spool-full" {
				want = http.StatusInsufficientStorage
			} else if code != "request-body-spool-failed" {
				t.Errorf("X-Signet-Error %q, want request-body-spool-failed or spool-full", code)
			}
			e := checkSignetError(t, r.Status, r.Body, r.Header, want)
			t.Logf("%s: %d %s: %s (fix: %s)", c.Name(), r.Status, code, e.Message, e.Fix)
			waitNoSpool(t, s, spool, used)
			if r := root.Do(t, "GET", v.URL()+"/diskfull/big-"+c.Name(), nil); r.Status != http.StatusNotFound {
				t.Errorf("versitygw has the object that failed to spool: GET %d", r.Status)
			}
			// A body that fits in memory needs no disk.
			small := []byte(strings.Repeat("fits in memory ", 4096))
			if r := c.Do(t, "PUT", base+"/small-"+c.Name(), small); r.Status != 200 {
				t.Errorf("PUT of %d bytes after the failure: %d %s\n%s", len(small), r.Status, r.Header.Get("X-Signet-Error"), r.Body)
			}
			if r := c.Do(t, "GET", base+"/small-"+c.Name(), nil); r.Status != 200 || string(r.Body) != string(small) {
				t.Errorf("GET after the failure: %d, %d bytes", r.Status, len(r.Body))
			}
		})
	}
	// The disk space of the failed uploads is free again: a body that
	// spills to disk (all of it, once past memory) fits.
	mid := body[:3<<19]
	if r := g.Do(t, "PUT", base+"/mid", mid); r.Status != 200 {
		t.Errorf("PUT of %d bytes (on the 2 MiB disk): %d %s\n%s", len(mid), r.Status, r.Header.Get("X-Signet-Error"), r.Body)
	}
	if r := root.Do(t, "GET", v.URL()+"/diskfull/mid", nil); r.Status != 200 || len(r.Body) != len(mid) {
		t.Errorf("GET of the 1.5 MiB object: %d, %d bytes", r.Status, len(r.Body))
	}
	waitNoSpool(t, s, spool, used)
}

// abortUpload sends a PUT of declared size through signet's forward proxy
// on a raw connection, writes sent bytes of its body, waits until ready()
// (or 10 s), and closes the connection: a client that goes away in the
// middle of an upload.
func abortUpload(t *testing.T, proxyAddr, url string, size, sent int64, ready func() bool) {
	t.Helper()
	c, err := net.Dial("tcp", proxyAddr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	w := bufio.NewWriter(c)
	fmt.Fprintf(w, "PUT %s HTTP/1.1\r\nHost: %s\r\nContent-Length: %d\r\nContent-Type: application/octet-stream\r\n\r\n", url, s3Host, size)
	if _, err := io.CopyN(w, newGenReader(size), sent); err != nil {
		t.Fatalf("write the first %d bytes: %v", sent, err)
	}
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for !ready() {
		if time.Now().After(deadline) {
			t.Errorf("not ready to abort 10s after sending %d bytes", sent)
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	// RST rather than FIN: nothing of the client is left to drain.
	_ = c.(*net.TCPConn).SetLinger(0)
}

// TestFaultClientAbortSpooled: a client goes away after 3 of 8 MiB of a
// body that is being hashed (so spooled to a file): signet removes the
// spool file, sends nothing upstream, and goes on serving.
func TestFaultClientAbortSpooled(t *testing.T) {
	t.Parallel()
	v := startVersity(t)
	cfg, spool := spoolConfig(t, v, "")
	s := startSignet(t, cfg, 1)
	base := "http://" + s3Host + "/abort-spooled"
	g := newGoClient(s.ProxyURL())
	if r := g.Do(t, "PUT", base, nil); r.Status != 200 {
		t.Fatalf("create bucket: %d\n%s", r.Status, r.Body)
	}
	abortUpload(t, s.ProxyAddr, base+"/obj", 8<<20, 3<<20, func() bool {
		// The body went past memory: a spool file is open.
		return len(spoolFiles(t, s, spool)) > 0
	})
	waitNoSpool(t, s, spool, -1)
	root := newSDKClient("", testAccessKey, testSecretKey)
	if r := root.Do(t, "GET", v.URL()+"/abort-spooled/obj", nil); r.Status != http.StatusNotFound {
		t.Errorf("versitygw has the aborted object: GET %d, %d bytes", r.Status, len(r.Body))
	}
	if r := g.Do(t, "PUT", base+"/after", []byte("still serving")); r.Status != 200 {
		t.Errorf("PUT after the abort: %d\n%s", r.Status, r.Body)
	}
	checkAbortLogged(t, s, "/abort-spooled/obj")
}

// checkAbortLogged waits (5 s at most) for signet's access line of the
// aborted request, which must not claim success.
func checkAbortLogged(t *testing.T, s *signetProc, path string) {
	t.Helper()
	for i := 0; ; i++ {
		for _, l := range strings.Split(s.Logs.String(), "\n") {
			if strings.Contains(l, `"msg":"request"`) && strings.Contains(l, `"path":"`+path+`"`) {
				if strings.Contains(l, `"status":200`) {
					t.Errorf("signet logged the aborted upload as a success: %s", l)
				}
				t.Logf("signet's access line: %s", l)
				return
			}
		}
		if i == 50 {
			t.Errorf("no access line for %s", path)
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
}
