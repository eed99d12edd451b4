// Command probe is the test guest of package wasmhost: one module whose
// first argument picks what it does, so the tests build and compile it
// once. It talks to the host through //go:wasmimport directly, as any
// guest written from ABI.md alone would.
package main

import (
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strings"
	"time"
	"unsafe"
)

//go:wasmimport signet abi_version
func abiVersion() uint32

//go:wasmimport signet http_request
func httpRequest(reqPtr unsafe.Pointer, reqLen uint32, bodyPtr unsafe.Pointer, bodyLen uint32, outPtr unsafe.Pointer) uint32

//go:wasmimport signet http_response_read
func httpResponseRead(handle, part uint32, bufPtr unsafe.Pointer, bufLen uint32, nPtr unsafe.Pointer) uint32

//go:wasmimport signet log
func hostLog(level uint32, msgPtr unsafe.Pointer, msgLen uint32) uint32

// rawPtr is a pointer the guest does not own, to test the host's checks.
//
//go:wasmimport signet http_request
func httpRequestRaw(reqPtr, reqLen, bodyPtr, bodyLen, outPtr uint32) uint32

//go:wasmimport signet http_response_read
func httpResponseReadRaw(handle, part, bufPtr, bufLen, nPtr uint32) uint32

//go:wasmimport signet log
func hostLogRaw(level, msgPtr, msgLen uint32) uint32

func logf(level uint32, format string, args ...any) uint32 {
	b := []byte(fmt.Sprintf(format, args...))
	if len(b) == 0 {
		return hostLog(level, nil, 0)
	}
	return hostLog(level, unsafe.Pointer(&b[0]), uint32(len(b)))
}

func ptr(b []byte) unsafe.Pointer {
	if len(b) == 0 {
		return nil
	}
	return unsafe.Pointer(&b[0])
}

func main() {
	mode := ""
	if len(os.Args) > 1 {
		mode = os.Args[1]
	}
	switch mode {
	case "creds":
		fmt.Println(`{"Version":1,"AccessKeyId":"AKIDPROBE","SecretAccessKey":"probe-secret"}`)
	case "work":
		// CPU-bound work shaped like a provider's: JSON and hashing.
		t0 := time.Now()
		sum := sha256.Sum256(bytes.Repeat([]byte("x"), 1<<20))
		type item struct {
			Key   string            `json:"key"`
			Vals  []int             `json:"vals"`
			Attrs map[string]string `json:"attrs"`
		}
		in := item{Key: "k", Vals: []int{1, 2, 3, 4, 5}, Attrs: map[string]string{"a": "b", "c": "d"}}
		for i := 0; i < 2000; i++ {
			b, _ := json.Marshal(in)
			var out item
			json.Unmarshal(b, &out)
		}
		fmt.Printf("{\"work_ns\":%d,\"sum\":\"%x\"}\n", time.Since(t0).Nanoseconds(), sum[:4])
	case "spin":
		logf(1, "spinning")
		spin()
	case "sleep":
		logf(1, "sleeping")
		time.Sleep(time.Hour)
	case "alloc":
		var keep [][]byte
		for {
			b := make([]byte, 1<<20)
			for i := range b {
				b[i] = byte(i)
			}
			keep = append(keep, b)
		}
	case "fs":
		fsReport()
	case "http":
		httpScript()
	case "badptr":
		badPointers()
	case "flood":
		line := strings.Repeat("x", 1023) + "\n"
		for i := 0; i < 80; i++ {
			os.Stdout.WriteString(line)
		}
	case "fail":
		fmt.Fprintln(os.Stderr, "fetching with key AKIAIOSFODNN7EXAMPLE and secret wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY")
		fmt.Fprintln(os.Stderr, "Authorization: Bearer abcdefghijklmnopqrstuvwxyz0123456789")
		fmt.Fprintln(os.Stderr, "upstream refused the request")
		os.Exit(3)
	case "log":
		logf(2, "token AKIAIOSFODNN7EXAMPLE leaked with wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY")
		logf(1, "%s", strings.Repeat("long ", 1000))
		fmt.Println(logf(9, "bad level"))
	case "env-clock":
		r := make([]byte, 16)
		rand.Read(r)
		t0 := time.Now()
		time.Sleep(20 * time.Millisecond)
		out, _ := json.Marshal(map[string]any{
			"abi":     abiVersion(),
			"unix":    t0.Unix(),
			"slept":   time.Since(t0) >= 20*time.Millisecond,
			"random":  fmt.Sprintf("%x", r),
			"environ": os.Environ(),
			"args":    os.Args,
		})
		stdin, _ := io.ReadAll(os.Stdin)
		fmt.Printf("%s\n%s", out, stdin)
	default:
		fmt.Fprintf(os.Stderr, "unknown mode %q\n", mode)
		os.Exit(2)
	}
}

//go:noinline
func spin() {
	for {
	}
}

// fsReport prints what the guest can see of the filesystem and env.
func fsReport() {
	report := map[string]string{}
	try := func(key string, err error) {
		if err != nil {
			report[key] = "error: " + err.Error()
		} else {
			report[key] = "ok"
		}
	}
	b, err := os.ReadFile("/config/token.txt")
	try("read_config", err)
	report["config_content"] = string(b)
	try("write_config", os.WriteFile("/config/new.txt", []byte("x"), 0o600))
	_, err = os.ReadFile("/etc/passwd")
	try("read_etc_passwd", err)
	_, err = os.ReadFile("/config/../../etc/passwd")
	try("read_escape", err)
	_, err = os.ReadFile("/etc/hostname")
	try("read_etc_hostname", err)
	report["env_HOME"] = os.Getenv("HOME")
	report["env_PATH"] = os.Getenv("PATH")
	report["env_GIVEN"] = os.Getenv("GIVEN")
	report["environ"] = strings.Join(os.Environ(), ";")
	out, _ := json.Marshal(report)
	fmt.Println(string(out))
}

type scriptItem struct {
	Req  json.RawMessage `json:"req"`
	Raw  string          `json:"raw"`
	Body string          `json:"body"`
}

type scriptResult struct {
	Code    uint32 `json:"code"`
	Status  uint32 `json:"status,omitempty"`
	BodyLen uint32 `json:"body_len,omitempty"`
	Body    string `json:"body,omitempty"`
	Headers string `json:"headers,omitempty"`
}

// httpScript runs the requests listed on stdin and prints what each
// returned.
func httpScript() {
	in, _ := io.ReadAll(os.Stdin)
	var items []scriptItem
	if err := json.Unmarshal(in, &items); err != nil {
		fmt.Fprintln(os.Stderr, "bad script:", err)
		os.Exit(2)
	}
	var results []scriptResult
	for _, it := range items {
		req := []byte(it.Raw)
		if it.Raw == "" {
			req = it.Req
		}
		body := []byte(it.Body)
		var out [3]uint32
		code := httpRequest(ptr(req), uint32(len(req)), ptr(body), uint32(len(body)), unsafe.Pointer(&out[0]))
		r := scriptResult{Code: code}
		if code == 0 {
			r.Status, r.BodyLen = out[1], out[2]
			r.Headers = string(readPart(out[0], 0))
			b := readPart(out[0], 1)
			if len(b) > 256 {
				b = b[:256]
			}
			r.Body = string(b)
		}
		results = append(results, r)
	}
	out, _ := json.Marshal(results)
	fmt.Println(string(out))
}

func readPart(handle, part uint32) []byte {
	var all bytes.Buffer
	buf := make([]byte, 1000)
	for {
		var n uint32
		if code := httpResponseRead(handle, part, unsafe.Pointer(&buf[0]), uint32(len(buf)), unsafe.Pointer(&n)); code != 0 {
			fmt.Fprintln(os.Stderr, "http_response_read:", code)
			os.Exit(2)
		}
		if n == 0 {
			return all.Bytes()
		}
		all.Write(buf[:n])
	}
}

// badPointers calls every host function with pointers outside memory; the
// host must answer with a status, not trap.
func badPointers() {
	req := []byte(`{"url":"https://example.com/"}`)
	var out [3]uint32
	good := uint32(uintptr(unsafe.Pointer(&out[0])))
	reqAt := uint32(uintptr(unsafe.Pointer(&req[0])))
	const far = 0xfffffff0
	codes := map[string]uint32{
		"req_ptr":        httpRequestRaw(far, 100, 0, 0, good),
		"req_len":        httpRequestRaw(reqAt, 0xffffffff, 0, 0, good),
		"body_ptr":       httpRequestRaw(reqAt, uint32(len(req)), far, 10, good),
		"out_ptr":        httpRequestRaw(reqAt, uint32(len(req)), 0, 0, far),
		"read_handle":    httpResponseReadRaw(12345, 1, good, 4, good),
		"log_ptr":        hostLogRaw(1, far, 100),
		"read_part":      httpResponseReadRaw(12345, 7, good, 4, good),
		"log_ok_zero":    hostLogRaw(1, 0, 0),
		"request_denied": httpRequestRaw(reqAt, uint32(len(req)), 0, 0, good),
	}
	outJSON, _ := json.Marshal(codes)
	fmt.Println(string(outJSON))
}
