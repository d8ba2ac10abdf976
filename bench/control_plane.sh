#!/usr/bin/env bash
# Control-plane benchmark of the Kubernetes API mode: a scripted API server lists 10,000
# Services and 100,000 endpoints; prints list -> applied time, snapshot build time and RSS.
# usage: bench/control_plane.sh [BINARY] [SERVICES] [ENDPOINTS_PER_SERVICE] [NODEPORTS]
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
bin=${1:-$here/../build/nodeport-proxy}
shift || true
exec /usr/bin/python3 "$here/control_plane.py" "$bin" "$@"
