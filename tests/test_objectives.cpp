// Tests of ayf/objectives against independent computations: the AYF-EMD tangent against central
// finite differences of the flow map along the teacher flow (spec Eq. 4), the discrete loss (Eq. 18)
// divided by eps against the EMD gradient (Thm 3.2), the s -> t reduction to flow matching, AYF-LMD
// against finite differences in s, and vanishing updates for the exact Gaussian flow map.
#include <catch2/catch.hpp>

#include <cmath>
#include <vector>

#include "ayf/analysis/gaussian.hpp"
#include "ayf/analysis/linear_models.hpp"
#include "ayf/backends/eigen/backend.hpp"
#include "ayf/nn/mlp.hpp"
#include "ayf/objectives/ayf_emd.hpp"
#include "ayf/objectives/ayf_lmd.hpp"
#include "ayf/objectives/discrete_consistency.hpp"
#include "ayf/objectives/flow_matching.hpp"
#include "ayf/objectives/shortcut.hpp"

namespace {

using B = ayf::eigen_backend<double>;
using ayf::shape;
using model = ayf::nn::mlp_flow_model<B>;

ayf::nn::mlp_config config(bool student, std::uint64_t seed) {
  ayf::nn::mlp_config c;
  c.dims = 2;
  c.width = 16;
  c.blocks = 2;
  c.frequencies = 3;
  c.embed_s = student;
  c.embed_lambda = student;
  c.seed = seed;
  return c;
}

/// A student whose s and lambda weights are non-zero (so F depends on s).
model random_student(B::context& ctx) {
  model m(ctx, config(true, 21));
  B::tensor noise = B::make(ctx, B::shape_of(m.parameters().values));
  B::randn(ctx, noise);
  B::scale_sum_rows(ctx, m.parameters().values, 1.0, m.parameters().values, 0.3, noise);
  return m;
}

/// A batch with given (t, s) per row.
ayf::training_batch<B> make_batch(B::context& ctx, const std::vector<double>& t, const std::vector<double>& s) {
  const std::size_t n = t.size();
  ayf::training_batch<B> batch;
  batch.t = B::from_host(ctx, t, shape::vector(n));
  batch.s = B::from_host(ctx, s, shape::vector(n));
  batch.lambda = B::make(ctx, shape::vector(n));
  B::fill(ctx, batch.lambda, 2.0);
  batch.x_t = B::make(ctx, shape(n, 2));
  B::randn(ctx, batch.x_t);
  return batch;
}

/// f(x, t, s) = x + (s - t) F(x, t, s) for the whole batch, at shifted inputs.
B::tensor flow_map(B::context& ctx, model& m, const B::tensor& x, const B::tensor& t, const B::tensor& s,
                   const ayf::condition<B>& cond) {
  B::tensor f;
  m.forward(ctx, x, t, s, cond, f);
  const B::tensor step = s - t;
  return x + (f.array().colwise() * step.col(0).array()).matrix();
}

ayf::ayf_emd_config exact_emd() {
  ayf::ayf_emd_config c;
  c.normalize_tangent = false;
  c.warmup_iterations = 0;
  c.r_max = 1.0;
  return c;
}

/// The exact Gaussian flow map as a trainable model: F = a(t, s) x with its JVP from dual numbers.
struct gaussian_student {
  struct activations {};
  double c;
  void forward(B::context&, const B::tensor& x, const B::tensor& t, const B::tensor& s, const ayf::condition<B>&,
               B::tensor& out) {
    out = x;
    for (Eigen::Index i = 0; i < x.rows(); ++i) out.row(i) *= ayf::gaussian::average_velocity_coefficient(t(i, 0), s(i, 0), c);
  }
  void forward(B::context& ctx, const B::tensor& x, const B::tensor& t, const B::tensor& s,
               const ayf::condition<B>& cond, B::tensor& out, activations&) {
    forward(ctx, x, t, s, cond, out);
  }
  void forward_jvp(B::context&, const B::tensor& x, const B::tensor& t, const B::tensor& s, const ayf::condition<B>&,
                   const B::tensor& dx, const B::tensor& dt, const B::tensor& ds, B::tensor& out, B::tensor& dout,
                   activations&) {
    out = x;
    dout = x;
    for (Eigen::Index i = 0; i < x.rows(); ++i) {
      const ayf::dual<double> a = ayf::gaussian::average_velocity_coefficient(
          ayf::dual<double>(t(i, 0), dt(i, 0)), ayf::dual<double>(s(i, 0), ds(i, 0)), c);
      out.row(i) = a.value * x.row(i);
      dout.row(i) = a.value * dx.row(i) + a.tangent * x.row(i);
    }
  }
  void backward(B::context&, const activations&, const B::tensor&) {}
};

}  // namespace

TEST_CASE("AYF-EMD tangent equals -df/dt along the teacher flow (finite differences)", "[objectives][emd][cpu]") {
  B::context ctx(1);
  model student = random_student(ctx);
  model teacher(ctx, config(false, 5));
  // Rows include s = 0 (the consistency case) and s close to t.
  auto batch = make_batch(ctx, {0.9, 0.7, 0.5, 0.3, 0.8}, {0.0, 0.2, 0.45, 0.0, 0.79});
  const ayf::condition<B> cond = batch.cond(nullptr);
  ayf::ayf_emd<B, model> emd(exact_emd());
  emd.step_on_batch(ctx, student, teacher, batch, nullptr, 0);
  const B::tensor g = emd.output_gradient() * (5.0 / 2.0);  // dL/dF = 2 g / B

  // df/dt along dx/dt = v(x, t), s fixed: central differences.
  B::tensor v;
  teacher(ctx, batch.x_t, batch.t, cond, v);
  const double h = 1e-5;
  const B::tensor dfdt = (flow_map(ctx, student, batch.x_t + h * v, (batch.t.array() + h).matrix(), batch.s, cond) -
                          flow_map(ctx, student, batch.x_t - h * v, (batch.t.array() - h).matrix(), batch.s, cond)) /
                         (2 * h);
  INFO("max |g + df/dt| = " << (g + dfdt).cwiseAbs().maxCoeff());
  CHECK((g + dfdt).cwiseAbs().maxCoeff() < 1e-7 * std::max(1.0, dfdt.cwiseAbs().maxCoeff()));
}

TEST_CASE("the discrete loss gradient over eps tends to the EMD gradient, linearly in eps", "[objectives][emd][cpu]") {
  B::context ctx(2);
  model student = random_student(ctx);
  model teacher(ctx, config(false, 6));
  auto batch = make_batch(ctx, {0.9, 0.7, 0.6, 0.35}, {0.1, 0.2, 0.0, 0.05});
  ayf::ayf_emd<B, model> emd(exact_emd());
  student.parameters().zero_gradients(ctx);
  emd.step_on_batch(ctx, student, teacher, batch, nullptr, 0);
  const B::tensor emd_gradient = student.parameters().gradients;

  std::vector<double> errors;
  for (double eps : {4e-3, 2e-3, 1e-3}) {
    ayf::discrete_consistency_config dc;
    dc.epsilon = eps;
    ayf::discrete_consistency<B, model> discrete(dc);
    student.parameters().zero_gradients(ctx);
    discrete.step_on_batch(ctx, student, teacher, batch, nullptr);
    const B::tensor scaled = student.parameters().gradients / eps;
    errors.push_back((scaled - emd_gradient).norm() / emd_gradient.norm());
  }
  INFO("relative errors " << errors[0] << " " << errors[1] << " " << errors[2]);
  CHECK(errors[2] < 0.01);
  // First order in eps: halving eps halves the error.
  CHECK(errors[0] / errors[1] == Approx(2.0).epsilon(0.1));
  CHECK(errors[1] / errors[2] == Approx(2.0).epsilon(0.1));
}

TEST_CASE("as s -> t the EMD output gradient tends to the flow-matching gradient toward the teacher",
          "[objectives][emd][cpu]") {
  B::context ctx(3);
  model student = random_student(ctx);
  model teacher(ctx, config(false, 7));
  std::vector<double> errors;
  auto batch = make_batch(ctx, {0.8, 0.5, 0.3}, {0.8, 0.5, 0.3});
  for (double gap : {1e-2, 1e-3, 1e-4}) {
    batch.s = (batch.t.array() - gap).matrix();
    const ayf::condition<B> cond = batch.cond(nullptr);
    ayf::ayf_emd<B, model> emd(exact_emd());
    emd.step_on_batch(ctx, student, teacher, batch, nullptr, 0);
    B::tensor f, v;
    student.forward(ctx, batch.x_t, batch.t, batch.s, cond, f);
    teacher(ctx, batch.x_t, batch.t, cond, v);
    const B::tensor flow_matching = (2.0 / 3.0) * (f - v);
    errors.push_back((emd.output_gradient() - flow_matching).cwiseAbs().maxCoeff());
  }
  INFO("errors " << errors[0] << " " << errors[1] << " " << errors[2]);
  CHECK(errors[0] / errors[1] == Approx(10.0).epsilon(0.05));
  CHECK(errors[1] / errors[2] == Approx(10.0).epsilon(0.05));
}

TEST_CASE("AYF-LMD tangent equals df/ds - v(f, s) (finite differences in s)", "[objectives][lmd][cpu]") {
  B::context ctx(4);
  model student = random_student(ctx);
  model teacher(ctx, config(false, 8));
  auto batch = make_batch(ctx, {0.9, 0.7, 0.5}, {0.1, 0.3, 0.0});
  const ayf::condition<B> cond = batch.cond(nullptr);
  ayf::ayf_lmd<B, model> lmd(exact_emd());
  lmd.step_on_batch(ctx, student, teacher, batch, nullptr, 0);
  const B::tensor g = lmd.output_gradient() * (3.0 / 2.0);
  const double h = 1e-5;
  const B::tensor dfds = (flow_map(ctx, student, batch.x_t, batch.t, (batch.s.array() + h).matrix(), cond) -
                          flow_map(ctx, student, batch.x_t, batch.t, (batch.s.array() - h).matrix(), cond)) /
                         (2 * h);
  B::tensor v;
  teacher(ctx, flow_map(ctx, student, batch.x_t, batch.t, batch.s, cond), batch.s, cond, v);
  const B::tensor expected = dfds - v;
  INFO("max |g - (df/ds - v)| = " << (g - expected).cwiseAbs().maxCoeff());
  CHECK((g - expected).cwiseAbs().maxCoeff() < 1e-7 * std::max(1.0, expected.cwiseAbs().maxCoeff()));
}

TEST_CASE("on Gaussian data the exact flow map gets zero EMD and LMD updates", "[objectives][gaussian][cpu]") {
  B::context ctx(5);
  const double c = 0.5;
  gaussian_student exact{c};
  auto teacher = ayf::gaussian_optimal_velocity<B>(c);
  auto batch = make_batch(ctx, {0.95, 0.7, 0.5, 0.3, 0.6}, {0.0, 0.2, 0.45, 0.1, 0.59});
  for (double r_max : {1.0, 0.99}) {
    ayf::ayf_emd_config config = exact_emd();
    config.r_max = r_max;
    ayf::ayf_emd<B, gaussian_student> emd(config);
    const auto emd_stats = emd.step_on_batch(ctx, exact, teacher, batch, nullptr, 0);
    ayf::ayf_lmd<B, gaussian_student> lmd(config);
    const auto lmd_stats = lmd.step_on_batch(ctx, exact, teacher, batch, nullptr, 0);
    INFO("r_max " << r_max << " EMD |g| " << emd_stats.tangent_norm << " LMD |g| " << lmd_stats.tangent_norm);
    if (r_max == 1.0) {
      CHECK(emd_stats.tangent_norm < 1e-12);
      CHECK(lmd_stats.tangent_norm < 1e-12);
    } else {
      // The warmup clamp keeps 1% of the linearity regulariser: a small, non-zero update (spec §8.2).
      CHECK(emd_stats.tangent_norm > 1e-6);
      CHECK(emd_stats.tangent_norm < 0.05);
    }
  }
  // A perturbed flow map is not a fixed point.
  gaussian_student wrong{0.6};
  ayf::ayf_emd<B, gaussian_student> emd(exact_emd());
  CHECK(emd.step_on_batch(ctx, wrong, teacher, batch, nullptr, 0).tangent_norm > 1e-3);
}

TEST_CASE("tangent normalisation divides each sample's tangent by |g| + c", "[objectives][emd][cpu]") {
  B::context ctx(6);
  model student = random_student(ctx);
  model teacher(ctx, config(false, 9));
  auto batch = make_batch(ctx, {0.9, 0.6, 0.4}, {0.1, 0.0, 0.2});
  ayf::ayf_emd<B, model> raw(exact_emd());
  raw.step_on_batch(ctx, student, teacher, batch, nullptr, 0);
  const B::tensor g = raw.output_gradient() * 1.5;
  ayf::ayf_emd_config normalized = exact_emd();
  normalized.normalize_tangent = true;
  normalized.tangent_c = 0.1;
  ayf::ayf_emd<B, model> emd(normalized);
  const auto stats = emd.step_on_batch(ctx, student, teacher, batch, nullptr, 0);
  const B::tensor ghat = emd.output_gradient() * 1.5;
  double loss = 0;
  for (Eigen::Index i = 0; i < 3; ++i) {
    const double norm = g.row(i).norm();
    CHECK((ghat.row(i) - g.row(i) / (norm + 0.1)).cwiseAbs().maxCoeff() < 1e-14);
    loss += ghat.row(i).squaredNorm() / 3;
  }
  CHECK(stats.loss == Approx(loss).epsilon(1e-12));
}

TEST_CASE("flow matching, shortcut and the pair sampler produce finite, well-formed steps", "[objectives][cpu]") {
  B::context ctx(7);
  model teacher(ctx, config(false, 10));
  B::tensor x0 = B::make(ctx, shape(64, 2));
  B::randn(ctx, x0);
  ayf::flow_matching<B, model> fm;
  teacher.parameters().zero_gradients(ctx);
  const auto fm_stats = fm.step(ctx, teacher, x0, nullptr);
  CHECK(std::isfinite(fm_stats.loss));
  CHECK(teacher.parameters().gradients.norm() > 0);

  ayf::training_batch<B> batch;
  ayf::pair_sampler_config pairs;
  ayf::sample_training_batch<B>(ctx, pairs, x0, batch);
  CHECK(batch.s.minCoeff() >= 0.0);
  CHECK((batch.t - batch.s).minCoeff() > 0.0);
  CHECK(batch.t.maxCoeff() <= 1.0);
  CHECK(batch.lambda.minCoeff() >= 1.0);
  CHECK(batch.lambda.maxCoeff() <= 3.0);
  pairs.consistency = true;
  ayf::sample_training_batch<B>(ctx, pairs, x0, batch);
  CHECK(batch.s.cwiseAbs().maxCoeff() == 0.0);

  model student = model::from_teacher(ctx, teacher, config(true, 0));
  ayf::shortcut<B, model> sc;
  student.parameters().zero_gradients(ctx);
  const auto sc_stats = sc.step(ctx, student, teacher, x0, nullptr);
  CHECK(std::isfinite(sc_stats.loss));
  CHECK(student.parameters().gradients.norm() > 0);
}

TEST_CASE("the pair sampler puts diagonal_fraction of the pairs on s = t and the rest on the logit-normal interval",
          "[objectives][cpu]") {
  B::context ctx(11);
  const Eigen::Index n = 40000;
  B::tensor x0 = B::make(ctx, shape(static_cast<std::size_t>(n), 1));
  B::randn(ctx, x0);
  ayf::pair_sampler_config pairs;
  pairs.p_mean = -1.8;
  pairs.p_std = 1.4;
  pairs.diagonal_fraction = 0.25;
  ayf::training_batch<B> batch;
  ayf::sample_training_batch<B>(ctx, pairs, x0, batch);
  double diagonal = 0, s_sum = 0, logit_sum = 0, logit_square = 0;
  int out_of_range = 0;
  for (Eigen::Index i = 0; i < n; ++i) {
    const double t = batch.t(i, 0), s = batch.s(i, 0);
    out_of_range += s < 0.0 || t > 1.0 || t < s;
    if (t == s) {
      ++diagonal;
      s_sum += s;
    } else {
      const double d = t - s;
      const double tau = std::log(d / (1 - d));
      logit_sum += tau;
      logit_square += tau * tau;
    }
  }
  CHECK(out_of_range == 0);
  // Binomial count within 5 standard deviations; s = t uniform on [0, 1] (mean 1/2, sd 1/sqrt(12)).
  const double q = pairs.diagonal_fraction, sd = std::sqrt(n * q * (1 - q));
  CHECK(std::abs(diagonal - n * q) < 5 * sd);
  CHECK(std::abs(s_sum / diagonal - 0.5) < 5 / std::sqrt(12 * diagonal));
  // Off the diagonal, logit(t - s) ~ N(P_mean, P_std^2) (spec §8.3).
  const double off = n - diagonal, mean = logit_sum / off, std_dev = std::sqrt(logit_square / off - mean * mean);
  CHECK(std::abs(mean - pairs.p_mean) < 5 * pairs.p_std / std::sqrt(off));
  CHECK(std::abs(std_dev - pairs.p_std) < 5 * pairs.p_std / std::sqrt(2 * off));

  // Without the option no pair is diagonal, and bad shares are refused.
  pairs.diagonal_fraction = 0;
  ayf::sample_training_batch<B>(ctx, pairs, x0, batch);
  CHECK((batch.t - batch.s).minCoeff() > 0.0);
  pairs.diagonal_fraction = 1;
  CHECK_THROWS_WITH(ayf::sample_training_batch<B>(ctx, pairs, x0, batch), Catch::Contains("diagonal_fraction"));
  pairs.diagonal_fraction = 0.5;
  pairs.consistency = true;
  CHECK_THROWS_WITH(ayf::sample_training_batch<B>(ctx, pairs, x0, batch), Catch::Contains("consistency"));
}
