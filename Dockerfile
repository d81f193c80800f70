# syntax=docker/dockerfile:1.4
# The manager image: ghcr.io/nestcapi/cluster-api-provider-nest (config/manager). Build with BuildKit
# (`make docker-build`, or `docker buildx build --platform linux/amd64,linux/arm64 ...`): it sets
# TARGETOS and TARGETARCH, and the Go toolchain cross-compiles on the build platform.

FROM --platform=$BUILDPLATFORM golang:1.26 AS builder
WORKDIR /workspace

ARG TARGETOS=linux
ARG TARGETARCH
ARG ldflags="-s -w"
# docker build --build-arg goproxy=$(go env GOPROXY) uses a local or corporate module proxy.
ARG goproxy=https://proxy.golang.org
ENV GOPROXY=$goproxy

# Modules first, so that a source change does not download them again.
COPY go.mod go.sum ./
RUN --mount=type=cache,id=go-mod,target=/go/pkg/mod \
    go mod download

# Only the manager's sources: tests, tools and the scheduler plugin (its own module) stay out.
COPY main.go ./
COPY api/ api/
COPY controllers/ controllers/
COPY internal/ internal/
COPY webhooks/ webhooks/

RUN --mount=type=cache,id=go-build,target=/root/.cache/go-build \
    --mount=type=cache,id=go-mod,target=/go/pkg/mod \
    CGO_ENABLED=0 GOOS=${TARGETOS} GOARCH=${TARGETARCH} \
    go build -trimpath -ldflags "${ldflags}" -o manager .

FROM gcr.io/distroless/static:nonroot
WORKDIR /
COPY --from=builder /workspace/manager /manager
# The numeric uid of distroless's nonroot user: Kubernetes checks runAsNonRoot against a number.
USER 65532:65532
ENTRYPOINT ["/manager"]
