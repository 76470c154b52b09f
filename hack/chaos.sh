#!/usr/bin/env bash
# make chaos: the drills of issue 10 against real MariaDB servers the tests start themselves
# (hack/mariadb.sh, hack/replication.sh on free ports): a backend thread killed inside a
# transaction, a backend restart under load, a promoted replica under load (each without and
# with [proxy.config.failover]), an emptied config file, oversized pre-auth packets, stalled
# clients, a handshake flood. Prints one line per drill: what was done, what the client saw, what
# was lost; fails if anything was lost (or a drill failed). A few minutes on 2 cores.
#
# Environment: CHAOS_RUN (a go test -run regex, default every drill), GO (default go).
set -euo pipefail
cd "$(dirname "$0")/.."
GO=${GO:-go}
RUN=${CHAOS_RUN:-^TestChaos}
log=$(mktemp "${TMPDIR:-/tmp}/chaos.XXXXXX")
trap 'rm -f "$log"' EXIT

# The shared MariaDB on 3306 serves the drills that need no server of their own.
hack/ensure-mariadb.sh >/dev/null

status=0
# -p 1: one package at a time (each starts its own servers).
"$GO" test -tags chaos -count=1 -p 1 -timeout 15m -run "$RUN" -v ./internal/proxy/ ./cmd/pisa-proxy/ >"$log" 2>&1 || status=$?

printf '%-20s | %-70s | %-60s | %s\n' drill done "client saw" lost
grep -h $'^CHAOS\t' "$log" | while IFS=$'\t' read -r _ drill done saw lost; do
	printf '%-20s | %-70s | %-60s | %s\n' "$drill" "$done" "$saw" "$lost"
done
drills=$(grep -c $'^CHAOS\t' "$log" || true)
if [ "$status" -ne 0 ] || [ "$drills" -eq 0 ]; then
	echo "--- chaos: FAILED (go test exit $status, $drills drill lines); failures:" >&2
	grep -E -- '^(--- FAIL|FAIL|panic:)|_test\.go:[0-9]+:' "$log" | head -50 >&2 || true
	exit 1
fi
echo "chaos: $drills drills, nothing lost"
