#!/usr/bin/env bash
# sysbench oltp_read_write through pisa-proxy while the backend restarts, and while the primary
# is replaced by a promoted replica: the errors the client sees with and without
# [proxy.config.failover] (docs/proxy.md, "Surviving a backend restart").
#
#   hack/failover-bench.sh [restart|promote|steady]...   (default: restart promote; steady: no
#                                                         fault, what the option costs)
#
# Starts its own servers (hack/mariadb.sh, hack/replication.sh) and one pisa-proxy with two
# listeners on the same nodes: "plain" (no failover) and "failover" (delayed_retry and
# transaction_replay). Each scenario runs sysbench once per listener; FAULT_AT seconds into the
# run the fault happens. sysbench runs with --mysql-ignore-errors (an error is counted and the
# transaction retried) only with FB_IGNORE=codes (sysbench 1.0.20 crashes reconnecting after a lost
# connection): by default a sysbench thread stops at its first error, and the errors counted are
# the client errors seen, at most one per thread.
#
# Environment: FB_PORT (first port, default 24500; uses FB_PORT..FB_PORT+13), FB_TIME (20),
# FB_THREADS (8), FAULT_AT (5), FB_PS_MODE (disable: the text protocol; auto: prepared
# statements), FB_TABLES (4), FB_TABLE_SIZE (10000).
set -euo pipefail
cd "$(dirname "$0")/.."
PORT0=${FB_PORT:-24500}
TIME=${FB_TIME:-20}
THREADS=${FB_THREADS:-8}
FAULT_AT=${FAULT_AT:-5}
PS_MODE=${FB_PS_MODE:-disable}
TABLES=${FB_TABLES:-4}
TABLE_SIZE=${FB_TABLE_SIZE:-10000}
SCENARIOS=("$@")
[ ${#SCENARIOS[@]} -gt 0 ] || SCENARIOS=(restart promote)
command -v sysbench >/dev/null || { echo "failover-bench: sysbench not found (apt-get install -y sysbench)" >&2; exit 1; }

WORK=$(mktemp -d "${TMPDIR:-/tmp}/failover-bench.XXXXXX")
DIRS=()
PROXY_PID=
cleanup() {
	[ -n "$PROXY_PID" ] && kill "$PROXY_PID" 2>/dev/null || true
	for d in "${DIRS[@]}"; do hack/mariadb.sh stop "$d" >/dev/null 2>&1 || true; done
	[ -n "${FB_KEEP:-}" ] || rm -rf "$WORK"
}
trap cleanup EXIT
export PISA_MARIADB_OWNER_PID=$$

go build -o "$WORK/pisa-proxy" ./cmd/pisa-proxy

sb() { # sb <port> <command> [args...]
	local port=$1 cmd=$2
	shift 2
	sysbench oltp_read_write --db-driver=mysql --mysql-host=127.0.0.1 --mysql-port="$port" \
		--mysql-user=root --mysql-password=rootpw --mysql-db=sbtest --tables="$TABLES" \
		--table-size="$TABLE_SIZE" --db-ps-mode="$PS_MODE" "$@" "$cmd"
}

# proxy_config <nodes toml> <rw: "" or the read_write_splitting table>
proxy_config() {
	local nodes=$1 rw=$2 l
	{
		printf '[admin]\nhost = "127.0.0.1"\nport = %d\n' $((PORT0 + 12))
		for l in plain failover; do
			local port=$((PORT0 + 10))
			[ "$l" = failover ] && port=$((PORT0 + 11))
			printf '\n[[proxy.config]]\nname = "%s"\nlisten_addr = "127.0.0.1:%d"\nuser = "root"\npassword = "rootpw"\ndb = "sbtest"\nbackend_type = "mysql"\n' "$l" "$port"
			printf '%s\n' "$rw"
			if [ "$l" = failover ]; then
				printf '[proxy.config.failover]\ndelayed_retry = true\ntransaction_replay = true\ndelayed_retry_timeout = "30s"\n'
			fi
		done
		printf '%s\n' "$nodes"
	} >"$WORK/proxy.toml"
}

start_proxy() {
	[ -n "$PROXY_PID" ] && { kill "$PROXY_PID" 2>/dev/null || true; wait "$PROXY_PID" 2>/dev/null || true; }
	"$WORK/pisa-proxy" daemon -c "$WORK/proxy.toml" >"$WORK/proxy.log" 2>&1 &
	PROXY_PID=$!
	local i
	for i in $(seq 100); do
		curl -fs "http://127.0.0.1:$((PORT0 + 12))/readyz" >/dev/null 2>&1 && return 0
		sleep 0.1
	done
	cat "$WORK/proxy.log" >&2
	echo "failover-bench: pisa-proxy not ready" >&2
	exit 1
}

sql() { mariadb --no-defaults -h127.0.0.1 -P"$1" -uroot -N -B -e "$2"; }

# run_one <label> <listener port> <fault command...>: sysbench with the fault at FAULT_AT.
run_one() {
	local label=$1 port=$2
	shift 2
	local ignore=()
	[ -n "${FB_IGNORE:-}" ] && ignore=(--mysql-ignore-errors="$FB_IGNORE")
	sb "$port" run --threads="$THREADS" --time="$TIME" --report-interval=1 "${ignore[@]}" \
		>"$WORK/${label////-}.out" 2>&1 &
	local sbpid=$!
	sleep "$FAULT_AT"
	"$@"
	local rc=0
	wait "$sbpid" || rc=$?
	local tx errs reconn
	tx=$(awk '/transactions:/ {print $2}' "$WORK/${label////-}.out")
	errs=$(awk '/ignored errors:/ {print $3}' "$WORK/${label////-}.out")
	reconn=$(awk '/reconnects:/ {print $2}' "$WORK/${label////-}.out")
	local codes
	# Without --mysql-ignore-errors a thread stops at its first error (FATAL: ... error N):
	# the errors the client saw, at most one per thread.
	local fatal codes
	fatal=$(grep -c 'FATAL: .*returned error' "$WORK/${label////-}.out" || true)
	codes=$(grep -oE 'returned error [0-9]+' "$WORK/${label////-}.out" | sort | uniq -c | awk '{printf "%s×%s ", $1, $4}' || true)
	printf '%-18s sysbench exit %d: %s transactions, %s client errors (threads stopped) %s, %s ignored errors, %s reconnects\n' \
		"$label" "$rc" "${tx:-?}" "$fatal" "${codes:+(}${codes% }${codes:+)}" "${errs:-0}" "${reconn:-0}"
}

scenario_restart() {
	local dir
	dir=$(hack/mariadb.sh start "$PORT0" | tail -n1)
	DIRS+=("$dir")
	sql "$PORT0" "CREATE DATABASE IF NOT EXISTS sbtest; CREATE USER IF NOT EXISTS root@'%' IDENTIFIED BY ''; "
	sb "$PORT0" prepare --threads="$TABLES" --mysql-user=root --mysql-password= >/dev/null
	proxy_config "$(printf '[[mysql.node]]\nname = "db"\nhost = "127.0.0.1"\nport = %d\nuser = "root"\npassword = ""\ndb = "sbtest"\n' "$PORT0")" ""
	start_proxy
	local l port
	for l in plain failover; do
		port=$((PORT0 + 10))
		[ "$l" = failover ] && port=$((PORT0 + 11))
		run_one "restart/$l" "$port" bash -c "hack/mariadb.sh shutdown '$dir' && hack/mariadb.sh restart '$dir' >/dev/null"
		sleep 2
	done
	hack/mariadb.sh stop "$dir" >/dev/null
}

# steady: no fault, both listeners twice, alternating: what the option costs.
scenario_steady() {
	local dir
	dir=$(hack/mariadb.sh start "$PORT0" | tail -n1)
	DIRS+=("$dir")
	sql "$PORT0" "CREATE DATABASE IF NOT EXISTS sbtest"
	sb "$PORT0" prepare --threads="$TABLES" --mysql-user=root --mysql-password= >/dev/null
	proxy_config "$(printf '[[mysql.node]]\nname = "db"\nhost = "127.0.0.1"\nport = %d\nuser = "root"\npassword = ""\ndb = "sbtest"\n' "$PORT0")" ""
	start_proxy
	local round l port
	for round in 1 2; do
		for l in plain failover; do
			port=$((PORT0 + 10))
			[ "$l" = failover ] && port=$((PORT0 + 11))
			run_one "steady$round/$l" "$port" true
		done
	done
	hack/mariadb.sh stop "$dir" >/dev/null
}

scenario_promote() {
	local l port primary=$((PORT0 + 1)) replica=$((PORT0 + 2))
	for l in plain failover; do
		local out pdir rdir
		out=$(hack/replication.sh start "$primary" "$replica")
		pdir=$(awk '$1 == "primary" {print $3}' <<<"$out")
		rdir=$(awk '$1 == "replica" {print $3}' <<<"$out")
		DIRS+=("$pdir" "$rdir")
		sql "$primary" "CREATE DATABASE IF NOT EXISTS sbtest"
		sb "$primary" prepare --threads="$TABLES" --mysql-user=root --mysql-password= >/dev/null
		hack/replication.sh wait "$primary" "$replica"
		local nodes rw
		nodes=$(printf '[[mysql.node]]\nname = "a"\nhost = "127.0.0.1"\nport = %d\nuser = "root"\npassword = ""\ndb = "sbtest"\nrole = "readwrite"\n' "$primary")
		nodes+=$(printf '\n[[mysql.node]]\nname = "b"\nhost = "127.0.0.1"\nport = %d\nuser = "root"\npassword = ""\ndb = "sbtest"\nrole = "read"\n' "$replica")
		rw=$(printf '[proxy.config.read_write_splitting.dynamic]\ndefault_target = "readwrite"\n[proxy.config.read_write_splitting.dynamic.discovery]\ntype = "mha"\nuser = "root"\npassword = ""\nmonitor_period = 100\nconnect_period = 100\nconnect_timeout = 500\nconnect_failure_threshold = 1\nping_period = 100\nping_timeout = 500\nping_failure_threshold = 1\nreplication_lag_period = 100\nreplication_lag_timeout = 500\nreplication_lag_failure_threshold = 1\nmax_replication_lag = 5\nread_only_period = 100\nread_only_timeout = 500\nread_only_failure_threshold = 1\n')
		proxy_config "$nodes" "$rw"
		start_proxy
		port=$((PORT0 + 10))
		[ "$l" = failover ] && port=$((PORT0 + 11))
		run_one "promote/$l" "$port" bash -c "hack/mariadb.sh shutdown '$pdir' && hack/replication.sh promote $replica >/dev/null"
		hack/replication.sh stop "$pdir" "$rdir" >/dev/null 2>&1 || true
		sleep 1
	done
}

echo "sysbench oltp_read_write, $THREADS threads, ${TIME}s, --db-ps-mode=$PS_MODE, fault at ${FAULT_AT}s"
for s in "${SCENARIOS[@]}"; do
	"scenario_$s"
done
