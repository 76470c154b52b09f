#!/usr/bin/env bash
# A tour of pisa-proxy on one machine: MariaDB on 127.0.0.1:3306 (started if needed),
# pisa-proxy on 127.0.0.1:3307 (user demo / password demo, admin HTTP on 127.0.0.1:5591),
# a few statements through it with the `mariadb` client, then its Prometheus metrics.
# Everything started here is stopped on exit.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
LISTEN_PORT=3307
ADMIN_PORT=5591
WORK=$(mktemp -d /tmp/pisa-demo.XXXXXX)
PROXY_PID=""

bold=$'\e[1m' dim=$'\e[2m' off=$'\e[0m'
[ -t 1 ] || bold="" dim="" off=""
STEP=0
step() {
	STEP=$((STEP + 1))
	echo
	echo "${bold}== $STEP. $*${off}"
}
show() { echo "${dim}\$ $*${off}"; }

cleanup() {
	local rc=$?
	trap - EXIT INT TERM
	if [ -n "$PROXY_PID" ] && kill -0 "$PROXY_PID" 2>/dev/null; then
		echo
		echo "${bold}== stopping pisa-proxy (pid $PROXY_PID)${off}"
		kill -TERM "$PROXY_PID" 2>/dev/null || true
		for _ in $(seq 1 50); do kill -0 "$PROXY_PID" 2>/dev/null || break; sleep 0.1; done
		kill -KILL "$PROXY_PID" 2>/dev/null || true
		wait "$PROXY_PID" 2>/dev/null || true
	fi
	if [ "$rc" != 0 ] && [ -f "$WORK/proxy.log" ]; then
		echo "--- pisa-proxy log (last 30 lines) ---"
		tail -n 30 "$WORK/proxy.log"
	fi
	rm -rf "$WORK"
	exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# through <sql...>: run statements through the proxy, as demo/demo, database test.
through() {
	show "mariadb -h127.0.0.1 -P$LISTEN_PORT -udemo -pdemo test -e \"$*\""
	mariadb --no-defaults -t -h127.0.0.1 -P"$LISTEN_PORT" -udemo -pdemo test -e "$*"
}

step "MariaDB on 127.0.0.1:3306 (installed and started if missing)"
"$ROOT/hack/ensure-mariadb.sh"
"$ROOT/hack/ensure-packages.sh" curl:/usr/bin/curl

step "build bin/pisa-proxy"
show "make bin/pisa-proxy"
make -s -C "$ROOT" bin/pisa-proxy
"$ROOT/bin/pisa-proxy" --version 2>/dev/null || true

for p in $LISTEN_PORT $ADMIN_PORT; do
	if (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then
		echo "port 127.0.0.1:$p is in use; stop whatever listens there (ss -ltnp 'sport = :$p') and retry"
		exit 1
	fi
done

step "start pisa-proxy: clients -> 127.0.0.1:$LISTEN_PORT (demo/demo) -> MariaDB 127.0.0.1:3306 (root)"
cat >"$WORK/demo.toml" <<EOF
[admin]
host = "127.0.0.1"
port = $ADMIN_PORT

[[proxy.config]]
name = "demo"
listen_addr = "127.0.0.1:$LISTEN_PORT"
user = "demo"
password = "demo"
db = "test"
backend_type = "mysql"

[proxy.config.simple_loadbalance]
balance_type = "random"
nodes = ["ds001"]

[[mysql.node]]
name = "ds001"
host = "127.0.0.1"
port = 3306
user = "root"
password = ""
db = "test"
role = "readwrite"
EOF
sed 's/^/    /' "$WORK/demo.toml"
show "bin/pisa-proxy daemon -c $WORK/demo.toml &"
"$ROOT/bin/pisa-proxy" daemon -c "$WORK/demo.toml" </dev/null >"$WORK/proxy.log" 2>&1 &
PROXY_PID=$!
deadline=$((SECONDS + 20))
until curl -fsS -o /dev/null "http://127.0.0.1:$ADMIN_PORT/readyz" 2>/dev/null; do
	if ! kill -0 "$PROXY_PID" 2>/dev/null; then
		echo "pisa-proxy exited"
		exit 1
	fi
	if [ "$SECONDS" -ge "$deadline" ]; then
		echo "pisa-proxy not ready after 20s:"
		curl -sS "http://127.0.0.1:$ADMIN_PORT/readyz" || true
		exit 1
	fi
	sleep 0.2
done
show "curl -s 127.0.0.1:$ADMIN_PORT/readyz"
curl -s "http://127.0.0.1:$ADMIN_PORT/readyz"
echo "pisa-proxy is ready (pid $PROXY_PID)"

step "who are we talking to? (the backend's connection id and version, seen through the proxy)"
through "SELECT CONNECTION_ID(), @@version, DATABASE(), CURRENT_USER()"

step "create a table"
through "DROP TABLE IF EXISTS pisa_demo; CREATE TABLE pisa_demo (id INT PRIMARY KEY AUTO_INCREMENT, name VARCHAR(32) NOT NULL, qty INT NOT NULL)"

step "insert a few rows"
through "INSERT INTO pisa_demo (name, qty) VALUES ('apple', 10), ('pear', 5), ('plum', 7); SELECT ROW_COUNT(), LAST_INSERT_ID()"

step "select them"
through "SELECT * FROM pisa_demo ORDER BY id"

step "a transaction: the session keeps one backend connection from BEGIN to COMMIT"
through "BEGIN; UPDATE pisa_demo SET qty = qty - 3 WHERE name = 'apple'; INSERT INTO pisa_demo (name, qty) VALUES ('kiwi', 1); SELECT CONNECTION_ID(), @@in_transaction; COMMIT; SELECT * FROM pisa_demo ORDER BY id"

step "a rolled-back transaction leaves nothing behind"
through "START TRANSACTION; DELETE FROM pisa_demo; SELECT COUNT(*) AS inside_tx FROM pisa_demo; ROLLBACK; SELECT COUNT(*) AS after_rollback FROM pisa_demo"

step "errors are MySQL errors, with the server's code and SQLSTATE"
through "SELECT * FROM no_such_table" || true

step "a wrong password is refused by the proxy (1045, 28000)"
show "mariadb -h127.0.0.1 -P$LISTEN_PORT -udemo -pwrong test -e 'SELECT 1'"
mariadb --no-defaults -h127.0.0.1 -P"$LISTEN_PORT" -udemo -pwrong test -e 'SELECT 1' || true

step "the proxy's metrics"
show "curl -s 127.0.0.1:$ADMIN_PORT/metrics | grep pisa_proxy_"
curl -s "http://127.0.0.1:$ADMIN_PORT/metrics" | grep '^pisa_proxy_' || echo "(no pisa_proxy_ metrics exported)"

step "clean up the demo table"
through "DROP TABLE pisa_demo"

echo
echo "${bold}Done.${off} Run it yourself: bin/pisa-proxy daemon -c examples/proxy.toml (see docs/config.md)."
