# ayf_project_target(<target>): settings for targets this project builds (tests, examples,
# benchmarks, header checks) -- never for the exported INTERFACE targets, whose users pick
# their own warnings. Adds -Wall -Wextra (and nvcc's host-compiler equivalents for CUDA sources), as
# errors with AYF_WERROR (the project's CI and development scripts; a user's build of any type only
# warns), and with AYF_SANITIZE, ASan + UBSan on compile and link. Dependencies' headers come in as
# SYSTEM includes, so only ayf code warns.
include_guard(GLOBAL)

set(AYF_SANITIZE_FLAGS -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=all)

function(ayf_project_target target)
  get_target_property(_type ${target} TYPE)
  if(_type STREQUAL "INTERFACE_LIBRARY")
    message(FATAL_ERROR "ayf_project_target(${target}): only for targets built here, not INTERFACE libraries")
  endif()
  if(MSVC)
    target_compile_options(${target} PRIVATE /W4 /permissive- $<$<BOOL:${AYF_WERROR}>:/WX>)
  else()
    target_compile_options(${target} PRIVATE
      "$<$<COMPILE_LANGUAGE:CXX>:-Wall;-Wextra;$<$<BOOL:${AYF_WERROR}>:-Werror>>"
      "$<$<COMPILE_LANGUAGE:CUDA>:-Xcompiler=-Wall,-Wextra;$<$<BOOL:${AYF_WERROR}>:-Werror=all-warnings;-Xcompiler=-Werror>>")
  endif()
  if(AYF_SANITIZE)
    target_compile_options(${target} PRIVATE ${AYF_SANITIZE_FLAGS})
    # GCC documents that sanitizer instrumentation makes -Wmaybe-uninitialized report false
    # positives (GCC 12 flags std::regex inside Catch2); the sanitizers check this at run time.
    if(CMAKE_CXX_COMPILER_ID STREQUAL "GNU")
      target_compile_options(${target} PRIVATE -Wno-maybe-uninitialized)
    endif()
    # OBJECT libraries are not linked themselves; whoever links their objects adds the flags.
    if(NOT _type STREQUAL "OBJECT_LIBRARY")
      target_link_options(${target} PRIVATE ${AYF_SANITIZE_FLAGS})
    endif()
  endif()
endfunction()

# ayf_native_program(<target>): with AYF_NATIVE, compiles an example program for this machine's CPU
# (-march=native; the GEMM providers dispatch at run time either way). Only whole programs: a library
# or test built with other vector extensions than the code it links would break Eigen's ABI (its
# alignment), and the tests' exact comparisons assume one rounding (no FMA contraction).
function(ayf_native_program target)
  if(AYF_NATIVE AND NOT MSVC)
    target_compile_options(${target} PRIVATE "$<$<COMPILE_LANGUAGE:CXX>:-march=native>")
    # GCC 12 reports a false -Wmaybe-uninitialized inside avx512fintrin.h when Eigen's kernels are
    # inlined for AVX-512; the warning is in the compiler's own header.
    if(CMAKE_CXX_COMPILER_ID STREQUAL "GNU")
      target_compile_options(${target} PRIVATE "$<$<COMPILE_LANGUAGE:CXX>:-Wno-maybe-uninitialized>")
    endif()
  endif()
endfunction()
