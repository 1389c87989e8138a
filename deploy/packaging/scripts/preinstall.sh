#!/bin/sh
# Before the files are unpacked (install and upgrade, deb and rpm): the system user the agent
# runs as, so that the files owned by its group unpack with the right owner. Idempotent.
set -e
if ! getent group hardtrail >/dev/null; then
	groupadd --system hardtrail
fi
if ! getent passwd hardtrail >/dev/null; then
	useradd --system --gid hardtrail --home-dir /var/lib/hardtrail --no-create-home \
		--shell /usr/sbin/nologin --comment "hardtrail agent" hardtrail
fi
