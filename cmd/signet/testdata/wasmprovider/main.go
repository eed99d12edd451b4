// Command wasmprovider is a test credential provider for signet, built
// with GOOS=wasip1 GOARCH=wasm by the cmd/signet tests. argv[1] picks what
// it does:
//
//	ok       prints credentials that expire in an hour; the key ID comes
//	         from $KEY_ID, the session token from stdin, the secret from
//	         the file /config/secret when it exists
//	noexp    prints long-term keys (no Expiration, no token)
//	fail     writes a reason (and a key ID, which must be redacted) to
//	         stderr and exits 3
//	garbage  prints something that is not credential_process JSON
//	spin     never returns (the timeout must stop it)
package main

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strings"
	"time"
)

func main() {
	mode := ""
	if len(os.Args) > 1 {
		mode = os.Args[1]
	}
	switch mode {
	case "ok":
		token, _ := io.ReadAll(os.Stdin)
		secret := "wasmTestSecretKey/EXAMPLE+0123456789abcd"
		if b, err := os.ReadFile("/config/secret"); err == nil {
			secret = strings.TrimSpace(string(b))
		}
		fmt.Fprintln(os.Stderr, "wasmprovider: fetched credentials for", os.Getenv("KEY_ID"))
		out(map[string]any{
			"Version":         1,
			"AccessKeyId":     os.Getenv("KEY_ID"),
			"SecretAccessKey": secret,
			"SessionToken":    strings.TrimSpace(string(token)),
			"Expiration":      time.Now().Add(time.Hour).UTC().Format(time.RFC3339),
		})
	case "noexp":
		out(map[string]any{"Version": 1, "AccessKeyId": "AKIAWASMNOEXPIRY0001", "SecretAccessKey": "wasmLongTermSecret/EXAMPLE+0123456789abc"})
	case "fail":
		fmt.Fprintln(os.Stderr, "wasmprovider: starting")
		fmt.Fprintln(os.Stderr, "wasmprovider: role denied for AKIAWASMFAILEXAMPLE1")
		os.Exit(3)
	case "garbage":
		fmt.Println("hello, not JSON")
	case "spin":
		for {
			time.Sleep(time.Millisecond)
		}
	default:
		fmt.Fprintf(os.Stderr, "wasmprovider: unknown mode %q\n", mode)
		os.Exit(2)
	}
}

func out(v any) {
	if err := json.NewEncoder(os.Stdout).Encode(v); err != nil {
		os.Exit(1)
	}
}
