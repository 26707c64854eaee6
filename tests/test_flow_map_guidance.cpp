// tests/test_flow_map_guidance.cpp: flow-map parametrizations (spec §2) and guided velocity fields
// (spec §7). The boundary condition f(x, t, t) = x holds bit for bit; the Euler and skip/out flow
// maps, the consistency view and the Euler step of a velocity field match formulas written here;
// autoguidance, classifier-free guidance and weighted sums match combinations computed here from
// independent calls of the fields they combine; wrong arguments raise ayf::error naming them.
#include <array>
#include <cmath>
#include <cstddef>
#include <vector>

#include <catch2/catch.hpp>

#include "ayf/analysis/linear_models.hpp"
#include "ayf/backends/eigen/backend.hpp"
#include "ayf/backends/xtensor/backend.hpp"
#include "ayf/core/error.hpp"
#include "ayf/core/model.hpp"
#include "ayf/flow_map/parametrization.hpp"
#include "ayf/guidance/guidance.hpp"
#include "support/tolerance.hpp"

namespace {

using ayf::shape;
using Catch::Contains;
using tol = ayf_test::tolerance<double>;

constexpr std::size_t rows = 8, cols = 5;

/// Per-sample times including both ends of [0, 1].
const std::vector<double> t_values{0.0, 0.05, 0.2, 0.37, 0.5, 0.7, 0.93, 1.0};
/// Per-sample target times s < t where t > 0 (s = t - a bit), s = 0 where t = 0.
const std::vector<double> s_values{0.0, 0.0, 0.1, 0.3, 0.5, 0.2, 0.9, 0.0};

// Closed forms of spec §3.2 / §3.6, written independently of ayf/analysis.
double S(double t, double c) { return (1 - t) * (1 - t) * c * c + t * t; }
double k_of(double t, double c) { return (t - c * c * (1 - t)) / S(t, c); }
double A_of(double t, double s, double c, double delta) {
  return std::sqrt(S(s, c) / S(t, c)) * (1 + delta * (t - s));
}

template <class B>
typename B::tensor randn(typename B::context& ctx, const shape& sh) {
  auto x = B::make(ctx, sh);
  B::randn(ctx, x);
  return x;
}

template <class B>
typename B::tensor vec(typename B::context& ctx, const std::vector<double>& v) {
  return B::from_host(ctx, v, shape::vector(v.size()));
}

/// A nonlinear, label-dependent test velocity field evaluated on the host:
/// v(x, t, y) = a sin(x) + b t + y (y = 0 without labels). Records what conditioning it saw.
template <class B>
struct sine_field {
  double a = 1.0, b = 0.0;
  int calls = 0;
  bool saw_guidance = false;
  bool saw_labels = false;
  void operator()(typename B::context& ctx, const typename B::tensor& x, const typename B::tensor& t,
                  const ayf::condition<B>& cond, typename B::tensor& out) {
    ++calls;
    saw_guidance = saw_guidance || cond.guidance != nullptr;
    saw_labels = saw_labels || cond.labels != nullptr;
    const shape sh = B::shape_of(x);
    const auto hx = B::to_host(ctx, x), ht = B::to_host(ctx, t);
    const auto labels = cond.labels ? B::to_host(ctx, *cond.labels) : std::vector<double>(sh.rows, 0.0);
    std::vector<double> v(sh.size());
    for (std::size_t i = 0; i < sh.rows; ++i)
      for (std::size_t j = 0; j < sh.cols; ++j)
        v[i * sh.cols + j] = a * std::sin(hx[i * sh.cols + j]) + b * ht[i] + labels[i];
    out = B::from_host(ctx, v, sh);
  }
};

/// A nonlinear average-velocity model F(x, t, s) = a sin(x) + b t + 3 s (s-dependent), on the host.
template <class B>
struct sine_average {
  double a = 1.0, b = 0.0;
  void forward(typename B::context& ctx, const typename B::tensor& x, const typename B::tensor& t,
               const typename B::tensor& s, const ayf::condition<B>& /*cond*/, typename B::tensor& out) {
    const shape sh = B::shape_of(x);
    const auto hx = B::to_host(ctx, x), ht = B::to_host(ctx, t), hs = B::to_host(ctx, s);
    std::vector<double> v(sh.size());
    for (std::size_t i = 0; i < sh.rows; ++i)
      for (std::size_t j = 0; j < sh.cols; ++j)
        v[i * sh.cols + j] = a * std::sin(hx[i * sh.cols + j]) + b * ht[i] + 3 * hs[i];
    out = B::from_host(ctx, v, sh);
  }
};

/// The class-conditional test field for classifier-free guidance: v(x, t, y) = (y + 2)(1 + t) x;
/// the null class y = -1 gives (1 + t) x. Requires labels.
template <class B>
struct label_field {
  void operator()(typename B::context& ctx, const typename B::tensor& x, const typename B::tensor& t,
                  const ayf::condition<B>& cond, typename B::tensor& out) {
    REQUIRE(cond.labels != nullptr);
    const shape sh = B::shape_of(x);
    const auto hx = B::to_host(ctx, x), ht = B::to_host(ctx, t), hy = B::to_host(ctx, *cond.labels);
    std::vector<double> v(sh.size());
    for (std::size_t i = 0; i < sh.rows; ++i)
      for (std::size_t j = 0; j < sh.cols; ++j) v[i * sh.cols + j] = (hy[i] + 2) * (1 + ht[i]) * hx[i * sh.cols + j];
    out = B::from_host(ctx, v, sh);
  }
};

/// Host evaluation of a velocity field (a fresh call), for building references.
template <class B, class V>
std::vector<double> eval(typename B::context& ctx, V& v, const typename B::tensor& x,
                         const typename B::tensor& t, const ayf::condition<B>& cond = {}) {
  auto out = B::make(ctx, B::shape_of(x));
  v(ctx, x, t, cond, out);
  return B::to_host(ctx, out);
}

/// c_skip = 1 - (t - s)^2, c_out = (s - t)(1 + t s): a non-Euler parametrization with the boundary
/// values c_skip(t, t) = 1, c_out(t, t) = 0.
struct curved_coefficients {
  template <class T>
  T skip(T t, T s) const { return T(1) - (t - s) * (t - s); }
  template <class T>
  T out(T t, T s) const { return (s - t) * (T(1) + t * s); }
};

}  // namespace

#define AYF_BACKENDS ayf::eigen_backend<double>, ayf::xtensor_backend<double>

// ---- flow maps --------------------------------------------------------------------------------

TEMPLATE_TEST_CASE("every flow map satisfies the boundary condition f(x, t, t) = x bit for bit",
                   "[flow_map][cpu]", AYF_BACKENDS) {
  using B = TestType;
  typename B::context ctx(21);
  const auto x = randn<B>(ctx, shape(rows, cols));
  const auto hx = B::to_host(ctx, x);
  const auto t = vec<B>(ctx, t_values);
  const auto s_near = vec<B>(ctx, std::vector<double>{0.001, 0.051, 0.201, 0.371, 0.501, 0.701, 0.931, 0.999});
  auto out = B::make(ctx, shape(rows, cols));

  for (double delta : {0.0, 0.05, 0.3}) {
    INFO("delta " << delta);
    // The Euler flow map x + (s - t) F of the average-velocity model F = (1 - A) / (t - s) x.
    auto model = ayf::gaussian_perturbed_flow_map<B>(0.5, delta);
    auto euler = ayf::make_euler_flow_map<B>(model);
    euler.map(ctx, x, t, t, {}, out);
    CHECK(B::to_host(ctx, out) == hx);
    // ... and the perturbed flow map's own map A(t, s) x, with A(t, t) = 1.
    model.map(ctx, x, t, t, {}, out);
    CHECK(B::to_host(ctx, out) == hx);
    // s = t + 0.001 is not the boundary: these maps do move x there (the check above can fail).
    euler.map(ctx, x, t, s_near, {}, out);
    CHECK(B::to_host(ctx, out) != hx);
  }

  // The teacher's Euler step x + (s - t) v(x, t), from an rvalue and from an lvalue field.
  auto by_value = ayf::velocity_as_flow_map<B>(ayf::gaussian_optimal_velocity<B>(0.5));
  by_value.map(ctx, x, t, t, {}, out);
  CHECK(B::to_host(ctx, out) == hx);
  sine_field<B> field{1.5, 2.0};
  auto by_reference = ayf::velocity_as_flow_map<B>(field);
  by_reference.map(ctx, x, t, t, {}, out);
  CHECK(B::to_host(ctx, out) == hx);
  CHECK(field.calls == 1);  // held by reference: the caller's field was evaluated

  // A general skip/out parametrization with c_skip(t, t) = 1 and c_out(t, t) = 0.
  auto curved = ayf::skip_out_flow_map<B, sine_average<B>, curved_coefficients>(sine_average<B>{2.0, -1.0});
  curved.map(ctx, x, t, t, {}, out);
  CHECK(B::to_host(ctx, out) == hx);
}

TEMPLATE_TEST_CASE("the Euler flow map of the Gaussian average velocity is A(t, s) x",
                   "[flow_map][gaussian][cpu]", AYF_BACKENDS) {
  using B = TestType;
  typename B::context ctx(22);
  const double c = 0.5;
  const auto x = randn<B>(ctx, shape(rows, cols));
  const auto hx = B::to_host(ctx, x);
  const auto t = vec<B>(ctx, t_values), s = vec<B>(ctx, s_values);
  auto out = B::make(ctx, shape(rows, cols));
  auto average = B::make(ctx, shape(rows, cols));

  for (double delta : {0.0, 0.05, 0.3}) {
    INFO("delta " << delta);
    auto model = ayf::gaussian_perturbed_flow_map<B>(c, delta);
    model.forward(ctx, x, t, s, {}, average);
    const auto hF = B::to_host(ctx, average);
    model.map(ctx, x, t, s, {}, out);
    const auto hmap = B::to_host(ctx, out);
    auto euler = ayf::make_euler_flow_map<B>(model);
    euler.map(ctx, x, t, s, {}, out);
    const auto heuler = B::to_host(ctx, out);
    for (std::size_t i = 0; i < rows; ++i) {
      const double ti = t_values[i], si = s_values[i];
      const double a = A_of(ti, si, c, delta);
      // F = (1 - A) / (t - s), and its limit dA/ds|_{s=t} = k(t) - delta where s = t.
      const double f_coef = ti == si ? k_of(ti, c) - delta : (1 - a) / (ti - si);
      for (std::size_t j = 0; j < cols; ++j) {
        const std::size_t q = i * cols + j;
        INFO("t " << ti << " s " << si);
        CHECK(ayf_test::close<tol>(hmap[q], a * hx[q]));
        CHECK(std::abs(hF[q] - f_coef * hx[q]) <= 1e-12 * std::abs(hx[q]) * (1 + std::abs(f_coef)));
        // x + (s - t) F: the same map up to the rounding of 1 - A.
        CHECK(std::abs(heuler[q] - a * hx[q]) <= 1e-14 * std::abs(hx[q]));
      }
    }
  }
}

TEMPLATE_TEST_CASE("velocity_as_flow_map is the Euler step and skip/out maps use their coefficients",
                   "[flow_map][cpu]", AYF_BACKENDS) {
  using B = TestType;
  typename B::context ctx(23);
  const double c = 0.7;
  const auto x = randn<B>(ctx, shape(rows, cols));
  const auto hx = B::to_host(ctx, x);
  const auto t = vec<B>(ctx, t_values), s = vec<B>(ctx, s_values);
  auto out = B::make(ctx, shape(rows, cols));

  auto step = ayf::velocity_as_flow_map<B>(ayf::gaussian_optimal_velocity<B>(c));
  step.map(ctx, x, t, s, {}, out);
  const auto hstep = B::to_host(ctx, out);
  for (std::size_t i = 0; i < rows; ++i)
    for (std::size_t j = 0; j < cols; ++j) {
      const std::size_t q = i * cols + j;
      const double expected = hx[q] + (s_values[i] - t_values[i]) * k_of(t_values[i], c) * hx[q];
      CHECK(ayf_test::close<tol>(hstep[q], expected, std::abs(hx[q]) * (1 + std::abs(k_of(t_values[i], c)))));
    }

  sine_average<B> average{1.5, 0.5};
  auto hv_tensor = B::make(ctx, shape(rows, cols));
  average.forward(ctx, x, t, s, {}, hv_tensor);
  const auto hv = B::to_host(ctx, hv_tensor);
  auto curved = ayf::skip_out_flow_map<B, sine_average<B>&, curved_coefficients>(average);
  curved.map(ctx, x, t, s, {}, out);
  const auto hcurved = B::to_host(ctx, out);
  const curved_coefficients k;
  for (std::size_t i = 0; i < rows; ++i)
    for (std::size_t j = 0; j < cols; ++j) {
      const std::size_t q = i * cols + j;
      const double skip = k.skip(t_values[i], s_values[i]), c_out = k.out(t_values[i], s_values[i]);
      CHECK(ayf_test::close<tol>(hcurved[q], skip * hx[q] + c_out * hv[q],
                                 std::abs(skip * hx[q]) + std::abs(c_out * hv[q])));
    }
}

TEMPLATE_TEST_CASE("as_consistency_model(flow) denoises with the flow map to s = 0",
                   "[flow_map][cpu]", AYF_BACKENDS) {
  using B = TestType;
  typename B::context ctx(24);
  const double c = 0.5, delta = 0.1;
  const auto x = randn<B>(ctx, shape(rows, cols));
  const auto hx = B::to_host(ctx, x);
  const auto t = vec<B>(ctx, t_values);
  const auto zero = vec<B>(ctx, std::vector<double>(rows, 0.0));
  auto flow = ayf::gaussian_perturbed_flow_map<B>(c, delta);
  auto cm = ayf::as_consistency_model<B>(flow);
  static_assert(ayf::consistency_model<decltype(cm), B>);
  auto denoised = B::make(ctx, shape(rows, cols));
  auto mapped = B::make(ctx, shape(rows, cols));
  cm.denoise(ctx, x, t, {}, denoised);
  flow.map(ctx, x, t, zero, {}, mapped);
  const auto hd = B::to_host(ctx, denoised);
  CHECK(hd == B::to_host(ctx, mapped));
  for (std::size_t i = 0; i < rows; ++i)
    for (std::size_t j = 0; j < cols; ++j)
      CHECK(ayf_test::close<tol>(hd[i * cols + j], A_of(t_values[i], 0.0, c, delta) * hx[i * cols + j]));
  // t = 0 is the boundary: the consistency model returns x itself.
  for (std::size_t j = 0; j < cols; ++j) CHECK(hd[j] == hx[j]);
}

TEMPLATE_TEST_CASE("flow maps reject per-sample times of the wrong size", "[flow_map][errors][cpu]",
                   AYF_BACKENDS) {
  using B = TestType;
  typename B::context ctx(25);
  const auto x = randn<B>(ctx, shape(4, 3));
  const auto t_ok = vec<B>(ctx, {0.9, 0.8, 0.7, 0.6});
  const auto t_short = vec<B>(ctx, {0.9, 0.8, 0.7});
  const auto t_matrix = B::from_host(ctx, std::vector<double>(8, 0.5), shape(4, 2));
  auto out = B::make(ctx, shape(4, 3));

  auto euler = ayf::velocity_as_flow_map<B>(ayf::gaussian_optimal_velocity<B>(0.5));
  REQUIRE_THROWS_AS(euler.map(ctx, x, t_short, t_ok, {}, out), ayf::error);
  REQUIRE_THROWS_WITH(euler.map(ctx, x, t_short, t_ok, {}, out),
                      Contains("'t'") && Contains("[4, 1]") && Contains("[3, 1]"));
  REQUIRE_THROWS_WITH(euler.map(ctx, x, t_ok, t_matrix, {}, out), Contains("'s'") && Contains("[4, 2]"));

  auto linear = ayf::gaussian_perturbed_flow_map<B>(0.5, 0.1);
  REQUIRE_THROWS_WITH(linear.map(ctx, x, t_short, t_ok, {}, out), Contains("'t'") && Contains("[3, 1]"));
  REQUIRE_THROWS_WITH(linear.map(ctx, x, t_ok, t_short, {}, out), Contains("'s'"));
  REQUIRE_THROWS_WITH(linear.forward(ctx, x, t_ok, t_short, {}, out), Contains("'s'"));
  auto wrapped = ayf::make_euler_flow_map<B>(linear);
  REQUIRE_THROWS_WITH(wrapped.map(ctx, x, t_ok, t_short, {}, out), Contains("'s'"));

  auto v = ayf::gaussian_optimal_velocity<B>(0.5);
  REQUIRE_THROWS_WITH(v(ctx, x, t_short, {}, out), Contains("'t'"));
  auto cm = ayf::gaussian_perturbed_consistency_model<B>(0.5, 0.1);
  REQUIRE_THROWS_WITH(cm.denoise(ctx, x, t_short, {}, out), Contains("'t'"));
}

// ---- guidance ---------------------------------------------------------------------------------

TEMPLATE_TEST_CASE("autoguidance is lambda v + (1 - lambda) v_weak, per sample or by default",
                   "[guidance][cpu]", AYF_BACKENDS) {
  using B = TestType;
  typename B::context ctx(31);
  const auto x = randn<B>(ctx, shape(rows, cols));
  const auto t = vec<B>(ctx, t_values);
  const std::vector<double> labels_host{0, 1, 2, 3, 0, 1, 2, 3};
  const auto labels = vec<B>(ctx, labels_host);
  const std::vector<double> lambdas{1.0, 2.0, 0.0, -0.5, 1.7, 3.0, 2.5, 1.25};
  const auto lambda = vec<B>(ctx, lambdas);

  sine_field<B> strong_ref{1.0, 0.5}, weak_ref{0.6, -0.3};
  const auto vs = eval<B>(ctx, strong_ref, x, t, ayf::condition<B>{&labels, nullptr});
  const auto vw = eval<B>(ctx, weak_ref, x, t, ayf::condition<B>{&labels, nullptr});

  sine_field<B> strong{1.0, 0.5}, weak{0.6, -0.3};
  auto guided = ayf::make_autoguided_velocity<B>(strong, weak, 2.5);
  static_assert(ayf::velocity_field<decltype(guided), B>);
  CHECK(guided.default_lambda() == 2.5);
  auto out = B::make(ctx, shape(rows, cols));

  SECTION("per-sample lambda from cond.guidance") {
    guided(ctx, x, t, ayf::condition<B>{&labels, &lambda}, out);
    const auto h = B::to_host(ctx, out);
    for (std::size_t i = 0; i < rows; ++i)
      for (std::size_t j = 0; j < cols; ++j) {
        const std::size_t q = i * cols + j;
        const double l = lambdas[i];
        INFO("sample " << i << " lambda " << l);
        CHECK(ayf_test::close<tol>(h[q], l * vs[q] + (1 - l) * vw[q], std::abs(l * vs[q]) + std::abs((1 - l) * vw[q])));
        if (l == 1.0) CHECK(h[q] == vs[q]);  // lambda = 1 is the strong teacher exactly
        if (l == 0.0) CHECK(h[q] == vw[q]);
      }
    // The teachers saw the labels but not the guidance scale (it is the student's input only).
    CHECK(strong.saw_labels);
    CHECK(weak.saw_labels);
    CHECK_FALSE(strong.saw_guidance);
    CHECK_FALSE(weak.saw_guidance);
  }
  SECTION("the default lambda when cond.guidance is null") {
    guided(ctx, x, t, ayf::condition<B>{&labels, nullptr}, out);
    const auto h = B::to_host(ctx, out);
    for (std::size_t q = 0; q < h.size(); ++q)
      CHECK(ayf_test::close<tol>(h[q], 2.5 * vs[q] - 1.5 * vw[q], std::abs(2.5 * vs[q]) + std::abs(1.5 * vw[q])));
    auto default_guided = ayf::make_autoguided_velocity<B>(strong, weak);
    CHECK(default_guided.default_lambda() == 2.0);  // the paper's inference value (Tab. 3)
  }
  SECTION("lambda = 1 reproduces the strong field bit for bit") {
    auto unguided = ayf::make_autoguided_velocity<B>(strong, weak, 1.0);
    unguided(ctx, x, t, ayf::condition<B>{&labels, nullptr}, out);
    CHECK(B::to_host(ctx, out) == vs);
  }
  SECTION("a guidance vector of the wrong size is rejected") {
    const auto lambda_short = vec<B>(ctx, {1.0, 2.0});
    REQUIRE_THROWS_WITH(guided(ctx, x, t, ayf::condition<B>{&labels, &lambda_short}, out),
                        Contains("'cond.guidance'") && Contains("[2, 1]"));
  }
}

TEMPLATE_TEST_CASE("classifier-free guidance is w v(x, t, y) + (1 - w) v(x, t, null)",
                   "[guidance][cpu]", AYF_BACKENDS) {
  using B = TestType;
  typename B::context ctx(32);
  const auto x = randn<B>(ctx, shape(rows, cols));
  const auto hx = B::to_host(ctx, x);
  const auto t = vec<B>(ctx, t_values);
  const std::vector<double> labels_host{0, 1, 2, 3, 4, 0, 1, 2};
  const auto labels = vec<B>(ctx, labels_host);
  const std::vector<double> scales{1.0, 3.0, 0.0, 1.5, 2.0, 4.0, -1.0, 2.5};
  const auto scale = vec<B>(ctx, scales);

  auto cfg = ayf::make_classifier_free_guided_velocity<B>(label_field<B>{}, 3.0);
  static_assert(ayf::velocity_field<decltype(cfg), B>);
  auto out = B::make(ctx, shape(rows, cols));

  const auto reference = [&](std::size_t i, std::size_t j, double w) {
    const double xc = (labels_host[i] + 2) * (1 + t_values[i]) * hx[i * cols + j];
    const double xu = (-1.0 + 2) * (1 + t_values[i]) * hx[i * cols + j];  // the null class is label -1
    return std::array<double, 2>{w * xc + (1 - w) * xu, std::abs(w * xc) + std::abs((1 - w) * xu)};
  };
  cfg(ctx, x, t, ayf::condition<B>{&labels, &scale}, out);
  auto h = B::to_host(ctx, out);
  for (std::size_t i = 0; i < rows; ++i)
    for (std::size_t j = 0; j < cols; ++j) {
      const auto [expected, magnitude] = reference(i, j, scales[i]);
      INFO("sample " << i << " w " << scales[i]);
      CHECK(ayf_test::close<tol>(h[i * cols + j], expected, magnitude));
    }
  cfg(ctx, x, t, ayf::condition<B>{&labels, nullptr}, out);
  h = B::to_host(ctx, out);
  for (std::size_t i = 0; i < rows; ++i)
    for (std::size_t j = 0; j < cols; ++j) {
      const auto [expected, magnitude] = reference(i, j, 3.0);
      CHECK(ayf_test::close<tol>(h[i * cols + j], expected, magnitude));
    }

  REQUIRE_THROWS_AS(cfg(ctx, x, t, ayf::condition<B>{}, out), ayf::error);
  REQUIRE_THROWS_WITH(cfg(ctx, x, t, ayf::condition<B>{}, out), Contains("'cond.labels'"));
  const auto labels_short = vec<B>(ctx, {0.0, 1.0, 2.0});
  REQUIRE_THROWS_WITH(cfg(ctx, x, t, ayf::condition<B>{&labels_short, nullptr}, out),
                      Contains("'cond.labels'") && Contains("[3, 1]"));
}

TEMPLATE_TEST_CASE("make_weighted_sum_velocity is the explicit weighted sum", "[guidance][cpu]", AYF_BACKENDS) {
  using B = TestType;
  typename B::context ctx(33);
  const auto x = randn<B>(ctx, shape(rows, cols));
  const auto hx = B::to_host(ctx, x);
  const auto t = vec<B>(ctx, t_values);

  sine_field<B> f1{1.0, 0.5}, f2{-0.4, 2.0};
  const auto v1 = eval<B>(ctx, f1, x, t), v2 = eval<B>(ctx, f2, x, t);
  const std::array<double, 3> w{0.3, -1.2, 2.0};
  auto sum = ayf::make_weighted_sum_velocity<B>(w, f1, f2, ayf::gaussian_optimal_velocity<B>(0.5));
  static_assert(ayf::velocity_field<decltype(sum), B>);
  auto out = B::make(ctx, shape(rows, cols));
  sum(ctx, x, t, {}, out);
  const auto h = B::to_host(ctx, out);
  for (std::size_t i = 0; i < rows; ++i)
    for (std::size_t j = 0; j < cols; ++j) {
      const std::size_t q = i * cols + j;
      const double v3 = k_of(t_values[i], 0.5) * hx[q];
      const double expected = w[0] * v1[q] + w[1] * v2[q] + w[2] * v3;
      const double magnitude = std::abs(w[0] * v1[q]) + std::abs(w[1] * v2[q]) + std::abs(w[2] * v3);
      CHECK(ayf_test::close<tol>(h[q], expected, magnitude));
    }
  // A single field with weight 1 is that field exactly.
  auto single = ayf::make_weighted_sum_velocity<B>(std::array<double, 1>{1.0}, f1);
  single(ctx, x, t, {}, out);
  CHECK(B::to_host(ctx, out) == v1);
}
