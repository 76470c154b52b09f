#!/usr/bin/env bash
# hack/ensure-packages.sh <package>[:<file>]...
# Installs the Debian packages that are missing, with one `apt-get update` first, only if
# something is missing. A package counts as present when <file> exists (so tools installed
# another way count) or dpkg says it is installed.
set -euo pipefail

missing=()
for spec in "$@"; do
	pkg=${spec%%:*}
	file=""
	[ "$pkg" = "$spec" ] || file=${spec#*:}
	if [ -n "$file" ] && [ -e "$file" ]; then continue; fi
	if [ "$(dpkg-query -W -f='${db:Status-Status}' "$pkg" 2>/dev/null || true)" = installed ]; then continue; fi
	missing+=("$pkg")
done
[ ${#missing[@]} -gt 0 ] || exit 0

echo "ensure-packages: installing ${missing[*]}" >&2
sudo=()
if [ "$(id -u)" != 0 ]; then
	command -v sudo >/dev/null || {
		echo "ensure-packages: need root to install ${missing[*]}" >&2
		exit 1
	}
	sudo=(sudo)
fi
"${sudo[@]}" apt-get update -qq >&2
"${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2
