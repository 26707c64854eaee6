# expect_option_error(<option> <value> [args...]) for the examples' smoke-test scripts (cmake -P): runs
# ${PROGRAM} <option> <value> [args...] ${EXPECT_OPTION_ERROR_ARGS}, with --out ${OUT}/bad unless the args
# name --out, and requires a failure whose message names the option and the quoted value. The 20 s limit
# only keeps a program that would run on (a negative count read as 2^64 - 1) from stalling the test.
function(expect_option_error option value)
  set(args ${ARGN} ${EXPECT_OPTION_ERROR_ARGS})
  if(NOT "--out" IN_LIST args)
    list(APPEND args --out "${OUT}/bad")
  endif()
  execute_process(COMMAND "${PROGRAM}" ${option} ${value} ${args}
                  RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err TIMEOUT 20)
  if(rc EQUAL 0)
    message(FATAL_ERROR "expected failure: ${option} ${value} ${ARGN}\n${out}")
  endif()
  foreach(needle "${option}" "'${value}'")
    string(FIND "${out}${err}" "${needle}" at)
    if(at EQUAL -1)
      message(FATAL_ERROR "expected ${needle} in the message of ${option} ${value} ${ARGN} (rc ${rc}):\n${out}\n${err}")
    endif()
  endforeach()
endfunction()
