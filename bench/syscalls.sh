#!/usr/bin/env bash
# System calls per proxied request, counted with strace -c on one worker. Load-independent,
# unlike req/s: use it to see what a change to the accept/connect/relay path costs or saves.
#   close  a connection per request (the bench's "close" row: nginx `return 200`)
#   ka     keep-alive requests for a 1 KiB file (the bench's "keep-alive" row)
#
#   bench/syscalls.sh [BINARY] [close|ka]   (default build/nodeport-proxy close; needs nginx, wrk, strace)
set -euo pipefail
BIN=${1:-build/nodeport-proxy}
MODE=${2:-close}
source "$(dirname "$0")/http_backend.sh"
start_http_backend 1
NP=$(free_port)
strace -f -c -o "$DIR/strace.txt" "$BIN" run --forward "tcp:$NP=127.0.0.1:$BE" --workers 1 \
  --nodeport-addresses 127.0.0.1/32 --service-node-port-range 1024-65535 \
  --healthz-bind-address "" --metrics-bind-address "" --log-level warn &
PROXY=$!
for _ in $(seq 100); do
  curl -s -o /dev/null "http://127.0.0.1:$NP/" && break
  sleep 0.05
done
if [[ $MODE == ka ]]; then
  out=$(wrk -t1 -c10 -d3s "http://127.0.0.1:$NP/1k")
else
  out=$(wrk -t1 -c10 -d3s -H 'Connection: close' "http://127.0.0.1:$NP/")
fi
if grep -q 'Non-2xx' <<<"$out"; then echo "the backend answered errors: $out" >&2; exit 1; fi
pkill -TERM -P $PROXY  # the proxy is strace's child; strace exits after it
wait $PROXY || true
requests=$(awk '/requests in/ {print $1}' <<<"$out")
requests=$((requests + 1))  # the readiness curl
echo "requests ($MODE): $requests"
awk -v n="$requests" '
  $1 ~ /^[0-9.]+$/ && NF >= 5 { name = $NF; calls = $4; if (name != "total") printf "%-16s %8.2f\n", name, calls / n; if (name != "total") sum += calls }
  END { printf "%-16s %8.2f\n", "per request", sum / n }' "$DIR/strace.txt" | sort -k2 -n -r
