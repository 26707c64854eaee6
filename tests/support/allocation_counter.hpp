// tests/support/allocation_counter.hpp: the per-thread count of heap allocations made by ayf_tests' own
// code, kept by allocation_counter.cpp: every global operator new, and (where the linker wraps them,
// AYF_TEST_WRAPS_MALLOC) every malloc, calloc, realloc, posix_memalign and aligned_alloc called from the
// test executable, e.g. Eigen's and xsimd's aligned tensor storage. Calls made inside shared libraries
// (oneDNN's or OpenBLAS's own buffers) are not seen.
#pragma once

#include <cstddef>

namespace ayf_test_alloc {
/// Heap allocations on this thread since it started (operator new, and the malloc family where wrapped).
extern thread_local std::size_t calls;
/// Whether the malloc family is counted (linked with --wrap); operator new always is.
bool counts_malloc();
}  // namespace ayf_test_alloc
