#!/usr/bin/env bash
# The CUDA check for a GPU machine that has nvcc and the CUDA toolkit but none of the project's other
# dependencies (docs/thrust-cuda.md, "Checking on a GPU machine"). Two halves:
#
#   scripts/gpu-check.sh build        on a machine with nvcc and the dependencies: builds, for sm_90
#                                     (CUDAARCHS overrides), Release, static CUDA runtime, into build-gpu/:
#                                     ayf_tests_cuda, bench_steps_cuda, ayf_train_check_cuda,
#                                     image_distill_cuda; copies them, stripped, into gpu-bundle/ with
#                                     every shared library they need beyond the C/C++ runtime, the driver
#                                     and cuBLAS (rpath $ORIGIN), and Fashion-MNIST (gpu-bundle/fashion-mnist);
#                                     checks what ldd resolves and that bundle + working tree <= 64 MiB.
#   scripts/gpu-check.sh verify       here: the bundle checks of build again, without building.
#   scripts/gpu-check.sh run [DIR]    on the GPU machine: nvidia-smi, the CUDA tests, bench_steps_cuda
#                                     (with cublas_fraction), the training check, each under a timeout
#                                     (under 8 minutes in all); writes DIR/gpu-check-summary.md and the
#                                     logs. DIR: $OUT if set, else gpu-check-out/.
#   scripts/gpu-check.sh image [DIR]  on the GPU machine, as a second call: image_distill_cuda --preset
#                                     quick --backend cuda on the bundled data (timeout 480 s); writes
#                                     DIR/gpu-check-image.md, image.log, image_distill.csv. Exit codes as run.
#
# Exit codes of run: 0 everything passed; 1 a step failed or timed out; 3 no CUDA device (nothing run);
# 4 the bundle is missing or its libraries (cuBLAS from the CUDA toolkit) cannot be found.
# Exit codes of build: 0 bundle ready; 1 build failed; 4 the bundle needs a library that will not be
# there, or is over the size limit. Usage errors: 2.
set -uo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.." || exit 2
root=$PWD
bundle=${GPU_CHECK_BUNDLE:-gpu-bundle}   # relative to the repository root, or absolute (tests)
[[ "$bundle" == /* ]] || bundle=$root/$bundle
build_dir=build-gpu
programs=(ayf_tests_cuda bench_steps_cuda ayf_train_check_cuda image_distill_cuda)
fashion_mnist=${GPU_CHECK_FASHION_MNIST:-/usr/share/datasets/fashion-mnist}   # travels in the bundle for `image`
limit_bytes=$((64 * 1024 * 1024))   # the device tool: working tree + carried paths
cublas_names=(libcublas.so.13 libcublasLt.so.13)
# Found on any Linux with the NVIDIA driver and a C++ runtime; every other library travels in the bundle,
# except cuBLAS (541 MB with cublasLt), which the GPU machine's CUDA 13 toolkit provides.
system_libs='^(linux-vdso\.so|ld-linux-x86-64\.so|libc\.so|libm\.so|libdl\.so|libpthread\.so|librt\.so|libstdc\+\+\.so|libgcc_s\.so|libcuda\.so|libcublas\.so|libcublasLt\.so)'

say() { printf 'gpu-check: %s\n' "$*"; }
die() { local code=$1; shift; printf 'gpu-check: error: %s\n' "$*" >&2; exit "$code"; }
mib() { awk -v b="$1" 'BEGIN { printf "%.1f MiB", b / 1048576 }'; }

usage() {
  sed -n '2,/^set -uo/p' "${BASH_SOURCE[0]}" | sed '$d; s/^# \{0,1\}//' >&2
  exit 2
}

# Bytes of what the device tool sends besides carried paths: tracked and untracked-not-ignored files.
tree_bytes() {
  git -C "$root" ls-files -z --cached --others --exclude-standard 2>/dev/null |
    (cd "$root" && xargs -0 -r stat -c %s -- 2>/dev/null) | awk '{ s += $1 } END { print s + 0 }'
}

# Prints "name path" for every library ldd resolves for $1, "name NOTFOUND" if not, with LD_LIBRARY_PATH
# the bundle alone, as run and image set it (use_cublas): a RUNPATH of $ORIGIN finds a program's own
# libraries, but not the libraries those need.
resolved_libs() {
  env LD_LIBRARY_PATH="$bundle" ldd "$1" | awk '
    /=> not found/ { print $1, "NOTFOUND"; next }
    /=>/ { print $1, $3; next }
    /^\t\/.*\(0x/ { n = split($1, p, "/"); print p[n], $1 }'
}

build() {
  local nvcc_bin
  nvcc_bin=$(command -v nvcc || true)
  [[ -z "$nvcc_bin" && -x /usr/local/cuda/bin/nvcc ]] && nvcc_bin=/usr/local/cuda/bin/nvcc
  [[ -n "$nvcc_bin" ]] || die 1 "no nvcc on PATH or in /usr/local/cuda/bin"
  local arch=${CUDAARCHS:-90}
  # shellcheck disable=SC2016  # $ORIGIN is for the dynamic loader
  local args=(-DCMAKE_BUILD_TYPE=Release -DAYF_ENABLE_CUDA=ON -DAYF_CUDA_STATIC_RUNTIME=ON
              "-DCMAKE_CUDA_ARCHITECTURES=$arch" "-DCMAKE_CUDA_COMPILER=$nvcc_bin" -DAYF_BUILD_BENCHMARKS=ON
              -DAYF_BUILD_EXAMPLES=ON -DAYF_HEADER_CHECK=OFF -DAYF_INSTALL=OFF -DAYF_WERROR=ON
              -DAYF_WITH_OPENBLAS=OFF -DAYF_WITH_ONEDNN=OFF '-DCMAKE_BUILD_RPATH=$ORIGIN')
  # Without OpenBLAS (36 MB with libgfortran) and oneDNN (40 MB) the bundle fits the device tool's
  # 64 MiB; the host-side references of the CUDA programs take Eigen's product.
  if command -v ccache >/dev/null 2>&1; then
    args+=(-DCMAKE_CXX_COMPILER_LAUNCHER=ccache -DCMAKE_CUDA_COMPILER_LAUNCHER=ccache)
  fi
  [[ ! -f "$build_dir/CMakeCache.txt" ]] && command -v ninja >/dev/null 2>&1 && args+=(-G Ninja)
  say "configure $build_dir (nvcc $nvcc_bin, sm_$arch)"
  mkdir -p "$build_dir"
  cmake -S . -B "$build_dir" "${args[@]}" >"$build_dir/gpu-check-configure.log" 2>&1 ||
    { cat "$build_dir/gpu-check-configure.log" >&2; die 1 "configure failed"; }
  local jobs=${GPU_CHECK_JOBS:-2} start
  start=$(date +%s)
  say "build ${programs[*]} (-j$jobs; nvcc is slow: minutes per translation unit)"
  nice -n 10 cmake --build "$build_dir" -j"$jobs" --target "${programs[@]}" || die 1 "build failed"
  say "built in $(( $(date +%s) - start )) s"

  [[ "$bundle" == "$root/"?* ]] || die 2 "the bundle must be a folder inside the repository (got $bundle)"
  rm -rf "$bundle"
  mkdir -p "$bundle"
  local p
  for p in "${programs[@]}"; do
    local exe
    exe=$(find "$build_dir" -type f -name "$p" -perm -u+x | head -n 1)
    [[ -n "$exe" ]] || die 1 "$p not found under $build_dir"
    cp "$exe" "$bundle/$p"
    strip --strip-unneeded "$bundle/$p" || die 1 "strip $p failed"
  done
  # The data of `image` (Fashion-MNIST's four IDX files, gzip-compressed: about 30 MB).
  mkdir -p "$bundle/fashion-mnist"
  local idx
  for idx in train-images-idx3-ubyte train-labels-idx1-ubyte t10k-images-idx3-ubyte t10k-labels-idx1-ubyte; do
    if [[ -e "$fashion_mnist/$idx.gz" ]]; then cp "$fashion_mnist/$idx.gz" "$bundle/fashion-mnist/"
    elif [[ -e "$fashion_mnist/$idx" ]]; then gzip -c "$fashion_mnist/$idx" >"$bundle/fashion-mnist/$idx.gz"
    else die 1 "no $fashion_mnist/$idx(.gz) for image_distill_cuda (scripts/setup.sh installs dataset-fashion-mnist; GPU_CHECK_FASHION_MNIST names another folder)"
    fi
  done
  # Copy every non-system library the programs (and the copies, transitively) resolve to.
  local changed=1 name path f
  while (( changed )); do
    changed=0
    for f in "$bundle"/*; do
      [[ -f "$f" ]] || continue
      while read -r name path; do
        [[ "$name" =~ $system_libs ]] && continue
        [[ "$path" == NOTFOUND ]] && die 4 "$(basename "$f") needs $name, which ldd cannot find here"
        [[ -e "$bundle/$name" ]] && continue
        cp -L "$path" "$bundle/$name"
        strip --strip-unneeded "$bundle/$name" 2>/dev/null || true
        say "bundled $name (from $path)"
        changed=1
      done < <(resolved_libs "$f")
    done
  done
  {
    echo "ayf gpu-bundle: built $(date -u '+%Y-%m-%d %H:%M UTC') on $(uname -m), sm_$arch, Release, static cudart"
    echo "commit $(git rev-parse --short HEAD 2>/dev/null || echo unknown)$(git diff --quiet HEAD 2>/dev/null || echo ' (with uncommitted changes)')"
    "$nvcc_bin" --version | tail -n 2
    echo "needs on the GPU machine: glibc and libstdc++ at least these symbol versions, the NVIDIA driver (libcuda), ${cublas_names[*]}"
    for f in "$bundle"/*; do
      [[ "$f" == */MANIFEST.txt || ! -f "$f" ]] && continue
      printf '%s %s GLIBC_%s GLIBCXX_%s\n' "$(basename "$f")" "$(stat -c %s "$f")" \
        "$(objdump -T "$f" | grep -o 'GLIBC_[0-9.]*' | sed 's/GLIBC_//' | sort -V | tail -n 1)" \
        "$(objdump -T "$f" | grep -o 'GLIBCXX_[0-9.]*' | sed 's/GLIBCXX_//' | sort -V | tail -n 1)"
    done
  } >"$bundle/MANIFEST.txt"
  verify
}

# The bundle as the GPU machine will see it: every program starts from $ORIGIN, ldd (with
# LD_LIBRARY_PATH the bundle, as run and image set it) resolves each library to the bundle or to a
# system library, the static runtime is in (no libcudart); bundle + working tree fit the 64 MiB.
verify() {
  [[ -d "$bundle" ]] || die 4 "no $bundle/: run scripts/gpu-check.sh build first"
  local f name path bad=0
  for f in "$bundle"/*; do
    [[ "$f" == */MANIFEST.txt || ! -f "$f" ]] && continue
    # shellcheck disable=SC2016
    if ! readelf -d "$f" | grep -Eq '(RUNPATH|RPATH).*\$ORIGIN'; then
      [[ "$f" == *.so* ]] || { say "$(basename "$f"): no \$ORIGIN in its RUNPATH"; bad=1; }
    fi
    if readelf -d "$f" | grep -q 'NEEDED.*libcudart'; then say "$(basename "$f") needs the shared libcudart"; bad=1; fi
    while read -r name path; do
      if [[ "$path" == "$bundle/"* ]]; then continue; fi
      if [[ "$name" =~ $system_libs ]]; then continue; fi
      say "$(basename "$f"): $name resolves to $path, outside the bundle and not a system library"
      bad=1
    done < <(resolved_libs "$f")
  done
  (( bad == 0 )) || die 4 "the bundle is incomplete"
  local b t
  b=$(du -cb "$bundle" | tail -n 1 | cut -f 1)
  t=$(tree_bytes)
  say "bundle $bundle/: $(mib "$b"); working tree: $(mib "$t"); together $(mib $((b + t))) of $(mib "$limit_bytes")"
  for f in "$bundle"/* "$bundle"/fashion-mnist/*; do [[ -f "$f" ]] && printf 'gpu-check:   %10d  %s\n' "$(stat -c %s "$f")" "${f#"$bundle"/}"; done
  (( b + t <= limit_bytes )) || die 4 "bundle + working tree exceed $(mib "$limit_bytes")"
  say "every library resolves to $bundle/ or to the system (libc, libstdc++, libgcc_s, libcuda, ${cublas_names[*]})"
}

# Prints "library: directory" for each CUDA 13 cuBLAS library (a toolkit, ldconfig's cache, or a Python
# wheel under /usr or /opt); fails if one is not found.
find_cublas() {
  local lib dir found candidates
  for lib in "${cublas_names[@]}"; do
    found=""
    candidates=("${CUDA_HOME:-/usr/local/cuda}/lib64" /usr/local/cuda/lib64 /usr/local/cuda/targets/x86_64-linux/lib
                /usr/local/cuda-13*/lib64 /usr/local/cuda-13*/targets/x86_64-linux/lib /usr/lib/x86_64-linux-gnu)
    for dir in "${candidates[@]}"; do
      [[ -e "$dir/$lib" ]] && { found=$dir; break; }
    done
    if [[ -z "$found" ]]; then
      found=$(ldconfig -p 2>/dev/null | awk -v l="$lib" '$1 == l { print $NF; exit }')
      found=${found%/*}
    fi
    if [[ -z "$found" && -z "${GPU_CHECK_NO_FIND:-}" ]]; then
      found=$(timeout 20 find /usr /opt -name "$lib" 2>/dev/null | head -n 1)
      found=${found%/*}
    fi
    [[ -n "$found" ]] || return 1
    echo "$lib: $found"
  done
}

# Puts folder $1 first on LD_LIBRARY_PATH unless it is already there.
prepend_library_path() {
  case ":${LD_LIBRARY_PATH:-}:" in *":$1:"*) ;; *) export LD_LIBRARY_PATH="$1${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}" ;; esac
}

# Puts the bundle and the folders of the cuBLAS libraries (find_cublas) on LD_LIBRARY_PATH, each once;
# sets cublas_line to "library: folder;..." or "not found (...)". The bundle is there for the libraries
# of bundled libraries, which the programs' RUNPATH does not cover.
use_cublas() {
  local cublas_dirs line
  prepend_library_path "$bundle"
  if cublas_dirs=$(find_cublas); then
    cublas_line=$(echo "$cublas_dirs" | tr '\n' ';' | sed 's/;$//')
    while read -r line; do
      prepend_library_path "${line#*: }"
    done <<<"$cublas_dirs"
  else
    cublas_line="not found (${cublas_names[*]})"
  fi
}

# step NAME SECONDS LOG COMMAND...: runs COMMAND under a timeout, output to LOG and the console;
# sets step_rc and step_seconds.
step() {
  local name=$1 seconds=$2 log=$3
  shift 3
  say "== $name (timeout ${seconds} s)"
  local start
  start=$(date +%s.%N)
  timeout --kill-after=10 "$seconds" "$@" 2>&1 | tee "$log"
  step_rc=${PIPESTATUS[0]}
  step_seconds=$(awk -v a="$start" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }')
  if (( step_rc == 124 || step_rc == 137 )); then echo "gpu-check: $name timed out after $seconds s" | tee -a "$log"; fi
  say "$name: exit $step_rc in $step_seconds s"
}

run() {
  local out=${1:-${OUT:-gpu-check-out}}
  mkdir -p "$out" || die 2 "cannot create $out"
  out=$(cd "$out" && pwd)
  local summary="$out/gpu-check-summary.md" b=$bundle
  local started
  started=$(date +%s)
  local -a rows=()
  local failed=0

  write_summary() {   # $1: overall verdict line
    {
      echo "# ayf GPU check"
      echo
      echo "$1"
      echo
      echo "- when: $(date -u '+%Y-%m-%d %H:%M:%S UTC'), total $(( $(date +%s) - started )) s"
      echo "- host: $(uname -m), $(nproc) cores, $(ldd --version 2>/dev/null | head -n 1)"
      echo "- device: ${device_line:-none}"
      echo "- bundle: $(head -n 2 "$b/MANIFEST.txt" 2>/dev/null | tr '\n' ' ')"
      echo "- cuBLAS: ${cublas_line:-not looked up}"
      echo
      if ((${#rows[@]})); then
        echo "| step | result | seconds | details |"
        echo "|---|---|---|---|"
        printf '%s\n' "${rows[@]}"
        echo
      fi
      if [[ -s "$out/bench.log" ]]; then
        echo "## bench_steps_cuda (float; cublas_fraction = cuBLAS time / wall time)"
        echo
        echo '```'
        grep -E '^(Benchmark|-{10}|[A-Za-z_]+_step<)' "$out/bench.log"
        echo '```'
        echo
      fi
      if [[ -s "$out/train.log" ]]; then
        echo "## training check"
        echo
        echo '```'
        grep '^train_check: ' "$out/train.log" | grep -v '^train_check: step '
        echo '```'
        echo
      fi
      if [[ -s "$out/tests.log" ]] && grep -q 'FAILED' "$out/tests.log"; then
        echo "## failed test cases"
        echo
        echo '```'
        grep -E -B2 -A12 'FAILED:' "$out/tests.log" | head -n 120
        echo '```'
        echo
      fi
      local logs=() name
      for name in nvidia-smi.log environment.log tests.log bench.log bench.json train.log; do
        [[ -e "$out/$name" ]] && logs+=("$name")
      done
      echo "Logs beside this file: ${logs[*]:-none}."
    } >"$summary"
  }

  # A copy may lose the executable bits.
  local p
  for p in "${programs[@]}"; do [[ -f "$b/$p" && ! -x "$b/$p" ]] && chmod +x "$b/$p"; done
  [[ -x "$b/ayf_tests_cuda" ]] || { write_summary "**FAIL**: no $bundle/ (carry it: build it first with scripts/gpu-check.sh build)"; die 4 "no $bundle/ with the programs: run scripts/gpu-check.sh build here first and carry $bundle"; }

  {
    echo "== uname"; uname -a
    echo "== ldd --version"; ldd --version 2>&1 | head -n 1
    echo "== bundle"; cat "$b/MANIFEST.txt"
    echo "== nvcc"; (command -v nvcc && nvcc --version | tail -n 2) 2>&1
  } >"$out/environment.log" 2>&1

  say "== nvidia-smi"
  if command -v nvidia-smi >/dev/null 2>&1; then
    timeout 30 nvidia-smi 2>&1 | tee "$out/nvidia-smi.log"
  else
    echo "nvidia-smi: not found" | tee "$out/nvidia-smi.log"
  fi

  use_cublas
  say "cuBLAS: $cublas_line"
  { echo "== LD_LIBRARY_PATH=${LD_LIBRARY_PATH:-}"; for p in "${programs[@]}"; do [[ -e "$b/$p" ]] && { echo "== ldd $p"; ldd "$b/$p"; }; done; } >>"$out/environment.log" 2>&1
  if grep -q 'not found' "$out/environment.log"; then
    grep 'not found' "$out/environment.log" | sort -u >&2
    write_summary "**FAIL**: libraries not found on this machine (environment.log): $(grep 'not found' "$out/environment.log" | awk '{ print $1 }' | sort -u | tr '\n' ' ')"
    die 4 "shared libraries not found (see $out/environment.log)"
  fi

  # The probe: a CUDA device the runtime can use (exit 77 from the program: none).
  local info rc
  info=$(timeout 30 "$b/ayf_tests_cuda" --device-info 2>&1)
  rc=$?
  echo "$info" | tee -a "$out/environment.log"
  if (( rc != 0 )); then
    device_line="none: $(echo "$info" | tail -n 1)"
    if (( rc == 77 )); then
      write_summary "**NO CUDA DEVICE**: nothing was run ($(echo "$info" | tail -n 1))"
      die 3 "no CUDA device: $(echo "$info" | tail -n 1); run this on the GPU machine (docs/thrust-cuda.md); summary: $summary"
    fi
    write_summary "**FAIL**: the device probe exited $rc"
    die 1 "the device probe (ayf_tests_cuda --device-info) exited $rc"
  fi
  device_line=$(echo "$info" | grep 'device 0' | sed 's/^ayf_tests_cuda: device 0: //')
  device_line="$device_line; $(echo "$info" | grep 'driver API' | sed 's/^ayf_tests_cuda: //')"

  # After each step the summary is rewritten, so a run killed from outside still leaves one.
  write_summary "**INCOMPLETE**: the check was stopped before its end (the table shows the steps done)"

  # 1. The conformance suite on CUDA.
  step "CUDA tests (ayf_tests_cuda)" 170 "$out/tests.log" "$b/ayf_tests_cuda" --durations yes
  local counts
  counts=$(grep -E '^(All tests passed|test cases:)' "$out/tests.log" | tail -n 1)
  [[ -n "$counts" ]] || counts="no Catch summary (crashed or killed)"
  if (( step_rc == 0 )); then rows+=("| CUDA tests | pass | $step_seconds | $counts |")
  else rows+=("| CUDA tests | **FAIL** (exit $step_rc) | $step_seconds | $counts |"); failed=1; fi

  write_summary "**INCOMPLETE**: the check was stopped before its end (the table shows the steps done)"

  # 2. The step benchmark (float MLP and U-Net steps; cublas_fraction per MLP case).
  step "bench_steps_cuda" 100 "$out/bench.log" "$b/bench_steps_cuda" \
    "--benchmark_out=$out/bench.json" --benchmark_out_format=json
  local cases
  cases=$(grep -cE '^[A-Za-z_]+_step<' "$out/bench.log")
  if (( step_rc == 0 && cases > 0 )); then rows+=("| bench_steps_cuda | pass | $step_seconds | $cases cases (table below) |")
  else rows+=("| bench_steps_cuda | **FAIL** (exit $step_rc) | $step_seconds | $cases cases |"); failed=1; fi

  write_summary "**INCOMPLETE**: the check was stopped before its end (the table shows the steps done)"

  # 3. The training check at full length against the Eigen backend.
  step "training check (ayf_train_check_cuda)" 75 "$out/train.log" "$b/ayf_train_check_cuda" --steps 300 --batch 1024
  local train_line
  train_line=$(grep -E '^train_check: ms per step' "$out/train.log" | sed 's/^train_check: //')
  if (( step_rc == 0 )) && grep -q '^train_check: PASS' "$out/train.log"; then
    rows+=("| training check | pass | $step_seconds | $train_line |")
  else
    rows+=("| training check | **FAIL** (exit $step_rc) | $step_seconds | $(grep -c '^train_check: FAIL ' "$out/train.log") checks failed; $train_line |")
    failed=1
  fi

  if (( failed )); then
    write_summary "**FAIL**: see the table and the logs"
    say "FAIL (summary: $summary)"
    return 1
  fi
  write_summary "**PASS**: CUDA tests, bench_steps_cuda and the training check"
  say "PASS (summary: $summary)"
  return 0
}

# image [DIR]: image_distill_cuda --preset quick --backend cuda on the bundled Fashion-MNIST (a second
# device call after `run`); writes DIR/gpu-check-image.md (wall time, peak memory, the table), image.log
# and image_distill.csv; the program's other outputs go to $GPU_CHECK_IMAGE_OUT (default gpu-image-out/).
# GPU_CHECK_IMAGE_ARGS adds options (e.g. a preset).
image() {
  local out=${1:-${OUT:-gpu-check-out}}
  mkdir -p "$out" || die 2 "cannot create $out"
  out=$(cd "$out" && pwd)
  local summary="$out/gpu-check-image.md" b=$bundle exe=$bundle/image_distill_cuda
  [[ -f "$exe" && ! -x "$exe" ]] && chmod +x "$exe"
  [[ -x "$exe" && -d "$b/fashion-mnist" ]] || {
    printf '# ayf GPU check: image_distill\n\n**FAIL**: no %s/image_distill_cuda or fashion-mnist/ (build the bundle first)\n' "$bundle" >"$summary"
    die 4 "no $bundle/image_distill_cuda or $bundle/fashion-mnist: run scripts/gpu-check.sh build here first and carry $bundle"
  }
  use_cublas
  local -a extra=()
  read -r -a extra <<<"${GPU_CHECK_IMAGE_ARGS:-}"
  # The program's outputs (over a hundred files) stay outside DIR: the device tool returns only a few.
  local run_dir=${GPU_CHECK_IMAGE_OUT:-$root/gpu-image-out}
  step "image_distill_cuda --preset quick --backend cuda" 480 "$out/image.log" \
    "$exe" --preset quick --backend cuda --data-dir "$b/fashion-mnist" --out "$run_dir" "${extra[@]}"
  [[ -f "$run_dir/image_distill.csv" ]] && cp "$run_dir/image_distill.csv" "$out/"
  local verdict
  if (( step_rc == 0 )); then verdict="**PASS**: the quick preset ran on CUDA in $step_seconds s"
  elif grep -q 'no usable CUDA device\|no CUDA device found' "$out/image.log"; then verdict="**NO CUDA DEVICE**"
  else verdict="**FAIL** (exit $step_rc after $step_seconds s; image.log)"
  fi
  {
    echo "# ayf GPU check: image_distill"
    echo
    echo "$verdict"
    echo
    echo "- when: $(date -u '+%Y-%m-%d %H:%M:%S UTC'); command: image_distill_cuda --preset quick --backend cuda ${extra[*]}"
    echo "- bundle: $(head -n 2 "$b/MANIFEST.txt" 2>/dev/null | tr '\n' ' ')"
    echo
    echo '```'
    grep -E '^(classifier:|noise floor|time:)' "$out/image.log"
    sed -n '/^method /,/^time:/p' "$out/image.log" | grep -v '^time:'
    echo '```'
    echo
    echo "Log: image.log; table: image_distill.csv; grids, samples and checkpoints: $run_dir/ on that machine."
  } >"$summary"
  say "$verdict (summary: $summary)"
  case "$verdict" in
    "**PASS**"*) return 0 ;;
    "**NO CUDA DEVICE**"*) return 3 ;;
    *) return 1 ;;
  esac
}

case "${1:-}" in
  build) (( $# == 1 )) || usage; build ;;
  image) (( $# <= 2 )) || usage; shift; image "$@" ;;
  verify) (( $# == 1 )) || usage; verify ;;
  run) (( $# <= 2 )) || usage; shift; run "$@" ;;
  *) usage ;;
esac
