#!/usr/bin/env bash
# TLS termination benchmark: nodeport-proxy against HAProxy (2.6, `bind ssl`, nbthread 2), same
# ECDSA P-256 certificate, same loopback backend, in the same run.
#   handshakes/s: `openssl s_time -new` (full handshakes, no resumption), C parallel clients
#   cpu_us/hs:    CPU time (user + system) of the proxy process per handshake during that run:
#                 less sensitive than handshakes/s to other load on the machine
#   bulk:         MiB/s through one TLS connection (python ssl client -> proxy -> sink backend)
# usage: bench/tls.sh [SECONDS per handshake run (10)] [CLIENTS (2)] [ROUNDS (3)]
# The proxy gets 2 workers, as HAProxy gets 2 threads. Needs openssl, haproxy, python3.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
bin=${NPP_BINARY:-$root/build/nodeport-proxy}
secs=${1:-10} clients=${2:-2} rounds=${3:-3}
[[ -x $bin ]] || { echo "bench: $bin not built" >&2; exit 1; }
command -v haproxy >/dev/null || { echo "bench: haproxy not installed (scripts/deps.sh bench)" >&2; exit 1; }
work=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT
cd "$work"
# s_time's output goes to a subdirectory: the proxy watches svc.json's directory for changes,
# and a file written there on every handshake would wake its control thread each time.
mkdir runs
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout key.pem -out cert.pem -days 2 \
  -subj /CN=localhost -addext subjectAltName=DNS:localhost 2>/dev/null
cat cert.pem key.pem > haproxy.pem
port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
backend=$(port) npp_port=$(port) hap_port=$(port)
# Backend: accepts and discards (a sink), so bulk measures the proxy's decrypt + relay.
python3 - "$backend" <<'PY' &
import socket, sys, threading
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("127.0.0.1", int(sys.argv[1]))); s.listen(4096)
def sink(c):
    try:
        while c.recv(1 << 20): pass
    except OSError: pass
    c.close()
while True:
    c, _ = s.accept(); threading.Thread(target=sink, args=(c,), daemon=True).start()
PY
pids+=($!)
cat > svc.json <<JSON
{"services": [{"name": "bench", "tls": {"certFile": "cert.pem", "keyFile": "key.pem"},
  "ports": [{"name": "https", "port": 443, "nodePort": $npp_port, "endpoints": ["127.0.0.1:$backend"]}]}]}
JSON
"$bin" run --endpoints-file svc.json --service-node-port-range 1024-65535 --nodeport-addresses 127.0.0.1/32 \
  --workers 2 --log-level warn --healthz-bind-address '' --metrics-bind-address '' --tls-max-handshakes 4096 &
pids+=($!) npp_pid=$!
cat > haproxy.cfg <<CFG
global
  nbthread 2
  maxconn 4000
  tune.ssl.default-dh-param 2048
  ssl-default-bind-ciphers ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384:ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305
  ssl-default-bind-options ssl-min-ver TLSv1.2 no-tls-tickets
defaults
  mode tcp
  timeout connect 5s
  timeout client 60s
  timeout server 60s
frontend f
  bind 127.0.0.1:$hap_port ssl crt $work/haproxy.pem
  default_backend b
backend b
  server s1 127.0.0.1:$backend
CFG
haproxy -f haproxy.cfg -db >haproxy.log 2>&1 &
pids+=($!) hap_pid=$!
for p in $npp_port $hap_port; do
  for _ in $(seq 100); do (exec 3<>/dev/tcp/127.0.0.1/$p) 2>/dev/null && break; sleep 0.05; done
done

cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }  # utime + stime of a process
handshakes() {  # port pid -> "connections/s CPU-microseconds-per-handshake" over $clients parallel s_time runs
  local runs=() total=0 count=0 cpu0
  cpu0=$(cpu_ticks "$2")
  for i in $(seq "$clients"); do
    openssl s_time -connect 127.0.0.1:$1 -new -time "$secs" 2>/dev/null >"runs/s_time.$1.$i" &
    runs+=($!)
  done
  wait "${runs[@]}" 2>/dev/null || true
  local cpu=$(( $(cpu_ticks "$2") - cpu0 ))
  for f in runs/s_time.$1.*; do
    n=$(awk '/connections in .* real seconds/ {print $1; exit}' "$f"); t=$(awk '/connections in .* real seconds/ {print $4; exit}' "$f")
    [[ -n $n && -n $t ]] && total=$(python3 -c "print($total + $n / $t)") && count=$((count + n))
  done
  rm -f runs/s_time.$1.*
  python3 -c "print('%.0f %.0f' % ($total, $cpu * 1e6 / $(getconf CLK_TCK) / max($count, 1)))"
}

bulk() {  # port -> MiB/s through one TLS connection (TLS 1.3, AES-128-GCM), 3 s
  python3 - "$1" <<'PY'
import socket, ssl, sys, time
ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT); ctx.check_hostname = False; ctx.verify_mode = ssl.CERT_NONE
ctx.set_ciphersuites("TLS_AES_128_GCM_SHA256") if hasattr(ctx, "set_ciphersuites") else None
s = ctx.wrap_socket(socket.create_connection(("127.0.0.1", int(sys.argv[1]))), server_hostname="localhost")
buf = b"\0" * (1 << 20); sent = 0; t0 = time.monotonic()
while time.monotonic() - t0 < 3:
    s.sendall(buf); sent += len(buf)
print("%.0f" % (sent / (time.monotonic() - t0) / (1 << 20)))
PY
}

# Rounds alternate the order (ours first, then HAProxy first, ...) so that a drift in the
# machine's speed during the run does not favour either; the summary is the median per proxy.
echo "TLS benchmark: ECDSA P-256, $clients x openssl s_time -new -time $secs, $rounds rounds, loopback, 2 workers/threads"
printf '%-6s %-16s %14s %10s\n' round proxy handshakes/s cpu_us/hs
declare -A hs cpu
for r in $(seq "$rounds"); do
  order="nodeport-proxy haproxy"; ((r % 2 == 0)) && order="haproxy nodeport-proxy"
  for name in $order; do
    p=$npp_port pid=$npp_pid; [[ $name == haproxy ]] && p=$hap_port pid=$hap_pid
    read -r h c < <(handshakes "$p" "$pid")
    hs[$name]+="$h " cpu[$name]+="$c "
    printf '%-6s %-16s %14s %10s\n' "$r" "$name" "$h" "$c"
  done
done
median() { tr ' ' '\n' | grep . | sort -n | awk '{v[NR] = $1} END {print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2}'; }
echo
printf '%-16s %14s %10s %12s\n' proxy "median hs/s" "cpu_us/hs" bulk_MiB/s
for name in nodeport-proxy haproxy; do
  p=$npp_port; [[ $name == haproxy ]] && p=$hap_port
  printf '%-16s %14s %10s %12s\n' "$name" "$(median <<<"${hs[$name]}")" "$(median <<<"${cpu[$name]}")" "$(bulk "$p")"
done
