package main

import (
	"context"
	"errors"
	"fmt"

	"github.com/signet-proxy/signet/configs"
)

const configUsage = "usage: signet config schema"

// runConfig prints the JSON Schema of the config file, for editors:
//
//	signet config schema > signet.schema.json
//	# yaml-language-server: $schema=./signet.schema.json   (first line of signet.yaml)
func runConfig(_ context.Context, c *cli, args []string) error {
	if len(args) == 0 {
		return usageError{errors.New("missing subcommand\n" + configUsage)}
	}
	switch args[0] {
	case "schema":
		if len(args) > 1 {
			return usageError{fmt.Errorf("unexpected argument %q\n%s", args[1], configUsage)}
		}
		out, err := configs.Schema()
		if err != nil {
			return err
		}
		_, err = c.stdout.Write(out)
		return err
	case "-h", "--help", "help":
		return usageError{errors.New(configUsage)}
	}
	return usageError{fmt.Errorf("unknown subcommand %q\n%s", args[0], configUsage)}
}
