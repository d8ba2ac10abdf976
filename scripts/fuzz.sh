#!/usr/bin/env bash
# Builds the libFuzzer targets with clang into build-fuzz (NPP_FUZZ=ON: -fsanitize=fuzzer,
# address,undefined) and runs each for SECONDS seconds (default 60), one after another, on a
# scratch copy of its committed corpus (fuzz/corpus/NAME stays as committed; new interesting
# inputs land in build-fuzz/corpus/NAME). Findings (crash-*, leak-*, timeout-*, oom-*) are
# written to build-fuzz/findings/NAME/ and make the script exit non-zero.
#
#   scripts/fuzz.sh [SECONDS] [NAME...]      e.g. scripts/fuzz.sh 600 yaml admin_http
#   make fuzz FUZZ_SECONDS=600
#
# Environment: JOBS (build parallelism, default 2), FUZZ_FLAGS (extra libFuzzer flags),
# NICE (default "nice -n 19": fuzzing shares the machine).
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-60}
shift || true
all=(native_json kubernetes_json yaml ip duration forward kubeconfig watch_stream proxy_protocol admin_http)
names=("$@")
[ ${#names[@]} -gt 0 ] || names=("${all[@]}")
build=build-fuzz
nice_cmd=${NICE-nice -n 19}

launcher=()
command -v ccache >/dev/null && launcher=(-DCMAKE_CXX_COMPILER_LAUNCHER=ccache)
cmake -S . -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCMAKE_CXX_COMPILER=clang++ \
  -DNPP_FUZZ=ON -DNPP_BUILD_TESTS=OFF "${launcher[@]}" >/dev/null
targets=()
for n in "${names[@]}"; do targets+=("fuzz_$n"); done
$nice_cmd cmake --build "$build" -j "${JOBS:-2}" --target "${targets[@]}"

status=0
for n in "${names[@]}"; do
  work="$build/corpus/$n" findings="$build/findings/$n"
  mkdir -p "$work" "$findings"
  cp -n fuzz/corpus/"$n"/* "$work"/ 2>/dev/null || true
  dict=()
  case $n in
    native_json | kubernetes_json) dict=(-dict=fuzz/dict/json.dict) ;;
    *) [ -f "fuzz/dict/$n.dict" ] && dict=(-dict="fuzz/dict/$n.dict") ;;
  esac
  echo "== fuzz_$n: ${seconds}s"
  # -rss_limit_mb: the caps must hold memory well below this; -timeout: no input may take 10 s.
  if ! $nice_cmd "$build/fuzz/fuzz_$n" "$work" "${dict[@]}" -max_total_time="$seconds" -timeout=10 \
      -rss_limit_mb=2048 -artifact_prefix="$findings/" -print_final_stats=1 ${FUZZ_FLAGS:-} \
      2>"$build/fuzz_$n.log"; then
    status=1
    echo "!! fuzz_$n found something: $findings/ (log: $build/fuzz_$n.log)"
  fi
  grep -E '^#[0-9]+[[:space:]]+DONE|^stat::(number_of_executed_units|average_exec_per_sec|peak_rss_mb)' "$build/fuzz_$n.log" || true
done
exit $status
