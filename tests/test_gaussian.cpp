// tests/test_gaussian.cpp: Theorem 3.1 on Gaussian data N(0, c^2 I) (spec §3). The closed forms
// against the published golden values (§3.2, §3.4), dual numbers and finite differences; the
// library's variance recursions against independent evaluations written here (the r_k recursion
// of Eq. 10 in long double, the product of A^2 of §3.6, a sigma-space gamma recursion); the
// qualitative claims of §3.4 - §3.6; and the recursions against Monte Carlo runs of the samplers.
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <vector>

#include <catch2/catch.hpp>

#include "ayf/analysis/gaussian.hpp"
#include "ayf/analysis/linear_models.hpp"
#include "ayf/analysis/recursions.hpp"
#include "ayf/backends/eigen/backend.hpp"
#include "ayf/backends/eigen/wasserstein.hpp"
#include "ayf/backends/xtensor/backend.hpp"
#include "ayf/core/dual.hpp"
#include "ayf/paths/time_grid.hpp"
#include "ayf/samplers/consistency.hpp"
#include "ayf/samplers/flow_map.hpp"
#include "support/tolerance.hpp"

namespace {

using ayf::shape;
using tol = ayf_test::tolerance<double>;
using dual = ayf::dual<double>;
namespace g = ayf::gaussian;

// Spec §3.1 - §3.3 written independently of ayf/analysis, in long double.
long double S_ref(long double t, long double c) { return (1 - t) * (1 - t) * c * c + t * t; }
long double A_ref(long double t, long double s, long double c, long double delta) {
  return std::sqrt(S_ref(s, c) / S_ref(t, c)) * (1 + delta * (t - s));
}

/// |actual - expected| <= rel |expected|.
bool rel_close(double actual, long double expected, double rel) {
  return std::abs(static_cast<long double>(actual) - expected) <= rel * std::abs(expected);
}

/// Output variance of multistep CM sampling on the uniform N-step grid through the r_k recursion
/// of spec Eq. 10: r_{k-1} = A_k r_k + B_k, r_N = 0, Sigma_N^2 = (c + delta t_1)^2 (1 + r_1).
/// Also the lower-bound sequence y_k of Eq. 11 - 12, which must stay below r_k.
struct eq10_result {
  long double variance;
  long double r1, y1;
  bool r_nonnegative, y_below_r;
};
eq10_result cm_variance_eq10(long double c, long double delta, int n) {
  long double r = 0, y = 0;
  bool nonnegative = true, below = true;
  for (int k = n; k >= 2; --k) {
    const long double t = static_cast<long double>(k) / n, u = static_cast<long double>(k - 1) / n;
    const long double su = S_ref(u, c);
    const long double a_k = (1 - u) * (1 - u) * (c + delta * t) * (c + delta * t) / su;
    const long double b_k = (1 - u) * (1 - u) * (2 * c * delta * t + delta * delta * t * t) / su;
    r = a_k * r + b_k;
    const long double alpha = (1 - u) * (1 - u) * c * c / su;
    const long double beta = 2 * c * delta * u * (1 - u) * (1 - u) / su;
    y = alpha * y + beta;
    nonnegative = nonnegative && r >= 0;
    below = below && y <= r * (1 + 1e-15L);
  }
  const long double t1 = 1.0L / n;
  return {(c + delta * t1) * (c + delta * t1) * (1 + r), r, y, nonnegative, below};
}

/// Sigma_N^2 = prod_k A(t_k, t_{k+1})^2 (spec §3.6) in long double.
long double flow_map_product(const ayf::time_grid& grid, long double c, long double delta) {
  long double p = 1;
  for (std::size_t k = 0; k < grid.steps(); ++k) {
    const long double a = A_ref(grid[k], grid[k + 1], c, delta);
    p *= a * a;
  }
  return p;
}

/// gamma-sampling variance (spec §3.6 last paragraph) with s' solved in sigma-space here:
/// sigma(s') = sqrt(1 - gamma^2) sigma(t'), sigma(t) = t / (1 - t).
long double gamma_recursion(const ayf::time_grid& grid, long double c, long double delta, long double gamma) {
  long double v = 1;
  for (std::size_t k = 0; k < grid.steps(); ++k) {
    const long double t = grid[k], tn = grid[k + 1];
    const long double rs = std::sqrt(1 - gamma * gamma) * tn / (1 - tn);
    const long double sp = rs / (1 + rs);
    const long double a = (1 - tn) / (1 - sp) * A_ref(t, sp, c, delta);
    v = a * a * v + gamma * gamma * tn * tn;
  }
  return v;
}

double cm_w2(double c, double delta, std::size_t n) {
  const double v = ayf::consistency_sampling_variance(g::perturbed_consistency{c, delta}, ayf::time_grid::uniform(n));
  return ayf::w2_isotropic(c, std::sqrt(v), 1);
}
double flow_map_w2(double c, double delta, std::size_t n) {
  const double v = ayf::flow_map_sampling_variance(g::perturbed_flow_map{c, delta}, ayf::time_grid::uniform(n));
  return ayf::w2_isotropic(c, std::sqrt(v), 1);
}

/// Unbiased sample variance of the entries (d = 1: one entry per sample), two-pass in long double.
template <class B>
double sample_variance(typename B::context& ctx, const typename B::tensor& x) {
  const auto h = B::to_host(ctx, x);
  long double mean = 0;
  for (double v : h) mean += v;
  mean /= static_cast<long double>(h.size());
  long double ss = 0;
  for (double v : h) ss += (v - mean) * (v - mean);
  return static_cast<double>(ss / static_cast<long double>(h.size() - 1));
}

}  // namespace

TEST_CASE("Gaussian closed forms reproduce the golden values of spec section 3.2", "[gaussian][golden][cpu]") {
  const double c = 0.5, t = 0.7, s = 0.2;
  // Golden values, to the printed digits.
  CHECK(std::abs(g::marginal_variance(t, c) - 0.5125) <= 0.5e-4);
  CHECK(std::abs(g::velocity_coefficient(t, c) - 1.219512) <= 0.5e-6);
  CHECK(std::abs(g::flow_map_coefficient(t, s, c) - 0.624695) <= 0.5e-6);
  CHECK(std::abs(g::consistency_coefficient(t, c) - 0.698430) <= 0.5e-6);
  CHECK(std::abs(g::average_velocity_coefficient(t, s, c) - 0.750610) <= 0.5e-6);
  // And, at many points, the formulas of §3.2 written here.
  for (double cc : {0.25, 0.5, 1.0, 2.0})
    for (double tt : {0.0, 0.1, 0.3, 0.5, 0.7, 0.95, 1.0})
      for (double ss : {0.0, 0.05, 0.4, 0.9}) {
        INFO("c " << cc << " t " << tt << " s " << ss);
        const long double st = S_ref(tt, cc);
        CHECK(rel_close(g::marginal_variance(tt, cc), st, 1e-15));
        CHECK(rel_close(g::velocity_coefficient(tt, cc), (tt - cc * cc * (1 - tt)) / st, 1e-14));
        CHECK(rel_close(g::consistency_coefficient(tt, cc), cc / std::sqrt(st), 1e-15));
        CHECK(rel_close(g::flow_map_coefficient(tt, ss, cc), std::sqrt(S_ref(ss, cc) / st), 1e-15));
        if (ss != tt) {
          const long double ratio = std::sqrt(S_ref(ss, cc) / st);
          const double got = g::average_velocity_coefficient(tt, ss, cc);
          // 1 - ratio cancels when s is close to t: the tolerance is relative to 1 / |t - s|.
          CHECK(std::abs(got - (1 - ratio) / (tt - ss)) <= 1e-14L / std::abs(tt - ss));
        }
      }
  // The optimal CM is the flow map to s = 0 (§2 special cases).
  for (double tt : {0.1, 0.5, 0.9}) CHECK(ayf_test::close<tol>(g::consistency_coefficient(tt, c), g::flow_map_coefficient(tt, 0.0, c)));
}

TEST_CASE("k(t) = 1/2 d/dt ln S(t), checked with dual numbers and finite differences", "[gaussian][dual][cpu]") {
  for (double c : {0.5, 1.0, 2.0}) {
    for (double t = 0.0; t <= 1.0; t += 0.0625) {
      INFO("c " << c << " t " << t);
      const dual log_s = ayf::log(g::marginal_variance(dual::variable(t), c));
      const double k = g::velocity_coefficient(t, c);
      CHECK(ayf_test::close<tol>(0.5 * log_s.tangent, k, 1.0));
      // Central difference of ln S in double (truncation O(h^2) ~ 1e-10).
      const double h = 1e-5;
      const double fd = 0.5 * (std::log(g::marginal_variance(t + h, c)) - std::log(g::marginal_variance(t - h, c))) / (2 * h);
      CHECK(std::abs(fd - k) <= 1e-8);
      // The optimal flow map solves dx/ds = k(s) x: d/ds sqrt(S(s)/S(t)) at s = t is k(t).
      const dual ratio = g::flow_map_coefficient(dual(t), dual::variable(t), c);
      CHECK(ratio.value == 1.0);
      CHECK(ayf_test::close<tol>(ratio.tangent, k, 1.0));
      // k(t) evaluated on duals carries its own derivative; check it against a central difference.
      const dual dk = g::velocity_coefficient(dual::variable(t), c);
      const double dk_fd = (g::velocity_coefficient(t + h, c) - g::velocity_coefficient(t - h, c)) / (2 * h);
      CHECK(std::abs(dk.tangent - dk_fd) <= 1e-8 * (1 + std::abs(dk_fd)));
    }
  }
}

TEST_CASE("the optimal average velocity F*(t, s) tends to k(t) as s -> t", "[gaussian][cpu]") {
  const double c = 0.5;
  for (double t : {0.2, 0.5, 0.7, 0.95}) {
    const double k = g::velocity_coefficient(t, c);
    CHECK(g::average_velocity_coefficient(t, t, c) == k);  // the s == t branch is k(t) itself
    // With A(s) = sqrt(S(s)/S(t)): A' = k(s) A, A'' = (k' + k^2) A, so at s = t - h
    // F*(t, s) = (1 - A(s)) / h = k(t) - h/2 (k'(t) + k(t)^2) + O(h^2). k' from dual numbers.
    const double second = g::velocity_coefficient(dual::variable(t), c).tangent + k * k;
    double previous = 1e300;
    for (double h : {1e-1, 1e-2, 1e-3, 1e-4}) {
      const double err = g::average_velocity_coefficient(t, t - h, c) - k;
      INFO("t " << t << " h " << h << " error " << err);
      CHECK(std::abs(err) < 0.2 * previous);  // shrinks about tenfold per decade of h
      if (h <= 1e-2) CHECK(std::abs(err + 0.5 * h * second) <= 0.05 * 0.5 * h * std::abs(second) + 1e-11);
      previous = std::abs(err);
    }
  }
}

TEST_CASE("perturbed_average_velocity is (1 - A) / (t - s) and its s = t branch is the limit",
          "[gaussian][dual][cpu]") {
  const double c = 0.5;
  for (double delta : {0.0, 0.05, 0.3}) {
    const g::perturbed_average_velocity F{c, delta};
    const g::perturbed_flow_map A{c, delta};
    for (double t : {0.0, 0.15, 0.5, 0.7, 1.0}) {
      INFO("delta " << delta << " t " << t);
      for (double s : {0.0, 0.1, 0.45, 0.9}) {
        if (s == t) continue;
        CHECK(rel_close(A(t, s), A_ref(t, s, c, delta), 1e-15));
        CHECK(std::abs(F(t, s) - (1 - A_ref(t, s, c, delta)) / (t - s)) <= 1e-14L / std::abs(t - s));
      }
      // s = t: the s != t formula converges to it. Interior t: the symmetric mean of s = t -+ h
      // (error O(h^2)); t = 0 or 1: one-sided Richardson extrapolation 2 F(t, t+-h) - F(t, t+-2h).
      const double h = 1e-4;
      const double limit = (t > 0 && t < 1) ? 0.5 * (F(t, t - h) + F(t, t + h))
                           : t == 0.0      ? 2 * F(t, t + h) - F(t, t + 2 * h)
                                           : 2 * F(t, t - h) - F(t, t - 2 * h);
      CHECK(std::abs(F(t, t) - limit) <= 1e-7);
      // ... and it is dA/ds at s = t (A(t, s) = 1 + (s - t) dA/ds + ...), by dual numbers.
      const dual dads = g::perturbed_flow_map_coefficient(dual(t), dual::variable(t), c, delta);
      CHECK(ayf_test::close<tol>(F(t, t), dads.tangent, 1.0));
      CHECK(A(t, t) == 1.0);
    }
  }
}

TEST_CASE("the perturbed CM of Eq. 7 keeps a(0) = 1 and has the error d delta^2 t^2 of Eq. 6", "[gaussian][cpu]") {
  for (double c : {0.5, 2.0})
    for (double delta : {0.0, 0.05, 0.2}) {
      const g::perturbed_consistency a{c, delta};
      CHECK(a(0.0) == 1.0);
      for (double t : {0.1, 0.5, 0.9, 1.0}) {
        // E|f_delta - f*|^2 over x_t ~ N(0, S(t)) is (a(t) - c / sqrt(S(t)))^2 S(t) = delta^2 t^2.
        const double diff = a(t) - g::consistency_coefficient(t, c);
        CHECK(std::abs(diff * diff * g::marginal_variance(t, c) - delta * delta * t * t) <= 1e-15);
        CHECK(rel_close(a(t), (c + delta * t) / std::sqrt(S_ref(t, c)), 1e-15));
      }
    }
}

TEST_CASE("multistep CM sampling W2 reproduces the golden values of spec section 3.4", "[gaussian][golden][cpu]") {
  const double c = 0.5, delta = 0.05;
  const std::vector<std::size_t> steps{1, 2, 3, 4, 8, 16, 64, 256, 1024, 4096};
  const std::vector<double> golden{0.0500, 0.0359, 0.0359, 0.0365, 0.0401, 0.0471, 0.0743, 0.1304, 0.2495, 0.5525};
  for (std::size_t i = 0; i < steps.size(); ++i) {
    const double w2 = cm_w2(c, delta, steps[i]);
    INFO("N " << steps[i] << " W2 " << w2);
    CHECK(std::abs(w2 - golden[i]) <= 0.5e-4);
  }
  // The optimal CM (delta = 0) gives W2 = 0 for every N.
  for (std::size_t n : {1u, 2u, 16u, 1024u}) CHECK(cm_w2(c, 0.0, n) <= 1e-12);
  // "Best at 2 steps" for c = 0.5; "for c = 1 or c = 2 the best is at N = 1".
  CHECK(cm_w2(0.5, delta, 2) < cm_w2(0.5, delta, 1));
  CHECK(cm_w2(0.5, delta, 2) < cm_w2(0.5, delta, 4));
  for (double cc : {1.0, 2.0})
    for (std::size_t n : {2u, 3u, 4u, 8u, 64u}) CHECK(cm_w2(cc, delta, 1) < cm_w2(cc, delta, n));
}

TEST_CASE("consistency_sampling_variance agrees with the r_k recursion of Eq. 10 (long double)",
          "[gaussian][recursion][cpu]") {
  struct setting {
    double c, delta;
    int n;
  };
  const std::vector<setting> settings{{0.5, 0.05, 1},    {0.5, 0.05, 2},    {0.5, 0.05, 3},   {0.5, 0.05, 16},
                                      {0.5, 0.05, 1024}, {0.5, 0.1, 7},     {0.5, 0.1, 1024}, {1.0, 0.1, 5},
                                      {1.0, 0.2, 256},   {2.0, 0.02, 1024}, {0.3, 0.5, 64},   {0.5, 0.0, 100}};
  for (const setting& p : settings) {
    const double library =
        ayf::consistency_sampling_variance(g::perturbed_consistency{p.c, p.delta}, ayf::time_grid::uniform(p.n));
    const eq10_result ref = cm_variance_eq10(p.c, p.delta, p.n);
    INFO("c " << p.c << " delta " << p.delta << " N " << p.n << " library " << library << " Eq. 10 "
              << static_cast<double>(ref.variance));
    CHECK(rel_close(library, ref.variance, 1e-9));
    // The proof's facts (§3.5): r_k >= 0 and the lower-bound sequence y_k <= r_k.
    CHECK(ref.r_nonnegative);
    CHECK(ref.y_below_r);
  }
  // r_1 grows without bound as N grows (Sigma_N -> infinity), monotonically here.
  long double previous = -1;
  for (int n : {4, 16, 64, 256, 1024, 4096}) {
    const long double r1 = cm_variance_eq10(0.5, 0.05, n).r1;
    CHECK(r1 > previous);
    previous = r1;
  }
  CHECK(previous > 1.0L);
  // The fixed point of g_u(y) = alpha(u) y + beta(u) is 2 c delta (1 - u)^2 / u (Eq. 13).
  for (long double u : {0.01L, 0.1L, 0.5L, 0.9L}) {
    const long double c = 0.5L, delta = 0.05L;
    const long double alpha = (1 - u) * (1 - u) * c * c / S_ref(u, c);
    const long double beta = 2 * c * delta * u * (1 - u) * (1 - u) / S_ref(u, c);
    CHECK(std::abs(beta / (1 - alpha) - 2 * c * delta * (1 - u) * (1 - u) / u) <= 1e-15L * (1 + 1 / u));
  }
}

TEST_CASE("flow_map_sampling_variance is the product of A(t_k, t_{k-1})^2", "[gaussian][recursion][cpu]") {
  struct setting {
    double c, delta;
    std::size_t n;
  };
  for (const setting& p : {setting{0.5, 0.05, 1}, setting{0.5, 0.05, 3}, setting{0.5, 0.05, 1024},
                           setting{0.5, 0.1, 16}, setting{2.0, 0.3, 100}, setting{1.0, 0.0, 8}}) {
    const auto grid = ayf::time_grid::uniform(p.n);
    const double library = ayf::flow_map_sampling_variance(g::perturbed_flow_map{p.c, p.delta}, grid);
    INFO("c " << p.c << " delta " << p.delta << " N " << p.n);
    CHECK(rel_close(library, flow_map_product(grid, p.c, p.delta), 1e-12));
    // On the uniform grid the sqrt(S) factors telescope: Sigma_N = c (1 + delta / N)^N.
    const long double closed = p.c * std::pow(1 + static_cast<long double>(p.delta) / p.n, static_cast<long double>(p.n));
    CHECK(rel_close(library, closed * closed, 1e-12));
  }
  const auto karras = ayf::time_grid::karras(16);
  CHECK(rel_close(ayf::flow_map_sampling_variance(g::perturbed_flow_map{0.5, 0.1}, karras),
                  flow_map_product(karras, 0.5, 0.1), 1e-12));
}

TEST_CASE("spec section 3.6: the flow map does not degrade with N, the CM does", "[gaussian][recursion][cpu]") {
  // delta = 0.05: the flow map's W2 approaches c (e^delta - 1) ~ 0.0256 for large N.
  const double c = 0.5;
  for (std::size_t n : {64u, 256u, 1024u, 4096u}) {
    const double w2 = flow_map_w2(c, 0.05, n);
    INFO("N " << n << " W2 " << w2);
    CHECK(std::abs(w2 - 0.0256) <= 0.5e-4);
    CHECK(std::abs(w2 - c * std::expm1(0.05)) <= c * std::exp(0.05) * 0.05 * 0.05 / static_cast<double>(n));
  }
  // delta = 0.1: CM W2 is smallest at N = 2 and strictly increasing from N = 3; the flow map's
  // stays within 10% of its N = 1 value.
  const std::vector<std::size_t> steps{1, 2, 3, 4, 8, 16, 64, 256, 1024};
  const double cm2 = cm_w2(c, 0.1, 2), fm1 = flow_map_w2(c, 0.1, 1);
  for (std::size_t i = 0; i < steps.size(); ++i) {
    INFO("N " << steps[i]);
    if (steps[i] != 2) CHECK(cm_w2(c, 0.1, steps[i]) > cm2);
    if (i >= 3) CHECK(cm_w2(c, 0.1, steps[i]) > cm_w2(c, 0.1, steps[i - 1]));
    CHECK(std::abs(flow_map_w2(c, 0.1, steps[i]) - fm1) <= 0.1 * fm1);
  }
  CHECK(cm_w2(c, 0.1, 1024) > 5 * flow_map_w2(c, 0.1, 1024));
}

TEST_CASE("gamma_sampling_variance: the exact flow map keeps S(t) for every gamma; a sigma-space recursion agrees",
          "[gaussian][recursion][gamma][cpu]") {
  const double c = 0.5;
  const std::vector<ayf::time_grid> grids{ayf::time_grid::uniform(1), ayf::time_grid::uniform(4),
                                          ayf::time_grid::uniform(8, 1.0, 0.3), ayf::time_grid::uniform(64),
                                          ayf::time_grid::karras(12), ayf::time_grid({1.0, 0.9, 0.45, 0.44, 0.1})};
  for (const auto& grid : grids) {
    for (double gamma : {0.0, 0.25, 0.5, 0.8, 0.9, 1.0}) {
      INFO("steps " << grid.steps() << " back " << grid.back() << " gamma " << gamma);
      const double v = ayf::gamma_sampling_variance(g::perturbed_flow_map{c, 0.0}, grid, gamma);
      // Starting from S(1) = 1 at t = 1; karras starts below 1, so start it from S(front).
      const double v0 = static_cast<double>(S_ref(grid.front(), c));
      const double from_front = ayf::gamma_sampling_variance(g::perturbed_flow_map{c, 0.0}, grid, gamma, v0);
      CHECK(std::abs(from_front - static_cast<double>(S_ref(grid.back(), c))) <= 1e-12);
      if (grid.front() == 1.0) CHECK(std::abs(v - static_cast<double>(S_ref(grid.back(), c))) <= 1e-12);
      // A perturbed map: compare with the recursion written above (s' in sigma-space).
      const double perturbed = ayf::gamma_sampling_variance(g::perturbed_flow_map{c, 0.2}, grid, gamma);
      CHECK(rel_close(perturbed, gamma_recursion(grid, c, 0.2, gamma), 1e-12));
    }
    // gamma = 0 is deterministic flow-map sampling; gamma = 1 is the CM recursion with a(t) = A(t, 0).
    const g::perturbed_flow_map A{c, 0.2};
    CHECK(ayf::gamma_sampling_variance(A, grid, 0.0) == ayf::flow_map_sampling_variance(A, grid));
    CHECK(rel_close(ayf::gamma_sampling_variance(A, grid, 1.0),
                    ayf::consistency_sampling_variance([&](double t) { return A(t, 0.0); }, grid), 1e-14));
  }
}

TEMPLATE_TEST_CASE("Monte Carlo runs of the samplers match the variance recursions", "[gaussian][monte_carlo][cpu]",
                   ayf::eigen_backend<double>, ayf::xtensor_backend<double>) {
  using B = TestType;
  const std::size_t n = 400000;
  const double c = 0.5, delta = 0.2;
  // The output of every sampler here is Gaussian (linear maps plus Gaussian noise); the sample
  // variance of n draws then has relative standard deviation sqrt(2 / (n - 1)). Bound: 5 sigma.
  const double rel_sd = std::sqrt(2.0 / static_cast<double>(n - 1));
  const auto check = [&](const char* what, std::size_t steps, typename B::context& ctx, const typename B::tensor& x,
                         double expected_variance) {
    const double v = sample_variance<B>(ctx, x);
    const double z = std::abs(v / expected_variance - 1) / rel_sd;
    INFO(what << " N " << steps << " sample variance " << v << " recursion " << expected_variance << " z " << z);
    CHECK(z < 5);
    // The W2 sample estimate: |W2_hat - W2| <= |mean_hat| + |sd_hat - sd|, with standard deviations
    // sd / sqrt(n) and about sd / sqrt(2 n).
    const double sd = std::sqrt(expected_variance);
    const double w2_hat = ayf::w2_sample_estimate_isotropic<B>(ctx, x, c);
    const double w2 = ayf::w2_isotropic(c, sd, 1);
    CHECK(std::abs(w2_hat - w2) <= 5 * sd * (1 / std::sqrt(double(n)) + 1 / std::sqrt(2.0 * double(n))));
  };
  for (std::size_t steps : {1u, 2u, 4u, 16u}) {
    const auto grid = ayf::time_grid::uniform(steps);
    {
      typename B::context ctx(1000 + steps);
      auto x = B::make(ctx, shape(n, 1));
      B::randn(ctx, x);
      auto cm = ayf::gaussian_perturbed_consistency_model<B>(c, delta);
      ayf::consistency_multistep_sample<B>(ctx, cm, x, grid);
      check("CM multistep", steps, ctx, x,
            ayf::consistency_sampling_variance(g::perturbed_consistency{c, delta}, grid));
    }
    if (steps == 1 || steps == 16) {
      typename B::context ctx(2000 + steps);
      auto x = B::make(ctx, shape(n, 1));
      B::randn(ctx, x);
      auto flow = ayf::gaussian_perturbed_flow_map<B>(c, delta);
      ayf::flow_map_sample<B>(ctx, flow, x, grid);
      check("flow map", steps, ctx, x, ayf::flow_map_sampling_variance(g::perturbed_flow_map{c, delta}, grid));
    }
    if (steps == 4) {
      typename B::context ctx(3000 + steps);
      auto x = B::make(ctx, shape(n, 1));
      B::randn(ctx, x);
      auto flow = ayf::gaussian_perturbed_flow_map<B>(c, delta);
      ayf::gamma_sample<B>(ctx, flow, x, grid, 0.6);
      check("gamma 0.6", steps, ctx, x, ayf::gamma_sampling_variance(g::perturbed_flow_map{c, delta}, grid, 0.6));
    }
  }
}
