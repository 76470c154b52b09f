# syntax=docker/dockerfile:1
# One image per program, named as the Helm chart expects:
#
#   docker build --build-arg CMD=pisa-proxy      -t ghcr.io/database-mesh/pisa-proxy:v0.1.0 .
#   docker build --build-arg CMD=pisa-controller -t ghcr.io/database-mesh/pisa-controller:v0.1.0 .
#   docker build --build-arg CMD=pisa-daemon     -t ghcr.io/database-mesh/pisa-daemon:v0.1.0 .
#
# (`make images` runs the three.) The binaries are static (no cgo) and the runtime image holds
# nothing else: no shell, no package manager. They run as UID 65532; pisa-daemon is run as root
# by its DaemonSet (it needs NET_ADMIN, SYS_ADMIN and BPF).
ARG GO_VERSION=1.26

FROM golang:${GO_VERSION} AS build
ARG CMD=pisa-proxy
ARG VERSION=dev
ARG GIT_COMMIT=unknown
WORKDIR /src
COPY go.mod go.sum ./
RUN --mount=type=cache,target=/go/pkg/mod go mod download
COPY api ./api
COPY cmd ./cmd
COPY internal ./internal
RUN --mount=type=cache,target=/go/pkg/mod --mount=type=cache,target=/root/.cache/go-build \
	CGO_ENABLED=0 go build -trimpath \
	-ldflags "-s -w -X github.com/database-mesh/pisanix-go/internal/version.Version=${VERSION} -X github.com/database-mesh/pisanix-go/internal/version.GitCommit=${GIT_COMMIT}" \
	-o /out/program ./cmd/${CMD}

FROM gcr.io/distroless/static-debian12:nonroot
ARG CMD=pisa-proxy
LABEL org.opencontainers.image.source="https://github.com/database-mesh/pisanix-go" \
	org.opencontainers.image.title="${CMD}"
COPY --from=build /out/program /usr/local/bin/program
USER 65532:65532
ENTRYPOINT ["/usr/local/bin/program"]
