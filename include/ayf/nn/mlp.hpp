// ayf/nn/mlp.hpp: a residual MLP, composed of shared layers (linear.hpp, activation.hpp, embedding.hpp), that models a velocity field v(x, t, y) (teacher) or the average
// velocity F(x, t, s, lambda, y) of the Euler flow map f = x + (s - t) F (student, spec §2), with
// forward, forward_jvp (primal and tangent stacked as [2B, .], one GEMM per linear layer; design.md §4)
// and backward, which reuses the primal activations saved by forward or forward_jvp.
#pragma once

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "ayf/core/model.hpp"
#include "ayf/nn/activation.hpp"
#include "ayf/nn/embedding.hpp"
#include "ayf/nn/flow_model.hpp"
#include "ayf/nn/linear.hpp"
#include "ayf/nn/parameters.hpp"

namespace ayf::nn {

/// Architecture: z_0 = x W_x + e(t) W_t [+ e(s) W_s + e(lambda) W_lambda + W_y[y]] + b_0;
/// z_{l+1} = z_l + silu(z_l) W_l + b_l for l < blocks; F = silu(z_L) W_out + b_out.
/// e(u) = [sin(omega_k u), cos(omega_k u)]_{k=1..K}, omega_k = frequency_scale * pi * k: a bounded
/// bandwidth (spec §8.1, measured: features up to ~25 rad per unit time train; ~400 break AYF-EMD).
struct mlp_config {
  std::size_t dims = 2;             ///< D, the data dimension
  std::size_t width = 256;          ///< hidden width W
  std::size_t blocks = 3;           ///< residual blocks
  std::size_t frequencies = 8;      ///< K per embedded scalar
  double frequency_scale = 1.0;     ///< omega_k = frequency_scale * pi * k
  bool embed_s = false;             ///< a flow-map student: F depends on s
  bool embed_lambda = false;        ///< the guidance scale is an input (spec §7)
  double lambda_scale = 1.0 / 3.0;  ///< lambda is embedded as e(lambda * lambda_scale)
  double default_lambda = 1.0;      ///< used when cond.guidance is null
  std::size_t classes = 0;          ///< 0: unconditional; labels in [0, classes), null_class = -1
  std::uint64_t seed = 0;           ///< Philox seed of the initialisation
};

/// Activations of one pass, owned by the caller and reused across steps (no allocation once warm).
/// After forward_jvp the tensors are stacked [2B, .]: rows [0, B) primal, rows [B, 2B) tangent;
/// sigmoid holds the primal rows only.
template <backend B>
struct mlp_activations {
  std::size_t batch = 0;
  bool stacked = false;
  conditioning_state<B> conditioning;
  typename B::tensor input{}, z{}, output{};      // z: the residual stream, z_L after the pass
  std::vector<typename B::tensor> a, sigmoid;    // silu(z_l) and sigmoid(z_l), per level 0..blocks
};

template <backend B>
class mlp_flow_model : public flow_model<mlp_flow_model<B>, B, mlp_config, mlp_activations<B>> {
  using base = flow_model<mlp_flow_model<B>, B, mlp_config, mlp_activations<B>>;
  friend base;

public:
  using typename base::activations, typename base::context, typename base::scalar, typename base::tensor;
  static constexpr const char* name = "mlp_flow_model";

  /// The MLP of `config` (checked), initialised from config.seed: weights N(0, 1 / fan_in), the
  /// residual blocks' scaled by 1 / sqrt(blocks), biases and the s and lambda weights 0.
  mlp_flow_model(context& ctx, const mlp_config& config) : base(validated(config)), m_params(ctx, build()) {
    initialise(ctx);
  }


  /// Two configs that differ at most in embed_s, embed_lambda and the lambda embedding.
  static bool same_architecture(const mlp_config& a, const mlp_config& b) {
    return a.dims == b.dims && a.width == b.width && a.blocks == b.blocks && a.frequencies == b.frequencies &&
           a.frequency_scale == b.frequency_scale && a.classes == b.classes;
  }

  /// Accumulates dL/dtheta into parameters().gradients, given dL/dF ([B, D]) at the pass that
  /// filled `saved` (forward or the primal of forward_jvp; no second forward).
  void backward(context& ctx, const activations& saved, const tensor& grad_output) {
    const std::size_t n = saved.batch, levels = m_config.blocks;
    require_shape("mlp_flow_model::backward", "grad_output", shape(n, m_config.dims), B::shape_of(grad_output));
    require(saved.sigmoid.size() == levels + 1 && saved.a.size() == levels + 1, "mlp_flow_model::backward", "saved",
            "the activations of a forward pass of this model", saved.sigmoid.size());
    const no_state none;
    constexpr gradient_mode both = gradient_mode::both;
    // F = linear(silu(z_L)).
    m_out.backward(ctx, m_params, saved.a[levels], none, grad_output, &m_grad_a, m_ws, both);
    m_silu.backward(ctx, saved.a[levels], saved.sigmoid[levels], m_grad_a, m_grad_z, false);
    // z_{l+1} = z_l + linear_l(silu(z_l)), last to first: dz_l = dz_{l+1} + silu'(z_l) (dz_{l+1} W_l^T).
    for (std::size_t l = levels; l-- > 0;) {
      m_blocks[l].backward(ctx, m_params, saved.a[l], none, m_grad_z, &m_grad_a, m_ws, both);
      m_silu.backward(ctx, saved.a[l], saved.sigmoid[l], m_grad_a, m_grad_z, true);
    }
    // z_0 = x W_x + conditioning.
    m_input.backward(ctx, m_params, saved.input, none, m_grad_z, nullptr, m_ws, gradient_mode::parameters);
    m_conditioning.backward(ctx, m_params, saved.conditioning, m_grad_z, m_ws);
  }

private:
  static mlp_config validated(const mlp_config& c) {
    require(c.dims >= 1, "mlp_config", "dims", "at least 1", c.dims);
    require(c.width >= 1, "mlp_config", "width", "at least 1", c.width);
    require(c.frequencies >= 1, "mlp_config", "frequencies", "at least 1", c.frequencies);
    require(c.frequency_scale > 0, "mlp_config", "frequency_scale", "a positive scale", c.frequency_scale);
    return c;
  }

  /// The layers: input projection "in.x", conditioning embedding "in", residual blocks "block<l>",
  /// output "out".
  parameter_layout build() {
    const mlp_config& c = m_config;
    parameter_layout layout;
    m_input = linear<B>(layout, "in.x", c.dims, c.width, false);
    m_conditioning = conditioning_embedding<B>(layout, "in", conditioning_of(c, c.width));
    for (std::size_t l = 0; l < c.blocks; ++l) m_blocks.emplace_back(layout, "block" + std::to_string(l), c.width, c.width);
    m_out = linear<B>(layout, "out", c.width, c.dims);
    m_silu = silu_saving_sigmoid<B>(c.width);
    return layout;
  }

  /// The initial values (a fresh student ignores s and lambda until trained).
  void initialise(context& model_ctx) {
    context ctx(m_config.seed);
    B::fill(model_ctx, m_params.values, scalar(0));
    const double fan_in = static_cast<double>(m_config.dims + m_conditioning.fan_in());
    detail::normal_init<B>(ctx, m_params, m_input.weight_block(), 1 / std::sqrt(fan_in));
    m_conditioning.initialise(ctx, m_params, fan_in);
    for (const auto& b : m_blocks) b.initialise(ctx, m_params, 1 / std::sqrt(static_cast<double>(m_config.blocks)));
    m_out.initialise(ctx, m_params);
  }

  /// The shared pass. Without tangents: rows = B; with them: every activation is [2B, .].
  void run(context& ctx, const tensor& x, const tensor& t, const tensor& s, const condition<B>& cond,
           const tensor* dx, const tensor* dt, const tensor* ds, activations& act) {
    this->stack_input(ctx, x, dx, m_config.dims, act.input, act);
    const std::size_t n = act.batch;
    no_state none;

    // z_0 = x W_x + conditioning(t, s, lambda, y).
    m_conditioning.forward(ctx, m_params, t, s, cond, dt, ds, act.z, act.conditioning, m_ws);
    m_input.forward(ctx, m_params, act.input, act.z, none, m_ws, n, true);
    act.a.resize(m_config.blocks + 1);
    act.sigmoid.resize(m_config.blocks + 1);

    // Residual blocks, z_{l+1} = z_l + silu(z_l) W_l + b_l in place (the backward reads silu(z_l)
    // and sigmoid(z_l), not z_l), and the output layer.
    for (std::size_t l = 0; l <= m_config.blocks; ++l) {
      m_silu.forward(ctx, act.z, act.a[l], act.sigmoid[l], n);
      if (l == m_config.blocks) break;
      m_blocks[l].forward(ctx, m_params, act.a[l], act.z, none, m_ws, n, true);
    }
    m_out.forward(ctx, m_params, act.a[m_config.blocks], act.output, none, m_ws, n);
  }

  static const tensor& output(const activations& act) { return act.output; }

  using base::m_config;
  linear<B> m_input{};
  conditioning_embedding<B> m_conditioning{};
  std::vector<linear<B>> m_blocks;
  linear<B> m_out{};
  silu_saving_sigmoid<B> m_silu{};
  parameter_set<B> m_params;
  workspace<B> m_ws{};
  tensor m_grad_a{}, m_grad_z{};
};

}  // namespace ayf::nn
