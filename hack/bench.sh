#!/usr/bin/env bash
# sysbench: MariaDB directly vs through HAProxy (TCP mode, the L4 floor) vs through
# pisa-proxy vs through a pisa-proxy with governance on vs through a sharding pisa-proxy,
# alternating targets over rounds in one run
# (see ARCHITECTURE.md, "Performance bars", and docs/sharding.md, "Performance"). Prints
# QPS, p95 latency and, for each proxy, its CPU time per query (from /proc/PID/stat); then
# each target's QPS as a ratio of direct and of HAProxy, its CPU per query as a ratio of
# HAProxy's and of the unsharded pisa-proxy's.
#
# Targets:
#   direct   MariaDB on 127.0.0.1:3306, database sbtest
#   haproxy  HAProxy in TCP mode in front of it
#   proxy    pisa-proxy, one listener, database sbtest
#   govern   pisa-proxy, the same listener with governance and read/write splitting on:
#            access control (sysbench logs in as the listed user "bench", allowed the
#            schema sbtest, its tables, reads and writes), a circuit-break rule, a
#            concurrency-control rule (regexps and a fingerprint no benchmark statement
#            matches), read/write splitting with a rule matching nothing, the default to the
#            reader and the writer and reader both on the one MariaDB: every statement pays
#            for parsing, the checks and the route decision, none is refused or limited
#   shard    a second pisa-proxy process whose sbtest1..N are sharded (database_strategy,
#            mod on id) over two datanodes: schemas sbtest_s0 (even ids) and sbtest_s1 (odd
#            ids) on the same MariaDB, copied from sbtest once and kept; sysbench uses
#            --mysql-db=sbtest_s0. A transaction on both datanodes is an XA transaction
#            (transaction_mode "xa", decision log in $WORK), so oltp_read_only/oltp_read_write
#            run as they are (the XA share of their cost), and their "+notrx" variants too.
#   shardbe  shard with transaction_mode "best_effort" (BEGIN and one COMMIT per datanode,
#            not atomic): opt-in (add it to BENCH_TARGETS with shard); the summary then shows
#            the XA share of oltp_read_only/oltp_read_write (shard vs shardbe)
#   base     see BENCH_BASE_BIN
#   mux      pisa-proxy, proxy's listener with a pool of BENCH_MUX_OPEN (32) backend
#            connections, run with BENCH_MUX_THREADS (256) sysbench threads on the tests in
#            BENCH_MUX_TESTS (oltp_read_only, prepared statements on): multiplexing (prepared
#            statements do not pin; transactions hold a connection until COMMIT). One row per
#            test and round, at the first thread count's turn; the summary compares it with
#            direct at BENCH_MUX_BASE threads (32)
#
# Tests: sysbench test names; NAME+notrx is NAME with --skip_trx=on (no BEGIN/COMMIT) and
# --mysql-ignore-errors=1062,1213,1020,1205 (without transactions oltp_read_write's
# DELETE+INSERT of a random id races between threads: 1062, counted under "errors").
# A +notrx test runs only on the targets in BENCH_NOTRX_TARGETS. NAME+text (after +notrx
# if both) is NAME with --db-ps-mode=disable: the text protocol (COM_QUERY) instead of
# prepared statements; BENCH_PS_MODES adds the +text rows to every test.
#
# Environment (defaults):
#   BENCH_TIME=20            seconds per run ("20s" works too)
#   BENCH_THREADS="1 8 32"   sysbench thread counts
#   BENCH_TESTS="oltp_point_select oltp_read_only oltp_read_write" and, when "shard" is a
#                            target, "oltp_read_only+notrx" (add oltp_read_write+notrx for
#                            the sharded read/write mix)
#   BENCH_TARGETS="direct haproxy proxy govern shard mux"
#   BENCH_MUX_THREADS=256 BENCH_MUX_OPEN=32 BENCH_MUX_TESTS="oltp_read_only" BENCH_MUX_BASE=32
#   BENCH_NOTRX_TARGETS="proxy base shard"   targets that run the +notrx tests
#   BENCH_ROUNDS=2
#   BENCH_PS_MODES="auto disable"   sysbench --db-ps-mode values: each test runs once per
#                            mode (auto = prepared statements on: NAME; disable = the text
#                            protocol: NAME+text). BENCH_PS_MODE=MODE (one mode) is kept.
#   BENCH_TABLES=4 BENCH_TABLE_SIZE=10000   the sbtest data set (prepared once, kept)
#   BENCH_WARMUP=5           seconds of warm-up against MariaDB before round 1 (0: none)
#   BENCH_PROXY_BIN          use this pisa-proxy binary instead of building bin/pisa-proxy
#   BENCH_PROXY_ENV          extra environment for pisa-proxy, e.g. "GOMAXPROCS=1"
#   BENCH_BASE_BIN           a second pisa-proxy binary (e.g. built from an older commit):
#                            adds the target "base", run in the same rounds, for A/B runs
#   BENCH_BASE_CONF=proxy    the configuration "base" runs: proxy's listener, or govern's
#                            (A/B of governance and read/write splitting)
#   BENCH_BASE_ENV           extra environment for "base" (BENCH_BASE_BIN defaults to the
#                            proxy's binary when only this is set: A/B of settings)
#   BENCH_PORT=13306         first port tried for HAProxy and the proxies (admin ports from +50)
#   BENCH_KEEP=1             keep the work directory (configs, logs, raw results)
# Results go to stdout and to /tmp/pisa-bench-<date>.txt (raw rows: .tsv next to it).
set -euo pipefail
shopt -s inherit_errexit

ROOT=$(cd "$(dirname "$0")/.." && pwd)
BENCH_TIME=${BENCH_TIME:-20}
BENCH_TIME=${BENCH_TIME%s}
BENCH_THREADS=${BENCH_THREADS:-"1 8 32"}
if [ -z "${BENCH_TARGETS:-}" ]; then
	BENCH_TARGETS="direct haproxy proxy govern shard mux"
	if [ -n "${BENCH_BASE_BIN:-}${BENCH_BASE_ENV:-}" ]; then BENCH_TARGETS="direct haproxy base proxy govern shard mux"; fi
fi
if [ -z "${BENCH_TESTS:-}" ]; then
	BENCH_TESTS="oltp_point_select oltp_read_only oltp_read_write"
	case " $BENCH_TARGETS " in *" shard "*) BENCH_TESTS="$BENCH_TESTS oltp_read_only+notrx" ;; esac
fi
BENCH_NOTRX_TARGETS=${BENCH_NOTRX_TARGETS:-"proxy base shard"}
BENCH_MUX_THREADS=${BENCH_MUX_THREADS:-256}
BENCH_MUX_OPEN=${BENCH_MUX_OPEN:-32}
BENCH_MUX_TESTS=${BENCH_MUX_TESTS:-oltp_read_only}
BENCH_MUX_BASE=${BENCH_MUX_BASE:-32}
BENCH_ROUNDS=${BENCH_ROUNDS:-2}
BENCH_PS_MODES=${BENCH_PS_MODES:-${BENCH_PS_MODE:-auto disable}}
for mode in $BENCH_PS_MODES; do
	case $mode in
	auto | disable) ;;
	*)
		echo "BENCH_PS_MODES: unknown sysbench --db-ps-mode $mode (auto or disable)" >&2
		exit 2
		;;
	esac
done
# Each test once per ps mode: NAME for auto, NAME+text for disable.
tests=""
for t in $BENCH_TESTS; do
	for mode in $BENCH_PS_MODES; do
		case $mode:$t in
		auto:* | disable:*+text) tests="$tests $t" ;;
		disable:*) tests="$tests $t+text" ;;
		esac
	done
done
BENCH_TESTS=$(tr ' ' '\n' <<<"$tests" | awk 'NF && !seen[$0]++' | tr '\n' ' ')
BENCH_TESTS=${BENCH_TESTS% }
BENCH_TABLES=${BENCH_TABLES:-4}
BENCH_TABLE_SIZE=${BENCH_TABLE_SIZE:-10000}
BENCH_WARMUP=${BENCH_WARMUP:-5}
BENCH_PORT=${BENCH_PORT:-13306}
DB_HOST=127.0.0.1
DB_PORT=3306

STAMP=$(date +%Y%m%d-%H%M%S)
RESULTS=/tmp/pisa-bench-$STAMP.txt
RAW=/tmp/pisa-bench-$STAMP.tsv
WORK=$(mktemp -d /tmp/pisa-bench-work.XXXXXX)
CLK_TCK=$(getconf CLK_TCK)

HA_PID="" PROXY_PID="" BASE_PID="" GOVERN_PID="" SHARD_PID="" SHARDBE_PID="" MUX_PID=""
SHARD_DBS="sbtest_s0 sbtest_s1"
declare -A PORT=() PID=() BROKEN=() DB=() DBUSER=()
notstarted=()

exec > >(tee -a "$RESULTS") 2>&1

log() { echo "[$(date +%H:%M:%S)] $*"; }

# alive <pid>: exists and is not a zombie.
alive() {
	local st
	st=$(awk '{sub(/.*\) /, ""); print $1}' "/proc/$1/stat" 2>/dev/null) || return 1
	[ -n "$st" ] && [ "$st" != Z ] && [ "$st" != X ]
}

stop_pid() {
	local pid=$1 i
	[ -n "$pid" ] || return 0
	kill -TERM "$pid" 2>/dev/null || return 0
	for i in $(seq 1 50); do
		alive "$pid" || break
		sleep 0.1
	done
	alive "$pid" && kill -KILL "$pid" 2>/dev/null
	wait "$pid" 2>/dev/null || true
}

cleanup() {
	local rc=$?
	trap - EXIT INT TERM
	stop_pid "$PROXY_PID"
	stop_pid "$BASE_PID"
	stop_pid "$GOVERN_PID"
	stop_pid "$SHARD_PID"
	stop_pid "$SHARDBE_PID"
	stop_pid "$MUX_PID"
	stop_pid "$HA_PID"
	if [ "${BENCH_KEEP:-}" = 1 ]; then
		echo "work directory kept: $WORK"
	else
		rm -rf "$WORK"
	fi
	echo "results: $RESULTS (raw rows: $RAW)"
	exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

client() { mariadb --no-defaults --connect-timeout=3 -h"$DB_HOST" -P"$DB_PORT" -uroot "$@"; }

port_in_use() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

free_port() {
	local p=$1
	while port_in_use "$p"; do p=$((p + 1)); done
	echo "$p"
}

# cpu_ticks <pid>: utime+stime of the whole process (all threads), in clock ticks.
cpu_ticks() {
	local stat rest
	stat=$(cat "/proc/$1/stat" 2>/dev/null) || {
		echo -1
		return
	}
	rest=${stat##*) } # fields from 3 (state) on; comm may contain spaces
	# shellcheck disable=SC2086
	set -- $rest
	echo $((${12} + ${13}))
}

# sb_common [db [user:password]]
sb_common() {
	local cred=${2:-root:}
	echo --db-driver=mysql --mysql-host=127.0.0.1 --mysql-user="${cred%%:*}" --mysql-password="${cred#*:}" \
		--mysql-db="${1:-sbtest}" --tables="$BENCH_TABLES" --table-size="$BENCH_TABLE_SIZE"
}

# test_args <test>: the sysbench test name and its options for a test spec
# NAME[+notrx][+text].
test_args() {
	local t=$1 mode=auto
	case $t in *+text)
		t=${t%+text}
		mode=disable
		;;
	esac
	case $t in
	*+notrx) echo "${t%+notrx}" --skip_trx=on --mysql-ignore-errors=1062,1213,1020,1205 --db-ps-mode=$mode ;;
	*) echo "$t" --db-ps-mode=$mode ;;
	esac
}

has_word() { case " $1 " in *" $2 "*) return 0 ;; esac; return 1; }

# ---------------------------------------------------------------- requirements
"$ROOT/hack/ensure-packages.sh" sysbench:/usr/bin/sysbench haproxy:/usr/sbin/haproxy curl:/usr/bin/curl
HAPROXY=$(command -v haproxy || echo /usr/sbin/haproxy)
"$ROOT/hack/ensure-mariadb.sh"

log "pisa bench: time=${BENCH_TIME}s threads=[$BENCH_THREADS] tests=[$BENCH_TESTS] targets=[$BENCH_TARGETS] rounds=$BENCH_ROUNDS ps-modes=[$BENCH_PS_MODES]"
log "machine: $(nproc) cpus, $(uname -r), $(client -N -e 'SELECT @@version'), $(sysbench --version), $("$HAPROXY" -v | head -1 | cut -d' ' -f1-3)"

# ---------------------------------------------------------------- data set
tables=$(client -N -e "SELECT COUNT(*) FROM information_schema.tables WHERE table_schema='sbtest' AND table_name LIKE 'sbtest%'")
rows=0
if [ "$tables" = "$BENCH_TABLES" ]; then
	rows=$(client -N -e "SELECT COUNT(*) FROM sbtest.sbtest$BENCH_TABLES" 2>/dev/null || echo 0)
fi
if [ "$tables" != "$BENCH_TABLES" ] || [ "$rows" != "$BENCH_TABLE_SIZE" ]; then
	log "preparing sbtest: $BENCH_TABLES tables x $BENCH_TABLE_SIZE rows"
	client -e "DROP DATABASE IF EXISTS sbtest; CREATE DATABASE sbtest"
	# shellcheck disable=SC2046
	sysbench oltp_read_write $(sb_common) --mysql-port="$DB_PORT" --threads="$BENCH_TABLES" prepare >"$WORK/prepare.log" 2>&1 || {
		tail -20 "$WORK/prepare.log"
		exit 1
	}
	sbtest_fresh=1
else
	log "sbtest already prepared ($BENCH_TABLES tables x $BENCH_TABLE_SIZE rows)"
fi

# The shard target's data: sbtestN's even ids in sbtest_s0.sbtestN, odd ids in
# sbtest_s1.sbtestN (database_strategy, mod on id, datanodes in that order), copied from
# sbtest and kept; copied again when sbtest was prepared again or a count is off.
prepare_shards() {
	local ok=1 n want have db
	if [ -z "${sbtest_fresh:-}" ]; then
		for n in $(seq 1 "$BENCH_TABLES"); do
			want="$((BENCH_TABLE_SIZE / 2)) $(((BENCH_TABLE_SIZE + 1) / 2))"
			have=$(client -N -e "SELECT (SELECT COUNT(*) FROM sbtest_s0.sbtest$n), (SELECT COUNT(*) FROM sbtest_s1.sbtest$n)" 2>/dev/null | tr '\t' ' ') || have=""
			[ "$have" = "$want" ] || ok=""
		done
		for db in $SHARD_DBS; do
			have=$(client -N -e "SELECT COUNT(*) FROM information_schema.tables WHERE table_schema='$db' AND table_name LIKE 'sbtest%'")
			[ "$have" = "$BENCH_TABLES" ] || ok=""
		done
	else
		ok=""
	fi
	if [ -n "$ok" ]; then
		log "shard data already copied (sbtest_s0: even ids, sbtest_s1: odd ids)"
		return
	fi
	log "copying sbtest into sbtest_s0 (even ids) and sbtest_s1 (odd ids)"
	local sql="DROP DATABASE IF EXISTS sbtest_s0; DROP DATABASE IF EXISTS sbtest_s1; CREATE DATABASE sbtest_s0; CREATE DATABASE sbtest_s1;"
	for n in $(seq 1 "$BENCH_TABLES"); do
		sql+=" CREATE TABLE sbtest_s0.sbtest$n LIKE sbtest.sbtest$n; INSERT INTO sbtest_s0.sbtest$n SELECT * FROM sbtest.sbtest$n WHERE id % 2 = 0;"
		sql+=" CREATE TABLE sbtest_s1.sbtest$n LIKE sbtest.sbtest$n; INSERT INTO sbtest_s1.sbtest$n SELECT * FROM sbtest.sbtest$n WHERE id % 2 = 1;"
	done
	client -e "$sql"
}
if has_word "$BENCH_TARGETS" shard || has_word "$BENCH_TARGETS" shardbe; then prepare_shards; fi

# ---------------------------------------------------------------- targets
PORT[direct]=$DB_PORT
PID[direct]=""
DB_PID=$(ss -Htlnp "sport = :$DB_PORT" 2>/dev/null | grep -o 'pid=[0-9]*' | head -1 | cut -d= -f2 || true)

wait_sql() { # port seconds [db]
	local deadline=$((SECONDS + $2))
	until mariadb --no-defaults --connect-timeout=2 -h127.0.0.1 -P"$1" -uroot -e 'SELECT 1' "${3:-sbtest}" >/dev/null 2>&1; do
		[ "$SECONDS" -lt "$deadline" ] || return 1
		sleep 0.2
	done
}

start_haproxy() {
	local port
	port=$(free_port "$BENCH_PORT")
	cat >"$WORK/haproxy.cfg" <<-EOF
		global
		    maxconn 4000
		defaults
		    mode tcp
		    option tcpka
		    timeout connect 5s
		    timeout client 1h
		    timeout server 1h
		    maxconn 4000
		listen mariadb
		    bind 127.0.0.1:$port
		    server db1 $DB_HOST:$DB_PORT
	EOF
	"$HAPROXY" -c -q -f "$WORK/haproxy.cfg" || return 1
	"$HAPROXY" -db -f "$WORK/haproxy.cfg" </dev/null >"$WORK/haproxy.log" 2>&1 &
	HA_PID=$!
	if ! wait_sql "$port" 10; then
		tail -20 "$WORK/haproxy.log"
		return 1
	fi
	PORT[haproxy]=$port
	PID[haproxy]=$HA_PID
	log "haproxy: 127.0.0.1:$port pid $HA_PID"
}

# proxy_conf <port> <admin>: the unsharded listener.
proxy_conf() {
	cat <<-EOF
		[admin]
		host = "127.0.0.1"
		port = $2

		[[proxy.config]]
		name = "bench"
		listen_addr = "127.0.0.1:$1"
		user = "root"
		password = ""
		allow_passwordless = true
		db = "sbtest"
		backend_type = "mysql"
		pool_size = 64

		[proxy.config.simple_loadbalance]
		balance_type = "random"
		nodes = ["ds001"]

		[[mysql.node]]
		name = "ds001"
		host = "$DB_HOST"
		port = $DB_PORT
		user = "root"
		password = ""
		db = "sbtest"
		role = "readwrite"
	EOF
}

# govern_conf <port> <admin>: proxy_conf's listener with governance and read/write
# splitting configured; no rule matches a benchmark statement (see "govern" above).
govern_conf() {
	cat <<-EOF
		[admin]
		host = "127.0.0.1"
		port = $2

		[[proxy.config]]
		name = "govern"
		listen_addr = "127.0.0.1:$1"
		user = "root"
		password = ""
		allow_passwordless = true
		db = "sbtest"
		backend_type = "mysql"
		pool_size = 64

		[proxy.config.simple_loadbalance]
		balance_type = "random"
		nodes = ["ds001", "ds002"]

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

		[[mysql.node]]
		name = "ds001"
		host = "$DB_HOST"
		port = $DB_PORT
		user = "root"
		password = ""
		db = "sbtest"
		role = "readwrite"

		[[mysql.node]]
		name = "ds002"
		host = "$DB_HOST"
		port = $DB_PORT
		user = "root"
		password = ""
		db = "sbtest"
		role = "read"
	EOF
}

# shard_conf <port> <admin>: sbtest1..N sharded by id % 2 over ds001 (sbtest_s0) and
# ds002 (sbtest_s1), both on the local MariaDB (docs/sharding.md).
shard_conf() {
	local n
	cat <<-EOF
		[admin]
		host = "127.0.0.1"
		port = $2

		[proxy.xa]
		proxy_id = "bench-shard"
		log_file = "$WORK/xa-shard.log"

		[[proxy.config]]
		name = "shard"
		listen_addr = "127.0.0.1:$1"
		user = "root"
		password = ""
		allow_passwordless = true
		db = "sbtest_s0"
		backend_type = "mysql"
		pool_size = 64

		[proxy.config.simple_loadbalance]
		balance_type = "random"
		nodes = ["ds001"]
	EOF
	for n in $(seq 1 "$BENCH_TABLES"); do
		cat <<-EOF

			[[proxy.config.sharding]]
			table_name = "sbtest$n"
			actual_datanodes = ["ds001", "ds002"]
			[proxy.config.sharding.database_strategy]
			database_sharding_algorithm_name = "mod"
			database_sharding_column = "id"
		EOF
	done
	cat <<-EOF

		[[mysql.node]]
		name = "ds001"
		host = "$DB_HOST"
		port = $DB_PORT
		user = "root"
		password = ""
		db = "sbtest_s0"
		role = "readwrite"

		[[mysql.node]]
		name = "ds002"
		host = "$DB_HOST"
		port = $DB_PORT
		user = "root"
		password = ""
		db = "sbtest_s1"
		role = "readwrite"
	EOF
}

# start_proxy <target> <binary> <env>: starts a pisa-proxy as target "proxy", "base"
# (both proxy_conf), "govern" (govern_conf) or "shard" (shard_conf); sets PORT, PID, DB,
# DBUSER and PROXY_PID, BASE_PID, GOVERN_PID or SHARD_PID.
start_proxy() {
	local target=$1 bin=$2 env=$3 pid
	local port admin db=sbtest
	port=$(free_port $((BENCH_PORT + 1)))
	admin=$(free_port $((BENCH_PORT + 50)))
	[ "$admin" != "$port" ] || admin=$(free_port $((port + 1)))
	case $target in
	shard)
		db=sbtest_s0
		shard_conf "$port" "$admin" >"$WORK/$target.toml"
		;;
	shardbe)
		db=sbtest_s0
		shard_conf "$port" "$admin" | sed 's/^backend_type = "mysql"$/&\ntransaction_mode = "best_effort"/;
			s/bench-shard"/bench-shardbe"/; s/xa-shard\.log/xa-shardbe.log/' >"$WORK/$target.toml"
		;;
	govern) govern_conf "$port" "$admin" >"$WORK/$target.toml" ;;
	base)
		case ${BENCH_BASE_CONF:-proxy} in
		proxy) proxy_conf "$port" "$admin" >"$WORK/$target.toml" ;;
		govern) govern_conf "$port" "$admin" | sed 's/^name = "govern"$/name = "base"/' >"$WORK/$target.toml" ;;
		*)
			echo "BENCH_BASE_CONF=$BENCH_BASE_CONF: want proxy or govern"
			return 1
			;;
		esac
		;;
	mux)
		# pool_size is Pisanix's idle capacity (max_idle), not a cap: max_open
		# would stay 64 and the connections above pool_size idle be closed and
		# dialed again (each preparing its statements again).
		proxy_conf "$port" "$admin" | sed "s/^\( *pool_size = \).*/\1$BENCH_MUX_OPEN/;
			s/^\( *\)\[proxy.config.simple_loadbalance\]/\1[proxy.config.pool]\n\1max_open = $BENCH_MUX_OPEN\n\1max_idle = $BENCH_MUX_OPEN\n\n&/" >"$WORK/$target.toml"
		;;
	*) proxy_conf "$port" "$admin" >"$WORK/$target.toml" ;;
	esac
	# shellcheck disable=SC2086
	env $env "$bin" daemon -c "$WORK/$target.toml" </dev/null >"$WORK/$target.log" 2>&1 &
	pid=$!
	case $target in
	base) BASE_PID=$pid ;;
	govern) GOVERN_PID=$pid ;;
	shard) SHARD_PID=$pid ;;
	shardbe) SHARDBE_PID=$pid ;;
	mux) MUX_PID=$pid ;;
	*) PROXY_PID=$pid ;;
	esac
	local deadline=$((SECONDS + 20))
	until curl -fsS -o /dev/null "http://127.0.0.1:$admin/healthz" 2>/dev/null; do
		if ! alive "$pid" || [ "$SECONDS" -ge "$deadline" ]; then
			echo "pisa-proxy ($target): not healthy (admin 127.0.0.1:$admin); log tail:"
			tail -20 "$WORK/$target.log"
			cp "$WORK/$target.log" "/tmp/pisa-bench-$STAMP.$target.log" 2>/dev/null || true
			stop_pid "$pid"
			return 1
		fi
		sleep 0.2
	done
	if ! wait_sql "$port" 10 "$db"; then
		echo "pisa-proxy ($target): healthy but SELECT 1 through 127.0.0.1:$port fails; log tail:"
		tail -20 "$WORK/$target.log"
		cp "$WORK/$target.log" "/tmp/pisa-bench-$STAMP.$target.log" 2>/dev/null || true
		stop_pid "$pid"
		return 1
	fi
	PORT[$target]=$port
	PID[$target]=$pid
	DB[$target]=$db
	if [ "$target" = govern ] || { [ "$target" = base ] && [ "${BENCH_BASE_CONF:-proxy}" = govern ]; }; then
		DBUSER[$target]=bench:bench-secret
	fi
	log "pisa-proxy ($target): 127.0.0.1:$port (admin $admin) pid $pid, $bin${env:+, env $env}"
}

proxy_bin() {
	if [ -n "${BENCH_PROXY_BIN:-}" ]; then
		echo "$BENCH_PROXY_BIN"
		return
	fi
	if [ -e "$WORK/built" ]; then # once per run (proxy and shard share it)
		echo "$ROOT/bin/pisa-proxy"
		return
	fi
	log "building bin/pisa-proxy" >&2
	if ! (cd "$ROOT" && go build -trimpath -o bin/pisa-proxy ./cmd/pisa-proxy) >"$WORK/build.log" 2>&1; then
		echo "pisa-proxy: build failed:" >&2
		tail -20 "$WORK/build.log" >&2
		return 1
	fi
	touch "$WORK/built"
	echo "$ROOT/bin/pisa-proxy"
}

# MariaDB's max_connections (151 by default) must hold every pool the proxy targets keep
# open (pool_size 64 per node: govern and shard have two nodes) and the sysbench threads
# that connect directly or through HAProxy: raised for the run when it is lower.
need=50
for t in $BENCH_THREADS; do [ "$t" -le "$need" ] || need=$t; done
for t in $BENCH_TARGETS; do
	case $t in
	proxy) need=$((need + 64)) ;;
	base) if [ "${BENCH_BASE_CONF:-proxy}" = govern ]; then need=$((need + 128)); else need=$((need + 64)); fi ;;
	govern | shard | shardbe) need=$((need + 128)) ;;
	esac
done
need=$((need + 20))
have=$(client -N -e 'SELECT @@max_connections')
if [ "$have" -lt "$need" ]; then
	client -e "SET GLOBAL max_connections = $need"
	log "MariaDB max_connections raised from $have to $need (the targets' pools and sysbench threads)"
fi

targets=()
for t in $BENCH_TARGETS; do
	case $t in
	direct) targets+=(direct) ;;
	haproxy) if start_haproxy; then targets+=(haproxy); else notstarted+=(haproxy); fi ;;
	proxy)
		if bin=$(proxy_bin) && start_proxy proxy "$bin" "${BENCH_PROXY_ENV:-}"; then
			targets+=(proxy)
		else
			notstarted+=(proxy)
		fi
		;;
	govern)
		if bin=$(proxy_bin) && start_proxy govern "$bin" "${BENCH_PROXY_ENV:-}"; then
			targets+=(govern)
		else
			notstarted+=(govern)
		fi
		;;
	shard | shardbe)
		if bin=$(proxy_bin) && start_proxy "$t" "$bin" "${BENCH_PROXY_ENV:-}"; then
			targets+=("$t")
		else
			notstarted+=("$t")
		fi
		;;
	mux)
		if bin=$(proxy_bin) && start_proxy mux "$bin" "${BENCH_PROXY_ENV:-}"; then
			targets+=(mux)
		else
			notstarted+=(mux)
		fi
		;;
	base)
		if bin=${BENCH_BASE_BIN:-$(proxy_bin)} && start_proxy base "$bin" "${BENCH_BASE_ENV:-}"; then
			targets+=(base)
		else
			notstarted+=(base)
		fi
		;;
	*) log "unknown target $t: skipped" ;;
	esac
done
for t in "${notstarted[@]}"; do log "NOT STARTED: $t failed to start (see above); the others still run"; done
[ ${#targets[@]} -gt 0 ] || {
	log "no target to run"
	exit 1
}

# ---------------------------------------------------------------- runs
if [ "$BENCH_WARMUP" -gt 0 ]; then
	log "warm-up: oltp_read_only ${BENCH_WARMUP}s against MariaDB"
	# shellcheck disable=SC2046
	sysbench oltp_read_only $(sb_common) --mysql-port="$DB_PORT" --threads=4 --time="$BENCH_WARMUP" run >/dev/null 2>&1 || true
fi

printf 'round\ttest\tthreads\ttarget\tqps\tp95_ms\tqueries\tproxy_cpu_us_per_q\tdb_cpu_us_per_q\tstatus\terrors\n' >"$RAW"

# run_one <round> <test> <threads> <target>
run_one() {
	local round=$1 test=$2 threads=$3 target=$4
	local port=${PORT[$target]} pid=${PID[$target]:-}
	case $test in *+notrx*) has_word "$BENCH_NOTRX_TARGETS" "$target" || return 0 ;; esac
	if [ -n "${BROKEN[$target]:-}" ] || { [ -n "$pid" ] && ! alive "$pid"; }; then
		BROKEN[$target]=1
		printf '%s\t%s\t%s\t%s\t-\t-\t-\t-\t-\tdead\n' "$round" "$test" "$threads" "$target" >>"$RAW"
		printf '  %-8s %-26s %3s thr  %s\n' "$target" "$test" "$threads" "SKIPPED: process is gone"
		return
	fi
	local c0=-1 c1=-1 d0=-1 d1=-1 out rc=0
	[ -n "$pid" ] && c0=$(cpu_ticks "$pid")
	[ -n "$DB_PID" ] && d0=$(cpu_ticks "$DB_PID")
	# shellcheck disable=SC2046
	out=$(sysbench $(test_args "$test") $(sb_common "${DB[$target]:-sbtest}" "${DBUSER[$target]:-}") --mysql-port="$port" --threads="$threads" \
		--time="$BENCH_TIME" --percentile=95 --report-interval=0 --histogram=off run 2>&1) || rc=$?
	[ -n "$pid" ] && c1=$(cpu_ticks "$pid")
	[ -n "$DB_PID" ] && d1=$(cpu_ticks "$DB_PID")
	local queries qps p95 errors
	queries=$(awk '/^ +queries:/ {print $2; exit}' <<<"$out")
	qps=$(awk '/^ +queries:/ {gsub(/\(/, "", $3); print $3; exit}' <<<"$out")
	p95=$(awk '/95th percentile:/ {print $3; exit}' <<<"$out")
	errors=$(awk '/^ +ignored errors:/ {print $3; exit}' <<<"$out")
	if [ "$rc" != 0 ] || [ -z "$queries" ] || [ "$queries" = 0 ]; then
		# the first SQL error number sysbench names, if any: "fail:1235"
		local errno
		errno=$(grep -o -m1 -E 'errno = [0-9]+|returned error [0-9]+' <<<"$out" | grep -o -E '[0-9]+$' || true)
		printf '%s\t%s\t%s\t%s\t-\t-\t-\t-\t-\tfail%s\n' "$round" "$test" "$threads" "$target" "${errno:+:$errno}" >>"$RAW"
		printf '  %-8s %-26s %3s thr  FAILED (sysbench rc=%s):\n' "$target" "$test" "$threads" "$rc"
		# each distinct error once (every thread repeats it), else the output's tail
		local msgs
		msgs=$(awk '/FATAL|ERROR|[Ee]rror/ && !seen[$0]++ && n++ < 3' <<<"$out")
		[ -n "$msgs" ] || msgs=$(tail -8 <<<"$out")
		sed 's/^/      /' <<<"$msgs"
		if [ -n "$pid" ] && ! alive "$pid"; then BROKEN[$target]=1; fi
		return
	fi
	local cpu="-" dbcpu="-"
	if [ "$c0" -ge 0 ] && [ "$c1" -ge 0 ]; then
		cpu=$(awk -v d=$((c1 - c0)) -v hz="$CLK_TCK" -v q="$queries" 'BEGIN {printf "%.1f", d / hz * 1e6 / q}')
	fi
	if [ "$d0" -ge 0 ] && [ "$d1" -ge 0 ]; then
		dbcpu=$(awk -v d=$((d1 - d0)) -v hz="$CLK_TCK" -v q="$queries" 'BEGIN {printf "%.1f", d / hz * 1e6 / q}')
	fi
	printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\tok\t%s\n' "$round" "$test" "$threads" "$target" "$qps" "$p95" "$queries" "$cpu" "$dbcpu" "${errors:-0}" >>"$RAW"
	printf '  %-8s %-26s %3s thr  %10s qps  p95 %7s ms  proxy cpu %7s us/q  mariadbd cpu %6s us/q  errors %s\n' \
		"$target" "$test" "$threads" "$qps" "$p95" "$cpu" "$dbcpu" "${errors:-0}"
}

for round in $(seq 1 "$BENCH_ROUNDS"); do
	log "round $round/$BENCH_ROUNDS"
	for test in $BENCH_TESTS; do
		for threads in $BENCH_THREADS; do
			for target in "${targets[@]}"; do
				if [ "$target" = mux ]; then
					# once per test and round, at the first thread count's turn
					if has_word "$BENCH_MUX_TESTS" "$test" && [ "$threads" = "${BENCH_THREADS%% *}" ]; then
						run_one "$round" "$test" "$BENCH_MUX_THREADS" mux
					fi
					continue
				fi
				run_one "$round" "$test" "$threads" "$target"
			done
		done
	done
done

# ---------------------------------------------------------------- summary
echo
echo "Summary (averaged over rounds; QPS ratios are per-round ratios, averaged; cpu = the proxy process's CPU per query;"
echo "cpu x ha, cpu x px = ratio of the averages to haproxy's and to the unsharded pisa-proxy's; errors = sysbench's ignored errors, summed)"
main_targets=$(tr ' ' '\n' <<<"${targets[*]}" | grep -vx mux | tr '\n' ' ') # mux has its own table below
awk -F'\t' -v tests="$BENCH_TESTS" -v threads="$BENCH_THREADS" -v targets="$main_targets" -v notrx="$BENCH_NOTRX_TARGETS" '
NR == 1 { next }
{ k = $2 SUBSEP $3 SUBSEP $4; seen[k] = 1 }
$10 == "ok" {
	qps[k, $1] = $5; n[k]++; sq[k] += $5; sp[k] += $6; se[k] += $11
	if ($8 != "-") { sc[k] += $8; nc[k]++ }
	rounds[$1] = 1
	next
}
{ bad[k] = bad[k] (bad[k] == "" ? "" : " ") $10 }
END {
	nt = split(tests, T, " "); nh = split(threads, H, " "); ng = split(targets, G, " ")
	printf "%-26s %4s  %-8s %10s %8s %9s %9s %9s %8s %8s %7s\n", "test", "thr", "target", "QPS", "p95 ms", "x direct", "x haproxy", "cpu us/q", "cpu x ha", "cpu x px", "errors"
	for (i = 1; i <= nt; i++) for (j = 1; j <= nh; j++) {
		for (g = 1; g <= ng; g++) {
			k = T[i] SUBSEP H[j] SUBSEP G[g]
			if (!seen[k]) {
				if (T[i] !~ /\+notrx/ || index(" " notrx " ", " " G[g] " ")) printf "%-26s %4s  %-8s %10s\n", T[i], H[j], G[g], "no data"
				continue
			}
			if (!n[k]) { printf "%-26s %4s  %-8s %10s  %s\n", T[i], H[j], G[g], "FAILED", "(" bad[k] ")"; continue }
			rd = ratio(T[i], H[j], G[g], "direct"); rh = ratio(T[i], H[j], G[g], "haproxy")
			cpu = nc[k] ? sprintf("%.1f", sc[k] / nc[k]) : "-"
			cx = cpuratio(k, T[i] SUBSEP H[j] SUBSEP "haproxy")
			cp = (G[g] == "direct" || G[g] == "haproxy" || G[g] == "proxy") ? "-" : cpuratio(k, T[i] SUBSEP H[j] SUBSEP "proxy")
			printf "%-26s %4s  %-8s %10.0f %8.2f %9s %9s %9s %8s %8s %7d%s\n", T[i], H[j], G[g], sq[k] / n[k], sp[k] / n[k], rd, rh, cpu, cx, cp, se[k], \
				(bad[k] != "" ? "  also FAILED: " bad[k] : "")
		}
	}
}
function cpuratio(k, kb) {
	return (nc[k] && nc[kb] && sc[kb] > 0) ? sprintf("%.2f", (sc[k] / nc[k]) / (sc[kb] / nc[kb])) : "-"
}
function ratio(t, h, g, base,   r, s, c, kb, kg) {
	kg = t SUBSEP h SUBSEP g; kb = t SUBSEP h SUBSEP base
	for (r in rounds) if (((kg, r) in qps) && ((kb, r) in qps) && qps[kb, r] > 0) { s += qps[kg, r] / qps[kb, r]; c++ }
	return c ? sprintf("%.3f", s / c) : "-"
}' "$RAW"
if has_word "${targets[*]}" mux; then
	echo
	echo "Multiplexing: $BENCH_MUX_THREADS threads through a pool of $BENCH_MUX_OPEN (mux) vs direct at $BENCH_MUX_BASE threads"
	awk -F'\t' -v tests="$BENCH_MUX_TESTS" -v thr="$BENCH_MUX_THREADS" -v base="$BENCH_MUX_BASE" '
	NR == 1 { next }
	$4 == "mux" && $3 == thr { k = $2; seen[k] = 1; if ($10 == "ok") { q[k, $1] = $5; sq[k] += $5; n[k]++; se[k] += $11 } else bad[k] = bad[k] " " $10 }
	$4 == "direct" && $3 == base && $10 == "ok" { d[$2, $1] = $5 }
	END {
		nt = split(tests, T, " ")
		printf "%-26s %4s  %10s %16s %7s\n", "test", "thr", "mux QPS", "x direct@" base, "errors"
		for (i = 1; i <= nt; i++) {
			k = T[i]
			if (!seen[k]) { printf "%-26s %4s  %10s\n", k, thr, "no data"; continue }
			if (!n[k]) { printf "%-26s %4s  %10s  (%s)\n", k, thr, "FAILED", bad[k]; continue }
			s = 0; c = 0
			for (kr in q) { split(kr, a, SUBSEP); if (a[1] == k && ((k, a[2]) in d) && d[k, a[2]] > 0) { s += q[kr] / d[k, a[2]]; c++ } }
			printf "%-26s %4s  %10.0f %16s %7d%s\n", k, thr, sq[k] / n[k], c ? sprintf("%.3f", s / c) : "-", se[k], (bad[k] != "" ? "  also FAILED:" bad[k] : "")
		}
	}' "$RAW"
	echo "Aim (issue 13): zero errors and at least the QPS of $BENCH_MUX_BASE threads straight to MariaDB (x direct >= 1.0)."
fi
if has_word "${targets[*]}" shard && has_word "${targets[*]}" shardbe; then
	echo
	echo "XA share: shard (transaction_mode xa) vs shardbe (best_effort), per-round ratios averaged"
	awk -F'\t' -v tests="$BENCH_TESTS" -v threads="$BENCH_THREADS" '
	NR == 1 { next }
	$10 == "ok" && ($4 == "shard" || $4 == "shardbe") {
		q[$2, $3, $4, $1] = $5; rounds[$1] = 1
		if ($8 != "-") { c[$2, $3, $4] += $8; nc[$2, $3, $4]++ }
	}
	END {
		nt = split(tests, T, " "); nh = split(threads, H, " ")
		printf "%-26s %4s  %10s %10s %12s %12s %10s\n", "test", "thr", "xa QPS", "be QPS", "xa QPS x be", "xa cpu us/q", "cpu x be"
		for (i = 1; i <= nt; i++) for (j = 1; j <= nh; j++) {
			t = T[i]; h = H[j]; s = 0; n = 0; sx = 0; sb = 0; nr = 0
			for (r in rounds) if (((t, h, "shard", r) in q) && ((t, h, "shardbe", r) in q) && q[t, h, "shardbe", r] > 0) {
				s += q[t, h, "shard", r] / q[t, h, "shardbe", r]; n++; sx += q[t, h, "shard", r]; sb += q[t, h, "shardbe", r]; nr++
			}
			if (!n) continue
			cx = nc[t, h, "shard"] ? c[t, h, "shard"] / nc[t, h, "shard"] : 0
			cb = nc[t, h, "shardbe"] ? c[t, h, "shardbe"] / nc[t, h, "shardbe"] : 0
			printf "%-26s %4s  %10.0f %10.0f %12.3f %12s %10s\n", t, h, sx / nr, sb / nr, s / n, cx ? sprintf("%.1f", cx) : "-", (cx && cb) ? sprintf("%.2f", cx / cb) : "-"
		}
	}' "$RAW"
	echo "(oltp_point_select has no transaction spanning datanodes: its ratio is the noise floor)"
fi
for t in "${notstarted[@]}"; do echo "NOT STARTED: $t (failed to start, see the log above): no rows"; done
echo
echo "Aims (ARCHITECTURE.md): at 8 and 32 threads, with and without prepared statements (+text), proxy QPS >= 1.0 x haproxy"
echo "and proxy cpu <= 1.0 x haproxy; govern (governance and read/write splitting on) within 1.2 x haproxy;"
echo "shard (single-shard statements: oltp_point_select) cpu <= 1.3 x the unsharded proxy (cpu x px)."
if has_word "${targets[*]}" shard && { has_word "$BENCH_TESTS" oltp_read_only || has_word "$BENCH_TESTS" oltp_read_write; }; then
	echo "shard: oltp_read_only/oltp_read_write run in BEGIN ... COMMIT across both datanodes, as XA transactions"
	echo "([proxy.xa], docs/sharding.md); their +notrx variants (--skip_trx=on) run on [$BENCH_NOTRX_TARGETS]."
fi
