#!/bin/sh
# dg package pre-remove: on removal (not on upgrade) stop and disable the
# service and timers so systemd does not keep running a deleted binary.
# .deb passes remove|upgrade|deconfigure|failed-upgrade; .rpm passes the
# number of versions left after the transaction (0 = removal).
set -e

case "$1" in
remove | deconfigure | 0) ;;
*) exit 0 ;;
esac
if [ -d /run/systemd/system ] && command -v systemctl >/dev/null 2>&1; then
	systemctl disable --now dg.service dg-backup.timer dg-drill.timer >/dev/null 2>&1 || true
fi
exit 0
