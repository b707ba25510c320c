#!/usr/bin/env bash
# Inspects what `make release-snapshot` (goreleaser) left in dist/ and fails
# on anything a release must not ship without:
#   - every archive (linux/darwin/windows x amd64/arm64), the .deb, the .rpm
#     and checksums.txt, with every checksum matching;
#   - the linux/amd64 archive's contents (binary, README, LICENSE, manifests,
#     completions, man pages, systemd units);
#   - the .deb's file list and control data (dpkg-deb -c / -I): binary, units,
#     /etc/dg/dg.yaml marked as a conffile, /var/lib/dg owned by dg, the four
#     maintainer scripts; then the .deb unpacked into a scratch root
#     (dpkg -x) with its files checked, its units run through
#     `systemd-analyze verify` (skipped with a message where systemd is not
#     installed), and its binary's `dg version -o json` checked for a
#     filled-in version, commit and date.
# Usage: scripts/check-packages.sh [dist-dir]
set -euo pipefail

root="$(cd "$(dirname "$0")/.." && pwd)"
dist="${1:-$root/dist}"
cd "$root"

failures=0
pass() { printf '  ok    %s\n' "$*"; }
fail() { printf '  FAIL  %s\n' "$*"; failures=$((failures + 1)); }
skip() { printf '  skip  %s\n' "$*"; }
need() { # need <description> <command...>: pass if the command succeeds
	local what="$1"
	shift
	if "$@" >/dev/null 2>&1; then pass "$what"; else fail "$what"; fi
}

scratch="$(mktemp -d)"
trap 'rm -rf "$scratch"' EXIT

[ -d "$dist" ] || { echo "check-packages: $dist does not exist; run make release-snapshot first" >&2; exit 2; }
for tool in dpkg-deb dpkg tar unzip sha256sum python3; do
	if ! command -v "$tool" >/dev/null 2>&1; then
		if [ "$tool" = unzip ] && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
			apt-get install -y -qq unzip >/dev/null 2>&1 || true
		fi
		command -v "$tool" >/dev/null 2>&1 || { echo "check-packages: $tool is required" >&2; exit 3; }
	fi
done

echo "== artefacts in $dist"
shopt -s nullglob
debs=("$dist"/*_amd64.deb)
rpms=("$dist"/*.x86_64.rpm)
if [ ${#debs[@]} -eq 1 ]; then pass "amd64 .deb: $(basename "${debs[0]}")"; else fail "exactly one amd64 .deb (found ${#debs[@]})"; fi
if [ ${#rpms[@]} -eq 1 ]; then pass "x86_64 .rpm: $(basename "${rpms[0]}")"; else fail "exactly one x86_64 .rpm (found ${#rpms[@]})"; fi
for a in arm64.deb aarch64.rpm; do
	f=("$dist"/*"$a")
	if [ ${#f[@]} -eq 1 ]; then pass "arm64 package: $(basename "${f[0]}")"; else fail "one *$a (found ${#f[@]})"; fi
done
for os in linux darwin windows; do
	ext=tar.gz
	[ "$os" = windows ] && ext=zip
	for arch in amd64 arm64; do
		f=("$dist"/dg_*_"${os}_${arch}.${ext}")
		if [ ${#f[@]} -eq 1 ]; then pass "archive $(basename "${f[0]}")"; else fail "archive dg_*_${os}_${arch}.${ext} (found ${#f[@]})"; fi
	done
done

echo "== checksums"
if [ -f "$dist/checksums.txt" ]; then
	for f in "$dist"/*.tar.gz "$dist"/*.zip "$dist"/*.deb "$dist"/*.rpm; do
		b="$(basename "$f")"
		if grep -q "  $b\$" "$dist/checksums.txt"; then :; else fail "checksums.txt lists $b"; fi
	done
	if (cd "$dist" && sha256sum --quiet -c checksums.txt); then
		pass "sha256sum -c checksums.txt ($(wc -l <"$dist/checksums.txt") files)"
	else
		fail "sha256sum -c checksums.txt"
	fi
else
	fail "checksums.txt exists"
fi

echo "== linux/amd64 archive"
tgz=("$dist"/dg_*_linux_amd64.tar.gz)
if [ ${#tgz[@]} -eq 1 ]; then
	list="$(tar -tzf "${tgz[0]}" 2>/dev/null)" || fail "tar -tzf $(basename "${tgz[0]}") reads the whole archive"
	for want in /dg /README.md /LICENSE /docs/install.md /manifests/small-server.yaml \
		/completions/dg.bash /completions/_dg /completions/dg.fish /completions/dg.ps1 \
		/manpages/dg.1.gz /systemd/dg.service /systemd/dg-backup.timer /systemd/dg-drill.timer; do
		if grep -q -- "^[^/]*${want}\$" <<<"$list"; then pass "archive has ${want#/}"; else fail "archive has ${want#/}"; fi
	done
fi
zip=("$dist"/dg_*_windows_amd64.zip)
if [ ${#zip[@]} -eq 1 ]; then
	if unzip -l "${zip[0]}" | grep -q '/dg\.exe$'; then pass "windows zip has dg.exe"; else fail "windows zip has dg.exe"; fi
fi

if [ ${#debs[@]} -eq 1 ]; then
	deb="${debs[0]}"
	echo "== dpkg-deb -c $(basename "$deb")"
	contents="$(dpkg-deb -c "$deb")"
	has() { # has <path> [owner/group] [mode-prefix]
		local line
		line="$(awk -v p="./$1" '$6 == p || $6 == p"/" {print; exit}' <<<"$contents")"
		if [ -z "$line" ]; then fail "deb contains /$1"; return; fi
		if [ -n "${2:-}" ] && [ "$(awk '{print $2}' <<<"$line")" != "$2" ]; then
			fail "/$1 owned by $2 (got $(awk '{print $2}' <<<"$line"))"
			return
		fi
		if [ -n "${3:-}" ] && [[ "$(awk '{print $1}' <<<"$line")" != "$3"* ]]; then
			fail "/$1 has mode $3 (got $(awk '{print $1}' <<<"$line"))"
			return
		fi
		pass "deb contains /$1 ${2:+($2 ${3:-})}"
	}
	has usr/bin/dg root/root -rwxr-xr-x
	for u in dg.service dg-backup.service dg-backup.timer dg-drill.service dg-drill.timer; do
		has "usr/lib/systemd/system/$u" root/root -rw-r--r--
	done
	has etc/dg root/dg drwxr-x---
	has etc/dg/dg.yaml root/dg -rw-r-----
	has etc/dg/dg.env root/dg -rw-r-----
	has var/lib/dg dg/dg drwxr-x---
	has var/backups/dg dg/dg drwxr-x---
	has usr/share/man/man1/dg.1.gz
	has usr/share/bash-completion/completions/dg
	has usr/share/zsh/vendor-completions/_dg
	has usr/share/fish/vendor_completions.d/dg.fish
	has usr/share/doc/dg/copyright

	echo "== dpkg-deb -I $(basename "$deb")"
	info="$(dpkg-deb -I "$deb")"
	for script in preinst postinst prerm postrm; do
		if grep -qE "^ +[0-9]+ bytes, +[0-9]+ lines +\*? *${script} " <<<"$info"; then pass "maintainer script $script"; else fail "maintainer script $script"; fi
	done
	if [ "$(dpkg-deb -f "$deb" Package)" = dg ]; then pass "Package: dg"; else fail "Package: dg"; fi
	if [ "$(dpkg-deb -f "$deb" Architecture)" = amd64 ]; then pass "Architecture: amd64"; else fail "Architecture: amd64"; fi
	conffiles="$(dpkg-deb -I "$deb" conffiles 2>/dev/null || true)"
	for c in /etc/dg/dg.yaml /etc/dg/dg.env; do
		if grep -qx "$c" <<<"$conffiles"; then pass "conffile $c"; else fail "conffile $c"; fi
	done
	mkdir -p "$scratch/control"
	dpkg-deb -e "$deb" "$scratch/control"
	for script in preinst postinst prerm postrm; do
		need "$script parses (sh -n)" sh -n "$scratch/control/$script"
	done
	if grep -q 'useradd --system' "$scratch/control/preinst"; then pass "preinst creates the dg system user"; else fail "preinst creates the dg system user"; fi

	echo "== dpkg -x into a scratch root"
	fsroot="$scratch/root"
	dpkg -x "$deb" "$fsroot"
	need "binary is executable" test -x "$fsroot/usr/bin/dg"
	need "/etc/dg/dg.yaml is manifests/small-server.yaml" cmp "$fsroot/etc/dg/dg.yaml" manifests/small-server.yaml
	need "/var/lib/dg is a directory" test -d "$fsroot/var/lib/dg"
	for u in dg.service dg-backup.service dg-backup.timer dg-drill.service dg-drill.timer; do
		need "$u matches packaging/systemd/$u" cmp "$fsroot/usr/lib/systemd/system/$u" "packaging/systemd/$u"
	done
	unit="$fsroot/usr/lib/systemd/system/dg.service"
	for directive in 'ExecStart=/usr/bin/dg up -f /etc/dg/dg.yaml' 'Restart=on-failure' 'User=dg' \
		'ProtectSystem=strict' 'ReadWritePaths=/var/lib/dg' 'NoNewPrivileges=yes'; do
		if grep -qx "$directive" "$unit"; then pass "dg.service: $directive"; else fail "dg.service: $directive"; fi
	done
	if grep -qx 'ExecStart=/usr/bin/dg backup -f /etc/dg/dg.yaml' "$fsroot/usr/lib/systemd/system/dg-backup.service"; then pass "dg-backup.service runs dg backup"; else fail "dg-backup.service runs dg backup"; fi
	if grep -qx 'ExecStart=/usr/bin/dg drill restore -f /etc/dg/dg.yaml' "$fsroot/usr/lib/systemd/system/dg-drill.service"; then pass "dg-drill.service runs dg drill restore"; else fail "dg-drill.service runs dg drill restore"; fi

	echo "== systemd-analyze verify"
	if ! command -v systemd-analyze >/dev/null 2>&1 && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1 && [ ! -e "$root/bin/.systemd-install-tried" ]; then
		# One attempt per checkout: the marker stops retrying on every run.
		mkdir -p "$root/bin" && touch "$root/bin/.systemd-install-tried"
		echo "  installing systemd for systemd-analyze (once)"
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq systemd >/dev/null 2>&1 || true
	fi
	if command -v systemd-analyze >/dev/null 2>&1; then
		# verify wants ExecStart's binary to exist: point the copies at the
		# extracted one; every other line is verified as shipped. It exits 0
		# on mere warnings, so any output counts as a failure.
		mkdir -p "$scratch/units"
		for u in "$fsroot"/usr/lib/systemd/system/*; do
			sed "s#=/usr/bin/dg #=$fsroot/usr/bin/dg #" "$u" >"$scratch/units/$(basename "$u")"
		done
		out="$(cd "$scratch/units" && systemd-analyze verify --man=no ./*.service ./*.timer 2>&1)" && rc=0 || rc=$?
		if [ "$rc" = 0 ] && [ -z "$out" ]; then
			pass "systemd-analyze verify: 5 units clean"
		else
			fail "systemd-analyze verify (rc=$rc):"
			sed 's/^/        /' <<<"$out"
		fi
	else
		skip "systemd-analyze verify: systemd is not installed here and could not be installed"
	fi

	echo "== dg version -o json (extracted linux/amd64 binary)"
	if [ "$(uname -m)" = x86_64 ]; then
		json="$("$fsroot/usr/bin/dg" version -o json)"
		echo "$json" | sed 's/^/        /'
		if python3 - "$json" "$(git rev-parse HEAD 2>/dev/null || true)" <<'PY'; then pass "version, commit and date are filled in"; else fail "version, commit and date are filled in"; fi
import json, sys
v = json.loads(sys.argv[1])
head = sys.argv[2]
bad = []
if v.get("version") in (None, "", "dev"): bad.append("version")
if v.get("commit") in (None, "", "none") or (head and v["commit"] != head): bad.append("commit")
if v.get("date") in (None, "", "unknown"): bad.append("date")
if v.get("platform") != "linux/amd64": bad.append("platform")
for b in bad: print("        bad field:", b, "=", v.get(b))
sys.exit(1 if bad else 0)
PY
	else
		skip "dg version: this machine is not x86_64"
	fi
fi

if [ ${#rpms[@]} -eq 1 ]; then
	echo "== $(basename "${rpms[0]}")"
	if ! command -v rpm >/dev/null 2>&1 && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1 && [ ! -e "$root/bin/.rpm-install-tried" ]; then
		mkdir -p "$root/bin" && touch "$root/bin/.rpm-install-tried"
		echo "  installing rpm to read the package (once)"
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq rpm >/dev/null 2>&1 || true
	fi
	if command -v rpm >/dev/null 2>&1; then
		rl="$(rpm -qlp "${rpms[0]}" 2>/dev/null)"
		for p in /usr/bin/dg /etc/dg/dg.yaml /usr/lib/systemd/system/dg.service /var/lib/dg; do
			if grep -qx "$p" <<<"$rl"; then pass "rpm contains $p"; else fail "rpm contains $p"; fi
		done
		if rpm -qcp "${rpms[0]}" 2>/dev/null | grep -qx /etc/dg/dg.yaml; then pass "rpm marks /etc/dg/dg.yaml as config"; else fail "rpm marks /etc/dg/dg.yaml as config"; fi
	else
		skip "rpm contents: the rpm tool is not installed (size $(wc -c <"${rpms[0]}") bytes)"
	fi
fi

echo
if [ "$failures" -gt 0 ]; then
	echo "check-packages: $failures check(s) failed"
	exit 1
fi
echo "check-packages: all checks passed"
