// ayf/analysis/metrics.hpp: sample-based distances between two point sets on the host (design.md §2,
// analysis): the sliced 2-Wasserstein distance over Philox-drawn directions and the unbiased MMD^2
// with a sum of Gaussian RBF kernels. Samples are [rows, cols] row-major doubles.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <concepts>
#include <cstdint>
#include <string_view>
#include <vector>

#include "ayf/core/error.hpp"
#include "ayf/core/philox.hpp"

namespace ayf {

/// A read-only view of host samples: `data` is [rows, cols] row-major.
struct host_samples {
  const double* data = nullptr;
  std::size_t rows = 0;
  std::size_t cols = 0;

  host_samples(const double* values, std::size_t row_count, std::size_t col_count)
      : data(values), rows(row_count), cols(col_count) {}
  /// values: [values.size() / cols, cols]; values.size() must be a multiple of cols.
  host_samples(const std::vector<double>& values, std::size_t col_count)
      : data(values.data()), rows(col_count ? values.size() / col_count : 0), cols(col_count) {
    require(col_count > 0 && values.size() % col_count == 0, "host_samples", "values.size()",
            detail::message("a multiple of cols = ", col_count), values.size());
  }
  /// Any point set with `values` ([rows, cols] doubles), `rows` and `cols` (e.g. ayf::data::points).
  template <class PointSet>
    requires requires(const PointSet& p) {
      { p.values.data() } -> std::convertible_to<const double*>;
      p.rows;
      p.cols;
    }
  host_samples(const PointSet& p) : host_samples(p.values.data(), p.rows, p.cols) {  // NOLINT: implicit on purpose
    require(p.values.size() == p.rows * p.cols, "host_samples", "values.size()",
            detail::message("rows * cols = ", p.rows * p.cols), p.values.size());
  }

  [[nodiscard]] const double* row(std::size_t i) const { return data + i * cols; }
};

namespace metrics_detail {

/// Raises ayf::error("<where>: argument '<name>' expected finite samples, received <v> at row i, column j").
inline void require_finite(std::string_view where, std::string_view name, const host_samples& s) {
  for (std::size_t k = 0; k < s.rows * s.cols; ++k) {
    if (!std::isfinite(s.data[k])) {
      throw_argument_error(where, name, "finite samples",
                           detail::concat(s.data[k], " at row ", k / s.cols, ", column ", k % s.cols));
    }
  }
}

inline void check_pair(std::string_view where, const host_samples& a, const host_samples& b,
                       std::size_t min_rows) {
  require(a.cols > 0, where, "a.cols", "at least 1 column", a.cols);
  require(a.rows >= min_rows, where, "a.rows", detail::message("at least ", min_rows, " samples"), a.rows);
  require(b.rows >= min_rows, where, "b.rows", detail::message("at least ", min_rows, " samples"), b.rows);
  require(b.cols == a.cols, where, "b.cols", detail::message("a.cols = ", a.cols), b.cols);
  require(a.data != nullptr && b.data != nullptr, where, "data", "non-null sample pointers", "null");
  require_finite(where, "a", a);
  require_finite(where, "b", b);
}

/// Raises "<where>: overflow: <what> is <value> ..." unless `value` is finite.
inline void require_finite_result(std::string_view where, std::string_view what, double value) {
  if (!std::isfinite(value)) {
    throw error(detail::concat(where, ": overflow: ", what, " is ", value, " (the samples are too large)"));
  }
}

}  // namespace metrics_detail

namespace metrics_detail {

/// sorted_w2_squared in long double, without argument checks (x, y non-empty).
inline long double sorted_w2_squared_unchecked(const std::vector<double>& x, const std::vector<double>& y) {
  const std::uint64_t n = x.size(), m = y.size();
  // Positions along (0, 1] in units of 1 / (n m): sample i of x ends at (i + 1) m, sample j of y at (j + 1) n.
  std::uint64_t i = 0, j = 0, position = 0;
  long double sum = 0;
  while (i < n && j < m) {
    const std::uint64_t end_x = (i + 1) * m, end_y = (j + 1) * n;
    const std::uint64_t end = std::min(end_x, end_y);
    const long double diff = static_cast<long double>(x[i]) - y[j];
    sum += static_cast<long double>(end - position) * diff * diff;
    position = end;
    if (end_x == end) ++i;
    if (end_y == end) ++j;
  }
  return sum / (static_cast<long double>(n) * static_cast<long double>(m));
}

}  // namespace metrics_detail

/// W2^2 between the empirical distributions (uniform weights) of two SORTED 1-D samples,
/// x: [n], y: [m]: the integral over u in (0, 1) of (Fx^{-1}(u) - Fy^{-1}(u))^2 with the step
/// quantile functions Fx^{-1}(u) = x_(ceil(n u)). Exact (breakpoints compared in integers); for
/// n = m it is (1/n) sum_i (x_(i) - y_(i))^2. Raises ayf::error when a value or the result is not finite.
inline double sorted_w2_squared(const std::vector<double>& x, const std::vector<double>& y) {
  constexpr std::string_view where = "sorted_w2_squared";
  require(!x.empty() && !y.empty(), where, "samples", "two non-empty samples",
          detail::message(x.size(), " and ", y.size(), " values"));
  metrics_detail::require_finite(where, "x", {x.data(), x.size(), 1});
  metrics_detail::require_finite(where, "y", {y.data(), y.size(), 1});
  const auto result = static_cast<double>(metrics_detail::sorted_w2_squared_unchecked(x, y));
  metrics_detail::require_finite_result(where, "W2^2", result);
  return result;
}

/// The sliced 2-Wasserstein distance
///   SW2(a, b) = sqrt( (1/P) sum_{k<P} W2^2( <a, theta_k>, <b, theta_k> ) ),
/// a: [n, d], b: [m, d] (n != m allowed), over P = `projections` unit directions
/// theta_k = g_k / |g_k|, g_k[j] = philox_normal(seed, k d + j) (e_0 if g_k = 0), where W2^2 of the two projected
/// 1-D samples is exact (sorted_w2_squared). For N(0, I) against N(mu, I) in d dimensions the
/// population value is |mu| / sqrt(d), since E[(theta . mu)^2] = |mu|^2 / d over the sphere.
/// Raises ayf::error("sliced_w2: ...") when a sample is not finite or a projection or the result overflows.
inline double sliced_w2(const host_samples& a, const host_samples& b, std::size_t projections = 256,
                        std::uint64_t seed = 0) {
  constexpr std::string_view where = "sliced_w2";
  metrics_detail::check_pair(where, a, b, 1);
  require(projections > 0, where, "projections", "at least 1", projections);
  const std::size_t d = a.cols;
  std::vector<double> theta(d), pa(a.rows), pb(b.rows);
  long double total = 0;
  for (std::size_t k = 0; k < projections; ++k) {
    double norm2 = 0;
    for (std::size_t j = 0; j < d; ++j) {
      theta[j] = philox_normal(seed, static_cast<std::uint64_t>(k) * d + j);
      norm2 += theta[j] * theta[j];
    }
    if (norm2 == 0) {  // probability ~2^-53 per coordinate: fall back to the first axis
      theta[0] = 1;
      norm2 = 1;
    }
    const double inv_norm = 1 / std::sqrt(norm2);
    for (std::size_t j = 0; j < d; ++j) theta[j] *= inv_norm;
    const auto project = [&](const host_samples& s, std::vector<double>& out) {
      for (std::size_t i = 0; i < s.rows; ++i) {
        const double* x = s.row(i);
        double dot = 0;
        for (std::size_t j = 0; j < d; ++j) dot += x[j] * theta[j];
        if (!std::isfinite(dot)) {
          throw error(detail::concat(where, ": overflow: the projection of sample ", i, " onto direction ", k,
                                     " is ", dot, " (the samples are too large)"));
        }
        out[i] = dot;
      }
      std::sort(out.begin(), out.end());
    };
    project(a, pa);
    project(b, pb);
    total += static_cast<double>(metrics_detail::sorted_w2_squared_unchecked(pa, pb));
  }
  const auto squared = static_cast<double>(total / static_cast<long double>(projections));
  metrics_detail::require_finite_result(where, "SW2^2", squared);
  return std::sqrt(squared);
}

/// The default MMD bandwidths (for data of roughly unit scale).
inline const std::vector<double>& default_mmd_bandwidths() {
  static const std::vector<double> bandwidths{0.1, 0.2, 0.5, 1.0, 2.0};
  return bandwidths;
}

/// The unbiased estimate of the squared maximum mean discrepancy (Gretton et al. 2012, Eq. 3),
///   MMD^2_u = 1/(n(n-1)) sum_{i != i'} k(a_i, a_i') + 1/(m(m-1)) sum_{j != j'} k(b_j, b_j')
///             - 2/(n m) sum_{i, j} k(a_i, b_j),
/// a: [n, d], b: [m, d] with n, m >= 2, kernel k(x, y) = sum_h exp(-|x - y|^2 / (2 h^2)) over the
/// `bandwidths` h. It can be slightly negative when the distributions agree. O((n + m)^2 d) time.
/// Raises ayf::error("mmd_rbf: ...") when a sample or bandwidth is not finite, or the result overflows.
inline double mmd_rbf(const host_samples& a, const host_samples& b,
                      const std::vector<double>& bandwidths = default_mmd_bandwidths()) {
  constexpr std::string_view where = "mmd_rbf";
  metrics_detail::check_pair(where, a, b, 2);
  require(!bandwidths.empty(), where, "bandwidths", "at least one bandwidth", "none");
  std::vector<double> coefficients;  // -1 / (2 h^2)
  for (const double h : bandwidths) {
    require(std::isfinite(h) && h > 0 && std::isfinite(0.5 / (h * h)), where, "bandwidths",
            "positive finite values with finite 1 / (2 h^2)", h);
    coefficients.push_back(-0.5 / (h * h));
  }
  const std::size_t d = a.cols;
  const auto kernel = [&](const double* x, const double* y) {
    double r2 = 0;
    for (std::size_t j = 0; j < d; ++j) {
      const double diff = x[j] - y[j];
      r2 += diff * diff;
    }
    double k = 0;
    for (const double c : coefficients) k += std::exp(c * r2);
    return k;
  };
  // Sum over unordered pairs i < i' (the kernel is symmetric), doubled.
  const auto within = [&](const host_samples& s) {
    long double sum = 0;
    for (std::size_t i = 0; i < s.rows; ++i) {
      double row_sum = 0;
      for (std::size_t i2 = i + 1; i2 < s.rows; ++i2) row_sum += kernel(s.row(i), s.row(i2));
      sum += row_sum;
    }
    const auto n = static_cast<long double>(s.rows);
    return 2 * sum / (n * (n - 1));
  };
  long double cross = 0;
  for (std::size_t i = 0; i < a.rows; ++i) {
    double row_sum = 0;
    for (std::size_t j = 0; j < b.rows; ++j) row_sum += kernel(a.row(i), b.row(j));
    cross += row_sum;
  }
  cross /= static_cast<long double>(a.rows) * static_cast<long double>(b.rows);
  const auto result = static_cast<double>(within(a) + within(b) - 2 * cross);
  metrics_detail::require_finite_result(where, "MMD^2", result);
  return result;
}

}  // namespace ayf
