// Package sdk is a small helper for signet credential providers written in
// Go: WebAssembly modules (GOOS=wasip1 GOARCH=wasm) that follow signet's
// provider ABI (wasmhost/ABI.md). The same source builds natively as an
// AWS credential_process helper: under wasip1 Fetch goes through the host's
// `signet.http_request`, elsewhere through net/http.
//
// A provider is a main that calls Main:
//
//	func main() {
//		sdk.Main(func(ctx context.Context) (sdk.Credentials, error) {
//			resp, err := sdk.Fetch(ctx, sdk.Request{URL: "https://broker.example/creds"})
//			...
//		})
//	}
//
// The package uses the standard library only, and not net/http under
// wasip1, so that modules stay small.
package sdk

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// Credentials are what a provider prints: the credential_process object.
type Credentials struct {
	AccessKeyID     string
	SecretAccessKey string
	// SessionToken is empty for long-term keys.
	SessionToken string
	// Expiration is when the keys stop working; zero for keys that do not
	// expire (signet then keeps them for the source's refresh_interval).
	Expiration time.Time
}

// processOutput is the credential_process JSON object.
type processOutput struct {
	Version         int    `json:"Version"`
	AccessKeyID     string `json:"AccessKeyId"`
	SecretAccessKey string `json:"SecretAccessKey"`
	SessionToken    string `json:"SessionToken,omitempty"`
	Expiration      string `json:"Expiration,omitempty"`
}

// WriteCredentials writes c to w as one credential_process JSON object
// (Version 1) followed by a newline.
func WriteCredentials(w io.Writer, c Credentials) error {
	if c.AccessKeyID == "" || c.SecretAccessKey == "" {
		return errors.New("sdk: credentials need an access key id and a secret access key")
	}
	out := processOutput{Version: 1, AccessKeyID: c.AccessKeyID, SecretAccessKey: c.SecretAccessKey, SessionToken: c.SessionToken}
	if !c.Expiration.IsZero() {
		out.Expiration = c.Expiration.UTC().Format(time.RFC3339)
	}
	b, err := json.Marshal(out)
	if err != nil {
		return fmt.Errorf("sdk: encode credentials: %w", err)
	}
	if _, err := w.Write(append(b, '\n')); err != nil {
		return fmt.Errorf("sdk: write credentials: %w", err)
	}
	return nil
}

// Main runs fetch and prints its credentials to stdout. On an error it
// prints "NAME: error" to stderr and exits 1; the error text must not hold
// a secret (signet redacts what looks like one, a native caller does not).
func Main(fetch func(ctx context.Context) (Credentials, error)) {
	ctx, stop := mainContext()
	err := run(ctx, fetch, os.Stdout)
	stop()
	if err != nil {
		fmt.Fprintf(os.Stderr, "%s: %v\n", progName(), err)
		os.Exit(1)
	}
}

func run(ctx context.Context, fetch func(ctx context.Context) (Credentials, error), stdout io.Writer) error {
	c, err := fetch(ctx)
	if err != nil {
		return err
	}
	return WriteCredentials(stdout, c)
}

func progName() string {
	if len(os.Args) == 0 || os.Args[0] == "" {
		return "provider"
	}
	return strings.TrimSuffix(filepath.Base(os.Args[0]), ".wasm")
}

// ParseFlags parses the module's arguments (os.Args[1:]) into fs. A flag
// not given as an argument takes the value of the environment variable
// env names for it, when that variable is set and not empty: a config can
// pass a setting either way, and a native credential_process helper reads
// the variables AWS tools use (AWS_ROLE_ARN, ...).
func ParseFlags(fs *flag.FlagSet, env map[string]string) error {
	return ParseArgs(fs, os.Args[1:], env, os.Getenv)
}

// ParseArgs is ParseFlags with the arguments and the environment given,
// for tests.
func ParseArgs(fs *flag.FlagSet, args []string, env map[string]string, getenv func(string) string) error {
	if err := fs.Parse(args); err != nil {
		return err
	}
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	for name, variable := range env {
		if set[name] {
			continue
		}
		v := getenv(variable)
		if v == "" {
			continue
		}
		if fs.Lookup(name) == nil {
			return fmt.Errorf("sdk: environment variable %s names flag -%s, which is not defined", variable, name)
		}
		if err := fs.Set(name, v); err != nil {
			return fmt.Errorf("sdk: environment variable %s: %w", variable, err)
		}
	}
	return nil
}

// MaxInput caps ReadFile and ReadStdin: a provider's configuration and
// tokens are small, and a module's memory is capped.
const MaxInput = 1 << 20

// DefaultDir is where signet mounts a source's `dir` unless `dir_mount`
// says otherwise.
const DefaultDir = "/config"

// ReadFile reads a whole file (at most MaxInput bytes). Under signet the
// only files are those of the source's `dir`, read-only at `dir_mount`
// (default /config); the error says so when the path is not there. The
// error never quotes the file's content.
func ReadFile(name string) ([]byte, error) {
	f, err := os.Open(name)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) && underWASI {
			return nil, fmt.Errorf("sdk: read %s: %w (is the source's wasm `dir` set, and mounted where the module looks?)", name, err)
		}
		return nil, fmt.Errorf("sdk: read %s: %w", name, err)
	}
	defer f.Close()
	return readCapped(f, "sdk: read "+name)
}

// ReadStdin reads the module's stdin to its end (at most MaxInput
// bytes): the source's `stdin` text under signet.
func ReadStdin() ([]byte, error) {
	return readCapped(os.Stdin, "sdk: read stdin")
}

func readCapped(r io.Reader, what string) ([]byte, error) {
	b, err := io.ReadAll(io.LimitReader(r, MaxInput+1))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	if len(b) > MaxInput {
		return nil, fmt.Errorf("%s: more than %d bytes", what, MaxInput)
	}
	return b, nil
}
