package credentials

import (
	"context"
	"strings"
	"testing"
)

// Whoami through an sts source names the assumed role: the identity of the
// keys signet signs with, not of the keys that called AssumeRole.
func TestWhoamiNamesTheAssumedRole(t *testing.T) {
	f := newFake(t)
	p := newTestSTS(t, f, STSOptions{Base: staticBase(t, baseKey, baseSecret)})
	src := NewSource("admin", p, SourceOptions{Method: "sts"})
	defer src.Close()
	creds, err := src.Credentials(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	id, err := Whoami(context.Background(), creds, WhoamiOptions{Region: f.Region(), Endpoint: f.URL(), RootCAs: f.RootCAs()})
	if err != nil {
		t.Fatal(err)
	}
	want, ok := f.IdentityOf(creds.AccessKeyID)
	if st := src.State(); st.Identity != want || st.RefreshCount != 1 {
		t.Fatalf("source state = %+v, want identity %q from AssumeRole", st, want)
	}
	if !ok || id.ARN != want || !strings.Contains(id.ARN, ":assumed-role/") || !strings.Contains(id.ARN, id.Account) {
		t.Fatalf("whoami = %+v, want the assumed role %q", id, want)
	}

	base, err := Whoami(context.Background(), Credentials{AccessKeyID: baseKey, SecretAccessKey: baseSecret},
		WhoamiOptions{Region: f.Region(), Endpoint: f.URL(), RootCAs: f.RootCAs()})
	if err != nil {
		t.Fatal(err)
	}
	if base.ARN != baseUser {
		t.Fatalf("whoami of the base keys = %+v, want %s", base, baseUser)
	}
}

func TestWhoamiRefusesAWrongSecret(t *testing.T) {
	f := newFake(t)
	_, err := Whoami(context.Background(), Credentials{AccessKeyID: baseKey, SecretAccessKey: "wrong"},
		WhoamiOptions{Region: f.Region(), Endpoint: f.URL(), RootCAs: f.RootCAs()})
	if err == nil || strings.Contains(err.Error(), "wrong") {
		t.Fatalf("err = %v: want a failure that does not echo the secret", err)
	}
}
