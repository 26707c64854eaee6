#!/usr/bin/env bash
# The image_distill_stop ctest: SIGINT during training stops image_distill after the current step with
# that step's checkpoint, a message naming the stage and step, and exit status 130 (128 + SIGINT); a
# --resume run continues from that step. Usage: stop_test.sh <image_distill binary> <output directory>
set -uo pipefail
program=$1
out=$2
rm -rf "$out"
mkdir -p "$out"
fail() {
  echo "stop_test: $*" >&2
  echo "---- log ----" >&2
  cat "$out/log" >&2
  exit 1
}
# A teacher stage far longer than the test: only the signal ends it.
args=(--preset smoke --out "$out/run" --teacher-steps 1000000 --checkpoint-every 1000000 --progress-every 1)
"$program" "${args[@]}" >"$out/log" 2>&1 &
pid=$!
for _ in $(seq 1 1200); do  # up to 120 s for the first step (sanitizer builds are slow)
  grep -q "^teacher step" "$out/log" && break
  kill -0 "$pid" 2>/dev/null || fail "image_distill ended before its first progress line"
  sleep 0.1
done
grep -q "^teacher step" "$out/log" || { kill -KILL "$pid"; fail "no progress line within 120 s"; }
kill -INT "$pid"
wait "$pid"
status=$?
[[ $status -eq 130 ]] || fail "exit status $status after SIGINT, expected 130"
message=$(grep "image_distill: stopped: the teacher at step" "$out/log") || fail "no 'stopped' message naming the teacher"
step=$(sed -E 's/.*at step ([0-9]+) of 1000000.*/\1/' <<<"$message")
[[ $step =~ ^[0-9]+$ && $step -ge 1 ]] || fail "no step in the message: $message"
grep -q -- "--resume to continue" <<<"$message" || fail "the message does not say how to continue: $message"
[[ -f "$out/run/checkpoints/teacher.safetensors" ]] || fail "no teacher checkpoint after the stop"
ls "$out/run/checkpoints" | grep -q '\.tmp' && fail "a temporary checkpoint file was left"

# --resume picks the stage up at that step (stopped again by SIGTERM: 128 + 15).
"$program" "${args[@]}" --resume >"$out/log" 2>&1 &
pid=$!
for _ in $(seq 1 1200); do
  grep -q "^teacher step" "$out/log" && break
  kill -0 "$pid" 2>/dev/null || fail "the resumed run ended before its first progress line"
  sleep 0.1
done
kill -TERM "$pid"
wait "$pid"
status=$?
[[ $status -eq 143 ]] || fail "exit status $status after SIGTERM, expected 143"
grep -q "teacher: resuming at step $step\$" "$out/log" || fail "the resumed run did not start at step $step"
grep -q "image_distill: stopped: the teacher at step" "$out/log" || fail "no 'stopped' message after SIGTERM"
echo "stop_test: stopped at step $step (SIGINT, status 130), resumed there and stopped again (SIGTERM, status 143)"
