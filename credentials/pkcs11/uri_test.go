package pkcs11

import (
	"bytes"
	"errors"
	"fmt"
	"net/url"
	"reflect"
	"strconv"
	"strings"
	"testing"
)

func intp(n int) *int { return &n }

func TestParseURI(t *testing.T) {
	for _, tc := range []struct {
		uri  string
		opts Options
		pin  PINSource
	}{
		{"pkcs11:token=dev;object=key", Options{TokenLabel: "dev", KeyLabel: "key"}, PINSource{}},
		{"PKCS11:token=dev;id=%01", Options{TokenLabel: "dev", KeyID: []byte{1}}, PINSource{}},
		{"pkcs11:serial=a3c958a048770787;id=%DE%ad%01;object=iot", Options{TokenSerial: "a3c958a048770787", KeyID: []byte{0xde, 0xad, 1}, KeyLabel: "iot"}, PINSource{}},
		{"pkcs11:slot-id=1215760263;object=k", Options{Slot: intp(1215760263), KeyLabel: "k"}, PINSource{}},
		{"pkcs11:slot-id=0;id=%03", Options{Slot: intp(0), KeyID: []byte{3}}, PINSource{}},
		// Percent-decoding, and the characters RFC 7512 lets through.
		{"pkcs11:token=My%20Token;object=a%2Fb%3Bc%3F", Options{TokenLabel: "My Token", KeyLabel: "a/b;c?"}, PINSource{}},
		{"pkcs11:token=x:[]@!$'()*+,=&y;object=-._~", Options{TokenLabel: "x:[]@!$'()*+,=&y", KeyLabel: "-._~"}, PINSource{}},
		{"pkcs11:token=%C3%A9t%C3%A9;object=k", Options{TokenLabel: "été", KeyLabel: "k"}, PINSource{}},
		// The query.
		{"pkcs11:token=dev;object=key?module-path=/usr/lib/softhsm/libsofthsm2.so&pin-source=file:/etc/signet/pin",
			Options{Module: "/usr/lib/softhsm/libsofthsm2.so", TokenLabel: "dev", KeyLabel: "key"}, PINSource{File: "/etc/signet/pin"}},
		{"pkcs11:token=dev;object=key?pin-source=file:///etc/signet/my%2520pin", Options{TokenLabel: "dev", KeyLabel: "key"}, PINSource{File: "/etc/signet/my pin"}},
		{"pkcs11:token=dev;object=key?pin-source=file://localhost/run/pin", Options{TokenLabel: "dev", KeyLabel: "key"}, PINSource{File: "/run/pin"}},
		{"pkcs11:token=dev;object=key?pin-source=/run/pin", Options{TokenLabel: "dev", KeyLabel: "key"}, PINSource{File: "/run/pin"}},
		{"pkcs11:token=dev;object=key?pin-source=pin.txt", Options{TokenLabel: "dev", KeyLabel: "key"}, PINSource{File: "pin.txt"}},
		{"pkcs11:token=dev;object=key?pin-value=12%2634", Options{TokenLabel: "dev", KeyLabel: "key"}, PINSource{Value: "12&34"}},
		// type names the key pair through any of its objects.
		{"pkcs11:token=dev;object=key;type=private", Options{TokenLabel: "dev", KeyLabel: "key"}, PINSource{}},
		{"pkcs11:token=dev;object=key;type=cert", Options{TokenLabel: "dev", KeyLabel: "key"}, PINSource{}},
		// Ignored: attributes signet does not match on, unknown and vendor ones.
		{"pkcs11:model=SoftHSM%20v2;manufacturer=SoftHSM%20project;token=dev;library-version=2.6;slot-description=x;x-vendor=1;object=key?module-name=softhsm2&x-foo=bar&unknown=%FF",
			Options{TokenLabel: "dev", KeyLabel: "key"}, PINSource{}},
		// An empty query.
		{"pkcs11:token=dev;object=key?", Options{TokenLabel: "dev", KeyLabel: "key"}, PINSource{}},
	} {
		t.Run(tc.uri, func(t *testing.T) {
			o, pin, err := ParseURI(tc.uri)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(o, tc.opts) {
				t.Errorf("Options = %#v\nwant      %#v", o, tc.opts)
			}
			if pin != tc.pin {
				t.Errorf("PINSource = %+v, want %+v", pin, tc.pin)
			}
		})
	}
}

func TestParseURIErrors(t *testing.T) {
	for _, tc := range []struct{ uri, want string }{
		{"", `does not start with "pkcs11:"`},
		{"pkcs1:token=a;object=b", `does not start with "pkcs11:"`},
		{"pkcs11:", "names no token"},
		{"pkcs11:object=k", "names no token: add token=LABEL, serial=SERIAL or slot-id=N"},
		{"pkcs11:token=a", "names no key: add object=LABEL, id=%XX..., or both"},
		{"pkcs11:token=a;type=private", "names no key"},
		{"pkcs11:token=a;serial=1;object=k", "selects the token by token and serial: signet selects it by exactly one"},
		{"pkcs11:token=a;object=k;token=b", `attribute "token" (offset 24) appears twice`},
		{"pkcs11:token=a;;object=k", "empty attribute at offset 15"},
		{"pkcs11:token=a;object=k;", "empty attribute at offset 24"},
		{"pkcs11:token;object=k", `attribute at offset 7 has no "="`},
		{"pkcs11:=a;object=k", "attribute name at offset 7 is not"},
		{"pkcs11:tok%65n=a;object=k", "attribute name at offset 7 is not"},
		{"pkcs11:token=a%2;object=k", `attribute "token": '%' at offset 14 is not followed by two hex digits`},
		{"pkcs11:token=a%zz;object=k", `'%' at offset 14 is not followed by two hex digits`},
		{"pkcs11:token=a%", `'%' at offset 14`},
		{"pkcs11:token=My Token;object=k", `character ' ' at offset 15 must be percent-encoded (%20)`},
		{"pkcs11:token=a/b;object=k", `character '/' at offset 14 must be percent-encoded (%2F)`},
		{"pkcs11:token=été;object=k", `must be percent-encoded (%C3)`},
		{"pkcs11:token=;object=k", `attribute "token" (offset 7) is empty`},
		{"pkcs11:token=a;id=", `attribute "id" (offset 15) is empty`},
		{"pkcs11:slot-id=-1;object=k", `slot-id "-1" (offset 7): not a decimal number`},
		{"pkcs11:slot-id=0x10;object=k", "not a decimal number"},
		{"pkcs11:slot-id=99999999999999999999999;object=k", "too large"},
		{"pkcs11:token=a;object=k;type=secret-key", "type=secret-key (offset 24) names no key pair"},
		{"pkcs11:token=a;object=k;type=bogus", `type="bogus" (offset 24) is not a PKCS#11 object type`},
		{"pkcs11:token=a;object=k?pin-source=%7C/usr/bin/getpin", "runs a command; signet reads the PIN only from a file"},
		{"pkcs11:token=a;object=k?pin-source=|/usr/bin/getpin", "runs a command"},
		{"pkcs11:token=a;object=k?pin-source=https://example.com/pin", `scheme "https" is not supported`},
		{"pkcs11:token=a;object=k?pin-source=file://host/pin", `host "host": only local files`},
		{"pkcs11:token=a;object=k?pin-source=file:", "no path"},
		{"pkcs11:token=a;object=k?pin-source=/a&pin-source=/b", `attribute "pin-source" (offset 38) appears twice`},
		{"pkcs11:token=a;object=k?pin-source=/a&pin-value=1234", "both pin-source and pin-value"},
		{"pkcs11:token=a;object=k?module-path=libsofthsm2.so", `module-path "libsofthsm2.so" (offset 24) is not an absolute path`},
		{"pkcs11:token=a;object=k?module-path=/usr/lib/x;y.so", `character ';' at offset`},
		{"pkcs11:token=a;object=k?pin-value=12 34", "a character at offset 36 must be percent-encoded"},
		{"pkcs11:token=a;object=k?pin-value=12%g4", "'%' at offset 36"},
	} {
		t.Run(tc.uri, func(t *testing.T) {
			_, _, err := ParseURI(tc.uri)
			if err == nil {
				t.Fatal("no error")
			}
			if !errors.Is(err, ErrInvalid) {
				t.Errorf("errors.Is(err, ErrInvalid) = false: %v", err)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %q\nlacks %q", err, tc.want)
			}
		})
	}
}

// A pin-value never shows in an error, not even one character of it.
func TestParseURIErrorHidesPINValue(t *testing.T) {
	for _, uri := range []string{
		"pkcs11:token=a;object=k?pin-value=s3cr3t Q",
		"pkcs11:token=a;object=k?pin-value=s3cr3t%Q",
		"pkcs11:token=a;object=k?pin-value=s3cr3tQ&pin-source=/p",
		"pkcs11:token=a;object=k?pin-value=s3cr3tQ&pin-value=s3cr3tQ",
		"pkcs11:object=k?pin-value=s3cr3tQ",
	} {
		_, _, err := ParseURI(uri)
		if err == nil {
			t.Fatalf("%s: no error", uri)
		}
		if strings.Contains(err.Error(), "s3cr3t") || strings.Contains(err.Error(), "Q") {
			t.Errorf("%s: error shows the PIN: %v", uri, err)
		}
	}
}

// formatURI writes Options and a PIN source as a URI, encoding every byte
// that is not unreserved: what ParseURI reads back must be the same.
func formatURI(o Options, pin PINSource) string {
	var path []string
	switch {
	case o.TokenLabel != "":
		path = append(path, "token="+enc([]byte(o.TokenLabel)))
	case o.TokenSerial != "":
		path = append(path, "serial="+enc([]byte(o.TokenSerial)))
	case o.Slot != nil:
		path = append(path, "slot-id="+strconv.Itoa(*o.Slot))
	}
	if o.KeyLabel != "" {
		path = append(path, "object="+enc([]byte(o.KeyLabel)))
	}
	if len(o.KeyID) > 0 {
		path = append(path, "id="+enc(o.KeyID))
	}
	var query []string
	if o.Module != "" {
		query = append(query, "module-path="+enc([]byte(o.Module)))
	}
	if f := pin.File; f != "" {
		if !strings.HasPrefix(f, "/") && strings.Contains(f, ":") {
			// A bare "a:b" would read as a URI with scheme "a".
			f = "file:" + url.PathEscape(f)
		}
		query = append(query, "pin-source="+enc([]byte(f)))
	}
	if pin.Value != "" {
		query = append(query, "pin-value="+enc([]byte(pin.Value)))
	}
	u := "pkcs11:" + strings.Join(path, ";")
	if len(query) > 0 {
		u += "?" + strings.Join(query, "&")
	}
	return u
}

func FuzzParseURI(f *testing.F) {
	for _, s := range []string{
		"pkcs11:token=dev;object=key",
		"pkcs11:token=dev;id=%01",
		"pkcs11:serial=a3c958a048770787;id=%DE%AD;object=iot;type=private",
		"pkcs11:slot-id=1215760263;object=k",
		"pkcs11:token=My%20Token;object=a%2Fb?module-path=/usr/lib/softhsm/libsofthsm2.so&pin-source=file:/etc/signet/pin",
		"pkcs11:token=dev;object=key?pin-source=file:///etc/p%2520in",
		"pkcs11:token=dev;object=key?pin-value=1234",
		"pkcs11:model=SoftHSM%20v2;token=dev;x-v=1;object=k?module-name=softhsm2&x=y",
		"pkcs11:token=a;serial=1;object=k",
		"pkcs11:token=a%2",
		"pkcs11:token=a;;object=k",
		"pkcs11:",
		"",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, uri string) {
		o, pin, err := ParseURI(uri)
		if err != nil {
			if !errors.Is(err, ErrInvalid) {
				t.Fatalf("error is not ErrInvalid: %v", err)
			}
			if pin != (PINSource{}) || !reflect.DeepEqual(o, Options{}) {
				t.Fatal("an error came with a result")
			}
			return
		}
		n := 0
		for _, set := range []bool{o.TokenLabel != "", o.TokenSerial != "", o.Slot != nil} {
			if set {
				n++
			}
		}
		if n != 1 {
			t.Fatalf("%d token selectors set", n)
		}
		if o.Slot != nil && *o.Slot < 0 {
			t.Fatalf("slot %d", *o.Slot)
		}
		if o.KeyLabel == "" && len(o.KeyID) == 0 {
			t.Fatal("no key")
		}
		if pin.File != "" && pin.Value != "" {
			t.Fatal("both pin-source and pin-value")
		}
		if o.PIN != "" {
			t.Fatal("ParseURI set Options.PIN")
		}
		if o.Module != "" && !strings.HasPrefix(o.Module, "/") {
			t.Fatalf("relative module %q", o.Module)
		}
		// What was read, written back fully encoded, reads the same.
		again := formatURI(o, pin)
		o2, pin2, err := ParseURI(again)
		if err != nil {
			t.Fatalf("%q: %v", again, err)
		}
		if !reflect.DeepEqual(o, o2) || pin != pin2 || !bytes.Equal(o.KeyID, o2.KeyID) {
			t.Fatalf("%q reads back as %#v %#v, not %#v %#v", again, o2, pin2, o, pin)
		}
		// A file: pin-source written as a URI reads as the same file.
		if strings.HasPrefix(pin.File, "/") {
			u := (&url.URL{Scheme: "file", Path: pin.File}).String()
			_, pin3, err := ParseURI("pkcs11:token=t;object=o?pin-source=" + enc([]byte(u)))
			if err != nil || pin3.File != pin.File {
				t.Fatalf("pin-source %q: %v %q", u, err, pin3.File)
			}
		}
	})
}

// enc percent-encodes every byte that is not unreserved.
func enc(b []byte) string {
	var s strings.Builder
	for _, c := range b {
		if isAlnum(c) || strings.IndexByte("-._~", c) >= 0 {
			s.WriteByte(c)
		} else {
			fmt.Fprintf(&s, "%%%02X", c)
		}
	}
	return s.String()
}
