#!/bin/sh
# Prints the package version from git: X.Y.Z when HEAD carries the tag vX.Y.Z; otherwise the
# newest tag's X.Y.Z (0.0.0 without one), the number of commits and the commit, as in
# 0.0.0+512.gdfbd053, which dpkg and rpm both order by the commit count.
set -eu
if tag=$(git describe --tags --exact-match --match 'v[0-9]*' 2>/dev/null); then
	echo "${tag#v}"
	exit 0
fi
tag=$(git describe --tags --abbrev=0 --match 'v[0-9]*' 2>/dev/null || echo v0.0.0)
count=$(git rev-list --count HEAD 2>/dev/null || echo 0)
rev=$(git rev-parse --short=7 HEAD 2>/dev/null || echo 0000000)
echo "${tag#v}+${count}.g${rev}"
