// Tests of the convolutional layers (ayf/nn/conv.hpp, group_norm.hpp and its group_norm_silu,
// resample.hpp) on the Eigen backend: forward against direct loops written here, the JVP on stacked
// [x; dx] rows (primal equals forward, tangent against central finite differences in double),
// backward against random directional finite differences of a scalar loss, and the resampling
// adjoints.
#include <catch2/catch.hpp>

#include <cmath>
#include <functional>
#include <tbb/info.h>
#include <tbb/task_arena.h>
#include <type_traits>
#include <vector>

#include "ayf/backends/eigen/backend.hpp"
#include "ayf/nn/conv.hpp"
#include "ayf/nn/group_norm.hpp"
#include "ayf/nn/resample.hpp"
#include "ayf/nn/unet.hpp"
#include "support/allocation_counter.hpp"
#include "support/layer_check.hpp"

namespace {

using B = ayf::eigen_backend<double>;
using ayf::shape;
using ayf::nn::image_shape;
using Index = Eigen::Index;
ayf::nn::no_state none;

// Index maps and functors are passed by value to device kernels on the Thrust backend.
namespace d = ayf::nn::detail;
static_assert(std::is_trivially_copyable_v<d::fast_divisor> && std::is_trivially_copyable_v<d::im2col_map> &&
              std::is_trivially_copyable_v<d::col2im_map> && std::is_trivially_copyable_v<d::image_to_group_map> &&
              std::is_trivially_copyable_v<d::group_to_image_map> &&
              std::is_trivially_copyable_v<d::channel_broadcast_map> &&
              std::is_trivially_copyable_v<d::nearest_up_map> && std::is_trivially_copyable_v<d::block_sum_map> &&
              std::is_trivially_copyable_v<d::concat_map> && std::is_trivially_copyable_v<d::channel_range_map> &&
              std::is_trivially_copyable_v<d::sample_channel_map> && std::is_trivially_copyable_v<d::pixel_sum_map> &&
              std::is_trivially_copyable_v<d::scaled_value> && std::is_trivially_copyable_v<d::scaled_square> &&
              std::is_trivially_copyable_v<d::scaled_product> && std::is_trivially_copyable_v<d::inverse_sqrt_plus> &&
              std::is_trivially_copyable_v<d::sine> && std::is_trivially_copyable_v<d::cos_times> &&
              std::is_trivially_copyable_v<d::heads_from_image_map> && std::is_trivially_copyable_v<d::image_from_heads_map> &&
              std::is_trivially_copyable_v<d::exponential>);

B::tensor random(B::context& ctx, shape sh) {
  B::tensor t = B::make(ctx, sh);
  B::randn(ctx, t);
  return t;
}

/// [x; dx] stacked along the batch.
B::tensor stack(const B::tensor& x, const B::tensor& dx) {
  B::tensor s(x.rows() + dx.rows(), x.cols());
  s << x, dx;
  return s;
}

double max_abs(const B::tensor& a) { return a.cwiseAbs().maxCoeff(); }
double max_abs_diff(const B::tensor& a, const B::tensor& b) { return (a - b).cwiseAbs().maxCoeff(); }

/// Element (b, y, x, c) of a channels-last batch.
double at(const B::tensor& t, const image_shape& im, std::size_t b, std::size_t y, std::size_t x, std::size_t c) {
  return t(static_cast<Index>(b), static_cast<Index>((y * im.width + x) * im.channels + c));
}

/// A layer under test: y = layer(theta, x) on primal-only rows, and its stacked JVP.
struct layer_functions {
  std::function<B::tensor(const B::tensor&)> forward;                     // rows all primal
  std::function<B::tensor(const B::tensor&, const B::tensor&)> jvp_pass;  // stacked [x; dx] -> stacked [y; dy]
  std::function<B::tensor(const B::tensor&, const B::tensor&)> backward;  // (x, dL/dy) -> dL/dx, grads accumulated
};

/// JVP: primal rows equal forward, tangent rows equal central differences along dx.
void check_jvp(B::context& ctx, const layer_functions& layer, const B::tensor& x, double tolerance) {
  const B::tensor dx = random(ctx, B::shape_of(x));
  const B::tensor y = layer.forward(x);
  const B::tensor stacked = layer.jvp_pass(x, dx);
  const Index n = x.rows();
  REQUIRE(stacked.rows() == 2 * n);
  const B::tensor primal = stacked.topRows(n), tangent = stacked.bottomRows(n);
  INFO("max |primal - forward| " << max_abs_diff(primal, y));
  CHECK(max_abs_diff(primal, y) <= 1e-13 * std::max(1.0, max_abs(y)));
  const double h = 1e-5;
  const B::tensor fd = (layer.forward(x + h * dx) - layer.forward(x - h * dx)) / (2 * h);
  const double error = max_abs_diff(tangent, fd) / std::max(1.0, max_abs(fd));
  INFO("relative |jvp - fd| " << error);
  CHECK(error < tolerance);
}

/// Backward: for L = sum w y + |y|^2 / 2 (dL/dy = w + y), <dL/dtheta, u> and <dL/dx, u> against
/// central differences of L along random directions u.
void check_backward(B::context& ctx, ayf::nn::parameter_set<B>& params, const layer_functions& layer,
                    const B::tensor& x, bool parameters) {
  const B::tensor y = layer.forward(x);
  const B::tensor w = random(ctx, B::shape_of(y));
  auto loss = [&](const B::tensor& out) { return w.cwiseProduct(out).sum() + 0.5 * out.squaredNorm(); };
  params.zero_gradients(ctx);
  const B::tensor grad_x = layer.backward(x, w + y);
  const B::tensor grad_theta = params.gradients;
  const double e = 1e-6;
  for (int direction = 0; direction < 3; ++direction) {
    const B::tensor u = random(ctx, B::shape_of(x));
    const double fd = (loss(layer.forward(x + e * u)) - loss(layer.forward(x - e * u))) / (2 * e);
    const double analytic = grad_x.cwiseProduct(u).sum();
    INFO("input direction " << direction << ": analytic " << analytic << " fd " << fd);
    CHECK(std::abs(analytic - fd) <= 1e-6 * std::max(1.0, std::abs(fd)));
  }
  if (!parameters) return;
  for (int direction = 0; direction < 3; ++direction) {
    const B::tensor u = random(ctx, B::shape_of(params.values));
    const B::tensor theta = params.values;
    auto loss_at = [&](double sign) {
      params.values = theta + sign * e * u;
      return loss(layer.forward(x));
    };
    const double fd = (loss_at(1) - loss_at(-1)) / (2 * e);
    params.values = theta;
    const double analytic = grad_theta.cwiseProduct(u).sum();
    INFO("parameter direction " << direction << ": analytic " << analytic << " fd " << fd);
    CHECK(std::abs(analytic - fd) <= 1e-6 * std::max(1.0, std::abs(fd)));
  }
}

/// A normalisation layer's JVP and backward against finite differences (check_jvp, check_backward),
/// and its backward after a stacked pass equal to that after a primal one (the primal statistics).
template <class Layer>
void check_norm_derivatives(B::context& ctx, const Layer& norm, ayf::nn::parameter_set<B>& params,
                            ayf::nn::workspace<B>& ws, const B::tensor& x) {
  typename Layer::state st;
  layer_functions f;
  f.forward = [&](const B::tensor& input) {
    B::tensor o;
    typename Layer::state s;
    norm.forward(ctx, params, input, o, s, ws, static_cast<std::size_t>(input.rows()));
    return o;
  };
  f.jvp_pass = [&](const B::tensor& input, const B::tensor& tangent) {
    B::tensor o;
    norm.forward(ctx, params, stack(input, tangent), o, st, ws, static_cast<std::size_t>(input.rows()));
    return o;
  };
  f.backward = [&](const B::tensor& input, const B::tensor& grad_y) {
    B::tensor o, g;
    norm.forward(ctx, params, input, o, st, ws, static_cast<std::size_t>(input.rows()));
    norm.backward(ctx, params, input, st, grad_y, &g, ws, ayf::nn::gradient_mode::both);
    return g;
  };
  check_jvp(ctx, f, x, 1e-6);
  check_backward(ctx, params, f, x, true);
  const B::tensor dx = random(ctx, B::shape_of(x)), w = random(ctx, B::shape_of(x));
  params.zero_gradients(ctx);
  const B::tensor g_plain = f.backward(x, w);
  const B::tensor grads_plain = params.gradients;
  f.jvp_pass(x, dx);
  B::tensor g_stacked;
  params.zero_gradients(ctx);
  norm.backward(ctx, params, x, st, w, &g_stacked, ws, ayf::nn::gradient_mode::both);
  CHECK(max_abs_diff(g_plain, g_stacked) < 1e-12);
  CHECK(max_abs_diff(grads_plain, params.gradients) < 1e-12);
}

}  // namespace

TEST_CASE("conv2d equals a direct convolution loop and its JVP and backward match finite differences",
          "[nn][conv][cpu]") {
  B::context ctx(21);
  const std::size_t kernel = GENERATE(std::size_t{1}, std::size_t{3});
  const image_shape in{5, 4, 3};
  const std::size_t cout = 4, batch = 3;
  ayf::nn::parameter_layout layout;
  layout.add("unrelated", 1, 2);  // the conv's blocks need not start the buffer
  const ayf::nn::conv2d<B> conv(layout, "conv", in, cout, kernel);
  ayf::nn::parameter_set<B> params(ctx, layout);
  B::randn(ctx, params.values);
  ayf::nn::workspace<B> ws;
  const B::tensor x = random(ctx, shape(batch, in.size()));
  INFO("kernel " << kernel);

  B::tensor y;
  conv.forward(ctx, params, x, y, none, ws, batch);
  REQUIRE(B::shape_of(y) == shape(batch, in.height * in.width * cout));
  const auto& block_w = params.layout[conv.weight_block()];
  const auto& block_b = params.layout[conv.bias_block()];
  auto weight = [&](std::size_t tap, std::size_t c, std::size_t o) {
    return params.values(0, static_cast<Index>(block_w.offset + (tap * in.channels + c) * cout + o));
  };
  const image_shape out{in.height, in.width, cout};
  const auto k = static_cast<long>(kernel), half = k / 2;
  double worst = 0;
  for (std::size_t b = 0; b < batch; ++b)
    for (std::size_t py = 0; py < in.height; ++py)
      for (std::size_t px = 0; px < in.width; ++px)
        for (std::size_t o = 0; o < cout; ++o) {
          double want = params.values(0, static_cast<Index>(block_b.offset + o));
          for (long ky = 0; ky < k; ++ky)
            for (long kx = 0; kx < k; ++kx) {
              const long sy = static_cast<long>(py) + ky - half, sx = static_cast<long>(px) + kx - half;
              if (sy < 0 || sx < 0 || sy >= static_cast<long>(in.height) || sx >= static_cast<long>(in.width)) continue;
              for (std::size_t c = 0; c < in.channels; ++c) {
                want += weight(static_cast<std::size_t>(ky * k + kx), c, o) *
                        at(x, in, b, static_cast<std::size_t>(sy), static_cast<std::size_t>(sx), c);
              }
            }
          worst = std::max(worst, std::abs(at(y, out, b, py, px, o) - want));
        }
  INFO("max |conv - direct loop| " << worst);
  CHECK(worst < 1e-12);

  layer_functions f;
  f.forward = [&](const B::tensor& input) {
    B::tensor o;
    conv.forward(ctx, params, input, o, none, ws, static_cast<std::size_t>(input.rows()));
    return o;
  };
  f.jvp_pass = [&](const B::tensor& input, const B::tensor& tangent) {
    B::tensor o;
    conv.forward(ctx, params, stack(input, tangent), o, none, ws, static_cast<std::size_t>(input.rows()));
    return o;
  };
  f.backward = [&](const B::tensor& input, const B::tensor& grad_y) {
    B::tensor g;
    conv.backward(ctx, params, input, none, grad_y, &g, ws, ayf::nn::gradient_mode::both);
    return g;
  };
  check_jvp(ctx, f, x, 1e-8);
  check_backward(ctx, params, f, x, true);
  // The unrelated block receives no gradient.
  params.zero_gradients(ctx);
  f.backward(x, y);
  CHECK(params.gradients(0, 0) == 0.0);
  CHECK(params.gradients(0, 1) == 0.0);

  // accumulate = true adds to y.
  B::tensor twice = y;
  conv.forward(ctx, params, x, twice, none, ws, batch, true);
  CHECK(max_abs_diff(twice, 2 * y) < 1e-12);
  REQUIRE_THROWS_WITH(conv.forward(ctx, params, B::tensor(random(ctx, shape(batch, 7))), y, none, ws, batch), Catch::Contains("'x'"));
  REQUIRE_THROWS_WITH(ayf::nn::conv2d<B>(layout, "even", in, cout, 2), Catch::Contains("'kernel'"));
}

TEST_CASE("conv2d in float agrees with the double layer", "[nn][conv][cpu]") {
  using F = ayf::eigen_backend<float>;
  B::context ctx(23);
  F::context fctx(23);
  const image_shape in{6, 6, 4};
  ayf::nn::parameter_layout layout, flayout;
  const ayf::nn::conv2d<B> conv(layout, "conv", in, 5, 3);
  const ayf::nn::conv2d<F> fconv(flayout, "conv", in, 5, 3);
  ayf::nn::parameter_set<B> params(ctx, layout);
  ayf::nn::parameter_set<F> fparams(fctx, flayout);
  B::randn(ctx, params.values);
  fparams.values = params.values.cast<float>();
  const B::tensor x = random(ctx, shape(2, in.size()));
  ayf::nn::workspace<B> ws;
  ayf::nn::workspace<F> fws;
  B::tensor y;
  F::tensor fy;
  conv.forward(ctx, params, x, y, none, ws, static_cast<std::size_t>(x.rows()));
  fconv.forward(fctx, fparams, F::tensor(x.cast<float>()), fy, none, fws, static_cast<std::size_t>(x.rows()));
  CHECK(max_abs_diff(fy.cast<double>(), y) < 1e-5 * std::max(1.0, max_abs(y)));
}

TEST_CASE("group_norm normalises each (sample, group) and its JVP and backward match finite differences",
          "[nn][conv][cpu]") {
  B::context ctx(25);
  const image_shape im{4, 3, 6};
  const std::size_t groups = GENERATE(std::size_t{1}, std::size_t{3}), batch = 3;
  const bool reference = GENERATE(false, true);  // the host primitives, then the gather path
  const double eps = 1e-5;
  ayf::nn::parameter_layout layout;
  ayf::nn::group_norm<B> norm(layout, "norm", im, groups, eps);
  norm.use_reference_path(reference);
  ayf::nn::parameter_set<B> params(ctx, layout);
  norm.initialise(ctx, params);
  CHECK(params.values.leftCols(6).isOnes());
  CHECK(params.values.rightCols(6).isZero());
  B::randn(ctx, params.values);
  ayf::nn::workspace<B> ws;
  B::tensor x = random(ctx, shape(batch, im.size()));
  x = 2 * x + B::tensor::Constant(x.rows(), x.cols(), 0.7);  // an offset and a scale the norm removes
  INFO("groups " << groups << (reference ? ", gather path" : ", host primitives"));

  B::tensor y;
  ayf::nn::group_norm_state<B> st;
  norm.forward(ctx, params, x, y, st, ws, static_cast<std::size_t>(x.rows()));
  CHECK(st.image_layout == !reference);
  const std::size_t cg = im.channels / groups;
  double worst = 0;
  for (std::size_t b = 0; b < batch; ++b)
    for (std::size_t g = 0; g < groups; ++g) {
      double sum = 0, sq = 0;
      const double count = static_cast<double>(im.pixels() * cg);
      for (std::size_t py = 0; py < im.height; ++py)
        for (std::size_t px = 0; px < im.width; ++px)
          for (std::size_t c = g * cg; c < (g + 1) * cg; ++c) sum += at(x, im, b, py, px, c);
      const double mean = sum / count;
      for (std::size_t py = 0; py < im.height; ++py)
        for (std::size_t px = 0; px < im.width; ++px)
          for (std::size_t c = g * cg; c < (g + 1) * cg; ++c) sq += std::pow(at(x, im, b, py, px, c) - mean, 2);
      const double rstd = 1 / std::sqrt(sq / count + eps);
      for (std::size_t py = 0; py < im.height; ++py)
        for (std::size_t px = 0; px < im.width; ++px)
          for (std::size_t c = g * cg; c < (g + 1) * cg; ++c) {
            const double gamma = params.values(0, static_cast<Index>(c)), beta = params.values(0, static_cast<Index>(6 + c));
            const double want = gamma * (at(x, im, b, py, px, c) - mean) * rstd + beta;
            worst = std::max(worst, std::abs(at(y, im, b, py, px, c) - want));
          }
    }
  INFO("max |group_norm - loop| " << worst);
  CHECK(worst < 1e-12);

  check_norm_derivatives(ctx, norm, params, ws, x);
  REQUIRE_THROWS_WITH(ayf::nn::group_norm<B>(layout, "bad", im, 4), Catch::Contains("'groups'"));
}

TEST_CASE("group_norm_silu is silu of the GroupNorm, and its JVP and backward match finite differences",
          "[nn][conv][cpu]") {
  B::context ctx(26);
  const image_shape im{4, 3, 6};
  const std::size_t groups = GENERATE(std::size_t{1}, std::size_t{3}), batch = 3;
  const bool reference = GENERATE(false, true);  // the fused primitives, then group_norm's gather path + activation
  ayf::nn::parameter_layout layout;
  ayf::nn::group_norm_silu<B> layer(layout, "norm", im, groups);
  layer.use_reference_path(reference);
  ayf::nn::parameter_set<B> params(ctx, layout);
  REQUIRE(layout.find("norm.gamma") != nullptr);  // group_norm's parameters: its checkpoints load
  REQUIRE(layout.find("norm.beta") != nullptr);
  B::randn(ctx, params.values);
  ayf::nn::workspace<B> ws;
  B::tensor x = random(ctx, shape(batch, im.size()));
  x = 2 * x + B::tensor::Constant(x.rows(), x.cols(), 0.7);
  INFO("groups " << groups << (reference ? ", composed path" : ", fused primitives"));

  // silu(z) of a plain GroupNorm's z, by a loop.
  B::tensor y;
  ayf::nn::group_norm_silu_state<B> st;
  layer.forward(ctx, params, x, y, st, ws, batch);
  CHECK(st.fused == !reference);
  ayf::nn::group_norm_state<B> plain_state;
  B::tensor z;
  layer.norm().forward(ctx, params, x, z, plain_state, ws, batch);
  double worst = 0;
  for (Index i = 0; i < z.size(); ++i) {
    const double zi = z.data()[i];
    worst = std::max(worst, std::abs(y.data()[i] - zi / (1 + std::exp(-zi))));
  }
  INFO("max |group_norm_silu - silu(group_norm)| " << worst);
  CHECK(worst < 1e-13);

  check_norm_derivatives(ctx, layer, params, ws, x);
}

TEST_CASE("upsampling, average pooling and channel concatenation equal direct loops and their adjoints",
          "[nn][conv][cpu]") {
  B::context ctx(27);
  const std::size_t batch = 2;
  const image_shape coarse{3, 2, 3}, fine{6, 4, 3};
  const ayf::nn::upsample_nearest<B> up(coarse);
  const ayf::nn::avg_pool<B> pool(fine);
  REQUIRE(up.output() == fine);
  REQUIRE(pool.output() == coarse);
  ayf::nn::parameter_set<B> none_params(ctx, ayf::nn::parameter_layout{});
  ayf::nn::workspace<B> ws;
  const B::tensor xc = random(ctx, shape(batch, coarse.size())), xf = random(ctx, shape(batch, fine.size()));
  B::tensor upped, pooled;
  up.forward(ctx, none_params, xc, upped, none, ws, 1);
  pool.forward(ctx, none_params, xf, pooled, none, ws, 1);
  double worst_up = 0, worst_pool = 0;
  for (std::size_t b = 0; b < batch; ++b)
    for (std::size_t py = 0; py < fine.height; ++py)
      for (std::size_t px = 0; px < fine.width; ++px)
        for (std::size_t c = 0; c < 3; ++c)
          worst_up = std::max(worst_up, std::abs(at(upped, fine, b, py, px, c) - at(xc, coarse, b, py / 2, px / 2, c)));
  for (std::size_t b = 0; b < batch; ++b)
    for (std::size_t py = 0; py < coarse.height; ++py)
      for (std::size_t px = 0; px < coarse.width; ++px)
        for (std::size_t c = 0; c < 3; ++c) {
          const double mean = (at(xf, fine, b, 2 * py, 2 * px, c) + at(xf, fine, b, 2 * py + 1, 2 * px, c) +
                               at(xf, fine, b, 2 * py, 2 * px + 1, c) + at(xf, fine, b, 2 * py + 1, 2 * px + 1, c)) /
                              4;
          worst_pool = std::max(worst_pool, std::abs(at(pooled, coarse, b, py, px, c) - mean));
        }
  CHECK(worst_up == 0.0);
  CHECK(worst_pool < 1e-15);

  // Adjoints: <A x, u> = <x, A^T u>.
  const B::tensor uf = random(ctx, shape(batch, fine.size())), uc = random(ctx, shape(batch, coarse.size()));
  B::tensor up_t, pool_t;
  up.backward(ctx, none_params, xc, none, uf, &up_t, ws, ayf::nn::gradient_mode::both);
  pool.backward(ctx, none_params, xf, none, uc, &pool_t, ws, ayf::nn::gradient_mode::both);
  CHECK(upped.cwiseProduct(uf).sum() == Approx(xc.cwiseProduct(up_t).sum()).epsilon(1e-12));
  CHECK(pooled.cwiseProduct(uc).sum() == Approx(xf.cwiseProduct(pool_t).sum()).epsilon(1e-12));
  // Stacked rows: the same map on both halves (the JVP of a linear layer).
  B::tensor stacked;
  up.forward(ctx, none_params, stack(xc, 2 * xc), stacked, none, ws, 1);
  CHECK(max_abs_diff(stacked, stack(upped, 2 * upped)) == 0.0);
  pool.forward(ctx, none_params, stack(xf, uf), stacked, none, ws, 1);
  B::tensor pooled_u;
  pool.forward(ctx, none_params, uf, pooled_u, none, ws, 1);
  CHECK(max_abs_diff(stacked, stack(pooled, pooled_u)) == 0.0);
  REQUIRE_THROWS_WITH(ayf::nn::avg_pool<B>(image_shape{5, 4, 1}), Catch::Contains("'input'"));

  // Concatenation along channels and its split (runs of gcd(Ca, Cb) channels move as blocks: 1, 2, 4).
  const image_shape ia{3, 2, 2};
  for (const auto& [ca, cb] : {std::pair<std::size_t, std::size_t>{2, 3}, {4, 6}, {8, 4}}) {
    INFO("Ca = " << ca << ", Cb = " << cb);
    const image_shape sa{3, 2, ca}, sb{3, 2, cb};
    const ayf::nn::concat_channels<B> cat(sa, sb);
    const image_shape joined = cat.output();
    REQUIRE(joined == image_shape{3, 2, ca + cb});
    for (std::size_t rows : {batch, 2 * batch}) {
      const B::tensor a = random(ctx, shape(rows, sa.size())), b2 = random(ctx, shape(rows, sb.size()));
      B::tensor y;
      cat.forward(ctx, a, b2, y, ws);
      // The split is the adjoint, and each part is dy's channel range exactly.
      const B::tensor u = random(ctx, shape(rows, joined.size()));
      B::tensor ga, gb;
      cat.backward(ctx, u, ga, gb);
      double worst = 0, split = 0;
      for (std::size_t b = 0; b < rows; ++b)
        for (std::size_t py = 0; py < 3; ++py)
          for (std::size_t px = 0; px < 2; ++px)
            for (std::size_t c = 0; c < ca + cb; ++c) {
              const bool first = c < ca;
              const double want = first ? at(a, sa, b, py, px, c) : at(b2, sb, b, py, px, c - ca);
              const double part = first ? at(ga, sa, b, py, px, c) : at(gb, sb, b, py, px, c - ca);
              worst = std::max(worst, std::abs(at(y, joined, b, py, px, c) - want));
              split = std::max(split, std::abs(part - at(u, joined, b, py, px, c)));
            }
      CHECK(worst == 0.0);
      CHECK(split == 0.0);
      CHECK(y.cwiseProduct(u).sum() == Approx(a.cwiseProduct(ga).sum() + b2.cwiseProduct(gb).sum()).epsilon(1e-12));
    }
  }
  REQUIRE_THROWS_WITH(ayf::nn::concat_channels<B>(ia, image_shape{2, 2, 3}), Catch::Contains("'b'"));

  // The host backends' one-pass copies (what the layer above ran) equal the generic path's gathers.
  static_assert(d::has_channel_concat<B>);
  {
    const std::size_t ca = 4, cb = 6, rows = 3, pixels = 6, g = 2;
    const B::tensor a = random(ctx, shape(rows, pixels * ca)), b2 = random(ctx, shape(rows, pixels * cb));
    B::tensor y, stage(1, a.size() + b2.size()), y_ref;
    B::concat_channels(ctx, y, a, b2, ca, cb);
    stage << a.reshaped<Eigen::RowMajor>(1, a.size()), b2.reshaped<Eigen::RowMajor>(1, b2.size());
    B::gather(ctx, y_ref, shape(rows, pixels * (ca + cb)), stage,
              d::concat_map(static_cast<std::int64_t>(pixels), ca / g, cb / g, static_cast<std::int64_t>(a.size() / g)),
              g);
    CHECK(B::shape_of(y) == shape(rows, pixels * (ca + cb)));
    CHECK(max_abs_diff(y, y_ref) == 0.0);
    const B::tensor u = random(ctx, B::shape_of(y));
    B::tensor ga, gb, ga_ref, gb_ref;
    B::split_channels(ctx, ga, gb, u, ca, cb);
    B::gather(ctx, ga_ref, shape(rows, pixels * ca), u, d::channel_range_map((ca + cb) / g, 0, ca / g), g);
    B::gather(ctx, gb_ref, shape(rows, pixels * cb), u, d::channel_range_map((ca + cb) / g, ca / g, cb / g), g);
    CHECK(max_abs_diff(ga, ga_ref) == 0.0);
    CHECK(max_abs_diff(gb, gb_ref) == 0.0);
    B::split_channels(ctx, ga, gb, y, ca, cb);  // split undoes concatenation
    CHECK(max_abs_diff(ga, a) == 0.0);
    CHECK(max_abs_diff(gb, b2) == 0.0);
    REQUIRE_THROWS_WITH(B::concat_channels(ctx, y, a, random(ctx, shape(rows, pixels * cb + 1)), ca, cb),
                        Catch::Contains("'b'"));
    REQUIRE_THROWS_WITH(B::concat_channels(ctx, y, random(ctx, shape(rows, 7)), b2, ca, cb), Catch::Contains("'a'"));
    REQUIRE_THROWS_WITH(B::concat_channels(ctx, y, a, b2, 0, cb), Catch::Contains("'ca'"));
    REQUIRE_THROWS_WITH(B::split_channels(ctx, ga, gb, random(ctx, shape(rows, 11)), ca, cb), Catch::Contains("'gy'"));
    B::tensor a_copy = a;
    REQUIRE_THROWS_WITH(B::concat_channels(ctx, a_copy, a_copy, b2, ca, cb), Catch::Contains("'out'"));
  }
}

TEST_CASE("fast_divisor divides exactly like the hardware division", "[nn][conv][cpu]") {
  using ayf::nn::detail::fast_divisor;
  std::vector<std::int64_t> divisors{1, 2, 3, 5, 7, 9, 10, 27, 64, 288, 784, 1000003, (std::int64_t{1} << 31) - 1,
                                     std::int64_t{1} << 31, (std::int64_t{1} << 31) + 1, std::int64_t{1} << 40};
  std::vector<std::int64_t> numerators{0, 1, 2, 63, 64, 65, 1000, (std::int64_t{1} << 31) - 2,
                                       (std::int64_t{1} << 31) - 1, std::int64_t{1} << 31, std::int64_t{1} << 45};
  for (int k = 0; k < 2000; ++k) {
    divisors.push_back(1 + static_cast<std::int64_t>(ayf::philox_uniform(5, static_cast<std::uint64_t>(2 * k)) * 5e4));
    numerators.push_back(static_cast<std::int64_t>(ayf::philox_uniform(5, static_cast<std::uint64_t>(2 * k + 1)) * 2.147e9));
  }
  std::size_t mismatches = 0;
  for (std::int64_t d : divisors) {
    const fast_divisor f(d);
    for (std::int64_t n : numerators) mismatches += f.div(n) != n / d;
    for (std::int64_t q = 0; q < 5; ++q) {  // multiples and their neighbours
      const std::int64_t n = q * d;
      mismatches += f.div(n) != q;
      if (n > 0) mismatches += f.div(n - 1) != (n - 1) / d;
      mismatches += f.div(n + 1) != (n + 1) / d;
    }
  }
  CHECK(mismatches == 0);
  REQUIRE_THROWS_WITH(fast_divisor(0), Catch::Contains("'divisor'"));
}

TEST_CASE("conv2d, GroupNorm and resampling pass the shared layer checks (JVP, backward, gradient modes)",
          "[nn][conv][layer][cpu]") {
  using ayf_test::check_layer;
  using ayf_test::layer_backend;
  layer_backend::context ctx(31);
  const image_shape im{4, 4, 4};
  for (const std::size_t kernel : {std::size_t{1}, std::size_t{3}}) {
    ayf::nn::parameter_layout layout;
    const ayf::nn::conv2d<layer_backend> conv(layout, "conv", im, 3, kernel);
    auto params = ayf_test::random_parameters(ctx, layout, 40 + kernel);
    ayf_test::unary_layer_probe<ayf::nn::conv2d<layer_backend>> probe(conv, params);
    check_layer(probe.probe(), 3, im.size(), 50 + kernel);
  }
  {
    ayf::nn::parameter_layout layout;
    const ayf::nn::group_norm<layer_backend> norm(layout, "norm", im, 2);
    auto params = ayf_test::random_parameters(ctx, layout, 45);
    ayf_test::unary_layer_probe<ayf::nn::group_norm<layer_backend>> probe(norm, params);
    check_layer(probe.probe(), 3, im.size(), 55, -1.0, 2.0);
  }
  for (const bool reference : {false, true}) {
    ayf::nn::parameter_layout layout;
    ayf::nn::group_norm_silu<layer_backend> norm(layout, "norm", im, 2);
    norm.use_reference_path(reference);
    auto params = ayf_test::random_parameters(ctx, layout, 46);
    ayf_test::unary_layer_probe<ayf::nn::group_norm_silu<layer_backend>> probe(norm, params);
    check_layer(probe.probe(), 3, im.size(), 56, -1.0, 2.0);
  }
  ayf::nn::parameter_set<layer_backend> none_params(ctx, ayf::nn::parameter_layout{});
  const ayf::nn::avg_pool<layer_backend> pool(im);
  ayf_test::unary_layer_probe<ayf::nn::avg_pool<layer_backend>> pool_probe(pool, none_params);
  check_layer(pool_probe.probe(), 3, im.size(), 60);
  const ayf::nn::upsample_nearest<layer_backend> up(im);
  ayf_test::unary_layer_probe<ayf::nn::upsample_nearest<layer_backend>> up_probe(up, none_params);
  check_layer(up_probe.probe(), 3, im.size(), 61);
}

namespace {

/// A conv2d case: image, kernel, output channels and primal rows n.
struct conv_case {
  image_shape in;
  std::size_t kernel, cout, n;
};

/// A conv2d on the path under test next to the gather reference, sharing parameters and workspace.
template <class S>
struct conv_pair {
  using BS = ayf::eigen_backend<S>;
  ayf::nn::parameter_layout layout;
  ayf::nn::conv2d<BS> fast, reference;
  ayf::nn::parameter_set<BS> params;
  ayf::nn::workspace<BS> ws;
  conv_pair(typename BS::context& ctx, const conv_case& c, ayf::nn::conv_path path)
      : fast(layout, "conv", c.in, c.cout, c.kernel), reference(fast), params(ctx, layout) {
    fast.use_path(path);
    reference.use_path(ayf::nn::conv_path::gather);
    BS::randn(ctx, params.values);
  }
};

/// max |a - b| / max(1, max |b|).
template <class T>
double relative_diff(const T& a, const T& b) {
  REQUIRE(a.rows() == b.rows());
  REQUIRE(a.cols() == b.cols());
  return static_cast<double>((a - b).cwiseAbs().maxCoeff()) / std::max(1.0, static_cast<double>(b.cwiseAbs().maxCoeff()));
}

/// A host fast path of conv2d (tiled or im2col) against the gather reference in precision S:
/// forward on n primal rows and on stacked 2n rows (the JVP), backward (parameters and input, fresh
/// and accumulated), on images with borders on every side (odd sizes, one-row and one-column
/// images, 1 to 9 channels, kernels 1, 3 and 5) and on cases with many tiles that cross image rows
/// and samples (the tiled weight gradient then sums several tiles per chunk).
template <class S>
void check_path_against_gather(ayf::nn::conv_path path, double bound) {
  using BS = ayf::eigen_backend<S>;
  using tensor = typename BS::tensor;
  static_assert(d::has_stencil_primitives<BS> && d::has_tiled_stencil<BS>, "the host backends bring both fast paths");
  typename BS::context ctx(77);
  const conv_case cases[] = {{{5, 4, 3}, 3, 5, 3},  {{5, 4, 3}, 5, 5, 3},   {{1, 6, 2}, 3, 5, 3},
                             {{1, 6, 2}, 5, 4, 2},  {{7, 3, 9}, 3, 5, 3},   {{7, 3, 9}, 5, 2, 3},
                             {{4, 4, 1}, 3, 5, 3},  {{4, 4, 1}, 5, 1, 3},   {{6, 1, 2}, 3, 3, 2},
                             {{5, 4, 7}, 1, 4, 3},  {{3, 5, 4}, 1, 6, 2},   {{13, 11, 8}, 5, 6, 4},
                             {{16, 16, 9}, 3, 5, 40}, {{9, 7, 6}, 3, 7, 12},  {{21, 64, 48}, 3, 4, 2},
                             {{21, 64, 48}, 5, 3, 2}};
  for (const conv_case& c : cases) {
    const image_shape& in = c.in;
    const std::size_t n = c.n;
    conv_pair<S> pair(ctx, c, path);
    REQUIRE(pair.fast.path() == path);
    REQUIRE(pair.reference.path() == ayf::nn::conv_path::gather);
    const ayf::host_kernels::stencil_dims dims{in.height, in.width, in.channels, c.kernel};
    const auto bands = BS::stencil_bands(dims);
    INFO("image " << in.height << "x" << in.width << "x" << in.channels << ", kernel " << c.kernel << ", "
                  << c.cout << " outputs, n " << n << ", " << bands.bands_per_sample << " bands of "
                  << bands.rows_per_band << " rows per sample");
    tensor stacked = BS::make(ctx, shape(2 * n, in.size()));
    BS::randn(ctx, stacked);
    const tensor x = stacked.topRows(static_cast<Index>(n));

    tensor y_fast, y_ref;
    pair.fast.forward(ctx, pair.params, x, y_fast, none, pair.ws, n);
    pair.reference.forward(ctx, pair.params, x, y_ref, none, pair.ws, n);
    CHECK(relative_diff(y_fast, y_ref) <= bound);
    pair.fast.forward(ctx, pair.params, stacked, y_fast, none, pair.ws, n);  // JVP: primal and tangent rows
    pair.reference.forward(ctx, pair.params, stacked, y_ref, none, pair.ws, n);
    CHECK(relative_diff(y_fast, y_ref) <= bound);
    tensor twice = y_ref;  // accumulate = true adds to y
    pair.fast.forward(ctx, pair.params, stacked, twice, none, pair.ws, n, true);
    CHECK(relative_diff(twice, tensor(2 * y_ref)) <= 2 * bound);
    // A per-row bias (the residual block's embedding term) on every row, primal and tangent: y_ref
    // with row r of it added to each pixel; on both paths, fresh and accumulating.
    tensor sample_bias = BS::make(ctx, shape(2 * n, c.cout));
    BS::randn(ctx, sample_bias);
    tensor y_biased = y_ref;
    for (std::size_t r = 0; r < 2 * n; ++r)
      for (std::size_t q = 0; q < in.height * in.width; ++q)
        y_biased.row(static_cast<Index>(r)).segment(static_cast<Index>(q * c.cout), static_cast<Index>(c.cout)) +=
            sample_bias.row(static_cast<Index>(r));
    for (ayf::nn::conv2d<BS>* layer : {&pair.fast, &pair.reference}) {
      tensor y_sb;
      layer->forward(ctx, pair.params, stacked, y_sb, none, pair.ws, n, false, &sample_bias);
      CHECK(relative_diff(y_sb, y_biased) <= bound);
      tensor acc = y_ref;
      layer->forward(ctx, pair.params, stacked, acc, none, pair.ws, n, true, &sample_bias);
      CHECK(relative_diff(acc, tensor(y_ref + y_biased)) <= 2 * bound);
    }
    REQUIRE_THROWS_WITH(pair.fast.forward(ctx, pair.params, x, y_fast, none, pair.ws, n, false, &sample_bias),
                        Catch::Contains("'sample_bias'"));

    tensor grad_y = BS::make(ctx, shape(n, in.height * in.width * c.cout));
    BS::randn(ctx, grad_y);
    tensor g_fast, g_ref;
    pair.params.zero_gradients(ctx);
    pair.fast.backward(ctx, pair.params, stacked, none, grad_y, &g_fast, pair.ws, ayf::nn::gradient_mode::both);
    const tensor grads_fast = pair.params.gradients;
    pair.params.zero_gradients(ctx);
    pair.reference.backward(ctx, pair.params, stacked, none, grad_y, &g_ref, pair.ws, ayf::nn::gradient_mode::both);
    const tensor grads_ref = pair.params.gradients;
    CHECK(relative_diff(g_fast, g_ref) <= bound);
    CHECK(relative_diff(grads_fast, grads_ref) <= bound);
    // Parameter gradients accumulate: a second pass on the path under test doubles them.
    pair.fast.backward(ctx, pair.params, x, none, grad_y, nullptr, pair.ws, ayf::nn::gradient_mode::parameters);
    CHECK(relative_diff(pair.params.gradients, tensor(2 * grads_ref)) <= 2 * bound);
    // accumulate_input adds to grad_x.
    tensor acc_fast = g_ref, acc_ref = g_ref;
    pair.fast.backward(ctx, pair.params, x, none, grad_y, &acc_fast, pair.ws, ayf::nn::gradient_mode::inputs, true);
    pair.reference.backward(ctx, pair.params, x, none, grad_y, &acc_ref, pair.ws, ayf::nn::gradient_mode::inputs, true);
    CHECK(relative_diff(acc_fast, acc_ref) <= bound);
    CHECK(relative_diff(acc_fast, tensor(2 * g_ref)) <= 4 * bound);
  }
}

}  // namespace

TEST_CASE("conv2d: the host tiled and im2col paths equal the gather reference, float and double",
          "[nn][conv][cpu]") {
  for (const auto path : {ayf::nn::conv_path::tiled, ayf::nn::conv_path::im2col}) {
    INFO("path " << (path == ayf::nn::conv_path::tiled ? "tiled" : "im2col"));
    check_path_against_gather<double>(path, 1e-13);
    check_path_against_gather<float>(path, 2e-6);
  }
  // The cases above cover one band per image with many bands per pass (more than the weight
  // gradient's 16 chunks), and wide images in several bands of rows, the last one shorter.
  using F = ayf::eigen_backend<float>;
  const ayf::host_kernels::stencil_dims many{16, 16, 9, 3}, wide3{21, 64, 48, 3}, wide5{21, 64, 48, 5};
  CHECK(B::stencil_bands(many).bands_per_sample == 1);
  CHECK(F::stencil_bands(many).rows_per_band == 16);
  CHECK(2 * 40 * B::stencil_bands(many).bands_per_sample > 16);
  for (const auto& dims : {wide3, wide5}) {
    for (const auto& grid : {B::stencil_bands(dims), F::stencil_bands(dims)}) {
      CHECK(grid.bands_per_sample > 1);
      CHECK(grid.rows_per_band * grid.bands_per_sample >= 21);
      CHECK(grid.rows_per_band * (grid.bands_per_sample - 1) < 21);
    }
  }
  CHECK(21 % F::stencil_bands(wide5).rows_per_band != 0);
  CHECK(F::stencil_bands(wide3).rows_per_band > 1);
}

TEST_CASE("conv2d's tiled path is bitwise the same on one oneTBB thread and on many, and allocates nothing once warm",
          "[nn][conv][determinism][allocation][cpu]") {
  using F = ayf::eigen_backend<float>;
  F::context ctx(79);
  const conv_case c{{16, 16, 9}, 3, 8, 40};
  conv_pair<float> pair(ctx, c, ayf::nn::conv_path::tiled);
  F::tensor stacked = F::make(ctx, shape(2 * c.n, c.in.size()));
  F::randn(ctx, stacked);
  F::tensor grad_y = F::make(ctx, shape(c.n, c.in.height * c.in.width * c.cout));
  F::randn(ctx, grad_y);
  struct pass {
    F::tensor y, grad_x, grads;
  };
  auto run = [&](pass& out) {
    pair.fast.forward(ctx, pair.params, stacked, out.y, none, pair.ws, c.n);
    pair.params.zero_gradients(ctx);
    pair.fast.backward(ctx, pair.params, stacked, none, grad_y, &out.grad_x, pair.ws, ayf::nn::gradient_mode::both);
  };
  const int threads = tbb::info::default_concurrency();
  if (threads < 2) WARN("only one oneTBB thread: the parallel runs below run serially");
  tbb::task_arena one(1), many(threads);
  pass serial, parallel;
  many.execute([&] { run(parallel); });
  parallel.grads = pair.params.gradients;
  one.execute([&] { run(serial); });
  serial.grads = pair.params.gradients;
  CHECK(relative_diff(serial.y, parallel.y) == 0.0);
  CHECK(relative_diff(serial.grad_x, parallel.grad_x) == 0.0);
  CHECK(relative_diff(serial.grads, parallel.grads) == 0.0);
  // Warm (workspace, outputs and the column slots grown): the next pass allocates nothing on the
  // calling thread (the only thread of `one`).
  std::size_t allocations = 0;
  one.execute([&] {
    const std::size_t before = ayf_test_alloc::calls;
    run(serial);
    allocations = ayf_test_alloc::calls - before;
  });
  CHECK(allocations == 0);
}

TEST_CASE("host im2col / col2im equal gather and gather_sum with the conv index maps, the tiled stencil products "
          "equal the column matrix's, and all check their arguments",
          "[nn][conv][backend][cpu]") {
  B::context ctx(78);
  const image_shape in{6, 5, 4};
  const std::size_t rows = 2;
  for (const std::size_t kernel : {std::size_t{1}, std::size_t{3}, std::size_t{7}}) {
    INFO("kernel " << kernel);
    const auto k = static_cast<std::int64_t>(kernel);
    const ayf::host_kernels::stencil_dims dims{in.height, in.width, in.channels, kernel};
    const B::tensor x = random(ctx, shape(rows + 1, in.size()));  // one extra row: only `rows` are read
    const shape sh(rows * in.pixels(), kernel * kernel * in.channels);
    B::tensor cols, cols_ref;
    B::im2col(ctx, cols, x, rows, dims);
    B::gather(ctx, cols_ref, sh, x, d::im2col_map(6, 5, k), 4);
    CHECK(max_abs_diff(cols, cols_ref) == 0.0);  // copies: exactly equal
    const B::tensor dcols = random(ctx, sh);
    B::tensor img, img_ref;
    B::col2im(ctx, img, dcols, rows, dims, false);
    B::gather_sum(ctx, img_ref, shape(rows, in.size()), dcols, d::col2im_map(6, 5, k), k * k, 4);
    CHECK(max_abs_diff(img, img_ref) < 1e-13);
    B::tensor twice = img;
    B::col2im(ctx, twice, dcols, rows, dims, true);
    CHECK(max_abs_diff(twice, 2 * img_ref) < 1e-13);

    // The tiled products against the column matrix and Eigen's products: y = cols W,
    // dx = col2im(dy W^T), dW = cols^T dy (+ the values already there).
    const std::size_t cout = 3;
    const B::tensor w = random(ctx, shape(kernel * kernel * in.channels, cout));
    const B::tensor dy = random(ctx, shape(rows, in.pixels() * cout));
    B::tensor scratch, y, dx, dw = random(ctx, B::shape_of(w));
    const B::tensor dw0 = dw;
    B::stencil_gemm(ctx, y, x, rows, dims, w, false, scratch);
    const B::tensor y_ref = cols_ref * w;
    CHECK(max_abs_diff(B::tensor(y.reshaped<Eigen::RowMajor>(sh.rows, cout)), y_ref) < 1e-13);
    // With a row bias in the band loop: row r of it added to every pixel of row r.
    const B::tensor row_bias = random(ctx, shape(rows, cout));
    B::tensor y_biased, y_plus = y;
    B::stencil_gemm(ctx, y_biased, x, rows, dims, w, row_bias, false, scratch);
    for (std::size_t r = 0; r < rows; ++r)
      for (std::size_t q = 0; q < in.pixels(); ++q) y_plus.row(r).segment(q * cout, cout) += row_bias.row(r);
    CHECK(max_abs_diff(y_biased, y_plus) < 1e-13);
    REQUIRE_THROWS_WITH(B::stencil_gemm(ctx, y_biased, x, rows, dims, w, random(ctx, shape(rows + 1, cout)), false,
                                        scratch),
                        Catch::Contains("'row_bias'"));
    const B::tensor dy_pixels = dy.reshaped<Eigen::RowMajor>(sh.rows, cout);
    const B::tensor dcols_w = dy_pixels * w.transpose();
    B::tensor dx_ref;
    B::col2im(ctx, dx_ref, dcols_w, rows, dims, false);
    B::stencil_gemm_adjoint(ctx, dx, dy, rows, dims, w, false, scratch);
    CHECK(max_abs_diff(dx, dx_ref) < 1e-13);
    B::stencil_gemm_weights(ctx, dw, x, dy, rows, dims, scratch);
    CHECK(max_abs_diff(dw, B::tensor(dw0 + cols_ref.transpose() * dy_pixels)) < 1e-13);
    // With the bias gradient in the same pass: dW as above, db += the column sums of dy's pixels.
    B::tensor dw_fused = dw0, db = random(ctx, shape(1, cout));
    const B::tensor db0 = db;
    B::stencil_gemm_weights(ctx, dw_fused, db, x, dy, rows, dims, scratch);
    CHECK(max_abs_diff(dw_fused, dw) == 0);
    CHECK(max_abs_diff(db, B::tensor(db0 + dy_pixels.colwise().sum())) < 1e-13);
    B::tensor db_wrong = random(ctx, shape(1, cout + 1));
    REQUIRE_THROWS_WITH(B::stencil_gemm_weights(ctx, dw_fused, db_wrong, x, dy, rows, dims, scratch),
                        Catch::Contains("'db'"));
  }
  {
    const ayf::host_kernels::stencil_dims dims3{in.height, in.width, in.channels, 3};
    const B::tensor x = random(ctx, shape(rows, in.size())), w = random(ctx, shape(36, 2));
    B::tensor scratch, y = random(ctx, shape(rows, in.pixels() * 3)), dw = random(ctx, shape(36, 3));
    REQUIRE_THROWS_WITH(B::stencil_gemm(ctx, y, x, rows + 1, dims3, w, false, scratch), Catch::Contains("'x'"));
    REQUIRE_THROWS_WITH(B::stencil_gemm(ctx, y, x, rows, dims3, random(ctx, shape(35, 2)), false, scratch),
                        Catch::Contains("'W'"));
    REQUIRE_THROWS_WITH(B::stencil_gemm(ctx, y, x, rows, dims3, w, true, scratch), Catch::Contains("'y'"));
    REQUIRE_THROWS_WITH(B::stencil_gemm_adjoint(ctx, y, x, rows, dims3, w, false, scratch), Catch::Contains("'dy'"));
    REQUIRE_THROWS_WITH(B::stencil_gemm_weights(ctx, dw, x, x, rows, dims3, scratch), Catch::Contains("'dy'"));
    REQUIRE_THROWS_WITH(B::stencil_gemm_weights(ctx, dw, x, x, rows, ayf::host_kernels::stencil_dims{6, 5, 4, 4},
                                                scratch),
                        Catch::Contains("'kernel'"));
  }
  const ayf::host_kernels::stencil_dims dims{in.height, in.width, in.channels, 3};
  B::tensor cols;
  REQUIRE_THROWS_WITH(B::im2col(ctx, cols, random(ctx, shape(1, in.size())), 2, dims), Catch::Contains("'x'"));
  REQUIRE_THROWS_WITH(B::im2col(ctx, cols, random(ctx, shape(2, in.size())), 2,
                                ayf::host_kernels::stencil_dims{6, 5, 4, 2}),
                      Catch::Contains("'kernel'"));
  B::tensor img = random(ctx, shape(2, in.size()));
  REQUIRE_THROWS_WITH(B::col2im(ctx, img, random(ctx, shape(5, 36)), 2, dims, false), Catch::Contains("'cols'"));
  B::tensor small = random(ctx, shape(1, in.size()));
  REQUIRE_THROWS_WITH(B::col2im(ctx, small, random(ctx, shape(2 * in.pixels(), 36)), 2, dims, true),
                      Catch::Contains("'x'"));
}

namespace {

/// GroupNorm (Layer = group_norm) through the host primitives (B::group_norm_forward /
/// group_norm_backward on the channels-last layout) against the gather path, or GroupNorm + SiLU
/// (Layer = group_norm_silu) through the fused primitives against the gather path composed with the
/// activation layer, in precision S: forward on n rows (y, xhat, rstd) and on stacked [x; dx] rows,
/// backward in every gradient mode with fresh and accumulated parameter gradients, after a primal
/// and after a stacked pass. Groups of 1 to 130 channels (several runs of
/// host_kernels::group_norm_lanes, several blocks per sample), G = 1 and G = C, odd and one-pixel
/// images, random gamma and beta.
template <class S, template <class> class Layer>
void check_group_norm_primitives_against_gather(double bound) {
  using BS = ayf::eigen_backend<S>;
  using tensor = typename BS::tensor;
  using layer_type = Layer<BS>;
  constexpr bool fused = std::is_same_v<layer_type, ayf::nn::group_norm_silu<BS>>;
  static_assert(d::has_group_norm_primitives<BS> && d::has_group_norm_silu_primitives<BS>,
                "the host backends bring the GroupNorm primitives");
  // The fields of a state: whether it is on the fast path, and its GroupNorm part.
  auto fast_state = [](const typename layer_type::state& st) {
    if constexpr (fused) {
      return st.fused && st.norm.image_layout;
    } else {
      return st.image_layout;
    }
  };
  auto norm_state = [](const typename layer_type::state& st) -> const ayf::nn::group_norm_state<BS>& {
    if constexpr (fused) {
      return st.norm;
    } else {
      return st;
    }
  };
  auto norm_of = [](const layer_type& layer) -> const ayf::nn::group_norm<BS>& {
    if constexpr (fused) {
      return layer.norm();
    } else {
      return layer;
    }
  };
  typename BS::context ctx(79);
  struct norm_case {
    image_shape image;
    std::size_t groups;
  };
  const norm_case cases[] = {{{3, 5, 8}, 2},  {{3, 5, 8}, 8},  {{3, 5, 8}, 1}, {{1, 1, 4}, 1},  {{1, 1, 4}, 4},
                             {{1, 1, 6}, 3},  {{2, 3, 130}, 1}, {{3, 1, 130}, 2}, {{2, 2, 96}, 24}, {{1, 3, 192}, 2}};
  auto diff = [](const tensor& a, const tensor& b) {
    REQUIRE(a.rows() == b.rows());
    REQUIRE(a.cols() == b.cols());
    return static_cast<double>((a - b).cwiseAbs().maxCoeff()) /
           std::max(1.0, static_cast<double>(b.cwiseAbs().maxCoeff()));
  };
  for (const norm_case& nc : cases) {
    const image_shape& im = nc.image;
    const std::size_t n = 3;
    INFO("image " << im.height << "x" << im.width << "x" << im.channels << ", groups " << nc.groups);
    ayf::nn::parameter_layout layout;
    layout.add("unrelated", 1, 3);  // the norm's blocks need not start the buffer
    layer_type fast(layout, "norm", im, nc.groups);
    layer_type reference = fast;
    reference.use_reference_path(true);
    REQUIRE(reference.reference_path());
    REQUIRE_FALSE(fast.reference_path());
    ayf::nn::parameter_set<BS> params(ctx, layout);
    BS::randn(ctx, params.values);
    params.values.array() += S(0.5);  // gamma away from 0 and 1, beta away from 0
    ayf::nn::workspace<BS> ws;
    tensor stacked = BS::make(ctx, shape(2 * n, im.size()));
    BS::randn(ctx, stacked);
    stacked.topRows(static_cast<Index>(n)).array() = S(3) * stacked.topRows(static_cast<Index>(n)).array() + S(1.5);
    const tensor x = stacked.topRows(static_cast<Index>(n));
    tensor grad_y = BS::make(ctx, shape(n, im.size()));
    BS::randn(ctx, grad_y);

    typename layer_type::state st_fast, st_ref;
    tensor y_fast, y_ref, xhat_fast, xhat_ref;
    for (const bool jvp : {false, true}) {
      INFO((jvp ? "after a stacked pass" : "after a primal pass"));
      const tensor& input = jvp ? stacked : x;
      fast.forward(ctx, params, input, y_fast, st_fast, ws, n);
      reference.forward(ctx, params, input, y_ref, st_ref, ws, n);
      REQUIRE(fast_state(st_fast));
      REQUIRE_FALSE(fast_state(st_ref));
      REQUIRE_FALSE(norm_state(st_ref).image_layout);
      CHECK(diff(y_fast, y_ref) <= bound);
      norm_of(fast).normalised(ctx, norm_state(st_fast), xhat_fast);
      norm_of(reference).normalised(ctx, norm_state(st_ref), xhat_ref);
      CHECK(diff(xhat_fast, xhat_ref) <= bound);
      CHECK(diff(norm_state(st_fast).rstd, norm_state(st_ref).rstd) <= bound);

      using ayf::nn::gradient_mode;
      for (const gradient_mode mode : {gradient_mode::parameters, gradient_mode::inputs, gradient_mode::both}) {
        for (const bool fresh : {true, false}) {
          INFO("mode " << static_cast<unsigned>(mode) << (fresh ? ", fresh gradients" : ", accumulated gradients"));
          tensor start = BS::make(ctx, BS::shape_of(params.gradients));
          if (!fresh) BS::randn(ctx, start);
          const tensor sentinel = tensor::Constant(2, 3, S(7));  // left alone without the inputs' gradient
          tensor g_fast = sentinel, g_ref = sentinel;
          params.gradients = start;
          fast.backward(ctx, params, input, st_fast, grad_y, &g_fast, ws, mode);
          const tensor grads_fast = params.gradients;
          params.gradients = start;
          reference.backward(ctx, params, input, st_ref, grad_y, &g_ref, ws, mode);
          CHECK(diff(grads_fast, params.gradients) <= bound);
          if (ayf::nn::wants_parameters(mode)) {
            CHECK(diff(grads_fast, start) > 100 * bound);  // something was accumulated
          } else {
            CHECK(grads_fast == start);
          }
          CHECK(diff(g_fast, g_ref) <= bound);
          if (!ayf::nn::wants_inputs(mode)) CHECK(g_fast == sentinel);
          // No input gradient asked for through a null pointer either.
          params.gradients = start;
          fast.backward(ctx, params, input, st_fast, grad_y, nullptr, ws, mode);
          CHECK(diff(params.gradients, grads_fast) == 0.0);
        }
      }
      // backward follows the state's layout, whatever the layer's path now is.
      tensor g_swapped, g_ref;
      params.zero_gradients(ctx);
      reference.backward(ctx, params, input, st_fast, grad_y, &g_swapped, ws, ayf::nn::gradient_mode::both);
      fast.backward(ctx, params, input, st_ref, grad_y, &g_ref, ws, ayf::nn::gradient_mode::both);
      CHECK(diff(g_swapped, g_ref) <= bound);
    }
  }
}

}  // namespace

TEST_CASE("group_norm: the host primitives on the channels-last layout equal the gather path, float and double",
          "[nn][conv][cpu]") {
  check_group_norm_primitives_against_gather<double, ayf::nn::group_norm>(1e-12);
  check_group_norm_primitives_against_gather<float, ayf::nn::group_norm>(1e-5);
}

TEST_CASE("group_norm_silu: the fused host primitives equal the gather path composed with the activation, float "
          "and double",
          "[nn][conv][cpu]") {
  check_group_norm_primitives_against_gather<double, ayf::nn::group_norm_silu>(1e-12);
  check_group_norm_primitives_against_gather<float, ayf::nn::group_norm_silu>(1e-5);
}

TEST_CASE("host group_norm primitives check their arguments, give the same bits however the tasks are split, and "
          "allocate nothing once warmed up",
          "[nn][conv][backend][cpu]") {
  B::context ctx(80);
  const ayf::host_kernels::group_norm_dims dims{6, 4, 2, 1e-5};
  const B::tensor x = random(ctx, shape(4, 24)), gamma = random(ctx, shape(1, 4)), beta = random(ctx, shape(1, 4));
  B::tensor y, xhat, rstd, sum_xhat, sum_dy, grad_x;
  B::group_norm_forward(ctx, y, xhat, rstd, x, gamma, beta, 2, dims);  // stacked rows: n = 2
  CHECK(B::shape_of(y) == shape(4, 24));
  CHECK(B::shape_of(xhat) == shape(2, 24));
  CHECK(B::shape_of(rstd) == shape(4, 1));
  REQUIRE_THROWS_WITH(B::group_norm_forward(ctx, y, xhat, rstd, x, gamma, beta, 3, dims), Catch::Contains("'x'"));
  REQUIRE_THROWS_WITH(B::group_norm_forward(ctx, y, xhat, rstd, x, random(ctx, shape(1, 5)), beta, 2, dims),
                      Catch::Contains("'gamma'"));
  REQUIRE_THROWS_WITH(B::group_norm_forward(ctx, y, xhat, rstd, x, gamma, beta, 2,
                                            ayf::host_kernels::group_norm_dims{8, 3, 2, 1e-5}),
                      Catch::Contains("'groups'"));
  REQUIRE_THROWS_WITH(B::group_norm_forward(ctx, y, xhat, rstd, x, gamma, beta, 2,
                                            ayf::host_kernels::group_norm_dims{6, 4, 2, 0.0}),
                      Catch::Contains("'eps'"));
  const B::tensor dy = random(ctx, shape(2, 24));
  REQUIRE_THROWS_WITH(B::group_norm_backward(ctx, &grad_x, sum_xhat, sum_dy, xhat, random(ctx, shape(3, 1)), dy, gamma,
                                             dims),
                      Catch::Contains("'rstd'"));
  REQUIRE_THROWS_WITH(B::group_norm_backward(ctx, &grad_x, sum_xhat, sum_dy, xhat, rstd, random(ctx, shape(3, 24)), gamma, dims),
                      Catch::Contains("'xhat'"));

  // The same bits on one thread and split into as many tasks as the executor makes: the sums'
  // order depends on the shapes alone (C/G = 96 spans two runs; 8 blocks of groups per sample).
  {
    const ayf::host_kernels::group_norm_dims wide{5, 192, 2, 1e-5}, narrow{5, 192, 96, 1e-5};
    for (const auto& dd : {wide, narrow}) {
      const B::tensor xs = random(ctx, shape(6, 960)), g = random(ctx, shape(1, 192)), bt = random(ctx, shape(1, 192));
      const B::tensor dys = random(ctx, shape(3, 960));
      B::context serial, split;
      serial.executor.min_parallel_work = std::size_t{1} << 40;
      split.executor.min_parallel_work = 1;
      B::tensor y1, h1, r1, a1, b1, gx1, y2, h2, r2, a2, b2, gx2;
      B::group_norm_forward(serial, y1, h1, r1, xs, g, bt, 3, dd);
      B::group_norm_forward(split, y2, h2, r2, xs, g, bt, 3, dd);
      B::group_norm_backward(serial, &gx1, a1, b1, h1, r1, dys, g, dd);
      B::group_norm_backward(split, &gx2, a2, b2, h2, r2, dys, g, dd);
      CHECK((y1.array() == y2.array()).all());
      CHECK((r1.array() == r2.array()).all());
      CHECK((gx1.array() == gx2.array()).all());
      CHECK((a1.array() == a2.array()).all());
      CHECK((b1.array() == b2.array()).all());
      // GroupNorm + SiLU fused likewise.
      B::tensor s1, s2;
      B::group_norm_silu_forward(serial, y1, h1, r1, s1, xs, g, bt, 3, dd);
      B::group_norm_silu_forward(split, y2, h2, r2, s2, xs, g, bt, 3, dd);
      B::group_norm_silu_backward(serial, &gx1, a1, b1, h1, r1, s1, dys, g, dd);
      B::group_norm_silu_backward(split, &gx2, a2, b2, h2, r2, s2, dys, g, dd);
      CHECK((y1.array() == y2.array()).all());
      CHECK((s1.array() == s2.array()).all());
      CHECK((gx1.array() == gx2.array()).all());
      CHECK((a1.array() == a2.array()).all());
      CHECK((b1.array() == b2.array()).all());
    }
  }
  {
    B::tensor slope;
    B::group_norm_silu_forward(ctx, y, xhat, rstd, slope, x, gamma, beta, 2, dims);
    CHECK(B::shape_of(slope) == shape(2, 24));
    REQUIRE_THROWS_WITH(B::group_norm_silu_forward(ctx, y, xhat, rstd, slope, x, gamma, beta, 3, dims),
                        Catch::Contains("group_norm_silu_forward"));
    REQUIRE_THROWS_WITH(B::group_norm_silu_backward(ctx, &grad_x, sum_xhat, sum_dy, xhat, rstd, random(ctx, shape(2, 23)),
                                                    dy, gamma, dims),
                        Catch::Contains("'slope'"));
  }

  // The layer, warmed up: a stacked forward and a backward allocate nothing (this thread's count;
  // the sizes stay below the executor's parallel threshold, so every loop runs here).
  const image_shape im{3, 3, 8};
  ayf::nn::parameter_layout layout;
  const ayf::nn::group_norm<B> norm(layout, "norm", im, 4);
  ayf::nn::parameter_set<B> params(ctx, layout);
  B::randn(ctx, params.values);
  ayf::nn::workspace<B> ws;
  ayf::nn::group_norm_state<B> st;
  const B::tensor stacked = random(ctx, shape(4, im.size())), grad_y = random(ctx, shape(2, im.size()));
  B::tensor out, grad_in;
  std::size_t allocations = 0;
  for (int step = 0; step < 3; ++step) {
    const std::size_t before = ayf_test_alloc::calls;
    norm.forward(ctx, params, stacked, out, st, ws, 2);
    norm.backward(ctx, params, stacked, st, grad_y, &grad_in, ws, ayf::nn::gradient_mode::both);
    if (step > 0) allocations += ayf_test_alloc::calls - before;
  }
  CHECK(allocations == 0);
  // The fused GroupNorm + SiLU as well.
  ayf::nn::parameter_layout fused_layout;
  const ayf::nn::group_norm_silu<B> fused(fused_layout, "norm", im, 4);
  ayf::nn::group_norm_silu_state<B> fused_state;
  allocations = 0;
  for (int step = 0; step < 3; ++step) {
    const std::size_t before = ayf_test_alloc::calls;
    fused.forward(ctx, params, stacked, out, fused_state, ws, 2);
    fused.backward(ctx, params, stacked, fused_state, grad_y, &grad_in, ws, ayf::nn::gradient_mode::both);
    if (step > 0) allocations += ayf_test_alloc::calls - before;
  }
  CHECK(fused_state.fused);
  CHECK(allocations == 0);
}
