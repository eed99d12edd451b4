package configs_test

import (
	"fmt"
	"os"
	"path/filepath"

	"github.com/signet-proxy/signet/configs"
)

func ExampleLoad() {
	dir, _ := os.MkdirTemp("", "signet")
	defer os.RemoveAll(dir)
	file := filepath.Join(dir, "signet.yaml")
	_ = os.WriteFile(file, []byte(`
routes:
  - hosts: ["*.s3.eu-west-1.amazonaws.com"]
    source: default
    payload: unsigned
`), 0o600)

	cfg, err := configs.Load(configs.LoadOptions{
		File:      file,
		Environ:   []string{"HOME=/home/me", "SIGNET_LOG__LEVEL=debug"},
		Overrides: map[string]string{"listen": "127.0.0.1:0"},
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(cfg.Listen, cfg.Log.Level, cfg.StateDir)
	r := cfg.Routes[0]
	fmt.Println(r.Hosts, r.Source, r.Payload, r.UpstreamScheme)

	_, err = configs.Load(configs.LoadOptions{
		File:      file,
		Environ:   []string{"HOME=/home/me"},
		Overrides: map[string]string{"log.level": "loud"},
	})
	fmt.Println(err)
	// Output:
	// 127.0.0.1:0 debug /home/me/.local/state/signet
	// [*.s3.eu-west-1.amazonaws.com] default unsigned https
	// config: log.level: "loud" is not valid; accepted: debug, info, warn, error (from flag --log-level)
}
