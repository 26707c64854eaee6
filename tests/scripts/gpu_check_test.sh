#!/usr/bin/env bash
# ctest gpu_check_script: scripts/gpu-check.sh without a GPU or nvcc. Syntax (bash -n, and shellcheck
# when installed); usage errors exit 2; `run` without a bundle exits 4; and `run` over a bundle of
# stand-in programs (shell scripts that print what the real ones print) exits 3 when the probe finds no
# device, 0 when every step passes (also when a copy lost a program's executable bit) and 1 when one
# fails, writing gpu-check-summary.md each time; `image` without a bundle exits 4, and over a stand-in
# image_distill_cuda exits 0 with the table in gpu-check-image.md, or 3 without a device.
set -uo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
script=$root/scripts/gpu-check.sh
work=$(mktemp -d)
trap '[[ -n "${KEEP:-}" ]] || rm -rf "$work"' EXIT
failures=0
export GPU_CHECK_NO_FIND=1   # no walk of /usr and /opt for cuBLAS
expect() {  # expect <what> <wanted exit code> <got exit code>
  if [[ "$2" == "$3" ]]; then echo "ok   $1 (exit $3)"; else echo "FAIL $1: exit $3, expected $2"; failures=$((failures + 1)); fi
}
expect_in() {  # expect_in <what> <file> <text>
  if grep -qF -- "$3" "$2" 2>/dev/null; then echo "ok   $1"; else echo "FAIL $1: '$3' not in $2"; failures=$((failures + 1)); fi
}

bash -n "$script"; expect "bash -n" 0 $?
if command -v shellcheck >/dev/null 2>&1; then shellcheck "$script"; expect "shellcheck" 0 $?; else echo "skip shellcheck: not installed"; fi
"$script" >/dev/null 2>&1; expect "no mode" 2 $?
"$script" run a b >/dev/null 2>&1; expect "run with two folders" 2 $?
GPU_CHECK_BUNDLE=$work/none "$script" run "$work/out0" >/dev/null 2>&1; expect "run without a bundle" 4 $?
expect_in "summary without a bundle" "$work/out0/gpu-check-summary.md" "**FAIL**: no "

# stand_in <bundle> <device: yes|no> <training verdict: PASS|FAIL>
stand_in() {
  mkdir -p "$1"
  printf 'ayf gpu-bundle: stand-in\n' >"$1/MANIFEST.txt"
  cat >"$1/ayf_tests_cuda" <<EOS
#!/bin/sh
if [ "$2" = no ]; then echo "ayf_tests_cuda: no CUDA device (no CUDA-capable device is detected): skipping"; exit 77; fi
if [ "\$1" = --device-info ]; then echo "ayf_tests_cuda: CUDA driver API 13000, runtime 13000"; echo "ayf_tests_cuda: device 0: Stand-in GPU, sm_90, 1 multiprocessors, 1.0 GiB"; exit 0; fi
echo "All tests passed (12 assertions in 3 test cases)"
EOS
  cat >"$1/bench_steps_cuda" <<'EOS'
#!/bin/sh
echo "flow_matching_step<ayf::thrust_backend<float>>/2/256/1024/real_time  1.00 ms  1.00 ms  100 cublas_fraction=0.5"
EOS
  cat >"$1/ayf_train_check_cuda" <<EOS
#!/bin/sh
echo "train_check: ms per step: eigen double 1, eigen float 1, cuda double 1, cuda float 1"
echo "train_check: $3"
[ "$3" = PASS ]
EOS
  chmod +x "$1"/*_cuda
}

stand_in "$work/b1" no PASS
GPU_CHECK_BUNDLE=$work/b1 "$script" run "$work/out1" >"$work/log1" 2>&1; expect "run, no CUDA device" 3 $?
expect_in "no-device message" "$work/log1" "no CUDA device"
expect_in "no-device summary" "$work/out1/gpu-check-summary.md" "**NO CUDA DEVICE**"

stand_in "$work/b2" yes PASS
chmod -x "$work/b2/bench_steps_cuda"   # a copy that lost the executable bit
GPU_CHECK_BUNDLE=$work/b2 "$script" run "$work/out2" >"$work/log2" 2>&1; expect "run, every step passes" 0 $?
expect_in "pass summary" "$work/out2/gpu-check-summary.md" "**PASS**"
expect_in "device in the summary" "$work/out2/gpu-check-summary.md" "Stand-in GPU, sm_90"
expect_in "test counts in the summary" "$work/out2/gpu-check-summary.md" "All tests passed (12 assertions in 3 test cases)"
expect_in "benchmark table in the summary" "$work/out2/gpu-check-summary.md" "cublas_fraction=0.5"

stand_in "$work/b3" yes FAIL
GPU_CHECK_BUNDLE=$work/b3 "$script" run "$work/out3" >"$work/log3" 2>&1; expect "run, the training check fails" 1 $?
expect_in "fail summary" "$work/out3/gpu-check-summary.md" "| training check | **FAIL**"

# image: image_distill_cuda on the bundled data (stand-in printing what the program prints).
image_stand_in() {  # image_stand_in <bundle> <device: yes|no>
  mkdir -p "$1/fashion-mnist"
  cat >"$1/image_distill_cuda" <<EOS
#!/bin/sh
case " \$* " in *" --backend cuda "*) ;; *) echo "image_distill_cuda: expected --backend cuda"; exit 2 ;; esac
case " \$* " in *" --data-dir $1/fashion-mnist "*) ;; *) echo "image_distill_cuda: expected the bundled data"; exit 2 ;; esac
if [ "$2" = no ]; then echo "image_distill: error: --backend cuda: no usable CUDA device (stand-in)" >&2; exit 1; fi
echo "classifier: test accuracy 0.8800 on 10000 images (209370 parameters)"
printf '\n%s\n%s\n' "method         guidance      lambda" "ayf_emd        autoguidance       2"
echo "time: training 1.0 s, sampling and scoring 1.0 s, total 2.0 s; peak memory 10 MiB; wrote x"
EOS
  chmod -x "$1/image_distill_cuda"   # a copy that lost the executable bit
}
GPU_CHECK_BUNDLE=$work/none "$script" image "$work/out4" >/dev/null 2>&1; expect "image without a bundle" 4 $?
image_stand_in "$work/b2" yes
GPU_CHECK_BUNDLE=$work/b2 "$script" image "$work/out5" >"$work/log5" 2>&1; expect "image on a device" 0 $?
expect_in "image pass summary" "$work/out5/gpu-check-image.md" "**PASS**"
expect_in "image table in the summary" "$work/out5/gpu-check-image.md" "ayf_emd        autoguidance"
expect_in "image time in the summary" "$work/out5/gpu-check-image.md" "peak memory 10 MiB"
image_stand_in "$work/b1" no
GPU_CHECK_BUNDLE=$work/b1 "$script" image "$work/out6" >"$work/log6" 2>&1; expect "image, no CUDA device" 3 $?
expect_in "image no-device summary" "$work/out6/gpu-check-image.md" "**NO CUDA DEVICE**"

if (( failures )); then echo "gpu_check_script: $failures failed"; exit 1; fi
echo "gpu_check_script: all passed"
