//go:build wasip1

package sdk

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"time"
	"unsafe"
)

// The host module `signet`, ABI version 1 (wasmhost/ABI.md section 4).

//go:wasmimport signet abi_version
func hostABIVersion() int32

//go:wasmimport signet http_request
func hostHTTPRequest(req unsafe.Pointer, reqLen uint32, body unsafe.Pointer, bodyLen uint32, out unsafe.Pointer) uint32

//go:wasmimport signet http_response_read
func hostHTTPResponseRead(handle, part uint32, buf unsafe.Pointer, bufLen uint32, n unsafe.Pointer) uint32

//go:wasmimport signet log
func hostLog(level uint32, msg unsafe.Pointer, msgLen uint32) uint32

const underWASI = true

// ABIVersion is the highest ABI version the host speaks; 0 in a native
// build, where there is no host.
func ABIVersion() int { return int(hostABIVersion()) }

// mainContext is the whole call's: signet stops the module at the
// source's timeout, so the guest needs no deadline of its own.
func mainContext() (context.Context, func()) { return context.Background(), func() {} }

type hostRequest struct {
	Method    string      `json:"method"`
	URL       string      `json:"url"`
	Headers   [][2]string `json:"headers,omitempty"`
	TimeoutMS int64       `json:"timeout_ms,omitempty"`
}

// Fetch sends req through the host and returns the whole response. Its
// errors wrap a Status. The host applies the source's allow-list to the
// URL and to every redirect.
func Fetch(ctx context.Context, req Request) (*Response, error) {
	if err := checkRequest(req); err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, fetchError(req, ErrTimeout, err.Error())
	}
	timeout := req.Timeout
	if dl, ok := ctx.Deadline(); ok {
		if left := time.Until(dl); timeout == 0 || left < timeout {
			timeout = max(left, time.Millisecond)
		}
	}
	hr := hostRequest{Method: method(req), URL: req.URL, Headers: req.Header}
	if timeout > 0 {
		hr.TimeoutMS = max(timeout.Milliseconds(), 1)
	}
	js, err := json.Marshal(hr)
	if err != nil {
		return nil, fetchError(req, ErrBadRequest, err.Error())
	}
	var out [3]uint32 // handle, status, body length
	if st := hostHTTPRequest(bytesPtr(js), uint32(len(js)), bytesPtr(req.Body), uint32(len(req.Body)), unsafe.Pointer(&out[0])); st != 0 {
		return nil, fetchError(req, Status(st), "")
	}
	handle, code, bodyLen := out[0], out[1], out[2]
	hdr, st := readPart(handle, 0, 4096)
	if st != 0 {
		return nil, fetchError(req, st, "reading the headers")
	}
	pairs, perr := parseHeaderPairs(hdr)
	if perr != nil {
		return nil, fetchError(req, ErrBadHandle, perr.Error())
	}
	body, st := readPart(handle, 1, int(min(bodyLen, MaxResponseBody)))
	if st != 0 {
		return nil, fetchError(req, st, "reading the body")
	}
	return &Response{StatusCode: int(code), Header: pairs, Body: body}, nil
}

// readPart reads one part of a response to its end; sizeHint is the
// expected size (one more byte lets the final zero-length read happen
// without growing the buffer).
func readPart(handle, part uint32, sizeHint int) ([]byte, Status) {
	buf := make([]byte, 0, max(sizeHint+1, 512))
	for {
		if len(buf) == cap(buf) {
			buf = append(buf, 0)[:len(buf)]
		}
		free := buf[len(buf):cap(buf)]
		var n uint32
		if st := hostHTTPResponseRead(handle, part, unsafe.Pointer(&free[0]), uint32(len(free)), unsafe.Pointer(&n)); st != 0 {
			return nil, Status(st)
		}
		if n == 0 {
			return buf, 0
		}
		if int(n) > len(free) {
			return nil, ErrMemory
		}
		buf = buf[:len(buf)+int(n)]
		if part == 1 && len(buf) > MaxResponseBody {
			return nil, ErrLimitSize
		}
	}
}

func bytesPtr(b []byte) unsafe.Pointer {
	if len(b) == 0 {
		return nil
	}
	return unsafe.Pointer(&b[0])
}

// Log writes one line to signet's log under the source's name; the host
// caps it at 1 KiB and redacts what looks like a secret. If the host
// refuses it the line goes to stderr, which signet logs too.
func Log(level Level, format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	if hostLog(uint32(level), bytesPtr([]byte(msg)), uint32(len(msg))) != 0 {
		fmt.Fprintf(os.Stderr, "%s: %s\n", level, msg)
	}
}
