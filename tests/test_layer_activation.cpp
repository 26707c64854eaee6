// tests/test_layer_activation.cpp: the SiLU activation layer against its closed form and the layer
// checks (the tangent rule a'(z) dz and the backward a'(z) dy by central differences).
#include <algorithm>
#include <cmath>

#include <catch2/catch.hpp>

#include "ayf/backends/eigen/backend.hpp"
#include "ayf/nn/activation.hpp"
#include "support/layer_check.hpp"

using ayf_test::layer_backend;
using ayf_test::layer_tensor;

namespace {

/// Stacked float rows [z; dz] (n rows each): z from -50 to 50 in steps of 1/80 over the rows (e^-z
/// beyond the float range at both ends too), dz = 1 + z / 100; z = -100 and 100 at (0, 0) and (0, 1),
/// where e^100 overflows a float (exp_polynomial clamps it): silu and silu' near 0 and z.
ayf::eigen_backend<float>::tensor silu_float_input(std::size_t n, std::size_t width) {
  ayf::eigen_backend<float>::tensor x(static_cast<Eigen::Index>(2 * n), static_cast<Eigen::Index>(width));
  for (std::size_t i = 0; i < n; ++i) {
    for (std::size_t j = 0; j < width; ++j) {
      const auto r = static_cast<Eigen::Index>(i), c = static_cast<Eigen::Index>(j);
      x(r, c) = static_cast<float>((static_cast<double>(i * width + j) - 4002.0) / 80.0);
      x(r + static_cast<Eigen::Index>(n), c) = 1.0f + x(r, c) / 100.0f;
    }
  }
  x(0, 0) = -100.0f;
  x(0, 1) = 100.0f;
  return x;
}

/// |got - want| / max(|want|, 1).
double relative_to_unit(long double got, long double want) {
  return static_cast<double>(std::abs(got - want) / std::max<long double>(std::abs(want), 1.0L));
}

}  // namespace

TEST_CASE("activation: silu(z) = z / (1 + exp(-z)) and its tangent", "[nn][layer]") {
  layer_backend::context ctx(1);
  ayf::nn::parameter_layout layout;
  const ayf::nn::activation<layer_backend> layer(6);
  ayf::nn::parameter_set<layer_backend> params(ctx, layout);
  ayf::nn::workspace<layer_backend> ws;
  ayf::nn::no_state st;
  const layer_tensor x = ayf_test::uniform_tensor(3, 6, 4, -4, 4), dx = ayf_test::uniform_tensor(3, 6, 5);
  layer_tensor y;
  layer.forward(ctx, params, ayf_test::stack_rows(x, dx), y, st, ws, 3);
  for (Eigen::Index i = 0; i < 3; ++i) {
    for (Eigen::Index j = 0; j < 6; ++j) {
      const double z = x(i, j), sg = 1 / (1 + std::exp(-z));
      CHECK(y(i, j) == Approx(z * sg).epsilon(1e-14));
      CHECK(y(3 + i, j) == Approx((sg + z * sg * (1 - sg)) * dx(i, j)).epsilon(1e-13));
    }
  }
  ayf_test::unary_layer_probe<ayf::nn::activation<layer_backend>> probe(layer, params);
  ayf_test::check_layer(probe.probe(), 3, 6, 41, -4, 4);
}

TEST_CASE("activation in float: silu and its tangent within a few ulps, and the fused GroupNorm + SiLU's operations",
          "[nn][layer][cpu]") {
  using F = ayf::eigen_backend<float>;
  F::context ctx(1);
  ayf::nn::parameter_layout layout;
  const std::size_t n = 4, width = 2001;
  const ayf::nn::activation<F> layer(width);
  ayf::nn::parameter_set<F> params(ctx, layout);
  ayf::nn::workspace<F> ws;
  ayf::nn::no_state st;
  const F::tensor x = silu_float_input(n, width);
  F::tensor y;
  layer.forward(ctx, params, x, y, st, ws, n);
  F::tensor dy = x.bottomRows(static_cast<Eigen::Index>(n)), grad;
  layer.backward(ctx, params, x, st, dy, &grad, ws, ayf::nn::gradient_mode::inputs);
  double worst = 0;
  std::size_t not_fused = 0;
  for (Eigen::Index i = 0; i < static_cast<Eigen::Index>(n); ++i) {
    for (Eigen::Index j = 0; j < static_cast<Eigen::Index>(width); ++j) {
      const float z = x(i, j), dz = x(i + static_cast<Eigen::Index>(n), j);
      const long double sg = 1 / (1 + std::exp(-static_cast<long double>(z)));
      const long double value = z * sg, tangent = sg * (1 + z * (1 - sg)) * dz;
      worst = std::max({worst, relative_to_unit(y(i, j), value),
                        relative_to_unit(y(i + static_cast<Eigen::Index>(n), j), tangent),
                        relative_to_unit(grad(i, j), tangent)});
      float slope = 0;
      const float fused = ayf::host_kernels::silu_with_slope(z, slope);
      not_fused += fused != y(i, j) || slope * dz != y(i + static_cast<Eigen::Index>(n), j);
    }
  }
  CHECK(worst < 2e-6);  // 8 float epsilons
  CHECK(not_fused == 0);
  CHECK(std::abs(y(0, 0)) < 1e-30f);
  CHECK(y(0, 1) == 100.0f);
}

TEST_CASE("silu_saving_sigmoid: silu(z), its tangent and backward from silu(z) and sigmoid(z) alone", "[nn][layer]") {
  layer_backend::context ctx(1);
  const ayf::nn::silu_saving_sigmoid<layer_backend> layer(6);
  const layer_tensor x = ayf_test::uniform_tensor(3, 6, 4, -6, 6), dx = ayf_test::uniform_tensor(3, 6, 5);
  layer_tensor a, sigmoid, grad;
  layer.forward(ctx, ayf_test::stack_rows(x, dx), a, sigmoid, 3);
  REQUIRE(a.rows() == 6);
  REQUIRE(sigmoid.rows() == 3);
  const layer_tensor g = ayf_test::uniform_tensor(3, 6, 6), start = ayf_test::uniform_tensor(3, 6, 7);
  layer.backward(ctx, a, sigmoid, g, grad, false);
  layer_tensor accumulated = start;
  layer.backward(ctx, a, sigmoid, g, accumulated, true);
  for (Eigen::Index i = 0; i < 3; ++i) {
    for (Eigen::Index j = 0; j < 6; ++j) {
      const double z = x(i, j), sg = 1 / (1 + std::exp(-z)), slope = sg + z * sg * (1 - sg);
      CHECK(sigmoid(i, j) == Approx(sg).epsilon(1e-14));
      CHECK(a(i, j) == Approx(z * sg).epsilon(1e-14));
      CHECK(a(3 + i, j) == Approx(slope * dx(i, j)).epsilon(1e-13));
      CHECK(grad(i, j) == Approx(slope * g(i, j)).epsilon(1e-13));
      CHECK(accumulated(i, j) == Approx(start(i, j) + slope * g(i, j)).epsilon(1e-13));
    }
  }

  // The layer checks by central differences, the backward reading only the forward's outputs.
  layer_tensor saved_a, saved_sigmoid, no_parameters(1, 0), no_gradients(1, 0);
  ayf_test::layer_probe probe;
  probe.forward = [&](const layer_tensor& z, std::size_t n) {
    layer.forward(ctx, z, saved_a, saved_sigmoid, n);
    return layer_tensor(saved_a);
  };
  probe.backward = [&](const layer_tensor& /*z*/, const layer_tensor& u, layer_tensor* grad_z,
                       ayf::nn::gradient_mode mode) {
    if (ayf::nn::wants_inputs(mode)) layer.backward(ctx, saved_a, saved_sigmoid, u, *grad_z, false);
  };
  probe.values = [&]() -> layer_tensor& { return no_parameters; };
  probe.gradients = [&]() -> layer_tensor& { return no_gradients; };
  ayf_test::check_layer(probe, 3, 6, 41, -6, 6);

  // Wrong shapes are named.
  layer_tensor wide = ayf_test::uniform_tensor(3, 7, 8);
  CHECK_THROWS_WITH(layer.forward(ctx, wide, a, sigmoid, 3), Catch::Contains("silu_saving_sigmoid::forward"));
  layer.forward(ctx, x, a, sigmoid, 3);
  CHECK_THROWS_WITH(layer.backward(ctx, a, sigmoid, wide, grad, false), Catch::Contains("grad_a"));
  layer_tensor short_grad = ayf_test::uniform_tensor(2, 6, 9);
  CHECK_THROWS_WITH(layer.backward(ctx, a, sigmoid, g, short_grad, true), Catch::Contains("grad_z"));
}

TEST_CASE("silu_saving_sigmoid in float: within a few ulps of silu, its tangent and backward", "[nn][layer][cpu]") {
  using F = ayf::eigen_backend<float>;
  F::context ctx(1);
  const std::size_t n = 4, width = 2001;
  const ayf::nn::silu_saving_sigmoid<F> layer(width);
  const F::tensor x = silu_float_input(n, width);
  F::tensor a, sigmoid, grad;
  layer.forward(ctx, x, a, sigmoid, n);
  const F::tensor dz = x.bottomRows(static_cast<Eigen::Index>(n));
  layer.backward(ctx, a, sigmoid, dz, grad, false);
  double worst = 0;
  for (Eigen::Index i = 0; i < static_cast<Eigen::Index>(n); ++i) {
    for (Eigen::Index j = 0; j < static_cast<Eigen::Index>(width); ++j) {
      const float z = x(i, j), v = x(i + static_cast<Eigen::Index>(n), j);
      const long double sg = 1 / (1 + std::exp(-static_cast<long double>(z)));
      const long double value = z * sg, tangent = sg * (1 + z * (1 - sg)) * v;
      worst = std::max({worst, relative_to_unit(a(i, j), value), relative_to_unit(sigmoid(i, j), sg),
                        relative_to_unit(a(i + static_cast<Eigen::Index>(n), j), tangent),
                        relative_to_unit(grad(i, j), tangent)});
    }
  }
  CHECK(worst < 2e-6);  // 8 float epsilons
  CHECK(std::abs(a(0, 0)) < 1e-30f);
  CHECK(a(0, 1) == 100.0f);
}
