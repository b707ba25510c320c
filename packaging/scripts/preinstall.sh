#!/bin/sh
# dg package pre-install: create the dg system user and group, so the files
# the package unpacks (owned by dg) and the systemd units have their owner.
# Shared by the .deb (argument: install|upgrade) and the .rpm (argument: 1|2).
set -e

if ! getent group dg >/dev/null 2>&1; then
	groupadd --system dg
fi
if ! getent passwd dg >/dev/null 2>&1; then
	nologin=/usr/sbin/nologin
	[ -x "$nologin" ] || nologin=/sbin/nologin
	useradd --system --gid dg --home-dir /var/lib/dg --no-create-home \
		--shell "$nologin" --comment "DecisionGraph (dg)" dg
fi
exit 0
