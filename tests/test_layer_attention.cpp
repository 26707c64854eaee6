// tests/test_layer_attention.cpp: multi-head self-attention against a direct per-sample, per-head
// computation (softmax written out), its JVP (the softmax tangent and the bilinear dS = dQ K^T + Q dK^T)
// against central differences, and its backward against directional differences.
#include <cmath>

#include <catch2/catch.hpp>

#include "ayf/nn/attention.hpp"
#include "support/layer_check.hpp"

using ayf_test::layer_backend;
using ayf_test::layer_tensor;

namespace {

using B = layer_backend;

/// y = x + proj(attention(qkv(h))) with h = GN(x) given, written with plain loops.
layer_tensor direct_attention(const layer_tensor& x, const layer_tensor& h, const ayf::nn::parameter_layout& layout,
                              const layer_tensor& theta, std::size_t pixels, std::size_t channels, std::size_t heads) {
  auto block = [&](const char* name) {
    const auto* b = layout.find(name);
    REQUIRE(b != nullptr);
    return Eigen::Map<const layer_tensor>(theta.data() + b->offset, static_cast<Eigen::Index>(b->extent.rows),
                                          static_cast<Eigen::Index>(b->extent.cols));
  };
  const auto wqkv = block("a.qkv.w"), bqkv = block("a.qkv.b"), wp = block("a.proj.w"), bp = block("a.proj.b");
  const auto n = x.rows();
  const auto p = static_cast<Eigen::Index>(pixels), c = static_cast<Eigen::Index>(channels);
  const Eigen::Index d = c / static_cast<Eigen::Index>(heads);
  layer_tensor y = x;
  for (Eigen::Index b = 0; b < n; ++b) {
    // qkv per pixel: [P, 3C].
    layer_tensor hp(p, c);
    for (Eigen::Index q = 0; q < p; ++q)
      for (Eigen::Index ch = 0; ch < c; ++ch) hp(q, ch) = h(b, q * c + ch);
    layer_tensor qkv = hp * wqkv;
    qkv.rowwise() += bqkv.row(0);
    layer_tensor o(p, c);
    for (Eigen::Index head = 0; head < static_cast<Eigen::Index>(heads); ++head) {
      for (Eigen::Index i = 0; i < p; ++i) {
        std::vector<double> a(static_cast<std::size_t>(p));
        double top = -1e300, sum = 0;
        for (Eigen::Index j = 0; j < p; ++j) {
          double sij = 0;
          for (Eigen::Index k = 0; k < d; ++k) sij += qkv(i, head * d + k) * qkv(j, c + head * d + k);
          a[static_cast<std::size_t>(j)] = sij / std::sqrt(static_cast<double>(d));
          top = std::max(top, a[static_cast<std::size_t>(j)]);
        }
        for (auto& v : a) sum += (v = std::exp(v - top));
        for (Eigen::Index k = 0; k < d; ++k) {
          double acc = 0;
          for (Eigen::Index j = 0; j < p; ++j) acc += a[static_cast<std::size_t>(j)] / sum * qkv(j, 2 * c + head * d + k);
          o(i, head * d + k) = acc;
        }
      }
    }
    layer_tensor proj = o * wp;
    proj.rowwise() += bp.row(0);
    for (Eigen::Index q = 0; q < p; ++q)
      for (Eigen::Index ch = 0; ch < c; ++ch) y(b, q * c + ch) += proj(q, ch);
  }
  return y;
}

}  // namespace

TEST_CASE("self_attention: forward against a direct computation, JVP and backward", "[nn][layer][attention]") {
  B::context ctx(1);
  const ayf::nn::image_shape image{3, 4, 6};
  for (std::size_t heads : {std::size_t{1}, std::size_t{2}, std::size_t{3}}) {
    INFO(heads << " heads");
    ayf::nn::parameter_layout layout;
    const ayf::nn::self_attention<B> layer(layout, "a", image, heads, 2);
    // Larger weights than the initialisation, so the softmax is far from uniform.
    auto params = ayf_test::random_parameters(ctx, layout, 70 + heads, -1.0, 1.0);
    ayf::nn::workspace<B> ws;
    ayf::nn::attention_state<B> st;
    const std::size_t n = 3;
    const layer_tensor x = ayf_test::uniform_tensor(n, image.size(), 5, -2, 2);
    layer_tensor y;
    layer.forward(ctx, params, x, y, st, ws, n);
    // The normalised image h from an independently checked GroupNorm (test_conv.cpp) with the
    // layer's own gamma and beta.
    ayf::nn::parameter_layout norm_layout;
    const ayf::nn::group_norm<B> norm(norm_layout, "a.norm", image, 2);
    ayf::nn::parameter_set<B> norm_params(ctx, norm_layout);
    norm_params.values = params.values.leftCols(static_cast<Eigen::Index>(norm_layout.size()));
    layer_tensor h;
    ayf::nn::group_norm_state<B> nst;
    norm.forward(ctx, norm_params, x, h, nst, ws, n);
    const layer_tensor want = direct_attention(x, h, layout, params.values, image.pixels(), image.channels, heads);
    CHECK(ayf_test::relative_error(y, want) < 1e-12);
    ayf_test::unary_layer_probe<ayf::nn::self_attention<B>> probe(layer, params);
    ayf_test::check_layer(probe.probe(), n, image.size(), 80 + heads, -2, 2);
  }
}

TEST_CASE("self_attention: heads must divide the channels; a zero projection starts as the identity",
          "[nn][layer][attention]") {
  B::context ctx(1);
  ayf::nn::parameter_layout layout;
  CHECK_THROWS_WITH((ayf::nn::self_attention<B>(layout, "a", ayf::nn::image_shape{2, 2, 6}, 4, 2)),
                    Catch::Contains("heads"));
  ayf::nn::parameter_layout ok;
  const ayf::nn::self_attention<B> layer(ok, "a", ayf::nn::image_shape{2, 2, 4}, 2, 2);
  ayf::nn::parameter_set<B> params(ctx, ok);
  layer.initialise(ctx, params, 0.0);
  ayf::nn::workspace<B> ws;
  ayf::nn::attention_state<B> st;
  const layer_tensor x = ayf_test::uniform_tensor(2, 16, 9);
  layer_tensor y;
  layer.forward(ctx, params, x, y, st, ws, 2);
  CHECK(y == x);
}
