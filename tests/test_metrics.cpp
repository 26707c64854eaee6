// tests/test_metrics.cpp: the sample distances of ayf/analysis/metrics.hpp against independent
// computations: the exact 1-D W2 of sorted samples (and a hand-integrated case of unequal sizes),
// the closed form SW2(N(0, I), N(mu, I)) = |mu| / sqrt(d), a brute-force MMD^2_u straight from its
// definition, the Gaussian closed form of the population MMD^2 with RBF kernels, and argument errors.
#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <vector>

#include <catch2/catch.hpp>

#include "ayf/analysis/metrics.hpp"
#include "ayf/core/error.hpp"
#include "ayf/core/philox.hpp"
#include "ayf/data/toy2d.hpp"

namespace {

using Catch::Contains;

/// [rows, cols] standard normals from Philox stream `seed`, shifted by `mean` (length cols).
std::vector<double> gaussian_samples(std::size_t rows, std::size_t cols, std::uint64_t seed,
                                     const std::vector<double>& mean = {}) {
  std::vector<double> x(rows * cols);
  for (std::size_t k = 0; k < x.size(); ++k) {
    x[k] = ayf::philox_normal(seed, k) + (mean.empty() ? 0.0 : mean[k % cols]);
  }
  return x;
}

/// sqrt((1/n) sum_i (x_(i) - y_(i))^2) for equal sizes: the exact 1-D W2 of two samples.
double sorted_w2(std::vector<double> x, std::vector<double> y) {
  std::sort(x.begin(), x.end());
  std::sort(y.begin(), y.end());
  double sum = 0;
  for (std::size_t i = 0; i < x.size(); ++i) sum += (x[i] - y[i]) * (x[i] - y[i]);
  return std::sqrt(sum / static_cast<double>(x.size()));
}

/// MMD^2_u from its definition, over ordered pairs (i != i'), with k = sum_h exp(-r^2 / (2 h^2)).
double brute_force_mmd(const std::vector<double>& a, const std::vector<double>& b, std::size_t d,
                       const std::vector<double>& bandwidths) {
  const auto k = [&](const double* x, const double* y) {
    double r2 = 0;
    for (std::size_t j = 0; j < d; ++j) r2 += (x[j] - y[j]) * (x[j] - y[j]);
    double sum = 0;
    for (const double h : bandwidths) sum += std::exp(-r2 / (2 * h * h));
    return sum;
  };
  const std::size_t n = a.size() / d, m = b.size() / d;
  double xx = 0, yy = 0, xy = 0;
  for (std::size_t i = 0; i < n; ++i) {
    for (std::size_t i2 = 0; i2 < n; ++i2) {
      if (i != i2) xx += k(&a[i * d], &a[i2 * d]);
    }
  }
  for (std::size_t j = 0; j < m; ++j) {
    for (std::size_t j2 = 0; j2 < m; ++j2) {
      if (j != j2) yy += k(&b[j * d], &b[j2 * d]);
    }
  }
  for (std::size_t i = 0; i < n; ++i) {
    for (std::size_t j = 0; j < m; ++j) xy += k(&a[i * d], &b[j * d]);
  }
  const auto nn = static_cast<double>(n), mm = static_cast<double>(m);
  return xx / (nn * (nn - 1)) + yy / (mm * (mm - 1)) - 2 * xy / (nn * mm);
}

/// Population MMD^2 between N(0, I_d) and N(mu, I_d) with k = sum_h exp(-r^2 / (2 h^2)): x - y ~
/// N(-mu, 2 I), so E k = sum_h (h^2 / (h^2 + 2))^(d/2) exp(-|mu|^2 / (2 (h^2 + 2))), and
/// MMD^2 = E k(x, x') + E k(y, y') - 2 E k(x, y) = sum_h 2 (h^2 / (h^2 + 2))^(d/2) (1 - exp(-|mu|^2 / (2 (h^2 + 2)))).
double gaussian_mmd(double shift, std::size_t d, const std::vector<double>& bandwidths) {
  double sum = 0;
  for (const double h : bandwidths) {
    const double s = h * h + 2;
    sum += 2 * std::pow(h * h / s, static_cast<double>(d) / 2) * (1 - std::exp(-shift * shift / (2 * s)));
  }
  return sum;
}

}  // namespace

TEST_CASE("sorted_w2_squared integrates the quantile functions exactly", "[metrics][cpu]") {
  // x = {0, 1}, y = {0, 1, 2}: on (0, 1/3] both are 0; (1/3, 1/2]: 0 vs 1; (1/2, 2/3]: 1 vs 1;
  // (2/3, 1]: 1 vs 2. W2^2 = 1/6 + 1/3 = 1/2.
  CHECK(ayf::sorted_w2_squared({0, 1}, {0, 1, 2}) == Approx(0.5).epsilon(1e-15));
  CHECK(ayf::sorted_w2_squared({0, 1, 2}, {0, 1}) == Approx(0.5).epsilon(1e-15));
  // One point against three: the mean squared distance.
  CHECK(ayf::sorted_w2_squared({1}, {0, 1, 5}) == Approx((1.0 + 0 + 16) / 3).epsilon(1e-15));
  // Equal sizes: the mean of squared differences of the order statistics.
  CHECK(ayf::sorted_w2_squared({-1, 2, 3}, {0, 0, 7}) == Approx((1.0 + 4 + 16) / 3).epsilon(1e-15));
  REQUIRE_THROWS_AS(ayf::sorted_w2_squared({}, {1}), ayf::error);
}

TEST_CASE("sliced W2 of 1-D samples is their exact W2", "[metrics][cpu]") {
  const std::vector<double> x = gaussian_samples(500, 1, 1), y = gaussian_samples(500, 1, 2, {0.7});
  const double expected = sorted_w2(x, y);
  const double sw = ayf::sliced_w2({x, 1}, {y, 1}, 16, 9);
  CHECK(sw == Approx(expected).epsilon(1e-12));
  // Unequal sizes, by hand: sqrt(1/2) as in sorted_w2_squared above, for any direction sign.
  CHECK(ayf::sliced_w2({std::vector<double>{1, 0}, 1}, {std::vector<double>{2, 0, 1}, 1}, 8) ==
        Approx(std::sqrt(0.5)).epsilon(1e-14));
}

TEST_CASE("sliced W2 between N(0, I) and N(mu, I) is |mu| / sqrt(d)", "[metrics][cpu]") {
  const std::size_t n = 1000, projections = 1000;
  struct gaussian_case {
    std::vector<double> mu;
  };
  for (const auto& [mu] : {gaussian_case{{3, 0}}, gaussian_case{{2, -2}}, gaussian_case{{1, 2, 2}}}) {
    const std::size_t d = mu.size();
    double norm = 0;
    for (const double m : mu) norm += m * m;
    norm = std::sqrt(norm);
    INFO("d = " << d << ", |mu| = " << norm);
    const std::vector<double> a = gaussian_samples(n, d, 21), b = gaussian_samples(n, d, 22, mu);
    const double sw = ayf::sliced_w2({a, d}, {b, d}, projections, 5);
    // Population value |mu| / sqrt(d), since E (theta . mu)^2 = |mu|^2 / d on the unit sphere. The
    // relative sd of the estimate is about 1.5% here (1000 random directions: (theta . mu)^2 / |mu|^2
    // has relative sd 0.71 in 2-D, 0.89 in 3-D; the sample means add sqrt(2 / n) / |mu|): 6% is ~4 sd.
    CHECK(sw == Approx(norm / std::sqrt(static_cast<double>(d))).epsilon(0.06));
    // Given the directions the documented definition fixes and the sample means, each projected W2^2
    // is (theta_k . (mean_b - mean_a))^2 plus the W2^2 of two centred N(0, 1) samples, O(1e-3) here.
    std::vector<double> delta(d, 0.0);
    for (std::size_t i = 0; i < n; ++i) {
      for (std::size_t j = 0; j < d; ++j) delta[j] += (b[i * d + j] - a[i * d + j]) / static_cast<double>(n);
    }
    double conditional = 0;
    for (std::size_t k = 0; k < projections; ++k) {
      double dot = 0, norm2 = 0;
      for (std::size_t j = 0; j < d; ++j) {
        const double g = ayf::philox_normal(5, k * d + j);
        dot += g * delta[j];
        norm2 += g * g;
      }
      conditional += dot * dot / norm2 / static_cast<double>(projections);
    }
    CHECK(sw >= std::sqrt(conditional));
    CHECK(sw == Approx(std::sqrt(conditional)).epsilon(0.005));
  }
  // Symmetric in its arguments and deterministic in the seed; the seed picks the directions.
  const std::vector<double> a = gaussian_samples(500, 2, 31), b = gaussian_samples(500, 2, 32);
  const double sw = ayf::sliced_w2({a, 2}, {b, 2}, 100, 1);
  CHECK(ayf::sliced_w2({b, 2}, {a, 2}, 100, 1) == sw);
  CHECK(ayf::sliced_w2({a, 2}, {b, 2}, 100, 1) == sw);
  CHECK(ayf::sliced_w2({a, 2}, {b, 2}, 100, 2) != sw);
  // Identical distributions: only the sampling error remains; identical samples give exactly 0.
  CHECK(sw < 0.1);
  CHECK(ayf::sliced_w2({a, 2}, {a, 2}, 100, 1) == 0.0);
}

TEST_CASE("sliced W2 accepts point sets and rejects bad arguments", "[metrics][cpu]") {
  const auto p = ayf::data::checkerboard(300, 1), q = ayf::data::checkerboard(200, 2);
  const double sw = ayf::sliced_w2(p, q, 64, 3);
  CHECK(sw == ayf::sliced_w2({p.values.data(), p.rows, p.cols}, {q.values.data(), q.rows, q.cols}, 64, 3));
  CHECK(sw < 0.3);
  const std::vector<double> two_d(10), three_d(9), empty;
  REQUIRE_THROWS_WITH(ayf::sliced_w2({empty.data(), 0, 2}, {two_d, 2}), Contains("'a.rows'"));
  REQUIRE_THROWS_WITH(ayf::sliced_w2({two_d, 2}, {empty.data(), 0, 2}), Contains("'b.rows'"));
  REQUIRE_THROWS_WITH(ayf::sliced_w2({two_d, 2}, {three_d, 3}), Contains("'b.cols'") && Contains("a.cols = 2"));
  REQUIRE_THROWS_WITH(ayf::sliced_w2({two_d, 2}, {two_d, 2}, 0), Contains("'projections'"));
  REQUIRE_THROWS_WITH(ayf::sliced_w2({three_d, 2}, {two_d, 2}), Contains("'values.size()'"));
  REQUIRE_THROWS_WITH(ayf::sliced_w2({two_d.data(), 5, 0}, {two_d.data(), 5, 0}), Contains("'a.cols'"));
}

TEST_CASE("MMD^2_u matches its definition and is symmetric", "[metrics][cpu]") {
  const std::vector<double> bandwidths{0.3, 1.7};
  const std::vector<double> a = gaussian_samples(7, 3, 41), b = gaussian_samples(5, 3, 42, {0.5, 0, -0.2});
  const double mmd = ayf::mmd_rbf({a, 3}, {b, 3}, bandwidths);
  CHECK(mmd == Approx(brute_force_mmd(a, b, 3, bandwidths)).epsilon(1e-12));
  CHECK(ayf::mmd_rbf({b, 3}, {a, 3}, bandwidths) == Approx(mmd).epsilon(1e-13));
  // By hand: a = {0, 1}, b = {0, 2}, one bandwidth 1: e^-1/2 + e^-2 - (1 + e^-2 + 2 e^-1/2) / 2.
  CHECK(ayf::mmd_rbf({std::vector<double>{0, 1}, 1}, {std::vector<double>{0, 2}, 1}, {1.0}) ==
        Approx(0.5 * std::exp(-2.0) - 0.5).epsilon(1e-14));
  // Against itself the unbiased estimate is (2/n) (mean off-diagonal kernel - k(0)), slightly negative.
  const std::vector<double> c = gaussian_samples(50, 2, 43);
  const double self = ayf::mmd_rbf({c, 2}, {c, 2});
  CHECK(self <= 0);
  CHECK(self >= -2.0 * 5 / 50);
}

TEST_CASE("MMD^2_u estimates the Gaussian closed form and grows with the shift", "[metrics][cpu]") {
  const std::size_t n = 1000, d = 2;
  const std::vector<double>& bandwidths = ayf::default_mmd_bandwidths();
  REQUIRE(bandwidths == std::vector<double>{0.1, 0.2, 0.5, 1, 2});
  const std::vector<double> a = gaussian_samples(n, d, 51);
  double previous = -1;
  for (const double shift : {0.0, 0.5, 1.0, 2.0}) {
    const std::vector<double> b = gaussian_samples(n, d, 52, {shift, 0});
    const double mmd = ayf::mmd_rbf({a, d}, {b, d});
    const double expected = gaussian_mmd(shift, d, bandwidths);
    INFO("shift " << shift << ": MMD^2_u " << mmd << ", population " << expected);
    // The estimator is unbiased; across seeds its sd at n = 1000 is about 0.003 + 0.025 x the
    // population value (measured), so this bound is 3 to 4 sd.
    CHECK(std::abs(mmd - expected) <= 0.01 + 0.1 * expected);
    CHECK(mmd > previous);
    previous = mmd;
  }
  CHECK(gaussian_mmd(1.0, 2, bandwidths) == Approx(0.2642).epsilon(1e-3));  // the closed form itself
}

TEST_CASE("MMD rejects empty, single-sample and mismatched input", "[metrics][cpu]") {
  const std::vector<double> one(2), two(4), three_d(6);
  REQUIRE_THROWS_WITH(ayf::mmd_rbf({one, 2}, {two, 2}), Contains("'a.rows'") && Contains("at least 2"));
  REQUIRE_THROWS_WITH(ayf::mmd_rbf({two, 2}, {one.data(), 0, 2}), Contains("'b.rows'"));
  REQUIRE_THROWS_WITH(ayf::mmd_rbf({two, 2}, {three_d, 3}), Contains("'b.cols'"));
  REQUIRE_THROWS_WITH(ayf::mmd_rbf({two, 2}, {two, 2}, {}), Contains("'bandwidths'"));
  REQUIRE_THROWS_WITH(ayf::mmd_rbf({two, 2}, {two, 2}, {1.0, -0.5}), Contains("'bandwidths'") && Contains("-0.5"));
}
