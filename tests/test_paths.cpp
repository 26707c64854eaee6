// tests/test_paths.cpp: the interpolant x_t = (1 - t) x0 + t eps and its conditional velocity
// (spec §1), sigma(t) = t / (1 - t), the sampling time grids (uniform, EDM/Karras; spec §9.1, §9.4)
// and the gamma-sampling intermediate time s' (spec §9.2), each against formulas written here,
// plus the argument errors of all of them.
#include <cmath>
#include <cstddef>
#include <limits>
#include <vector>

#include <catch2/catch.hpp>

#include "ayf/backends/eigen/backend.hpp"
#include "ayf/backends/xtensor/backend.hpp"
#include "ayf/core/error.hpp"
#include "ayf/paths/interpolant.hpp"
#include "ayf/paths/time_grid.hpp"
#include "ayf/samplers/flow_map.hpp"
#include "support/tolerance.hpp"

namespace {

using ayf::shape;
using Catch::Contains;
using tol = ayf_test::tolerance<double>;

/// Per-sample times with the end points 0 and 1 and interior values in between: [rows, 1].
std::vector<double> test_times(std::size_t rows) {
  std::vector<double> t(rows);
  for (std::size_t i = 0; i < rows; ++i) t[i] = static_cast<double>(i) / static_cast<double>(rows - 1);
  return t;
}

}  // namespace

TEMPLATE_TEST_CASE("interpolate gives (1 - t) x0 + t eps per sample", "[paths][cpu]",
                   ayf::eigen_backend<double>, ayf::xtensor_backend<double>) {
  using B = TestType;
  typename B::context ctx(11);
  const std::size_t rows = 9, cols = 5;
  auto x0 = B::make(ctx, shape(rows, cols));
  auto eps = B::make(ctx, shape(rows, cols));
  B::randn(ctx, x0);
  B::randn(ctx, eps);
  const std::vector<double> times = test_times(rows);
  const auto t = B::from_host(ctx, times, shape::vector(rows));
  auto out = B::make(ctx, shape(1, 1));  // wrong shape on purpose: interpolate resizes it
  ayf::interpolate<B>(ctx, x0, eps, t, out);
  REQUIRE(B::shape_of(out) == shape(rows, cols));

  const auto hx0 = B::to_host(ctx, x0), heps = B::to_host(ctx, eps), hout = B::to_host(ctx, out);
  for (std::size_t i = 0; i < rows; ++i) {
    for (std::size_t j = 0; j < cols; ++j) {
      const std::size_t k = i * cols + j;
      const long double ti = times[i];
      const long double expected = (1.0L - ti) * hx0[k] + ti * heps[k];
      const double scale = std::abs((1 - times[i]) * hx0[k]) + std::abs(times[i] * heps[k]);
      INFO("row " << i << " col " << j);
      CHECK(ayf_test::close<tol>(hout[k], static_cast<double>(expected), scale));
    }
  }
  // The end points are exact: x_0 = x0 and x_1 = eps, bit for bit.
  for (std::size_t j = 0; j < cols; ++j) {
    CHECK(hout[j] == hx0[j]);
    CHECK(hout[(rows - 1) * cols + j] == heps[(rows - 1) * cols + j]);
  }

  // The workspace overload gives the same numbers.
  auto out2 = B::make(ctx, shape(rows, cols));
  auto workspace = B::make(ctx, shape::vector(rows));
  ayf::interpolate<B>(ctx, x0, eps, t, out2, workspace);
  CHECK(B::to_host(ctx, out2) == hout);
}

TEMPLATE_TEST_CASE("conditional_velocity is eps - x0, the t-derivative of the interpolant",
                   "[paths][cpu]", ayf::eigen_backend<double>, ayf::xtensor_backend<double>) {
  using B = TestType;
  typename B::context ctx(12);
  const std::size_t rows = 6, cols = 3;
  auto x0 = B::make(ctx, shape(rows, cols));
  auto eps = B::make(ctx, shape(rows, cols));
  B::randn(ctx, x0);
  B::randn(ctx, eps);
  auto v = B::make(ctx, shape(rows, cols));
  ayf::conditional_velocity<B>(ctx, x0, eps, v);
  const auto hx0 = B::to_host(ctx, x0), heps = B::to_host(ctx, eps), hv = B::to_host(ctx, v);
  for (std::size_t k = 0; k < hv.size(); ++k) CHECK(hv[k] == heps[k] - hx0[k]);

  // Central difference of the interpolant in t (exact for a linear function up to rounding).
  const double t0 = 0.4, h = 1e-3;
  auto xp = B::make(ctx, shape(rows, cols));
  auto xm = B::make(ctx, shape(rows, cols));
  ayf::interpolate<B>(ctx, x0, eps, B::from_host(ctx, std::vector<double>(rows, t0 + h), shape::vector(rows)), xp);
  ayf::interpolate<B>(ctx, x0, eps, B::from_host(ctx, std::vector<double>(rows, t0 - h), shape::vector(rows)), xm);
  const auto hp = B::to_host(ctx, xp), hm = B::to_host(ctx, xm);
  for (std::size_t k = 0; k < hv.size(); ++k) CHECK(std::abs((hp[k] - hm[k]) / (2 * h) - hv[k]) < 1e-10);
}

TEMPLATE_TEST_CASE("interpolate rejects times outside [0, 1] and mismatched shapes", "[paths][errors][cpu]",
                   ayf::eigen_backend<double>, ayf::xtensor_backend<double>) {
  using B = TestType;
  typename B::context ctx(13);
  const auto x0 = B::make(ctx, shape(4, 3));
  const auto eps = B::make(ctx, shape(4, 3));
  auto out = B::make(ctx, shape(4, 3));
  const auto t_bad = B::from_host(ctx, {0.1, 1.5, 0.2, 0.3}, shape::vector(4));
  REQUIRE_THROWS_AS(ayf::interpolate<B>(ctx, x0, eps, t_bad, out), ayf::error);
  REQUIRE_THROWS_WITH(ayf::interpolate<B>(ctx, x0, eps, t_bad, out),
                      Contains("interpolate") && Contains("'t'") && Contains("[0, 1]") && Contains("1.5"));
  const auto t_negative = B::from_host(ctx, {0.1, -0.25, 0.2, 0.3}, shape::vector(4));
  REQUIRE_THROWS_WITH(ayf::interpolate<B>(ctx, x0, eps, t_negative, out), Contains("'t'") && Contains("-0.25"));

  // NaN anywhere in t is rejected (min/max comparisons alone would skip it in the middle).
  const double nan = std::numeric_limits<double>::quiet_NaN();
  for (std::size_t k = 0; k < 4; ++k) {
    std::vector<double> values{0.1, 0.5, 0.2, 0.3};
    values[k] = nan;
    const auto t_nan = B::from_host(ctx, values, shape::vector(4));
    REQUIRE_THROWS_WITH(ayf::interpolate<B>(ctx, x0, eps, t_nan, out), Contains("'t'") && Contains("NaN"));
  }

  const auto t_ok = B::from_host(ctx, {0.1, 0.5, 0.2, 0.3}, shape::vector(4));
  const auto eps_wrong = B::make(ctx, shape(4, 2));
  REQUIRE_THROWS_WITH(ayf::interpolate<B>(ctx, x0, eps_wrong, t_ok, out),
                      Contains("'eps'") && Contains("[4, 3]") && Contains("[4, 2]"));
  const auto t_short = B::from_host(ctx, {0.1, 0.5, 0.2}, shape::vector(3));
  REQUIRE_THROWS_WITH(ayf::interpolate<B>(ctx, x0, eps, t_short, out), Contains("'t'") && Contains("[4, 1]"));
  const auto x0_wrong = B::make(ctx, shape(4, 2));
  REQUIRE_THROWS_WITH(ayf::conditional_velocity<B>(ctx, x0_wrong, eps, out), Contains("'eps'"));
}

TEST_CASE("sigma(t) = t / (1 - t) and t(sigma) = sigma / (1 + sigma) are inverse", "[paths][cpu]") {
  for (double t : {0.0, 1e-6, 0.1, 0.25, 0.5, 0.7, 0.9, 0.999}) {
    const double sigma = ayf::sigma_from_time(t);
    CHECK(ayf_test::close<tol>(sigma, t / (1 - t)));
    CHECK(ayf_test::close<tol>(ayf::time_from_sigma(sigma), t));
  }
  CHECK(std::isinf(ayf::sigma_from_time(1.0)));
  CHECK(ayf::time_from_sigma(std::numeric_limits<double>::infinity()) == 1.0);
  CHECK(ayf::time_from_sigma(80.0) == Approx(80.0 / 81.0).epsilon(1e-15));
  REQUIRE_THROWS_WITH(ayf::sigma_from_time(1.5), Contains("'t'") && Contains("1.5"));
  REQUIRE_THROWS_WITH(ayf::sigma_from_time(-0.5), Contains("'t'"));
  REQUIRE_THROWS_WITH(ayf::time_from_sigma(-1.0), Contains("'sigma'"));
}

TEST_CASE("time_grid::uniform is t_k = t_max - (t_max - t_min) k / N", "[paths][grid][cpu]") {
  for (std::size_t n : {1u, 2u, 3u, 7u, 64u, 1000u}) {
    const auto grid = ayf::time_grid::uniform(n);
    REQUIRE(grid.steps() == n);
    REQUIRE(grid.times().size() == n + 1);
    CHECK(grid.front() == 1.0);
    CHECK(grid.back() == 0.0);
    for (std::size_t k = 0; k <= n; ++k) {
      const long double expected = 1.0L - static_cast<long double>(k) / static_cast<long double>(n);
      CHECK(std::abs(grid[k] - static_cast<double>(expected)) <= 2 * std::numeric_limits<double>::epsilon());
      if (k > 0) CHECK(grid[k] < grid[k - 1]);
    }
  }
  const auto partial = ayf::time_grid::uniform(4, 0.9, 0.1);
  const std::vector<double> expected{0.9, 0.7, 0.5, 0.3, 0.1};
  REQUIRE(partial.steps() == 4);
  for (std::size_t k = 0; k < expected.size(); ++k) CHECK(partial[k] == Approx(expected[k]).epsilon(1e-15));
  CHECK(partial.back() == 0.1);
}

TEST_CASE("time_grid::karras is EDM's sigma grid mapped by t = sigma / (1 + sigma), 0 appended",
          "[paths][grid][cpu]") {
  struct setting {
    std::size_t points;
    double sigma_min, sigma_max, rho;
  };
  for (const setting& p : {setting{32, 0.002, 80.0, 7.0}, setting{18, 0.002, 80.0, 7.0},
                           setting{5, 0.01, 10.0, 3.0}, setting{2, 0.5, 2.0, 1.0}}) {
    const auto grid = ayf::time_grid::karras(p.points, p.sigma_min, p.sigma_max, p.rho);
    REQUIRE(grid.steps() == p.points);  // points sigmas plus the appended t = 0
    const long double a = std::pow(static_cast<long double>(p.sigma_max), 1.0L / p.rho);
    const long double b = std::pow(static_cast<long double>(p.sigma_min), 1.0L / p.rho);
    for (std::size_t i = 0; i < p.points; ++i) {
      // EDM (Karras et al. 2022) Eq. 5: sigma_i = (a + i / (N - 1) (b - a))^rho.
      const long double sigma =
          std::pow(a + static_cast<long double>(i) / static_cast<long double>(p.points - 1) * (b - a), p.rho);
      const long double t = sigma / (1.0L + sigma);
      INFO("points " << p.points << " i " << i);
      CHECK(std::abs(grid[i] - static_cast<double>(t)) <= 1e-14 * static_cast<double>(t));
    }
    CHECK(grid.back() == 0.0);
    CHECK(grid.front() == Approx(p.sigma_max / (1 + p.sigma_max)).epsilon(1e-14));
    CHECK(grid[p.points - 1] == Approx(p.sigma_min / (1 + p.sigma_min)).epsilon(1e-12));
  }
  const auto no_zero = ayf::time_grid::karras(8, 0.002, 80.0, 7.0, false);
  CHECK(no_zero.steps() == 7);
  CHECK(no_zero.back() == Approx(0.002 / 1.002).epsilon(1e-12));
}

TEST_CASE("time_grid rejects bad grids with an ayf::error naming the argument", "[paths][grid][errors][cpu]") {
  REQUIRE_THROWS_AS(ayf::time_grid({}), ayf::error);
  REQUIRE_THROWS_WITH(ayf::time_grid({}), Contains("'times'") && Contains("at least 2"));
  REQUIRE_THROWS_WITH(ayf::time_grid({0.5}), Contains("'times'") && Contains("at least 2"));
  REQUIRE_THROWS_WITH(ayf::time_grid({0.0, 0.5}), Contains("'times'") && Contains("strictly decreasing"));
  REQUIRE_THROWS_WITH(ayf::time_grid({1.0, 1.0, 0.0}), Contains("'times'") && Contains("strictly decreasing"));
  REQUIRE_THROWS_WITH(ayf::time_grid({1.2, 0.5, 0.0}), Contains("'times'") && Contains("[0, 1]") && Contains("1.2"));
  REQUIRE_THROWS_WITH(ayf::time_grid({1.0, 0.5, -0.1}), Contains("'times'") && Contains("[0, 1]"));
  REQUIRE_THROWS_AS(ayf::time_grid({1.0, std::numeric_limits<double>::quiet_NaN(), 0.0}), ayf::error);
  REQUIRE_THROWS_WITH(ayf::time_grid::uniform(0), Contains("'steps'"));
  REQUIRE_THROWS_WITH(ayf::time_grid::uniform(4, 1.2, 0.0), Contains("'times'") && Contains("1.2"));
  REQUIRE_THROWS_WITH(ayf::time_grid::uniform(4, 0.2, 0.6), Contains("strictly decreasing"));
  REQUIRE_THROWS_WITH(ayf::time_grid::karras(1), Contains("'points'"));
  REQUIRE_THROWS_WITH(ayf::time_grid::karras(8, 0.0), Contains("'sigma_min'"));
  REQUIRE_THROWS_WITH(ayf::time_grid::karras(8, 90.0, 80.0), Contains("'sigma_min'"));
  REQUIRE_THROWS_WITH(ayf::time_grid::karras(8, 0.002, 80.0, -1.0), Contains("'rho'"));
  // The smallest valid grids are accepted.
  CHECK(ayf::time_grid({1.0, 0.0}).steps() == 1);
  CHECK(ayf::time_grid({0.3, 0.2}).steps() == 1);
}

TEST_CASE("gamma_intermediate_time: sigma(s') = sqrt(1 - gamma^2) sigma(t), gamma 0 -> t, 1 -> 0",
          "[paths][gamma][cpu]") {
  for (double t : {0.0, 0.01, 0.125, 0.3, 0.5, 0.75, 0.9, 0.999}) {
    CHECK(ayf::gamma_intermediate_time(t, 0.0) == t);
    CHECK(ayf::gamma_intermediate_time(t, 1.0) == 0.0);
    for (double gamma : {0.1, 0.5, 0.8, 0.9, 0.99}) {
      const double s = ayf::gamma_intermediate_time(t, gamma);
      INFO("t " << t << " gamma " << gamma);
      CHECK(s >= 0.0);
      CHECK(s <= t);
      // In sigma-space (CTM): sigma(s') = sqrt(1 - gamma^2) sigma(t), with sigma(t) = t / (1 - t).
      // sigma(s) = s / (1 - s) amplifies the rounding of s by 1 / (1 - s): the tolerance says so.
      const double sigma_t = t / (1 - t), sigma_s = s / (1 - s);
      const double eps = std::numeric_limits<double>::epsilon();
      CHECK(std::abs(sigma_s - std::sqrt(1 - gamma * gamma) * sigma_t) <= 16 * eps * (1 + sigma_t) / (1 - s));
      // The same relation solved for s' in long double: s' = r sigma / (1 + r sigma).
      const long double rs = std::sqrt(1.0L - static_cast<long double>(gamma) * gamma) *
                             (static_cast<long double>(t) / (1.0L - t));
      CHECK(std::abs(s - static_cast<double>(rs / (1.0L + rs))) <= 8 * eps * t);
    }
  }
  // Monotone in gamma: more stochasticity jumps further toward the data.
  double previous = 1.0;
  for (double gamma = 0.0; gamma <= 1.0; gamma += 0.125) {
    const double s = ayf::gamma_intermediate_time(0.6, gamma);
    CHECK(s < previous);
    previous = s;
  }
  REQUIRE_THROWS_AS(ayf::gamma_intermediate_time(0.5, 1.5), ayf::error);
  REQUIRE_THROWS_WITH(ayf::gamma_intermediate_time(0.5, 1.5), Contains("'gamma'") && Contains("[0, 1]") && Contains("1.5"));
  REQUIRE_THROWS_WITH(ayf::gamma_intermediate_time(0.5, -0.1), Contains("'gamma'"));
  // The ends of the time range: t = 1 maps to 0 at gamma = 1 and to 1 at gamma = 0.
  CHECK(ayf::gamma_intermediate_time(1.0, 1.0) == 0.0);
  CHECK(ayf::gamma_intermediate_time(1.0, 0.0) == 1.0);
  REQUIRE_THROWS_WITH(ayf::gamma_intermediate_time(1.5, 0.5), Contains("'t_next'"));
}
