#!/usr/bin/env bash
# Instructions per query of a pisa-proxy (or of HAProxy) under sysbench, counted by
# valgrind's callgrind: repeatable where wall-clock and CPU time are not (a shared, busy
# machine). Counts only user-space instructions (system calls are the kernel's: compare
# those with strace -c -f). The run-to-run spread is about 5%, from the Go scheduler's
# share; compare packages (the per-package lines) when a change is smaller than that.
#
#   hack/callgrind.sh TARGET [PS_MODE] [EVENTS]
#     TARGET   proxy (bench.sh's listener), govern (bench.sh's governance listener) or haproxy
#     PS_MODE  auto (prepared statements, default) or disable (text protocol)
#     EVENTS   sysbench events counted (default 10000), after 2000 not counted (warm-up)
#
# Environment: CG_BIN (pisa-proxy binary, default bin/pisa-proxy), CG_TEST
# (oltp_point_select), CG_THREADS (8), CG_PORT (24610: listener; +50 admin), CG_KEEP=1 keeps
# the callgrind file (callgrind_annotate, or the per-function lines printed here).
# Needs MariaDB on 127.0.0.1:3306 with sysbench's sbtest (make bench prepares it), valgrind,
# sysbench and haproxy.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
target=${1:?usage: hack/callgrind.sh proxy|govern|haproxy [auto|disable] [events]}
mode=${2:-auto}
events=${3:-10000}
bin=${CG_BIN:-$ROOT/bin/pisa-proxy}
test=${CG_TEST:-oltp_point_select}
threads=${CG_THREADS:-8}
port=${CG_PORT:-24610}
admin=$((port + 50))
case $mode in auto | disable) ;; *)
	echo "PS_MODE: auto or disable" >&2
	exit 2
	;;
esac
"$ROOT/hack/ensure-packages.sh" valgrind:/usr/bin/valgrind sysbench:/usr/bin/sysbench haproxy:/usr/sbin/haproxy
work=$(mktemp -d /tmp/pisa-callgrind.XXXXXX)
pid=""
cleanup() {
	[ -z "$pid" ] || kill -TERM "$pid" 2>/dev/null || true
	[ -z "$pid" ] || wait "$pid" 2>/dev/null || true
	if [ "${CG_KEEP:-}" = 1 ]; then echo "kept: $work"; else rm -rf "$work"; fi
}
trap cleanup EXIT

user=root pass=""
node() { # name role
	printf '\n[[mysql.node]]\nname = "%s"\nhost = "127.0.0.1"\nport = 3306\nuser = "root"\npassword = ""\ndb = "sbtest"\nrole = "%s"\n' "$1" "$2"
}
listener() { # name nodes
	printf '[admin]\nhost = "127.0.0.1"\nport = %s\n\n[[proxy.config]]\nname = "%s"\nlisten_addr = "127.0.0.1:%s"\n' "$admin" "$1" "$port"
	printf 'user = "root"\npassword = ""\nallow_passwordless = true\ndb = "sbtest"\nbackend_type = "mysql"\npool_size = 64\n\n'
	printf '[proxy.config.simple_loadbalance]\nbalance_type = "random"\nnodes = [%s]\n' "$2"
}
case $target in
proxy)
	{ listener bench '"ds001"'; node ds001 readwrite; } >"$work/conf.toml"
	cmd=("$bin" daemon -c "$work/conf.toml")
	;;
govern)
	# The rules of bench.sh's "govern" target: none matches a benchmark statement.
	{
		listener govern '"ds001", "ds002"'
		cat <<-'EOF2'

			[proxy.config.access]
			[[proxy.config.access.users]]
			user = "bench"
			password = "bench-secret"
			schemas = ["sbtest"]
			tables = ["sbtest.*"]
			kinds = ["read", "write"]

			[[proxy.config.plugin.circuit_break]]
			name = "bench-never"
			regex = ["^DROP TABLE pisa_bench_never"]
			fingerprint = ["select * from pisa_bench_never"]

			[[proxy.config.plugin.concurrency_control]]
			name = "bench-never"
			regex = ["from pisa_bench_never_report"]
			max_concurrency = 5
			duration = 60

			[proxy.config.read_write_splitting.static]
			default_target = "read"

			[[proxy.config.read_write_splitting.static.rule]]
			name = "bench-never"
			type = "regex"
			regex = ["^SELECT .* FROM pisa_bench_never"]
			target = "readwrite"
			algorithm_name = "random"
		EOF2
		node ds001 readwrite
		node ds002 read
	} >"$work/conf.toml"
	user=bench pass=bench-secret
	cmd=("$bin" daemon -c "$work/conf.toml")
	;;
haproxy)
	printf 'global\n    maxconn 4000\ndefaults\n    mode tcp\n    timeout connect 5s\n    timeout client 1h\n    timeout server 1h\nlisten mariadb\n    bind 127.0.0.1:%s\n    server db1 127.0.0.1:3306\n' "$port" >"$work/haproxy.cfg"
	cmd=(haproxy -db -f "$work/haproxy.cfg")
	;;
*)
	echo "TARGET: proxy, govern or haproxy" >&2
	exit 2
	;;
esac

# Go's asynchronous preemption signals trip callgrind (an assertion in its signal
# handling): off for the run.
GODEBUG=asyncpreemptoff=1 valgrind --tool=callgrind --callgrind-out-file="$work/cg" "${cmd[@]}" </dev/null >"$work/log" 2>&1 &
pid=$!
for _ in $(seq 1 300); do
	mariadb --no-defaults -h127.0.0.1 -P"$port" -u"$user" ${pass:+-p"$pass"} -e 'SELECT 1' sbtest >/dev/null 2>&1 && break
	kill -0 "$pid" 2>/dev/null || {
		tail -20 "$work/log"
		exit 1
	}
	sleep 0.5
done
sb=(sysbench "$test" --db-driver=mysql --mysql-host=127.0.0.1 --mysql-port="$port" --mysql-user="$user" --mysql-password="$pass"
	--mysql-db=sbtest --tables=4 --table-size=10000 --threads="$threads" --db-ps-mode="$mode" --time=0)
"${sb[@]}" --events=2000 run >/dev/null 2>&1
callgrind_control -z "$pid" >/dev/null 2>&1
out=$("${sb[@]}" --events="$events" run 2>&1)
callgrind_control -d "$pid" >/dev/null 2>&1
sleep 1
queries=$(awk '/^ +queries:/ {print $2; exit}' <<<"$out")
file=$(ls -t "$work"/cg.* | head -1)
ir=$(awk '/^summary:/ {print $2; exit}' "$file")
echo "$target $mode $test threads=$threads queries=$queries instructions=$ir per_query=$(awk -v a="$ir" -v b="$queries" 'BEGIN {printf "%.0f", a / b}')"
# Self instructions per query by function (callgrind_annotate's own totals attribute
# nearly everything to one frame of a Go binary), top 25.
awk -v q="$queries" '
function nm(s,   id) { if (match(s, /^\([0-9]+\)/)) { id = substr(s, 2, RLENGTH - 2); s = substr(s, RLENGTH + 2); if (s != "") names[id] = s; else s = names[id] } return s }
/^fn=/ { fn = nm(substr($0, 4)); next }
/^cfn=/ { nm(substr($0, 5)); next }
/^calls=/ { skip = 1; next }
/^[0-9+*-]/ { if (skip) { skip = 0; next } self[fn] += $2; next }
END { for (f in self) printf "%10.0f/q  %s\n", self[f] / q, f }' "$file" | sort -rn | head -25
