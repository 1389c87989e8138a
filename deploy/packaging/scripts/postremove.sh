#!/bin/sh
# After the files are removed. deb: $1 is "remove", "purge", "upgrade", ...; rpm: $1 is the
# number of versions left (0 on erase).
#
# "remove" (and rpm's erase) keep the evidence store, the configuration and the user. "purge"
# (dpkg --purge, apt purge) deletes them too, unless /var/lib/hardtrail/KEEP exists: create that
# file (touch /var/lib/hardtrail/KEEP) before purging to keep the evidence store.
set -e
if [ -d /run/systemd/system ]; then
	systemctl daemon-reload >/dev/null 2>&1 || :
fi
if [ "$1" = purge ]; then
	if [ -e /var/lib/hardtrail/KEEP ]; then
		echo "hardtrail: keeping the evidence store in /var/lib/hardtrail (KEEP exists)" >&2
	else
		rm -rf /var/lib/hardtrail
	fi
	rmdir /etc/hardtrail 2>/dev/null || :
	if getent passwd hardtrail >/dev/null && [ ! -e /var/lib/hardtrail ]; then
		userdel hardtrail >/dev/null 2>&1 || :
	fi
	if getent group hardtrail >/dev/null && [ ! -e /var/lib/hardtrail ]; then
		groupdel hardtrail >/dev/null 2>&1 || :
	fi
fi
