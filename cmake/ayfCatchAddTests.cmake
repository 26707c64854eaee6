# Drop-in replacement for Catch2 v2's CatchAddTests.cmake, the script catch_discover_tests()
# runs after each build of a test executable (tests/CMakeLists.txt points Catch.cmake's
# _CATCH_DISCOVER_TESTS_SCRIPT here). Same inputs and output; two fixes:
#  - the listing is split into lines without CMake lists, so a test name with an unbalanced
#    '[' (e.g. "uniform on [0, 1)") no longer swallows the names after it into one test;
#  - the test count comes from the listing, not from the exit code (which wraps at 256).
# Each name is passed back to Catch with '\', ',', '[' and ']' escaped.
cmake_minimum_required(VERSION 3.25)

if(NOT EXISTS "${TEST_EXECUTABLE}")
  message(FATAL_ERROR "Specified test executable '${TEST_EXECUTABLE}' does not exist")
endif()
execute_process(
  COMMAND ${TEST_EXECUTOR} "${TEST_EXECUTABLE}" ${TEST_SPEC} --list-test-names-only
  OUTPUT_VARIABLE output
  ERROR_VARIABLE errors
  RESULT_VARIABLE result
  WORKING_DIRECTORY "${TEST_WORKING_DIR}")
if(NOT result MATCHES "^[0-9]+$")   # Catch returns the number of tests; anything else is a crash
  message(FATAL_ERROR "Error running test executable '${TEST_EXECUTABLE}':\n"
                      "  Result: ${result}\n  Output: ${output}\n  Errors: ${errors}\n")
endif()

set(reporter_arg "")
if(TEST_REPORTER)
  set(reporter_arg "--reporter ${TEST_REPORTER}")
endif()
set(output_dir "${TEST_OUTPUT_DIR}")
if(output_dir AND NOT IS_ABSOLUTE "${output_dir}")
  set(output_dir "${TEST_WORKING_DIR}/${output_dir}")
  file(MAKE_DIRECTORY "${output_dir}")
endif()

# bracket(<var> <text>): <text> as a CMake bracket argument, whatever characters it holds.
function(bracket var text)
  set(eq "=")
  while(text MATCHES "]${eq}]")
    string(APPEND eq "=")
  endwhile()
  set(${var} "[${eq}[${text}]${eq}]" PARENT_SCOPE)
endfunction()

set(script "")
set(test_list "")
set(count 0)
string(REPLACE "\r" "" output "${output}")
while(NOT output STREQUAL "")
  string(FIND "${output}" "\n" nl)
  if(nl EQUAL -1)
    set(name "${output}")
    set(output "")
  else()
    string(SUBSTRING "${output}" 0 ${nl} name)
    math(EXPR nl "${nl} + 1")
    string(SUBSTRING "${output}" ${nl} -1 output)
  endif()
  if(name STREQUAL "")
    continue()
  endif()
  math(EXPR count "${count} + 1")

  set(spec "${name}")
  foreach(char "\\" "," "[" "]")
    string(REPLACE "${char}" "\\${char}" spec "${spec}")
  endforeach()
  bracket(q_test "${TEST_PREFIX}${name}${TEST_SUFFIX}")
  bracket(q_exe "${TEST_EXECUTABLE}")
  bracket(q_spec "${spec}")
  set(command "")
  foreach(part IN LISTS TEST_EXECUTOR)
    bracket(q_part "${part}")
    string(APPEND command "${q_part} ")
  endforeach()
  string(APPEND command "${q_exe} ${q_spec}")
  foreach(arg IN LISTS TEST_EXTRA_ARGS)
    bracket(q_arg "${arg}")
    string(APPEND command " ${q_arg}")
  endforeach()
  if(reporter_arg)
    string(APPEND command " --reporter ${TEST_REPORTER}")
  endif()
  if(output_dir)
    string(REGEX REPLACE "[^A-Za-z0-9_]" "_" clean "${name}")
    bracket(q_out "${output_dir}/${TEST_OUTPUT_PREFIX}${clean}${TEST_OUTPUT_SUFFIX}")
    string(APPEND command " --out ${q_out}")
  endif()
  bracket(q_wd "${TEST_WORKING_DIR}")
  set(props "")
  foreach(prop IN LISTS TEST_PROPERTIES)
    bracket(q_prop "${prop}")
    string(APPEND props " ${q_prop}")
  endforeach()
  string(APPEND script "add_test(${q_test} ${command})\n"
                       "set_tests_properties(${q_test} PROPERTIES WORKING_DIRECTORY ${q_wd}${props})\n")
  string(APPEND test_list " ${q_test}")
endwhile()

if(count EQUAL 0)
  message(WARNING "Test executable '${TEST_EXECUTABLE}' contains no tests matching '${TEST_SPEC}'")
endif()
string(APPEND script "set(${TEST_LIST}${test_list})\n")
file(WRITE "${CTEST_FILE}" "${script}")
