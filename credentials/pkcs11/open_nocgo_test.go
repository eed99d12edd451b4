//go:build !cgo

package pkcs11

import (
	"errors"
	"strings"
	"testing"
)

func TestOpenWithoutCGO(t *testing.T) {
	_, err := Open(Options{Module: "/usr/lib/softhsm/libsofthsm2.so", TokenLabel: "t", KeyLabel: "k", PIN: "1234"})
	if !errors.Is(err, ErrNoCGO) {
		t.Fatalf("Open: %v", err)
	}
	for _, w := range []string{"built without cgo", "CGO_ENABLED=1"} {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("error %q lacks %q", err, w)
		}
	}
}
