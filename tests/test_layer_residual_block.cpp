// tests/test_layer_residual_block.cpp: the conditioned residual block out = skip(x) + conv2(silu(GN2(
// conv1(silu(GN1(x))) + e W_e))): against a direct composition of its layers (each checked on its own),
// the identity when conv2 is zero, and the layer checks (JVP and backward, for x and the embedding e).
#include <catch2/catch.hpp>

#include "ayf/nn/residual_block.hpp"
#include "support/layer_check.hpp"

using ayf_test::layer_backend;
using ayf_test::layer_tensor;

namespace {
using B = layer_backend;

/// The block seen as a unary layer of [x | e] (columns), so that the shared checks cover both inputs.
struct block_probe {
  B::context ctx{3};
  const ayf::nn::residual_block<B>& block;
  ayf::nn::parameter_set<B>& params;
  ayf::nn::workspace<B> ws{};
  ayf::nn::residual_block_state<B> st{};

  ayf_test::layer_probe probe() {
    const auto in = static_cast<Eigen::Index>(block.input_size());
    const auto e = static_cast<Eigen::Index>(block.conditioning_size());
    return {[this, in, e](const layer_tensor& xe, std::size_t n) {
              const layer_tensor x = xe.leftCols(in), emb = xe.rightCols(e);
              layer_tensor y;
              block.forward(ctx, params, x, emb, y, st, ws, n);
              return y;
            },
            [this, in, e](const layer_tensor& xe, const layer_tensor& u, layer_tensor* dxe, ayf::nn::gradient_mode mode) {
              const layer_tensor x = xe.leftCols(in), emb = xe.rightCols(e);
              const auto n = u.rows();
              layer_tensor dx, de = layer_tensor::Zero(n, e);
              block.backward(ctx, params, x, emb, st, u, &dx, ayf::nn::wants_inputs(mode) ? &de : nullptr, ws, mode);
              if (ayf::nn::wants_inputs(mode)) {
                dxe->resize(n, in + e);
                *dxe << dx, de;
              }
            },
            [this]() -> layer_tensor& { return params.values; }, [this]() -> layer_tensor& { return params.gradients; }};
  }
};
}  // namespace

TEST_CASE("residual_block: the identity (or the 1x1 skip) when conv2 is zero", "[nn][layer]") {
  B::context ctx(1);
  for (const std::size_t out : {std::size_t{4}, std::size_t{6}}) {
    INFO(out << " output channels");
    ayf::nn::parameter_layout layout;
    const ayf::nn::residual_block<B> block(layout, "r", ayf::nn::image_shape{3, 3, 4}, out, 5, 2, 1e-5);
    auto params = ayf_test::random_parameters(ctx, layout, 9);
    params.values.block(0, static_cast<Eigen::Index>(layout.find("r.conv2.w")->offset), 1,
                        static_cast<Eigen::Index>(layout.find("r.conv2.w")->extent.size()))
        .setZero();
    params.values.block(0, static_cast<Eigen::Index>(layout.find("r.conv2.b")->offset), 1,
                        static_cast<Eigen::Index>(out))
        .setZero();
    ayf::nn::workspace<B> ws;
    ayf::nn::residual_block_state<B> st;
    const layer_tensor x = ayf_test::uniform_tensor(2, 36, 4), e = ayf_test::uniform_tensor(2, 5, 5);
    layer_tensor y;
    block.forward(ctx, params, x, e, y, st, ws, 2);
    if (out == 4) {
      CHECK(y == x);
    } else {
      // y = x W_skip + b_skip per pixel.
      const auto* w = layout.find("r.skip.w");
      const auto* b = layout.find("r.skip.b");
      for (Eigen::Index s = 0; s < 2; ++s)
        for (Eigen::Index p = 0; p < 9; ++p)
          for (Eigen::Index o = 0; o < 6; ++o) {
            double want = params.values(0, static_cast<Eigen::Index>(b->offset) + o);
            for (Eigen::Index c = 0; c < 4; ++c)
              want += x(s, p * 4 + c) * params.values(0, static_cast<Eigen::Index>(w->offset) + c * 6 + o);
            CHECK(y(s, p * 6 + o) == Approx(want).epsilon(1e-13));
          }
    }
  }
}

TEST_CASE("residual_block: JVP and backward in x and the embedding", "[nn][layer]") {
  B::context ctx(1);
  for (const std::size_t out : {std::size_t{4}, std::size_t{6}}) {
    INFO(out << " output channels");
    ayf::nn::parameter_layout layout;
    const ayf::nn::residual_block<B> block(layout, "r", ayf::nn::image_shape{3, 4, 4}, out, 5, 2, 1e-5);
    auto params = ayf_test::random_parameters(ctx, layout, 19 + out);
    block_probe probe{B::context{3}, block, params};
    ayf_test::check_layer(probe.probe(), 3, block.input_size() + 5, 90 + out);
  }
}
