// tests/thrust/cases.hpp: the conformance cases (after ggml's test-backend-ops), written once over
// the backend: each runs backend operations, the MLP, one objective step or a sampler on inputs
// drawn with std::mt19937_64 and returns every output as doubles. The Thrust backend's outputs are
// compared with the Eigen backend's (reference.cpp) case by case.
#pragma once

#include <cstddef>
#include <cstdint>
#include <random>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "ayf/analysis/linear_models.hpp"
#include "ayf/core/backend.hpp"
#include "ayf/flow_map/parametrization.hpp"
#include "ayf/guidance/guidance.hpp"
#include "ayf/nn/activation.hpp"
#include "ayf/nn/attention.hpp"
#include "ayf/nn/conv.hpp"
#include "ayf/nn/embedding.hpp"
#include "ayf/nn/group_norm.hpp"
#include "ayf/nn/mlp.hpp"
#include "ayf/nn/optimizer.hpp"
#include "ayf/nn/linear.hpp"
#include "ayf/nn/resample.hpp"
#include "ayf/nn/residual_block.hpp"
#include "ayf/nn/unet.hpp"
#include "ayf/objectives/ayf_emd.hpp"
#include "ayf/objectives/ayf_lmd.hpp"
#include "ayf/objectives/discrete_consistency.hpp"
#include "ayf/objectives/flow_matching.hpp"
#include "ayf/objectives/shortcut.hpp"
#include "ayf/samplers/consistency.hpp"
#include "ayf/samplers/flow_map.hpp"
#include "ayf/samplers/ode.hpp"

namespace ayf_conformance {

using ayf::shape;
using ayf::transpose;

/// How a case's outputs must agree: within the precision's relative tolerance, or bit for bit.
enum class agreement { tolerance, bitwise };

struct case_info {
  std::string name;
  agreement mode;
};

/// Every case, in the order the table prints them.
inline const std::vector<case_info>& cases() {
  static const std::vector<case_info> all = {
      {"data_movement", agreement::bitwise}, {"transform", agreement::tolerance},
      {"scale_sum_rows", agreement::tolerance}, {"reduce_rows", agreement::tolerance},
      {"reduce_all_dot", agreement::tolerance}, {"extrema", agreement::bitwise},
      {"gather_gather_sum", agreement::tolerance}, {"gemm_nn", agreement::tolerance},
      {"gemm_nt", agreement::tolerance}, {"gemm_tn", agreement::tolerance},
      {"gemm_tt", agreement::tolerance}, {"gemm_large", agreement::tolerance},
      {"randn", agreement::bitwise}, {"rand_uniform", agreement::bitwise},
      {"mlp_forward", agreement::tolerance}, {"mlp_forward_jvp", agreement::tolerance},
      {"mlp_backward", agreement::tolerance}, {"flow_matching_step", agreement::tolerance},
      {"ayf_emd_step", agreement::tolerance}, {"ayf_lmd_step", agreement::tolerance},
      {"discrete_consistency_step", agreement::tolerance}, {"shortcut_step", agreement::tolerance},
      {"adam_step", agreement::tolerance}, {"samplers_ode", agreement::tolerance},
      {"samplers_flow_map", agreement::tolerance}, {"samplers_mlp", agreement::tolerance},
      {"conv2d_forward", agreement::tolerance}, {"conv2d_forward_jvp", agreement::tolerance},
      {"conv2d_backward", agreement::tolerance}, {"group_norm_forward", agreement::tolerance},
      {"group_norm_forward_jvp", agreement::tolerance}, {"group_norm_backward", agreement::tolerance},
      {"upsample_nearest", agreement::tolerance}, {"avg_pool", agreement::tolerance},
      {"concat_channels", agreement::bitwise}, {"unet_forward", agreement::tolerance},
      {"unet_forward_jvp", agreement::tolerance}, {"unet_backward", agreement::tolerance},
      {"unet_from_teacher", agreement::tolerance}, {"unet_flow_matching_step", agreement::tolerance},
      {"unet_ayf_emd_step", agreement::tolerance}, {"broadcast_add", agreement::tolerance},
      {"sum_columns", agreement::tolerance}, {"reduce_rows_split", agreement::bitwise},
      {"sum_columns_split", agreement::bitwise}, {"max_rows", agreement::bitwise},
      {"gather_rows", agreement::bitwise}, {"scatter_add_rows", agreement::tolerance},
      {"gemm_batched_nn", agreement::tolerance}, {"gemm_batched_nt", agreement::tolerance},
      {"gemm_batched_tn", agreement::tolerance}, {"gemm_batched_tt", agreement::tolerance},
      {"gemm_batched_large", agreement::tolerance},
      {"linear_layer", agreement::tolerance},
      {"activation_layer", agreement::tolerance}, {"sinusoidal_embedding", agreement::tolerance},
      {"conditioning_embedding", agreement::tolerance}, {"self_attention", agreement::tolerance},
      {"residual_block", agreement::tolerance}, {"unet_attention_ayf_emd_step", agreement::tolerance},
      {"transform_pair", agreement::tolerance}, {"silu_saving_sigmoid", agreement::tolerance},
  };
  return all;
}

// Kernel functors at namespace scope (HD, so they also run on the CUDA system).
struct square_plus_one {
  template <class T>
  AYF_HOST_DEVICE T operator()(T x) const { return x * x + T(1); }
};
struct mul_sub {
  template <class T>
  AYF_HOST_DEVICE T operator()(T a, T b) const { return a * b - a; }
};
struct fma3 {
  template <class T>
  AYF_HOST_DEVICE T operator()(T a, T b, T c) const { return a * b + c; }
};
struct product {
  template <class T>
  AYF_HOST_DEVICE T operator()(T a, T b) const { return a * b; }
};
struct sum_and_difference {
  template <class T>
  AYF_HOST_DEVICE ayf::fn::value_pair<T> operator()(T a, T b) const { return {a + b, a * b - a}; }
};
struct square_and_cube {
  template <class T>
  AYF_HOST_DEVICE ayf::fn::value_pair<T> operator()(T a) const { return {a * a, a * a * a}; }
};
/// im2col of a [N, C*H*W] image batch (3x3 kernel, padding 1, stride 1) to [N*H*W, C*9] rows.
struct im2col_map {
  std::int64_t c, h, w;
  AYF_HOST_DEVICE std::int64_t operator()(std::int64_t i) const {
    const std::int64_t cols = c * 9;
    const std::int64_t row = i / cols, col = i % cols;
    const std::int64_t n = row / (h * w), y = (row / w) % h, x = row % w;
    const std::int64_t ch = col / 9, ky = (col / 3) % 3 - 1, kx = col % 3 - 1;
    const std::int64_t yy = y + ky, xx = x + kx;
    if (yy < 0 || yy >= h || xx < 0 || xx >= w) return -1;
    return ((n * c + ch) * h + yy) * w + xx;
  }
};
/// col2im: image element i gathers the 9 im2col entries that read it (tap r = ky * 3 + kx).
struct col2im_map {
  std::int64_t c, h, w;
  AYF_HOST_DEVICE std::int64_t operator()(std::int64_t i, std::int64_t r) const {
    const std::int64_t n = i / (c * h * w), ch = (i / (h * w)) % c, y = (i / w) % h, x = i % w;
    const std::int64_t ky = r / 3 - 1, kx = r % 3 - 1;
    const std::int64_t oy = y - ky, ox = x - kx;  // the output pixel whose patch holds (y, x) at tap r
    if (oy < 0 || oy >= h || ox < 0 || ox >= w) return -1;
    const std::int64_t row = (n * h + oy) * w + ox;
    return row * c * 9 + ch * 9 + r;
  }
};

/// Collects outputs as doubles.
template <class B>
struct recorder {
  typename B::context& ctx;
  std::vector<double> values;
  template <class X>
  void add(const X& x) {
    for (auto v : B::to_host(ctx, x)) values.push_back(static_cast<double>(v));
  }
  void add_scalar(double v) { values.push_back(v); }
};

/// A tensor with entries uniform on [lo, hi), exactly representable in the backend's scalar.
template <class B>
typename B::tensor input(typename B::context& ctx, const shape& sh, std::uint64_t seed, double lo = -1.0,
                         double hi = 1.0) {
  using S = typename B::scalar;
  std::mt19937_64 gen(seed);
  std::vector<S> v(sh.size());
  for (auto& x : v) x = static_cast<S>(lo + (hi - lo) * static_cast<double>(gen() >> 11) * 0x1.0p-53);
  return B::from_host(ctx, v, sh);
}

inline ayf::nn::mlp_config mlp_shape(bool student, std::uint64_t seed, std::size_t classes = 0) {
  ayf::nn::mlp_config c;
  c.dims = 3;
  c.width = 24;
  c.blocks = 2;
  c.frequencies = 4;
  c.embed_s = student;
  c.embed_lambda = student;
  c.classes = classes;
  c.seed = seed;
  return c;
}

/// A student whose s and lambda weights are non-zero (so F depends on s and lambda).
template <class B>
ayf::nn::mlp_flow_model<B> random_student(typename B::context& ctx, std::size_t classes = 0) {
  ayf::nn::mlp_flow_model<B> m(ctx, mlp_shape(true, 21, classes));
  const auto noise = input<B>(ctx, B::shape_of(m.parameters().values), 99, -0.2, 0.2);
  B::scale_sum_rows(ctx, m.parameters().values, 1.0, m.parameters().values, 1.0, noise);
  return m;
}

/// 8x8x1 images, two levels (4 and 8 channels), 2 groups, an 8-wide embedding, 3 classes (and
/// the null label -1); a student embeds s and lambda.
inline ayf::nn::unet_config unet_shape(bool student, std::uint64_t seed) {
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
  c.classes = 3;
  c.seed = seed;
  return c;
}

/// A U-Net student whose s and lambda weights are non-zero.
template <class B>
ayf::nn::unet_flow_model<B> random_unet_student(typename B::context& ctx) {
  ayf::nn::unet_flow_model<B> m(ctx, unet_shape(true, 21));
  const auto noise = input<B>(ctx, B::shape_of(m.parameters().values), 99, -0.2, 0.2);
  B::scale_sum_rows(ctx, m.parameters().values, 1.0, m.parameters().values, 1.0, noise);
  return m;
}

/// Labels i mod (classes + 1) - 1: every class and the null class -1.
template <class B>
typename B::tensor cycling_labels(typename B::context& ctx, std::size_t n, std::size_t classes) {
  std::vector<typename B::scalar> labels(n);
  for (std::size_t i = 0; i < n; ++i)
    labels[i] = static_cast<typename B::scalar>(static_cast<int>(i % (classes + 1)) - 1);
  return B::from_host(ctx, labels, shape::vector(n));
}

/// A parameter set over `layout` with every value uniform on [lo, hi).
template <class B>
ayf::nn::parameter_set<B> random_parameters(typename B::context& ctx, const ayf::nn::parameter_layout& layout,
                                            std::uint64_t seed, double lo = -1.0, double hi = 1.0) {
  ayf::nn::parameter_set<B> params(ctx, layout);
  B::copy(ctx, input<B>(ctx, B::shape_of(params.values), seed, lo, hi), params.values);
  return params;
}

/// The first n rows of x as a tensor.
template <class B>
typename B::tensor top_rows(typename B::context& ctx, const typename B::tensor& x, std::size_t n) {
  typename B::tensor out;
  B::copy(ctx, B::slice(ctx, x, 0, shape(n, B::shape_of(x).cols)), out);
  return out;
}

template <class B>
void gemm_case(recorder<B>& rec, transpose ta, transpose tb, std::size_t m, std::size_t n, std::size_t k) {
  auto& ctx = rec.ctx;
  const bool a_t = ta == transpose::yes, b_t = tb == transpose::yes;
  const shape sa = a_t ? shape(k, m) : shape(m, k), sb = b_t ? shape(n, k) : shape(k, n);
  // A as a view into a flat buffer at an offset, B as a tensor, C with beta = 0 and beta != 0.
  const auto flat = input<B>(ctx, shape(1, sa.size() + 5), 11);
  const auto a = B::slice(ctx, flat, 5, sa);
  const auto b = input<B>(ctx, sb, 12);
  typename B::tensor c;
  B::gemm(ctx, ta, tb, typename B::scalar(0.75), a, b, typename B::scalar(0), c);
  rec.add(c);
  auto c2 = input<B>(ctx, shape(m, n), 13);
  B::gemm(ctx, ta, tb, typename B::scalar(-1.25), a, b, typename B::scalar(0.5), c2);
  rec.add(c2);
  // Into a view of a larger flat output.
  auto out = B::make(ctx, shape(1, m * n + 3));
  B::gemm(ctx, ta, tb, typename B::scalar(1), a, b, typename B::scalar(0), B::slice(ctx, out, 3, shape(m, n)));
  rec.add(out);
}

/// The outputs of a unary layer (ayf::nn::layer): forward on n rows, forward on stacked [x; dx], and
/// backward (parameter and input gradients) after the stacked pass.
template <class B, class Layer>
void layer_case(typename B::context& ctx, recorder<B>& rec, const Layer& layer, ayf::nn::parameter_set<B> params,
                std::size_t n, std::uint64_t seed) {
  ayf::nn::workspace<B> ws;
  typename Layer::state st{};
  const auto stacked = input<B>(ctx, shape(2 * n, layer.input_size()), seed);
  const auto x = top_rows<B>(ctx, stacked, n);
  typename B::tensor y, grad_x;
  layer.forward(ctx, params, x, y, st, ws, n);
  rec.add(y);
  layer.forward(ctx, params, stacked, y, st, ws, n);
  rec.add(y);
  params.zero_gradients(ctx);
  layer.backward(ctx, params, stacked, st, input<B>(ctx, shape(n, layer.output_size()), seed + 1), &grad_x, ws,
                 ayf::nn::gradient_mode::both);
  rec.add(params.gradients);
  rec.add(grad_x);
}

/// gemm_batched over `batch` members op(A_k) [m, k] times op(B_k) [k, n]: A a view at an offset,
/// beta = 0 and beta != 0, and into a view of a larger output.
template <class B>
void gemm_batched_case(recorder<B>& rec, transpose ta, transpose tb, std::size_t batch, std::size_t m, std::size_t n,
                       std::size_t k) {
  using S = typename B::scalar;
  auto& ctx = rec.ctx;
  const bool a_t = ta == transpose::yes, b_t = tb == transpose::yes;
  const shape sa = a_t ? shape(batch * k, m) : shape(batch * m, k), sb = b_t ? shape(batch * n, k) : shape(batch * k, n);
  const auto flat = input<B>(ctx, shape(1, sa.size() + 5), 21);
  const auto a = B::slice(ctx, flat, 5, sa);
  const auto b = input<B>(ctx, sb, 22);
  typename B::tensor c;
  B::gemm_batched(ctx, ta, tb, S(0.75), a, b, S(0), c, batch);
  rec.add(c);
  auto c2 = input<B>(ctx, shape(batch * m, n), 23);
  B::gemm_batched(ctx, ta, tb, S(-1.25), a, b, S(0.5), c2, batch);
  rec.add(c2);
  auto out = B::make(ctx, shape(1, batch * m * n + 3));
  // C_k^T = op(B_k)^T op(A_k)^T, into a view: the opposite transpose flags.
  const transpose not_a = a_t ? transpose::no : transpose::yes, not_b = b_t ? transpose::no : transpose::yes;
  B::gemm_batched(ctx, not_b, not_a, S(1), b, a, S(0), B::slice(ctx, out, 3, shape(batch * n, m)), batch);
  rec.add(out);
}

template <class B, class Model, class Objective, class Run>
void objective_case(recorder<B>& rec, Model& student, Objective& objective, const Run& run) {
  student.parameters().zero_gradients(rec.ctx);
  const ayf::step_statistics stats = run(objective);
  rec.add_scalar(stats.loss);
  rec.add_scalar(stats.tangent_norm);
  rec.add(student.parameters().gradients);
}

/// Runs case `name` on backend B and returns its outputs.
template <class B>
std::vector<double> run_case(std::string_view name) {
  using S = typename B::scalar;
  using model = ayf::nn::mlp_flow_model<B>;
  typename B::context ctx(7);
  recorder<B> rec{ctx, {}};
  ayf::nn::no_state none;

  if (name == "data_movement") {
    auto z = B::make(ctx, shape(3, 5));
    rec.add(z);
    B::fill(ctx, z, S(2.5));
    rec.add(z);
    const auto x = input<B>(ctx, shape(4, 6), 1);
    typename B::tensor y;
    B::copy(ctx, x, y);
    rec.add(y);
    auto flat = B::make(ctx, shape(1, 40));
    B::copy(ctx, x, B::slice(ctx, flat, 7, shape(4, 6)));  // into a view
    B::fill(ctx, B::slice(ctx, flat, 0, shape(1, 3)), S(-1));
    rec.add(flat);
    B::copy(ctx, B::slice(ctx, std::as_const(flat), 9, shape(2, 3)), y);  // from a const view, resizing y
    rec.add(y);
    B::resize(ctx, y, shape(5, 2));
    rec.add_scalar(static_cast<double>(B::shape_of(y).size()));
    rec.add(B::from_host(ctx, std::vector<S>{S(1), S(-2), S(3.5)}, shape(3, 1)));
  } else if (name == "transform") {
    const auto a = input<B>(ctx, shape(37, 19), 1), b = input<B>(ctx, shape(37, 19), 2), c = input<B>(ctx, shape(37, 19), 3);
    typename B::tensor out;
    B::transform(ctx, out, square_plus_one{}, a);
    rec.add(out);
    B::transform(ctx, out, mul_sub{}, a, b);
    rec.add(out);
    B::transform(ctx, out, fma3{}, a, b, c);
    rec.add(out);
    B::transform(ctx, out, mul_sub{}, out, a);  // in place
    rec.add(out);
    // Views in and out.
    auto flat = B::make(ctx, shape(1, 60));
    const auto va = B::slice(ctx, a, 19, shape(5, 10));
    const auto vb = B::slice(ctx, b, 3, shape(5, 10));
    B::transform(ctx, B::slice(ctx, flat, 4, shape(5, 10)), mul_sub{}, va, vb);
    rec.add(flat);
  } else if (name == "scale_sum_rows") {
    const shape sh(33, 17);
    const auto x1 = input<B>(ctx, sh, 1), x2 = input<B>(ctx, sh, 2), x3 = input<B>(ctx, sh, 3);
    const auto c1 = input<B>(ctx, shape::vector(33), 4), c2 = input<B>(ctx, shape::vector(33), 5);
    typename B::tensor y;
    B::scale_sum_rows(ctx, y, 0.5, x1);
    rec.add(y);
    B::scale_sum_rows(ctx, y, c1, x1, -2.0, x2, c2, x3);
    rec.add(y);
    B::scale_sum_rows(ctx, y, 1.0, y, c1, x2);  // y aliases x_1
    rec.add(y);
    const auto flat = input<B>(ctx, shape(1, 50), 6);
    B::scale_sum_rows(ctx, y, B::slice(ctx, flat, 10, shape::vector(33)), x3, 3.0f, x1);  // view coefficient
    rec.add(y);
  } else if (name == "reduce_rows") {
    const auto a = input<B>(ctx, shape(29, 301), 1), b = input<B>(ctx, shape(29, 301), 2);
    typename B::tensor out;
    B::reduce_rows(ctx, out, square_plus_one{}, a);
    rec.add(out);
    B::reduce_rows(ctx, out, product{}, a, b);
    rec.add(out);
    auto flat = B::make(ctx, shape(1, 40));
    B::reduce_rows(ctx, B::slice(ctx, flat, 2, shape::vector(29)), mul_sub{}, a, b);
    rec.add(flat);
  } else if (name == "reduce_all_dot") {
    // Several reduction chunks (8192 elements each) and a ragged last one.
    const auto a = input<B>(ctx, shape(301, 97), 1), b = input<B>(ctx, shape(301, 97), 2);
    rec.add_scalar(static_cast<double>(B::reduce_all(ctx, square_plus_one{}, a)));
    rec.add_scalar(static_cast<double>(B::reduce_all(ctx, mul_sub{}, a, b)));
    rec.add_scalar(static_cast<double>(B::dot(ctx, a, b)));
    rec.add_scalar(static_cast<double>(B::dot(ctx, B::slice(ctx, a, 100, shape(7, 9)), B::slice(ctx, b, 3, shape(7, 9)))));
  } else if (name == "extrema") {
    const auto a = input<B>(ctx, shape(211, 131), 1, -3.0, 5.0);
    const auto [lo, hi] = B::extrema(ctx, a);
    rec.add_scalar(static_cast<double>(lo));
    rec.add_scalar(static_cast<double>(hi));
    const auto [vlo, vhi] = B::extrema(ctx, B::slice(ctx, a, 1000, shape(3, 7)));
    rec.add_scalar(static_cast<double>(vlo));
    rec.add_scalar(static_cast<double>(vhi));
  } else if (name == "gather_gather_sum") {
    const std::int64_t n = 3, c = 2, h = 5, w = 4;
    const auto image = input<B>(ctx, shape(n, c * h * w), 1);
    typename B::tensor cols;
    const shape col_shape(static_cast<std::size_t>(n * h * w), static_cast<std::size_t>(c * 9));
    B::gather(ctx, cols, col_shape, image, im2col_map{c, h, w});
    rec.add(cols);
    const auto grad_cols = input<B>(ctx, col_shape, 2);
    typename B::tensor grad_image;
    B::gather_sum(ctx, grad_image, shape(n, c * h * w), grad_cols, col2im_map{c, h, w}, 9);
    rec.add(grad_image);
    // Into a view.
    auto flat = B::make(ctx, shape(1, static_cast<std::size_t>(n * c * h * w) + 2));
    B::gather_sum(ctx, B::slice(ctx, flat, 2, shape(n, c * h * w)), shape(n, c * h * w), grad_cols,
                  col2im_map{c, h, w}, 9);
    rec.add(flat);
  } else if (name == "gemm_nn") {
    gemm_case(rec, transpose::no, transpose::no, 13, 11, 17);
  } else if (name == "gemm_nt") {
    gemm_case(rec, transpose::no, transpose::yes, 13, 11, 17);
  } else if (name == "gemm_tn") {
    gemm_case(rec, transpose::yes, transpose::no, 13, 11, 17);
  } else if (name == "gemm_tt") {
    gemm_case(rec, transpose::yes, transpose::yes, 13, 11, 17);
  } else if (name == "gemm_large") {
    // Large enough for the Eigen backend's oneTBB row blocks (m >= 128, m n k >= 2^22).
    gemm_case(rec, transpose::no, transpose::no, 256, 96, 192);
    gemm_case(rec, transpose::yes, transpose::yes, 200, 64, 400);
  } else if (name == "randn" || name == "rand_uniform") {
    const bool normal = name == "randn";
    // Odd offsets and odd sizes: the pairing of Box-Muller blocks must not matter.
    for (std::size_t size : {std::size_t{7}, std::size_t{1001}, std::size_t{64}, std::size_t{3}}) {
      auto x = B::make(ctx, shape(1, size));
      if (normal) B::randn(ctx, x);
      else B::rand_uniform(ctx, x);
      rec.add(x);
    }
    auto flat = B::make(ctx, shape(1, 30));
    if (normal) B::randn(ctx, B::slice(ctx, flat, 5, shape(5, 5)));
    else B::rand_uniform(ctx, B::slice(ctx, flat, 5, shape(5, 5)));
    rec.add(flat);
    rec.add_scalar(static_cast<double>(ctx.rng.offset));
  } else if (name == "mlp_forward" || name == "mlp_forward_jvp" || name == "mlp_backward") {
    auto student = random_student<B>(ctx, 4);
    const std::size_t n = 19;
    const auto x = input<B>(ctx, shape(n, 3), 1), t = input<B>(ctx, shape::vector(n), 2, 0.0, 1.0),
               s = input<B>(ctx, shape::vector(n), 3, 0.0, 1.0), lambda = input<B>(ctx, shape::vector(n), 4, 1.0, 3.0);
    std::vector<S> labels(n);
    for (std::size_t i = 0; i < n; ++i) labels[i] = static_cast<S>(static_cast<int>(i % 5) - 1);  // -1 = null class
    const auto y = B::from_host(ctx, labels, shape::vector(n));
    const ayf::condition<B> cond{&y, &lambda};
    typename B::tensor out, dout;
    typename model::activations saved;
    if (name == "mlp_forward") {
      student.forward(ctx, x, t, s, cond, out, saved);
      rec.add(out);
      student.forward(ctx, x, t, s, ayf::condition<B>{}, out);  // default lambda, no labels
      rec.add(out);
    } else {
      const auto dx = input<B>(ctx, shape(n, 3), 5), dt = input<B>(ctx, shape::vector(n), 6),
                 ds = input<B>(ctx, shape::vector(n), 7);
      student.forward_jvp(ctx, x, t, s, cond, dx, dt, ds, out, dout, saved);
      rec.add(out);
      rec.add(dout);
      if (name == "mlp_backward") {
        const auto grad = input<B>(ctx, shape(n, 3), 8);
        student.parameters().zero_gradients(ctx);
        student.backward(ctx, saved, grad);
        rec.add(student.parameters().gradients);
        student.forward(ctx, x, t, s, cond, out, saved);  // backward after a plain forward too
        student.backward(ctx, saved, grad);
        rec.add(student.parameters().gradients);
      }
    }
  } else if (name == "flow_matching_step" || name == "adam_step") {
    model teacher(ctx, mlp_shape(false, 3));
    const auto x0 = input<B>(ctx, shape(23, 3), 1, -2.0, 2.0);
    ayf::flow_matching<B, model> objective;
    objective_case(rec, teacher, objective, [&](auto& o) { return o.step(ctx, teacher, x0, nullptr); });
    if (name == "adam_step") {
      ayf::nn::adam_config config;
      config.clip_norm = 0.5;
      config.weight_decay = 0.01;
      config.warmup_steps = 3;
      ayf::nn::adam<B> adam(ctx, teacher.parameters(), config);
      ayf::nn::exponential_moving_average<B> ema(ctx, teacher.parameters(), 0.9);
      for (int step = 0; step < 3; ++step) {
        rec.add_scalar(adam.step(ctx, teacher.parameters()));
        ema.update(ctx, teacher.parameters());
      }
      rec.add(teacher.parameters().values);
      rec.add(ema.average());
    }
  } else if (name == "ayf_emd_step" || name == "ayf_lmd_step" || name == "discrete_consistency_step" ||
             name == "shortcut_step") {
    model teacher(ctx, mlp_shape(false, 3));
    model weak(ctx, mlp_shape(false, 4));
    auto guided = ayf::make_autoguided_velocity<B>(teacher, weak);
    auto student = random_student<B>(ctx);
    const auto x0 = input<B>(ctx, shape(23, 3), 1, -2.0, 2.0);
    if (name == "ayf_emd_step") {
      ayf::ayf_emd_config config;
      config.warmup_iterations = 10;
      ayf::ayf_emd<B, model> objective(config);
      objective_case(rec, student, objective, [&](auto& o) { return o.step(ctx, student, guided, x0, nullptr, 4.0); });
      rec.add(objective.output_gradient());
    } else if (name == "ayf_lmd_step") {
      ayf::ayf_lmd<B, model> objective;
      objective_case(rec, student, objective, [&](auto& o) { return o.step(ctx, student, guided, x0, nullptr, 4.0); });
      rec.add(objective.output_gradient());
    } else if (name == "discrete_consistency_step") {
      ayf::discrete_consistency<B, model> objective;
      objective_case(rec, student, objective, [&](auto& o) { return o.step(ctx, student, guided, x0, nullptr); });
      rec.add(objective.output_gradient());
    } else {
      ayf::shortcut<B, model> objective;
      objective_case(rec, student, objective, [&](auto& o) { return o.step(ctx, student, guided, x0, nullptr); });
    }
  } else if (name == "samplers_ode" || name == "samplers_flow_map") {
    const double c = 0.5, delta = 0.1;
    const auto grid = ayf::time_grid::uniform(6);
    const auto x0 = input<B>(ctx, shape(65, 4), 1, -2.0, 2.0);
    const auto lambda = input<B>(ctx, shape::vector(65), 2, 1.0, 3.0);
    typename B::tensor x;
    if (name == "samplers_ode") {
      auto v = ayf::gaussian_optimal_velocity<B>(c);
      B::copy(ctx, x0, x);
      ayf::euler_sample<B>(ctx, v, x, grid);
      rec.add(x);
      B::copy(ctx, x0, x);
      ayf::heun_sample<B>(ctx, v, x, ayf::time_grid::karras(8));
      rec.add(x);
      auto g = ayf::make_autoguided_velocity<B>(ayf::gaussian_optimal_velocity<B>(c), ayf::gaussian_optimal_velocity<B>(0.8));
      B::copy(ctx, x0, x);
      ayf::euler_sample<B>(ctx, g, x, grid, ayf::condition<B>{nullptr, &lambda});
      rec.add(x);
    } else {
      auto f = ayf::gaussian_perturbed_flow_map<B>(c, delta);
      B::copy(ctx, x0, x);
      ayf::flow_map_sample<B>(ctx, f, x, grid);
      rec.add(x);
      auto e = ayf::make_euler_flow_map<B>(f);
      B::copy(ctx, x0, x);
      ayf::flow_map_sample<B>(ctx, e, x, grid);
      rec.add(x);
      B::copy(ctx, x0, x);
      ayf::gamma_sample<B>(ctx, f, x, grid, 0.7);
      rec.add(x);
      auto m = ayf::gaussian_perturbed_consistency_model<B>(c, delta);
      B::copy(ctx, x0, x);
      ayf::consistency_multistep_sample<B>(ctx, m, x, grid);
      rec.add(x);
    }
  } else if (name == "samplers_mlp") {
    // A distilled-student shape: the MLP under flow-map and gamma sampling.
    auto student = random_student<B>(ctx);
    auto flow = ayf::make_euler_flow_map<B>(student);
    const auto x0 = input<B>(ctx, shape(31, 3), 1, -2.0, 2.0);
    typename B::tensor x;
    B::copy(ctx, x0, x);
    ayf::flow_map_sample<B>(ctx, flow, x, ayf::time_grid::uniform(4));
    rec.add(x);
    B::copy(ctx, x0, x);
    ayf::gamma_sample<B>(ctx, flow, x, ayf::time_grid::uniform(4), 0.5);
    rec.add(x);
  } else if (name == "linear_layer") {
    ayf::nn::parameter_layout layout;
    const ayf::nn::linear<B> layer(layout, "fc", 5, 3);
    layer_case(ctx, rec, layer, random_parameters<B>(ctx, layout, 50), 4, 1);
  } else if (name == "transform_pair") {
    const auto a = input<B>(ctx, shape(37, 19), 1), b = input<B>(ctx, shape(37, 19), 2);
    typename B::tensor first, second;
    B::transform_pair(ctx, first, second, square_and_cube{}, a);
    rec.add(first);
    rec.add(second);
    B::transform_pair(ctx, first, second, sum_and_difference{}, a, b);
    rec.add(first);
    rec.add(second);
    B::transform_pair(ctx, second, first, sum_and_difference{}, first, second);  // each output on an input
    rec.add(first);
    rec.add(second);
    auto flat = B::make(ctx, shape(1, 120));
    B::transform_pair(ctx, B::slice(ctx, flat, 4, shape(5, 10)), B::slice(ctx, flat, 60, shape(5, 10)),
                      sum_and_difference{}, B::slice(ctx, a, 19, shape(5, 10)), B::slice(ctx, b, 3, shape(5, 10)));
    rec.add(flat);
  } else if (name == "silu_saving_sigmoid") {
    const ayf::nn::silu_saving_sigmoid<B> layer(7);
    const std::size_t n = 5;
    const auto z = input<B>(ctx, shape(2 * n, 7), 1, -4.0, 4.0), grad_a = input<B>(ctx, shape(n, 7), 2);
    typename B::tensor a, sigmoid, grad_z;
    layer.forward(ctx, z, a, sigmoid, n);
    rec.add(a);
    rec.add(sigmoid);
    layer.backward(ctx, a, sigmoid, grad_a, grad_z, false);
    rec.add(grad_z);
    layer.backward(ctx, a, sigmoid, grad_a, grad_z, true);
    rec.add(grad_z);
    layer.forward(ctx, input<B>(ctx, shape(n, 7), 3), a, sigmoid, n);  // primal rows only
    rec.add(a);
    rec.add(sigmoid);
  } else if (name == "activation_layer") {
    layer_case(ctx, rec, ayf::nn::activation<B>(6), ayf::nn::parameter_set<B>(ctx, ayf::nn::parameter_layout{}), 4, 2);
  } else if (name == "sinusoidal_embedding") {
    layer_case(ctx, rec, ayf::nn::sinusoidal_embedding<B>(4, 0.5, 0.75), ayf::nn::parameter_set<B>(ctx, ayf::nn::parameter_layout{}),
               5, 3);
  } else if (name == "conditioning_embedding") {
    ayf::nn::conditioning_config cc;
    cc.width = 6;
    cc.frequencies = 3;
    cc.embed_s = cc.embed_lambda = true;
    cc.classes = 3;
    ayf::nn::parameter_layout layout;
    const ayf::nn::conditioning_embedding<B> layer(layout, "c", cc);
    auto params = random_parameters<B>(ctx, layout, 51);
    const std::size_t n = 5;
    const auto t = input<B>(ctx, shape::vector(n), 1, 0.0, 1.0), s = input<B>(ctx, shape::vector(n), 2, 0.0, 1.0),
               lambda = input<B>(ctx, shape::vector(n), 3, 1.0, 3.0), dt = input<B>(ctx, shape::vector(n), 4),
               ds = input<B>(ctx, shape::vector(n), 5), grad = input<B>(ctx, shape(n, 6), 6);
    const auto y = cycling_labels<B>(ctx, n, 3);
    ayf::nn::workspace<B> ws;
    ayf::nn::conditioning_state<B> st;
    typename B::tensor z;
    layer.forward(ctx, params, t, s, ayf::condition<B>{&y, &lambda}, &dt, &ds, z, st, ws);
    rec.add(z);
    params.zero_gradients(ctx);
    layer.backward(ctx, params, st, grad, ws);
    rec.add(params.gradients);
  } else if (name == "self_attention") {
    for (const std::size_t heads : {std::size_t{1}, std::size_t{2}}) {
      ayf::nn::parameter_layout layout;
      const ayf::nn::self_attention<B> layer(layout, "a", ayf::nn::image_shape{3, 4, 4}, heads, 2);
      layer_case(ctx, rec, layer, random_parameters<B>(ctx, layout, 52 + heads), 3, 4 + heads);
    }
  } else if (name == "residual_block") {
    ayf::nn::parameter_layout layout;
    const ayf::nn::residual_block<B> block(layout, "r", ayf::nn::image_shape{4, 3, 4}, 6, 5, 2, 1e-5);
    auto params = random_parameters<B>(ctx, layout, 55);
    const std::size_t n = 3;
    const auto stacked = input<B>(ctx, shape(2 * n, block.input_size()), 1);
    const auto embedding = input<B>(ctx, shape(2 * n, 5), 2);
    const auto grad = input<B>(ctx, shape(n, block.output_size()), 3);
    ayf::nn::workspace<B> ws;
    ayf::nn::residual_block_state<B> st;
    typename B::tensor y, grad_x, grad_e = B::make(ctx, shape(n, 5));
    block.forward(ctx, params, stacked, embedding, y, st, ws, n);
    rec.add(y);
    params.zero_gradients(ctx);
    block.backward(ctx, params, stacked, embedding, st, grad, &grad_x, &grad_e, ws, ayf::nn::gradient_mode::both);
    rec.add(params.gradients);
    rec.add(grad_x);
    rec.add(grad_e);
  } else if (name == "conv2d_forward" || name == "conv2d_forward_jvp" || name == "conv2d_backward") {
    const ayf::nn::image_shape in{5, 4, 3};
    const std::size_t out_channels = 4, n = 3;
    for (const std::size_t kernel : {std::size_t{1}, std::size_t{3}}) {
      ayf::nn::parameter_layout layout;
      layout.add("unrelated", 1, 2);  // the conv's blocks need not start the buffer
      const ayf::nn::conv2d<B> conv(layout, "conv", in, out_channels, kernel);
      auto params = random_parameters<B>(ctx, layout, 30 + kernel);
      ayf::nn::workspace<B> ws;
      const auto stacked = input<B>(ctx, shape(2 * n, in.size()), 1);  // [x; dx]
      const auto x = top_rows<B>(ctx, stacked, n);
      typename B::tensor y;
      if (name == "conv2d_forward") {
        conv.forward(ctx, params, x, y, none, ws, n);
        rec.add(y);
        conv.forward(ctx, params, x, y, none, ws, n, true);  // accumulate
        rec.add(y);
      } else if (name == "conv2d_forward_jvp") {
        conv.forward(ctx, params, stacked, y, none, ws, n);  // the bias on the primal rows only
        rec.add(y);
      } else {
        const auto grad_y = input<B>(ctx, shape(n, in.pixels() * out_channels), 2);
        typename B::tensor grad_x;
        params.zero_gradients(ctx);
        conv.backward(ctx, params, x, none, grad_y, &grad_x, ws, ayf::nn::gradient_mode::both);
        rec.add(params.gradients);
        rec.add(grad_x);
        conv.backward(ctx, params, stacked, none, grad_y, nullptr, ws, ayf::nn::gradient_mode::both);  // after a stacked pass, accumulating
        rec.add(params.gradients);
      }
    }
  } else if (name == "group_norm_forward" || name == "group_norm_forward_jvp" || name == "group_norm_backward") {
    const ayf::nn::image_shape im{4, 3, 6};
    const std::size_t n = 3;
    for (const std::size_t groups : {std::size_t{1}, std::size_t{3}}) {
      ayf::nn::parameter_layout layout;
      const ayf::nn::group_norm<B> norm(layout, "norm", im, groups);
      auto params = random_parameters<B>(ctx, layout, 40 + groups);
      ayf::nn::workspace<B> ws;
      ayf::nn::group_norm_state<B> st;
      const auto stacked = input<B>(ctx, shape(2 * n, im.size()), 1, -0.5, 2.5);  // an offset the norm removes
      const auto x = top_rows<B>(ctx, stacked, n);
      typename B::tensor y;
      if (name == "group_norm_forward") {
        norm.forward(ctx, params, x, y, st, ws, n);
        rec.add(y);
        typename B::tensor xhat;  // the saved state in the image layout, whichever path the backend takes
        norm.normalised(ctx, st, xhat);
        rec.add(xhat);
        rec.add(st.rstd);
      } else if (name == "group_norm_forward_jvp") {
        norm.forward(ctx, params, stacked, y, st, ws, n);
        rec.add(y);
      } else {
        const auto grad_y = input<B>(ctx, shape(n, im.size()), 2);
        typename B::tensor grad_x;
        params.zero_gradients(ctx);
        norm.forward(ctx, params, x, y, st, ws, n);
        norm.backward(ctx, params, x, st, grad_y, &grad_x, ws, ayf::nn::gradient_mode::both);
        rec.add(params.gradients);
        rec.add(grad_x);
        norm.forward(ctx, params, stacked, y, st, ws, n);  // backward after a stacked pass
        norm.backward(ctx, params, stacked, st, grad_y, &grad_x, ws, ayf::nn::gradient_mode::both);
        rec.add(params.gradients);
        rec.add(grad_x);
      }
    }
  } else if (name == "upsample_nearest" || name == "avg_pool") {
    const ayf::nn::image_shape coarse{3, 2, 3}, fine{6, 4, 3};
    const std::size_t n = 2;
    typename B::tensor y, grad_x;
    ayf::nn::parameter_set<B> params(ctx, ayf::nn::parameter_layout{});
    ayf::nn::workspace<B> ws;
    constexpr auto both = ayf::nn::gradient_mode::both;
    if (name == "upsample_nearest") {
      const ayf::nn::upsample_nearest<B> up(coarse);
      const auto x = input<B>(ctx, shape(n, coarse.size()), 1);
      up.forward(ctx, params, x, y, none, ws, n);
      rec.add(y);
      up.forward(ctx, params, input<B>(ctx, shape(2 * n, coarse.size()), 2), y, none, ws, n);  // stacked rows
      rec.add(y);
      up.backward(ctx, params, x, none, input<B>(ctx, shape(n, fine.size()), 3), &grad_x, ws, both);
      rec.add(grad_x);
    } else {
      const ayf::nn::avg_pool<B> pool(fine);
      const auto x = input<B>(ctx, shape(n, fine.size()), 1);
      pool.forward(ctx, params, x, y, none, ws, n);
      rec.add(y);
      pool.forward(ctx, params, input<B>(ctx, shape(2 * n, fine.size()), 2), y, none, ws, n);
      rec.add(y);
      pool.backward(ctx, params, x, none, input<B>(ctx, shape(n, coarse.size()), 3), &grad_x, ws, both);
      rec.add(grad_x);
    }
  } else if (name == "concat_channels") {
    const ayf::nn::image_shape ia{3, 2, 2}, ib{3, 2, 3};
    const ayf::nn::concat_channels<B> cat(ia, ib);
    ayf::nn::workspace<B> ws;
    for (const std::size_t rows : {std::size_t{2}, std::size_t{4}}) {
      typename B::tensor y, grad_a, grad_b;
      cat.forward(ctx, input<B>(ctx, shape(rows, ia.size()), rows), input<B>(ctx, shape(rows, ib.size()), rows + 1), y,
                  ws);
      rec.add(y);
      cat.backward(ctx, input<B>(ctx, shape(rows, cat.output().size()), rows + 2), grad_a, grad_b);
      rec.add(grad_a);
      rec.add(grad_b);
    }
  } else if (name == "unet_forward" || name == "unet_forward_jvp" || name == "unet_backward") {
    using unet = ayf::nn::unet_flow_model<B>;
    auto student = random_unet_student<B>(ctx);
    const std::size_t n = 5, d = student.config().dims();
    const auto x = input<B>(ctx, shape(n, d), 1), t = input<B>(ctx, shape::vector(n), 2, 0.0, 1.0),
               s = input<B>(ctx, shape::vector(n), 3, 0.0, 1.0), lambda = input<B>(ctx, shape::vector(n), 4, 1.0, 3.0);
    const auto y = cycling_labels<B>(ctx, n, 3);
    const ayf::condition<B> cond{&y, &lambda};
    typename B::tensor out, dout;
    typename unet::activations saved;
    if (name == "unet_forward") {
      student.forward(ctx, x, t, s, cond, out, saved);
      rec.add(out);
      student.forward(ctx, x, t, s, ayf::condition<B>{}, out);  // default lambda, no labels
      rec.add(out);
    } else {
      const auto dx = input<B>(ctx, shape(n, d), 5), dt = input<B>(ctx, shape::vector(n), 6),
                 ds = input<B>(ctx, shape::vector(n), 7);
      student.forward_jvp(ctx, x, t, s, cond, dx, dt, ds, out, dout, saved);
      rec.add(out);
      rec.add(dout);
      if (name == "unet_backward") {
        const auto grad = input<B>(ctx, shape(n, d), 8);
        student.parameters().zero_gradients(ctx);
        student.backward(ctx, saved, grad);
        rec.add(student.parameters().gradients);
        student.forward(ctx, x, t, s, cond, out, saved);  // backward after a plain forward too
        student.backward(ctx, saved, grad);
        rec.add(student.parameters().gradients);
      }
    }
  } else if (name == "unet_from_teacher") {
    using unet = ayf::nn::unet_flow_model<B>;
    unet teacher(ctx, unet_shape(false, 3));
    unet student = unet::from_teacher(ctx, teacher, unet_shape(true, 3));
    rec.add(student.parameters().values);
    const std::size_t n = 5, d = teacher.config().dims();
    const auto x = input<B>(ctx, shape(n, d), 1), t = input<B>(ctx, shape::vector(n), 2, 0.0, 1.0),
               s = input<B>(ctx, shape::vector(n), 3, 0.0, 1.0), lambda = input<B>(ctx, shape::vector(n), 4, 1.0, 3.0);
    const auto y = cycling_labels<B>(ctx, n, 3);
    typename B::tensor v, f;
    teacher(ctx, x, t, ayf::condition<B>{&y, nullptr}, v);
    rec.add(v);
    student.forward(ctx, x, t, s, ayf::condition<B>{&y, &lambda}, f);
    rec.add(f);
  } else if (name == "unet_flow_matching_step") {
    using unet = ayf::nn::unet_flow_model<B>;
    unet teacher(ctx, unet_shape(false, 3));
    const std::size_t n = 6;
    const auto x0 = input<B>(ctx, shape(n, teacher.config().dims()), 1, -2.0, 2.0);
    const auto y = cycling_labels<B>(ctx, n, 3);
    ayf::flow_matching<B, unet> objective;
    objective_case(rec, teacher, objective, [&](auto& o) { return o.step(ctx, teacher, x0, &y); });
  } else if (name == "unet_ayf_emd_step") {
    using unet = ayf::nn::unet_flow_model<B>;
    unet teacher(ctx, unet_shape(false, 3));
    unet weak(ctx, unet_shape(false, 4));
    auto guided = ayf::make_autoguided_velocity<B>(teacher, weak);
    auto student = random_unet_student<B>(ctx);
    const std::size_t n = 6;
    const auto x0 = input<B>(ctx, shape(n, student.config().dims()), 1, -2.0, 2.0);
    const auto y = cycling_labels<B>(ctx, n, 3);
    ayf::ayf_emd_config config;
    config.warmup_iterations = 10;
    ayf::ayf_emd<B, unet> objective(config);
    objective_case(rec, student, objective, [&](auto& o) { return o.step(ctx, student, guided, x0, &y, 4.0); });
    rec.add(objective.output_gradient());
  } else if (name == "unet_attention_ayf_emd_step") {
    using unet = ayf::nn::unet_flow_model<B>;
    ayf::nn::unet_config c = unet_shape(true, 6);
    c.attention_levels = {0, 1};
    c.attention_heads = 2;
    unet student(ctx, c);
    ayf::nn::parameter_set<B>& p = student.parameters();
    B::copy(ctx, random_parameters<B>(ctx, p.layout, 56, -0.5, 0.5).values, p.values);  // attention projections away from zero
    ayf::nn::unet_config tc = unet_shape(false, 7);
    tc.attention_levels = {1};
    unet teacher(ctx, tc);
    const std::size_t n = 4;
    const auto x0 = input<B>(ctx, shape(n, student.config().dims()), 1, -2.0, 2.0);
    const auto y = cycling_labels<B>(ctx, n, 3);
    ayf::ayf_emd_config config;
    config.warmup_iterations = 10;
    ayf::ayf_emd<B, unet> objective(config);
    objective_case(rec, student, objective, [&](auto& o) { return o.step(ctx, student, teacher, x0, &y, 4.0); });
    rec.add(objective.output_gradient());
  } else if (name == "broadcast_add") {
    const auto y0 = input<B>(ctx, shape(6, 12), 1);
    typename B::tensor y;
    B::copy(ctx, y0, y);
    B::broadcast_add(ctx, y, 0.5, input<B>(ctx, shape(1, 4), 2));  // a bias per pixel of 4 channels
    rec.add(y);
    B::broadcast_add(ctx, y, S(-1.25), input<B>(ctx, shape(1, 12), 3));  // a row bias
    rec.add(y);
    B::broadcast_add(ctx, y, 2.0, input<B>(ctx, shape::vector(6), 4));  // per row
    rec.add(y);
    auto flat = input<B>(ctx, shape(1, 40), 5);
    B::broadcast_add(ctx, B::slice(ctx, flat, 3, shape(3, 6)), 1.0, B::slice(ctx, y0, 7, shape(1, 3)));
    B::broadcast_add(ctx, B::slice(ctx, flat, 21, shape(3, 6)), -0.5, B::slice(ctx, y0, 30, shape::vector(3)));
    rec.add(flat);
  } else if (name == "sum_columns") {
    const auto x = input<B>(ctx, shape(37, 48), 1);
    auto out = B::make(ctx, shape(1, 48));
    B::sum_columns(ctx, out, 0.0, x);
    rec.add(out);
    auto out6 = input<B>(ctx, shape(1, 6), 2);
    B::sum_columns(ctx, out6, S(0.5), x);  // runs of 6 channels, accumulating
    rec.add(out6);
    auto flat = input<B>(ctx, shape(1, 20), 3);
    B::sum_columns(ctx, B::slice(ctx, flat, 4, shape(1, 8)), 1.0, B::slice(ctx, x, 48, shape(10, 48)));
    rec.add(flat);
  } else if (name == "reduce_rows_split") {
    // Sums of plain products (no multiply-add to contract): the host order on every system. A few
    // rows of several chunks and ragged lanes, rows narrower than the lanes, and many rows (the
    // Thrust backend's split into (row, chunk, lane) pieces and its one-index-per-row path).
    for (const shape sh : {shape(3, 20011), shape(40, 37), shape(7, 5), shape(20000, 3)}) {
      const auto a = input<B>(ctx, sh, 1, -1.0, 3.0), b = input<B>(ctx, sh, 2);
      typename B::tensor out;
      B::reduce_rows(ctx, out, product{}, a, b);
      rec.add(out);
    }
  } else if (name == "sum_columns_split") {
    // Chunks of rows summed apart and added in order: a conv bias gradient (32 channels over many
    // pixels), runs of 16 channels, a wide output (one index per column), and one chunk.
    const auto image = input<B>(ctx, shape(3001, 32), 1, -1.0, 3.0);
    auto out = input<B>(ctx, shape(1, 32), 2);
    B::sum_columns(ctx, out, 0.0, image);
    rec.add(out);
    B::sum_columns(ctx, out, S(0.5), image);
    rec.add(out);
    const auto runs = input<B>(ctx, shape(600, 64), 3, -1.0, 3.0);
    auto out16 = B::make(ctx, shape(1, 16));
    B::sum_columns(ctx, out16, 0.0, runs);
    rec.add(out16);
    const auto wide = input<B>(ctx, shape(10, 2048), 4, -1.0, 3.0);
    auto out_wide = input<B>(ctx, shape(1, 2048), 5);
    B::sum_columns(ctx, out_wide, 1.0, wide);
    rec.add(out_wide);
    const auto small = input<B>(ctx, shape(9, 24), 6, -1.0, 3.0);
    auto out_small = B::make(ctx, shape(1, 24));
    B::sum_columns(ctx, out_small, 0.0, small);
    rec.add(out_small);
  } else if (name == "max_rows") {
    const auto x = input<B>(ctx, shape(41, 37), 1, -3.0, 3.0);
    typename B::tensor out;
    B::max_rows(ctx, out, x);
    rec.add(out);
    auto flat = B::make(ctx, shape(1, 10));
    B::max_rows(ctx, B::slice(ctx, flat, 2, shape::vector(5)), B::slice(ctx, x, 100, shape(5, 7)));
    rec.add(flat);
  } else if (name == "gather_rows" || name == "scatter_add_rows") {
    const auto table = input<B>(ctx, shape(5, 7), 1);
    const auto labels = cycling_labels<B>(ctx, 23, 5);  // -1 (no row) and every row 0..4
    const auto in = input<B>(ctx, shape(23, 7), 2);
    if (name == "gather_rows") {
      typename B::tensor out;
      B::gather_rows(ctx, out, table, labels);
      rec.add(out);
      auto flat = B::make(ctx, shape(1, 4 * 7 + 1));
      B::gather_rows(ctx, B::slice(ctx, flat, 1, shape(4, 7)), B::slice(ctx, table, 0, shape(5, 7)),
                     B::slice(ctx, labels, 3, shape::vector(4)));
      rec.add(flat);
    } else {
      auto grad = input<B>(ctx, shape(5, 7), 3);
      B::scatter_add_rows(ctx, grad, labels, in);
      rec.add(grad);
      auto flat = B::make(ctx, shape(1, 5 * 7 + 1));
      B::scatter_add_rows(ctx, B::slice(ctx, flat, 1, shape(5, 7)), B::slice(ctx, labels, 0, shape::vector(23)),
                          B::slice(ctx, in, 0, shape(23, 7)));
      rec.add(flat);
    }
  } else if (name == "gemm_batched_nn") {
    gemm_batched_case(rec, transpose::no, transpose::no, 4, 5, 3, 7);
  } else if (name == "gemm_batched_nt") {
    gemm_batched_case(rec, transpose::no, transpose::yes, 4, 5, 3, 7);
  } else if (name == "gemm_batched_tn") {
    gemm_batched_case(rec, transpose::yes, transpose::no, 4, 5, 3, 7);
  } else if (name == "gemm_batched_tt") {
    gemm_batched_case(rec, transpose::yes, transpose::yes, 4, 5, 3, 7);
  } else if (name == "gemm_batched_large") {
    // Members large enough for the Eigen backend's oneTBB row blocks (m >= 128, m n k >= 2^22).
    gemm_batched_case(rec, transpose::no, transpose::yes, 2, 192, 144, 160);
  } else {
    throw std::invalid_argument("no conformance case named " + std::string(name));
  }
  return std::move(rec.values);
}

/// The message of every argument error the backend raises for a set of wrong calls, in order;
/// "(no error)" where a call did not raise.
template <class B>
std::vector<std::string> error_messages() {
  typename B::context ctx(1);
  std::vector<std::string> out;
  auto expect = [&](auto&& call) {
    try {
      call();
      out.emplace_back("(no error)");
    } catch (const ayf::error& e) {
      out.emplace_back(e.what());
    }
  };
  auto a = B::make(ctx, shape(3, 4));
  auto b = B::make(ctx, shape(4, 3));
  auto col = B::make(ctx, shape(2, 1));
  typename B::tensor out_t;
  expect([&] { B::transform(ctx, out_t, mul_sub{}, a, b); });
  expect([&] { B::transform(ctx, B::slice(ctx, b, 0, shape(2, 2)), square_plus_one{}, a); });
  expect([&] { B::scale_sum_rows(ctx, out_t, 1.0, a, 1.0, b); });
  expect([&] { B::scale_sum_rows(ctx, out_t, col, a); });
  expect([&] { B::reduce_rows(ctx, out_t, mul_sub{}, a, b); });
  expect([&] { B::reduce_all(ctx, mul_sub{}, a, b); });
  expect([&] { B::dot(ctx, a, b); });
  expect([&] { B::extrema(ctx, B::make(ctx, shape(0, 3))); });
  expect([&] { B::slice(ctx, a, 10, shape(1, 3)); });
  expect([&] { B::slice(ctx, std::as_const(a), 13, shape(0, 1)); });
  expect([&] { B::from_host(ctx, std::vector<typename B::scalar>(5), shape(2, 3)); });
  expect([&] {
    auto into = B::make(ctx, shape(1, 5));
    B::from_host(ctx, std::vector<typename B::scalar>(5), shape(2, 3), into);
  });
  expect([&] { B::gemm(ctx, transpose::no, transpose::no, 1, a, a, 0, out_t); });
  expect([&] { B::gemm(ctx, transpose::no, transpose::no, 1, a, b, 1, col); });
  expect([&] { B::gemm(ctx, transpose::yes, transpose::yes, 1, a, b, 0, B::slice(ctx, a, 0, shape(2, 2))); });
  expect([&] { B::gather_sum(ctx, out_t, shape(2, 2), a, col2im_map{1, 1, 1}, -1); });
  expect([&] { B::transform(ctx, a, mul_sub{}, a, a); });  // fine: no resize
  expect([&] { B::copy(ctx, a, B::slice(ctx, b, 0, shape(2, 6))); });
  expect([&] {
    auto y = B::make(ctx, shape(2, 2));
    B::transform(ctx, y, mul_sub{}, y, y);  // not an error: same shape
    B::scale_sum_rows(ctx, y, 1.0, a);  // resizes y: fine, y is not an input
    B::gather(ctx, y, shape(5, 5), y, im2col_map{1, 1, 1});  // resizing an input
  });
  expect([&] { B::resize(ctx, B::slice(ctx, a, 0, shape(2, 2)), shape(2, 3)); });
  using S = typename B::scalar;
  const auto fraction = B::from_host(ctx, {S(0), S(2.5)}, shape::vector(2));
  const auto too_big = B::from_host(ctx, {S(1), S(3)}, shape::vector(2));
  expect([&] { B::broadcast_add(ctx, a, 1.0, b); });
  expect([&] { B::sum_columns(ctx, col, 0.0, a); });
  expect([&] { B::max_rows(ctx, out_t, B::make(ctx, shape(2, 0))); });
  expect([&] { B::gather_rows(ctx, out_t, a, fraction); });
  expect([&] { B::gather_rows(ctx, out_t, a, a); });
  expect([&] { B::scatter_add_rows(ctx, a, too_big, B::make(ctx, shape(2, 4))); });
  expect([&] { B::scatter_add_rows(ctx, a, fraction, B::make(ctx, shape(2, 3))); });
  expect([&] { B::gemm_batched(ctx, transpose::no, transpose::no, 1, a, b, 0, out_t, 2); });
  expect([&] { B::gemm_batched(ctx, transpose::no, transpose::no, 1, a, a, 0, out_t, 3); });
  expect([&] { B::gemm_batched(ctx, transpose::no, transpose::yes, 1, a, a, 1, out_t, 3); });
  expect([&] { B::transform_pair(ctx, out_t, col, sum_and_difference{}, a, b); });
  expect([&] { B::transform_pair(ctx, out_t, out_t, square_and_cube{}, a); });
  expect([&] { B::transform_pair(ctx, B::slice(ctx, b, 0, shape(3, 4)), B::slice(ctx, b, 4, shape(3, 4)),
                                 square_and_cube{}, a); });
  return out;
}

}  // namespace ayf_conformance
