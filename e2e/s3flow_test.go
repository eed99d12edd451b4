//go:build linux

package e2e

import (
	"bytes"
	"encoding/xml"
	"fmt"
	"strings"
	"testing"
)

// keyCase is an S3 object key and the exact path bytes every client sends
// for it. Raw is the AWS canonical escaping that the AWS SDKs send (each
// byte outside A-Z a-z 0-9 - . _ ~ / is %XX-escaped, '/' kept), so a signer
// that signs the path as received and one that re-escapes the decoded key
// must agree with versitygw.
type keyCase struct {
	name   string
	key    string // the S3 key
	raw    string // the escaped key, as sent after /bucket/
	prefix string // a prefix of key to list with (sent query-escaped)
	listed string // the key as versitygw lists it
}

var keyCases = []keyCase{
	{name: "space", key: "with space.txt", raw: "with%20space.txt", prefix: "with "},
	{name: "plus", key: "a+b", raw: "a%2Bb", prefix: "a+"},
	// The key holds the three characters "%2F" (not a slash): the client
	// escapes its '%', so the wire path carries %252F. versitygw decodes once
	// and re-escapes, so a signer that unescaped twice (or signed %2F as '/')
	// is caught.
	{name: "literal-pct2F", key: "lit%2Fslash", raw: "lit%252Fslash", prefix: "lit%2F"},
	{name: "tilde", key: "til~de", raw: "til~de", prefix: "til~"},
	{name: "equals", key: "k=v", raw: "k%3Dv", prefix: "k="},
	{name: "unicode", key: "uni-é€日本", raw: "uni-%C3%A9%E2%82%AC%E6%97%A5%E6%9C%AC", prefix: "uni-é€"},
	// The double slash must survive (no path cleaning): versitygw verifies
	// the signature over "dbl//slash". Its posix backend stores the object
	// as the file dbl/slash, so it lists the key with one slash.
	{name: "double-slash", key: "dbl//slash", raw: "dbl//slash", prefix: "dbl/", listed: "dbl/slash"},
	{name: "nested", key: "dir/sub/obj.bin", raw: "dir/sub/obj.bin", prefix: "dir/sub/"},
}

// subDelimCases are keys whose path is sent with RFC 3986 sub-delimiters
// unescaped, as curl users type them and as Go's url.URL{Path: ...} sends
// them. versitygw canonicalises to %2B/%3D/..., as AWS SDKs escape them.
var subDelimCases = []keyCase{
	{name: "unescaped-plus-equals", key: "p+q=r", raw: "p+q=r", prefix: "p+"},
	{name: "unescaped-subdelims", key: "x!$&'()*,;:@y", raw: "x!$&'()*,;:@y", prefix: "x!"},
}

// awsEscape is the AWS URI-encoding of s ('/' kept when keepSlash).
func awsEscape(s string, keepSlash bool) string {
	var b strings.Builder
	for _, c := range []byte(s) {
		switch {
		case 'A' <= c && c <= 'Z', 'a' <= c && c <= 'z', '0' <= c && c <= '9',
			c == '-', c == '.', c == '_', c == '~', c == '/' && keepSlash:
			b.WriteByte(c)
		default:
			fmt.Fprintf(&b, "%%%02X", c)
		}
	}
	return b.String()
}

func TestKeyCasesAreCanonical(t *testing.T) {
	for _, k := range keyCases {
		if got := awsEscape(k.key, true); got != k.raw {
			t.Errorf("%s: raw %q is not the canonical escaping %q of %q", k.name, k.raw, got, k.key)
		}
		if !strings.HasPrefix(k.key, k.prefix) && !strings.HasPrefix(k.listedKey(), k.prefix) {
			t.Errorf("%s: %q is not a prefix", k.name, k.prefix)
		}
	}
}

func (k keyCase) listedKey() string {
	if k.listed != "" {
		return k.listed
	}
	return k.key
}

// addressing builds URLs for one S3 addressing style.
type addressing struct {
	name   string
	bucket func(bucket string) string      // the bucket's URL (create, delete)
	object func(bucket, raw string) string // an object's URL
}

func (a addressing) list(bucket, prefix string) string {
	u := a.bucket(bucket)
	return u + "?list-type=2&prefix=" + awsEscape(prefix, false)
}

func pathStyle(base string) addressing {
	return addressing{
		name:   "path-style",
		bucket: func(b string) string { return base + "/" + b },
		object: func(b, raw string) string { return base + "/" + b + "/" + raw },
	}
}

func virtualHosted() addressing {
	return addressing{
		name:   "virtual-hosted",
		bucket: func(b string) string { return "http://" + b + "." + s3Host + "/" },
		object: func(b, raw string) string { return "http://" + b + "." + s3Host + "/" + raw },
	}
}

type listResult struct {
	Keys []string `xml:"Contents>Key"`
}

func want2xx(t testing.TB, what string, r result) bool {
	t.Helper()
	if r.Status < 200 || r.Status > 299 {
		t.Errorf("%s: status %d, want 2xx; X-Signet-Error %q; body:\n%s",
			what, r.Status, r.Header.Get("X-Signet-Error"), r.Body)
		return false
	}
	return true
}

func objectBody(key, who string) []byte {
	b := []byte(fmt.Sprintf("object %q written by %s\n", key, who))
	for i := 0; i < 256; i++ {
		b = append(b, byte(i))
	}
	return b
}

// runS3Flow creates a bucket, then for each key puts, gets, lists and
// deletes an object, then deletes the bucket. Every answer must be 2xx.
func runS3Flow(t *testing.T, c client, a addressing, bucket string, keys []keyCase) {
	if r := c.Do(t, "PUT", a.bucket(bucket), nil); !want2xx(t, "create bucket "+bucket, r) {
		t.FailNow()
	}
	for _, k := range keys {
		t.Run(k.name, func(t *testing.T) {
			body := objectBody(k.key, c.Name()+"/"+a.name)
			obj := a.object(bucket, k.raw)
			if !want2xx(t, "PUT "+obj, c.Do(t, "PUT", obj, body)) {
				return
			}
			r := c.Do(t, "GET", obj, nil)
			if want2xx(t, "GET "+obj, r) && !bytes.Equal(r.Body, body) {
				t.Errorf("GET %s: got %d bytes %q, want %d bytes", obj, len(r.Body), r.Body, len(body))
			}
			lu := a.list(bucket, k.prefix)
			r = c.Do(t, "GET", lu, nil)
			if want2xx(t, "list "+lu, r) {
				var l listResult
				if err := xml.Unmarshal(r.Body, &l); err != nil {
					t.Errorf("list %s: %v\n%s", lu, err, r.Body)
				} else if !contains(l.Keys, k.listedKey()) {
					t.Errorf("list %s: keys %q lack %q", lu, l.Keys, k.listedKey())
				}
			}
			want2xx(t, "DELETE "+obj, c.Do(t, "DELETE", obj, nil))
		})
	}
	want2xx(t, "delete bucket "+bucket, c.Do(t, "DELETE", a.bucket(bucket), nil))
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// TestS3Flow runs the whole S3 flow against versitygw through signet's
// forward proxy (curl, python urllib, Go; path-style and virtual-hosted)
// and through its reverse listener (Go, curl).
func TestS3Flow(t *testing.T) {
	v := startVersity(t)
	s := startSignet(t, s3Config(v, testSecretKey, "", ""), 1)
	fwdBase := "http://" + s3Host
	revBase := "http://" + s.Reverse[0]

	type flow struct {
		via    string
		client func(t *testing.T) client
		addr   addressing
	}
	var flows []flow
	for _, mk := range []struct {
		name string
		mk   func(t *testing.T) client
	}{
		{"curl", func(t *testing.T) client { return newCurlClient(t, s.ProxyURL()) }},
		{"python", func(t *testing.T) client { return newPyClient(t, s.ProxyURL()) }},
		{"go", func(t *testing.T) client { return newGoClient(s.ProxyURL()) }},
	} {
		flows = append(flows,
			flow{"forward/" + mk.name, mk.mk, pathStyle(fwdBase)},
			flow{"forward/" + mk.name, mk.mk, virtualHosted()})
	}
	flows = append(flows,
		flow{"reverse/go", func(t *testing.T) client { return newGoClient("") }, pathStyle(revBase)},
		flow{"reverse/curl", func(t *testing.T) client { return newCurlClient(t, "") }, pathStyle(revBase)},
	)

	t.Run("all", func(t *testing.T) {
		for i, f := range flows {
			t.Run(f.via+"/"+f.addr.name, func(t *testing.T) {
				t.Parallel()
				bucket := fmt.Sprintf("flow-%02d-%s", i, strings.ReplaceAll(f.via, "/", "-"))
				runS3Flow(t, f.client(t), f.addr, bucket, keyCases)
			})
		}
	})

	// Paths with sub-delimiters left unescaped: what a user types in curl
	// and what Go sends for url.URL{Path: "/b/p+q=r"}.
	t.Run("unescaped-subdelims", func(t *testing.T) {
		for i, f := range []flow{
			{"forward/curl", func(t *testing.T) client { return newCurlClient(t, s.ProxyURL()) }, pathStyle(fwdBase)},
			{"forward/go", func(t *testing.T) client { return newGoClient(s.ProxyURL()) }, pathStyle(fwdBase)},
			{"reverse/curl", func(t *testing.T) client { return newCurlClient(t, "") }, pathStyle(revBase)},
		} {
			t.Run(f.via, func(t *testing.T) {
				t.Parallel()
				runS3Flow(t, f.client(t), f.addr, fmt.Sprintf("subdelim-%d", i), subDelimCases)
			})
		}
	})

	if logs := s.Logs.String(); strings.Contains(logs, testSecretKey) {
		t.Errorf("signet's debug log contains the secret access key")
	}
}
