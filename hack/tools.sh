#!/usr/bin/env bash
# Builds the packaging tools the manifest tests use, from the Go module proxy (no download site
# is reachable here), and prints the path of the binary:
#
#   hack/tools.sh helm        # helm.sh/helm/v3 (HELM_VERSION)
#   hack/tools.sh kustomize   # sigs.k8s.io/kustomize/kustomize/v5 (KUSTOMIZE_VERSION)
#
# Binaries are cached under ${PISANIX_TOOLS_CACHE:-${XDG_CACHE_HOME:-~/.cache}/pisanix/tools}/<name>-<version>/;
# a cached call takes milliseconds, a cold build about 3 minutes each on 2 cores. Progress goes to
# stderr; stdout carries only the path.
set -euo pipefail

HELM_VERSION=${HELM_VERSION:-v3.22.0}
# kustomize v5.8.3 needs Go 1.27.
KUSTOMIZE_VERSION=${KUSTOMIZE_VERSION:-v5.8.2}

case "${1:-}" in
helm) pkg=helm.sh/helm/v3/cmd/helm ver=$HELM_VERSION ;;
kustomize) pkg=sigs.k8s.io/kustomize/kustomize/v5 ver=$KUSTOMIZE_VERSION ;;
*)
	echo "usage: $0 helm|kustomize" >&2
	exit 2
	;;
esac
name=$1
base=${PISANIX_TOOLS_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/pisanix/tools}
dir=$base/$name-$ver
if [ -x "$dir/$name" ]; then
	echo "$dir/$name"
	exit 0
fi
command -v flock >/dev/null || { echo "tools.sh: flock (util-linux) is required" >&2; exit 1; }
mkdir -p "$base"
exec 9>"$base/.lock-$name"
flock 9
if [ -x "$dir/$name" ]; then
	echo "$dir/$name"
	exit 0
fi
echo "tools.sh: building $name $ver from the Go module proxy (cold: a few minutes)" >&2
tmp=$(mktemp -d "$base/.build.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
start=$(date +%s)
# Outside any module, with the tool's own go.mod; GOTOOLCHAIN=local: never download Go.
(cd "$tmp" && GOWORK=off GOTOOLCHAIN=local GOFLAGS=-mod=mod GOBIN="$tmp/bin" go install "$pkg@$ver") >&2
mkdir -p "$dir"
mv "$tmp/bin/$name" "$dir/$name"
echo "tools.sh: built $name in $(($(date +%s) - start))s" >&2
echo "$dir/$name"
