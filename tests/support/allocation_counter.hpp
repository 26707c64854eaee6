// tests/support/allocation_counter.hpp: the per-thread count of global operator new calls, kept by the
// replaced operators in allocation_counter.cpp (linked into ayf_tests).
#pragma once

#include <cstddef>

namespace ayf_test_alloc {
/// Calls of any non-aligned global operator new on this thread since it started.
extern thread_local std::size_t new_calls;
}  // namespace ayf_test_alloc
