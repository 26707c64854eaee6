// tests/test_samplers.cpp: the samplers of spec §9 on Gaussian data, where everything has a closed
// form. Euler / Heun against step loops written here and their order of accuracy (§9.4);
// gamma-sampling preserves the marginal variance S(t) (§9.2) and reduces to flow-map sampling
// (gamma = 0) and multistep CM sampling (gamma = 1) draw for draw; every sampler gives bitwise the
// same result on Eigen and xtensor; network-evaluation counts (§9.4 - 9.5); observers; argument
// errors; and no allocation inside the step loop.
//
// Allocations are counted per thread by the replaced global operator new and the wrapped malloc family
// (support/allocation_counter.cpp); see "no allocation inside the step loop" below.
#include <algorithm>
#include <array>
#include <cmath>
#include <cstddef>
#include <cstdlib>
#include <new>
#include <set>
#include <type_traits>
#include <vector>

#include <catch2/catch.hpp>

#include "ayf/analysis/gaussian.hpp"
#include "ayf/analysis/linear_models.hpp"
#include "ayf/analysis/recursions.hpp"
#include "ayf/backends/eigen/backend.hpp"
#include "ayf/backends/xtensor/backend.hpp"
#include "ayf/core/error.hpp"
#include "ayf/flow_map/parametrization.hpp"
#include "ayf/guidance/guidance.hpp"
#include "ayf/paths/time_grid.hpp"
#include "ayf/samplers/consistency.hpp"
#include "ayf/samplers/flow_map.hpp"
#include "ayf/samplers/ode.hpp"
#include "support/allocation_counter.hpp"
#include "support/tolerance.hpp"

namespace {

using ayf::shape;
using Catch::Contains;
using tol = ayf_test::tolerance<double>;

#define AYF_BACKENDS ayf::eigen_backend<double>, ayf::xtensor_backend<double>

double S(double t, double c) { return (1 - t) * (1 - t) * c * c + t * t; }
double k_of(double t, double c) { return (t - c * c * (1 - t)) / S(t, c); }

template <class B>
typename B::tensor randn(typename B::context& ctx, const shape& sh) {
  auto x = B::make(ctx, sh);
  B::randn(ctx, x);
  return x;
}

/// Least-squares slope of log(err) against log(h).
double log_log_slope(const std::vector<double>& h, const std::vector<double>& err) {
  double mx = 0, my = 0;
  for (std::size_t i = 0; i < h.size(); ++i) {
    mx += std::log(h[i]);
    my += std::log(err[i]);
  }
  mx /= static_cast<double>(h.size());
  my /= static_cast<double>(h.size());
  double sxy = 0, sxx = 0;
  for (std::size_t i = 0; i < h.size(); ++i) {
    sxy += (std::log(h[i]) - mx) * (std::log(err[i]) - my);
    sxx += (std::log(h[i]) - mx) * (std::log(h[i]) - mx);
  }
  return sxy / sxx;
}

/// Counts evaluations of any model kind it wraps (velocity field, flow map, consistency model).
template <class B, class Inner>
struct counting {
  Inner inner;
  int calls = 0;
  void operator()(typename B::context& ctx, const typename B::tensor& x, const typename B::tensor& t,
                  const ayf::condition<B>& cond, typename B::tensor& out) {
    ++calls;
    inner(ctx, x, t, cond, out);
  }
  void map(typename B::context& ctx, const typename B::tensor& x, const typename B::tensor& t,
           const typename B::tensor& s, const ayf::condition<B>& cond, typename B::tensor& out) {
    ++calls;
    inner.map(ctx, x, t, s, cond, out);
  }
  void denoise(typename B::context& ctx, const typename B::tensor& x, const typename B::tensor& t,
               const ayf::condition<B>& cond, typename B::tensor& out) {
    ++calls;
    inner.denoise(ctx, x, t, cond, out);
  }
};

/// Records the observer calls of a sampler.
struct step_log {
  std::vector<ayf::step_info> steps;
  template <class Tensor>
  void operator()(const ayf::step_info& step, const Tensor& /*x*/) { steps.push_back(step); }
};

void check_steps(const step_log& log, const ayf::time_grid& grid) {
  REQUIRE(log.steps.size() == grid.steps());
  for (std::size_t k = 0; k < grid.steps(); ++k) {
    CHECK(log.steps[k].index == k);
    CHECK(log.steps[k].t_from == grid[k]);
    CHECK(log.steps[k].t_to == grid[k + 1]);
  }
}

}  // namespace

// ---- ODE solvers --------------------------------------------------------------------------------

TEMPLATE_TEST_CASE("Euler and Heun match step loops written here and have orders 1 and 2 on the Gaussian PF-ODE",
                   "[samplers][ode][cpu]", AYF_BACKENDS) {
  using B = TestType;
  typename B::context ctx(41);
  const double c = 0.5;
  const auto x1 = randn<B>(ctx, shape(16, 3));
  const auto h1 = B::to_host(ctx, x1);
  auto v = ayf::gaussian_optimal_velocity<B>(c);

  std::vector<double> h, euler_err, heun_err;
  for (std::size_t n : {8u, 16u, 32u, 64u, 128u, 256u}) {
    const auto grid = ayf::time_grid::uniform(n);
    // The step loops of spec §9.4 on the scalar multiplier of x (the ODE is linear), in long double.
    long double e = 1, hn = 1;
    for (std::size_t i = 0; i < n; ++i) {
      const long double t = grid[i], tn = grid[i + 1], dt = tn - t;
      e += dt * k_of(grid[i], c) * e;
      const long double d = k_of(grid[i], c) * hn;
      if (tn > 0) {
        const long double predicted = hn + dt * d;
        hn += 0.5L * dt * (d + k_of(grid[i + 1], c) * predicted);
      } else {
        hn += dt * d;
      }
    }
    auto xe = x1, xh = x1;
    ayf::euler_sample<B>(ctx, v, xe, grid);
    ayf::heun_sample<B>(ctx, v, xh, grid);
    const auto he = B::to_host(ctx, xe), hh = B::to_host(ctx, xh);
    double ee = 0, eh = 0;
    for (std::size_t q = 0; q < h1.size(); ++q) {
      CHECK(std::abs(he[q] - static_cast<double>(e) * h1[q]) <= 1e-13 * std::abs(h1[q]));
      CHECK(std::abs(hh[q] - static_cast<double>(hn) * h1[q]) <= 1e-13 * std::abs(h1[q]));
      // The exact end point: f*(x, 1, 0) = sqrt(S(0) / S(1)) x = c x.
      ee = std::max(ee, std::abs(he[q] - c * h1[q]));
      eh = std::max(eh, std::abs(hh[q] - c * h1[q]));
    }
    h.push_back(1.0 / static_cast<double>(n));
    euler_err.push_back(ee);
    heun_err.push_back(eh);
  }
  const double euler_slope = log_log_slope(h, euler_err), heun_slope = log_log_slope(h, heun_err);
  CAPTURE(euler_slope, heun_slope, euler_err, heun_err);
  CHECK(euler_slope >= 0.9);
  CHECK(euler_slope <= 1.1);
  CHECK(heun_slope >= 1.8);
  CHECK(heun_slope <= 2.2);
  CHECK(heun_err.back() < 0.01 * euler_err.back());
}

TEMPLATE_TEST_CASE("the Euler flow map of a velocity field under flow_map_sample is euler_sample",
                   "[samplers][ode][flow_map][cpu]", AYF_BACKENDS) {
  using B = TestType;
  typename B::context ctx(42);
  const auto x = randn<B>(ctx, shape(32, 4));
  for (const auto& grid : {ayf::time_grid::uniform(7), ayf::time_grid::karras(9)}) {
    auto xa = x, xb = x;
    auto v = ayf::gaussian_optimal_velocity<B>(0.6);
    ayf::euler_sample<B>(ctx, v, xa, grid);
    auto flow = ayf::velocity_as_flow_map<B>(ayf::gaussian_optimal_velocity<B>(0.6));
    ayf::flow_map_sample<B>(ctx, flow, xb, grid);
    // Both compute 1 * x + (t_next - t) v(x, t) with the same kernel: bit for bit.
    CHECK(B::to_host(ctx, xa) == B::to_host(ctx, xb));
  }
}

TEMPLATE_TEST_CASE("samplers cost N evaluations (Heun 2N - 1: 63 on EDM's 32-point grid) and observe every step",
                   "[samplers][cpu]", AYF_BACKENDS) {
  using B = TestType;
  typename B::context ctx(43);
  const auto x0 = randn<B>(ctx, shape(4, 2));
  using velocity = decltype(ayf::gaussian_optimal_velocity<B>(0.5));
  using flow = decltype(ayf::gaussian_perturbed_flow_map<B>(0.5, 0.1));
  using cm = decltype(ayf::gaussian_perturbed_consistency_model<B>(0.5, 0.1));

  for (const auto& grid : {ayf::time_grid::karras(32), ayf::time_grid::uniform(5), ayf::time_grid({1.0, 0.6, 0.2})}) {
    const std::size_t n = grid.steps();
    INFO("steps " << n << " back " << grid.back());
    {
      counting<B, velocity> v{ayf::gaussian_optimal_velocity<B>(0.5)};
      step_log log;
      auto x = x0;
      ayf::euler_sample<B>(ctx, v, x, grid, {}, log);
      CHECK(v.calls == static_cast<int>(n));
      check_steps(log, grid);
    }
    {
      counting<B, velocity> v{ayf::gaussian_optimal_velocity<B>(0.5)};
      step_log log;
      auto x = x0;
      ayf::heun_sample<B>(ctx, v, x, grid, {}, log);
      // EDM's Heun: 2 NFE per step, 1 on the final step to t = 0.
      CHECK(v.calls == static_cast<int>(grid.back() == 0.0 ? 2 * n - 1 : 2 * n));
      if (n == 32) CHECK(v.calls == 63);  // spec §9.4: EDM2's 32-point schedule costs 63 NFE
      check_steps(log, grid);
    }
    {
      counting<B, flow> f{ayf::gaussian_perturbed_flow_map<B>(0.5, 0.1)};
      step_log log;
      auto x = x0;
      ayf::flow_map_sample<B>(ctx, f, x, grid, {}, log);
      CHECK(f.calls == static_cast<int>(n));
      check_steps(log, grid);
    }
    {
      counting<B, flow> f{ayf::gaussian_perturbed_flow_map<B>(0.5, 0.1)};
      step_log log;
      auto x = x0;
      ayf::gamma_sample<B>(ctx, f, x, grid, 0.7, {}, log);
      CHECK(f.calls == static_cast<int>(n));
      check_steps(log, grid);
    }
    {
      counting<B, cm> m{ayf::gaussian_perturbed_consistency_model<B>(0.5, 0.1)};
      step_log log;
      auto x = x0;
      ayf::consistency_multistep_sample<B>(ctx, m, x, grid, {}, log);
      CHECK(m.calls == static_cast<int>(n));
      check_steps(log, grid);
    }
  }
}

// ---- gamma-sampling -------------------------------------------------------------------------------

TEMPLATE_TEST_CASE("gamma-sampling with the exact flow map keeps the marginal variance S(t) at every grid point",
                   "[samplers][gamma][cpu]", AYF_BACKENDS) {
  using B = TestType;
  const double c = 0.5;
  const std::size_t n = 200000;
  const auto grid = ayf::time_grid::uniform(8);
  // Sample variance of n Gaussian draws: relative standard deviation sqrt(2 / (n - 1)).
  const double rel_sd = std::sqrt(2.0 / static_cast<double>(n - 1));
  for (double gamma : {0.0, 0.5, 1.0}) {
    typename B::context ctx(44);
    auto x = randn<B>(ctx, shape(n, 1));
    auto flow = ayf::gaussian_perturbed_flow_map<B>(c, 0.0);
    std::vector<double> t_to, variance;
    auto observer = [&](const ayf::step_info& step, const typename B::tensor& state) {
      const auto h = B::to_host(ctx, state);
      long double mean = 0, ss = 0;
      for (double v : h) mean += v;
      mean /= static_cast<long double>(h.size());
      for (double v : h) ss += (v - mean) * (v - mean);
      t_to.push_back(step.t_to);
      variance.push_back(static_cast<double>(ss / static_cast<long double>(h.size() - 1)));
    };
    ayf::gamma_sample<B>(ctx, flow, x, grid, gamma, {}, observer);
    REQUIRE(t_to.size() == grid.steps());
    for (std::size_t k = 0; k < t_to.size(); ++k) {
      const double expected = S(t_to[k], c);
      const double z = std::abs(variance[k] / expected - 1) / rel_sd;
      INFO("gamma " << gamma << " t " << t_to[k] << " variance " << variance[k] << " S(t) " << expected << " z " << z);
      CHECK(t_to[k] == grid[k + 1]);
      CHECK(z < 5);
    }
    // The recursion says the same, exactly.
    CHECK(std::abs(ayf::gamma_sampling_variance(ayf::gaussian::perturbed_flow_map{c, 0.0}, grid, gamma) - c * c) <= 1e-12);
  }
}

TEMPLATE_TEST_CASE("gamma = 1 is multistep CM sampling and gamma = 0 is flow-map sampling, draw for draw",
                   "[samplers][gamma][cpu]", AYF_BACKENDS) {
  using B = TestType;
  const auto record = [](typename B::context& ctx, std::vector<std::vector<double>>& out) {
    return [&ctx, &out](const ayf::step_info&, const typename B::tensor& x) { out.push_back(B::to_host(ctx, x)); };
  };
  for (const auto& grid : {ayf::time_grid::uniform(6), ayf::time_grid::karras(7), ayf::time_grid({1.0, 0.6, 0.3, 0.1})}) {
    INFO("steps " << grid.steps() << " back " << grid.back());
    for (double delta : {0.0, 0.15}) {
      typename B::context ctx_a(45), ctx_b(45);
      auto xa = randn<B>(ctx_a, shape(64, 3));
      auto xb = randn<B>(ctx_b, shape(64, 3));
      auto flow_a = ayf::gaussian_perturbed_flow_map<B>(0.5, delta);
      auto flow_b = ayf::gaussian_perturbed_flow_map<B>(0.5, delta);
      std::vector<std::vector<double>> path_a, path_b;

      ayf::gamma_sample<B>(ctx_a, flow_a, xa, grid, 1.0, {}, record(ctx_a, path_a));
      auto cm = ayf::as_consistency_model<B>(flow_b);
      ayf::consistency_multistep_sample<B>(ctx_b, cm, xb, grid, {}, record(ctx_b, path_b));
      CHECK(B::to_host(ctx_a, xa) == B::to_host(ctx_b, xb));
      CHECK(path_a == path_b);
      CHECK(ctx_a.rng.offset == ctx_b.rng.offset);  // the same draws were taken

      path_a.clear();
      path_b.clear();
      const auto offset_before = ctx_a.rng.offset;
      ayf::gamma_sample<B>(ctx_a, flow_a, xa, grid, 0.0, {}, record(ctx_a, path_a));
      ayf::flow_map_sample<B>(ctx_b, flow_b, xb, grid, {}, record(ctx_b, path_b));
      CHECK(B::to_host(ctx_a, xa) == B::to_host(ctx_b, xb));
      CHECK(path_a == path_b);
      CHECK(ctx_a.rng.offset == offset_before);  // gamma = 0 draws no noise
    }
  }
}

// ---- backends agree -------------------------------------------------------------------------------

TEST_CASE("every sampler gives bitwise the same samples on Eigen and xtensor for the same seed",
          "[samplers][backends][cpu]") {
  using E = ayf::eigen_backend<double>;
  using X = ayf::xtensor_backend<double>;
  // 2048 x 64 = 131072 elements: above the Eigen backend's oneTBB threshold, so its loops run in parallel.
  const shape sh(2048, 64);
  const auto grid = ayf::time_grid::uniform(6);
  const double c = 0.5, delta = 0.1;
  E::context ectx(46);
  X::context xctx(46);
  auto xe0 = randn<E>(ectx, sh);
  auto xx0 = randn<X>(xctx, sh);
  REQUIRE(E::to_host(ectx, xe0) == X::to_host(xctx, xx0));
  auto lambda_e = E::make(ectx, shape::vector(sh.rows));
  auto lambda_x = X::make(xctx, shape::vector(sh.rows));
  E::rand_uniform(ectx, lambda_e);
  X::rand_uniform(xctx, lambda_x);

  const auto same = [&](const char* what, const E::tensor& a, const X::tensor& b) {
    INFO(what);
    const auto ha = E::to_host(ectx, a), hb = X::to_host(xctx, b);
    CHECK(ha == hb);
    CHECK(ectx.rng.offset == xctx.rng.offset);
  };
  {
    auto ve = ayf::gaussian_optimal_velocity<E>(c);
    auto vx = ayf::gaussian_optimal_velocity<X>(c);
    auto xe = xe0;
    auto xx = xx0;
    ayf::euler_sample<E>(ectx, ve, xe, grid);
    ayf::euler_sample<X>(xctx, vx, xx, grid);
    same("euler", xe, xx);
    xe = xe0;
    xx = xx0;
    ayf::heun_sample<E>(ectx, ve, xe, ayf::time_grid::karras(8));
    ayf::heun_sample<X>(xctx, vx, xx, ayf::time_grid::karras(8));
    same("heun", xe, xx);
  }
  {
    // Autoguided teacher with a per-sample guidance scale, under Euler.
    auto ge = ayf::make_autoguided_velocity<E>(ayf::gaussian_optimal_velocity<E>(c), ayf::gaussian_optimal_velocity<E>(0.8));
    auto gx = ayf::make_autoguided_velocity<X>(ayf::gaussian_optimal_velocity<X>(c), ayf::gaussian_optimal_velocity<X>(0.8));
    auto xe = xe0;
    auto xx = xx0;
    ayf::euler_sample<E>(ectx, ge, xe, grid, ayf::condition<E>{nullptr, &lambda_e});
    ayf::euler_sample<X>(xctx, gx, xx, grid, ayf::condition<X>{nullptr, &lambda_x});
    same("autoguided euler", xe, xx);
  }
  {
    auto fe = ayf::gaussian_perturbed_flow_map<E>(c, delta);
    auto fx = ayf::gaussian_perturbed_flow_map<X>(c, delta);
    auto xe = xe0;
    auto xx = xx0;
    ayf::flow_map_sample<E>(ectx, fe, xe, grid);
    ayf::flow_map_sample<X>(xctx, fx, xx, grid);
    same("flow map", xe, xx);
    auto ee = ayf::make_euler_flow_map<E>(fe);
    auto ex = ayf::make_euler_flow_map<X>(fx);
    xe = xe0;
    xx = xx0;
    ayf::flow_map_sample<E>(ectx, ee, xe, grid);
    ayf::flow_map_sample<X>(xctx, ex, xx, grid);
    same("Euler-parametrized flow map", xe, xx);
    xe = xe0;
    xx = xx0;
    ayf::gamma_sample<E>(ectx, fe, xe, grid, 0.7);
    ayf::gamma_sample<X>(xctx, fx, xx, grid, 0.7);
    same("gamma 0.7", xe, xx);
  }
  {
    auto me = ayf::gaussian_perturbed_consistency_model<E>(c, delta);
    auto mx = ayf::gaussian_perturbed_consistency_model<X>(c, delta);
    auto xe = xe0;
    auto xx = xx0;
    ayf::consistency_multistep_sample<E>(ectx, me, xe, grid);
    ayf::consistency_multistep_sample<X>(xctx, mx, xx, grid);
    same("consistency multistep", xe, xx);
  }
}

// ---- argument errors ------------------------------------------------------------------------------

TEMPLATE_TEST_CASE("samplers reject a wrong-size conditioning, an empty state and gamma outside [0, 1]",
                   "[samplers][errors][cpu]", AYF_BACKENDS) {
  using B = TestType;
  typename B::context ctx(47);
  auto x = randn<B>(ctx, shape(4, 3));
  const auto grid = ayf::time_grid::uniform(3);
  const auto bad_guidance = B::from_host(ctx, {2.0, 2.0, 2.0}, shape::vector(3));
  const auto bad_labels = B::from_host(ctx, std::vector<double>(8, 1.0), shape(4, 2));
  const ayf::condition<B> wrong_guidance{nullptr, &bad_guidance}, wrong_labels{&bad_labels, nullptr};
  auto v = ayf::gaussian_optimal_velocity<B>(0.5);
  auto flow = ayf::gaussian_perturbed_flow_map<B>(0.5, 0.1);
  auto cm = ayf::gaussian_perturbed_consistency_model<B>(0.5, 0.1);
  // Catch matchers combine by reference: keep the parts alive, combine them in each assertion.
  const auto names_guidance = Contains("'cond.guidance'"), expected_shape = Contains("[4, 1]"),
             received_shape = Contains("[3, 1]");

  REQUIRE_THROWS_AS(ayf::euler_sample<B>(ctx, v, x, grid, wrong_guidance), ayf::error);
  REQUIRE_THROWS_WITH(ayf::euler_sample<B>(ctx, v, x, grid, wrong_guidance), Contains("euler_sample") && names_guidance && expected_shape && received_shape);
  REQUIRE_THROWS_WITH(ayf::heun_sample<B>(ctx, v, x, grid, wrong_guidance), Contains("heun_sample") && names_guidance && expected_shape && received_shape);
  REQUIRE_THROWS_WITH(ayf::flow_map_sample<B>(ctx, flow, x, grid, wrong_guidance), Contains("flow_map_sample") && names_guidance && expected_shape && received_shape);
  REQUIRE_THROWS_WITH(ayf::gamma_sample<B>(ctx, flow, x, grid, 0.5, wrong_guidance), Contains("gamma_sample") && names_guidance && expected_shape && received_shape);
  REQUIRE_THROWS_WITH(ayf::consistency_multistep_sample<B>(ctx, cm, x, grid, wrong_guidance),
                      Contains("consistency_multistep_sample") && names_guidance && expected_shape && received_shape);
  REQUIRE_THROWS_WITH(ayf::euler_sample<B>(ctx, v, x, grid, wrong_labels), Contains("'cond.labels'") && Contains("[4, 2]"));
  REQUIRE_THROWS_WITH(ayf::flow_map_sample<B>(ctx, flow, x, grid, wrong_labels), Contains("'cond.labels'"));

  auto empty = B::make(ctx, shape(0, 3));
  REQUIRE_THROWS_WITH(ayf::euler_sample<B>(ctx, v, empty, grid), Contains("'x'") && Contains("non-empty"));
  REQUIRE_THROWS_WITH(ayf::flow_map_sample<B>(ctx, flow, empty, grid), Contains("'x'"));
  REQUIRE_THROWS_WITH(ayf::consistency_multistep_sample<B>(ctx, cm, empty, grid), Contains("'x'"));

  REQUIRE_THROWS_AS(ayf::gamma_sample<B>(ctx, flow, x, grid, 1.5), ayf::error);
  REQUIRE_THROWS_WITH(ayf::gamma_sample<B>(ctx, flow, x, grid, 1.5), Contains("'gamma'") && Contains("[0, 1]") && Contains("1.5"));
  REQUIRE_THROWS_WITH(ayf::gamma_sample<B>(ctx, flow, x, grid, -0.2), Contains("'gamma'") && Contains("-0.2"));
  REQUIRE_THROWS_WITH(ayf::gamma_sampling_variance(ayf::gaussian::perturbed_flow_map{0.5, 0.0}, grid, 2.0), Contains("'gamma'"));
  REQUIRE_THROWS_WITH(ayf::w2_isotropic(-0.5, 1.0, 1), Contains("'c'"));
  REQUIRE_THROWS_WITH(ayf::w2_isotropic(0.5, -1.0, 1), Contains("'sigma'"));
  // A failed call left the state alone.
  const auto before = B::to_host(ctx, x);
  CHECK_THROWS(ayf::gamma_sample<B>(ctx, flow, x, grid, 1.5));
  CHECK(B::to_host(ctx, x) == before);
}

// ---- no allocation inside the step loop -----------------------------------------------------------
//
// Two complementary checks.
// (1) Data pointers, both backends: wrappers record the data pointers of the tensors every model
//     call receives and the observer records the state's. The state and the model outputs must
//     live in a fixed set of buffers over 20 steps (one for in-place samplers, two for the double
//     buffer of flow_map_sample). This proves no sampler replaces its state or workspaces with new
//     tensors step by step; it cannot see a temporary allocated and freed within a step (malloc
//     may hand back the same address).
// (2) Allocation counts, both backends: xt::xtensor storage comes from the global operator new and
//     Eigen's from malloc, both counted (support/allocation_counter.cpp; Eigen's only where the
//     linker wraps malloc), so every B::make, growing B::resize or tensor copy inside a step
//     increments the counter. The observer snapshots the counter after each step; the difference
//     between consecutive snapshots (steps 2..20) must be 0. The first step is excluded because the
//     models size their own workspaces lazily on their first call. A deliberately allocating model
//     checks that the counter does see allocations.

namespace {

constexpr std::size_t loop_steps = 20;

template <class B>
const void* data_of(const typename B::tensor& x) {
  return B::storage::data(x);
}

/// Pointer and allocation-count trace of one sampler run; fixed-size, so recording never allocates.
struct trace {
  std::array<const void*, 2 * loop_steps + 2> model_in{}, model_out{};
  std::array<const void*, loop_steps> state{};
  std::array<std::size_t, loop_steps> allocations{};
  std::size_t model_calls = 0, observer_calls = 0;

  void record_model(const void* in, const void* out) {
    if (model_calls < model_in.size()) {
      model_in[model_calls] = in;
      model_out[model_calls] = out;
    }
    ++model_calls;
  }
  /// The observer: after each step, the state's data pointer and this thread's allocation count.
  template <class B>
  auto observer() {
    return [this](const ayf::step_info& /*step*/, const typename B::tensor& x) {
      if (observer_calls < loop_steps) {
        state[observer_calls] = data_of<B>(x);
        allocations[observer_calls] = ayf_test_alloc::calls;
      }
      ++observer_calls;
    };
  }
  /// Allocations during steps 2..20 (between the first and the last observer call).
  [[nodiscard]] std::size_t allocations_after_first_step() const { return allocations.back() - allocations.front(); }
  [[nodiscard]] std::size_t steps_that_allocated() const {
    std::size_t count = 0;
    for (std::size_t k = 1; k < loop_steps; ++k) count += allocations[k] != allocations[k - 1] ? 1 : 0;
    return count;
  }
};

template <class It>
std::size_t distinct(It begin, It end) {
  return std::set<const void*>(begin, end).size();
}

/// Records the data pointers of x and out at every call of the model it wraps; with `allocate`,
/// also makes (and drops) a tensor per call: the negative control of the allocation counter.
template <class B, class Inner>
struct recording {
  Inner inner;
  trace* log = nullptr;
  bool allocate = false;

  void operator()(typename B::context& ctx, const typename B::tensor& x, const typename B::tensor& t,
                  const ayf::condition<B>& cond, typename B::tensor& out) {
    inner(ctx, x, t, cond, out);
    after(ctx, x, out);
  }
  void map(typename B::context& ctx, const typename B::tensor& x, const typename B::tensor& t,
           const typename B::tensor& s, const ayf::condition<B>& cond, typename B::tensor& out) {
    inner.map(ctx, x, t, s, cond, out);
    after(ctx, x, out);
  }
  void denoise(typename B::context& ctx, const typename B::tensor& x, const typename B::tensor& t,
               const ayf::condition<B>& cond, typename B::tensor& out) {
    inner.denoise(ctx, x, t, cond, out);
    after(ctx, x, out);
  }

private:
  void after(typename B::context& ctx, const typename B::tensor& x, const typename B::tensor& out) {
    log->record_model(data_of<B>(x), data_of<B>(out));
    if (allocate) {
      const auto scratch = B::make(ctx, B::shape_of(x));
      static_cast<void>(scratch);
    }
  }
};

template <class B>
using velocity_t = decltype(ayf::gaussian_optimal_velocity<B>(0.5));
template <class B>
using flow_t = decltype(ayf::gaussian_perturbed_flow_map<B>(0.5, 0.1));
template <class B>
using cm_t = decltype(ayf::gaussian_perturbed_consistency_model<B>(0.5, 0.1));

/// Runs one sampler for `loop_steps` steps with recording models; returns the trace.
/// which: 0 euler, 1 heun, 2 flow map, 3 gamma, 4 consistency multistep.
template <class B>
trace run_traced(int which, bool allocate) {
  typename B::context ctx(48);
  auto x = randn<B>(ctx, shape(64, 8));
  const auto grid = ayf::time_grid::uniform(loop_steps);
  trace log;
  switch (which) {
    case 0: {
      recording<B, velocity_t<B>> v{ayf::gaussian_optimal_velocity<B>(0.5), &log, allocate};
      ayf::euler_sample<B>(ctx, v, x, grid, {}, log.observer<B>());
      break;
    }
    case 1: {
      recording<B, velocity_t<B>> v{ayf::gaussian_optimal_velocity<B>(0.5), &log, allocate};
      ayf::heun_sample<B>(ctx, v, x, grid, {}, log.observer<B>());
      break;
    }
    case 2: {
      recording<B, flow_t<B>> f{ayf::gaussian_perturbed_flow_map<B>(0.5, 0.1), &log, allocate};
      ayf::flow_map_sample<B>(ctx, f, x, grid, {}, log.observer<B>());
      break;
    }
    case 3: {
      recording<B, flow_t<B>> f{ayf::gaussian_perturbed_flow_map<B>(0.5, 0.1), &log, allocate};
      ayf::gamma_sample<B>(ctx, f, x, grid, 0.5, {}, log.observer<B>());
      break;
    }
    default: {
      recording<B, cm_t<B>> m{ayf::gaussian_perturbed_consistency_model<B>(0.5, 0.1), &log, allocate};
      ayf::consistency_multistep_sample<B>(ctx, m, x, grid, {}, log.observer<B>());
      break;
    }
  }
  REQUIRE(log.observer_calls == loop_steps);
  return log;
}

const char* const sampler_names[] = {"euler_sample", "heun_sample", "flow_map_sample", "gamma_sample",
                                     "consistency_multistep_sample"};

}  // namespace

TEMPLATE_TEST_CASE("no allocation inside the step loop: state and model buffers stay fixed over 20 steps",
                   "[samplers][allocation][cpu]", AYF_BACKENDS) {
  using B = TestType;
  for (int which = 0; which < 5; ++which) {
    INFO(sampler_names[which]);
    const trace log = run_traced<B>(which, false);
    const std::size_t calls = std::min(log.model_calls, log.model_in.size());
    const auto in_begin = log.model_in.begin(), out_begin = log.model_out.begin();
    const std::size_t in = distinct(in_begin, in_begin + static_cast<std::ptrdiff_t>(calls));
    const std::size_t out = distinct(out_begin, out_begin + static_cast<std::ptrdiff_t>(calls));
    const std::size_t states = distinct(log.state.begin(), log.state.end());
    for (std::size_t k = 0; k < calls; ++k) CHECK(log.model_in[k] != log.model_out[k]);  // out never aliases x
    switch (which) {
      case 1:  // heun: the state and the predictor in, d and d_next out; the state updated in place
        CHECK(log.model_calls == 2 * loop_steps - 1);
        CHECK(in == 2);
        CHECK(out == 2);
        CHECK(states == 1);
        break;
      case 2: {  // flow map: a double buffer, the two swapping roles every step
        CHECK(log.model_calls == loop_steps);
        std::vector<const void*> both(in_begin, in_begin + static_cast<std::ptrdiff_t>(calls));
        both.insert(both.end(), out_begin, out_begin + static_cast<std::ptrdiff_t>(calls));
        CHECK(distinct(both.begin(), both.end()) == 2);
        CHECK(states == 2);
        for (std::size_t k = 1; k < loop_steps; ++k) CHECK(log.state[k] != log.state[k - 1]);
        break;
      }
      default:  // euler, gamma, consistency: one state updated in place, one output buffer
        CHECK(log.model_calls == loop_steps);
        CHECK(in == 1);
        CHECK(out == 1);
        CHECK(states == 1);
        CHECK(log.state[0] == log.model_in[0]);
        break;
    }
  }
}

TEMPLATE_TEST_CASE("no allocation inside the step loop: no heap allocation between observer calls",
                   "[samplers][allocation][cpu]", AYF_BACKENDS) {
  using B = TestType;
  if (std::is_same_v<B, ayf::eigen_backend<double>> && !ayf_test_alloc::counts_malloc()) {
    WARN("this linker does not wrap malloc: Eigen's tensor allocations are not counted");
    return;
  }
  for (int which = 0; which < 5; ++which) {
    INFO(sampler_names[which]);
    const trace quiet = run_traced<B>(which, false);
    CHECK(quiet.allocations_after_first_step() == 0);
    CHECK(quiet.steps_that_allocated() == 0);
    // Negative control: a model that makes one tensor per call is caught at every step.
    const trace noisy = run_traced<B>(which, true);
    CHECK(noisy.steps_that_allocated() == loop_steps - 1);
    CHECK(noisy.allocations_after_first_step() >= loop_steps - 1);
  }
}
