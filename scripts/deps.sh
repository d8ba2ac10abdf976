#!/usr/bin/env bash
# Installs what nodeport-proxy needs from Debian 12 (bookworm), by group.
# Idempotent and fast when everything is present: apt runs only if a package is missing.
#
#   scripts/deps.sh build     compiler, CMake/Ninja and the libraries (find_package)
#   scripts/deps.sh test      build + the real peers the test suite drives
#   scripts/deps.sh bench     the peers of ../shared/bench/run.sh (HAProxy, nginx, wrk, iperf3)
#   scripts/deps.sh runtime   the shared libraries the binary links (used by the Dockerfile)
#   scripts/deps.sh --list GROUP   print the package list of GROUP and exit
set -euo pipefail

runtime=(libssl3 libspdlog1.10 libfmt9 libyaml-cpp0.7 ca-certificates)
build=(g++ cmake ninja-build pkg-config make
  libboost1.81-dev libssl-dev nlohmann-json3-dev libcli11-dev libspdlog-dev libfmt-dev
  doctest-dev libyaml-cpp-dev)
test_peers=(python3 python3-jsonschema python3-yaml curl openssl socat netcat-openbsd iproute2 procps
  util-linux iperf3 binutils python3-prometheus-client chromium dnsmasq-base dnsutils testssl.sh)
sanitizers=(clang libclang-rt-14-dev)
bench=(nginx libnginx-mod-stream haproxy wrk iperf3 socat iproute2 python3 openssl)

list_only=0
if [[ ${1:-} == --list ]]; then list_only=1; shift; fi
pkgs=()
for group in "${@:-build}"; do
  case $group in
    build) pkgs+=("${build[@]}") ;;
    test) pkgs+=("${build[@]}" "${test_peers[@]}") ;;
    sanitizers) pkgs+=("${sanitizers[@]}") ;;
    bench) pkgs+=("${bench[@]}") ;;
    runtime) pkgs+=("${runtime[@]}") ;;
    *) echo "deps.sh: unknown group '$group' (build|test|sanitizers|bench|runtime)" >&2; exit 2 ;;
  esac
done
if ((list_only)); then printf '%s\n' "${pkgs[@]}"; exit 0; fi

missing=()
for p in "${pkgs[@]}"; do
  st=$(dpkg-query -W -f='${db:Status-Status}' "$p" 2>/dev/null || true)
  [[ $st == installed ]] || missing+=("$p")
done
((${#missing[@]})) || exit 0

echo "deps.sh: installing ${missing[*]}" >&2
sudo=()
((EUID == 0)) || sudo=(sudo)
export DEBIAN_FRONTEND=noninteractive
"${sudo[@]}" apt-get update -qq
"${sudo[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
