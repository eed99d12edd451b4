package main

import (
	"context"
	"fmt"
	"io"
	"runtime"
	"runtime/debug"
	"strings"
)

// version and commit are set at build time by builds that have no VCS
// information to stamp, such as a Docker build without .git:
//
//	-ldflags "-X main.version=v1.2.3 -X main.commit=0123abc"
//
// Empty means the build info decides: `go install ...@v1.2.3` records the
// module version, and `go build` in a git checkout the revision.
var (
	version = ""
	commit  = ""
)

// buildInfo is what `signet version` reports.
type buildInfo struct {
	Version  string // v1.2.3, a pseudo-version, or "devel"
	Commit   string // VCS revision; empty when unknown
	Modified bool   // built from a working tree with uncommitted changes
	Time     string // commit time (RFC 3339); empty when unknown
	Go       string // toolchain, like go1.26.8
	Platform string // GOOS/GOARCH
	CGO      string // "1" or "0": PKCS#11 needs a cgo build; empty when unknown
}

// readBuildInfo merges the -X overrides (setVersion, setCommit) over the
// binary's build info bi, which is nil when the binary has none.
func readBuildInfo(bi *debug.BuildInfo, setVersion, setCommit string) buildInfo {
	out := buildInfo{Version: setVersion, Commit: setCommit, Go: runtime.Version(), Platform: runtime.GOOS + "/" + runtime.GOARCH}
	if bi != nil {
		out.Go = bi.GoVersion
		if out.Version == "" && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
			out.Version = bi.Main.Version
		}
		for _, s := range bi.Settings {
			switch s.Key {
			case "vcs.revision":
				if out.Commit == "" {
					out.Commit = s.Value
				}
			case "vcs.modified":
				// Only trusted with the revision it describes, not with a
				// commit given by -X.
				out.Modified = s.Value == "true" && setCommit == ""
			case "vcs.time":
				if setCommit == "" {
					out.Time = s.Value
				}
			case "CGO_ENABLED":
				out.CGO = s.Value
			case "GOOS", "GOARCH":
				// runtime already says where it runs, which is where it
				// was built for.
			}
		}
	}
	if out.Version == "" {
		out.Version = "devel"
	}
	return out
}

// currentBuild is this binary's build info.
func currentBuild() buildInfo {
	bi, _ := debug.ReadBuildInfo()
	return readBuildInfo(bi, version, commit)
}

// versionString is the one-word version for logs.
func versionString() string { return currentBuild().Version }

func runVersion(_ context.Context, c *cli, args []string) error {
	if len(args) > 0 {
		if args[0] == "-h" || args[0] == "--help" {
			return usageError{fmt.Errorf("usage: signet version")}
		}
		return usageError{fmt.Errorf("version takes no arguments")}
	}
	return writeVersion(c, currentBuild())
}

func writeVersion(c *cli, bi buildInfo) error {
	var b strings.Builder
	fmt.Fprintf(&b, "signet %s\n", bi.Version)
	// Fixed columns rather than a tabwriter: scripts grep these lines.
	line := func(k, v string) { fmt.Fprintf(&b, "  %-10s %s\n", k, v) }
	if bi.Commit != "" {
		rev := bi.Commit
		if bi.Modified {
			rev += " (modified)"
		}
		line("commit", rev)
	}
	if bi.Time != "" {
		line("committed", bi.Time)
	}
	line("go", bi.Go+" "+bi.Platform)
	switch bi.CGO {
	case "1":
		line("pkcs11", "yes (cgo)")
	case "0":
		line("pkcs11", "no (built without cgo)")
	}
	_, err := io.WriteString(c.stdout, b.String())
	return err
}
