#!/bin/sh
# Before the files are removed. deb: $1 is "remove", "upgrade" or "deconfigure"; rpm: $1 is
# the number of versions left after this one (0 on erase, 1 on upgrade). The agent is stopped
# only when the package goes away, not on upgrade.
set -e
case "$1" in
remove|deconfigure|0)
	if [ -d /run/systemd/system ]; then
		systemctl stop hardtrail-agent.service >/dev/null 2>&1 || :
		systemctl disable hardtrail-agent.service >/dev/null 2>&1 || :
	fi
	;;
esac
