// ayf/core/hash.hpp: 64-bit FNV-1a (Fowler-Noll-Vo): h <- (h xor byte) * (2^40 + 0x1b3) from the offset
// basis 0xcbf29ce484222325. Checkpoint checksums, cross-rank configuration agreement, stage seeds.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string_view>

namespace ayf {

/// 64-bit FNV-1a over `size` bytes, continuing from `hash`. Every change confined to one byte changes the
/// result (each step is a bijection of the state).
inline std::uint64_t fnv1a64(const void* data, std::size_t size, std::uint64_t hash = 0xcbf29ce484222325ULL) {
  const auto* p = static_cast<const unsigned char*>(data);
  for (std::size_t k = 0; k < size; ++k) hash = (hash ^ p[k]) * 0x100000001b3ULL;
  return hash;
}

/// 64-bit FNV-1a of `text`'s characters.
inline std::uint64_t fnv1a64(std::string_view text) { return fnv1a64(text.data(), text.size()); }

}  // namespace ayf
