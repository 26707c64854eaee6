# cmake -P script behind the ctest `compiled_instantiations` (tests/compiled/CMakeLists.txt).
#  1. The object of ayf_compiled_check (main.cpp with compiled.hpp) defines none of the declared
#     instantiations and references the entry points it calls, so the program runs the library's copies.
#  2. ayf_compiled_check and ayf_compiled_check_header_only print identical results.
# Inputs (-D): HEADER_ONLY, COMPILED (programs), OBJECTS (object files), NM, WORK_DIR.
cmake_minimum_required(VERSION 3.25)
foreach(_var HEADER_ONLY COMPILED OBJECTS NM WORK_DIR)
  if(NOT DEFINED ${_var} OR "${${_var}}" STREQUAL "")
    message(FATAL_ERROR "check.cmake: -D${_var}=... is required")
  endif()
endforeach()

# Demangled names (regular expressions) of what compiled.hpp declares: the entry points main.cpp
# calls, and what only the library's code calls (the flow map, the steps on a batch, the passes).
set(_called
  "ayf::flow_matching<.*>::step\\("
  "ayf::ayf_emd<.*>::step<"
  "ayf::ayf_lmd<.*>::step<"
  "void ayf::flow_map_sample<"
  "void ayf::gamma_sample<"
  "void ayf::euler_sample<"
  "void ayf::heun_sample<")
set(_declared ${_called}
  "ayf::ayf_emd<.*>::step_on_batch<"
  "ayf::ayf_lmd<.*>::step_on_batch<"
  "ayf::skip_out_flow_map<.*>::map\\("
  "ayf::nn::flow_model<.*>::forward_jvp\\("
  "ayf::nn::mlp_flow_model<.*>::backward\\("
  "ayf::nn::unet_flow_model<.*>::backward\\(")

foreach(_mode defined undefined)
  execute_process(COMMAND "${NM}" -C --${_mode}-only ${OBJECTS}
                  RESULT_VARIABLE _rc OUTPUT_VARIABLE _symbols_${_mode} ERROR_VARIABLE _err)
  if(NOT _rc EQUAL 0)
    message(FATAL_ERROR "check.cmake: ${NM} --${_mode}-only failed (exit ${_rc}): ${_err}")
  endif()
  string(REPLACE "\n" ";" _symbols_${_mode} "${_symbols_${_mode}}")
endforeach()
foreach(_pattern IN LISTS _declared)
  set(_defined "")
  foreach(_line IN LISTS _symbols_defined)
    if(_line MATCHES "${_pattern}")
      string(APPEND _defined "\n  ${_line}")
    endif()
  endforeach()
  if(_defined)
    message(FATAL_ERROR "compiled: the translation unit that includes compiled.hpp instantiates '${_pattern}':${_defined}")
  endif()
endforeach()
foreach(_pattern IN LISTS _called)
  set(_referenced FALSE)
  foreach(_line IN LISTS _symbols_undefined)
    if(_line MATCHES "${_pattern}")
      set(_referenced TRUE)
    endif()
  endforeach()
  if(NOT _referenced)
    message(FATAL_ERROR "compiled: the translation unit that includes compiled.hpp does not call '${_pattern}'")
  endif()
endforeach()
message(STATUS "compiled: ${OBJECTS} calls every checked entry point and defines none")

foreach(_program HEADER_ONLY COMPILED)
  execute_process(COMMAND "${${_program}}" RESULT_VARIABLE _rc OUTPUT_VARIABLE _out_${_program} ERROR_VARIABLE _err)
  if(NOT _rc EQUAL 0)
    message(FATAL_ERROR "compiled: ${${_program}} failed (exit ${_rc}):\n${_err}")
  endif()
  file(WRITE "${WORK_DIR}/${_program}.txt" "${_out_${_program}}")
endforeach()
string(LENGTH "${_out_COMPILED}" _length)
if(_length LESS 1000)
  message(FATAL_ERROR "compiled: ${COMPILED} printed too little (${_length} characters)")
endif()
if(NOT _out_HEADER_ONLY STREQUAL _out_COMPILED)
  message(FATAL_ERROR "compiled: the library's instantiations and the header-only ones differ: compare "
                      "${WORK_DIR}/HEADER_ONLY.txt and ${WORK_DIR}/COMPILED.txt")
endif()
message(STATUS "compiled: identical results (${_length} characters) from both programs")
