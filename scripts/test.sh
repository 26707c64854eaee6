#!/usr/bin/env bash
# Configures, builds (warnings as errors: AYF_WERROR) and runs the test suite, including the Thrust
# backend's conformance suite on the TBB system (ayf_tests_thrust; configure fails without the CCCL headers).
#   scripts/test.sh              Release (-O3, what a user builds) into build/
#   scripts/test.sh --sanitize   ASan + UBSan (-O1) into build-sanitize/
# Extra arguments after the flag go to ctest (e.g. scripts/test.sh -L cpu -R dual). Results are also
# written to <build dir>/ctest-results.xml (JUnit).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

build_dir=build
cmake_args=(-DCMAKE_BUILD_TYPE=Release -DAYF_SANITIZE=OFF -DAYF_REQUIRE_THRUST=ON -DAYF_WERROR=ON)
if [[ "${1:-}" == "--sanitize" ]]; then
  shift
  build_dir=build-sanitize
  # The header self-containment check, the install/find_package test and ayf::compiled (explicit
  # instantiations of templates the test suite runs header-only here) compile or run nothing new under
  # the sanitizers; the plain build covers them. -g1: line tables and function names, all the
  # sanitizers' stack traces use, without variable locations (a quarter less compile time than -g).
  cmake_args=(-DCMAKE_BUILD_TYPE=Debug "-DCMAKE_CXX_FLAGS_DEBUG=-O1 -g1" -DAYF_SANITIZE=ON -DAYF_REQUIRE_THRUST=ON -DAYF_WERROR=ON
              -DAYF_HEADER_CHECK=OFF -DAYF_INSTALL=OFF -DAYF_COMPILED=OFF)
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
# The JUnit report is what scripts/count-tests.py (and .ci/run's closing line) counts.
ctest --test-dir "$build_dir" --output-on-failure -j"$jobs" --output-junit "$PWD/$build_dir/ctest-results.xml" "$@"
