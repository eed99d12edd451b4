// Command loadtool is a temporary measuring aid: it runs the load
// benchmark's upstream or a reverse listener in its own process.
package main

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"os"
	"os/signal"
	"runtime"
	"runtime/pprof"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/signet-proxy/signet/credentials"
	"github.com/signet-proxy/signet/proxy"
	"github.com/signet-proxy/signet/signer"
)

var payload = bytes.Repeat([]byte("0123456789abcdef"), 64)

func main() {
	mode := flag.String("mode", "upstream", "upstream|proxy")
	listen := flag.String("listen", "127.0.0.1:0", "")
	up := flag.String("up", "", "upstream host:port")
	_ = flag.String("access", "", "access log: direct|buffered")
	_ = flag.Bool("metrics", false, "metrics")
	cpuprof := flag.String("cpuprofile", "", "")
	memprof := flag.String("memprofile", "", "")
	flag.Parse()
	if *memprof != "" {
		runtime.MemProfileRate = 4096
		defer func() {
			f, _ := os.Create(*memprof)
			_ = pprof.Lookup("allocs").WriteTo(f, 0)
			f.Close()
		}()
	}
	if *cpuprof != "" {
		f, _ := os.Create(*cpuprof)
		_ = pprof.StartCPUProfile(f)
		defer pprof.StopCPUProfile()
	}
	go func() {
		ch := make(chan os.Signal, 1)
		signal.Notify(ch, syscall.SIGUSR1)
		for range ch {
			var ms runtime.MemStats
			runtime.ReadMemStats(&ms)
			fmt.Fprintf(os.Stdout, "MALLOCS %d %d %d\n", ms.Mallocs, ms.TotalAlloc, ms.NumGC)
		}
	}()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	switch *mode {
	case "upstream":
		ln, err := net.Listen("tcp", *listen)
		if err != nil {
			panic(err)
		}
		fmt.Println(ln.Addr())
		h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.Header.Get("X-Direct") == "" && !strings.HasPrefix(r.Header.Get("Authorization"), "AWS4-HMAC-SHA256 ") {
				http.Error(w, "unsigned", http.StatusForbidden)
				return
			}
			w.Header().Set("Content-Length", strconv.Itoa(len(payload)))
			_, _ = w.Write(payload)
		})
		srv := &http.Server{Handler: h}
		go func() { <-ctx.Done(); srv.Close() }()
		_ = srv.Serve(ln)
	case "plain":
		// The floor: net/http on both sides, no signing, no other work.
		u, _ := url.Parse("http://" + *up)
		rp := httputil.NewSingleHostReverseProxy(u)
		rp.Transport = &http.Transport{MaxIdleConnsPerHost: 64, DisableCompression: true}
		rp.ErrorLog = nil
		ln, err := net.Listen("tcp", *listen)
		if err != nil {
			panic(err)
		}
		fmt.Println(ln.Addr())
		h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			r.Header.Set("Authorization", "AWS4-HMAC-SHA256 x")
			rp.ServeHTTP(w, r)
		})
		srv := &http.Server{Handler: h}
		go func() { <-ctx.Done(); srv.Close() }()
		_ = srv.Serve(ln)
	case "proxy":
		log := slog.New(slog.NewJSONHandler(os.Stderr, nil))
		p, _ := credentials.NewStatic("AKIDEXAMPLE", "secret", "")
		src := credentials.NewSource("test", p, credentials.SourceOptions{})
		u, _ := url.Parse("http://" + *up)
		opts := proxy.Options{
			Listen:  "127.0.0.1:0",
			Reverse: []proxy.Reverse{{Listen: *listen, Upstream: u, Source: src, Scope: signer.Scope{Service: "execute-api", Region: "us-east-1"}}},
			Signer:  signer.New(signer.Options{Logger: log}),
			Logger:  log,
		}
		setOpts(&opts, log)
		s, err := proxy.New(opts)
		if err != nil {
			panic(err)
		}
		if err := s.Listen(ctx); err != nil {
			panic(err)
		}
		fmt.Println(s.ReverseAddrs()[0])
		_ = s.Serve(ctx, time.Second)
	}
	_ = io.Discard
}
