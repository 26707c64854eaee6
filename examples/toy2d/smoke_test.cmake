# cmake -P script behind the toy2d_smoke ctest: --help, a tiny run per dataset kind (CSV header and
# row count), a resumed run that reproduces the CSV byte for byte, and clear errors for bad input.
# Inputs: -DPROGRAM=<binary> -DOUT=<dir> [-DCOMPARE_BACKEND=thrust: the tiny run on that backend must
# write the same toy2d.csv as on Eigen, byte for byte].
cmake_minimum_required(VERSION 3.25)
file(REMOVE_RECURSE "${OUT}")

function(run_program expect_rc)
  execute_process(COMMAND ${ARGN} RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
  if(expect_rc STREQUAL "ok" AND NOT rc EQUAL 0)
    message(FATAL_ERROR "expected success: ${ARGN}\n${out}\n${err}")
  elseif(NOT expect_rc STREQUAL "ok" AND rc EQUAL 0)
    message(FATAL_ERROR "expected failure: ${ARGN}")
  endif()
  set(last_output "${out}${err}" PARENT_SCOPE)
endfunction()

include("${CMAKE_CURRENT_LIST_DIR}/../../cmake/ayfScriptChecks.cmake")  # expect_in

run_program(ok "${PROGRAM}" --help)
foreach(option --data --out --seed --methods --ema --pair-mean --inference-lambda --resume)
  expect_in("${option}" "${last_output}")
endforeach()

set(tiny --teacher-steps 20 --weak-steps 10 --student-steps 10 --width 16 --weak-width 8 --batch 64
         --eval-samples 200 --mmd-samples 100 --sample-steps 1,2 --progress-every 0 --checkpoint-every 5)

# Unlabelled data, every student: per step count 4 teacher rows, 3 + 3 for AYF-EMD / AYF-LMD
# (gamma 0, 0.5, 1), 1 sCD, 1 Shortcut.
run_program(ok "${PROGRAM}" --data checkerboard --out "${OUT}/plain" ${tiny})
file(STRINGS "${OUT}/plain/toy2d.csv" lines)
list(GET lines 0 header)
if(NOT header STREQUAL "dataset,method,guidance,steps,gamma,swd,mmd")
  message(FATAL_ERROR "toy2d.csv header is '${header}'")
endif()
list(LENGTH lines count)
if(NOT count EQUAL 25)
  message(FATAL_ERROR "expected 24 result rows and a header in toy2d.csv, found ${count} lines")
endif()
foreach(method teacher_euler teacher_heun ayf_emd ayf_lmd scd shortcut)
  expect_in("checkerboard,${method}," "${lines}")
endforeach()

if(DEFINED COMPARE_BACKEND)
  run_program(ok "${PROGRAM}" --data checkerboard --out "${OUT}/other" ${tiny} --backend ${COMPARE_BACKEND})
  file(READ "${OUT}/plain/toy2d.csv" eigen_csv)
  file(READ "${OUT}/other/toy2d.csv" other_csv)
  if(NOT eigen_csv STREQUAL other_csv)
    message(FATAL_ERROR "toy2d.csv differs between --backend eigen and --backend ${COMPARE_BACKEND}")
  endif()
  return()
endif()

# A finished run resumed from its checkpoints gives the same table.
file(READ "${OUT}/plain/toy2d.csv" first)
run_program(ok "${PROGRAM}" --data checkerboard --out "${OUT}/plain" ${tiny} --resume)
expect_in("finished stage loaded" "${last_output}")
file(READ "${OUT}/plain/toy2d.csv" second)
if(NOT first STREQUAL second)
  message(FATAL_ERROR "the resumed run wrote a different toy2d.csv")
endif()

# Labelled data with a subset of students: CFG teacher rows and the AYF-EMD student from the CFG teacher.
run_program(ok "${PROGRAM}" --data two_class --out "${OUT}/labelled" ${tiny} --methods ayf_emd)
file(READ "${OUT}/labelled/toy2d.csv" labelled)
expect_in("two_class_mixture,teacher_heun,cfg," "${labelled}")
expect_in("two_class_mixture,ayf_emd,cfg," "${labelled}")
string(FIND "${labelled}" ",scd," at)
if(NOT at EQUAL -1)
  message(FATAL_ERROR "--methods ayf_emd still trained sCD")
endif()

# Bad input names what is wrong.
run_program(fail "${PROGRAM}" --out "${OUT}/bad" ${tiny} --methods ayf_emd,bogus)
expect_in("--methods" "${last_output}")
run_program(fail "${PROGRAM}" --out "${OUT}/bad" ${tiny} --data "${OUT}/missing.csv")
expect_in("missing.csv" "${last_output}")
run_program(fail "${PROGRAM}" --out "${OUT}/bad" ${tiny} --lambda-range 3 1)
expect_in("--lambda-range" "${last_output}")

# ---- hardening: every bad input is an error naming the option (or the file and line) and the value,
# raised before any work, and nothing already written is replaced.
include("${CMAKE_CURRENT_LIST_DIR}/../common/expect_option_error.cmake")

run_program(ok "${PROGRAM}" --help)
expect_in("[0, 999]" "${last_output}")  # the label bound
expect_in("(an integer in [1, 10000000])" "${last_output}")

# --sample-steps: a bad item or an empty list names the option and keeps the existing toy2d.csv.
set(tiny_but_sample_steps --teacher-steps 20 --weak-steps 10 --student-steps 10 --width 16 --weak-width 8 --batch 64
    --eval-samples 200 --mmd-samples 100 --progress-every 0 --checkpoint-every 5)
file(SHA256 "${OUT}/plain/toy2d.csv" csv_before)
expect_option_error(--sample-steps abc ${tiny_but_sample_steps} --resume --out "${OUT}/plain")
execute_process(COMMAND "${PROGRAM}" ${tiny_but_sample_steps} --resume --sample-steps "" --out "${OUT}/plain"
                RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err TIMEOUT 60)
if(rc EQUAL 0)
  message(FATAL_ERROR "--sample-steps '' must fail")
endif()
expect_in("--sample-steps: expected a comma-separated list" "${out}${err}")
file(SHA256 "${OUT}/plain/toy2d.csv" csv_after)
if(NOT csv_before STREQUAL csv_after)
  message(FATAL_ERROR "a failed run replaced ${OUT}/plain/toy2d.csv")
endif()

# Negative counts fail naming the option and leave an existing teacher checkpoint untouched.
file(SHA256 "${OUT}/plain/checkpoints/teacher.safetensors" teacher_before)
expect_option_error(--teacher-steps -1 --weak-steps 10 --student-steps 10 --width 16 --weak-width 8 --batch 64
                    --eval-samples 200 --mmd-samples 100 --sample-steps 1,2 --progress-every 0 --checkpoint-every 5
                    --out "${OUT}/plain")
file(SHA256 "${OUT}/plain/checkpoints/teacher.safetensors" teacher_after)
if(NOT teacher_before STREQUAL teacher_after)
  message(FATAL_ERROR "--teacher-steps -1 overwrote teacher.safetensors")
endif()
expect_option_error(--batch -5)
expect_option_error(--width -3)
expect_option_error(--student-steps -1)
expect_option_error(--eval-samples -1)
expect_option_error(--seed -1)
expect_option_error(--checkpoint-every 0)
expect_option_error(--shards 3)  # not a divisor of --batch 512
# Non-finite or out-of-range numbers.
expect_option_error(--lr inf)
expect_option_error(--lr nan)
expect_option_error(--student-lr 0)
expect_option_error(--inference-lambda nan)
expect_option_error(--inference-lambda inf)
expect_option_error(--tangent-warmup -5)
expect_option_error(--tangent-warmup nan)
expect_option_error(--ema 1)
expect_option_error(--pair-std 0)
expect_option_error(--lambda-range nan 1)

# An unusable --out fails at once, naming --out.
file(WRITE "${OUT}/a_file" "")
run_program(fail "${PROGRAM}" ${tiny} --out "${OUT}/a_file/sub")
expect_in("--out" "${last_output}")

# Labels: integers in [0, 999], checked on every row before the split (so a bad label in the rows
# that become held-out data fails too: row 0 does, for --seed 0), errors naming the line.
function(write_labelled path bad_row bad_label)
  set(text "x0,x1,label\n")
  foreach(i RANGE 99)
    math(EXPR label "${i} % 2")
    if(i EQUAL bad_row)
      set(label "${bad_label}")
    endif()
    math(EXPR a "${i} % 10")
    math(EXPR b "${i} % 7")
    string(APPEND text "0.${a},0.${b},${label}\n")
  endforeach()
  file(WRITE "${path}" "${text}")
endfunction()
foreach(case "10;1.5;line 12" "10;1e8;line 12" "10;100000000;line 12" "10;99999999999;line 12" "0;-3;line 2"
             "0;1000;line 2")
  list(GET case 0 row)
  list(GET case 1 label)
  list(GET case 2 where)
  write_labelled("${OUT}/labels_${row}_${label}.csv" ${row} ${label})
  execute_process(COMMAND "${PROGRAM}" ${tiny} --data "${OUT}/labels_${row}_${label}.csv" --out "${OUT}/bad"
                  RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err TIMEOUT 60)
  if(rc EQUAL 0)
    message(FATAL_ERROR "a label ${label} on ${where} was accepted")
  endif()
  foreach(needle "--data" "${where}" "${label}")
    expect_in("${needle}" "${out}${err}")
  endforeach()
endforeach()
# Valid labels in a label column give a class-conditional run.
write_labelled("${OUT}/labels_ok.csv" -1 0)
run_program(ok "${PROGRAM}" ${tiny} --data "${OUT}/labels_ok.csv" --methods ayf_emd --out "${OUT}/labels_ok")
expect_in("2 classes" "${last_output}")

# Divergence: coordinates of 1e20 overflow the float network at the teacher's first step. The error
# names the stage, the step, the option and the last good checkpoint.
set(text "x0,x1\n")
foreach(i RANGE 99)
  math(EXPR a "${i} % 7")
  math(EXPR b "${i} % 3")
  string(APPEND text "${a}e20,${b}e20\n")
endforeach()
file(WRITE "${OUT}/huge.csv" "${text}")
run_program(fail "${PROGRAM}" ${tiny} --data "${OUT}/huge.csv" --out "${OUT}/diverged")
foreach(needle "teacher diverged at step 1 of 20" "--lr" "last good checkpoint: none")
  expect_in("${needle}" "${last_output}")
endforeach()
# A student that diverges after its first checkpoint names that checkpoint: the teachers come
# from a run on small data, the AYF-LMD student then trains on the huge points.
set(text "x0,x1\n")
foreach(i RANGE 99)
  math(EXPR a "${i} % 7")
  math(EXPR b "${i} % 3")
  string(APPEND text "0.${a},0.${b}\n")
endforeach()
file(WRITE "${OUT}/small.csv" "${text}")
set(tiny_but_checkpoints --teacher-steps 20 --weak-steps 10 --student-steps 10 --width 16 --weak-width 8 --batch 64
    --eval-samples 200 --mmd-samples 100 --sample-steps 1,2 --progress-every 0)
run_program(ok "${PROGRAM}" ${tiny_but_checkpoints} --checkpoint-every 5 --data "${OUT}/small.csv" --methods ayf_emd
            --out "${OUT}/student")
file(SHA256 "${OUT}/student/toy2d.csv" csv_before)
run_program(fail "${PROGRAM}" ${tiny_but_checkpoints} --checkpoint-every 2 --data "${OUT}/huge.csv"
            --methods ayf_emd,ayf_lmd --resume --out "${OUT}/student")
foreach(needle "student ayf_lmd diverged at step" "--student-lr" "last good checkpoint")
  expect_in("${needle}" "${last_output}")
endforeach()
string(REGEX MATCH "diverged at step ([0-9]+)" _ "${last_output}")
if(CMAKE_MATCH_1 GREATER 2)
  expect_in("ayf_lmd.safetensors' (step" "${last_output}")
endif()
file(SHA256 "${OUT}/student/toy2d.csv" csv_after)
if(NOT csv_before STREQUAL csv_after)
  message(FATAL_ERROR "a run that diverged replaced toy2d.csv")
endif()
