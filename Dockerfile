# syntax=docker/dockerfile:1
#
# docker build --build-arg VERSION="$(git describe --tags --always)" \
#              --build-arg COMMIT="$(git rev-parse HEAD)" -t signet .
# docker run --rm -v signet-state:/var/lib/signet \
#            -v "$PWD/signet.yaml:/etc/signet/signet.yaml:ro" signet serve -c /etc/signet/signet.yaml
#
# Both listeners bind loopback by default (proxy 127.0.0.1:8080, admin
# 127.0.0.1:8081): share the container's network namespace with the app
# (a Kubernetes sidecar, compose's network_mode: service:signet), or set
# listen: 0.0.0.0:8080 with proxy_auth.file. deploy/ has examples.
#
# scripts/check-dockerfile.sh checks this file without Docker: the build
# command is the README's, byte for byte, and what it copies exists.

# Debian 12 on both sides: the binary is built with cgo (PKCS#11 modules
# are C libraries signet loads with dlopen) against the glibc it runs on.
FROM golang:1.27.3-bookworm AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
ARG VERSION=""
ARG COMMIT=""
RUN CGO_ENABLED=1 go build -trimpath -ldflags "-X main.version=$VERSION -X main.commit=$COMMIT" -o signet ./cmd/signet
# The state directory, private to the runtime user: the local CA's key
# lives there, and signet refuses a directory others can enter. It is
# copied as the content of its parent, since COPY does not keep the mode
# of the directory it is given.
RUN install -d -m 0700 -o 65532 -g 65532 /out/var/lib/signet

# glibc, CA roots and tzdata, no shell, the nonroot user (65532). A
# PKCS#11 module and the libraries it needs are not in it: mount them
# (for SoftHSM, a TPM or an HSM vendor's module) or build FROM this image.
FROM gcr.io/distroless/base-debian12:nonroot
COPY --from=build /src/signet /signet
COPY --from=build /out/var/lib/ /var/lib/
# state_dir is $XDG_STATE_HOME/signet unless the config sets it.
ENV XDG_STATE_HOME=/var/lib
VOLUME ["/var/lib/signet"]
# proxy (listen) and admin (admin.listen)
EXPOSE 8080 8081
USER nonroot:nonroot
# Asks the admin listener of the config in the environment (SIGNET_*),
# 127.0.0.1:8081 by default; a config file that moves it needs its own
# health check: signet health -c FILE.
HEALTHCHECK --interval=30s --timeout=5s --start-period=10s --retries=3 CMD ["/signet", "health"]
ENTRYPOINT ["/signet"]
CMD ["serve"]
