#!/usr/bin/env bash
# Configures, builds and runs the test suite, including the Thrust backend's conformance suite on
# the TBB system (ayf_tests_thrust; configure fails if the CCCL headers are missing).
#   scripts/test.sh              RelWithDebInfo into build/
#   scripts/test.sh --sanitize   ASan + UBSan (-O1) into build-sanitize/
# Extra arguments after the flag go to ctest (e.g. scripts/test.sh -L cpu -R dual).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

build_dir=build
cmake_args=(-DCMAKE_BUILD_TYPE=RelWithDebInfo -DAYF_SANITIZE=OFF -DAYF_REQUIRE_THRUST=ON)
if [[ "${1:-}" == "--sanitize" ]]; then
  shift
  build_dir=build-sanitize
  # The header self-containment check and the install/find_package test compile or run nothing new
  # under the sanitizers; the plain build covers them.
  cmake_args=(-DCMAKE_BUILD_TYPE=Debug "-DCMAKE_CXX_FLAGS_DEBUG=-O1 -g" -DAYF_SANITIZE=ON -DAYF_REQUIRE_THRUST=ON
              -DAYF_HEADER_CHECK=OFF -DAYF_INSTALL=OFF)
  export ASAN_OPTIONS="${ASAN_OPTIONS:-strict_string_checks=1:detect_stack_use_after_return=1:check_initialization_order=1}"
  export UBSAN_OPTIONS="${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}"
fi

# The generator is chosen once per build directory (CMake refuses to switch it later).
if [[ ! -f "$build_dir/CMakeCache.txt" ]] && command -v ninja >/dev/null 2>&1; then
  cmake_args+=(-G Ninja)
fi

jobs=$(nproc)
echo "== configure $build_dir"
cmake -S . -B "$build_dir" "${cmake_args[@]}"
echo "== build $build_dir"
cmake --build "$build_dir" -j"$jobs"
echo "== test $build_dir"
ctest --test-dir "$build_dir" --output-on-failure -j"$jobs" "$@"
