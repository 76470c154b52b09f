#!/usr/bin/env bash
# hack/cluster.sh up|down|status|kubeconfig|kubectl ARGS...|e2e
#
# A single-node Kubernetes on this machine, as root, with parts built from the Go module proxy and
# Debian packages only (facts: /work/shared/recipes/cluster.md):
#   etcd + kube-apiserver              hack/envtest.sh (cached)
#   kubelet, kube-scheduler, kube-controller-manager, kube-proxy, kubectl
#                                      hack/cluster/build.sh (one go build, cached)
#   containerd, runc, CNI plugins, iptables, conntrack   Debian (hack/ensure-packages.sh)
#   pause image                        hack/images/pause, the project's own
#   e2e application image              hack/images/sqlclient (pisanix.local/sqlclient:1)
#   cluster DNS                        hack/clusterdns, the project's own (Services' A records)
#   pisa-proxy/controller/daemon       dist/images/*.tar (make images), imported into containerd
#
# Everything lives under $PISANIX_CLUSTER_DIR (default /tmp/pisanix-cluster): certificates,
# kubeconfigs, etcd data, containerd root/state/socket, kubelet root, CNI config and IPAM, logs.
# Addresses are the cluster's own: a bridge $BRIDGE (10.244.0.1/24) that this script creates, pods
# on 10.244.0.0/24, Services on 10.96.0.0/24; the API server listens on the bridge address only,
# etcd on 127.0.0.1 (high ports, never 3306). Pods get no masquerading: nothing leaves the machine.
# The cluster DNS (hack/clusterdns) listens on the bridge address, port 53, and answers for
# <service>.<namespace>.svc.cluster.local only.
# "Outside the cluster" is a network namespace $EXT_NS joined to the host by a veth pair,
# $EXT_DEV (10.245.0.1/30, the node's egress device towards it) and its end 10.245.0.2/30: the
# e2e tests run their MariaDB there, so the pods' database traffic leaves the node through a
# device the pisa-daemon DaemonSet shapes. bpffs for the daemon is mounted at $S/bpf.
#
# `down` stops every process it started, removes the pods' containers, network namespaces,
# mounts, the iptables chains of kube-proxy and the kubelet, the bridge, the "outside" namespace
# and its veth pair, bpffs, and the directory.
#
#   hack/cluster.sh up            # 30-40 s once the binaries are cached
#   export KUBECONFIG=$(hack/cluster.sh kubeconfig)
#   hack/cluster.sh kubectl get pods -A     # the kubectl built with the cluster
#   hack/cluster.sh status
#   hack/cluster.sh e2e           # up, go test -tags cluster ./test/cluster/, down (make e2e,
#                                 # which also builds the NEXT_IMAGE_DIR images it needs)
#   hack/cluster.sh down
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
S=${PISANIX_CLUSTER_DIR:-/tmp/pisanix-cluster}
BRIDGE=${PISANIX_CLUSTER_BRIDGE:-pisa0}
NODE=pisanix-node
NODE_IP=10.244.0.1
POD_CIDR=10.244.0.0/24
SVC_CIDR=10.96.0.0/24
API_PORT=16443
ETCD_PORT=23790
ETCD_PEER_PORT=23800
KUBELET_PORT=20250
PAUSE_IMAGE=pisanix.local/pause:1
IMAGE_DIR=${IMAGE_DIR:-$root/dist/images}
EXT_NS=pisanix-ext
EXT_DEV=pisa-ext0
EXT_IP=10.245.0.2
EXT_HOST_IP=10.245.0.1
# The e2e's helm upgrade goes to the project's images under this tag: those in $NEXT_IMAGE_DIR
# (make e2e builds them as a new version), or else the same images tagged again.
NEXT_TAG=e2e-next
NEXT_IMAGE_DIR=${NEXT_IMAGE_DIR:-}
COMPONENTS=(etcd kube-apiserver kube-controller-manager kube-scheduler containerd kubelet kube-proxy clusterdns)

log() { echo "cluster: $*" >&2; }
die() {
	log "$*"
	exit 1
}

need_root() { [ "$(id -u)" = 0 ] || die "must run as root (containerd, kubelet, iptables)"; }

pidfile() { echo "$S/run/$1.pid"; }
running() {
	local p
	p=$(cat "$(pidfile "$1")" 2>/dev/null) || return 1
	kill -0 "$p" 2>/dev/null
}

# start NAME CMD...: runs CMD in the background, its output in $S/logs/NAME.log.
start() {
	local name=$1
	shift
	"$@" >>"$S/logs/$name.log" 2>&1 &
	echo $! >"$(pidfile "$name")"
}

# wait_for WHAT SECONDS CMD...: retries CMD each second.
wait_for() {
	local what=$1 secs=$2 i
	shift 2
	for ((i = 0; i < secs; i++)); do
		if "$@" >/dev/null 2>&1; then return 0; fi
		sleep 1
	done
	log "timed out after ${secs}s waiting for $what"
	return 1
}

kc() { "$KBIN/kubectl" --kubeconfig "$S/pki/admin.kubeconfig" "$@"; }

binaries() {
	ENVTEST=$("$root/hack/envtest.sh")
	KBIN=$("$root/hack/cluster/build.sh")
}

# --- certificates ----------------------------------------------------------------------------

# cert NAME CN O [SANS]: a client (or, with SANS, serving) certificate signed by the cluster CA.
cert() {
	local name=$1 cn=$2 o=$3 sans=${4:-} p=$S/pki
	local subj="/CN=$cn"
	[ -z "$o" ] || subj="/O=$o/CN=$cn"
	openssl genrsa -out "$p/$name.key" 2048 2>/dev/null
	openssl req -new -key "$p/$name.key" -subj "$subj" -out "$p/$name.csr" 2>/dev/null
	{
		echo "basicConstraints=CA:FALSE"
		echo "keyUsage=critical,digitalSignature,keyEncipherment"
		if [ -n "$sans" ]; then
			echo "extendedKeyUsage=serverAuth,clientAuth"
			echo "subjectAltName=$sans"
		else
			echo "extendedKeyUsage=clientAuth"
		fi
	} >"$p/$name.ext"
	openssl x509 -req -in "$p/$name.csr" -CA "$p/ca.crt" -CAkey "$p/ca.key" -CAcreateserial \
		-days 30 -sha256 -extfile "$p/$name.ext" -out "$p/$name.crt" 2>/dev/null
	rm -f "$p/$name.csr" "$p/$name.ext"
}

kubeconfig() {
	local name=$1 p=$S/pki
	cat >"$p/$name.kubeconfig" <<EOF
apiVersion: v1
kind: Config
clusters:
- name: pisanix
  cluster:
    server: https://$NODE_IP:$API_PORT
    certificate-authority: $p/ca.crt
users:
- name: $name
  user:
    client-certificate: $p/$name.crt
    client-key: $p/$name.key
contexts:
- name: pisanix
  context: {cluster: pisanix, user: $name}
current-context: pisanix
EOF
}

pki() {
	local p=$S/pki
	mkdir -p "$p"
	openssl req -x509 -newkey rsa:2048 -nodes -keyout "$p/ca.key" -out "$p/ca.crt" -days 30 \
		-subj "/CN=pisanix-cluster-ca" 2>/dev/null
	cert apiserver kube-apiserver "" \
		"IP:$NODE_IP,IP:10.96.0.1,IP:127.0.0.1,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc,DNS:kubernetes.default.svc.cluster.local"
	cert apiserver-kubelet-client kube-apiserver-kubelet-client system:masters
	cert admin pisanix-admin system:masters
	cert kube-controller-manager system:kube-controller-manager ""
	cert kube-scheduler system:kube-scheduler ""
	cert kube-proxy system:kube-proxy ""
	cert kubelet "system:node:$NODE" system:nodes "IP:$NODE_IP,DNS:$NODE"
	cert clusterdns system:pisanix-clusterdns ""
	openssl genrsa -out "$p/sa.key" 2048 2>/dev/null
	openssl rsa -in "$p/sa.key" -pubout -out "$p/sa.pub" 2>/dev/null
	for n in admin kube-controller-manager kube-scheduler kube-proxy kubelet clusterdns; do kubeconfig "$n"; done
}

# --- configuration ---------------------------------------------------------------------------

containerd_config() {
	local c=$S/containerd
	mkdir -p "$c/root" "$c/state" "$c/opt" "$S/cni/net.d" "$S/cni/ipam"
	containerd config default | sed \
		-e "s#^root = .*#root = \"$c/root\"#" \
		-e "s#^state = .*#state = \"$c/state\"#" \
		-e "s#address = \"/run/containerd/containerd.sock\"#address = \"$c/containerd.sock\"#" \
		-e "s#sandbox_image = .*#sandbox_image = \"$PAUSE_IMAGE\"#" \
		-e "s#restrict_oom_score_adj = false#restrict_oom_score_adj = true#" \
		-e "s#netns_mounts_under_state_dir = false#netns_mounts_under_state_dir = true#" \
		-e "s#bin_dir = \"/opt/cni/bin\"#bin_dir = \"/usr/lib/cni\"#" \
		-e "s#conf_dir = \"/etc/cni/net.d\"#conf_dir = \"$S/cni/net.d\"#" \
		-e "s#path = \"/opt/containerd\"#path = \"$c/opt\"#" \
		-e "s#^\( *\)Root = \"\"#\1Root = \"$c/runc\"#" \
		>"$c/config.toml"
	# The bridge exists already (the API server listens on it); no ipMasq: pods reach this
	# machine only, never beyond it.
	cat >"$S/cni/net.d/10-pisanix.conflist" <<EOF
{
  "cniVersion": "1.0.0",
  "name": "pisanix",
  "plugins": [
    {
      "type": "bridge",
      "bridge": "$BRIDGE",
      "isGateway": true,
      "ipMasq": false,
      "hairpinMode": true,
      "ipam": {
        "type": "host-local",
        "dataDir": "$S/cni/ipam",
        "ranges": [[{"subnet": "$POD_CIDR", "rangeStart": "10.244.0.10", "gateway": "$NODE_IP"}]],
        "routes": [{"dst": "0.0.0.0/0"}]
      }
    },
    {"type": "loopback"}
  ]
}
EOF
}

kubelet_config() {
	mkdir -p "$S/kubelet"
	cat >"$S/kubelet/config.yaml" <<EOF
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
address: $NODE_IP
port: $KUBELET_PORT
readOnlyPort: 0
healthzPort: 0
authentication:
  anonymous: {enabled: false}
  webhook: {enabled: true}
  x509: {clientCAFile: $S/pki/ca.crt}
authorization: {mode: Webhook}
tlsCertFile: $S/pki/kubelet.crt
tlsPrivateKeyFile: $S/pki/kubelet.key
containerRuntimeEndpoint: unix://$S/containerd/containerd.sock
cgroupDriver: cgroupfs
failCgroupV1: false
failSwapOn: false
cgroupsPerQOS: false
enforceNodeAllocatable: []
resolvConf: $S/kubelet/resolv.conf
clusterDNS: [$NODE_IP]
clusterDomain: cluster.local
staticPodPath: ""
serializeImagePulls: false
imageGCHighThresholdPercent: 100
evictionHard: {memory.available: "1Mi", nodefs.available: "1%", imagefs.available: "1%", nodefs.inodesFree: "1%"}
evictionPressureTransitionPeriod: 0s
maxPods: 50
EOF
	# Pods with dnsPolicy ClusterFirst get clusterDNS and the cluster's search path; the others
	# (Default, and host-network pods) get this file instead of the host's, whose name server is
	# off the machine: the cluster DNS as well, so no lookup leaves the machine.
	echo "nameserver $NODE_IP" >"$S/kubelet/resolv.conf"
}

# --- up --------------------------------------------------------------------------------------

up() {
	need_root
	if [ -d "$S" ]; then
		die "$S exists: a cluster is up or was not torn down (hack/cluster.sh down)"
	fi
	"$root/hack/ensure-packages.sh" containerd:/usr/bin/containerd runc:/usr/sbin/runc \
		containernetworking-plugins:/usr/lib/cni/bridge iptables:/usr/sbin/iptables \
		conntrack:/usr/sbin/conntrack openssl:/usr/bin/openssl
	binaries
	local t0
	t0=$(date +%s)
	mkdir -p "$S/run" "$S/logs" "$S/images"
	# containerd 1.6 puts its shims' sockets under /run/containerd/s whatever its state dir:
	# remember whether that directory was ours to remove.
	[ -e /run/containerd ] || touch "$S/run/own-run-containerd"
	# libcni caches results under /var/lib/cni whatever the configuration says.
	[ -e /var/lib/cni ] || touch "$S/run/own-var-lib-cni"
	# `ip netns add` makes /run/netns a mount point of its own.
	[ -e /run/netns ] || touch "$S/run/own-run-netns"
	# Any failure from here on (set -e, in this function or one it calls) tears down what exists.
	trap 'log "up failed; the last lines of each log:"; tail -n 5 "$S"/logs/*.log >&2; log "tearing down"; down' EXIT

	# The bridge first: the API server and the kubelet listen on its address.
	ip link add "$BRIDGE" type bridge
	ip addr add "$NODE_IP/24" dev "$BRIDGE"
	ip link set "$BRIDGE" up
	# Pod -> Service -> pod is routed through this host (DNAT, then back onto the bridge), so it
	# needs IPv4 forwarding, and the CNI bridge plugin turns net.ipv4.ip_forward on by itself.
	# Keep forwarding what it was for everything else: remember the setting (down restores it),
	# drop whatever comes in on the bridge for anywhere but the bridge (pods never reach beyond
	# the machine), and if forwarding was off, drop whatever does not come in on the bridge.
	local fwd
	fwd=$(sysctl -n net.ipv4.ip_forward)
	echo "$fwd" >"$S/run/ip_forward"
	iptables -I FORWARD 1 -i "$BRIDGE" ! -o "$BRIDGE" -m comment --comment pisanix-cluster -j DROP
	[ "$fwd" = 1 ] || iptables -I FORWARD 1 ! -i "$BRIDGE" -m comment --comment pisanix-cluster -j DROP
	# Pods and the "outside" namespace talk to each other, both ways.
	iptables -I FORWARD 1 -i "$BRIDGE" -o "$EXT_DEV" -m comment --comment pisanix-cluster -j ACCEPT
	iptables -I FORWARD 1 -i "$EXT_DEV" -o "$BRIDGE" -m comment --comment pisanix-cluster -j ACCEPT
	sysctl -qw net.ipv4.ip_forward=1
	outside

	pki
	containerd_config
	kubelet_config

	log "etcd"
	start etcd "$ENVTEST/etcd" --name pisanix --data-dir "$S/etcd" \
		--listen-client-urls "http://127.0.0.1:$ETCD_PORT" --advertise-client-urls "http://127.0.0.1:$ETCD_PORT" \
		--listen-peer-urls "http://127.0.0.1:$ETCD_PEER_PORT" --initial-advertise-peer-urls "http://127.0.0.1:$ETCD_PEER_PORT" \
		--initial-cluster "pisanix=http://127.0.0.1:$ETCD_PEER_PORT" --unsafe-no-fsync
	log "containerd"
	start containerd containerd --config "$S/containerd/config.toml"

	local p=$S/pki
	log "kube-apiserver"
	start kube-apiserver "$ENVTEST/kube-apiserver" \
		--etcd-servers "http://127.0.0.1:$ETCD_PORT" \
		--bind-address "$NODE_IP" --advertise-address "$NODE_IP" --secure-port "$API_PORT" \
		--cert-dir "$S/apiserver" --tls-cert-file "$p/apiserver.crt" --tls-private-key-file "$p/apiserver.key" \
		--client-ca-file "$p/ca.crt" \
		--kubelet-client-certificate "$p/apiserver-kubelet-client.crt" --kubelet-client-key "$p/apiserver-kubelet-client.key" \
		--kubelet-preferred-address-types InternalIP \
		--service-account-key-file "$p/sa.pub" --service-account-signing-key-file "$p/sa.key" \
		--service-account-issuer https://kubernetes.default.svc.cluster.local \
		--authorization-mode Node,RBAC --enable-admission-plugins NodeRestriction \
		--allow-privileged=true --service-cluster-ip-range "$SVC_CIDR"
	wait_for "etcd" 60 curl -fsS "http://127.0.0.1:$ETCD_PORT/health"
	wait_for "containerd" 60 ctr --address "$S/containerd/containerd.sock" version
	wait_for "kube-apiserver /readyz" 180 kc get --raw /readyz

	# Images before the kubelet: the pause image must be there for the first sandbox.
	import_images

	log "kube-controller-manager, kube-scheduler"
	start kube-controller-manager "$KBIN/kube-controller-manager" \
		--kubeconfig "$p/kube-controller-manager.kubeconfig" \
		--authentication-kubeconfig "$p/kube-controller-manager.kubeconfig" \
		--authorization-kubeconfig "$p/kube-controller-manager.kubeconfig" \
		--bind-address 127.0.0.1 --secure-port 0 \
		--root-ca-file "$p/ca.crt" --service-account-private-key-file "$p/sa.key" \
		--use-service-account-credentials --cluster-signing-cert-file "$p/ca.crt" --cluster-signing-key-file "$p/ca.key" \
		--service-cluster-ip-range "$SVC_CIDR" --cluster-cidr "$POD_CIDR" --allocate-node-cidrs=false \
		--leader-elect=false
	start kube-scheduler "$KBIN/kube-scheduler" --kubeconfig "$p/kube-scheduler.kubeconfig" \
		--authentication-kubeconfig "$p/kube-scheduler.kubeconfig" \
		--authorization-kubeconfig "$p/kube-scheduler.kubeconfig" \
		--bind-address 127.0.0.1 --secure-port 0 --leader-elect=false

	log "kubelet"
	start kubelet "$KBIN/kubelet" --config "$S/kubelet/config.yaml" --kubeconfig "$p/kubelet.kubeconfig" \
		--hostname-override "$NODE" --node-ip "$NODE_IP" --root-dir "$S/kubelet/root" \
		--cert-dir "$S/kubelet/pki"
	log "cluster DNS on $NODE_IP:53"
	kc create clusterrolebinding pisanix-clusterdns --clusterrole system:kube-dns --user system:pisanix-clusterdns >/dev/null
	start clusterdns "$S/images/clusterdns" -kubeconfig "$p/clusterdns.kubeconfig" -listen "$NODE_IP:53" -domain cluster.local
	log "kube-proxy"
	start kube-proxy "$KBIN/kube-proxy" --kubeconfig "$p/kube-proxy.kubeconfig" \
		--proxy-mode iptables --conntrack-max-per-core=0 --hostname-override "$NODE" \
		--cluster-cidr "$POD_CIDR" --bind-address "$NODE_IP" \
		--healthz-bind-address 127.0.0.1:20256 --metrics-bind-address 127.0.0.1:20249

	wait_for "node $NODE Ready" 180 node_ready
	wait_for "ServiceAccount default/default" 120 kc -n default get serviceaccount default
	wait_for "cluster DNS" 30 dns_ready
	trap - EXIT
	log "up in $(($(date +%s) - t0))s; KUBECONFIG=$S/pki/admin.kubeconfig; logs in $S/logs"
	status
}

# The network "outside the cluster": a namespace with a veth pair to the host, routed (no NAT).
# bpffs for the daemon, under the state directory (down unmounts it with the rest).
outside() {
	ip netns add "$EXT_NS"
	ip link add "$EXT_DEV" type veth peer name eth0 netns "$EXT_NS"
	ip addr add "$EXT_HOST_IP/30" dev "$EXT_DEV"
	ip link set "$EXT_DEV" up
	ip -n "$EXT_NS" link set lo up
	ip -n "$EXT_NS" addr add "$EXT_IP/30" dev eth0
	ip -n "$EXT_NS" link set eth0 up
	ip -n "$EXT_NS" route add "$POD_CIDR" via "$EXT_HOST_IP"
	mkdir -p "$S/bpf"
	mount -t bpf bpf "$S/bpf"
	# The DaemonSet mounts it with HostToContainer propagation, which containerd allows only
	# from a shared or slave mount.
	mount --make-shared "$S/bpf"
}

# dns_ready: the cluster DNS answers for the API server's Service with its ClusterIP.
dns_ready() {
	[ "$("$S/images/clusterdns" -listen "$NODE_IP:53" -lookup kubernetes.default.svc.cluster.local)" = 10.96.0.1 ]
}

node_ready() {
	[ "$(kc get node "$NODE" -o 'jsonpath={.status.conditions[?(@.type=="Ready")].status}' 2>/dev/null)" = True ]
}

# The pause image (built here, the project's own) and every dist/images/*.tar.
import_images() {
	local tmp
	tmp=$S/images
	log "pause image $PAUSE_IMAGE, application image pisanix.local/sqlclient:1"
	(cd "$root" && CGO_ENABLED=0 go build -trimpath -ldflags '-s -w' -o "$tmp/" ./hack/images/pause ./hack/images/sqlclient ./hack/clusterdns &&
		go run ./hack/images -out "$tmp" -repo pisanix.local -tag 1 pause="$tmp/pause" sqlclient="$tmp/sqlclient" >&2)
	local f
	for f in "$tmp/pause.tar" "$tmp/sqlclient.tar" "$IMAGE_DIR"/*.tar; do
		[ -f "$f" ] || continue
		log "import $f"
		ctr --address "$S/containerd/containerd.sock" -n k8s.io images import "$f" >&2
	done
	# Images to upgrade to, under the tag $NEXT_TAG: a new build from $NEXT_IMAGE_DIR, or the
	# same images tagged again.
	if [ -n "$NEXT_IMAGE_DIR" ]; then
		for f in "$NEXT_IMAGE_DIR"/*.tar; do
			[ -f "$f" ] || die "no images in NEXT_IMAGE_DIR=$NEXT_IMAGE_DIR"
			log "import $f"
			ctr --address "$S/containerd/containerd.sock" -n k8s.io images import "$f" >&2
		done
		return 0
	fi
	local ref
	for ref in $(ctr --address "$S/containerd/containerd.sock" -n k8s.io images ls -q); do
		case $ref in
		*/pisa-proxy:* | */pisa-controller:* | */pisa-daemon:*)
			ctr --address "$S/containerd/containerd.sock" -n k8s.io images tag "$ref" "${ref%:*}:$NEXT_TAG" >/dev/null
			;;
		esac
	done
}

# --- down ------------------------------------------------------------------------------------

stop() {
	local name=$1 p i
	p=$(cat "$(pidfile "$name")" 2>/dev/null) || return 0
	if kill -0 "$p" 2>/dev/null; then
		kill -TERM "$p" 2>/dev/null || true
		for ((i = 0; i < 20; i++)); do
			kill -0 "$p" 2>/dev/null || break
			sleep 0.5
		done
		kill -KILL "$p" 2>/dev/null || true
	fi
	rm -f "$(pidfile "$name")"
}

down() {
	need_root
	trap - EXIT
	set +e
	if [ ! -d "$S" ] && ! ip link show "$BRIDGE" >/dev/null 2>&1 && ! ip link show "$EXT_DEV" >/dev/null 2>&1; then
		log "no cluster at $S"
		return 0
	fi
	local sock=$S/containerd/containerd.sock
	# Pods first, while the kubelet still runs: it stops their sandboxes (CNI DEL, netns removed).
	[ -n "${KBIN:-}" ] || KBIN=$("$root/hack/cluster/build.sh" 2>/dev/null) || KBIN=""
	if [ -n "$KBIN" ] && running kubelet && running kube-apiserver; then
		stop kube-controller-manager
		stop kube-scheduler
		log "deleting pods"
		kc delete pods --all -A --grace-period=1 --wait=false >/dev/null 2>&1
		wait_for "pods gone" 60 bash -c "[ -z \"\$('$KBIN/kubectl' --kubeconfig '$S/pki/admin.kubeconfig' get pods -A -o name 2>/dev/null)\" ]"
	fi
	stop kube-controller-manager
	stop kube-scheduler
	stop kubelet
	stop clusterdns
	# Whatever is left in containerd: kill the tasks, delete tasks and containers.
	if running containerd; then
		local c
		for c in $(ctr --address "$sock" -n k8s.io tasks ls -q 2>/dev/null); do
			ctr --address "$sock" -n k8s.io tasks kill -s SIGKILL "$c" >/dev/null 2>&1
		done
		sleep 1
		for c in $(ctr --address "$sock" -n k8s.io tasks ls -q 2>/dev/null); do
			ctr --address "$sock" -n k8s.io tasks delete -f "$c" >/dev/null 2>&1
		done
		for c in $(ctr --address "$sock" -n k8s.io containers ls -q 2>/dev/null); do
			ctr --address "$sock" -n k8s.io containers delete "$c" >/dev/null 2>&1
		done
	fi
	stop containerd
	# Shims that outlived containerd (they belong to this containerd by their -address).
	local pid
	for pid in $(pgrep -f "containerd-shim.*-address $sock" 2>/dev/null); do kill -KILL "$pid" 2>/dev/null; done
	# kube-proxy's rules: its own cleanup, then the kubelet's chains.
	if running kube-proxy; then stop kube-proxy; fi
	if [ -n "$KBIN" ]; then
		"$KBIN/kube-proxy" --cleanup --proxy-mode iptables >/dev/null 2>&1
	fi
	iptables_cleanup
	stop kube-apiserver
	stop etcd
	# A MariaDB the tests started outside the cluster (test/cluster), whatever else runs there.
	[ ! -d "$S/mariadb" ] || "$root/hack/mariadb.sh" stop "$S/mariadb" >/dev/null 2>&1
	if [ -e "/run/netns/$EXT_NS" ]; then
		for pid in $(ip netns pids "$EXT_NS" 2>/dev/null); do kill -KILL "$pid" 2>/dev/null; done
		ip netns del "$EXT_NS" 2>/dev/null
	fi
	ip link del "$EXT_DEV" 2>/dev/null
	[ ! -e "$S/run/own-run-netns" ] || OWN_RUN_NETNS=1
	if [ -n "${OWN_RUN_NETNS:-}" ] && [ -z "$(ls -A /run/netns 2>/dev/null)" ]; then
		umount /run/netns 2>/dev/null
		rmdir /run/netns 2>/dev/null
	fi
	# Network namespaces and mounts under the state directory, deepest first.
	local m
	for m in $(awk -v s="$S" 'index($5, s) == 1 {print $5}' /proc/self/mountinfo | sort -r); do
		umount -l "$m" 2>/dev/null
	done
	ip link del "$BRIDGE" 2>/dev/null
	rm -rf /var/lib/cni/results/pisanix-* 2>/dev/null
	[ ! -e "$S/run/own-run-containerd" ] || rm -rf /run/containerd
	[ ! -e "$S/run/own-var-lib-cni" ] || rm -rf /var/lib/cni
	rm -rf "$S"
	leftovers && log "down: nothing left"
}

iptables_cleanup() {
	local ipt table chain
	while iptables -D FORWARD -i "$BRIDGE" ! -o "$BRIDGE" -m comment --comment pisanix-cluster -j DROP 2>/dev/null; do :; done
	while iptables -D FORWARD ! -i "$BRIDGE" -m comment --comment pisanix-cluster -j DROP 2>/dev/null; do :; done
	while iptables -D FORWARD -i "$BRIDGE" -o "$EXT_DEV" -m comment --comment pisanix-cluster -j ACCEPT 2>/dev/null; do :; done
	while iptables -D FORWARD -i "$EXT_DEV" -o "$BRIDGE" -m comment --comment pisanix-cluster -j ACCEPT 2>/dev/null; do :; done
	# IPv4 forwarding as it was before up.
	local fwd
	fwd=$(cat "$S/run/ip_forward" 2>/dev/null) || fwd=""
	if [ -n "$fwd" ] && [ "$(sysctl -n net.ipv4.ip_forward)" != "$fwd" ]; then
		sysctl -qw "net.ipv4.ip_forward=$fwd"
	fi
	for ipt in iptables ip6tables; do
		command -v "$ipt" >/dev/null || continue
		for table in filter nat mangle; do
			for chain in KUBE-FIREWALL KUBE-KUBELET-CANARY KUBE-IPTABLES-HINT KUBE-PROXY-CANARY; do
				"$ipt" -t "$table" -S 2>/dev/null | grep -- "-j $chain\b" | sed 's/^-A/-D/' |
					while read -r rule; do eval "$ipt -t $table $rule" 2>/dev/null; done
				"$ipt" -t "$table" -F "$chain" 2>/dev/null
				"$ipt" -t "$table" -X "$chain" 2>/dev/null
			done
		done
	done
}

# leftovers: prints and fails on anything of the cluster that is still there.
leftovers() {
	local bad=0 out
	out=$(pgrep -af "$S|pisanix-node" 2>/dev/null | grep -v -e "$$" -e pgrep -e cluster.sh)
	[ -z "$out" ] || { log "processes left: $out"; bad=1; }
	out=$(awk -v s="$S" 'index($5, s) == 1' /proc/self/mountinfo)
	[ -z "$out" ] || { log "mounts left: $out"; bad=1; }
	! ip link show "$BRIDGE" >/dev/null 2>&1 || { log "bridge $BRIDGE left"; bad=1; }
	! ip link show "$EXT_DEV" >/dev/null 2>&1 || { log "device $EXT_DEV left"; bad=1; }
	[ ! -e "/run/netns/$EXT_NS" ] || { log "network namespace $EXT_NS left"; bad=1; }
	[ -z "${OWN_RUN_NETNS:-}" ] || [ ! -e /run/netns ] || { log "/run/netns left (up made it)"; bad=1; }
	out=$( (iptables-save 2>/dev/null; ip6tables-save 2>/dev/null) | grep -E '^:(KUBE|CNI)-|pisanix-cluster' )
	[ -z "$out" ] || { log "iptables chains left: $(echo $out)"; bad=1; }
	[ ! -e "$S" ] || { log "$S left"; bad=1; }
	return $bad
}

# --- status ----------------------------------------------------------------------------------

status() {
	local c st=0
	if [ ! -d "$S" ]; then
		echo "no cluster at $S"
		return 3
	fi
	for c in "${COMPONENTS[@]}"; do
		if running "$c"; then
			printf '%-24s running (pid %s)\n' "$c" "$(cat "$(pidfile "$c")")"
		else
			printf '%-24s NOT running (log: %s)\n' "$c" "$S/logs/$c.log"
			st=1
		fi
	done
	[ -n "${KBIN:-}" ] || KBIN=$("$root/hack/cluster/build.sh")
	kc get nodes -o wide 2>&1 || st=1
	kc get pods -A -o wide 2>&1
	echo "KUBECONFIG=$S/pki/admin.kubeconfig"
	return $st
}

# e2e: a fresh cluster, the tests under test/cluster (build tag cluster), down whatever happened.
e2e() {
	need_root
	[ -n "$NEXT_IMAGE_DIR" ] || die "e2e needs NEXT_IMAGE_DIR, images of a new version to upgrade to (make e2e builds them)"
	local helm t0 rc=0
	helm=$("$root/hack/tools.sh" helm)
	binaries
	t0=$(date +%s)
	up
	trap 'log "e2e interrupted: tearing down"; down' EXIT
	(cd "$root" && PISANIX_KUBECONFIG="$S/pki/admin.kubeconfig" PISANIX_HELM="$helm" PISANIX_KUBECTL="$KBIN/kubectl" \
		PISANIX_NODE_IP="$NODE_IP" PISANIX_CLUSTER_DIR="$S" PISANIX_EXT_NS="$EXT_NS" PISANIX_EXT_IP="$EXT_IP" \
		PISANIX_EXT_DEV="$EXT_DEV" PISANIX_BPFFS="$S/bpf" PISANIX_NEXT_TAG="$NEXT_TAG" \
		go test -tags cluster -count=1 -v -timeout 20m ./test/cluster/) || rc=$?
	down || rc=1
	log "e2e: exit $rc after $(($(date +%s) - t0))s (cluster up, tests, down)"
	return $rc
}

case "${1:-}" in
up) up ;;
e2e) e2e ;;
down) down ;;
status) status ;;
kubeconfig) echo "$S/pki/admin.kubeconfig" ;;
kubectl)
	shift
	KBIN=$("$root/hack/cluster/build.sh")
	exec "$KBIN/kubectl" --kubeconfig "$S/pki/admin.kubeconfig" "$@"
	;;
*)
	echo "usage: $0 up|down|status|kubeconfig|kubectl ARGS...|e2e" >&2
	exit 2
	;;
esac
