// Tests of ayf/nn: the MLP's forward_jvp against central finite differences in double, its primal
// against forward, backward against random directional finite differences of a loss, and the
// student initialised from a teacher against the teacher's Euler step.
#include <catch2/catch.hpp>

#include <cmath>
#include <vector>

#include "ayf/backends/eigen/backend.hpp"
#include "ayf/backends/xtensor/backend.hpp"
#include "ayf/nn/mlp.hpp"
#include "ayf/nn/optimizer.hpp"

namespace {

using B = ayf::eigen_backend<double>;
using ayf::shape;
using model = ayf::nn::mlp_flow_model<B>;

struct inputs {
  B::tensor x, t, s, lambda, labels;
};

inputs make_inputs(B::context& ctx, std::size_t n, std::size_t d, std::size_t classes) {
  inputs in{B::make(ctx, shape(n, d)), B::make(ctx, shape(n, 1)), B::make(ctx, shape(n, 1)),
            B::make(ctx, shape(n, 1)), B::make(ctx, shape(n, 1))};
  B::randn(ctx, in.x);
  B::rand_uniform(ctx, in.t);
  B::rand_uniform(ctx, in.s);
  B::rand_uniform(ctx, in.lambda);
  B::transform(ctx, in.lambda, [](double u) { return 1 + 2 * u; }, in.lambda);
  for (std::size_t i = 0; i < n; ++i) in.labels(static_cast<Eigen::Index>(i), 0) = static_cast<double>(i % (classes + 1)) - 1;
  return in;
}

ayf::nn::mlp_config student_config(std::size_t classes) {
  ayf::nn::mlp_config c;
  c.dims = 3;
  c.width = 16;
  c.blocks = 2;
  c.frequencies = 4;
  c.embed_s = true;
  c.embed_lambda = true;
  c.classes = classes;
  c.seed = 11;
  return c;
}

/// Random non-zero s and lambda weights so that every input path is exercised.
void perturb_all_weights(B::context& ctx, model& m) {
  B::tensor noise = B::make(ctx, B::shape_of(m.parameters().values));
  B::randn(ctx, noise);
  B::scale_sum_rows(ctx, m.parameters().values, 1.0, m.parameters().values, 0.2, noise);
}

double max_abs_diff(const B::tensor& a, const B::tensor& b) { return (a - b).cwiseAbs().maxCoeff(); }

}  // namespace

TEST_CASE("mlp forward_jvp matches central finite differences in double", "[nn][jvp][cpu]") {
  B::context ctx(3);
  for (std::size_t classes : {std::size_t{0}, std::size_t{3}}) {
    model m(ctx, student_config(classes));
    perturb_all_weights(ctx, m);
    const std::size_t n = 5;
    inputs in = make_inputs(ctx, n, 3, classes);
    const ayf::condition<B> cond{classes > 0 ? &in.labels : nullptr, &in.lambda};
    B::tensor dx = B::make(ctx, shape(n, 3)), dt = B::make(ctx, shape(n, 1)), ds = B::make(ctx, shape(n, 1));
    B::randn(ctx, dx);
    B::randn(ctx, dt);
    B::randn(ctx, ds);
    B::tensor out, dout, plain;
    model::activations saved;
    m.forward_jvp(ctx, in.x, in.t, in.s, cond, dx, dt, ds, out, dout, saved);
    m.forward(ctx, in.x, in.t, in.s, cond, plain);
    // The primal of forward_jvp is forward up to rounding (Eigen may pick another GEMM kernel for
    // 2B rows than for B rows, so the summation order can differ).
    INFO("max |primal - forward| " << max_abs_diff(out, plain));
    CHECK(max_abs_diff(out, plain) <= 1e-13 * std::max(1.0, plain.cwiseAbs().maxCoeff()));

    const double h = 1e-5;
    auto shifted = [&](double sign) {
      B::tensor xs = in.x + sign * h * dx, ts = in.t + sign * h * dt, ss = in.s + sign * h * ds, o;
      m.forward(ctx, xs, ts, ss, cond, o);
      return o;
    };
    const B::tensor fd = (shifted(1) - shifted(-1)) / (2 * h);
    const double scale = std::max(1.0, fd.cwiseAbs().maxCoeff());
    INFO("classes " << classes << " max |jvp - fd| " << max_abs_diff(dout, fd));
    CHECK(max_abs_diff(dout, fd) / scale < 1e-6);
  }
}

TEST_CASE("mlp backward matches random directional finite differences of a loss", "[nn][backward][cpu]") {
  B::context ctx(5);
  const std::size_t classes = 2, n = 6;
  model m(ctx, student_config(classes));
  perturb_all_weights(ctx, m);
  inputs in = make_inputs(ctx, n, 3, classes);
  const ayf::condition<B> cond{&in.labels, &in.lambda};
  B::tensor weight = B::make(ctx, shape(n, 3));
  B::randn(ctx, weight);
  // L(theta) = sum_ij weight_ij F_ij + 1/2 |F|^2, so dL/dF = weight + F.
  auto loss = [&](B::tensor& f) { return (weight.cwiseProduct(f)).sum() + 0.5 * f.squaredNorm(); };

  for (bool through_jvp : {false, true}) {
    model::activations saved;
    B::tensor f, df;
    if (through_jvp) {
      B::tensor dx = B::make(ctx, shape(n, 3)), dt = B::make(ctx, shape(n, 1)), ds = B::make(ctx, shape(n, 1));
      B::randn(ctx, dx);
      B::fill(ctx, dt, 1.0);
      m.forward_jvp(ctx, in.x, in.t, in.s, cond, dx, dt, ds, f, df, saved);
    } else {
      m.forward(ctx, in.x, in.t, in.s, cond, f, saved);
    }
    const B::tensor grad_output = weight + f;
    m.parameters().zero_gradients(ctx);
    m.backward(ctx, saved, grad_output);
    const B::tensor gradient = m.parameters().gradients;

    for (int direction = 0; direction < 4; ++direction) {
      B::tensor u = B::make(ctx, B::shape_of(gradient));
      B::randn(ctx, u);
      const B::tensor theta = m.parameters().values;
      const double e = 1e-6;
      auto loss_at = [&](double sign) {
        m.parameters().values = theta + sign * e * u;
        B::tensor fo;
        m.forward(ctx, in.x, in.t, in.s, cond, fo);
        return loss(fo);
      };
      const double fd = (loss_at(1) - loss_at(-1)) / (2 * e);
      m.parameters().values = theta;
      const double analytic = gradient.cwiseProduct(u).sum();
      INFO("through_jvp " << through_jvp << " analytic " << analytic << " fd " << fd);
      CHECK(std::abs(analytic - fd) <= 1e-6 * std::max(1.0, std::abs(fd)));
    }
  }
}

TEST_CASE("a student initialised from its teacher is exactly the teacher's Euler step", "[nn][init][cpu]") {
  B::context ctx(7);
  ayf::nn::mlp_config teacher_config = student_config(3);
  teacher_config.embed_s = false;
  teacher_config.embed_lambda = false;
  model teacher(ctx, teacher_config);
  model student = model::from_teacher(ctx, teacher, student_config(3));
  const std::size_t n = 8;
  inputs in = make_inputs(ctx, n, 3, 3);
  B::tensor v, f;
  teacher(ctx, in.x, in.t, ayf::condition<B>{&in.labels, nullptr}, v);
  student.forward(ctx, in.x, in.t, in.s, ayf::condition<B>{&in.labels, &in.lambda}, f);
  CHECK(max_abs_diff(v, f) == 0.0);
  // The s and lambda weights start at zero but receive gradients.
  model::activations saved;
  student.forward(ctx, in.x, in.t, in.s, ayf::condition<B>{&in.labels, &in.lambda}, f, saved);
  student.parameters().zero_gradients(ctx);
  student.backward(ctx, saved, f);
  const auto& layout = student.parameters().layout;
  const std::size_t teacher_size = teacher.parameters().size();
  CHECK(layout.size() > teacher_size);
  const double tail_gradient = student.parameters().gradients.rightCols(
      static_cast<Eigen::Index>(layout.size() - teacher_size)).cwiseAbs().sum();
  CHECK(tail_gradient > 0);
  // A mismatched architecture is refused with a clear message.
  ayf::nn::mlp_config wrong = student_config(3);
  wrong.width = 8;
  REQUIRE_THROWS_WITH(model::from_teacher(ctx, teacher, wrong), Catch::Contains("'student'"));
}

TEST_CASE("mlp runs identically on the xtensor backend", "[nn][backend][cpu]") {
  using X = ayf::xtensor_backend<double>;
  B::context ectx(9);
  X::context xctx(9);
  ayf::nn::mlp_config config = student_config(0);
  model em(ectx, config);
  ayf::nn::mlp_flow_model<X> xm(xctx, config);
  inputs in = make_inputs(ectx, 4, 3, 0);
  auto to_x = [&](const B::tensor& e) { return X::from_host(xctx, B::to_host(ectx, e), B::shape_of(e)); };
  const X::tensor xx = to_x(in.x), xt = to_x(in.t), xs = to_x(in.s), xl = to_x(in.lambda);
  B::tensor eo;
  X::tensor xo;
  em.forward(ectx, in.x, in.t, in.s, ayf::condition<B>{nullptr, &in.lambda}, eo);
  xm.forward(xctx, xx, xt, xs, ayf::condition<X>{nullptr, &xl}, xo);
  const auto a = B::to_host(ectx, eo), b = X::to_host(xctx, xo);
  REQUIRE(a.size() == b.size());
  for (std::size_t k = 0; k < a.size(); ++k) CHECK(a[k] == Approx(b[k]).epsilon(1e-12));
}

TEST_CASE("adam with warmup, clipping and weight decay, and the bias-corrected EMA, match a scalar reference",
          "[nn][optimizer][cpu]") {
  B::context ctx(13);
  ayf::nn::parameter_layout layout;
  layout.add("w", 3, 4);
  ayf::nn::parameter_set<B> params(ctx, layout);
  B::randn(ctx, params.values);
  ayf::nn::adam_config config;
  config.learning_rate = 0.01;
  config.warmup_steps = 3;
  config.clip_norm = 0.5;
  config.weight_decay = 0.1;
  ayf::nn::adam<B> optimizer(ctx, params, config);
  ayf::nn::exponential_moving_average<B> ema(ctx, params, 0.9);

  std::vector<double> theta(params.values.data(), params.values.data() + 12), m(12, 0), v(12, 0), weighted(12, 0);
  for (std::size_t k = 0; k < 12; ++k) CHECK(ema.average().data()[k] == theta[k]);  // no update yet: the weights
  for (int step = 1; step <= 5; ++step) {
    B::randn(ctx, params.gradients);
    std::vector<double> g(params.gradients.data(), params.gradients.data() + 12);
    double norm = 0;
    for (double x : g) norm += x * x;
    norm = std::sqrt(norm);
    const double scale = norm > 0.5 ? 0.5 / norm : 1.0;
    const double lr = 0.01 * std::min(1.0, step / 3.0);
    for (std::size_t k = 0; k < 12; ++k) {
      m[k] = 0.9 * m[k] + 0.1 * scale * g[k];
      v[k] = 0.999 * v[k] + 0.001 * scale * g[k] * scale * g[k];
      const double mh = m[k] / (1 - std::pow(0.9, step)), vh = v[k] / (1 - std::pow(0.999, step));
      theta[k] = theta[k] - lr * mh / (std::sqrt(vh) + 1e-8) - lr * 0.1 * theta[k];
      weighted[k] = 0.9 * weighted[k] + 0.1 * theta[k];  // sum_j 0.1 * 0.9^(step - j) theta_j
    }
    CHECK(optimizer.step(ctx, params) == Approx(norm).epsilon(1e-12));
    ema.update(ctx, params);
    for (std::size_t k = 0; k < 12; ++k) {
      CHECK(params.values.data()[k] == Approx(theta[k]).epsilon(1e-12));
      CHECK(ema.average().data()[k] == Approx(weighted[k] / (1 - std::pow(0.9, step))).epsilon(1e-12));
    }
  }
  CHECK(optimizer.steps() == 5);
  CHECK(ema.updates() == 5);
  B::fill(ctx, params.gradients, std::nan(""));
  REQUIRE_THROWS_WITH(optimizer.step(ctx, params), Catch::Contains("'gradients'"));
}
