# Sourced by bench/syscalls.sh and bench/cpu_per_request.sh: a scratch directory $DIR removed on
# exit (with every background job), free loopback ports, and an nginx HTTP backend configured as
# the shared bench's (../shared/bench/run.sh): `return 200` on /, a 1 KiB file on /1k.

DIR=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; wait 2>/dev/null || true; rm -rf "$DIR"' EXIT

free_port() { /usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# start_http_backend WORKERS: nginx with WORKERS worker processes on 127.0.0.1:$BE (BE is set here).
start_http_backend() {
  BE=$(free_port)
  mkdir -p "$DIR/logs" "$DIR/www"
  head -c 1024 /dev/urandom >"$DIR/www/1k"
  chmod -R a+rX "$DIR"  # nginx's workers run as nobody
  cat >"$DIR/nginx.conf" <<CONF
worker_processes $1;
pid $DIR/nginx.pid;
error_log $DIR/logs/error.log warn;
events { worker_connections 4096; }
http {
  access_log off;
  sendfile on;
  tcp_nopush on;
  keepalive_requests 1000000;
  keepalive_timeout 60s;
  server { listen 127.0.0.1:$BE; location / { return 200 "ok\n"; } location = /1k { root $DIR/www; } }
}
CONF
  nginx -p "$DIR" -c "$DIR/nginx.conf" -g 'daemon off;' &
}
