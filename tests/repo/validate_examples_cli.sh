#!/usr/bin/env bash
# Every example the README points users at must pass `nodeport-proxy validate`.
# A "backends" file (NAME-endpoints.json) supplies endpoints for a manifest and is validated
# together with its NAME-service.yaml, the way examples/README.md tells users to run it.
# Files under a deploy/ directory are manifests that deploy the proxy (DaemonSet, RBAC), not
# inputs to it; validate_deploy.py checks those.
# usage: validate_examples_cli.sh BINARY PROJECT_DIR
set -uo pipefail
bin=$1 root=$2 fail=0 n=0
# Examples with TLS files (examples/tls) name certificates that make-certs.sh generates (keys are
# never committed): validate a copy of that directory with freshly generated certificates.
tls_copy=$(mktemp -d)
trap 'rm -rf "$tls_copy"' EXIT
cp -r "$root/examples/tls/." "$tls_copy/" && rm -rf "$tls_copy/certs"
bash "$tls_copy/make-certs.sh" "$tls_copy" >/dev/null || { echo "FAIL: examples/tls/make-certs.sh"; fail=1; }
while IFS= read -r -d '' f; do
  n=$((n + 1))
  args=("$f")
  [[ $f == "$root/examples/tls/"* ]] && args=("$tls_copy/${f#"$root/examples/tls/"}")
  if [[ $f == *-endpoints.json ]]; then
    svc=${f%-endpoints.json}-service.yaml
    [[ -f $svc ]] || { echo "FAIL: $f has no $svc to pair with"; fail=1; continue; }
    args=("$svc" "$f")
  fi
  if out=$("$bin" validate "${args[@]}" 2>&1); then
    echo "ok: ${out%%$'\n'*}"
  else
    echo "FAIL: ${args[*]}"; echo "$out"; fail=1
  fi
done < <(find "$root/examples" -path '*/deploy' -prune -o \( -name '*.json' -o -name '*.yaml' \) -print0 | sort -z)
((n > 0)) || { echo "FAIL: no examples found"; exit 1; }
exit $fail
