// ayf/core/shape.hpp: batch-major tensor shapes [B, D] with an optional image layout [C, H, W] per row.
// Per-sample time vectors t, s, lambda are shapes [B, 1].
#pragma once

#include <cstddef>
#include <ostream>
#include <sstream>
#include <string>

#include "ayf/core/error.hpp"

namespace ayf {

/// Row `i` is sample `i`; `cols` features per sample. `channels/height/width` record an image
/// layout (row-major C, H, W) when `channels * height * width == cols`; all three are 0 otherwise.
struct shape {
  std::size_t rows = 0;
  std::size_t cols = 0;
  std::size_t channels = 0;
  std::size_t height = 0;
  std::size_t width = 0;

  constexpr shape() = default;
  constexpr shape(std::size_t r, std::size_t c) : rows(r), cols(c) {}

  [[nodiscard]] constexpr std::size_t size() const { return rows * cols; }
  [[nodiscard]] constexpr bool is_image() const { return channels != 0; }

  /// A batch of `batch` images with `c` channels of `h x w` pixels.
  [[nodiscard]] static constexpr shape image(std::size_t batch, std::size_t c, std::size_t h,
                                             std::size_t w) {
    shape out(batch, c * h * w);
    out.channels = c;
    out.height = h;
    out.width = w;
    return out;
  }
  /// A per-sample vector (t, s, lambda, labels): [batch, 1].
  [[nodiscard]] static constexpr shape vector(std::size_t batch) { return shape(batch, 1); }

  friend constexpr bool operator==(const shape& a, const shape& b) {
    return a.rows == b.rows && a.cols == b.cols && a.channels == b.channels &&
           a.height == b.height && a.width == b.width;
  }
  friend std::ostream& operator<<(std::ostream& os, const shape& s) {
    os << '[' << s.rows << ", " << s.cols << ']';
    if (s.is_image()) os << " (C=" << s.channels << ", H=" << s.height << ", W=" << s.width << ')';
    return os;
  }
};

/// Raises an `ayf::error` unless `received` has `expected` rows and columns.
inline void require_shape(std::string_view where, std::string_view argument, const shape& expected,
                          const shape& received) {
  if (expected.rows != received.rows || expected.cols != received.cols) {
    std::ostringstream e, r;
    e << "shape " << expected;
    r << received;
    throw_argument_error(where, argument, e.str(), r.str());
  }
}

/// Raises unless `received` is a per-sample vector of `batch` entries.
inline void require_vector(std::string_view where, std::string_view argument, std::size_t batch,
                           const shape& received) {
  require_shape(where, argument, shape::vector(batch), received);
}

}  // namespace ayf
