package credentials

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"
)

// Fake credentials, distinctive enough that a test finds them in any
// error text they leak into.
const (
	procKeyID  = "ASIAPROCESSEXAMPLE01"
	procSecret = "pRoCeSsSeCrEt/K7MDENG+bPxRfiCYEXAMPLEKEY"
	procToken  = "FwoGZXIvYXdzEPROCESSTOKENEXAMPLE//////////wEaDExampleTokenValue=="
)

var procNow = time.Date(2026, 11, 28, 11, 0, 0, 0, time.UTC)

// procJSON builds an output object from key/value pairs, values as raw
// JSON.
func procJSON(kv ...string) string {
	var b strings.Builder
	b.WriteString("{")
	for i := 0; i+1 < len(kv); i += 2 {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString(`"` + kv[i] + `": ` + kv[i+1])
	}
	b.WriteString("}")
	return b.String()
}

func q(s string) string { b, _ := json.Marshal(s); return string(b) }

func TestParseProcessOutput(t *testing.T) {
	full := procJSON("Version", "1", "AccessKeyId", q(procKeyID), "SecretAccessKey", q(procSecret),
		"SessionToken", q(procToken), "Expiration", q("2026-11-28T12:00:00Z"))
	tests := []struct {
		name    string
		in      string
		want    Credentials
		wantErr string
	}{
		{name: "full", in: full, want: Credentials{AccessKeyID: procKeyID, SecretAccessKey: procSecret, SessionToken: procToken,
			Expires: time.Date(2026, 11, 28, 12, 0, 0, 0, time.UTC)}},
		{name: "whitespace around", in: "\n\t " + full + " \r\n\n", want: Credentials{AccessKeyID: procKeyID, SecretAccessKey: procSecret, SessionToken: procToken,
			Expires: time.Date(2026, 11, 28, 12, 0, 0, 0, time.UTC)}},
		{name: "long-term keys", in: procJSON("Version", "1", "AccessKeyId", q(procKeyID), "SecretAccessKey", q(procSecret)),
			want: Credentials{AccessKeyID: procKeyID, SecretAccessKey: procSecret}},
		{name: "null token and expiration", in: procJSON("Version", "1", "AccessKeyId", q(procKeyID), "SecretAccessKey", q(procSecret), "SessionToken", "null", "Expiration", "null"),
			want: Credentials{AccessKeyID: procKeyID, SecretAccessKey: procSecret}},
		{name: "version 1.0 and unknown keys", in: procJSON("Version", "1.0", "AccessKeyId", q(procKeyID), "SecretAccessKey", q(procSecret),
			"Extra", `{"nested": [1, 2]}`, "accesskeyid", q("other"), "Extra", "2"),
			want: Credentials{AccessKeyID: procKeyID, SecretAccessKey: procSecret}},
		{name: "fractional seconds and offset", in: procJSON("Version", "1", "AccessKeyId", q(procKeyID), "SecretAccessKey", q(procSecret), "Expiration", q("2026-11-28T13:30:00.5+01:00")),
			want: Credentials{AccessKeyID: procKeyID, SecretAccessKey: procSecret, Expires: time.Date(2026, 11, 28, 12, 30, 0, 5e8, time.UTC)}},

		{name: "empty", in: " \n", wantErr: "is empty"},
		{name: "not an object", in: `["` + procSecret + `"]`, wantErr: "is not a JSON object"},
		{name: "plain text", in: procSecret, wantErr: "is not a JSON object"},
		{name: "bad JSON", in: `{"Version": 1, "AccessKeyId": "` + procKeyID + `", "SecretAccessKey": "` + procSecret + `" "SessionToken": "x"}`, wantErr: "is not valid JSON (at byte"},
		{name: "bad escape in secret", in: `{"SecretAccessKey": "` + procSecret + `\q"}`, wantErr: "is not valid JSON (at byte"},
		{name: "truncated", in: `{"Version": 1, "SecretAccessKey": "` + procSecret, wantErr: "is not valid JSON"},
		{name: "trailing garbage", in: full + "\n" + procSecret, wantErr: "has more after the JSON object"},
		{name: "two objects", in: full + full, wantErr: "has more after the JSON object"},
		{name: "version missing", in: procJSON("AccessKeyId", q(procKeyID), "SecretAccessKey", q(procSecret)), wantErr: "has no Version"},
		{name: "version null", in: procJSON("Version", "null", "AccessKeyId", q(procKeyID), "SecretAccessKey", q(procSecret)), wantErr: "has no Version"},
		{name: "version string", in: procJSON("Version", `"1"`, "AccessKeyId", q(procKeyID), "SecretAccessKey", q(procSecret)), wantErr: "has a Version that is a string, not the number 1"},
		{name: "version 2", in: procJSON("Version", "2", "AccessKeyId", q(procKeyID), "SecretAccessKey", q(procSecret)), wantErr: "has Version 2; only version 1 is known"},
		{name: "version huge", in: procJSON("Version", "1e999", "AccessKeyId", q(procKeyID), "SecretAccessKey", q(procSecret)), wantErr: "has a Version that is a number, not the number 1"},
		{name: "version object", in: procJSON("Version", `{"v": 1}`, "AccessKeyId", q(procKeyID), "SecretAccessKey", q(procSecret)), wantErr: "has a Version that is an object"},
		{name: "key id missing", in: procJSON("Version", "1", "SecretAccessKey", q(procSecret), "SessionToken", q(procToken)), wantErr: "has no AccessKeyId"},
		{name: "secret missing", in: procJSON("Version", "1", "AccessKeyId", q(procKeyID), "SessionToken", q(procToken)), wantErr: "has no SecretAccessKey"},
		{name: "secret null", in: procJSON("Version", "1", "AccessKeyId", q(procKeyID), "SecretAccessKey", "null"), wantErr: "has no SecretAccessKey"},
		{name: "secret empty", in: procJSON("Version", "1", "AccessKeyId", q(procKeyID), "SecretAccessKey", `""`), wantErr: "has an empty SecretAccessKey"},
		{name: "key id empty", in: procJSON("Version", "1", "AccessKeyId", `""`, "SecretAccessKey", q(procSecret)), wantErr: "has an empty AccessKeyId"},
		{name: "secret a number", in: procJSON("Version", "1", "AccessKeyId", q(procKeyID), "SecretAccessKey", "12345678901234567890"), wantErr: "has a SecretAccessKey that is a number, not a string"},
		{name: "token a list", in: procJSON("Version", "1", "AccessKeyId", q(procKeyID), "SecretAccessKey", q(procSecret), "SessionToken", `["`+procToken+`"]`), wantErr: "has a SessionToken that is a list"},
		{name: "newline in secret", in: procJSON("Version", "1", "AccessKeyId", q(procKeyID), "SecretAccessKey", q(procSecret+"\r\nX-Evil: 1")), wantErr: "has a SecretAccessKey with a character that is not printable ASCII"},
		{name: "space in key id", in: procJSON("Version", "1", "AccessKeyId", q("ASIA "+procKeyID), "SecretAccessKey", q(procSecret)), wantErr: "has an AccessKeyId with a character"},
		{name: "duplicate secret", in: procJSON("Version", "1", "AccessKeyId", q(procKeyID), "SecretAccessKey", q(procSecret), "SecretAccessKey", q(procSecret+"2")), wantErr: "has SecretAccessKey twice"},
		{name: "expiration past", in: procJSON("Version", "1", "AccessKeyId", q(procKeyID), "SecretAccessKey", q(procSecret), "Expiration", q("2026-11-28T10:00:00Z")),
			wantErr: "has an Expiration 2026-11-28T10:00:00Z that is not after now (2026-11-28T11:00:00Z)"},
		{name: "expiration now", in: procJSON("Version", "1", "AccessKeyId", q(procKeyID), "SecretAccessKey", q(procSecret), "Expiration", q("2026-11-28T11:00:00Z")), wantErr: "that is not after now"},
		{name: "expiration not RFC 3339", in: procJSON("Version", "1", "AccessKeyId", q(procKeyID), "SecretAccessKey", q(procSecret), "Expiration", q("Nov 28 2026 "+procSecret)),
			wantErr: "has an Expiration that is not an RFC 3339 time"},
		{name: "expiration a number", in: procJSON("Version", "1", "AccessKeyId", q(procKeyID), "SecretAccessKey", q(procSecret), "Expiration", "1795000000"), wantErr: "has an Expiration that is a number"},
		{name: "too large", in: procJSON("Version", "1", "AccessKeyId", q(procKeyID), "SecretAccessKey", q(procSecret), "Pad", q(strings.Repeat("x", 64<<10))), wantErr: "is larger than 65536 bytes"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseProcessOutput([]byte(tt.in), procNow)
			if tt.wantErr == "" {
				if err != nil {
					t.Fatal(err)
				}
				if got.AccessKeyID != tt.want.AccessKeyID || got.SecretAccessKey != tt.want.SecretAccessKey ||
					got.SessionToken != tt.want.SessionToken || !got.Expires.Equal(tt.want.Expires) {
					t.Errorf("got %#v, want %#v", got, tt.want)
				}
				return
			}
			if err == nil {
				t.Fatalf("no error; want %q", tt.wantErr)
			}
			if _, ok := errors.AsType[*ProcessError](err); !ok {
				t.Errorf("error %T is not a *ProcessError", err)
			}
			if !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("error %q does not contain %q", err, tt.wantErr)
			}
			assertNoSecret(t, err.Error())
		})
	}
}

// assertNoSecret fails when s holds any part of the fake credentials that
// is long enough to matter.
func assertNoSecret(t *testing.T, s string) {
	t.Helper()
	for _, secret := range []string{procKeyID, procSecret, procToken, "pRoCeSs", "EXAMPLEKEY", "12345678901234567890"} {
		if strings.Contains(s, secret) {
			t.Errorf("%q contains %q", s, secret)
		}
	}
}

func TestMarshalProcessOutput(t *testing.T) {
	c := Credentials{AccessKeyID: procKeyID, SecretAccessKey: procSecret, SessionToken: procToken,
		Expires: time.Date(2026, 11, 28, 13, 0, 0, 999e6, time.FixedZone("CET", 3600))}
	b, err := MarshalProcessOutput(c)
	if err != nil {
		t.Fatal(err)
	}
	want := `{"Version":1,"AccessKeyId":"` + procKeyID + `","SecretAccessKey":"` + procSecret + `","SessionToken":"` + procToken + `","Expiration":"2026-11-28T12:00:00Z"}` + "\n"
	if string(b) != want {
		t.Errorf("got  %s\nwant %s", b, want)
	}
	back, err := ParseProcessOutput(b, procNow)
	if err != nil {
		t.Fatal(err)
	}
	if back.AccessKeyID != c.AccessKeyID || back.SecretAccessKey != c.SecretAccessKey || back.SessionToken != c.SessionToken ||
		!back.Expires.Equal(time.Date(2026, 11, 28, 12, 0, 0, 0, time.UTC)) {
		t.Errorf("round trip gave %#v", back)
	}

	b, err = MarshalProcessOutput(Credentials{AccessKeyID: procKeyID, SecretAccessKey: procSecret})
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(b), "SessionToken") || strings.Contains(string(b), "Expiration") {
		t.Errorf("long-term keys written with a token or expiry: %s", b)
	}
	if _, err := MarshalProcessOutput(Credentials{AccessKeyID: procKeyID}); err == nil {
		t.Error("keys without a secret were written")
	}
}

// FuzzParseProcessOutput checks that no input panics, that what parses
// writes out and parses back the same, and that an error never holds a
// credential string of the input.
func FuzzParseProcessOutput(f *testing.F) {
	f.Add([]byte(`{"Version": 1, "AccessKeyId": "AKIAEXAMPLE", "SecretAccessKey": "s3cr3t/+=", "SessionToken": "tok", "Expiration": "2030-01-01T00:00:00Z"}`))
	f.Add([]byte(`{"Version": 1.0, "AccessKeyId": "a", "SecretAccessKey": "b", "Other": [null, {}]}` + "\n"))
	f.Add([]byte(`{"Version": 1, "AccessKeyId": "a", "SecretAccessKey": "b", "SecretAccessKey": "c"}`))
	f.Add([]byte(`{"Version": 1, "AccessKeyId": "a", "SecretAccessKey": "b\u0000", "Expiration": "2020-01-01T00:00:00Z"}`))
	f.Add([]byte(`{"Version": "1", "AccessKeyId": "a", "SecretAccessKey": "b"} trailing`))
	f.Add([]byte(`{"Version": 1, "AccessKeyId": "a", "SecretAccessKey": "b", "Expiration": "2030-01-01T00:00:00.123456789-07:00"}`))
	f.Add([]byte(`{"Version": 1, "AccessKeyId": "a", "SecretAccessKey": "b\`))
	f.Add([]byte(`   `))
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := ParseProcessOutput(data, procNow)
		if err != nil {
			// The credential strings of the input, as far as it decodes.
			var fields map[string]any
			if json.Unmarshal(data, &fields) == nil {
				for _, k := range []string{"AccessKeyId", "SecretAccessKey", "SessionToken"} {
					if s, ok := fields[k].(string); ok && len(s) >= 6 && strings.Contains(err.Error(), s) {
						t.Fatalf("error %q shows the %s", err, k)
					}
				}
			}
			return
		}
		if c.AccessKeyID == "" || c.SecretAccessKey == "" || c.Expired(procNow) {
			t.Fatalf("accepted unusable credentials %#v", c)
		}
		b, err := MarshalProcessOutput(c)
		if err != nil {
			t.Fatal(err)
		}
		back, err := ParseProcessOutput(b, procNow)
		if err != nil {
			// Rounding the expiry down to the second may put it at now.
			if c.Expires.Truncate(time.Second).After(procNow) {
				t.Fatalf("written output does not parse: %v\n%s", err, b)
			}
			return
		}
		if back.AccessKeyID != c.AccessKeyID || back.SecretAccessKey != c.SecretAccessKey || back.SessionToken != c.SessionToken ||
			!back.Expires.Equal(c.Expires.Truncate(time.Second)) {
			t.Fatalf("round trip: %#v became %#v", c, back)
		}
	})
}
