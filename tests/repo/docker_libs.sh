#!/usr/bin/env bash
# The Dockerfile cannot be built here (no Docker engine), so keep it honest: every shared library
# the binary links must come from a package that the runtime stage installs
# (scripts/deps.sh runtime), or from the base image (libc, libstdc++, libgcc).
# usage: docker_libs.sh BINARY PROJECT_DIR
set -euo pipefail
bin=$1 root=$2
grep -q 'deps.sh runtime' "$root/Dockerfile" || { echo "FAIL: the Dockerfile's runtime stage does not run deps.sh runtime"; exit 1; }
grep -q '^USER [0-9][0-9]*:[0-9][0-9]*' "$root/Dockerfile" || { echo "FAIL: no numeric USER in the Dockerfile"; exit 1; }
grep -q '^STOPSIGNAL SIGTERM' "$root/Dockerfile" || { echo "FAIL: no STOPSIGNAL SIGTERM"; exit 1; }
mapfile -t runtime < <("$root/scripts/deps.sh" --list runtime)
# Packages of debian:bookworm-slim that provide the C/C++ runtime.
base=(libc6 libstdc++6 libgcc-s1)
fail=0 n=0
while read -r lib path; do
  [[ -n $path && $path == /* ]] || continue
  n=$((n + 1))
  # Sanitizer runtimes belong to the asan/tsan test builds only, never to the image's build.
  case $lib in libasan.so* | libubsan.so* | libtsan.so* | liblsan.so*) echo "skip: $lib (sanitizer build)"; continue ;; esac
  real=$(readlink -f "$path")
  pkg=$(dpkg -S "$real" 2>/dev/null | head -n1 | cut -d: -f1) || true
  [[ -n $pkg ]] || pkg=$(dpkg -S "$path" 2>/dev/null | head -n1 | cut -d: -f1) || true
  if [[ -z $pkg ]]; then echo "FAIL: $lib ($path) belongs to no package"; fail=1; continue; fi
  if [[ " ${runtime[*]} ${base[*]} " == *" $pkg "* ]]; then
    echo "ok: $lib <- $pkg"
  else
    echo "FAIL: $lib comes from $pkg, which 'deps.sh runtime' does not install"; fail=1
  fi
done < <(ldd "$bin" | awk '/=>/ {print $1, $3}')
((n > 0)) || { echo "FAIL: ldd listed no libraries (is $bin dynamically linked?)"; exit 1; }
exit $fail
