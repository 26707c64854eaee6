# Checks shared by the CMake-script tests (cmake -P): include() it, then call
#   run_command(<command...>)   runs it with a limit of ${run_command_timeout} seconds (default 300);
#                               sets last_rc and last_output (stdout then stderr) in the caller;
#   expect_in(<needle> <text>)  fails the test unless the text contains the needle.
if(NOT DEFINED run_command_timeout)
  set(run_command_timeout 300)
endif()

function(run_command)
  execute_process(COMMAND ${ARGN} RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err
                  TIMEOUT ${run_command_timeout})
  set(last_rc "${rc}" PARENT_SCOPE)
  set(last_output "${out}${err}" PARENT_SCOPE)
endfunction()

function(expect_in needle text)
  string(FIND "${text}" "${needle}" at)
  if(at EQUAL -1)
    message(FATAL_ERROR "expected '${needle}' in:\n${text}")
  endif()
endfunction()
