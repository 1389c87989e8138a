#!/bin/sh
# After the files are unpacked (install and upgrade, deb and rpm). Idempotent. It never
# enables or starts the agent: the operator does, with
#   systemctl enable --now hardtrail-agent
set -e
# The evidence store's directory: only the agent's user may read it.
install -d -m 0700 -o hardtrail -g hardtrail /var/lib/hardtrail
# The configuration is readable by the agent's group, writable by root only.
if [ -e /etc/hardtrail/hardtrail.toml ]; then
	chgrp hardtrail /etc/hardtrail/hardtrail.toml
	chmod 0640 /etc/hardtrail/hardtrail.toml
fi
# Let a running systemd see the new or changed unit; a restart is the operator's choice,
# except on upgrade of an agent that runs: it restarts on the new binary.
if [ -d /run/systemd/system ]; then
	systemctl daemon-reload >/dev/null 2>&1 || :
	if systemctl is-active --quiet hardtrail-agent.service 2>/dev/null; then
		systemctl try-restart hardtrail-agent.service >/dev/null 2>&1 || :
	fi
fi
