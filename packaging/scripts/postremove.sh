#!/bin/sh
# dg package post-remove: reload systemd after the units are gone. The dg
# user, /var/lib/dg (managed database, backups, drill reports) and, until
# purge, /etc/dg are kept on purpose: they hold an audit trail, which a
# package manager must never delete. docs/install.md says how to remove them.
set -e

if [ -d /run/systemd/system ] && command -v systemctl >/dev/null 2>&1; then
	systemctl daemon-reload >/dev/null 2>&1 || true
fi
case "$1" in
remove | purge | 0)
	echo "dg: removed. Any data in /var/lib/dg and /var/backups/dg, and the dg user, were kept; see install.md (Uninstalling)." >&2
	;;
esac
exit 0
