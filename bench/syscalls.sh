#!/usr/bin/env bash
# System calls per proxied connection on the connection-per-request path (the bench's "close"
# row), counted with strace -c on one worker. Load-independent, unlike req/s: use it to see what
# a change to the accept/connect/relay path costs or saves.
#
#   bench/syscalls.sh [BINARY]      (default build/nodeport-proxy; needs nginx, wrk, strace)
set -euo pipefail
BIN=${1:-build/nodeport-proxy}
DIR=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; wait 2>/dev/null || true; rm -rf "$DIR"' EXIT
free_port() { /usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
BE=$(free_port)
NP=$(free_port)
mkdir -p "$DIR/logs"
cat >"$DIR/nginx.conf" <<EOF
worker_processes 1;
pid $DIR/nginx.pid;
error_log $DIR/logs/error.log warn;
events { worker_connections 4096; }
http {
  access_log off;
  server { listen 127.0.0.1:$BE; location / { return 200 "ok\n"; } }
}
EOF
nginx -p "$DIR" -c "$DIR/nginx.conf" -g 'daemon off;' &
strace -f -c -o "$DIR/strace.txt" "$BIN" run --forward "tcp:$NP=127.0.0.1:$BE" --workers 1 \
  --nodeport-addresses 127.0.0.1/32 --service-node-port-range 1024-65535 \
  --healthz-bind-address "" --metrics-bind-address "" --log-level warn &
PROXY=$!
for _ in $(seq 100); do
  curl -s -o /dev/null "http://127.0.0.1:$NP/" && break
  sleep 0.05
done
out=$(wrk -t1 -c10 -d3s -H 'Connection: close' "http://127.0.0.1:$NP/")
pkill -TERM -P $PROXY  # the proxy is strace's child; strace exits after it
wait $PROXY || true
requests=$(awk '/requests in/ {print $1}' <<<"$out")
requests=$((requests + 1))  # the readiness curl
echo "connections: $requests"
awk -v n="$requests" '
  $1 ~ /^[0-9.]+$/ && NF >= 5 { name = $NF; calls = $4; if (name != "total") printf "%-16s %8.2f\n", name, calls / n; if (name != "total") sum += calls }
  END { printf "%-16s %8.2f\n", "per connection", sum / n }' "$DIR/strace.txt" | sort -k2 -n -r
