#!/usr/bin/env bash
# QoS without a cluster: pisa-daemon limits traffic to 127.0.0.1:3306 to 8 Mbit/s inside a
# throwaway network namespace (nothing on the host changes), and 4 MiB are sent through it.
#   make build && sudo docs/examples/qos-demo.sh
# Needs root (tc, eBPF), python3 and curl.
set -euo pipefail
cd "$(dirname "$0")/../.."
[[ -x bin/pisa-daemon ]] || { echo "run make build first" >&2; exit 1; }
cfg=$(mktemp)
trap 'rm -f "$cfg"' EXIT
cat >"$cfg" <<'TOML'
[global]
egress_device = "lo"

[[app]]
name = "shop"

[[app.service]]
name = "main"

[app.service.qos_group]
rate = "8mbit"

[[app.service.endpoints]]
ip = "127.0.0.1"
port = 3306
TOML

# A new network and mount namespace: its own lo, its own bpffs.
exec unshare -n -m bash -s "$cfg" <<'INNER'
set -euo pipefail
ip link set lo up
mount -t bpf bpf /sys/fs/bpf
bin/pisa-daemon --config "$1" --admin-addr 127.0.0.1:5592 >/tmp/qos-demo-daemon.log 2>&1 &
daemon=$!
trap 'kill $daemon; wait $daemon || true' EXIT
for _ in $(seq 100); do curl -sf 127.0.0.1:5592/readyz >/dev/null && break; sleep 0.1; done
tc class show dev lo
python3 - <<'PY'
import socket, threading, time
srv = socket.socket(); srv.bind(("127.0.0.1", 3306)); srv.listen(1)
done = threading.Event(); got = [0]
def rx():
    c, _ = srv.accept()
    while (b := c.recv(65536)):
        got[0] += len(b)
    done.set()
threading.Thread(target=rx, daemon=True).start()
s = socket.create_connection(("127.0.0.1", 3306)); t = time.time()
for _ in range(64):
    s.sendall(b"x" * 65536)
s.close(); done.wait(); d = time.time() - t
print("4 MiB to 127.0.0.1:3306 in %.1f s: %.1f Mbit/s" % (d, got[0] * 8 / d / 1e6))
PY
curl -s 127.0.0.1:5592/metrics | grep -E '^pisa_daemon_class_(bytes|overlimits|rate_bits)'
INNER
