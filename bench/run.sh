#!/usr/bin/env bash
# The shared loopback benchmark (../shared/bench/run.sh) with nodeport-proxy as the candidate.
# usage: bench/run.sh [extra run.sh flags, e.g. --quick, --proxies direct,haproxy,nginx,nodeport-proxy]
# Prints the table; results.json/results.md land in --out (default: a temp dir, printed at the end).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
shared=${NPP_SHARED_DIR:-$root/../shared}
[[ -x $shared/bench/run.sh || -f $shared/bench/run.sh ]] || { echo "bench: $shared/bench/run.sh not found (set NPP_SHARED_DIR)" >&2; exit 1; }
bin=${NPP_BINARY:-$root/build/nodeport-proxy}
[[ -x $bin ]] || { echo "bench: $bin not built (make build)" >&2; exit 1; }
"$root/scripts/deps.sh" bench
exec bash "$shared/bench/run.sh" \
  --proxy-cmd "$bin run --forward {listen}={backend}" \
  --proxy-name nodeport-proxy \
  --proxies "${NPP_BENCH_PROXIES:-direct,haproxy,haproxy-splice,nginx,socat,nodeport-proxy}" "$@"
