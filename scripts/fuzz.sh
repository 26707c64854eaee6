#!/usr/bin/env bash
# Builds the libFuzzer harnesses (fuzz/, AYF_FUZZ=ON) with clang into build-fuzz/ and runs each on a
# copy of its seed corpus, with ASan + UBSan halting on the first error (docs/fuzzing.md).
#   scripts/fuzz.sh                      every harness for 30 s
#   scripts/fuzz.sh --seconds 20         every harness for 20 s (CI)
#   scripts/fuzz.sh --runs 1000000       every harness for a number of inputs
#   scripts/fuzz.sh --runs 1000 npy csv  only the named harnesses (fuzz_npy, fuzz_csv)
# Exits non-zero when a harness finds something (crash, leak, sanitizer report, timeout, out of
# memory); the input that triggered it is kept under build-fuzz/fuzz-run/<reader>/artifacts/.
# Environment: CC / CXX (default clang / clang++), AYF_FUZZ_JOBS (build jobs, default nproc),
# AYF_FUZZ_MAX_LEN (largest input in bytes, default 16384), AYF_FUZZ_ARGS (extra libFuzzer flags),
# AYF_FUZZ_WORK (the run directory, default build-fuzz/fuzz-run).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

usage() { sed -n '2,12p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; }

mode=seconds
amount=30
readers=()
while (($#)); do
  case "$1" in
    --seconds | --runs)
      mode=${1#--}
      amount=${2:-}
      [[ "$amount" =~ ^[0-9]+$ ]] || { echo "fuzz.sh: $1 expects a non-negative integer, received '${amount}'" >&2; exit 2; }
      shift 2
      ;;
    -h | --help) usage; exit 0 ;;
    -*) echo "fuzz.sh: unknown option '$1'" >&2; usage >&2; exit 2 ;;
    *) readers+=("${1#fuzz_}"); shift ;;
  esac
done

export CC="${CC:-clang}" CXX="${CXX:-clang++}"
if ! command -v "$CXX" >/dev/null 2>&1; then
  echo "fuzz.sh: '$CXX' not found; libFuzzer needs clang (Debian: apt-get install clang libclang-rt-14-dev)" >&2
  exit 2
fi

build_dir=build-fuzz
run_root=${AYF_FUZZ_WORK:-$build_dir/fuzz-run}
cmake_args=(-DCMAKE_CXX_COMPILER="$CXX" -DCMAKE_BUILD_TYPE=Debug "-DCMAKE_CXX_FLAGS_DEBUG=-O1 -g" -DAYF_FUZZ=ON
            -DAYF_BUILD_TESTS=OFF -DAYF_BUILD_EXAMPLES=OFF -DAYF_BUILD_BENCHMARKS=OFF -DAYF_HEADER_CHECK=OFF
            -DAYF_INSTALL=OFF)
if [[ ! -f "$build_dir/CMakeCache.txt" ]]; then
  command -v ninja >/dev/null 2>&1 && cmake_args+=(-G Ninja)
  command -v ccache >/dev/null 2>&1 && cmake_args+=(-DCMAKE_CXX_COMPILER_LAUNCHER=ccache)
fi
echo "== configure $build_dir ($CXX)"
mkdir -p "$build_dir"
cmake -S . -B "$build_dir" "${cmake_args[@]}" >"$build_dir/configure.log" 2>&1 ||
  { cat "$build_dir/configure.log" >&2; exit 1; }
echo "== build fuzz harnesses"
cmake --build "$build_dir" -j"${AYF_FUZZ_JOBS:-$(nproc)}" --target ayf_fuzz

mapfile -t harnesses < <(grep -v '^$' "$build_dir/fuzz/harnesses.txt" || true)
if ((${#harnesses[@]} == 0)); then
  echo "fuzz.sh: no harnesses were built (is $CXX clang?)" >&2
  exit 1
fi
if ((${#readers[@]})); then
  selected=()
  for r in "${readers[@]}"; do
    [[ " ${harnesses[*]} " == *" fuzz_$r "* ]] || { echo "fuzz.sh: no harness fuzz_$r (have: ${harnesses[*]})" >&2; exit 2; }
    selected+=("fuzz_$r")
  done
  harnesses=("${selected[@]}")
fi

# Strict sanitizers: stop at the first report, check leaks, abort on any UBSan finding.
export ASAN_OPTIONS="${ASAN_OPTIONS:-halt_on_error=1:abort_on_error=1:detect_leaks=1:strict_string_checks=1:detect_stack_use_after_return=1:check_initialization_order=1}"
export UBSAN_OPTIONS="${UBSAN_OPTIONS:-halt_on_error=1:abort_on_error=1:print_stacktrace=1}"

if [[ "$mode" == seconds ]]; then limit=(-max_total_time="$amount"); else limit=(-runs="$amount"); fi
read -r -a extra <<<"${AYF_FUZZ_ARGS:-}"

failed=()
summary=()
for harness in "${harnesses[@]}"; do
  reader=${harness#fuzz_}
  work=$(realpath -m "$run_root/$reader")
  # A fresh copy of the seeds each time: the committed corpus is never written to.
  rm -rf "$work"
  mkdir -p "$work/corpus" "$work/artifacts"
  if [[ -d fuzz/corpus/$reader ]]; then cp -R "fuzz/corpus/$reader/." "$work/corpus/"; fi
  flags=("${limit[@]}" -print_final_stats=1 -rss_limit_mb=2048 -malloc_limit_mb=2048 -timeout=25
         -max_len="${AYF_FUZZ_MAX_LEN:-16384}" -artifact_prefix="$work/artifacts/")
  if [[ -f fuzz/dict/$reader.dict ]]; then flags+=(-dict="$(realpath "fuzz/dict/$reader.dict")"); fi
  echo "== $harness: ${mode} ${amount} (log: $work/log.txt)"
  start=$(date +%s.%N)
  status=0
  "$build_dir/fuzz/$harness" "${flags[@]}" "${extra[@]}" "$work/corpus" >"$work/log.txt" 2>&1 || status=$?
  elapsed=$(awk -v a="$start" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }')
  runs=$(awk '/stat::number_of_executed_units:/ { n = $2 } END { print (n == "" ? "?" : n) }' "$work/log.txt")
  artifacts=$(find "$work/artifacts" -type f | sort)
  if ((status != 0)) || [[ -n "$artifacts" ]]; then
    result="FINDING (exit $status)"
    failed+=("$harness")
    echo "---- $harness: last lines of $work/log.txt"
    tail -n 60 "$work/log.txt"
    [[ -n "$artifacts" ]] && printf 'input kept: %s\n' $artifacts
    echo "reproduce: $build_dir/fuzz/$harness <input>"
  else
    result=ok
  fi
  summary+=("$(printf '%-18s %12s runs %9s s  %s' "$harness" "$runs" "$elapsed" "$result")")
  echo "${summary[-1]}"
done

echo "== summary"
printf '%s\n' "${summary[@]}"
if ((${#failed[@]})); then
  echo "fuzz.sh: findings in ${failed[*]}" >&2
  exit 1
fi
echo "fuzz.sh: no findings"
