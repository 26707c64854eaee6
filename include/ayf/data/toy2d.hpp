// ayf/data/toy2d.hpp: host point sets (`points`: [n, d] row-major values, optional labels) and the
// 2-D toy distributions of the experiments (checkerboard, eight Gaussians, two moons, a two-class
// mixture), drawn from counter-based Philox so a (seed, offset) pair gives the same points everywhere.
#pragma once

#include <array>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "ayf/core/error.hpp"
#include "ayf/core/philox.hpp"

namespace ayf::data {

/// A host point set: `values` is [rows, cols] row-major; `labels` is empty or [rows] class labels.
struct points {
  std::vector<double> values;
  std::vector<int> labels;
  std::size_t rows = 0;
  std::size_t cols = 0;

  [[nodiscard]] bool has_labels() const { return !labels.empty(); }
  [[nodiscard]] double at(std::size_t row, std::size_t col) const { return values[row * cols + col]; }

  /// Raises ayf::error (prefixed by `where`) unless values.size() == rows * cols and labels is
  /// empty or has `rows` entries.
  void check(std::string_view where) const {
    require(values.size() == rows * cols, where, "points.values",
            ayf::detail::message("rows * cols = ", rows, " * ", cols, " = ", rows * cols, " values"), values.size());
    require(labels.empty() || labels.size() == rows, where, "points.labels",
            ayf::detail::message("0 or rows = ", rows, " labels"), labels.size());
  }
};

namespace detail {

/// Every toy point draws at most `draws_per_point` uniforms and as many normals: point k of a
/// stream (k = offset + i for the i-th row of a call) uses uniform and normal indices
/// draws_per_point * k + j, j < draws_per_point, so generating in pieces gives the same points.
inline constexpr std::uint64_t draws_per_point = 4;

struct point_draws {
  std::uint64_t seed;
  std::uint64_t base;
  [[nodiscard]] double uniform(std::uint64_t j) const { return philox_uniform(seed, base + j); }
  [[nodiscard]] double normal(std::uint64_t j) const { return philox_normal(seed, base + j); }
};

inline point_draws draws_for(std::uint64_t seed, std::uint64_t point) {
  return {seed, draws_per_point * point};
}

/// floor(u * count) for u in [0, 1), kept below count.
inline std::size_t pick(double u, std::size_t count) {
  const auto k = static_cast<std::size_t>(u * static_cast<double>(count));
  return k < count ? k : count - 1;
}

inline points make_2d(std::size_t n, bool labelled) {
  points p;
  p.rows = n;
  p.cols = 2;
  p.values.resize(2 * n);
  if (labelled) p.labels.resize(n);
  return p;
}

inline constexpr double pi = 3.14159265358979323846;

}  // namespace detail

/// Checkerboard on [-2, 2]^2 split into 4 x 4 unit squares: uniform on the 8 "black" squares,
/// those whose lower-left corner (i, j) = (floor(x), floor(y)) has i + j even (so [0,1]^2 and
/// [-1,0]^2 are black). Each point picks a black square with probability 1/8, then a uniform
/// position in it. Mean 0, per-coordinate std 4 / sqrt(12) ~ 1.155. No labels. Returns [n, 2].
inline points checkerboard(std::size_t n, std::uint64_t seed, std::uint64_t offset = 0) {
  points p = detail::make_2d(n, false);
  for (std::size_t i = 0; i < n; ++i) {
    const auto d = detail::draws_for(seed, offset + i);
    const std::size_t square = detail::pick(d.uniform(0), 8);
    const std::size_t row = square / 2;                      // j + 2, 0..3
    const std::size_t column = 2 * (square % 2) + row % 2;   // i + 2, 0..3, with i + j even
    p.values[2 * i] = static_cast<double>(column) - 2.0 + d.uniform(1);
    p.values[2 * i + 1] = static_cast<double>(row) - 2.0 + d.uniform(2);
  }
  return p;
}

/// Eight Gaussians: an equal-weight mixture of N(mu_k, 0.1^2 I), mu_k = 2 (cos(k pi / 4), sin(k pi / 4)),
/// k = 0..7. Mean 0, per-coordinate std sqrt(2 + 0.01) ~ 1.418. No labels. Returns [n, 2].
inline points eight_gaussians(std::size_t n, std::uint64_t seed, std::uint64_t offset = 0) {
  constexpr double radius = 2.0, std_dev = 0.1;
  points p = detail::make_2d(n, false);
  for (std::size_t i = 0; i < n; ++i) {
    const auto d = detail::draws_for(seed, offset + i);
    const double angle = static_cast<double>(detail::pick(d.uniform(0), 8)) * detail::pi / 4;
    p.values[2 * i] = radius * std::cos(angle) + std_dev * d.normal(0);
    p.values[2 * i + 1] = radius * std::sin(angle) + std_dev * d.normal(1);
  }
  return p;
}

/// Two interleaved moons (scikit-learn's make_moons, centred and scaled by 2): with theta ~ U[0, pi),
/// the upper moon (label 0) is 2 (cos theta - 1/2, sin theta - 1/4) and the lower moon (label 1)
/// 2 (1/2 - cos theta, 1/4 - sin theta), each with probability 1/2, plus N(0, 0.1^2 I) noise.
/// Mean 0; std ~ (1.73, 0.99). Labels: which moon. Returns [n, 2].
inline points two_moons(std::size_t n, std::uint64_t seed, std::uint64_t offset = 0) {
  constexpr double noise = 0.1;
  points p = detail::make_2d(n, true);
  for (std::size_t i = 0; i < n; ++i) {
    const auto d = detail::draws_for(seed, offset + i);
    const int moon = d.uniform(0) < 0.5 ? 0 : 1;
    const double theta = detail::pi * d.uniform(1);
    const double sign = moon == 0 ? 1.0 : -1.0;
    p.values[2 * i] = 2 * sign * (std::cos(theta) - 0.5) + noise * d.normal(0);
    p.values[2 * i + 1] = 2 * sign * (std::sin(theta) - 0.25) + noise * d.normal(1);
    p.labels[i] = moon;
  }
  return p;
}

/// A class-conditional mixture, each class with probability 1/2:
///   label 0, "ring": radius 1.5 + 0.1 z, angle ~ U[0, 2 pi), z ~ N(0, 1);
///   label 1, "four blobs": N(mu, 0.15^2 I) with mu uniform on {(+-0.75, +-0.75)}, inside the ring.
/// Returns [n, 2] with labels [n].
inline points two_class_mixture(std::size_t n, std::uint64_t seed, std::uint64_t offset = 0) {
  constexpr double ring_radius = 1.5, ring_width = 0.1, blob_offset = 0.75, blob_std = 0.15;
  points p = detail::make_2d(n, true);
  for (std::size_t i = 0; i < n; ++i) {
    const auto d = detail::draws_for(seed, offset + i);
    const int label = d.uniform(0) < 0.5 ? 0 : 1;
    if (label == 0) {
      const double angle = 2 * detail::pi * d.uniform(1);
      const double r = ring_radius + ring_width * d.normal(0);
      p.values[2 * i] = r * std::cos(angle);
      p.values[2 * i + 1] = r * std::sin(angle);
    } else {
      const std::size_t blob = detail::pick(d.uniform(1), 4);
      p.values[2 * i] = (blob % 2 ? blob_offset : -blob_offset) + blob_std * d.normal(0);
      p.values[2 * i + 1] = (blob / 2 ? blob_offset : -blob_offset) + blob_std * d.normal(1);
    }
    p.labels[i] = label;
  }
  return p;
}

/// The names make_toy2d accepts.
inline constexpr std::array<std::string_view, 4> toy2d_names{"checkerboard", "eight_gaussians", "two_moons",
                                                              "two_class_mixture"};

/// The toy distribution called `name` (one of toy2d_names): [n, 2], labels as documented above.
inline points make_toy2d(std::string_view name, std::size_t n, std::uint64_t seed, std::uint64_t offset = 0) {
  if (name == "checkerboard") return checkerboard(n, seed, offset);
  if (name == "eight_gaussians") return eight_gaussians(n, seed, offset);
  if (name == "two_moons") return two_moons(n, seed, offset);
  if (name == "two_class_mixture") return two_class_mixture(n, seed, offset);
  std::string valid;
  for (const auto candidate : toy2d_names) valid += (valid.empty() ? "" : ", ") + std::string(candidate);
  throw_argument_error("make_toy2d", "name", "one of " + valid, ayf::detail::concat("'", name, "'"));
}

}  // namespace ayf::data
