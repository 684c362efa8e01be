# syntax=docker/dockerfile:1
#
# contactrelay's container image: a static consumer binary on distroless,
# running as a non-root user.
#
#   docker build -t contactrelay:dev \
#     --build-arg VERSION=$(git describe --tags --always --dirty) \
#     --build-arg COMMIT=$(git rev-parse HEAD) .
#   docker run --rm contactrelay:dev version
#
# The build context has no .git (see .dockerignore), so the version and
# commit come from the build arguments, linked into main.buildVersion and
# main.commit; without them 'consumer version' prints "(devel)".

ARG GO_VERSION=1.26

FROM --platform=$BUILDPLATFORM golang:${GO_VERSION}-bookworm AS build
ARG TARGETOS
ARG TARGETARCH
ARG VERSION=""
ARG COMMIT=""
WORKDIR /src
ENV CGO_ENABLED=0 GOFLAGS=-buildvcs=false

# Dependencies first, so that a source change does not download them again.
COPY go.mod go.sum ./
RUN --mount=type=cache,target=/go/pkg/mod \
    go mod download

COPY . .
RUN --mount=type=cache,target=/go/pkg/mod \
    --mount=type=cache,target=/root/.cache/go-build \
    GOOS=${TARGETOS} GOARCH=${TARGETARCH} \
    go build -trimpath \
      -ldflags "-s -w -X main.buildVersion=${VERSION} -X main.commit=${COMMIT}" \
      -o /out/consumer ./cmd/consumer

FROM gcr.io/distroless/static-debian12:nonroot
ARG VERSION=""
ARG COMMIT=""
LABEL org.opencontainers.image.title="contactrelay" \
      org.opencontainers.image.description="Consumes contact.create commands from NATS JetStream and creates contacts at payment providers" \
      org.opencontainers.image.source="https://github.com/contactrelay/contactrelay" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${COMMIT}"
COPY --from=build /out/consumer /consumer
# Numeric, so that Kubernetes' runAsNonRoot can verify it (65532 is
# distroless' "nonroot" user).
USER 65532:65532
WORKDIR /home/nonroot
# HTTP_ADDR: /healthz, /readyz and /metrics.
EXPOSE 8080
ENTRYPOINT ["/consumer"]
CMD ["run"]
