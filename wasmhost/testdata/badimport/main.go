// Command badimport imports functions signet does not provide; the host
// must refuse it at load, naming both.
package main

//go:wasmimport signet nonexistent
func nonexistent() uint32

//go:wasmimport env foo
func foo(x uint32) uint32

func main() {
	println(nonexistent() + foo(1))
}
