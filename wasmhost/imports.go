package wasmhost

import (
	"bytes"
	"errors"
	"fmt"
	"strings"
	"unicode/utf8"
)

// wasmImport is one entry of a module's import section.
type wasmImport struct {
	module, name string
	kind         byte // 0 function, 1 table, 2 memory, 3 global, 4 tag
}

func (i wasmImport) String() string {
	kinds := [...]string{"function", "table", "memory", "global", "tag"}
	k := "unknown kind"
	if int(i.kind) < len(kinds) {
		k = kinds[i.kind]
	}
	return fmt.Sprintf("%s.%s (%s)", i.module, i.name, k)
}

var wasmHeader = []byte{0x00, 'a', 's', 'm', 0x01, 0x00, 0x00, 0x00}

// readImports lists the imports of a WebAssembly core module, reading only
// the section headers and the import section, so that a module with a
// forbidden import is refused before it is compiled. It stops at the first
// import that is not a function (signet provides only functions), which is
// then the last entry returned.
func readImports(b []byte) ([]wasmImport, error) {
	if !bytes.HasPrefix(b, wasmHeader) {
		if bytes.HasPrefix(b, wasmHeader[:4]) {
			return nil, errors.New("not a WebAssembly 1.0 core module (a component?)")
		}
		return nil, errors.New("not a WebAssembly module")
	}
	r := wasmReader{b: b[len(wasmHeader):]}
	for !r.done() {
		id, err := r.byte()
		if err != nil {
			return nil, err
		}
		size, err := r.u32()
		if err != nil {
			return nil, err
		}
		payload, err := r.bytes(size)
		if err != nil {
			return nil, fmt.Errorf("section %d: %w", id, err)
		}
		switch {
		case id == 2:
			return parseImportSection(payload)
		case id == 0 || id == 1:
			continue // custom and type sections may precede imports
		default:
			return nil, nil // past where imports can be: there are none
		}
	}
	return nil, nil
}

func parseImportSection(b []byte) ([]wasmImport, error) {
	r := wasmReader{b: b}
	n, err := r.u32()
	if err != nil {
		return nil, fmt.Errorf("import section: %w", err)
	}
	var out []wasmImport
	for i := uint32(0); i < n; i++ {
		var imp wasmImport
		if imp.module, err = r.name(); err != nil {
			return nil, fmt.Errorf("import %d: %w", i, err)
		}
		if imp.name, err = r.name(); err != nil {
			return nil, fmt.Errorf("import %d: %w", i, err)
		}
		if imp.kind, err = r.byte(); err != nil {
			return nil, fmt.Errorf("import %d: %w", i, err)
		}
		out = append(out, imp)
		if imp.kind != 0 {
			return out, nil
		}
		if _, err := r.u32(); err != nil { // type index
			return nil, fmt.Errorf("import %d: %w", i, err)
		}
	}
	return out, nil
}

// wasmReader decodes the few encodings of the binary format readImports
// needs.
type wasmReader struct{ b []byte }

var errTruncated = errors.New("truncated module")

func (r *wasmReader) done() bool { return len(r.b) == 0 }

func (r *wasmReader) byte() (byte, error) {
	if len(r.b) == 0 {
		return 0, errTruncated
	}
	c := r.b[0]
	r.b = r.b[1:]
	return c, nil
}

// u32 reads an unsigned LEB128 of at most 5 bytes.
func (r *wasmReader) u32() (uint32, error) {
	var v uint32
	for i := 0; i < 5; i++ {
		c, err := r.byte()
		if err != nil {
			return 0, err
		}
		if i == 4 && c > 0x0f {
			return 0, errors.New("integer overflows 32 bits")
		}
		v |= uint32(c&0x7f) << (7 * i)
		if c&0x80 == 0 {
			return v, nil
		}
	}
	return 0, errors.New("integer overflows 32 bits")
}

func (r *wasmReader) bytes(n uint32) ([]byte, error) {
	if uint64(n) > uint64(len(r.b)) {
		return nil, errTruncated
	}
	out := r.b[:n]
	r.b = r.b[n:]
	return out, nil
}

func (r *wasmReader) name() (string, error) {
	n, err := r.u32()
	if err != nil {
		return "", err
	}
	b, err := r.bytes(n)
	if err != nil {
		return "", err
	}
	if !utf8.Valid(b) {
		return "", errors.New("name is not UTF-8")
	}
	return string(b), nil
}

// checkImports refuses any import the host does not provide, naming every
// one of them.
func checkImports(imports []wasmImport, provided map[string]map[string]bool) error {
	var bad []string
	for _, imp := range imports {
		if imp.kind != 0 || !provided[imp.module][imp.name] {
			bad = append(bad, fmt.Sprintf("%q", imp.String()))
		}
	}
	if len(bad) > 0 {
		return fmt.Errorf("imports that signet does not provide: %s", strings.Join(bad, ", "))
	}
	return nil
}
