#!/usr/bin/env bash
# Make sure a MariaDB answers on 127.0.0.1:3306 as root with an empty password and has a
# database `test` (the shared server the tests use). Idempotent.
#
#  1. installs mariadb-server and mariadb-client with apt-get when they are missing;
#  2. if a server already listens on 3306 but root/empty password is refused (Debian's
#     default: root@localhost via unix_socket), allows root with an empty password too,
#     through the unix socket, as OS root;
#  3. if nothing listens on 3306, starts a persistent instance with hack/mariadb.sh in
#     $PISA_MARIADB_3306_DIR (default /var/tmp/pisa-mariadb-3306), reusing its data.
set -euo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
PORT=${PISA_ENSURE_PORT:-3306}             # overridable for testing this script
SOCKET=${PISA_ENSURE_SOCKET:-}              # local socket of that server (default: the client's)
DIR=${PISA_MARIADB_3306_DIR:-/var/tmp/pisa-mariadb-$PORT}

say() { echo "ensure-mariadb: $*" >&2; }
die() {
	say "$*"
	exit 1
}

as_root() {
	if [ "$(id -u)" = 0 ]; then "$@"; elif command -v sudo >/dev/null; then sudo "$@"; else
		die "need root to run: $*"
	fi
}

install_packages() {
	"$HERE/ensure-packages.sh" mariadb-server:/usr/sbin/mariadbd mariadb-client:/usr/bin/mariadb
	[ -x /usr/bin/mariadb-install-db ] && command -v mariadb-admin >/dev/null ||
		die "mariadb-install-db or mariadb-admin missing although the packages are installed"
}

client() {
	mariadb --no-defaults --connect-timeout=3 -h127.0.0.1 -P"$PORT" -uroot "$@"
}

ready() { client -e 'SELECT 1' test >/dev/null 2>&1; }

listening() { (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null; }

install_packages

if ready; then
	say "MariaDB ready on 127.0.0.1:$PORT"
	exit 0
fi

if listening; then
	# A server is there. Root may work but `test` may be missing...
	if client -e 'SELECT 1' >/dev/null 2>&1; then
		client -e 'CREATE DATABASE IF NOT EXISTS test'
	else
		# ...or root over TCP is refused: fix it through the local socket, as OS root.
		say "a server listens on $PORT but refuses root with an empty password; allowing it via the unix socket"
		as_root mariadb -uroot ${SOCKET:+-S "$SOCKET"} <<-'SQL' || die "could not log in as root through the unix socket; give root@127.0.0.1 an empty password yourself, or stop that server"
			ALTER USER 'root'@'localhost' IDENTIFIED VIA unix_socket OR mysql_native_password USING PASSWORD('');
			CREATE USER IF NOT EXISTS 'root'@'127.0.0.1' IDENTIFIED BY '';
			GRANT ALL PRIVILEGES ON *.* TO 'root'@'127.0.0.1' WITH GRANT OPTION;
			CREATE DATABASE IF NOT EXISTS test;
			FLUSH PRIVILEGES;
		SQL
	fi
	ready || die "a server listens on 127.0.0.1:$PORT but root with an empty password still cannot use database test"
	say "MariaDB ready on 127.0.0.1:$PORT"
	exit 0
fi

say "nothing listens on 127.0.0.1:$PORT; starting a MariaDB in $DIR"
"$HERE/mariadb.sh" start "$PORT" "$DIR" >/dev/null
ready || die "started $DIR but root cannot use database test on 127.0.0.1:$PORT"
say "MariaDB ready on 127.0.0.1:$PORT (data in $DIR; stop it with: hack/mariadb.sh shutdown $DIR)"
