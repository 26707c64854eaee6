// tests/test_layer_embedding.cpp: the sinusoidal embedding against sin/cos written out, and the
// conditioning embedding z = e(t) W_t + e(s) W_s + e(lambda) W_lambda + W_y[y] + b against a direct
// computation; JVPs in (t, s) against central differences; parameter gradients against directional
// differences; the null class.
#include <cmath>
#include <vector>

#include <catch2/catch.hpp>

#include "ayf/nn/embedding.hpp"
#include "support/layer_check.hpp"

using ayf_test::layer_backend;
using ayf_test::layer_tensor;

namespace {
constexpr double pi = 3.141592653589793238462643383279;

/// e(c u) written out: [sin(omega_k c u)..., cos(omega_k c u)...], omega_k = a pi k.
std::vector<double> features(double u, std::size_t k, double a, double c) {
  std::vector<double> f(2 * k);
  for (std::size_t i = 0; i < k; ++i) {
    const double p = a * pi * static_cast<double>(i + 1) * c * u;
    f[i] = std::sin(p);
    f[k + i] = std::cos(p);
  }
  return f;
}
}  // namespace

TEST_CASE("sinusoidal_embedding: [sin, cos] of omega_k c u, its tangent and its input gradient", "[nn][layer]") {
  layer_backend::context ctx(1);
  ayf::nn::parameter_layout layout;
  const ayf::nn::sinusoidal_embedding<layer_backend> layer(4, 0.5, 1.0 / 3.0);
  ayf::nn::parameter_set<layer_backend> params(ctx, layout);
  ayf::nn::workspace<layer_backend> ws;
  ayf::nn::no_state st;
  const layer_tensor u = ayf_test::uniform_tensor(5, 1, 3, -2, 2);
  layer_tensor y;
  layer.forward(ctx, params, u, y, st, ws, 5);
  REQUIRE(y.cols() == 8);
  for (Eigen::Index i = 0; i < 5; ++i) {
    const auto f = features(u(i, 0), 4, 0.5, 1.0 / 3.0);
    for (Eigen::Index j = 0; j < 8; ++j) CHECK(y(i, j) == Approx(f[static_cast<std::size_t>(j)]).margin(1e-14));
  }
  ayf_test::unary_layer_probe<ayf::nn::sinusoidal_embedding<layer_backend>> probe(layer, params);
  ayf_test::check_layer(probe.probe(), 5, 1, 51, -2, 2);
  CHECK_THROWS_WITH((ayf::nn::sinusoidal_embedding<layer_backend>(0, 1.0)), Catch::Contains("frequencies"));
}

TEST_CASE("conditioning_embedding: forward, JVP in t and s, parameter gradients and the null class", "[nn][layer]") {
  using B = layer_backend;
  B::context ctx(1);
  ayf::nn::conditioning_config cc;
  cc.width = 6;
  cc.frequencies = 3;
  cc.frequency_scale = 0.7;
  cc.embed_s = true;
  cc.embed_lambda = true;
  cc.lambda_scale = 0.25;
  cc.classes = 4;
  ayf::nn::parameter_layout layout;
  const ayf::nn::conditioning_embedding<B> layer(layout, "c", cc);
  auto params = ayf_test::random_parameters(ctx, layout, 17);
  ayf::nn::workspace<B> ws;
  ayf::nn::conditioning_state<B> st;
  const std::size_t n = 5;
  const layer_tensor t = ayf_test::uniform_tensor(n, 1, 1, 0, 1), s = ayf_test::uniform_tensor(n, 1, 2, 0, 1);
  const layer_tensor lambda = ayf_test::uniform_tensor(n, 1, 3, 1, 4);
  layer_tensor labels(n, 1);
  labels << 0, 3, -1, 2, 1;
  const ayf::condition<B> cond{&labels, &lambda};
  layer_tensor z;
  layer.forward(ctx, params, t, s, cond, nullptr, nullptr, z, st, ws);

  // Direct: the blocks by name.
  auto block = [&](const char* name) {
    const auto* b = layout.find(name);
    REQUIRE(b != nullptr);
    return Eigen::Map<const layer_tensor>(params.values.data() + b->offset, static_cast<Eigen::Index>(b->extent.rows),
                                          static_cast<Eigen::Index>(b->extent.cols));
  };
  for (std::size_t i = 0; i < n; ++i) {
    const auto ft = features(t(static_cast<Eigen::Index>(i), 0), 3, 0.7, 1.0);
    const auto fs = features(s(static_cast<Eigen::Index>(i), 0), 3, 0.7, 1.0);
    const auto fl = features(lambda(static_cast<Eigen::Index>(i), 0), 3, 0.7, 0.25);
    for (Eigen::Index j = 0; j < 6; ++j) {
      double want = block("c.b")(0, j);
      for (Eigen::Index k = 0; k < 6; ++k) {
        want += ft[static_cast<std::size_t>(k)] * block("c.t.w")(k, j) + fs[static_cast<std::size_t>(k)] * block("c.s.w")(k, j) +
                fl[static_cast<std::size_t>(k)] * block("c.lambda.w")(k, j);
      }
      const double y = labels(static_cast<Eigen::Index>(i), 0);
      if (y >= 0) want += block("c.y")(static_cast<Eigen::Index>(y), j);
      CHECK(z(static_cast<Eigen::Index>(i), j) == Approx(want).epsilon(1e-13));
    }
  }

  // JVP in (t, s) against central differences.
  const layer_tensor dt = ayf_test::uniform_tensor(n, 1, 4), ds = ayf_test::uniform_tensor(n, 1, 5);
  layer_tensor stacked;
  layer.forward(ctx, params, t, s, cond, &dt, &ds, stacked, st, ws);
  REQUIRE(stacked.rows() == static_cast<Eigen::Index>(2 * n));
  CHECK(ayf_test::relative_error(stacked.topRows(static_cast<Eigen::Index>(n)), z) < 1e-14);
  auto eval = [&](const layer_tensor& tt, const layer_tensor& ss) {
    layer_tensor out;
    ayf::nn::conditioning_state<B> scratch;
    layer.forward(ctx, params, tt, ss, cond, nullptr, nullptr, out, scratch, ws);
    return out;
  };
  const double h = 1e-5;
  const layer_tensor fd = (eval(t + h * dt, s + h * ds) - eval(t - h * dt, s - h * ds)) / (2 * h);
  CHECK(ayf_test::relative_error(stacked.bottomRows(static_cast<Eigen::Index>(n)), fd) < 1e-6);

  // Parameter gradients of L = <u, z> along random directions (from the JVP pass's saved state).
  const layer_tensor u = ayf_test::uniform_tensor(n, 6, 6);
  params.zero_gradients(ctx);
  layer.backward(ctx, params, st, u, ws);
  auto loss = [&] { return (eval(t, s).array() * u.array()).sum(); };
  for (std::uint64_t k = 0; k < 4; ++k) {
    const layer_tensor v = ayf_test::uniform_tensor(1, layout.size(), 60 + k);
    const layer_tensor saved = params.values;
    params.values = saved + 1e-6 * v;
    const double plus = loss();
    params.values = saved - 1e-6 * v;
    const double minus = loss();
    params.values = saved;
    const double fd_dir = (plus - minus) / 2e-6, dir = (params.gradients.array() * v.array()).sum();
    CHECK(dir == Approx(fd_dir).epsilon(1e-6).margin(1e-9));
  }
  // The null class contributes no row and receives no gradient: row 0.. of the table get the rows of
  // their samples only.
  const auto* table = layout.find("c.y");
  for (Eigen::Index j = 0; j < 6; ++j) {
    CHECK(params.gradients(0, static_cast<Eigen::Index>(table->offset) + 3 * 6 + j) == Approx(u(1, j)).epsilon(1e-14));
  }

  layer_tensor bad(n, 1);
  bad << 0, 4, 1, 1, 1;
  CHECK_THROWS_WITH(layer.forward(ctx, params, t, s, ayf::condition<B>{&bad, &lambda}, nullptr, nullptr, z, st, ws),
                    Catch::Contains("index"));
}
