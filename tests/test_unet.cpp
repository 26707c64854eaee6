// Tests of ayf/nn/unet.hpp on the Eigen backend in double: forward_jvp against central finite
// differences and its primal against forward, backward against random directional finite
// differences of a loss, the student initialised from a teacher against the teacher's Euler step
// (bitwise), configuration errors, and flow-matching and AYF-EMD steps that lower their objective.
#include <catch2/catch.hpp>

#include <cmath>
#include <string>
#include <vector>

#include "ayf/backends/eigen/backend.hpp"
#include "ayf/backends/xtensor/backend.hpp"
#include "ayf/nn/optimizer.hpp"
#include "ayf/nn/unet.hpp"
#include "ayf/objectives/ayf_emd.hpp"
#include "ayf/objectives/flow_matching.hpp"

namespace {

using B = ayf::eigen_backend<double>;
using ayf::shape;
using model = ayf::nn::unet_flow_model<B>;

static_assert(ayf::velocity_field<model, B>);
static_assert(ayf::flow_map_model<model, B>);
static_assert(ayf::trainable_flow_map_model<model, B>);

/// 8x8x1 images, two levels (8x8 with 4 channels, 4x4 with 8), one block per level.
ayf::nn::unet_config small_config(std::size_t classes, bool student) {
  ayf::nn::unet_config c;
  c.height = 8;
  c.width = 8;
  c.channels = 1;
  c.base_channels = 4;
  c.channel_multipliers = {1, 2};
  c.blocks_per_level = 1;
  c.groups = 2;
  c.embedding_channels = 8;
  c.frequencies = 3;
  c.embed_s = student;
  c.embed_lambda = student;
  c.classes = classes;
  c.seed = 17;
  return c;
}

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
  for (std::size_t i = 0; i < n; ++i) {
    in.labels(static_cast<Eigen::Index>(i), 0) = static_cast<double>(i % (classes + 1)) - 1;
  }
  return in;
}

/// Random non-zero weights everywhere (s and lambda weights, norms' gamma and beta included).
void perturb_all_weights(B::context& ctx, model& m) {
  B::tensor noise = B::make(ctx, B::shape_of(m.parameters().values));
  B::randn(ctx, noise);
  B::scale_sum_rows(ctx, m.parameters().values, 1.0, m.parameters().values, 0.2, noise);
}

double max_abs_diff(const B::tensor& a, const B::tensor& b) { return (a - b).cwiseAbs().maxCoeff(); }

}  // namespace

TEST_CASE("unet forward_jvp matches central finite differences in double", "[unet][jvp][cpu]") {
  B::context ctx(3);
  for (std::size_t classes : {std::size_t{0}, std::size_t{3}}) {
    model m(ctx, small_config(classes, true));
    perturb_all_weights(ctx, m);
    const std::size_t n = 4, d = m.config().dims();
    inputs in = make_inputs(ctx, n, d, classes);
    const ayf::condition<B> cond{classes > 0 ? &in.labels : nullptr, &in.lambda};
    B::tensor dx = B::make(ctx, shape(n, d)), dt = B::make(ctx, shape(n, 1)), ds = B::make(ctx, shape(n, 1));
    B::randn(ctx, dx);
    B::randn(ctx, dt);
    B::randn(ctx, ds);
    B::tensor out, dout, plain;
    model::activations saved;
    m.forward_jvp(ctx, in.x, in.t, in.s, cond, dx, dt, ds, out, dout, saved);
    m.forward(ctx, in.x, in.t, in.s, cond, plain);
    INFO("max |primal - forward| " << max_abs_diff(out, plain));
    CHECK(max_abs_diff(out, plain) <= 1e-13 * std::max(1.0, plain.cwiseAbs().maxCoeff()));

    const double h = 1e-5;
    auto shifted = [&](double sign) {
      B::tensor xs = in.x + sign * h * dx, ts = in.t + sign * h * dt, ss = in.s + sign * h * ds, o;
      m.forward(ctx, xs, ts, ss, cond, o);
      return o;
    };
    const B::tensor fd = (shifted(1) - shifted(-1)) / (2 * h);
    const double error = max_abs_diff(dout, fd) / std::max(1.0, fd.cwiseAbs().maxCoeff());
    INFO("classes " << classes << " relative |jvp - fd| " << error << " (max |fd| " << fd.cwiseAbs().maxCoeff() << ")");
    CHECK(error < 1e-6);
    // Each input direction on its own is exercised too (dt alone, ds alone).
    B::tensor zero_x = B::make(ctx, shape(n, d)), zero = B::make(ctx, shape(n, 1)), o2, do2;
    m.forward_jvp(ctx, in.x, in.t, in.s, cond, zero_x, zero, ds, o2, do2, saved);
    auto shifted_s = [&](double sign) {
      B::tensor ss = in.s + sign * h * ds, o;
      m.forward(ctx, in.x, in.t, ss, cond, o);
      return o;
    };
    const B::tensor fd_s = (shifted_s(1) - shifted_s(-1)) / (2 * h);
    CHECK(fd_s.cwiseAbs().maxCoeff() > 1e-3);  // F depends on s
    CHECK(max_abs_diff(do2, fd_s) / std::max(1.0, fd_s.cwiseAbs().maxCoeff()) < 1e-6);
  }
}

TEST_CASE("unet backward matches random directional finite differences of a loss", "[unet][backward][cpu]") {
  B::context ctx(5);
  const std::size_t classes = 2, n = 3;
  model m(ctx, small_config(classes, true));
  perturb_all_weights(ctx, m);
  const std::size_t d = m.config().dims();
  inputs in = make_inputs(ctx, n, d, classes);
  const ayf::condition<B> cond{&in.labels, &in.lambda};
  B::tensor weight = B::make(ctx, shape(n, d));
  B::randn(ctx, weight);
  // L(theta) = sum_ij weight_ij F_ij + 1/2 |F|^2, so dL/dF = weight + F.
  auto loss = [&](const B::tensor& f) { return weight.cwiseProduct(f).sum() + 0.5 * f.squaredNorm(); };

  for (bool through_jvp : {false, true}) {
    model::activations saved;
    B::tensor f, df;
    if (through_jvp) {
      B::tensor dx = B::make(ctx, shape(n, d)), dt = B::make(ctx, shape(n, 1)), ds = B::make(ctx, shape(n, 1));
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
    // Every parameter block receives a gradient.
    for (const auto& block : m.parameters().layout.blocks()) {
      const double norm = gradient.middleCols(static_cast<Eigen::Index>(block.offset),
                                              static_cast<Eigen::Index>(block.extent.size())).cwiseAbs().sum();
      INFO("block " << block.name);
      CHECK(norm > 0);
    }

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
      INFO("through_jvp " << through_jvp << " analytic " << analytic << " fd " << fd << " relative "
                          << std::abs(analytic - fd) / std::max(1.0, std::abs(fd)));
      CHECK(std::abs(analytic - fd) <= 1e-6 * std::max(1.0, std::abs(fd)));
    }
  }
}

TEST_CASE("a unet student initialised from its teacher is exactly the teacher's Euler step", "[unet][init][cpu]") {
  B::context ctx(7);
  model teacher(ctx, small_config(3, false));
  model student = model::from_teacher(ctx, teacher, small_config(3, true));
  const std::size_t n = 5, d = teacher.config().dims();
  inputs in = make_inputs(ctx, n, d, 3);
  B::tensor v, f;
  teacher(ctx, in.x, in.t, ayf::condition<B>{&in.labels, nullptr}, v);
  student.forward(ctx, in.x, in.t, in.s, ayf::condition<B>{&in.labels, &in.lambda}, f);
  CHECK(max_abs_diff(v, f) == 0.0);
  CHECK(v.cwiseAbs().maxCoeff() > 0.1);
  // The s and lambda weights start at zero but receive gradients.
  model::activations saved;
  student.forward(ctx, in.x, in.t, in.s, ayf::condition<B>{&in.labels, &in.lambda}, f, saved);
  student.parameters().zero_gradients(ctx);
  student.backward(ctx, saved, f);
  const std::size_t teacher_size = teacher.parameters().size();
  const std::size_t student_size = student.parameters().size();
  CHECK(student_size == teacher_size + 2 * 2 * 3 * 8);
  const double tail_gradient =
      student.parameters().gradients.rightCols(static_cast<Eigen::Index>(student_size - teacher_size)).cwiseAbs().sum();
  CHECK(tail_gradient > 0);
  // A mismatched architecture is refused with a clear message.
  ayf::nn::unet_config wrong = small_config(3, true);
  wrong.base_channels = 6;
  REQUIRE_THROWS_WITH(model::from_teacher(ctx, teacher, wrong), Catch::Contains("'student'"));
  REQUIRE_THROWS_WITH(model::from_teacher(ctx, student, small_config(3, true)), Catch::Contains("'teacher'"));
}

TEST_CASE("unet configurations and inputs are checked", "[unet][cpu]") {
  B::context ctx(9);
  ayf::nn::unet_config c = small_config(0, false);
  c.groups = 3;
  REQUIRE_THROWS_WITH(model(ctx, c), Catch::Contains("'groups'"));
  c = small_config(0, false);
  c.channel_multipliers = {1, 1, 1, 1, 1};  // 8x8 cannot be halved four times
  REQUIRE_THROWS_WITH(model(ctx, c), Catch::Contains("'channel_multipliers'"));
  c.channel_multipliers = {};
  REQUIRE_THROWS_WITH(model(ctx, c), Catch::Contains("'channel_multipliers'"));
  model m(ctx, small_config(0, false));
  inputs in = make_inputs(ctx, 2, 10, 0);
  B::tensor out;
  REQUIRE_THROWS_WITH(m.forward(ctx, in.x, in.t, in.s, {}, out), Catch::Contains("'x'"));
  // Three levels and two blocks per level build and run.
  c = small_config(2, true);
  c.channel_multipliers = {1, 2, 2};
  c.blocks_per_level = 2;
  model deep(ctx, c);
  inputs ok = make_inputs(ctx, 2, c.dims(), 2);
  deep.forward(ctx, ok.x, ok.t, ok.s, ayf::condition<B>{&ok.labels, nullptr}, out);
  CHECK(B::shape_of(out) == shape(2, 64));
  CHECK(std::isfinite(out.sum()));
}

TEST_CASE("flow matching and AYF-EMD steps on a unet lower their objective on a simple target", "[unet][train][cpu]") {
  B::context ctx(11);
  const std::size_t n = 8;
  const ayf::nn::unet_config teacher_config = small_config(0, false);
  const std::size_t d = teacher_config.dims();
  // Data: one fixed smooth image (a horizontal ramp) for every sample.
  B::tensor x0 = B::make(ctx, shape(n, d));
  for (Eigen::Index i = 0; i < x0.rows(); ++i)
    for (Eigen::Index j = 0; j < x0.cols(); ++j) x0(i, j) = static_cast<double>(j % 8) / 4.0 - 0.875;

  SECTION("flow matching") {
    model teacher(ctx, teacher_config);
    ayf::flow_matching<B, model> objective;
    ayf::nn::adam_config adam;
    adam.learning_rate = 3e-3;
    ayf::nn::adam<B> optimizer(ctx, teacher.parameters(), adam);
    // The loss on a fixed draw of (eps, t) before and after training.
    auto evaluate = [&] {
      B::context eval(99);
      ayf::flow_matching<B, model> probe;
      const double loss = probe.step(eval, teacher, x0, nullptr).loss;
      teacher.parameters().zero_gradients(ctx);
      return loss;
    };
    const double before = evaluate();
    for (int step = 0; step < 40; ++step) {
      teacher.parameters().zero_gradients(ctx);
      objective.step(ctx, teacher, x0, nullptr);
      optimizer.step(ctx, teacher.parameters());
    }
    const double after = evaluate();
    INFO("flow matching loss before " << before << " after " << after);
    CHECK(after < 0.7 * before);
  }

  SECTION("AYF-EMD") {
    // Teacher: the constant velocity v = 0.5, whose flow map has F = 0.5 for every (t, s).
    struct constant_velocity {
      void operator()(B::context& c, const B::tensor& x, const B::tensor&, const ayf::condition<B>&, B::tensor& out) {
        B::resize(c, out, B::shape_of(x));
        B::fill(c, out, 0.5);
      }
    } teacher;
    model student(ctx, small_config(0, true));
    ayf::ayf_emd_config config;
    config.warmup_iterations = 0;  // r = r_max: the full Eulerian residual
    ayf::ayf_emd<B, model> objective(config);
    ayf::nn::adam_config adam;
    adam.learning_rate = 3e-3;
    ayf::nn::adam<B> optimizer(ctx, student.parameters(), adam);
    // The mean tangent norm |g| = |F - v + r (t - s) dF/dt| on a fixed batch before and after training.
    auto evaluate = [&] {
      B::context eval(98);
      ayf::ayf_emd<B, model> probe(config);
      const double g = probe.step(eval, student, teacher, x0, nullptr, 0).tangent_norm;
      student.parameters().zero_gradients(ctx);
      return g;
    };
    const double before = evaluate();
    for (int step = 0; step < 40; ++step) {
      student.parameters().zero_gradients(ctx);
      objective.step(ctx, student, teacher, x0, nullptr, step);
      optimizer.step(ctx, student.parameters());
    }
    const double after = evaluate();
    INFO("AYF-EMD mean |g| before " << before << " after " << after);
    CHECK(after < 0.5 * before);
  }
}

TEST_CASE("a unet with self-attention at 14x14 trains with flow matching and AYF-EMD", "[unet][train][attention][cpu]") {
  B::context ctx(12);
  ayf::nn::unet_config c;
  c.height = c.width = 28;
  c.base_channels = 8;
  c.channel_multipliers = {1, 2};  // level 1 is 14x14
  c.groups = 4;
  c.embedding_channels = 16;
  c.frequencies = 3;
  c.attention_levels = {1};
  c.attention_heads = 2;
  c.seed = 5;
  const std::size_t n = 4, d = c.dims();
  // Data: a fixed smooth image (a diagonal ramp with a bright disc) for every sample.
  B::tensor x0 = B::make(ctx, shape(n, d));
  for (Eigen::Index i = 0; i < x0.rows(); ++i)
    for (Eigen::Index j = 0; j < x0.cols(); ++j) {
      const double y = static_cast<double>(j / 28) - 13.5, x = static_cast<double>(j % 28) - 13.5;
      x0(i, j) = (x + y) / 27.0 + (x * x + y * y < 36 ? 0.8 : 0.0);
    }
  auto attention_weights = [](const model& m) {
    double sum = 0;
    for (const auto& b : m.parameters().layout.blocks())
      if (b.name.find(".attention.proj.w") != std::string::npos)
        sum += m.parameters().values.middleCols(static_cast<Eigen::Index>(b.offset), static_cast<Eigen::Index>(b.extent.size())).cwiseAbs().sum();
    return sum;
  };
  ayf::nn::adam_config adam;
  adam.learning_rate = 3e-3;

  SECTION("flow matching") {
    model teacher(ctx, c);
    REQUIRE(attention_weights(teacher) == 0.0);  // every attention layer starts as the identity
    ayf::flow_matching<B, model> objective;
    ayf::nn::adam<B> optimizer(ctx, teacher.parameters(), adam);
    auto evaluate = [&] {
      B::context eval(97);
      ayf::flow_matching<B, model> probe;
      const double loss = probe.step(eval, teacher, x0, nullptr).loss;
      teacher.parameters().zero_gradients(ctx);
      return loss;
    };
    const double before = evaluate();
    for (int step = 0; step < 30; ++step) {
      teacher.parameters().zero_gradients(ctx);
      objective.step(ctx, teacher, x0, nullptr);
      optimizer.step(ctx, teacher.parameters());
    }
    const double after = evaluate();
    INFO("flow matching loss before " << before << " after " << after);
    CHECK(after < 0.7 * before);
    CHECK(attention_weights(teacher) > 0.0);  // the attention layers were trained
  }

  SECTION("AYF-EMD") {
    struct constant_velocity {
      void operator()(B::context& cx, const B::tensor& x, const B::tensor&, const ayf::condition<B>&, B::tensor& out) {
        B::resize(cx, out, B::shape_of(x));
        B::fill(cx, out, 0.5);
      }
    } teacher;
    ayf::nn::unet_config sc = c;
    sc.embed_s = true;
    model student(ctx, sc);
    ayf::ayf_emd_config config;
    config.warmup_iterations = 0;
    ayf::ayf_emd<B, model> objective(config);
    ayf::nn::adam<B> optimizer(ctx, student.parameters(), adam);
    auto evaluate = [&] {
      B::context eval(96);
      ayf::ayf_emd<B, model> probe(config);
      const double g = probe.step(eval, student, teacher, x0, nullptr, 0).tangent_norm;
      student.parameters().zero_gradients(ctx);
      return g;
    };
    const double before = evaluate();
    for (int step = 0; step < 30; ++step) {
      student.parameters().zero_gradients(ctx);
      objective.step(ctx, student, teacher, x0, nullptr, step);
      optimizer.step(ctx, student.parameters());
    }
    const double after = evaluate();
    INFO("AYF-EMD mean |g| before " << before << " after " << after);
    CHECK(after < 0.5 * before);
    CHECK(attention_weights(student) > 0.0);
  }
}

TEST_CASE("unet forward, forward_jvp and backward agree on the xtensor backend", "[unet][backend][cpu]") {
  using X = ayf::xtensor_backend<double>;
  B::context ectx(13);
  X::context xctx(13);
  const ayf::nn::unet_config config = small_config(3, true);
  model em(ectx, config);
  ayf::nn::unet_flow_model<X> xm(xctx, config);
  perturb_all_weights(ectx, em);
  xm.parameters().values = X::from_host(xctx, B::to_host(ectx, em.parameters().values), B::shape_of(em.parameters().values));
  const std::size_t n = 3, d = config.dims();
  inputs in = make_inputs(ectx, n, d, 3);
  B::tensor dx = B::make(ectx, shape(n, d)), dt = B::make(ectx, shape(n, 1)), ds = B::make(ectx, shape(n, 1));
  B::randn(ectx, dx);
  B::randn(ectx, dt);
  B::randn(ectx, ds);
  auto to_x = [&](const B::tensor& e) { return X::from_host(xctx, B::to_host(ectx, e), B::shape_of(e)); };
  const X::tensor xx = to_x(in.x), xt = to_x(in.t), xs = to_x(in.s), xl = to_x(in.lambda), xy = to_x(in.labels),
                  xdx = to_x(dx), xdt = to_x(dt), xds = to_x(ds);
  B::tensor eo, edo;
  X::tensor xo, xdo;
  model::activations esaved;
  ayf::nn::unet_flow_model<X>::activations xsaved;
  em.forward_jvp(ectx, in.x, in.t, in.s, ayf::condition<B>{&in.labels, &in.lambda}, dx, dt, ds, eo, edo, esaved);
  xm.forward_jvp(xctx, xx, xt, xs, ayf::condition<X>{&xy, &xl}, xdx, xdt, xds, xo, xdo, xsaved);
  em.parameters().zero_gradients(ectx);
  xm.parameters().zero_gradients(xctx);
  em.backward(ectx, esaved, eo);
  xm.backward(xctx, xsaved, xo);
  auto worst = [](const std::vector<double>& a, const std::vector<double>& b) {
    REQUIRE(a.size() == b.size());
    double w = 0, scale = 1;
    for (std::size_t k = 0; k < a.size(); ++k) {
      w = std::max(w, std::abs(a[k] - b[k]));
      scale = std::max(scale, std::abs(a[k]));
    }
    return w / scale;
  };
  const double out_error = worst(B::to_host(ectx, eo), X::to_host(xctx, xo));
  const double tangent_error = worst(B::to_host(ectx, edo), X::to_host(xctx, xdo));
  const double gradient_error =
      worst(B::to_host(ectx, em.parameters().gradients), X::to_host(xctx, xm.parameters().gradients));
  INFO("relative differences: F " << out_error << ", dF " << tangent_error << ", gradient " << gradient_error);
  CHECK(out_error < 1e-12);
  CHECK(tangent_error < 1e-12);
  CHECK(gradient_error < 1e-12);
}
