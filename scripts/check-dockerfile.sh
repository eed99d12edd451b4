#!/usr/bin/env bash
# Checks the Dockerfile without Docker, which cannot run where the tests
# do:
#   - its `go build` line is the README's canonical build command, byte
#     for byte, with cgo on;
#   - everything it COPYs from the build context exists and is not
#     excluded by .dockerignore, nor is any package or embedded file that
#     `go build ./cmd/signet` reads;
#   - base images are pinned (a tag other than latest, or a digest), and
#     the Go image is at least go.mod's Go version, on the Debian release
#     of the distroless runtime image (cgo links against its glibc);
#   - the final stage runs as a non-root USER, has a HEALTHCHECK, a VOLUME
#     for the state directory, and EXPOSEs the default proxy and admin
#     ports of configs/default.yaml;
#   - VERSION and COMMIT build args reach the build command.
# With --build it also runs the README's build command (outside Docker,
# as CI does) and checks what `signet version` reports.
#
# Usage: scripts/check-dockerfile.sh [--build]
# Exits non-zero with one line per problem.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"

build=false
case "${1:-}" in
  --build) build=true ;;
  "") ;;
  *) echo "usage: $0 [--build]" >&2; exit 2 ;;
esac

problems=0
problem() {
  echo "check-dockerfile: $*" >&2
  problems=$((problems + 1))
}

for f in Dockerfile .dockerignore README.md go.mod configs/default.yaml; do
  [[ -f $f ]] || { echo "check-dockerfile: $f is missing" >&2; exit 1; }
done

# Instructions of the Dockerfile, one per line: comments and blank lines
# dropped, backslash continuations joined.
instructions=$(awk '
  /^[[:space:]]*#/ && cont == "" { next }
  /^[[:space:]]*$/ && cont == "" { next }
  {
    line = $0
    if (line ~ /\\[[:space:]]*$/) { sub(/\\[[:space:]]*$/, "", line); cont = cont line; next }
    print cont line; cont = ""
  }
  END { if (cont != "") print cont }
' Dockerfile)

# keyword and arguments, with the keyword upper-cased.
keyword() { awk '{print toupper($1)}' <<<"$1"; }
args_of() { sed -E 's/^[[:space:]]*[A-Za-z]+[[:space:]]+//' <<<"$1"; }

# --- The build command --------------------------------------------------

readme_build=$(grep -E '^[[:space:]]*([A-Z_]+=[^ ]*[[:space:]]+)*go build .*\./cmd/signet' README.md || true)
if [[ -z $readme_build ]]; then
  problem "README.md has no 'go build ... ./cmd/signet' line (the canonical build command)"
elif (( $(wc -l <<<"$readme_build") > 1 )); then
  problem "README.md has more than one 'go build ... ./cmd/signet' line; keep one canonical build command:"$'\n'"$readme_build"
fi
readme_build=$(head -n1 <<<"$readme_build" | sed -E 's/^[[:space:]]+//; s/[[:space:]]+$//')

docker_build=$(grep -E '^RUN[[:space:]].*go build' <<<"$instructions" || true)
if [[ -z $docker_build ]]; then
  problem "Dockerfile has no RUN line with 'go build'"
elif (( $(wc -l <<<"$docker_build") > 1 )); then
  problem "Dockerfile has more than one RUN line with 'go build'"
fi
# Drop RUN and its own flags (--mount=..., --network=...).
docker_build=$(head -n1 <<<"$docker_build" | sed -E 's/^RUN[[:space:]]+//; :a; s/^--[a-z-]+(=[^[:space:]]*)?[[:space:]]+//; ta; s/[[:space:]]+$//')

# Whitespace runs compare equal, so that a RUN split over lines with
# backslashes still matches.
squeeze() { tr -s ' \t' '  ' <<<"$1"; }
if [[ -n $readme_build && -n $docker_build && $(squeeze "$readme_build") != "$(squeeze "$docker_build")" ]]; then
  problem "the Dockerfile's build command differs from the README's:"$'\n'"  README:     $readme_build"$'\n'"  Dockerfile: $docker_build"
fi
if [[ -n $readme_build && $readme_build != *CGO_ENABLED=1* ]]; then
  problem "the build command does not set CGO_ENABLED=1 (PKCS#11 needs cgo): $readme_build"
fi
for arg in VERSION COMMIT; do
  if ! grep -qE "^ARG[[:space:]]+$arg(=|[[:space:]]|$)" <<<"$instructions"; then
    problem "Dockerfile declares no ARG $arg"
  fi
  if [[ $docker_build != *"\$$arg"* && $docker_build != *"\${$arg}"* ]]; then
    problem "the build command does not use \$$arg"
  fi
done

# --- Stages, images, the final stage ------------------------------------

stages=()        # stage names, for telling COPY --from=stage from images
images=()        # FROM images
final_start=0    # line of the last FROM in $instructions
n=0
while IFS= read -r line; do
  n=$((n + 1))
  [[ $(keyword "$line") == FROM ]] || continue
  final_start=$n
  read -r -a words <<<"$(args_of "$line")"
  i=0
  while [[ ${words[$i]:-} == --* ]]; do i=$((i + 1)); done   # --platform=...
  image=${words[$i]:-}
  if [[ ${words[$((i + 1))]:-} =~ ^[Aa][Ss]$ ]]; then
    stages+=("${words[$((i + 2))]:-}")
  fi
  images+=("$image")
done <<<"$instructions"

if (( ${#images[@]} < 2 )); then
  problem "Dockerfile is not multi-stage (a build stage and a minimal final stage)"
fi
is_stage() {
  local s
  for s in "${stages[@]}"; do [[ $s == "$1" ]] && return 0; done
  return 1
}
for image in "${images[@]}"; do
  is_stage "$image" && continue
  [[ $image == scratch ]] && continue
  if [[ $image == *'$'* ]]; then
    problem "FROM $image: use a literal image, so that this check and readers see what is pinned"
  elif [[ $image == *@sha256:* ]]; then
    :
  elif [[ ${image##*/} != *:* ]]; then
    problem "FROM $image is not pinned: add a tag (or a digest)"
  elif [[ ${image##*:} == latest ]]; then
    problem "FROM $image is not pinned: 'latest' moves"
  fi
done

# The Go image must be able to build go.mod's Go version without fetching
# another toolchain, on the runtime image's Debian release.
go_mod_version=$(awk '$1 == "go" {print $2; exit}' go.mod)
go_image=""
for image in "${images[@]}"; do
  if [[ $image =~ ^(docker\.io/)?(library/)?golang: ]]; then go_image=$image; fi
done
final_image=${images[${#images[@]}-1]:-}
if [[ -z $go_image ]]; then
  problem "no golang build image found"
else
  tag=${go_image#*:}
  tag=${tag%%@*}
  image_go=${tag%%-*}
  if [[ ! $image_go =~ ^[0-9]+\.[0-9]+(\.[0-9]+)?$ ]]; then
    problem "FROM $go_image: tag has no Go version"
  elif [[ $(printf '%s\n%s\n' "$go_mod_version" "$image_go" | sort -V | head -n1) != "$go_mod_version" ]]; then
    problem "FROM $go_image: Go $image_go is older than go.mod's go $go_mod_version"
  fi
  if [[ $final_image == *debian12* && $tag != *bookworm* ]]; then
    problem "FROM $go_image: build on bookworm for a debian12 runtime image, so cgo links against the glibc it runs with"
  fi
fi
if [[ $final_image =~ (alpine|busybox|scratch|static) ]]; then
  problem "final image $final_image: a cgo build needs glibc and dlopen (distroless/base or debian-slim)"
fi

final=$(tail -n +"$final_start" <<<"$instructions")
user=$(grep -E '^USER[[:space:]]' <<<"$final" | tail -n1 | awk '{print $2}' || true)
if [[ -z $user ]]; then
  problem "the final stage sets no USER: it would run as root"
elif [[ ${user%%:*} =~ ^(root|0)$ ]]; then
  problem "the final stage runs as USER $user: use a non-root user"
fi
healthcheck=$(grep -E '^HEALTHCHECK[[:space:]]' <<<"$final" | tail -n1 || true)
if [[ -z $healthcheck ]]; then
  problem "the final stage has no HEALTHCHECK"
elif [[ $healthcheck =~ HEALTHCHECK[[:space:]]+NONE ]]; then
  problem "the final stage turns HEALTHCHECK off"
fi

# The state directory: $XDG_STATE_HOME/signet (or SIGNET_STATE_DIR) must
# be a VOLUME.
env_value() {
  grep -E "^ENV[[:space:]]+$1[=[:space:]]" <<<"$final" | tail -n1 | sed -E "s/^ENV[[:space:]]+$1[=[:space:]]+//; s/^\"//; s/\"$//" || true
}
state_dir=$(env_value SIGNET_STATE_DIR)
if [[ -z $state_dir ]]; then
  xdg=$(env_value XDG_STATE_HOME)
  [[ -n $xdg ]] && state_dir=$xdg/signet
fi
volumes=$(grep -E '^VOLUME[[:space:]]' <<<"$final" | sed -E 's/^VOLUME[[:space:]]+//; s/[][",]/ /g' || true)
if [[ -z $state_dir ]]; then
  problem "the final stage sets neither SIGNET_STATE_DIR nor XDG_STATE_HOME: state_dir would be under the (read-only) home directory"
elif ! grep -qwF -- "$state_dir" <<<"$volumes"; then
  problem "state_dir $state_dir is not a VOLUME (VOLUME lines: ${volumes:-none})"
fi

# The default ports of configs/default.yaml.
proxy_port=$(awk '/^listen:/ {print $2; exit}' configs/default.yaml | sed -E 's/.*:([0-9]+)$/\1/')
admin_port=$(awk '/^admin:/ {a = 1; next} a && /^[^[:space:]#]/ {a = 0} a && $1 == "listen:" {print $2; exit}' configs/default.yaml | sed -E 's/.*:([0-9]+)$/\1/')
exposed=$(grep -E '^EXPOSE[[:space:]]' <<<"$final" | sed -E 's/^EXPOSE[[:space:]]+//; s#/tcp##g' | tr '\n' ' ' || true)
for p in "$proxy_port" "$admin_port"; do
  if [[ -z $p ]]; then
    problem "cannot read the default proxy and admin ports from configs/default.yaml"
  elif [[ " $exposed " != *" $p "* ]]; then
    problem "port $p (configs/default.yaml) is not EXPOSEd (EXPOSE: ${exposed:-none})"
  fi
done

# --- What the build context holds ---------------------------------------

# .dockerignore patterns, as Docker reads them: leading / dropped, last
# match wins, ! re-includes. Bash's pattern matching lets * cross /, which
# is looser than Docker's, so a pattern that excludes too much here may
# not in Docker; never the other way round.
patterns=()
while IFS= read -r p || [[ -n $p ]]; do
  p=${p%%#*}
  p=$(sed -E 's/^[[:space:]]+//; s/[[:space:]]+$//' <<<"$p")
  [[ -z $p ]] && continue
  patterns+=("$p")
done <.dockerignore

# ignored PATH: whether PATH (relative to the context) is left out.
ignored() {
  local path=$1 result=1 p neg pat prefix rest
  for p in "${patterns[@]}"; do
    neg=false
    pat=$p
    if [[ $pat == '!'* ]]; then neg=true; pat=${pat#!}; fi
    pat=${pat#/}
    pat=${pat#./}
    pat=${pat//\*\*\//}  # **/x matches x at any depth: see the prefixes below
    # A pattern matches the path or any directory above it.
    prefix=""
    rest=$path
    while :; do
      prefix=${prefix:+$prefix/}${rest%%/*}
      # shellcheck disable=SC2053 # $pat is a glob on purpose
      if [[ $prefix == $pat || ( $p == *'**/'* && ${prefix##*/} == $pat ) ]]; then
        if $neg; then result=1; else result=0; fi
      fi
      [[ $rest == */* ]] || break
      rest=${rest#*/}
    done
  done
  return $result
}

while IFS= read -r line; do
  [[ $(keyword "$line") =~ ^(COPY|ADD)$ ]] || continue
  a=$(args_of "$line")
  [[ $a =~ (^|[[:space:]])--from= ]] && continue
  # Drop flags; the last word is the destination.
  a=$(sed -E ':a; s/^--[a-z-]+(=[^[:space:]]*)?[[:space:]]+//; ta' <<<"$a")
  if [[ $a == '['* ]]; then
    mapfile -t words < <(sed -E 's/^\[//; s/\]$//' <<<"$a" | tr ',' '\n' | sed -E 's/^[[:space:]]*"//; s/"[[:space:]]*$//')
  else
    read -r -a words <<<"$a"
  fi
  (( ${#words[@]} >= 2 )) || { problem "$line: no source"; continue; }
  for src in "${words[@]:0:${#words[@]}-1}"; do
    [[ $src == . || $src == ./ ]] && continue
    if ! compgen -G "$src" >/dev/null; then
      problem "$line: $src does not exist"
    elif ignored "$src"; then
      problem "$line: $src is excluded by .dockerignore"
    fi
  done
done <<<"$instructions"

# Every package and embedded file of the build, relative to the context.
if command -v go >/dev/null; then
  mod=$(go list -m)
  if deps=$(go list -deps -f '{{if and (not .Standard) .Module}}{{if eq .Module.Path "'"$mod"'"}}{{.Dir}}{{range .GoFiles}} {{.}}{{end}}{{range .CgoFiles}} {{.}}{{end}}{{range .EmbedFiles}} {{.}}{{end}}{{end}}{{end}}' ./cmd/signet 2>&1); then
    while read -r dir files; do
      [[ -n $dir ]] || continue
      rel=${dir#"$root"/}
      for f in $files; do
        if ignored "$rel/$f"; then
          problem "$rel/$f, which go build ./cmd/signet reads, is excluded by .dockerignore"
        fi
      done
    done <<<"$deps"
  else
    problem "go list ./cmd/signet failed: $deps"
  fi
  for f in go.mod go.sum; do
    ignored "$f" && problem "$f is excluded by .dockerignore"
  done
else
  problem "go is not installed: cannot list what the build reads"
fi

# --- The build itself, outside Docker ------------------------------------

if $build && (( problems == 0 )); then
  out=$(mktemp -d)
  trap 'rm -rf "$out"' EXIT
  # The README's command as it stands, but writing into $out rather than
  # over a ./signet someone may be using.
  want_version=check-dockerfile
  want_commit=$(git rev-parse HEAD 2>/dev/null || echo 0000000)
  cmd=${readme_build/ -o signet / -o $out/signet }
  if [[ $cmd == "$readme_build" ]]; then
    problem "the build command has no ' -o signet ': cannot point its output elsewhere"
  elif ! (cd "$root" && VERSION=$want_version COMMIT=$want_commit bash -c "set -euo pipefail; $cmd"); then
    problem "the build command failed: $readme_build"
  else
    v=$("$out/signet" version)
    for want in "signet $want_version" "commit     $want_commit" "pkcs11     yes (cgo)"; do
      if [[ $v != *"$want"* ]]; then
        problem "signet version does not report '$want':"$'\n'"$v"
      fi
    done
  fi
fi

if (( problems > 0 )); then
  echo "check-dockerfile: $problems problem(s)" >&2
  exit 1
fi
echo "check-dockerfile: ok"
