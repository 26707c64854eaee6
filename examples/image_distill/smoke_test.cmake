# cmake -P script behind the image_distill_smoke ctest. Inputs: -DPROGRAM=<binary> -DOUT=<dir>.
# --help lists the options; the smoke preset writes image_distill.csv (exact header, rows of known
# methods with finite metrics), grids and .npy samples (float32 [N, 28, 28], int64 labels [N]),
# prints the classifier's accuracy, the noise floor, wall time and peak memory; a --resume run
# reproduces the CSV (-DCOMPARE_BACKEND=<name>: the same rows, metrics to 1e-4 relative); evaluations.csv
# holds every evaluation with its fingerprint, and a --resume run reuses those that match and whose grid
# is there (the rest run again, the CSV unchanged); the lambda sweep writes its grids and samples;
# unlabelled --images run without classifier or CFG; a missing data directory, a corrupt IDX file, a non-.npy
# or truncated --images file and bad options fail with messages naming them.
cmake_minimum_required(VERSION 3.25)
include("${CMAKE_CURRENT_LIST_DIR}/../../cmake/ayfScriptChecks.cmake")
file(REMOVE_RECURSE "${OUT}")
file(MAKE_DIRECTORY "${OUT}")

run_command("${PROGRAM}" --help)
expect_run_succeeded("--help")
foreach(opt --preset --out --seed --backend --resume --data-dir --images --labels --teacher-steps --eval-samples)
  expect_in("${opt}" "${last_output}")
endforeach()

set(run_dir "${OUT}/run")
run_command("${PROGRAM}" --preset smoke --out "${run_dir}")
expect_run_succeeded("image_distill --preset smoke")
foreach(needle "classifier: test accuracy" "noise floor" "peak memory" "eta")  # "eta": progress lines
  expect_in("${needle}" "${last_output}")
endforeach()

file(STRINGS "${run_dir}/image_distill.csv" lines)
list(GET lines 0 header)
if(NOT header STREQUAL "method,guidance,lambda,steps,gamma,nfe,fd,precision,recall,class_accuracy")
  message(FATAL_ERROR "wrong CSV header: ${header}")
endif()
list(REMOVE_AT lines 0)
list(LENGTH lines count)
# Smoke preset: teacher Euler and Heun at 2 steps x 3 guidances (6), students at 1 and 2 steps
# (AYF-EMD, AYF-LMD and AYF-EMD-CFG with gamma 0.5 at 2 steps: 3 x 3; sCD: 2), the lambda sweep (2).
if(NOT count EQUAL 19)
  message(FATAL_ERROR "expected 19 result rows, got ${count}:\n${lines}")
endif()
set(number "[-+.e0-9]+")  # finite numbers only: no nan / inf
foreach(line IN LISTS lines)
  if(NOT line MATCHES "^(teacher_euler|teacher_heun|ayf_emd|ayf_lmd|scd),(none|autoguidance|cfg),${number},[0-9]+,${number},[0-9]+,${number},${number},${number},${number}$")
    message(FATAL_ERROR "malformed or non-finite row: ${line}")
  endif()
endforeach()
foreach(method teacher_euler teacher_heun ayf_emd ayf_lmd scd)
  string(FIND "${lines}" "${method}," at)
  if(at EQUAL -1)
    message(FATAL_ERROR "no ${method} row")
  endif()
endforeach()

foreach(f grids/ayf_emd_autoguidance_1.png grids/teacher_heun_cfg_2.png grids/scd_autoguidance_2.png
          grids/ayf_emd_cfg_2_gamma0.5.png checkpoints/teacher.safetensors checkpoints/weak.safetensors
          checkpoints/ayf_emd.safetensors checkpoints/ayf_lmd.safetensors checkpoints/scd.safetensors
          checkpoints/ayf_emd_cfg.safetensors checkpoints/classifier.safetensors
          grids/ayf_emd_autoguidance_4_lambda3.png samples/ayf_emd_autoguidance_4_lambda3.npy)
  if(NOT EXISTS "${run_dir}/${f}")
    message(FATAL_ERROR "image_distill wrote no ${f}")
  endif()
endforeach()
# .npy headers: dtype and shape.
file(STRINGS "${run_dir}/samples/ayf_emd_autoguidance_2.npy" h LIMIT_COUNT 1 REGEX "descr")
if(NOT h MATCHES "'descr': '<f4'" OR NOT h MATCHES "'shape': \\(100, 28, 28\\)")
  message(FATAL_ERROR "samples .npy header: expected '<f4' (100, 28, 28), got ${h}")
endif()
file(STRINGS "${run_dir}/samples/ayf_emd_autoguidance_2_labels.npy" h LIMIT_COUNT 1 REGEX "descr")
if(NOT h MATCHES "'descr': '<i8'" OR NOT h MATCHES "'shape': \\(100,\\)")
  message(FATAL_ERROR "labels .npy header: expected '<i8' (100,), got ${h}")
endif()

# evaluations.csv: the header and one row per evaluation, each with a 16-digit hexadecimal fingerprint.
file(STRINGS "${run_dir}/evaluations.csv" evaluation_lines)
list(GET evaluation_lines 0 evaluation_header)
if(NOT evaluation_header STREQUAL "fingerprint,method,guidance,lambda,steps,gamma,nfe,fd,precision,recall,class_accuracy")
  message(FATAL_ERROR "wrong evaluations.csv header: ${evaluation_header}")
endif()
list(REMOVE_AT evaluation_lines 0)
list(LENGTH evaluation_lines evaluation_count)
if(NOT evaluation_count EQUAL 19)
  message(FATAL_ERROR "expected 19 rows in evaluations.csv, got ${evaluation_count}")
endif()
foreach(line IN LISTS evaluation_lines)
  if(NOT line MATCHES "^[0-9a-f]+,(teacher_euler|teacher_heun|ayf_emd|ayf_lmd|scd),")
    message(FATAL_ERROR "malformed evaluations.csv row: ${line}")
  endif()
endforeach()

# A --resume run that succeeds, prints `needle` and leaves image_distill.csv as first_csv; its output in
# last_output.
function(expect_resume_keeps_csv what needle)
  run_command("${PROGRAM}" --preset smoke --out "${run_dir}" --resume)
  expect_run_succeeded("image_distill --resume (${what})")
  expect_in("${needle}" "${last_output}")
  file(READ "${run_dir}/image_distill.csv" csv)
  if(NOT first_csv STREQUAL csv)
    message(FATAL_ERROR "--resume (${what}) changed the CSV:\n${first_csv}\n---\n${csv}")
  endif()
  set(last_output "${last_output}" PARENT_SCOPE)
endfunction()

# --resume: every stage loads from its checkpoint and the table is the same, every evaluation sampled
# again (evaluations.csv removed first).
file(READ "${run_dir}/image_distill.csv" first_csv)
file(REMOVE "${run_dir}/evaluations.csv")
expect_resume_keeps_csv("every evaluation again" "finished stage loaded")
if(last_output MATCHES "reused")
  message(FATAL_ERROR "--resume without evaluations.csv reused an evaluation:\n${last_output}")
endif()
# Again with evaluations.csv: all 19 reused. Then with the first row's fingerprint changed and one grid
# removed: those two run again.
expect_resume_keeps_csv("evaluations reused" "evaluations: 19 of 19 reused")
file(READ "${run_dir}/evaluations.csv" evaluations)
string(FIND "${evaluations}" "\n" header_end)
math(EXPR first_digit "${header_end} + 1")
math(EXPR after_digit "${header_end} + 2")
string(SUBSTRING "${evaluations}" ${first_digit} 1 digit)
string(SUBSTRING "${evaluations}" 0 ${first_digit} before)
string(SUBSTRING "${evaluations}" ${after_digit} -1 after)
if(digit STREQUAL "1")
  set(digit 2)
else()
  set(digit 1)
endif()
file(WRITE "${run_dir}/evaluations.csv" "${before}${digit}${after}")
file(REMOVE "${run_dir}/grids/ayf_lmd_autoguidance_2.png")
expect_resume_keeps_csv("17 evaluations reused" "evaluations: 17 of 19 reused")
if(NOT EXISTS "${run_dir}/grids/ayf_lmd_autoguidance_2.png")
  message(FATAL_ERROR "the removed grid was not written again")
endif()

# Another backend (-DCOMPARE_BACKEND=thrust when the build has it) writes the same table: the same rows
# (method .. nfe exactly) and metrics equal to 1e-4 relative (the backends sum in different orders, so a
# printed sixth digit may differ).
if(DEFINED COMPARE_BACKEND AND NOT COMPARE_BACKEND STREQUAL "")
  run_command("${PROGRAM}" --preset smoke --backend "${COMPARE_BACKEND}" --out "${OUT}/${COMPARE_BACKEND}")
  expect_run_succeeded("image_distill --backend ${COMPARE_BACKEND}")
  compare_tables("${run_dir}/image_distill.csv" "${OUT}/${COMPARE_BACKEND}/image_distill.csv" 6 exact)
  if(exact)
    message(STATUS "--backend ${COMPARE_BACKEND}: the same image_distill.csv, byte for byte")
  else()
    message(STATUS "--backend ${COMPARE_BACKEND}: image_distill.csv equal to 1e-4 relative (not byte for byte)")
  endif()
endif()

# Unlabelled --images (the 100 samples written above): unconditional teachers, no CFG rows, no classifier
# (every metric nan), samples without a labels file.
set(own_dir "${OUT}/own")
run_command("${PROGRAM}" --preset smoke --images "${run_dir}/samples/ayf_emd_autoguidance_2.npy"
            --teacher-steps 4 --weak-steps 2 --student-steps 2 --out "${own_dir}")
expect_run_succeeded("image_distill --images (unlabelled)")
expect_in("unlabelled (no classifier, no CFG)" "${last_output}")
file(STRINGS "${own_dir}/image_distill.csv" own_lines)
list(REMOVE_AT own_lines 0)
list(LENGTH own_lines own_count)
# Teacher Euler and Heun at 2 steps x (none, autoguidance) (4); AYF-EMD and AYF-LMD at 1, 2 and 2 with
# gamma 0.5 (6); sCD at 1 and 2 (2); no lambda sweep without a classifier.
if(NOT own_count EQUAL 12)
  message(FATAL_ERROR "unlabelled --images: expected 12 rows, got ${own_count}:\n${own_lines}")
endif()
foreach(line IN LISTS own_lines)
  if(NOT line MATCHES "^(teacher_euler|teacher_heun|ayf_emd|ayf_lmd|scd),(none|autoguidance),${number},[0-9]+,${number},[0-9]+,nan,nan,nan,nan$")
    message(FATAL_ERROR "unlabelled --images: unexpected row (a cfg row, or a metric without a classifier): ${line}")
  endif()
endforeach()
if(NOT EXISTS "${own_dir}/samples/ayf_emd_autoguidance_2.npy" OR EXISTS "${own_dir}/samples/ayf_emd_autoguidance_2_labels.npy"
   OR EXISTS "${own_dir}/checkpoints/classifier.safetensors")
  message(FATAL_ERROR "unlabelled --images: expected samples without labels and no classifier")
endif()

# Errors name what is wrong.
function(expect_failure needle)
  run_command("${PROGRAM}" ${ARGN})
  expect_run_failed("image_distill ${ARGN}")
  expect_in("${needle}" "${last_output}")
endfunction()
expect_failure("--data-dir '${OUT}/missing': load_fashion_mnist: neither '${OUT}/missing/train-images-idx3-ubyte'" --preset smoke --data-dir "${OUT}/missing" --out "${OUT}/bad")
file(MAKE_DIRECTORY "${OUT}/corrupt")
foreach(f train-images-idx3-ubyte train-labels-idx1-ubyte t10k-images-idx3-ubyte t10k-labels-idx1-ubyte)
  file(WRITE "${OUT}/corrupt/${f}" "not an IDX file")
endforeach()
expect_failure("${OUT}/corrupt/train-images-idx3-ubyte" --preset smoke --data-dir "${OUT}/corrupt" --out "${OUT}/bad")
file(WRITE "${OUT}/bad.npy" "not an npy file")
expect_failure("--images: read_npy: '${OUT}/bad.npy'" --preset smoke --images "${OUT}/bad.npy" --out "${OUT}/bad")
# A truncated .npy of images (the first 1000 bytes of a sample file written above).
find_program(HEAD head)
if(HEAD)
  execute_process(COMMAND "${HEAD}" -c 1000 "${run_dir}/samples/ayf_emd_autoguidance_2.npy"
                  OUTPUT_FILE "${OUT}/truncated.npy" RESULT_VARIABLE rc)
  expect_failure("${OUT}/truncated.npy" --preset smoke --images "${OUT}/truncated.npy" --out "${OUT}/bad")
endif()
expect_failure("--backend" --preset smoke --backend cuda --out "${OUT}/bad")

include("${CMAKE_CURRENT_LIST_DIR}/../common/expect_option_error.cmake")
expect_option_error(--preset huge)
expect_option_error(--eval-samples 5 --preset smoke)
expect_option_error(--teacher-steps 0 --preset smoke)
expect_option_error(--backend tpu --preset smoke)
