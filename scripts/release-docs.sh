#!/usr/bin/env bash
# Generates the man pages and shell completion scripts that the release
# archives and packages carry, into bin/docs/{man,completions} (gitignored).
# goreleaser runs it as a before hook (.goreleaser.yaml); `make man` and
# `make completions` run it too.
#
# Usage: scripts/release-docs.sh [version] [source-date-epoch]
#   version            written into the man page footer (default: git describe)
#   source-date-epoch  date of the pages, seconds since 1970 (default: the
#                      commit time of HEAD), so two builds of one commit match
set -euo pipefail

root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"

version="${1:-$(git describe --tags --always --dirty 2>/dev/null || echo dev)}"
epoch="${2:-${SOURCE_DATE_EPOCH:-$(git log -1 --format=%ct 2>/dev/null || date +%s)}}"
out="$root/bin/docs"

rm -rf "$out/man" "$out/completions"
mkdir -p "$out/man" "$out/completions"

# Build once, run twice: the binary is a throwaway in bin/docs.
CGO_ENABLED=0 go build -trimpath -ldflags "-X main.version=${version}" -o "$out/dg-docs" ./cmd/dg
SOURCE_DATE_EPOCH="$epoch" "$out/dg-docs" docs man --dir "$out/man"
"$out/dg-docs" docs completions --dir "$out/completions"
rm -f "$out/dg-docs"

# Packages install compressed pages; -n keeps the gzip header free of the
# name and time so the output is reproducible.
gzip -9 -n "$out"/man/*.1
