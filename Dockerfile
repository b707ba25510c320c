# syntax=docker/dockerfile:1
# dg release image: the static dg binary on distroless (no shell, no package
# manager), running as a non-root user, connecting to an external
# PostgreSQL 16 (DATABASE_URL). See docs/install.md and deploy/compose.yaml.
#
#   docker build -t dg:local \
#     --build-arg VERSION=$(git describe --tags --always) \
#     --build-arg COMMIT=$(git rev-parse HEAD) \
#     --build-arg DATE=$(git log -1 --format=%cI) .
#
# Targets: the default (last) stage is the release image; `--target tools`
# adds dg to the PostgreSQL 16 image, for `dg backup` and `dg drill restore`,
# which need pg_dump / pg_restore.

ARG GO_VERSION=1.26

FROM golang:${GO_VERSION}-bookworm AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
ARG VERSION=dev
ARG COMMIT=none
ARG DATE=unknown
RUN CGO_ENABLED=0 go build -trimpath -buildvcs=false \
      -ldflags "-s -w -X main.version=${VERSION} -X main.commit=${COMMIT} -X main.date=${DATE}" \
      -o /out/dg ./cmd/dg \
 && /out/dg version \
 && mkdir -p /out/state/backups /out/state/drills

# dg plus the PostgreSQL 16 client and server tools, for scheduled backups
# and restore drills (deploy/compose.yaml, profile "tools").
FROM postgres:16-bookworm AS tools
COPY --from=build /out/dg /usr/local/bin/dg
COPY deploy/container.yaml /etc/dg/dg.yaml
COPY --from=build --chown=postgres:postgres /out/state /var/lib/dg
USER postgres
WORKDIR /var/lib/dg
ENTRYPOINT ["/usr/local/bin/dg"]
CMD ["backup", "-f", "/etc/dg/dg.yaml"]

# The release image.
FROM gcr.io/distroless/static-debian12:nonroot AS release
COPY --from=build /out/dg /usr/local/bin/dg
COPY deploy/container.yaml /etc/dg/dg.yaml
# 65532 is distroless's "nonroot" user.
COPY --from=build --chown=65532:65532 /out/state /var/lib/dg
USER 65532:65532
WORKDIR /var/lib/dg
VOLUME ["/var/lib/dg"]
EXPOSE 4100
ENTRYPOINT ["/usr/local/bin/dg", "up"]
CMD ["-f", "/etc/dg/dg.yaml"]
