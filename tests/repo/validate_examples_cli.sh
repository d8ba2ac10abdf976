#!/usr/bin/env bash
# Every example the README points users at must pass `nodeport-proxy validate`.
# usage: validate_examples_cli.sh BINARY PROJECT_DIR
set -uo pipefail
bin=$1 root=$2 fail=0 n=0
while IFS= read -r -d '' f; do
  n=$((n + 1))
  if out=$("$bin" validate "$f" 2>&1); then
    echo "ok: $out"
  else
    echo "FAIL: $f"; echo "$out"; fail=1
  fi
done < <(find "$root/examples" -name '*.json' -print0 | sort -z)
((n > 0)) || { echo "FAIL: no examples found"; exit 1; }
exit $fail
