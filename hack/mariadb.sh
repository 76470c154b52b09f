#!/usr/bin/env bash
# Throwaway MariaDB instances for tests and benchmarks.
#
#   hack/mariadb.sh start <port> [<dir>] [-- extra mariadbd args...]
#       Create (or reuse) an instance directory, start mariadbd on 127.0.0.1:<port>,
#       wait until it answers, print the instance directory on stdout (last line).
#       root@'%' and root@localhost have an empty password; database `test` exists.
#   hack/mariadb.sh kill <dir>       SIGKILL the server (a crash), keep the directory.
#   hack/mariadb.sh shutdown <dir>   graceful shutdown, keep the directory.
#   hack/mariadb.sh restart <dir>    start the server of <dir> again (same port and args).
#   hack/mariadb.sh stop <dir>       kill the server and remove the directory.
#   hack/mariadb.sh status <dir>     exit 0 if the server answers.
#
# Layout of an instance directory:
#   data/  mysqld.sock  mariadbd.pid  error.log  instance.env (port and extra args)
#
# Speed: the first start on a machine builds a template data directory with
# mariadb-install-db (a few seconds) under $PISA_MARIADB_CACHE (default /var/tmp);
# every later start copies it, so a start costs well under a second.
#
# Environment:
#   PISA_MARIADB_OWNER_PID  if set, a watcher kills the server and removes the directory
#                           when that process dies (go test killed on timeout, ^C...).
#   PISA_MARIADB_TIMEOUT    seconds to wait for the server to answer (default 60).
#   PISA_MARIADB_CACHE      where the template lives (default /var/tmp).
#   TMPDIR                  where instance directories are created (default /tmp).
set -euo pipefail
shopt -s inherit_errexit

MARIADBD=${MARIADBD:-/usr/sbin/mariadbd}
INSTALL_DB=${INSTALL_DB:-$(command -v mariadb-install-db || echo /usr/bin/mariadb-install-db)}
CLIENT=${CLIENT:-$(command -v mariadb || echo /usr/bin/mariadb)}
ADMIN=${ADMIN:-$(command -v mariadb-admin || echo /usr/bin/mariadb-admin)}
TIMEOUT=${PISA_MARIADB_TIMEOUT:-60}

# Options shared by install and every start; InnoDB file sizes must agree between them.
COMMON_OPTS=(
	--innodb-buffer-pool-size=32M
	--innodb-log-file-size=8M
	--innodb-log-buffer-size=4M
)
# Options for a running test server: small, fast, durable against a process kill
# (flush_log_at_trx_commit=2 writes the log to the OS at every commit).
SERVER_OPTS=(
	--bind-address=127.0.0.1
	--skip-name-resolve
	--performance-schema=OFF
	--innodb-temp-data-file-path=ibtmp1:1M:autoextend
	--innodb-flush-log-at-trx-commit=2
	--innodb-doublewrite=0
	--innodb-fast-shutdown=2
	--innodb-buffer-pool-load-at-startup=0
	--innodb-buffer-pool-dump-at-shutdown=0
	--max-connections=1000
	--character-set-server=utf8mb4
	--collation-server=utf8mb4_general_ci
	--key-buffer-size=1M
	--table-open-cache=400
	--thread-cache-size=16
)

die() {
	echo "mariadb.sh: $*" >&2
	exit 1
}

usage() {
	sed -n '2,14p' "$0" >&2
	exit 2
}

user_opt() {
	# mariadbd refuses to run as root without --user=root.
	if [ "$(id -u)" = 0 ]; then echo --user=root; else echo --user="$(id -un)"; fi
}

need_binaries() {
	[ -x "$MARIADBD" ] || die "$MARIADBD not found: install MariaDB (apt-get install mariadb-server mariadb-client)"
	[ -x "$INSTALL_DB" ] || die "mariadb-install-db not found: apt-get install mariadb-server"
	[ -x "$CLIENT" ] || die "mariadb client not found: apt-get install mariadb-client"
}

ping_sock() {
	"$ADMIN" --no-defaults --connect-timeout=1 -S "$1" -uroot ping >/dev/null 2>&1
}

log_tail() {
	local log=$1
	if [ -f "$log" ]; then
		echo "--- last lines of $log ---" >&2
		tail -n 30 "$log" >&2
		echo "---" >&2
	fi
}

# launch <dir> <port> <log> [extra args...]: start mariadbd in the background, detached
# from our stdio (so callers reading our stdout see EOF), and wait until it answers.
launch() {
	local dir=$1 port=$2 log=$3
	shift 3
	local sock=$dir/mysqld.sock
	rm -f "$sock" "$sock.lock" "$dir/mariadbd.pid"
	setsid "$MARIADBD" --no-defaults "$(user_opt)" \
		--datadir="$dir/data" --socket="$sock" --pid-file="$dir/mariadbd.pid" \
		--port="$port" --server-id="$port" --log-error="$log" \
		"${COMMON_OPTS[@]}" "${SERVER_OPTS[@]}" "$@" \
		</dev/null >>"$log" 2>&1 &
	local pid=$!
	echo "$pid" >"$dir/launcher.pid"
	local deadline=$((SECONDS + TIMEOUT))
	while ! ping_sock "$sock"; do
		if ! alive "$pid"; then
			log_tail "$log"
			die "mariadbd exited during startup (port $port, dir $dir)"
		fi
		if [ "$SECONDS" -ge "$deadline" ]; then
			log_tail "$log"
			kill -9 "$pid" 2>/dev/null || true
			die "mariadbd did not answer within ${TIMEOUT}s (port $port, dir $dir)"
		fi
		sleep 0.05
	done
	[ "$port" = 0 ] && return 0
	# The socket answers; make sure TCP does too (it is opened before the socket).
	"$CLIENT" --no-defaults --connect-timeout=5 -h127.0.0.1 -P"$port" -uroot -e 'SELECT 1' test >/dev/null ||
		{
			log_tail "$log"
			die "mariadbd answers on its socket but not on 127.0.0.1:$port as root"
		}
}

template_dir() {
	local ver
	ver=$("$MARIADBD" --version 2>/dev/null | awk '{print $3}')
	echo "${PISA_MARIADB_CACHE:-/var/tmp}/pisa-mariadb-template-${ver}-uid$(id -u)"
}

# ensure_template: build the template data dir once per machine (flock'ed, atomic rename).
ensure_template() {
	local tpl
	tpl=$(template_dir)
	[ -f "$tpl/.ready" ] && {
		echo "$tpl"
		return
	}
	mkdir -p "$(dirname "$tpl")"
	(
		flock 9
		if [ ! -f "$tpl/.ready" ]; then
			local build
			build=$(mktemp -d "$tpl.build.XXXXXX")
			if ! "$INSTALL_DB" --no-defaults "$(user_opt)" --datadir="$build/data" \
				--auth-root-authentication-method=normal --skip-test-db --skip-name-resolve \
				"${COMMON_OPTS[@]}" >"$build/install.log" 2>&1; then
				log_tail "$build/install.log"
				rm -rf "$build"
				die "mariadb-install-db failed"
			fi
			launch "$build" 0 "$build/error.log" --skip-networking || {
				rm -rf "$build"
				exit 1
			}
			"$CLIENT" --no-defaults -S "$build/mysqld.sock" -uroot <<-'SQL'
				DELETE FROM mysql.global_priv WHERE User='root' AND Host NOT IN ('localhost','127.0.0.1','::1');
				DELETE FROM mysql.proxies_priv WHERE User='root' AND Host NOT IN ('localhost','127.0.0.1','::1');
				DELETE FROM mysql.global_priv WHERE User='';
				FLUSH PRIVILEGES;
				ALTER USER 'root'@'localhost' IDENTIFIED VIA mysql_native_password USING PASSWORD('');
				CREATE USER IF NOT EXISTS 'root'@'%' IDENTIFIED BY '';
				GRANT ALL PRIVILEGES ON *.* TO 'root'@'%' WITH GRANT OPTION;
				CREATE DATABASE IF NOT EXISTS test;
				FLUSH PRIVILEGES;
			SQL
			"$ADMIN" --no-defaults -S "$build/mysqld.sock" -uroot shutdown
			local pid
			pid=$(cat "$build/launcher.pid")
			while alive "$pid"; do sleep 0.05; done
			rm -f "$build/data/ib_buffer_pool" "$build/data/ibtmp1" "$build/data/"*.pid
			touch "$build/data/.ready"
			rm -rf "$tpl"
			mv "$build/data" "$tpl"
			rm -rf "$build"
		fi
	) 9>"$tpl.lock" >&2
	echo "$tpl"
}

save_env() {
	local dir=$1 port=$2
	shift 2
	{
		printf 'PORT=%q\n' "$port"
		printf 'EXTRA=('
		[ $# -eq 0 ] || printf '%q ' "$@"
		printf ')\n'
	} >"$dir/instance.env"
}

# alive <pid>: some thread of the process exists and is not a zombie (a killed server whose
# parent exited is reaped by init, sometimes seconds later). Every thread counts: the main
# thread of a killed multi-threaded server turns zombie before the last thread has exited and
# closed the process's sockets.
alive() {
	local f st
	[ -d "/proc/$1" ] || return 1
	for f in /proc/"$1"/task/*/stat; do
		st=$(awk '{sub(/.*\) /, ""); print $1}' "$f" 2>/dev/null) || continue
		if [ -n "$st" ] && [ "$st" != Z ] && [ "$st" != X ]; then
			return 0
		fi
	done
	return 1
}

server_pid() {
	local dir=$1 f
	for f in "$dir/mariadbd.pid" "$dir/launcher.pid"; do
		if [ -s "$f" ]; then
			local pid
			pid=$(cat "$f")
			if alive "$pid"; then
				echo "$pid"
				return 0
			fi
		fi
	done
	return 1
}

wait_gone() {
	local pid=$1 limit=$2 i=0
	while alive "$pid"; do
		i=$((i + 1))
		[ "$i" -ge "$limit" ] && return 1
		sleep 0.05
	done
}

cmd_kill() {
	local dir=$1 pid
	[ -d "$dir" ] || die "no instance directory $dir"
	if pid=$(server_pid "$dir"); then
		kill -9 "$pid" 2>/dev/null || true
		wait_gone "$pid" 200 || die "pid $pid did not die"
	fi
	rm -f "$dir/mariadbd.pid" "$dir/mysqld.sock"
}

cmd_shutdown() {
	local dir=$1 pid
	[ -d "$dir" ] || die "no instance directory $dir"
	if pid=$(server_pid "$dir"); then
		"$ADMIN" --no-defaults --connect-timeout=2 -S "$dir/mysqld.sock" -uroot shutdown >/dev/null 2>&1 ||
			kill -TERM "$pid" 2>/dev/null || true
		if ! wait_gone "$pid" 600; then # 30 s
			kill -9 "$pid" 2>/dev/null || true
			wait_gone "$pid" 200 || true
		fi
	fi
}

cmd_restart() {
	local dir=$1
	[ -f "$dir/instance.env" ] || die "$dir is not an instance directory (no instance.env)"
	if server_pid "$dir" >/dev/null; then
		die "server of $dir is running; kill or shutdown it first"
	fi
	local PORT EXTRA
	# shellcheck disable=SC1091
	. "$dir/instance.env"
	launch "$dir" "$PORT" "$dir/error.log" "${EXTRA[@]}"
	echo "$dir"
}

start_watcher() {
	local dir=$1 owner=$2
	# Detached: kills the server and removes the dir when the owner dies; exits when
	# the dir is removed by a normal stop.
	setsid bash -c '
		dir=$1 owner=$2
		while [ -d "$dir" ] && kill -0 "$owner" 2>/dev/null; do sleep 1; done
		if [ -d "$dir" ]; then
			for f in "$dir/mariadbd.pid" "$dir/launcher.pid"; do
				[ -s "$f" ] && kill -9 "$(cat "$f")" 2>/dev/null
			done
			sleep 0.5
			rm -rf "$dir"
		fi' watcher "$dir" "$owner" </dev/null >/dev/null 2>&1 &
}

cmd_start() {
	[ $# -ge 1 ] || usage
	local port=$1 dir=""
	shift
	if [ $# -gt 0 ] && [ "$1" != "--" ]; then
		dir=$1
		shift
	fi
	if [ $# -gt 0 ]; then
		[ "$1" = "--" ] || usage
		shift
	fi
	[[ "$port" =~ ^[0-9]+$ ]] && [ "$port" -gt 0 ] && [ "$port" -lt 65536 ] || die "bad port $port"
	need_binaries

	if [ -z "$dir" ]; then
		dir=$(mktemp -d "${TMPDIR:-/tmp}/pisa-mariadb.XXXXXX")
	else
		mkdir -p "$dir"
		dir=$(cd "$dir" && pwd)
	fi
	# The socket path must fit in sun_path (108 bytes).
	[ "${#dir}" -le 90 ] || die "instance directory path too long for a unix socket: $dir"

	if [ -f "$dir/instance.env" ] && [ -d "$dir/data/mysql" ]; then
		# Existing instance: reuse its data, take the port and args given now.
		if server_pid "$dir" >/dev/null && ping_sock "$dir/mysqld.sock"; then
			echo "$dir"
			return
		fi
	else
		local tpl
		tpl=$(ensure_template)
		rm -rf "$dir/data"
		cp -a "$tpl" "$dir/data"
		rm -f "$dir/data/.ready"
	fi
	save_env "$dir" "$port" "$@"
	launch "$dir" "$port" "$dir/error.log" "$@"
	if [ -n "${PISA_MARIADB_OWNER_PID:-}" ]; then
		start_watcher "$dir" "$PISA_MARIADB_OWNER_PID"
	fi
	echo "$dir"
}

cmd_stop() {
	local dir=$1
	[ -d "$dir" ] || return 0
	[ -f "$dir/instance.env" ] || [ -d "$dir/data" ] || die "$dir does not look like an instance directory; not removing it"
	# The data is thrown away: no need for a graceful (slower) shutdown.
	cmd_kill "$dir"
	rm -rf "$dir"
}

cmd_status() {
	local dir=$1
	ping_sock "$dir/mysqld.sock"
}

[ $# -ge 1 ] || usage
cmd=$1
shift
case "$cmd" in
start) cmd_start "$@" ;;
stop | kill | shutdown | restart | status)
	[ $# -eq 1 ] || usage
	"cmd_$cmd" "$1"
	;;
*) usage ;;
esac
