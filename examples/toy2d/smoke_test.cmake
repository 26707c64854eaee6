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

function(expect_in needle text)
  string(FIND "${text}" "${needle}" at)
  if(at EQUAL -1)
    message(FATAL_ERROR "expected '${needle}' in:\n${text}")
  endif()
endfunction()

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
