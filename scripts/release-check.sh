#!/usr/bin/env bash
# `make release-check`: validates .goreleaser.yaml with the pinned goreleaser,
# then compiles dg for one target of every OS the release ships (darwin and
# windows besides this linux host), so code that only builds on Linux is
# found before `make release-snapshot`.
#
# A cross-build failure fails the check (exit 1); RELEASE_CHECK_STRICT=0
# turns it into a warning.
set -euo pipefail

root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"

"$root/scripts/goreleaser.sh" check

broken=()
for target in linux/amd64 darwin/arm64 windows/amd64; do
	if out="$(CGO_ENABLED=0 GOOS="${target%/*}" GOARCH="${target#*/}" go build -trimpath -o /dev/null ./cmd/dg 2>&1)"; then
		echo "  • dg builds for $target"
	else
		broken+=("$target")
		echo "  ⨯ dg does not build for $target:"
		printf '%s\n' "$out" | head -25 | sed 's/^/      /'
	fi
done

if [ ${#broken[@]} -gt 0 ]; then
	msg="release-check: dg does not build for ${broken[*]}; make release-snapshot will fail until it does"
	if [ "${RELEASE_CHECK_STRICT:-1}" = 1 ]; then
		echo "$msg" >&2
		exit 1
	fi
	echo "WARNING: $msg (RELEASE_CHECK_STRICT=0 made this a warning)" >&2
fi
