#!/usr/bin/env bash
# Proxy CPU per HTTP request, from /proc (utime + stime of the proxy process over the test),
# for an A/B between two builds or against HAProxy. The host's capacity moves from minute to
# minute, so req/s alone says little: rotate the candidates, repeat, compare medians.
#
#   bench/cpu_per_request.sh close|ka PROXY [SECONDS]
#     close  wrk -t2 -c50 'Connection: close' to nginx `return 200` (the shared bench's close row)
#     ka     wrk -t2 -c100 keep-alive to a 1 KiB file (the keep-alive row)
#     PROXY  a nodeport-proxy binary, or "haproxy" (HAProxy 2.6, 2 threads, the shared bench's config)
#
# Example (three rounds, order rotated):
#   for i in 1 2 3; do for p in /tmp/old/nodeport-proxy build/nodeport-proxy haproxy; do
#     bench/cpu_per_request.sh ka "$p"; done; done
# Prints: req/s, user, sys and total proxy CPU µs per request. Needs nginx, wrk, haproxy.
set -euo pipefail
MODE=${1:?close|ka}
PROXY=${2:?binary or haproxy}
SECONDS_PER_TEST=${3:-5}
WORKERS=2
source "$(dirname "$0")/http_backend.sh"
start_http_backend $WORKERS
NP=$(free_port)
if [[ $PROXY == haproxy ]]; then
  cat >"$DIR/haproxy.cfg" <<EOF
global
  nbthread $WORKERS
  maxconn 9000
defaults
  mode tcp
  timeout connect 5s
  timeout client 60s
  timeout server 60s
frontend fe
  bind 127.0.0.1:$NP
  default_backend be
backend be
  server s1 127.0.0.1:$BE
EOF
  haproxy -db -f "$DIR/haproxy.cfg" 2>"$DIR/logs/proxy.log" &
else
  "$PROXY" run --forward "tcp:$NP=127.0.0.1:$BE" --workers $WORKERS --nodeport-addresses 127.0.0.1/32 \
    --service-node-port-range 1024-65535 --healthz-bind-address "" --metrics-bind-address "" \
    --log-level warn 2>"$DIR/logs/proxy.log" &
fi
PID=$!
for _ in $(seq 100); do
  curl -s -o /dev/null "http://127.0.0.1:$NP/" && break
  sleep 0.05
done
cpu() { awk '{print $14 + $15, $14, $15}' "/proc/$PID/stat"; }
read -r _ u0 s0 < <(cpu)
if [[ $MODE == ka ]]; then
  out=$(wrk -t2 -c100 -d"${SECONDS_PER_TEST}s" "http://127.0.0.1:$NP/1k")
else
  out=$(wrk -t2 -c50 -d"${SECONDS_PER_TEST}s" -H 'Connection: close' "http://127.0.0.1:$NP/")
fi
read -r _ u1 s1 < <(cpu)
if grep -q 'Non-2xx' <<<"$out"; then echo "the backend answered errors: $out" >&2; exit 1; fi
requests=$(awk '/requests in/ {print $1}' <<<"$out")
rps=$(awk '/Requests\/sec/ {print $2}' <<<"$out")
tick_us=$((1000000 / $(getconf CLK_TCK)))
awk -v r="$rps" -v u=$((u1 - u0)) -v s=$((s1 - s0)) -v n="$requests" -v t="$tick_us" -v m="$MODE" -v p="$PROXY" \
  'BEGIN { printf "%-5s %-40s req/s %7.0f  CPU µs/req: user %6.2f  sys %6.2f  total %6.2f\n", m, p, r, u*t/n, s*t/n, (u+s)*t/n }'
