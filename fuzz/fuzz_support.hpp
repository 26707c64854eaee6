// fuzz/fuzz_support.hpp: shared pieces of the libFuzzer harnesses. A harness reports a finding by
// crashing: an escaped exception other than ayf::error (std::terminate), a sanitizer report, or
// ayf_fuzz_check failing on a property a successful parse must have (abort with the reason).
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string_view>

namespace ayf_fuzz {

/// The fuzz input as characters.
inline std::string_view bytes(const std::uint8_t* data, std::size_t size) {
  return {reinterpret_cast<const char*>(data), size};
}

/// Aborts with `what` unless `condition` holds (a finding, not an input error).
inline void check(bool condition, const char* what) {
  if (!condition) {
    std::fprintf(stderr, "ayf fuzz: property violated: %s\n", what);
    std::abort();
  }
}

}  // namespace ayf_fuzz
