#!/usr/bin/env bash
# Instructions per full TLS handshake (callgrind), nodeport-proxy against HAProxy: each proxy runs
# under `valgrind --tool=callgrind` with one worker / one thread, the same ECDSA P-256 certificate
# and sink backend as bench/tls.sh; a python client makes WARM handshakes, the counters are zeroed
# (callgrind_control -z), then N full handshakes (new connection, no resumption, closed after the
# handshake) and a dump. Instruction counts do not depend on the machine's load.
# usage: [ONLY=npp|haproxy] bench/tls_profile.sh [N (200)] [OUTDIR (a temporary directory, kept)]
# Prints instructions per handshake for both and leaves callgrind.out.{npp,haproxy} in OUTDIR
# (callgrind_annotate --inclusive=yes OUTDIR/callgrind.out.npp | head -60).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
bin=${NPP_BINARY:-$root/build/nodeport-proxy}
n=${1:-200} out=${2:-$(mktemp -d)}
mkdir -p "$out"
out=$(cd "$out" && pwd)
[[ -x $bin ]] || { echo "bench: $bin not built" >&2; exit 1; }
for c in valgrind callgrind_control haproxy openssl python3; do
  command -v $c >/dev/null || { echo "bench: $c not installed" >&2; exit 1; }
done
work=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT
cd "$work"
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout key.pem -out cert.pem -days 2 \
  -subj /CN=localhost -addext subjectAltName=DNS:localhost 2>/dev/null
cat cert.pem key.pem > haproxy.pem
port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
backend=$(port) npp_port=$(port) hap_port=$(port)
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
cat > haproxy.cfg <<CFG
global
  nbthread 1
  maxconn 4000
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

client() {  # port count: full handshakes, each on a new connection, closed after the handshake
  python3 - "$1" "$2" <<'PY'
import socket, ssl, sys
ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT); ctx.check_hostname = False; ctx.verify_mode = ssl.CERT_NONE
for _ in range(int(sys.argv[2])):
    s = ctx.wrap_socket(socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=30), server_hostname="localhost")
    s.close()
PY
}

profile() {  # name port command...
  local name=$1 p=$2; shift 2
  valgrind --tool=callgrind --callgrind-out-file="$out/callgrind.out.$name" "$@" >"$out/$name.log" 2>&1 &
  local vpid=$!
  pids+=($vpid)
  for _ in $(seq 600); do (exec 3<>/dev/tcp/127.0.0.1/$p) 2>/dev/null && break; sleep 0.1; done
  client "$p" 20
  callgrind_control -z "$vpid" >/dev/null 2>&1
  client "$p" "$n"
  sleep 1  # the last connection's close and upstream teardown
  callgrind_control -d "$vpid" >/dev/null 2>&1
  kill "$vpid"; wait "$vpid" 2>/dev/null || true
  # The dump after zeroing is the file with the highest part number.
  local f; f=$(ls -1 "$out/callgrind.out.$name".* 2>/dev/null | sort -t. -k3 -n | tail -1)
  [[ -n $f ]] && mv "$f" "$out/callgrind.out.$name"
  rm -f "$out/callgrind.out.$name".*
  local ir; ir=$(awk '/^summary:/ {print $2}' "$out/callgrind.out.$name")
  printf '%-16s %12s instructions/handshake\n' "$name" "$(python3 -c "print('%.0f' % ($ir / $n))")"
}

echo "callgrind: $n full handshakes (TLS 1.3, ECDSA P-256, python ssl client), 1 worker / 1 thread; files in $out"
[[ ${ONLY:-npp} == npp || -z ${ONLY:-} ]] && profile npp "$npp_port" "$bin" run --endpoints-file svc.json --service-node-port-range 1024-65535 \
  --nodeport-addresses 127.0.0.1/32 --workers 1 --log-level warn --healthz-bind-address '' --metrics-bind-address ''
[[ ${ONLY:-haproxy} == haproxy ]] && profile haproxy "$hap_port" haproxy -f haproxy.cfg -db
