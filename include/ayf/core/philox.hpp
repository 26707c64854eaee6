// ayf/core/philox.hpp: the counter-based Philox4x32-10 generator (Salmon et al., SC'11) and the
// normal / uniform draws every backend uses, so a (seed, offset) pair gives the same numbers everywhere.
#pragma once

#include <array>
#include <cmath>
#include <cstdint>

#include "ayf/config.hpp"

namespace ayf {

/// Philox4x32 with 10 rounds: a bijection of a 128-bit counter keyed by 64 bits.
struct philox4x32 {
  using counter = std::array<std::uint32_t, 4>;
  using key = std::array<std::uint32_t, 2>;

  AYF_HOST_DEVICE static counter generate(counter c, key k) {
    for (int round = 0; round < 10; ++round) {
      if (round > 0) {
        k[0] += 0x9E3779B9u;
        k[1] += 0xBB67AE85u;
      }
      const std::uint64_t p0 = std::uint64_t{0xD2511F53u} * c[0];
      const std::uint64_t p1 = std::uint64_t{0xCD9E8D57u} * c[2];
      const auto hi0 = static_cast<std::uint32_t>(p0 >> 32), lo0 = static_cast<std::uint32_t>(p0);
      const auto hi1 = static_cast<std::uint32_t>(p1 >> 32), lo1 = static_cast<std::uint32_t>(p1);
      c = counter{hi1 ^ c[1] ^ k[0], lo1, hi0 ^ c[3] ^ k[1], lo0};
    }
    return c;
  }
};

/// What a draw produces; part of the counter, so normal and uniform draws never share bits.
enum class draw_kind : std::uint32_t { normal = 0, uniform = 1 };

namespace detail {

AYF_HOST_DEVICE inline philox4x32::counter philox_block(std::uint64_t seed, std::uint64_t index,
                                                         draw_kind kind) {
  const philox4x32::counter c{static_cast<std::uint32_t>(index),
                              static_cast<std::uint32_t>(index >> 32),
                              static_cast<std::uint32_t>(kind), 0u};
  const philox4x32::key k{static_cast<std::uint32_t>(seed), static_cast<std::uint32_t>(seed >> 32)};
  return philox4x32::generate(c, k);
}

AYF_HOST_DEVICE inline std::uint64_t join(std::uint32_t hi, std::uint32_t lo) {
  return (std::uint64_t{hi} << 32) | lo;
}

}  // namespace detail

/// Two standard normal draws from Philox block `block` of stream `seed`: Box-Muller (cos, sin) on
/// two 53-bit uniforms, evaluated in double on every backend.
AYF_HOST_DEVICE inline void philox_normal_pair(std::uint64_t seed, std::uint64_t block, double& first,
                                               double& second) {
  const auto x = detail::philox_block(seed, block, draw_kind::normal);
  constexpr double two_to_minus_53 = 1.0 / 9007199254740992.0;
  const double u1 = static_cast<double>((detail::join(x[0], x[1]) >> 11) + 1) * two_to_minus_53;
  const double u2 = static_cast<double>(detail::join(x[2], x[3]) >> 11) * two_to_minus_53;
  constexpr double two_pi = 6.283185307179586476925286766559;
  const double radius = std::sqrt(-2.0 * std::log(u1));
  first = radius * std::cos(two_pi * u2);
  second = radius * std::sin(two_pi * u2);
}

/// The `index`-th standard normal draw of stream `seed`: element `index % 2` of block `index / 2`.
AYF_HOST_DEVICE inline double philox_normal(std::uint64_t seed, std::uint64_t index) {
  double first = 0, second = 0;
  philox_normal_pair(seed, index >> 1, first, second);
  return (index & 1) ? second : first;
}

/// The `index`-th uniform draw on [0, 1) of stream `seed` (53 random bits): each Philox block
/// gives two, from words (0, 1) and (2, 3).
AYF_HOST_DEVICE inline double philox_uniform(std::uint64_t seed, std::uint64_t index) {
  const auto x = detail::philox_block(seed, index >> 1, draw_kind::uniform);
  constexpr double two_to_minus_53 = 1.0 / 9007199254740992.0;
  const std::uint64_t bits = (index & 1) ? detail::join(x[2], x[3]) : detail::join(x[0], x[1]);
  return static_cast<double>(bits >> 11) * two_to_minus_53;
}

/// A uniform [0, 1) draw in precision S: the double draw rounded to S, kept below 1 (a double
/// within 2^-25 of 1 would round to 1.0f).
template <class S>
AYF_HOST_DEVICE S uniform_as(double u) {
  const S v = static_cast<S>(u);
  return v < S(1) ? v : S(1) - S(1) / S(1 << 24);
}

/// A position in a Philox stream. Each draw of n numbers takes the next n indices, so the same
/// sequence of draws gives the same numbers on every backend.
struct philox_stream {
  std::uint64_t seed = 0;
  std::uint64_t offset = 0;

  /// Reserves `count` indices and returns the first.
  std::uint64_t take(std::uint64_t count) {
    const std::uint64_t first = offset;
    offset += count;
    return first;
  }
};

}  // namespace ayf
