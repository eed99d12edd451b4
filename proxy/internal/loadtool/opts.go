package main

import (
	"flag"
	"log/slog"
	"os"

	"github.com/signet-proxy/signet/internal/metrics"
	"github.com/signet-proxy/signet/proxy"
)

func setOpts(o *proxy.Options, log *slog.Logger) {
	switch flag.Lookup("access").Value.String() {
	case "direct":
		o.AccessLog = slog.New(slog.NewJSONHandler(os.Stderr, nil))
	case "buffered":
		o.AccessLog = slog.New(slog.NewJSONHandler(proxy.NewLineBuffer(os.Stderr), nil))
	}
	if flag.Lookup("metrics").Value.String() == "true" {
		o.Metrics = metrics.New(metrics.Options{})
	}
}
