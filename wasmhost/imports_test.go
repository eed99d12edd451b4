package wasmhost

import (
	"os"
	"strings"
	"testing"
)

func TestReadImports(t *testing.T) {
	needGuests(t)
	bin := commandModule([]testImport{
		funcImport("wasi_snapshot_preview1", "fd_write", 1),
		funcImport("signet", "log", 1),
		{"env", "table", []byte{1, 0x70, 0, 1}},
		funcImport("env", "after", 0),
	}, []byte{0, 0x0b})
	imps, err := readImports(bin)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, i := range imps {
		got = append(got, i.String())
	}
	want := "wasi_snapshot_preview1.fd_write (function)|signet.log (function)|env.table (table)"
	if strings.Join(got, "|") != want {
		t.Errorf("got %q", got)
	}
	probe, err := os.ReadFile(probeWasm)
	if err != nil {
		t.Fatal(err)
	}
	imps, err = readImports(probe)
	if err != nil {
		t.Fatal(err)
	}
	if err := checkImports(imps, sharedHost.names); err != nil {
		t.Errorf("probe: %v", err)
	}
	for _, b := range [][]byte{nil, []byte("\x00asm"), []byte("\x00asm\x0d\x00\x01\x00"), bin[:20]} {
		if _, err := readImports(b); err == nil {
			t.Errorf("%q accepted", b)
		}
	}
}

// FuzzReadImports: the import reader never panics or reads past its input
// on a hostile module.
func FuzzReadImports(f *testing.F) {
	f.Add(commandModule([]testImport{funcImport("signet", "log", 1)}, []byte{0, 0x0b}))
	f.Add(commandModule([]testImport{{"env", "memory", []byte{2, 0, 1}}}, []byte{0, 0x0b}))
	f.Add(callTreeModule(3))
	f.Add([]byte("\x00asm\x01\x00\x00\x00\x02\xff\xff\xff\xff\x0f"))
	f.Fuzz(func(t *testing.T, b []byte) {
		imps, err := readImports(b)
		if err != nil {
			return
		}
		for i, imp := range imps {
			if imp.kind != 0 && i != len(imps)-1 {
				t.Fatalf("non-function import %v not last", imp)
			}
		}
	})
}
