package wasmhost

import (
	"context"
	"encoding/binary"
	"errors"
	"log/slog"
	"net/url"
	"sync"
	"unicode/utf8"

	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/api"
)

// abiVersion is what signet.abi_version returns.
const abiVersion = 1

// hostModuleName is the import module of the signet ABI.
const hostModuleName = "signet"

// status is an ABI status code (ABI.md §5).
type status uint32

const (
	statusOK status = iota
	errDeniedHost
	errDeniedScheme
	errDeniedAddress
	errLimitRequests
	errLimitSize
	errTimeout
	errNetwork
	errBadRequest
	errBadHandle
	errRedirects
	errMemory
	errNotAllowed
)

var statusNames = [...]string{
	"OK", "ERR_DENIED_HOST", "ERR_DENIED_SCHEME", "ERR_DENIED_ADDRESS", "ERR_LIMIT_REQUESTS",
	"ERR_LIMIT_SIZE", "ERR_TIMEOUT", "ERR_NETWORK", "ERR_BAD_REQUEST", "ERR_BAD_HANDLE",
	"ERR_REDIRECTS", "ERR_MEMORY", "ERR_NOT_ALLOWED",
}

func (s status) String() string {
	if int(s) < len(statusNames) {
		return statusNames[s]
	}
	return "ERR_UNKNOWN"
}

// Caps on log().
const (
	maxLogMessage  = 1 << 10
	maxLogScan     = 4 << 10 // how much of a message is redacted before the cap
	maxLogsPerCall = 256
)

// callState is what one Run's host calls share. It travels in the context
// wazero passes to host functions, so one compiled host module serves every
// instance.
type callState struct {
	source string
	net    *netClient
	log    *slog.Logger

	mu        sync.Mutex
	requests  int
	responses map[uint32]*heldResponse
	nextID    uint32
	logs      int
}

type heldResponse struct {
	parts [2][]byte // 0: headers JSON, 1: body
	read  [2]int
}

type callKey struct{}

func withCall(ctx context.Context, c *callState) context.Context {
	return context.WithValue(ctx, callKey{}, c)
}

func callFrom(ctx context.Context) *callState {
	c, _ := ctx.Value(callKey{}).(*callState)
	return c
}

// hostFunc is one function of the signet module, with its wasm signature.
type hostFunc struct {
	name    string
	fn      api.GoModuleFunc
	params  []api.ValueType
	names   []string
	results []api.ValueType
}

const i32 = api.ValueTypeI32

func hostFuncs() []hostFunc {
	return []hostFunc{
		{"abi_version", abiVersionFn, nil, nil, []api.ValueType{i32}},
		{"http_request", httpRequestFn, []api.ValueType{i32, i32, i32, i32, i32},
			[]string{"req_ptr", "req_len", "body_ptr", "body_len", "out_ptr"}, []api.ValueType{i32}},
		{"http_response_read", httpResponseReadFn, []api.ValueType{i32, i32, i32, i32, i32},
			[]string{"handle", "part", "buf_ptr", "buf_len", "n_ptr"}, []api.ValueType{i32}},
		{"log", logFn, []api.ValueType{i32, i32, i32},
			[]string{"level", "msg_ptr", "msg_len"}, []api.ValueType{i32}},
	}
}

func instantiateSignet(ctx context.Context, rt wazero.Runtime) (api.Module, error) {
	b := rt.NewHostModuleBuilder(hostModuleName)
	for _, f := range hostFuncs() {
		b.NewFunctionBuilder().
			WithGoModuleFunction(f.fn, f.params, f.results).
			WithParameterNames(f.names...).
			WithResultNames("status").
			Export(f.name)
	}
	return b.Instantiate(ctx)
}

func abiVersionFn(_ context.Context, _ api.Module, stack []uint64) {
	stack[0] = abiVersion
}

// httpRequestFn implements http_request(req_ptr, req_len, body_ptr,
// body_len, out_ptr). A refusal is a status, never a trap.
func httpRequestFn(ctx context.Context, mod api.Module, stack []uint64) {
	stack[0] = uint64(httpRequest(ctx, mod,
		uint32(stack[0]), uint32(stack[1]), uint32(stack[2]), uint32(stack[3]), uint32(stack[4])))
}

func httpRequest(ctx context.Context, mod api.Module, reqPtr, reqLen, bodyPtr, bodyLen, outPtr uint32) status {
	call := callFrom(ctx)
	mem := mod.Memory()
	if call == nil || mem == nil {
		return errNotAllowed
	}
	reqJSON, ok1 := readCopy(mem, reqPtr, reqLen)
	body, ok2 := readCopy(mem, bodyPtr, bodyLen)
	if _, ok3 := mem.Read(outPtr, 12); !ok1 || !ok2 || !ok3 {
		return errMemory
	}
	if !call.net.enabled() {
		return errNotAllowed
	}
	call.mu.Lock()
	call.requests++
	n := call.requests
	call.mu.Unlock()
	if n > maxRequestsPerCall {
		return errLimitRequests
	}
	req, err := parseRequest(reqJSON)
	if err != nil {
		call.log.Debug("wasm http_request refused", "source", call.source, "status", errBadRequest.String(), "reason", Redact(err.Error()))
		return errBadRequest
	}
	f, err := call.net.do(ctx, req, body)
	if code := statusOf(ctx, err); code != statusOK {
		call.log.Debug("wasm http_request failed", "source", call.source, "status", code.String(),
			"url", redactURL(req), "reason", Redact(errorWithoutURL(err).Error()))
		return code
	}
	call.mu.Lock()
	call.nextID++
	id := call.nextID
	if call.responses == nil {
		call.responses = make(map[uint32]*heldResponse)
	}
	call.responses[id] = &heldResponse{parts: [2][]byte{f.headers, f.body}}
	call.mu.Unlock()
	var out [12]byte
	binary.LittleEndian.PutUint32(out[0:], id)
	binary.LittleEndian.PutUint32(out[4:], uint32(f.status))
	binary.LittleEndian.PutUint32(out[8:], uint32(len(f.body)))
	if !mem.Write(outPtr, out[:]) {
		return errMemory
	}
	return statusOK
}

// redactURL is the URL for a log line: scheme, host and path, no query
// (a presigned query carries a signature).
func redactURL(r guestRequest) string {
	if r.url == nil {
		return ""
	}
	return Redact(r.url.Scheme + "://" + r.url.Host + r.url.EscapedPath())
}

// errorWithoutURL drops the URL that net/http puts in its errors: its query
// may be a presigned request's signature.
func errorWithoutURL(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Err
	}
	return err
}

// readCopy copies length bytes at ptr out of guest memory; a zero length
// is valid anywhere.
func readCopy(mem api.Memory, ptr, length uint32) ([]byte, bool) {
	if length == 0 {
		return nil, true
	}
	b, ok := mem.Read(ptr, length)
	if !ok {
		return nil, false
	}
	return append([]byte(nil), b...), true
}

func httpResponseReadFn(ctx context.Context, mod api.Module, stack []uint64) {
	stack[0] = uint64(httpResponseRead(ctx, mod,
		uint32(stack[0]), uint32(stack[1]), uint32(stack[2]), uint32(stack[3]), uint32(stack[4])))
}

func httpResponseRead(ctx context.Context, mod api.Module, handle, part, bufPtr, bufLen, nPtr uint32) status {
	call := callFrom(ctx)
	mem := mod.Memory()
	if call == nil || mem == nil {
		return errBadHandle
	}
	call.mu.Lock()
	defer call.mu.Unlock()
	r := call.responses[handle]
	if r == nil || part > 1 {
		return errBadHandle
	}
	buf, ok := mem.Read(bufPtr, bufLen)
	if _, okN := mem.Read(nPtr, 4); !ok || !okN {
		return errMemory
	}
	n := copy(buf, r.parts[part][r.read[part]:])
	r.read[part] += n
	if !mem.WriteUint32Le(nPtr, uint32(n)) {
		return errMemory
	}
	return statusOK
}

func logFn(ctx context.Context, mod api.Module, stack []uint64) {
	stack[0] = uint64(guestLog(ctx, mod, uint32(stack[0]), uint32(stack[1]), uint32(stack[2])))
}

var logLevels = [...]slog.Level{slog.LevelDebug, slog.LevelInfo, slog.LevelWarn, slog.LevelError}

func guestLog(ctx context.Context, mod api.Module, level, ptr, length uint32) status {
	call := callFrom(ctx)
	mem := mod.Memory()
	if call == nil || mem == nil {
		return errNotAllowed
	}
	if level >= uint32(len(logLevels)) {
		return errBadRequest
	}
	msg, ok := mem.Read(ptr, length)
	if !ok {
		return errMemory
	}
	call.mu.Lock()
	call.logs++
	n := call.logs
	call.mu.Unlock()
	switch {
	case n == maxLogsPerCall+1:
		call.log.Warn("wasm module log lines dropped", "source", call.source, "limit", maxLogsPerCall)
		return statusOK
	case n > maxLogsPerCall:
		return statusOK
	}
	call.log.Log(ctx, logLevels[level], capLogMessage(msg), "source", call.source)
	return statusOK
}

// capLogMessage redacts a guest's message and caps it at maxLogMessage
// bytes. Only the first maxLogScan bytes are looked at, so a huge message
// costs no more than a long one.
func capLogMessage(msg []byte) string {
	cut := len(msg) > maxLogScan
	if cut {
		msg = msg[:maxLogScan]
	}
	s := redactTruncated(string(msg), false, cut)
	if len(s) > maxLogMessage {
		end := maxLogMessage
		for end > 0 && !utf8.RuneStart(s[end]) {
			end--
		}
		s = s[:end] + "…"
	}
	return s
}
