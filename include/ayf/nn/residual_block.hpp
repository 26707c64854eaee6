// ayf/nn/residual_block.hpp: the U-Net's residual block conditioned on an embedding e,
//   out = skip(x) + conv2(silu(GN2(conv1(silu(GN1(x))) + e W_e))),
// with e W_e added as a per-(sample, channel) bias and skip a 1x1 convolution when the channel count
// changes (the identity otherwise). A composition of conv2d, group_norm_silu (GroupNorm and SiLU in
// the same passes) and linear.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

#include "ayf/nn/conv.hpp"
#include "ayf/nn/group_norm.hpp"
#include "ayf/nn/linear.hpp"

namespace ayf::nn {

namespace detail {
/// The adjoint of sample_channel_map (conv.hpp): the sum over pixels, [n, C] from [n, P*C] with P
/// taps, over runs of C channels.
struct pixel_sum_map {
  std::int64_t p;
  AYF_HOST_DEVICE std::int64_t operator()(std::int64_t b, std::int64_t r) const { return b * p + r; }
};
}  // namespace detail

/// Forward activations of one residual block (stacked [2B, .] after a JVP pass).
template <backend B>
struct residual_block_state {
  group_norm_silu_state<B> norm1, norm2;
  typename B::tensor a1{}, z1{}, a2{}, bias{};
};

template <backend B>
class residual_block {
public:
  using tensor = typename B::tensor;
  using context = typename B::context;
  using scalar = typename B::scalar;
  using state = residual_block_state<B>;

  residual_block(parameter_layout& layout, const std::string& name, image_shape input, std::size_t out_channels,
                 std::size_t embedding, std::size_t groups, double eps)
      : m_in(input), m_out{input.height, input.width, out_channels}, m_embedding(embedding),
        m_norm1(layout, name + ".norm1", input, groups, eps), m_conv1(layout, name + ".conv1", input, out_channels, 3),
        m_embed(layout, name + ".embed", embedding, out_channels, false),
        m_norm2(layout, name + ".norm2", m_out, groups, eps), m_conv2(layout, name + ".conv2", m_out, out_channels, 3),
        m_has_skip(input.channels != out_channels) {
    if (m_has_skip) m_skip = conv2d<B>(layout, name + ".skip", input, out_channels, 1);
  }

  [[nodiscard]] const image_shape& input() const { return m_in; }
  [[nodiscard]] const image_shape& output() const { return m_out; }
  [[nodiscard]] std::size_t input_size() const { return m_in.size(); }
  [[nodiscard]] std::size_t conditioning_size() const { return m_embedding; }
  [[nodiscard]] std::size_t output_size() const { return m_out.size(); }

  /// Convolutions N(0, 1 / fan_in), the embedding projection N(0, 1 / E), norms gamma = 1, biases 0.
  void initialise(context& ctx, parameter_set<B>& params) const {
    m_norm1.initialise(ctx, params);
    m_norm2.initialise(ctx, params);
    m_conv1.initialise(ctx, params);
    m_conv2.initialise(ctx, params);
    if (m_has_skip) m_skip.initialise(ctx, params);
    m_embed.initialise(ctx, params);
  }

  /// x: [R, P*C_in], embedding: [R, E], y: [R, P*C_out]; rows [0, n) primal, [n, R) tangents.
  void forward(context& ctx, parameter_set<B>& params, const tensor& x, const tensor& embedding, tensor& y, state& st,
               workspace<B>& ws, std::size_t n) const {
    const std::size_t rows = B::shape_of(x).rows;
    require_shape("residual_block::forward", "embedding", shape(rows, m_embedding), B::shape_of(embedding));
    no_state none;
    m_norm1.forward(ctx, params, x, st.a1, st.norm1, ws, n);
    // z1 = conv1(a1) + broadcast over pixels of e W_e (the tangent rows get de W_e).
    m_embed.forward(ctx, params, embedding, st.bias, none, ws, n);
    m_conv1.forward(ctx, params, st.a1, st.z1, none, ws, n, false, &st.bias);
    m_norm2.forward(ctx, params, st.z1, st.a2, st.norm2, ws, n);
    m_conv2.forward(ctx, params, st.a2, y, none, ws, n);
    if (m_has_skip) {
      m_skip.forward(ctx, params, x, y, none, ws, n, true);
    } else {
      B::scale_sum_rows(ctx, y, 1.0, y, 1.0, x);
    }
  }

  /// Given dL/dy ([n, P*C_out]) at the pass that filled `st`: accumulates the parameter gradients
  /// (mode), adds dL/de into *grad_embedding ([n, E]) and writes dL/dx into *grad_x ([n, P*C_in]).
  void backward(context& ctx, parameter_set<B>& params, const tensor& x, const tensor& embedding, const state& st,
                const tensor& grad_y, tensor* grad_x, tensor* grad_embedding, workspace<B>& ws,
                gradient_mode mode) const {
    const std::size_t n = st.norm1.norm.batch, p = m_in.pixels(), c = m_out.channels;
    require_shape("residual_block::backward", "grad_y", shape(n, m_out.size()), B::shape_of(grad_y));
    const no_state none;
    m_conv2.backward(ctx, params, st.a2, none, grad_y, &m_grad_a, ws, with_parameters(mode));
    m_norm2.backward(ctx, params, st.z1, st.norm2, m_grad_a, &m_grad_z, ws, with_parameters(mode));
    // The embedding bias: dL/d(e W_e) sums dL/dz1 over pixels.
    B::gather_sum(ctx, m_grad_bias, shape(n, c), m_grad_z, detail::pixel_sum_map{static_cast<std::int64_t>(p)},
                  static_cast<std::int64_t>(p), static_cast<std::int64_t>(c));
    if (wants_parameters(mode)) {
      m_embed.backward(ctx, params, embedding, none, m_grad_bias, nullptr, ws, gradient_mode::parameters);
    }
    if (grad_embedding != nullptr) {
      m_embed.backward(ctx, params, embedding, none, m_grad_bias, grad_embedding, ws, gradient_mode::inputs, true);
    }
    const bool inputs = wants_inputs(mode) && grad_x != nullptr;
    if (!inputs && !wants_parameters(mode)) return;
    m_conv1.backward(ctx, params, st.a1, none, m_grad_z, &m_grad_in, ws, with_parameters(mode));
    tensor* dx = inputs ? grad_x : &m_grad_x;
    m_norm1.backward(ctx, params, x, st.norm1, m_grad_in, dx, ws, with_parameters(mode));
    if (m_has_skip) {
      m_skip.backward(ctx, params, x, none, grad_y, dx, ws, with_parameters(mode), true);
    } else {
      B::scale_sum_rows(ctx, *dx, 1.0, *dx, 1.0, grad_y);
    }
  }

private:
  /// Inner layers always pass the input gradient on; parameters as the caller asked.
  static gradient_mode with_parameters(gradient_mode mode) {
    return wants_parameters(mode) ? gradient_mode::both : gradient_mode::inputs;
  }

  image_shape m_in{}, m_out{};
  std::size_t m_embedding = 0;
  group_norm_silu<B> m_norm1;
  conv2d<B> m_conv1;
  linear<B> m_embed;
  group_norm_silu<B> m_norm2;
  conv2d<B> m_conv2;
  bool m_has_skip = false;
  conv2d<B> m_skip{};
  mutable tensor m_grad_a{}, m_grad_z{}, m_grad_in{}, m_grad_bias{}, m_grad_x{};
};

}  // namespace ayf::nn
