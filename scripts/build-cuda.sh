#!/usr/bin/env bash
# Configures build-cuda/ with the CUDA flavour (-DAYF_ENABLE_CUDA=ON), builds the CUDA targets
# (the header on its own, ayf_tests_cuda, bench_steps_cuda, ayf_train_check_cuda, image_distill_cuda) and runs the GPU
# tests, which skip with a message when no CUDA device is present. Extra arguments go to ctest.
#   scripts/build-cuda.sh                 architectures 80;90 (override: CUDAARCHS=86 scripts/build-cuda.sh)
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

nvcc_bin=$(command -v nvcc || true)
if [[ -z "$nvcc_bin" && -x /usr/local/cuda/bin/nvcc ]]; then nvcc_bin=/usr/local/cuda/bin/nvcc; fi
if [[ -z "$nvcc_bin" ]]; then
  echo "build-cuda: no nvcc on PATH or in /usr/local/cuda/bin" >&2
  exit 1
fi

build_dir=build-cuda
cmake_args=(-DCMAKE_BUILD_TYPE=RelWithDebInfo -DAYF_ENABLE_CUDA=ON -DAYF_WERROR=ON "-DCMAKE_CUDA_COMPILER=$nvcc_bin"
            -DAYF_HEADER_CHECK=OFF -DAYF_BUILD_EXAMPLES=ON -DAYF_BUILD_BENCHMARKS=ON)
if [[ -n "${CUDAARCHS:-}" ]]; then cmake_args+=("-DCMAKE_CUDA_ARCHITECTURES=$CUDAARCHS"); fi
if [[ ! -f "$build_dir/CMakeCache.txt" ]] && command -v ninja >/dev/null 2>&1; then
  cmake_args+=(-G Ninja)
fi

echo "== configure $build_dir ($nvcc_bin)"
cmake -S . -B "$build_dir" "${cmake_args[@]}"
echo "== build the CUDA targets"
start=$(date +%s)
targets=(ayf_header_check_cuda ayf_tests_cuda bench_steps_cuda ayf_train_check_cuda image_distill_cuda)
cmake --build "$build_dir" -j"$(nproc)" --target "${targets[@]}"
echo "== built in $(( $(date +%s) - start )) s"
echo "== test $build_dir (label gpu; skipped without a CUDA device)"
ctest --test-dir "$build_dir" --output-on-failure -L gpu --output-junit "$PWD/$build_dir/ctest-results.xml" "$@"
