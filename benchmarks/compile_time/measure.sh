#!/usr/bin/env bash
# Compile time of a typical training program (program.cpp) header-only against the same program with
# the explicit instantiations of ayf::compiled (-DAYF_USE_COMPILED: includes compiled.hpp, links the
# library). Compiles each variant RUNS times, alternating, and prints every wall time, the medians
# and their ratio, the user + system CPU times, the CPU's SIMD flags and the load average.
#   benchmarks/compile_time/measure.sh [build directory holding libayf_compiled.a (default: build)]
# Environment: CXX (g++), OPT (CMake's Release flags: -O3 -DNDEBUG), RUNS (3),
#              EIGEN_INCLUDE (pkg-config eigen3, else /usr/include/eigen3).
# Build the library first: cmake --build <build> --target ayf_compiled
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/../.." && pwd)
build=$(cd "${1:-$root/build}" && pwd)
cxx=${CXX:-g++}
opt=${OPT:--O3 -DNDEBUG}
runs=${RUNS:-3}
eigen=${EIGEN_INCLUDE:-$(pkg-config --cflags-only-I eigen3 2>/dev/null | sed 's/^-I//; s/ *$//')}
eigen=${eigen:-/usr/include/eigen3}
library="$build/libayf_compiled.a"
if [[ ! -f "$library" ]]; then
  echo "measure.sh: $library not found; build it: cmake --build $build --target ayf_compiled" >&2
  exit 1
fi
if ! [[ "$runs" =~ ^[1-9][0-9]*$ ]]; then
  echo "measure.sh: RUNS must be a positive integer, got '$runs'" >&2
  exit 1
fi

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
# shellcheck disable=SC2206
flags=(-std=c++20 $opt -I"$root/include" -I"$root/backends/eigen/include" -isystem "$eigen")
libs=(-ltbb)
# A library built with AYF_WITH_OPENBLAS calls cblas: both programs are compiled the same way
# (AYF_EIGEN_OPENBLAS, as ayf::eigen sets it) and link OpenBLAS.
if grep -q '^AYF_WITH_OPENBLAS:BOOL=ON' "$build/CMakeCache.txt" 2>/dev/null; then
  # shellcheck disable=SC2207
  flags+=(-DAYF_EIGEN_OPENBLAS=1 $(pkg-config --cflags openblas))
  # shellcheck disable=SC2207
  libs+=($(pkg-config --libs openblas))
fi

# time_it <output file> <command...>: appends "wall user+sys" (seconds) to the file.
time_it() {
  local out=$1
  shift
  local TIMEFORMAT='%R %U %S'
  local t
  t=$({ time "$@" >/dev/null 2>&1; } 2>&1) || { echo "measure.sh: failed: $*" >&2; "$@"; exit 1; }
  awk -v t="$t" 'BEGIN { split(t, a, " "); printf "%.2f %.2f\n", a[1], a[2] + a[3] }' >>"$out"
}

median() { sort -n | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }

echo "compiler:  $($cxx --version | head -1)"
echo "flags:     ${flags[*]}"
echo "cpu:       $(grep -m1 'model name' /proc/cpuinfo | sed 's/.*: //'), $(nproc) cores"
echo "cpu flags: $(grep -m1 '^flags' /proc/cpuinfo | tr ' ' '\n' | grep -E '^(sse|ssse|avx|fma|f16c|amx|vnni)' | sort -u | tr '\n' ' ')"
echo "load:      $(cut -d' ' -f1-3 /proc/loadavg) (1, 5, 15 min) before"

for ((r = 1; r <= runs; ++r)); do
  time_it "$work/header_only.compile" "$cxx" "${flags[@]}" -c "$here/program.cpp" -o "$work/header_only.o"
  time_it "$work/header_only.link" "$cxx" "$work/header_only.o" "${libs[@]}" -o "$work/header_only"
  time_it "$work/compiled.compile" "$cxx" "${flags[@]}" -DAYF_USE_COMPILED=1 -c "$here/program.cpp" -o "$work/compiled.o"
  time_it "$work/compiled.link" "$cxx" "$work/compiled.o" "$library" "${libs[@]}" -o "$work/compiled"
  echo "run $r:     header-only $(tail -1 "$work/header_only.compile" | cut -d' ' -f1) s," \
       "compiled $(tail -1 "$work/compiled.compile" | cut -d' ' -f1) s (compile, wall)"
done
echo "load:      $(cut -d' ' -f1-3 /proc/loadavg) (1, 5, 15 min) after"
for v in header_only compiled; do  # compile + link per run
  paste -d' ' "$work/$v.compile" "$work/$v.link" | awk '{ printf "%.2f %.2f\n", $1 + $3, $2 + $4 }' >"$work/$v.total"
done

# Both programs run and agree on their metrics (a short training).
for v in header_only compiled; do
  mkdir -p "$work/run_$v"
  "$work/$v" 20 "$work/run_$v" >/dev/null
done
if ! cmp -s "$work/run_header_only/metrics.csv" "$work/run_compiled/metrics.csv"; then
  echo "measure.sh: the two programs wrote different metrics.csv" >&2
  exit 1
fi

report() {  # report <label> <file>: the runs and the median of wall and CPU times
  local walls cpus
  walls=$(cut -d' ' -f1 "$2" | tr '\n' ' ')
  cpus=$(cut -d' ' -f2 "$2" | tr '\n' ' ')
  printf '%-22s wall %s(median %s s), user+sys %s(median %s s)\n' "$1" "$walls" \
    "$(cut -d' ' -f1 "$2" | median)" "$cpus" "$(cut -d' ' -f2 "$2" | median)"
}
report "header-only compile" "$work/header_only.compile"
report "compiled compile" "$work/compiled.compile"
report "header-only link" "$work/header_only.link"
report "compiled link" "$work/compiled.link"
ratio() { awk -v a="$(cut -d' ' -f"$1" "$2" | median)" -v b="$(cut -d' ' -f"$1" "$3" | median)" 'BEGIN { printf "%.2f", a / b }'; }
echo "median ratio header-only / compiled: compile wall $(ratio 1 "$work/header_only.compile" "$work/compiled.compile")x," \
     "compile CPU $(ratio 2 "$work/header_only.compile" "$work/compiled.compile")x," \
     "compile + link wall $(ratio 1 "$work/header_only.total" "$work/compiled.total")x"
echo "both programs wrote the same metrics.csv"
