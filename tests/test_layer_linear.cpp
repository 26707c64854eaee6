// tests/test_layer_linear.cpp: the linear layer y = x W + b against a direct loop, and the layer checks
// (JVP by central differences, backward by directional differences, gradient modes).
#include <catch2/catch.hpp>

#include "ayf/nn/linear.hpp"
#include "support/layer_check.hpp"

using ayf_test::layer_backend;
using ayf_test::layer_tensor;

TEST_CASE("linear: y = x W + b, with the bias on the primal rows only", "[nn][layer]") {
  layer_backend::context ctx(1);
  ayf::nn::parameter_layout layout;
  const ayf::nn::linear<layer_backend> layer(layout, "fc", 5, 3);
  auto params = ayf_test::random_parameters(ctx, layout, 11);
  ayf::nn::workspace<layer_backend> ws;
  ayf::nn::no_state st;
  const layer_tensor x = ayf_test::uniform_tensor(4, 5, 2), dx = ayf_test::uniform_tensor(4, 5, 3);
  layer_tensor y;
  layer.forward(ctx, params, ayf_test::stack_rows(x, dx), y, st, ws, 4);
  const double* theta = params.values.data();
  const auto& w = layout[layer.weight_block()];
  const auto& b = layout[layer.bias_block()];
  for (Eigen::Index i = 0; i < 4; ++i) {
    for (Eigen::Index j = 0; j < 3; ++j) {
      double primal = theta[b.offset + static_cast<std::size_t>(j)], tangent = 0;
      for (Eigen::Index k = 0; k < 5; ++k) {
        const double wkj = theta[w.offset + static_cast<std::size_t>(k * 3 + j)];
        primal += x(i, k) * wkj;
        tangent += dx(i, k) * wkj;
      }
      CHECK(y(i, j) == Approx(primal).epsilon(1e-14));
      CHECK(y(4 + i, j) == Approx(tangent).epsilon(1e-14));
    }
  }
  ayf_test::unary_layer_probe<ayf::nn::linear<layer_backend>> probe(layer, params);
  ayf_test::check_layer(probe.probe(), 4, 5, 21);
}

TEST_CASE("linear without bias declares one block and rejects a wrong input width", "[nn][layer]") {
  layer_backend::context ctx(1);
  ayf::nn::parameter_layout layout;
  const ayf::nn::linear<layer_backend> layer(layout, "fc", 3, 2, false);
  CHECK(layout.blocks().size() == 1);
  CHECK(layout.blocks()[0].name == "fc.w");
  auto params = ayf_test::random_parameters(ctx, layout, 5);
  ayf::nn::workspace<layer_backend> ws;
  ayf::nn::no_state st;
  layer_tensor y;
  CHECK_THROWS_WITH(layer.forward(ctx, params, ayf_test::uniform_tensor(2, 4, 1), y, st, ws, 2), Catch::Contains("'x'"));
  CHECK_THROWS_WITH(layer.forward(ctx, params, ayf_test::uniform_tensor(3, 3, 1), y, st, ws, 2),
                    Catch::Contains("primal_rows"));
  ayf_test::unary_layer_probe<ayf::nn::linear<layer_backend>> probe(layer, params);
  ayf_test::check_layer(probe.probe(), 3, 3, 31);
}
