# cmake -P script behind the minimal_distill_smoke ctest. Inputs: -DPROGRAM=<binary> -DOUT=<dir>.
# A short run writes the teacher checkpoint, the student's inference export and 1/2/4-step samples,
# and prints a finite sliced W2 per step count; --help lists the options; bad options fail.
cmake_minimum_required(VERSION 3.25)
file(REMOVE_RECURSE "${OUT}")

execute_process(COMMAND "${PROGRAM}" --help RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
if(NOT rc EQUAL 0 OR NOT out MATCHES "--steps")
  message(FATAL_ERROR "--help failed or does not list --steps:\n${out}\n${err}")
endif()

execute_process(COMMAND "${PROGRAM}" --steps 60 --out "${OUT}/run" RESULT_VARIABLE rc OUTPUT_VARIABLE out
                ERROR_VARIABLE err)
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "minimal_distill failed:\n${out}\n${err}")
endif()
foreach(f teacher.safetensors student_training.safetensors student.safetensors samples_1.npy samples_2.npy samples_4.npy)
  if(NOT EXISTS "${OUT}/run/${f}")
    message(FATAL_ERROR "minimal_distill wrote no ${f}")
  endif()
endforeach()
string(REGEX MATCHALL "\n[124],[0-9]+\\.[0-9]+" rows "\n${out}")
list(LENGTH rows count)
if(NOT count EQUAL 3)
  message(FATAL_ERROR "expected three rows 'steps,sliced_w2' with finite values, got:\n${out}")
endif()

include("${CMAKE_CURRENT_LIST_DIR}/../common/expect_option_error.cmake")
expect_option_error(--steps -1)
expect_option_error(--steps 0)
expect_option_error(--seed abc)
