# cmake -P script behind the `cmake_consumer` ctest: proves the installed package works.
#  1. cmake --install <build tree> into <work>/prefix (fresh, so stale files cannot help);
#  2. configure examples/cmake_consumer with CMAKE_PREFIX_PATH=<prefix>, build it, run it;
#  3. check that find_package(ayf) with an unknown component fails with a clear message.
# Inputs (-D): AYF_BUILD_DIR, AYF_CONSUMER_SOURCE_DIR, AYF_CONSUMER_WORK_DIR, AYF_CXX_COMPILER,
# AYF_GENERATOR, AYF_MAKE_PROGRAM, AYF_CONFIG, AYF_DEP_DIRS ("Eigen3_DIR=...|TBB_DIR=..."),
# AYF_INSTALL_CMAKEDIR (the package directory under the prefix).
# The consumer is built without sanitizers: the exported targets never carry them.
cmake_minimum_required(VERSION 3.25)

foreach(_var AYF_BUILD_DIR AYF_CONSUMER_SOURCE_DIR AYF_CONSUMER_WORK_DIR AYF_GENERATOR)
  if(NOT DEFINED ${_var} OR "${${_var}}" STREQUAL "")
    message(FATAL_ERROR "ayfRunConsumer.cmake: -D${_var}=... is required")
  endif()
endforeach()

set(_prefix "${AYF_CONSUMER_WORK_DIR}/prefix")
set(_build "${AYF_CONSUMER_WORK_DIR}/build")
set(_missing "${AYF_CONSUMER_WORK_DIR}/missing-component")
set(_config "${AYF_CONFIG}")
if(_config STREQUAL "")
  set(_config Release)
endif()

# run(<step> <command>...): execute, echo the output, stop with it on failure.
function(run step)
  execute_process(COMMAND ${ARGN} RESULT_VARIABLE _rc OUTPUT_VARIABLE _out ERROR_VARIABLE _out)
  if(NOT _rc EQUAL 0)
    list(JOIN ARGN " " _cmd)
    message(FATAL_ERROR "cmake_consumer: ${step} failed (exit ${_rc})\n  command: ${_cmd}\n${_out}")
  endif()
  message(STATUS "cmake_consumer: ${step}: ok")
  set(run_output "${_out}" PARENT_SCOPE)
endfunction()

# 1. Install.
file(REMOVE_RECURSE "${_prefix}")
run("install" "${CMAKE_COMMAND}" --install "${AYF_BUILD_DIR}" --prefix "${_prefix}" --config "${_config}")

# 2. Configure, build and run the consumer.
set(_common -G "${AYF_GENERATOR}" "-DCMAKE_PREFIX_PATH=${_prefix}"
            -DCMAKE_FIND_PACKAGE_NO_PACKAGE_REGISTRY=ON "-DCMAKE_BUILD_TYPE=${_config}")
if(AYF_MAKE_PROGRAM)
  list(APPEND _common "-DCMAKE_MAKE_PROGRAM=${AYF_MAKE_PROGRAM}")
endif()
if(AYF_CXX_COMPILER)
  list(APPEND _common "-DCMAKE_CXX_COMPILER=${AYF_CXX_COMPILER}")
endif()
# Re-find the same dependencies the library was built against.
string(REPLACE "|" ";" _deps "${AYF_DEP_DIRS}")
foreach(_dep IN LISTS _deps)
  if(_dep MATCHES "^([A-Za-z0-9_]+)=(.+)$")
    set(_name "${CMAKE_MATCH_1}")
    set(_dir "${CMAKE_MATCH_2}")
    if(NOT _dir MATCHES "NOTFOUND$")
      list(APPEND _common "-D${_name}=${_dir}")
    endif()
  endif()
endforeach()

run("configure" "${CMAKE_COMMAND}" --fresh -S "${AYF_CONSUMER_SOURCE_DIR}" -B "${_build}" ${_common})
# The package must come from the fresh prefix, not from some other installation.
file(STRINGS "${_build}/CMakeCache.txt" _ayf_dir REGEX "^ayf_DIR:")
string(REGEX REPLACE "^ayf_DIR:[A-Z]+=" "" _ayf_dir "${_ayf_dir}")
file(REAL_PATH "${_prefix}" _real_prefix)
file(REAL_PATH "${_ayf_dir}" _real_ayf_dir)
string(FIND "${_real_ayf_dir}/" "${_real_prefix}/" _pos)
if(NOT _pos EQUAL 0)
  message(FATAL_ERROR "cmake_consumer: ayf was found in '${_ayf_dir}', not under '${_prefix}'")
endif()

run("build" "${CMAKE_COMMAND}" --build "${_build}" --config "${_config}")
find_program(_exe cmake_consumer PATHS "${_build}" "${_build}/${_config}" NO_DEFAULT_PATH NO_CACHE)
if(NOT _exe)
  message(FATAL_ERROR "cmake_consumer: built, but no executable cmake_consumer in ${_build}")
endif()
run("run" "${_exe}")
message(STATUS "${run_output}")
if(NOT run_output MATCHES "cmake_consumer: ok")
  message(FATAL_ERROR "cmake_consumer: the program did not print 'cmake_consumer: ok'")
endif()

# The consumer of ayf::compiled, built when the installed package has the component.
find_program(_exe_compiled cmake_consumer_compiled PATHS "${_build}" "${_build}/${_config}" NO_DEFAULT_PATH NO_CACHE)
set(_package_dir "${AYF_INSTALL_CMAKEDIR}")
if(NOT IS_ABSOLUTE "${_package_dir}")
  set(_package_dir "${_prefix}/${_package_dir}")
endif()
if(AYF_INSTALL_CMAKEDIR AND EXISTS "${_package_dir}/ayf-compiled-targets.cmake" AND NOT _exe_compiled)
  message(FATAL_ERROR "cmake_consumer: ayf::compiled is installed, but no cmake_consumer_compiled was built in ${_build}")
endif()
if(_exe_compiled)
  run("run compiled" "${_exe_compiled}")
  if(NOT run_output MATCHES "cmake_consumer_compiled: ok")
    message(FATAL_ERROR "cmake_consumer: cmake_consumer_compiled did not print 'cmake_consumer_compiled: ok'")
  endif()
endif()

# 3. A missing component must fail at find_package with a message naming it.
file(MAKE_DIRECTORY "${_missing}")
file(WRITE "${_missing}/CMakeLists.txt"
  "cmake_minimum_required(VERSION 3.25)\n"
  "project(ayf_missing_component LANGUAGES NONE)\n"
  "find_package(ayf CONFIG REQUIRED COMPONENTS eigen no_such_component)\n")
execute_process(
  COMMAND "${CMAKE_COMMAND}" --fresh -S "${_missing}" -B "${_missing}/build" ${_common}
  RESULT_VARIABLE _rc OUTPUT_VARIABLE _out ERROR_VARIABLE _out)
if(_rc EQUAL 0 OR NOT _out MATCHES "unknown component \"no_such_component\"")
  message(FATAL_ERROR "cmake_consumer: find_package(ayf COMPONENTS no_such_component) should fail "
                      "with a clear message (exit ${_rc}):\n${_out}")
endif()
message(STATUS "cmake_consumer: missing component is rejected: ok")
