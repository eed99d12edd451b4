package wasmhost

// A few hand-assembled modules, for shapes a Go compiler does not produce.

func leb(n int) []byte {
	var out []byte
	for {
		c := byte(n & 0x7f)
		n >>= 7
		if n == 0 {
			return append(out, c)
		}
		out = append(out, c|0x80)
	}
}

func wasmName(s string) []byte { return append(leb(len(s)), s...) }

func section(id byte, payload []byte) []byte {
	return append(append([]byte{id}, leb(len(payload))...), payload...)
}

func vec(items ...[]byte) []byte {
	out := leb(len(items))
	for _, it := range items {
		out = append(out, it...)
	}
	return out
}

// Function types by index in every module built here.
var (
	typeVoid     = []byte{0x60, 0, 0}                         // () -> ()
	typeI32x3I32 = []byte{0x60, 3, 0x7f, 0x7f, 0x7f, 1, 0x7f} // (i32, i32, i32) -> i32
)

type testImport struct {
	module, name string
	desc         []byte // kind byte and its descriptor
}

func funcImport(module, name string, typeIdx int) testImport {
	return testImport{module, name, append([]byte{0}, leb(typeIdx)...)}
}

// commandModule is a WASI-command-shaped module: the given imports, a
// memory of one page exported as "memory", and the bodies as functions of
// type () -> (); the last one is exported as _start.
func commandModule(imports []testImport, bodies ...[]byte) []byte {
	return commandModuleWithData(imports, "", bodies...)
}

// commandModuleWithData is commandModule with data at address 0.
func commandModuleWithData(imports []testImport, data string, bodies ...[]byte) []byte {
	bin := []byte{0, 'a', 's', 'm', 1, 0, 0, 0}
	bin = append(bin, section(1, vec(typeVoid, typeI32x3I32))...)
	var imps [][]byte
	for _, im := range imports {
		e := append(wasmName(im.module), wasmName(im.name)...)
		imps = append(imps, append(e, im.desc...))
	}
	if len(imps) > 0 {
		bin = append(bin, section(2, vec(imps...))...)
	}
	funcs := make([][]byte, len(bodies))
	for i := range funcs {
		funcs[i] = []byte{0}
	}
	bin = append(bin, section(3, vec(funcs...))...)
	bin = append(bin, section(5, vec([]byte{0, 1}))...)
	nImports := len(imports)
	start := append(append(wasmName("_start"), 0), leb(nImports+len(bodies)-1)...)
	mem := append(wasmName("memory"), 2, 0)
	bin = append(bin, section(7, vec(start, mem))...)
	var code [][]byte
	for _, b := range bodies {
		code = append(code, append(leb(len(b)), b...))
	}
	bin = append(bin, section(10, vec(code...))...)
	if data != "" {
		seg := append([]byte{0, 0x41, 0, 0x0b}, wasmName(data)...)
		bin = append(bin, section(11, vec(seg))...)
	}
	return bin
}

// callTreeModule logs "spinning", then runs a tree of calls: f0 is empty
// and f_k calls f_(k-1) twice, 2^depth calls and not a single loop, so no
// loop check of CloseOnContextDone is ever passed.
func callTreeModule(depth int) []byte {
	const logIdx = 0 // the import; the module's own functions start at 1
	bodies := [][]byte{{0, 0x0b}}
	for k := 1; k <= depth; k++ {
		b := []byte{0, 0x10}
		b = append(b, leb(k)...) // f_(k-1) is function index k
		b = append(b, 0x10)
		b = append(b, leb(k)...)
		bodies = append(bodies, append(b, 0x0b))
	}
	// _start: log(1, 0, 8); drop; call f_depth
	start := []byte{0, 0x41, 1, 0x41, 0, 0x41, 8, 0x10, logIdx, 0x1a, 0x10}
	start = append(start, leb(depth+1)...)
	bodies = append(bodies, append(start, 0x0b))
	return commandModuleWithData([]testImport{funcImport("signet", "log", 1)}, "spinning", bodies...)
}
