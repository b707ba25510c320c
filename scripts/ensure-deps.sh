#!/usr/bin/env bash
# Installs the system packages dg's tests and quick start need, when they are
# missing: PostgreSQL server binaries (and, with --browser, Chromium).
# As root it runs apt-get itself; with password-less sudo it uses sudo;
# otherwise it stops and prints the exact command to run.
set -euo pipefail

want_browser=0
for arg in "$@"; do
  case "$arg" in
    --browser) want_browser=1 ;;
    *) echo "ensure-deps: unknown argument $arg" >&2; exit 2 ;;
  esac
done

missing=()
have_pg() {
  command -v initdb >/dev/null 2>&1 && return 0
  compgen -G '/usr/lib/postgresql/*/bin/initdb' >/dev/null 2>&1
}
have_pg || missing+=(postgresql)
command -v pg_dump >/dev/null 2>&1 || compgen -G '/usr/lib/postgresql/*/bin/pg_dump' >/dev/null 2>&1 || missing+=(postgresql-client)
if [ "$want_browser" = 1 ]; then
  command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1 || missing+=(chromium)
fi

[ ${#missing[@]} -eq 0 ] && exit 0

cmd="apt-get install -y ${missing[*]}"
if [ "$(id -u)" = 0 ]; then
  echo "ensure-deps: installing ${missing[*]}" >&2
  DEBIAN_FRONTEND=noninteractive apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
  echo "ensure-deps: installing ${missing[*]} with sudo" >&2
  sudo DEBIAN_FRONTEND=noninteractive apt-get update -qq
  sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
else
  echo "ensure-deps: missing ${missing[*]}; install with:" >&2
  echo "  sudo apt-get update && sudo $cmd" >&2
  exit 1
fi
