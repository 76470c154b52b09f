#!/usr/bin/env bash
# Builds the node components of the one-machine cluster (kubelet, kube-scheduler,
# kube-controller-manager, kube-proxy, kubectl) from the Go module in hack/cluster, in ONE
# `go build` so they share compilation, and prints the directory that holds them.
#
# Cached like the envtest binaries, under
#   ${PISANIX_CLUSTER_CACHE:-${XDG_CACHE_HOME:-~/.cache}/pisanix/cluster-bin}/<hash of go.mod+go.sum>/
# A cached call takes milliseconds. Cold, with kube-apiserver's build cache warm
# (hack/envtest.sh), about 4-10 minutes on 2 cores. One build at a time (flock); binaries are
# moved into place only when all succeeded. Progress goes to stderr; stdout carries the directory.
set -euo pipefail

root=$(cd "$(dirname "$0")/../.." && pwd)
mod=$root/hack/cluster
export GOWORK=off GOTOOLCHAIN=local GOFLAGS="${GOFLAGS:+$GOFLAGS }-mod=readonly -buildvcs=false"
bins=(kubelet kube-scheduler kube-controller-manager kube-proxy kubectl)

hash=$(cat "$mod/go.mod" "$mod/go.sum" | sha256sum | cut -c1-16)
base=${PISANIX_CLUSTER_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/pisanix/cluster-bin}
dir=$base/$hash

ready() {
	local b
	for b in "${bins[@]}"; do [ -x "$dir/$b" ] || return 1; done
}
if ready; then
	echo "$dir"
	exit 0
fi
command -v flock >/dev/null || { echo "cluster/build.sh: flock (util-linux) is required" >&2; exit 1; }
mkdir -p "$base"
exec 9>"$base/.lock"
if ! flock -n 9; then
	echo "cluster/build.sh: another build holds $base/.lock; waiting for it" >&2
	flock 9
fi
if ready; then
	echo "$dir"
	exit 0
fi

kver=$(cd "$mod" && go list -m -f '{{.Version}}' k8s.io/kubernetes)
if [[ ! $kver =~ ^v([0-9]+)\.([0-9]+)\. ]]; then
	echo "cluster/build.sh: unexpected k8s.io/kubernetes version '$kver'" >&2
	exit 1
fi
kmajor=${BASH_REMATCH[1]} kminor=${BASH_REMATCH[2]}
vpkg=k8s.io/component-base/version

tmp=$(mktemp -d "$base/.build.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
echo "cluster/build.sh: building ${bins[*]} $kver into $dir (one go build; cold: minutes)" >&2
t0=$(date +%s)
pkgs=()
for b in "${bins[@]}"; do pkgs+=("k8s.io/kubernetes/cmd/$b"); done
# No -trimpath, same flags as hack/envtest.sh: the packages kube-apiserver compiled are reused.
(cd "$mod" && nice -n "${PISANIX_NICE:-10}" go build -o "$tmp/" \
	-ldflags "-s -w -X $vpkg.gitVersion=$kver -X $vpkg.gitMajor=$kmajor -X $vpkg.gitMinor=$kminor" \
	"${pkgs[@]}")
secs=$(($(date +%s) - t0))
for b in "${bins[@]}"; do [ -x "$tmp/$b" ] || { echo "cluster/build.sh: $b missing" >&2; exit 1; }; done
"$tmp/kubelet" --version >&2
printf 'kubernetes=%s\nbuilt=%s\nseconds=%s\ngo=%s\n' \
	"$kver" "$(date -u +%Y-%m-%dT%H:%M:%SZ)" "$secs" "$(go env GOVERSION)" >"$tmp/BUILD_INFO"
chmod 755 "$tmp"
rm -rf "$dir"
mv "$tmp" "$dir"
trap - EXIT
echo "cluster/build.sh: built in ${secs}s" >&2
echo "$dir"
