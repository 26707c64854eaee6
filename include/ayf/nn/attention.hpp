// ayf/nn/attention.hpp: multi-head self-attention over the pixels of a channels-last image (as in
// EDM2's U-Net), y = x + proj(attention(qkv(GN(x)))), per sample and head h (d = C / H channels):
//   S = Q K^T / sqrt(d),  A = softmax(S) (rows),  O = A V.
// Tangent rule (Q, K, V are linear in the input, so dQ, dK, dV come from the stacked rows):
//   dS = (dQ K^T + Q dK^T) / sqrt(d),  dA = A (dS - rowsum(A dS)),  dO = dA V + A dV.
// Backward from the saved Q, K, V and A:
//   dA = dO V^T, dV = A^T dO, dS = A (dA - rowsum(A dA)), dQ = dS K / sqrt(d), dK = dS^T Q / sqrt(d).
// The per-(sample, head) products are strided-batched GEMMs (B::gemm_batched).
#pragma once

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <string>
#include <utility>

#include "ayf/core/functors.hpp"
#include "ayf/nn/conv.hpp"
#include "ayf/nn/group_norm.hpp"

namespace ayf::nn {

namespace detail {

/// Image rows [R, P*parts*C] (channel blocks: part, head, d channels) to head-major rows
/// [parts*R*H*P, d]: block (part, r, h, pixel) reads block (r*P + pixel)*parts*H + part*H + h.
struct heads_from_image_map {
  std::int64_t rows, heads, pixels, parts;
  fast_divisor by_rhp, by_hp, by_p;
  heads_from_image_map(std::int64_t r, std::int64_t h, std::int64_t p, std::int64_t k)
      : rows(r), heads(h), pixels(p), parts(k), by_rhp(r * h * p), by_hp(h * p), by_p(p) {}
  AYF_HOST_DEVICE std::int64_t operator()(std::int64_t i) const {
    const std::int64_t part = by_rhp.div(i), rest = i - part * rows * heads * pixels;
    const std::int64_t r = by_hp.div(rest), rem = rest - r * heads * pixels;
    const std::int64_t h = by_p.div(rem), pixel = rem - h * pixels;
    return (r * pixels + pixel) * parts * heads + part * heads + h;
  }
};

/// The inverse: image block (r, pixel, part, h) reads head-major block part*R*H*P + (r*H + h)*P + pixel.
struct image_from_heads_map {
  std::int64_t rows, heads, pixels, parts;
  fast_divisor by_kh, by_h, by_p;
  image_from_heads_map(std::int64_t r, std::int64_t h, std::int64_t p, std::int64_t k)
      : rows(r), heads(h), pixels(p), parts(k), by_kh(k * h), by_h(h), by_p(p) {}
  AYF_HOST_DEVICE std::int64_t operator()(std::int64_t j) const {
    const std::int64_t rp = by_kh.div(j), rest = j - rp * parts * heads;
    const std::int64_t part = by_h.div(rest), h = rest - part * heads;
    const std::int64_t r = by_p.div(rp), pixel = rp - r * pixels;
    return part * rows * heads * pixels + (r * heads + h) * pixels + pixel;
  }
};

struct exponential {
  template <class T>
  AYF_HOST_DEVICE T operator()(T x) const {
    using std::exp;
    return exp(x);
  }
};

}  // namespace detail

/// What backward needs: the GroupNorm pass, the normalised image h, the head-major Q, K, V (stacked),
/// the primal attention weights A and the attention output before the projection.
template <backend B>
struct attention_state {
  std::size_t batch = 0;
  group_norm_state<B> norm;
  typename B::tensor h{}, qkv{}, heads{}, weights{}, out_heads{}, out_image{};
};

/// Self-attention block with `heads` heads over an H x W x C image (C divisible by heads and groups).
/// Blocks: "<name>.norm.gamma/beta", "<name>.qkv.w/b" ([C, 3C]), "<name>.proj.w/b" ([C, C]).
template <backend B>
class self_attention {
public:
  using tensor = typename B::tensor;
  using context = typename B::context;
  using scalar = typename B::scalar;
  using state = attention_state<B>;

  self_attention() = default;
  self_attention(parameter_layout& layout, const std::string& name, image_shape image, std::size_t heads,
                 std::size_t groups, double eps = 1e-5)
      : m_image(image), m_heads(heads), m_norm(layout, name + ".norm", image, groups, eps),
        m_qkv(layout, name + ".qkv", image, 3 * image.channels, 1),
        m_proj(layout, name + ".proj", image, image.channels, 1) {
    require(heads >= 1 && image.channels % heads == 0, "self_attention", "heads",
            ayf::detail::message("a divisor of the channel count ", image.channels), heads);
  }

  [[nodiscard]] const image_shape& image() const { return m_image; }
  [[nodiscard]] std::size_t heads() const { return m_heads; }
  [[nodiscard]] std::size_t input_size() const { return m_image.size(); }
  [[nodiscard]] std::size_t output_size() const { return m_image.size(); }

  /// GroupNorm gamma = 1, beta = 0; qkv N(0, 1 / C); proj N(0, proj_gain^2 / C) (0: the block starts
  /// as the identity, as in ADM/EDM2); biases 0.
  void initialise(context& ctx, parameter_set<B>& params, double proj_gain) const {
    m_norm.initialise(ctx, params);
    m_qkv.initialise(ctx, params);
    m_proj.initialise(ctx, params, proj_gain);
  }
  void initialise(context& ctx, parameter_set<B>& params) const { initialise(ctx, params, 1.0); }

  /// x, y: [R, P*C], rows [0, n) primal, [n, R) tangents.
  void forward(context& ctx, parameter_set<B>& params, const tensor& x, tensor& y, state& st, workspace<B>& ws,
               std::size_t n) const {
    detail::require_stacked<B>("self_attention::forward", x, m_image.size(), n);
    const std::size_t rows = B::shape_of(x).rows, d = head_channels(), batch = n * m_heads, p = m_image.pixels();
    const std::size_t block = batch * p;  // rows of one part (primal) in the head-major layout
    const scalar inv_sqrt_d = static_cast<scalar>(1 / std::sqrt(static_cast<double>(d)));
    no_state none;
    st.batch = n;
    m_norm.forward(ctx, params, x, st.h, st.norm, ws, n);
    m_qkv.forward(ctx, params, st.h, st.qkv, none, ws, n);
    // Q, K, V head-major: [3 * R*H*P, d]; part k starts at row k * R*H*P, its primal rows first.
    const std::size_t part = rows * m_heads * p;
    B::gather(ctx, st.heads, shape(3 * part, d), st.qkv, to_heads(rows, 3), static_cast<std::int64_t>(d));
    const auto q = detail::rows_of<B>(ctx, std::as_const(st.heads), 0, block);
    const auto k = detail::rows_of<B>(ctx, std::as_const(st.heads), part, block);
    const auto v = detail::rows_of<B>(ctx, std::as_const(st.heads), 2 * part, block);
    // A = softmax(Q K^T / sqrt(d)) row by row (the row maximum subtracted first).
    B::gemm_batched(ctx, transpose::no, transpose::yes, inv_sqrt_d, q, k, scalar(0), st.weights, batch);
    softmax_rows(ctx, st.weights, ws);
    B::resize(ctx, st.out_heads, shape(rows * m_heads * p, d));
    B::gemm_batched(ctx, transpose::no, transpose::no, scalar(1), st.weights, v, scalar(0),
                    detail::rows_of<B>(ctx, st.out_heads, 0, block), batch);
    if (rows == 2 * n) {
      const auto dq = detail::rows_of<B>(ctx, std::as_const(st.heads), block, block);
      const auto dk = detail::rows_of<B>(ctx, std::as_const(st.heads), part + block, block);
      const auto dv = detail::rows_of<B>(ctx, std::as_const(st.heads), 2 * part + block, block);
      // dS = (dQ K^T + Q dK^T) / sqrt(d); dA = A (dS - rowsum(A dS)).
      auto ds = detail::scratch<B>(ctx, ws.image_a, shape(block, p));
      B::gemm_batched(ctx, transpose::no, transpose::yes, inv_sqrt_d, dq, k, scalar(0), ds, batch);
      B::gemm_batched(ctx, transpose::no, transpose::yes, inv_sqrt_d, q, dk, scalar(1), ds, batch);
      softmax_tangent(ctx, st.weights, ds, ws);
      // dO = dA V + A dV.
      auto dout = detail::rows_of<B>(ctx, st.out_heads, block, block);
      B::gemm_batched(ctx, transpose::no, transpose::no, scalar(1), ds, v, scalar(0), dout, batch);
      B::gemm_batched(ctx, transpose::no, transpose::no, scalar(1), st.weights, dv, scalar(1), dout, batch);
    }
    B::gather(ctx, st.out_image, shape(rows, m_image.size()), st.out_heads, to_image(rows, 1),
              static_cast<std::int64_t>(d));
    // y = x + proj(O).
    B::copy(ctx, x, y);
    m_proj.forward(ctx, params, st.out_image, y, none, ws, n, true);
  }

  /// Given dL/dy ([n, P*C]): parameter gradients (mode) and dL/dx = dy + (the attention path).
  void backward(context& ctx, parameter_set<B>& params, const tensor& x, const state& st, const tensor& grad_y,
                tensor* grad_x, workspace<B>& ws, gradient_mode mode) const {
    const std::size_t n = st.batch, d = head_channels(), batch = n * m_heads, p = m_image.pixels();
    const std::size_t block = batch * p, part = B::shape_of(st.heads).rows / 3;
    require_shape("self_attention::backward", "grad_y", shape(n, m_image.size()), B::shape_of(grad_y));
    const scalar inv_sqrt_d = static_cast<scalar>(1 / std::sqrt(static_cast<double>(d)));
    const gradient_mode inner = wants_parameters(mode) ? gradient_mode::both : gradient_mode::inputs;
    const no_state none;
    const auto q = detail::rows_of<B>(ctx, st.heads, 0, block);
    const auto k = detail::rows_of<B>(ctx, st.heads, part, block);
    const auto v = detail::rows_of<B>(ctx, st.heads, 2 * part, block);
    // dO from the projection, head-major.
    m_proj.backward(ctx, params, st.out_image, none, grad_y, &m_grad_image, ws, inner);
    B::gather(ctx, m_grad_out, shape(block, d), m_grad_image, to_heads(n, 1), static_cast<std::int64_t>(d));
    // dA = dO V^T; dV = A^T dO; dS = A (dA - rowsum(A dA)); dQ = dS K / sqrt(d); dK = dS^T Q / sqrt(d).
    B::resize(ctx, m_grad_heads, shape(3 * block, d));
    auto dq = detail::rows_of<B>(ctx, m_grad_heads, 0, block);
    auto dk = detail::rows_of<B>(ctx, m_grad_heads, block, block);
    auto dv = detail::rows_of<B>(ctx, m_grad_heads, 2 * block, block);
    auto ds = detail::scratch<B>(ctx, ws.image_a, shape(block, p));
    B::gemm_batched(ctx, transpose::no, transpose::yes, scalar(1), m_grad_out, v, scalar(0), ds, batch);
    B::gemm_batched(ctx, transpose::yes, transpose::no, scalar(1), st.weights, m_grad_out, scalar(0), dv, batch);
    softmax_tangent(ctx, st.weights, ds, ws);
    B::gemm_batched(ctx, transpose::no, transpose::no, inv_sqrt_d, ds, k, scalar(0), dq, batch);
    B::gemm_batched(ctx, transpose::yes, transpose::no, inv_sqrt_d, ds, q, scalar(0), dk, batch);
    // Back to the qkv image layout, then through qkv and the norm.
    B::gather(ctx, m_grad_qkv, shape(n, 3 * m_image.size()), m_grad_heads, to_image(n, 3), static_cast<std::int64_t>(d));
    m_qkv.backward(ctx, params, st.h, none, m_grad_qkv, &m_grad_image, ws, inner);
    tensor* dx = wants_inputs(mode) && grad_x != nullptr ? grad_x : &m_grad_x;
    m_norm.backward(ctx, params, x, st.norm, m_grad_image, dx, ws, inner);
    B::scale_sum_rows(ctx, *dx, 1.0, *dx, 1.0, grad_y);
  }

private:
  [[nodiscard]] std::size_t head_channels() const { return m_image.channels / m_heads; }
  [[nodiscard]] detail::heads_from_image_map to_heads(std::size_t rows, std::int64_t parts) const {
    return detail::heads_from_image_map(static_cast<std::int64_t>(rows), static_cast<std::int64_t>(m_heads),
                                        static_cast<std::int64_t>(m_image.pixels()), parts);
  }
  [[nodiscard]] detail::image_from_heads_map to_image(std::size_t rows, std::int64_t parts) const {
    return detail::image_from_heads_map(static_cast<std::int64_t>(rows), static_cast<std::int64_t>(m_heads),
                                        static_cast<std::int64_t>(m_image.pixels()), parts);
  }

  /// s <- softmax(s) along rows: exp(s - max) / sum.
  void softmax_rows(context& ctx, tensor& s, workspace<B>& ws) const {
    const std::size_t rows = B::shape_of(s).rows;
    auto m = detail::scratch<B>(ctx, ws.rows_a, shape(rows, 1));
    B::max_rows(ctx, m, s);
    B::broadcast_add(ctx, s, -1.0, m);
    B::transform(ctx, s, detail::exponential{}, s);
    B::reduce_rows(ctx, m, fn::identity{}, s);
    B::transform(ctx, m, fn::reciprocal_plus{0.0}, m);
    B::scale_sum_rows(ctx, s, m, s);
  }

  /// v <- A (v - rowsum(A v)): the softmax Jacobian (symmetric) applied to v.
  template <class V>
  void softmax_tangent(context& ctx, const tensor& a, V&& v, workspace<B>& ws) const {
    const std::size_t rows = B::shape_of(a).rows;
    auto r = detail::scratch<B>(ctx, ws.rows_a, shape(rows, 1));
    B::reduce_rows(ctx, r, detail::product{}, a, v);
    B::broadcast_add(ctx, v, -1.0, r);
    B::transform(ctx, v, detail::product{}, v, a);
  }

  image_shape m_image{};
  std::size_t m_heads = 1;
  group_norm<B> m_norm{};
  conv2d<B> m_qkv{}, m_proj{};
  mutable tensor m_grad_image{}, m_grad_out{}, m_grad_heads{}, m_grad_qkv{}, m_grad_x{};
};

}  // namespace ayf::nn
