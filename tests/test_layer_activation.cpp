// tests/test_layer_activation.cpp: the SiLU activation layer against its closed form and the layer
// checks (the tangent rule a'(z) dz and the backward a'(z) dy by central differences).
#include <cmath>

#include <catch2/catch.hpp>

#include "ayf/nn/activation.hpp"
#include "support/layer_check.hpp"

using ayf_test::layer_backend;
using ayf_test::layer_tensor;

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
