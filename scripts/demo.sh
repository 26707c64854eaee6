#!/usr/bin/env bash
# Builds the gaussian_theorem example (Release, build-release/) and runs it; results in out/theorem.
# The demo runs 100,000 Monte Carlo samples per row to stay fast (the program defaults to 2,000,000).
# Extra arguments are passed on to the program, e.g. scripts/demo.sh --seed 3
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

if [[ ! -f examples/gaussian_theorem/CMakeLists.txt ]]; then
  echo "demo: examples/gaussian_theorem is not there yet" >&2
  exit 1
fi

build_dir=build-release
cmake_args=(-DCMAKE_BUILD_TYPE=Release -DAYF_BUILD_TESTS=OFF -DAYF_BUILD_EXAMPLES=ON)
if [[ ! -f "$build_dir/CMakeCache.txt" ]] && command -v ninja >/dev/null 2>&1; then
  cmake_args+=(-G Ninja)
fi
cmake -S . -B "$build_dir" "${cmake_args[@]}"
cmake --build "$build_dir" -j"$(nproc)" --target gaussian_theorem

mkdir -p out
"$build_dir/examples/gaussian_theorem/gaussian_theorem" \
  --c 0.5 --delta 0.02,0.05,0.1,0.2 --samples 100000 --out out/theorem "$@"
