#!/usr/bin/env bash
# MariaDB GTID replication for tests: one primary and N replicas, each a separate
# mariadbd started with hack/mariadb.sh (server-id = port).
#
#   hack/replication.sh start <primary_port> <replica_port>...
#       Start a primary and one replica per port, point the replicas at the primary,
#       wait until they replicate. Prints one line per server: "primary <port> <dir>"
#       then "replica <port> <dir>"...
#   hack/replication.sh start-primary <port> [<dir>]     start a primary, print its dir
#   hack/replication.sh start-replica <port> <primary_port> [<dir>]
#       start a replica (read_only), point it at the primary, print its dir
#   hack/replication.sh point <replica_port> <primary_port>
#       (re)point a running server at a primary: CHANGE MASTER TO ...; START SLAVE
#   hack/replication.sh wait <primary_port> <replica_port>...
#       wait until every replica's threads run and it has applied the primary's
#       current GTID position
#   hack/replication.sh promote <port> [<other_replica_port>...]
#       make <port> the primary (STOP SLAVE; RESET SLAVE ALL; read_only=0) and
#       point the other replicas at it
#   hack/replication.sh stop <dir>...                     stop servers, remove dirs
#
# Every server has the binary log on (row format, strict GTID mode, log_slave_updates),
# so any replica can be promoted and the others repointed at it by GTID.
# Environment: as hack/mariadb.sh (PISA_MARIADB_OWNER_PID...); PISA_REPL_TIMEOUT
# (seconds, default 60) bounds the waits.
set -euo pipefail
shopt -s inherit_errexit

HERE=$(cd "$(dirname "$0")" && pwd)
MARIADB_SH=$HERE/mariadb.sh
CLIENT=${CLIENT:-$(command -v mariadb || echo /usr/bin/mariadb)}
TIMEOUT=${PISA_REPL_TIMEOUT:-60}

BINLOG_OPTS=(
	--log-bin=mysql-bin
	--relay-log=relay-bin
	--binlog-format=ROW
	--gtid-strict-mode=1
	--log-slave-updates
	--slave-net-timeout=5
)

die() {
	echo "replication.sh: $*" >&2
	exit 1
}

usage() {
	sed -n '2,24p' "$0" >&2
	exit 2
}

sql() {
	local port=$1
	shift
	"$CLIENT" --no-defaults --connect-timeout=5 -h127.0.0.1 -P"$port" -uroot -N -B -e "$*"
}

start_primary() {
	local port=$1 dir=${2:-}
	local args=(start "$port")
	[ -n "$dir" ] && args+=("$dir")
	"$MARIADB_SH" "${args[@]}" -- "${BINLOG_OPTS[@]}" | tail -n1
}

point() {
	local replica=$1 primary=$2
	sql "$replica" "STOP SLAVE; CHANGE MASTER TO MASTER_HOST='127.0.0.1', MASTER_PORT=$primary, MASTER_USER='root', MASTER_PASSWORD='', MASTER_USE_GTID=slave_pos, MASTER_CONNECT_RETRY=1; START SLAVE;"
}

start_replica() {
	local port=$1 primary=$2 dir=${3:-}
	local args=(start "$port")
	[ -n "$dir" ] && args+=("$dir")
	dir=$("$MARIADB_SH" "${args[@]}" -- "${BINLOG_OPTS[@]}" --read-only=1 | tail -n1)
	point "$port" "$primary"
	echo "$dir"
}

# field <port> <column>: one column of SHOW SLAVE STATUS (empty if not a replica).
field() {
	"$CLIENT" --no-defaults --connect-timeout=5 -h127.0.0.1 -P"$1" -uroot -e 'SHOW SLAVE STATUS\G' |
		awk -v k="$2" -F': ' '$1 ~ "^ *"k"$" {print $2}'
}

wait_replicas() {
	local primary=$1
	shift
	local r deadline=$((SECONDS + TIMEOUT))
	for r in "$@"; do
		while [ "$(field "$r" Slave_IO_Running)" != Yes ] || [ "$(field "$r" Slave_SQL_Running)" != Yes ]; do
			if [ "$SECONDS" -ge "$deadline" ]; then
				"$CLIENT" --no-defaults -h127.0.0.1 -P"$r" -uroot -e 'SHOW SLAVE STATUS\G' >&2 || true
				die "replica on port $r does not replicate from $primary"
			fi
			sleep 0.1
		done
	done
	local pos
	pos=$(sql "$primary" 'SELECT @@GLOBAL.gtid_binlog_pos')
	[ -n "$pos" ] || return 0
	for r in "$@"; do
		local left=$((deadline - SECONDS))
		[ "$left" -gt 0 ] || left=1
		[ "$(sql "$r" "SELECT MASTER_GTID_WAIT('$pos', $left)")" = 0 ] ||
			die "replica on port $r did not reach GTID position $pos of $primary"
	done
}

promote() {
	local port=$1
	shift
	sql "$port" "STOP SLAVE; RESET SLAVE ALL; SET GLOBAL read_only=0;"
	local r
	for r in "$@"; do point "$r" "$port"; done
}

[ $# -ge 1 ] || usage
cmd=$1
shift
case "$cmd" in
start)
	[ $# -ge 2 ] || usage
	primary=$1
	shift
	dir=$(start_primary "$primary")
	echo "primary $primary $dir"
	for r in "$@"; do
		dir=$(start_replica "$r" "$primary")
		echo "replica $r $dir"
	done
	wait_replicas "$primary" "$@"
	;;
start-primary)
	[ $# -ge 1 ] && [ $# -le 2 ] || usage
	start_primary "$@"
	;;
start-replica)
	[ $# -ge 2 ] && [ $# -le 3 ] || usage
	start_replica "$@"
	;;
point)
	[ $# -eq 2 ] || usage
	point "$1" "$2"
	;;
wait)
	[ $# -ge 1 ] || usage
	wait_replicas "$@"
	;;
promote)
	[ $# -ge 1 ] || usage
	promote "$@"
	;;
stop)
	for d in "$@"; do "$MARIADB_SH" stop "$d"; done
	;;
*) usage ;;
esac
