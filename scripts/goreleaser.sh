#!/usr/bin/env bash
# Runs a pinned goreleaser, building it once into ./bin (gitignored).
#
# goreleaser is not a dependency of dg: it is compiled from the pinned module
# with `go install`, so the version is reproducible and the only network
# needed is the Go module proxy. The build is skipped when bin/goreleaser
# already reports the pinned version; compiling it takes a few minutes on a
# small machine, so every release target shares the same binary.
#
# Usage: scripts/goreleaser.sh [goreleaser args...]
#        scripts/goreleaser.sh --install-only
set -euo pipefail

GORELEASER_VERSION="${GORELEASER_VERSION:-v2.15.1}"
root="$(cd "$(dirname "$0")/.." && pwd)"
bin="$root/bin/goreleaser"

installed_version() {
	# `goreleaser --version` prints a banner with a "GitVersion:" line; for a
	# `go install` build it is the module version (e.g. v2.15.1).
	"$bin" --version 2>/dev/null | awk '/^GitVersion:/ {print $2; exit}'
}

want="${GORELEASER_VERSION#v}"
have=""
if [ -x "$bin" ]; then
	have="$(installed_version || true)"
	have="${have#v}"
fi
if [ "$have" != "$want" ]; then
	echo "goreleaser: building github.com/goreleaser/goreleaser/v2@${GORELEASER_VERSION} into bin/ (once; this takes a while)" >&2
	mkdir -p "$root/bin"
	# Build outside the dg module so dg's go.mod is never touched.
	(cd "$root/bin" && GOBIN="$root/bin" GOFLAGS=-buildvcs=false CGO_ENABLED=0 \
		go install "github.com/goreleaser/goreleaser/v2@${GORELEASER_VERSION}")
	have="$(installed_version || true)"
	have="${have#v}"
	if [ "$have" != "$want" ]; then
		echo "goreleaser: bin/goreleaser reports version '${have}', expected '${want}'" >&2
		exit 3
	fi
fi

if [ "${1:-}" = "--install-only" ]; then
	exit 0
fi
cd "$root"
# goreleaser reads the commit, its date and the tag from git, but gives up on
# all of them (commit "none", date 0001-01-01) when `git ls-remote --get-url`
# fails, as it does in a clone without a remote. Supply the project URL
# through the environment (never written to .git/config) in that case.
if [ -z "$(git remote 2>/dev/null)" ] && [ -z "${GIT_CONFIG_COUNT:-}" ]; then
	export GIT_CONFIG_COUNT=1
	export GIT_CONFIG_KEY_0=remote.origin.url
	export GIT_CONFIG_VALUE_0="${DG_GIT_URL:-https://github.com/decisiongraph/dg.git}"
fi
exec "$bin" "$@"
