#!/bin/sh
# dg package post-install: fix ownership of the config and state
# directories and tell systemd about the units. dg is NOT started or enabled
# here: /etc/dg/dg.env needs a secret (and, for an external database, its
# URL) first, and on upgrade the operator decides when the new binary (and
# its forward-only migrations) takes over, after the pre-upgrade backup.
# Shared by the .deb (argument: configure) and the .rpm (argument: 1|2).
set -e

chown root:dg /etc/dg
chmod 0750 /etc/dg
for f in /etc/dg/dg.yaml /etc/dg/dg.env; do
	if [ -f "$f" ]; then
		chown root:dg "$f"
		chmod 0640 "$f"
	fi
done
for d in /var/lib/dg /var/backups/dg; do
	mkdir -p "$d"
	chown dg:dg "$d"
	chmod 0750 "$d"
done

if [ -d /run/systemd/system ] && command -v systemctl >/dev/null 2>&1; then
	systemctl daemon-reload >/dev/null 2>&1 || true
	if systemctl is-active --quiet dg.service 2>/dev/null; then
		echo "dg: dg.service is still running the previous binary." \
			"Restart it when ready: systemctl restart dg.service" >&2
		exit 0
	fi
fi
cat >&2 <<'MSG'
dg installed. Next steps (see /usr/share/doc/dg/install.md):
  1. edit /etc/dg/dg.yaml; put SECRET_KEY_BASE (and DATABASE_URL if external) in /etc/dg/dg.env
  2. create the accounts file (tokens are printed once), readable by dg only:
     dg accounts bootstrap --output /etc/dg/service-accounts.json --hashed
     chown dg:dg /etc/dg/service-accounts.json
  3. check: dg validate -f /etc/dg/dg.yaml, then dg doctor as the dg user
  4. systemctl enable --now dg.service dg-backup.timer dg-drill.timer
MSG
exit 0
