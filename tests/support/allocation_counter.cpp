// tests/support/allocation_counter.cpp: the global operator new / delete of ayf_tests, replaced to count
// allocations per thread. A translation unit of its own: where GCC can inline these operators into
// a caller it reports malloc/free against new/delete as mismatched (-Wmismatched-new-delete at -O3).
#include <cstddef>
#include <cstdlib>
#include <new>

#include "support/allocation_counter.hpp"

// ---- allocation counting ----
// Every non-aligned form of the global operator new / delete, replaced program-wide (the standard
// allows one replacement per program) by malloc / free plus a per-thread call counter. Replacing
// all of them keeps new/delete pairs matched under AddressSanitizer; the aligned forms keep their
// default (matched) implementations. The counter is thread_local so that allocations of other
// threads (oneTBB workers) never show up in a measurement on this thread.
namespace ayf_test_alloc {
thread_local std::size_t new_calls = 0;
}  // namespace ayf_test_alloc

void* operator new(std::size_t size) {
  ++ayf_test_alloc::new_calls;
  if (void* p = std::malloc(size == 0 ? 1 : size)) return p;
  throw std::bad_alloc();
}
void* operator new[](std::size_t size) {
  ++ayf_test_alloc::new_calls;
  if (void* p = std::malloc(size == 0 ? 1 : size)) return p;
  throw std::bad_alloc();
}
void* operator new(std::size_t size, const std::nothrow_t& /*tag*/) noexcept {
  ++ayf_test_alloc::new_calls;
  return std::malloc(size == 0 ? 1 : size);
}
void* operator new[](std::size_t size, const std::nothrow_t& /*tag*/) noexcept {
  ++ayf_test_alloc::new_calls;
  return std::malloc(size == 0 ? 1 : size);
}
void operator delete(void* p) noexcept { std::free(p); }
void operator delete[](void* p) noexcept { std::free(p); }
void operator delete(void* p, std::size_t /*size*/) noexcept { std::free(p); }
void operator delete[](void* p, std::size_t /*size*/) noexcept { std::free(p); }
void operator delete(void* p, const std::nothrow_t& /*tag*/) noexcept { std::free(p); }
void operator delete[](void* p, const std::nothrow_t& /*tag*/) noexcept { std::free(p); }
