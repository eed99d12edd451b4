//go:build !cgo

package pkcs11

// Open fails in a build without cgo: a PKCS#11 module is a C library.
func Open(opts Options) (*Key, error) {
	return nil, errorf(ErrNoCGO, nil, "this signet was built without cgo; build with CGO_ENABLED=1 (the default with gcc installed) to use pkcs11")
}
