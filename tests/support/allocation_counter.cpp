// tests/support/allocation_counter.cpp: the global operator new / delete of ayf_tests, replaced to count
// allocations per thread, and the linker-wrapped malloc family (AYF_TEST_WRAPS_MALLOC: tests/CMakeLists.txt
// links with --wrap=malloc,...), so that tensors whose storage comes from malloc (Eigen's aligned
// allocations) are counted too. A translation unit of its own: where GCC can inline these operators into
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
// threads (oneTBB workers) never show up in a measurement on this thread. With the malloc family
// wrapped, operator new takes its memory from the unwrapped malloc, so that each allocation counts once.
namespace ayf_test_alloc {
thread_local std::size_t calls = 0;
}  // namespace ayf_test_alloc

#if AYF_TEST_WRAPS_MALLOC
extern "C" {
void* __real_malloc(std::size_t size);
void* __real_calloc(std::size_t count, std::size_t size);
void* __real_realloc(void* p, std::size_t size);
int __real_posix_memalign(void** p, std::size_t alignment, std::size_t size);
void* __real_aligned_alloc(std::size_t alignment, std::size_t size);

void* __wrap_malloc(std::size_t size) {
  ++ayf_test_alloc::calls;
  return __real_malloc(size);
}
void* __wrap_calloc(std::size_t count, std::size_t size) {
  ++ayf_test_alloc::calls;
  return __real_calloc(count, size);
}
void* __wrap_realloc(void* p, std::size_t size) {
  ++ayf_test_alloc::calls;
  return __real_realloc(p, size);
}
int __wrap_posix_memalign(void** p, std::size_t alignment, std::size_t size) {
  ++ayf_test_alloc::calls;
  return __real_posix_memalign(p, alignment, size);
}
void* __wrap_aligned_alloc(std::size_t alignment, std::size_t size) {
  ++ayf_test_alloc::calls;
  return __real_aligned_alloc(alignment, size);
}
}  // extern "C"

namespace {
void* raw_malloc(std::size_t size) { return __real_malloc(size); }
}  // namespace
bool ayf_test_alloc::counts_malloc() { return true; }
#else
namespace {
void* raw_malloc(std::size_t size) { return std::malloc(size); }
}  // namespace
bool ayf_test_alloc::counts_malloc() { return false; }
#endif

void* operator new(std::size_t size) {
  ++ayf_test_alloc::calls;
  if (void* p = raw_malloc(size == 0 ? 1 : size)) return p;
  throw std::bad_alloc();
}
void* operator new[](std::size_t size) {
  ++ayf_test_alloc::calls;
  if (void* p = raw_malloc(size == 0 ? 1 : size)) return p;
  throw std::bad_alloc();
}
void* operator new(std::size_t size, const std::nothrow_t& /*tag*/) noexcept {
  ++ayf_test_alloc::calls;
  return raw_malloc(size == 0 ? 1 : size);
}
void* operator new[](std::size_t size, const std::nothrow_t& /*tag*/) noexcept {
  ++ayf_test_alloc::calls;
  return raw_malloc(size == 0 ? 1 : size);
}
void operator delete(void* p) noexcept { std::free(p); }
void operator delete[](void* p) noexcept { std::free(p); }
void operator delete(void* p, std::size_t /*size*/) noexcept { std::free(p); }
void operator delete[](void* p, std::size_t /*size*/) noexcept { std::free(p); }
void operator delete(void* p, const std::nothrow_t& /*tag*/) noexcept { std::free(p); }
void operator delete[](void* p, const std::nothrow_t& /*tag*/) noexcept { std::free(p); }
