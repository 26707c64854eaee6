// ayf/nn/unet.hpp: a small U-Net, composed of shared layers, modelling a velocity field v(x, t, y) (teacher) or the average velocity
// F(x, t, s, lambda, y) of the Euler flow map f = x + (s - t) F (student, spec §2) on channels-last images,
// with forward, forward_jvp (primal and tangent stacked as [2B, .]) and backward, like mlp_flow_model.
#pragma once

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <string>
#include <type_traits>
#include <utility>
#include <variant>
#include <vector>

#include "ayf/core/model.hpp"
#include "ayf/nn/activation.hpp"
#include "ayf/nn/attention.hpp"
#include "ayf/nn/conv.hpp"
#include "ayf/nn/embedding.hpp"
#include "ayf/nn/flow_model.hpp"
#include "ayf/nn/group_norm.hpp"
#include "ayf/nn/linear.hpp"
#include "ayf/nn/parameters.hpp"
#include "ayf/nn/resample.hpp"
#include "ayf/nn/residual_block.hpp"

namespace ayf::nn {

/// Architecture (channels-last images x: [B, H*W*C]):
///   embedding  e = silu(silu(z) W_2 + b_2) with z the conditioning embedding (embedding.hpp)
///              z = e(t) W_t [+ W_y[y]] + b [+ e(s) W_s + e(lambda) W_lambda],
///              e(u) = [sin(omega_k u), cos(omega_k u)], omega_k = frequency_scale * pi * k (as mlp_config);
///   conv_in    3x3, C -> base * multipliers[0];
///   down       per level l: blocks_per_level residual blocks to base * multipliers[l] (each followed
///              by self-attention when l is in attention_levels), then a 2x2
///              average pool (not after the last level); every output is kept as a skip;
///   mid        one residual block (and self-attention when the last level is in attention_levels);
///   up         per level, last to first: blocks_per_level + 1 times [concat a skip; residual block
///              (+ self-attention at attention levels)],
///              then nearest 2x upsampling (not after level 0);
///   out        GroupNorm -> SiLU -> conv 3x3 -> C: the velocity / average velocity F.
/// Residual block: h = conv3x3(silu(GN(x))) + (e W_e per channel); out = skip(x) + conv3x3(silu(GN(h)))
/// with skip a 1x1 conv when the channel count changes.
struct unet_config {
  std::size_t height = 28;                           ///< image height H
  std::size_t width = 28;                            ///< image width W
  std::size_t channels = 1;                          ///< image channels C
  std::size_t base_channels = 32;                    ///< channels of level 0
  std::vector<std::size_t> channel_multipliers{1, 2};  ///< one per level; H and W divisible by 2^(levels-1)
  std::size_t blocks_per_level = 1;                  ///< residual blocks per level on the down path
  std::size_t groups = 8;                            ///< GroupNorm groups (divides every level's channels)
  double norm_eps = 1e-5;                            ///< GroupNorm epsilon
  std::size_t embedding_channels = 0;                ///< width of e; 0: 4 * base_channels
  std::size_t frequencies = 8;                       ///< K per embedded scalar
  double frequency_scale = 1.0;                      ///< omega_k = frequency_scale * pi * k (bounded bandwidth, spec §8.1)
  bool embed_s = false;                              ///< a flow-map student: F depends on s
  bool embed_lambda = false;                         ///< the guidance scale is an input (spec §7)
  double lambda_scale = 1.0 / 3.0;                   ///< lambda is embedded as e(lambda * lambda_scale)
  double default_lambda = 1.0;                       ///< used when cond.guidance is null
  std::size_t classes = 0;                           ///< 0: unconditional; labels in [0, classes), null_class = -1
  std::vector<std::size_t> attention_levels{};      ///< levels (resolution H / 2^l) with self-attention
  std::size_t attention_heads = 1;                   ///< heads of every attention layer (divides the channels)
  std::uint64_t seed = 0;                            ///< Philox seed of the initialisation

  [[nodiscard]] std::size_t dims() const { return height * width * channels; }
  [[nodiscard]] std::size_t embedding() const { return embedding_channels > 0 ? embedding_channels : 4 * base_channels; }
};

/// Activations of one pass, owned by the caller and reused across steps (no allocation once warm).
/// After forward_jvp the tensors are stacked [2B, .]: rows [0, B) primal, rows [B, 2B) tangent.
template <backend B>
struct unet_activations {
  using layer_state = std::variant<no_state, residual_block_state<B>, attention_state<B>, group_norm_silu_state<B>>;
  std::size_t batch = 0;
  bool stacked = false;
  conditioning_state<B> conditioning;
  typename B::tensor z_embed{}, a_embed{}, z_embed2{}, embedding{};
  std::vector<typename B::tensor> values;  // the network's images in order; [0] the input
  std::vector<layer_state> states;         // one per step of the plan
};

template <backend B>
class unet_flow_model : public flow_model<unet_flow_model<B>, B, unet_config, unet_activations<B>> {
  using base = flow_model<unet_flow_model<B>, B, unet_config, unet_activations<B>>;

public:
  using typename base::activations, typename base::context, typename base::scalar, typename base::tensor;

  /// The U-Net of `config` (checked), its plan of layers built and initialised from config.seed
  /// (see initialise).
  unet_flow_model(context& ctx, const unet_config& config) : base(validated(config)), m_params(ctx, build()) {
    initialise(ctx);
  }
  /// The number of parameters.
  [[nodiscard]] std::size_t size() const { return m_params.size(); }
  static constexpr const char* name = "unet_flow_model";

  /// Two configs that differ at most in embed_s, embed_lambda and the lambda embedding.
  static bool same_architecture(const unet_config& a, const unet_config& b) {
    return a.height == b.height && a.width == b.width && a.channels == b.channels &&
           a.base_channels == b.base_channels && a.channel_multipliers == b.channel_multipliers &&
           a.blocks_per_level == b.blocks_per_level && a.groups == b.groups && a.norm_eps == b.norm_eps &&
           a.embedding() == b.embedding() && a.frequencies == b.frequencies &&
           a.frequency_scale == b.frequency_scale && a.classes == b.classes &&
           a.attention_levels == b.attention_levels && a.attention_heads == b.attention_heads;
  }

  /// Accumulates dL/dtheta into parameters().gradients, given dL/dF ([B, H*W*C]) at the pass that
  /// filled `saved` (forward or the primal of forward_jvp; no second forward).
  void backward(context& ctx, const activations& saved, const tensor& grad_output) {
    const std::size_t n = saved.batch, e = m_config.embedding();
    require_shape("unet_flow_model::backward", "grad_output", shape(n, m_config.dims()), B::shape_of(grad_output));
    require(saved.values.size() == m_images.size() && saved.states.size() == m_plan.size(), "unet_flow_model::backward",
            "saved", "the activations of a forward pass of this model", saved.values.size());
    const std::size_t count = m_images.size();
    m_grads.resize(count);
    m_written.assign(count, 0);
    m_step_grads.resize(m_plan.size());
    B::resize(ctx, m_grad_embedding, shape(n, e));
    B::fill(ctx, m_grad_embedding, scalar(0));
    B::copy(ctx, grad_output, m_grads[count - 1]);
    m_written[count - 1] = 1;
    constexpr gradient_mode both = gradient_mode::both;
    for (std::size_t k = m_plan.size(); k-- > 0;) {
      const step& o = m_plan[k];
      require(m_written[o.out] != 0, "unet_flow_model::backward", "plan", "a gradient for every output", o.out);
      const tensor& g = m_grads[o.out];
      const tensor& x = saved.values[o.in];
      if (o.in == 0) {  // the first convolution: no gradient for the input image
        std::get<conv2d<B>>(o.layer).backward(ctx, m_params, x, no_state{}, g, nullptr, m_ws, gradient_mode::parameters);
        continue;
      }
      tensor& grad_in = target(o.in, m_step_grads[k].first);
      std::visit(
          [&](const auto& layer) {
            using L = std::decay_t<decltype(layer)>;
            if constexpr (std::is_same_v<L, concat_channels<B>>) {
              tensor& grad_skip = target(o.skip, m_step_grads[k].second);
              layer.backward(ctx, g, grad_in, grad_skip);
              finish(ctx, o.skip, m_step_grads[k].second);
            } else if constexpr (std::is_same_v<L, residual_block<B>>) {
              layer.backward(ctx, m_params, x, saved.embedding, std::get<typename L::state>(saved.states[k]), g,
                             &grad_in, &m_grad_embedding, m_ws, both);
            } else {
              layer.backward(ctx, m_params, x, std::get<typename L::state>(saved.states[k]), g, &grad_in, m_ws, both);
            }
          },
          o.layer);
      finish(ctx, o.in, m_step_grads[k].first);
    }
    embedding_backward(ctx, saved);
  }

private:
  using layer_variant = std::variant<conv2d<B>, residual_block<B>, self_attention<B>, avg_pool<B>,
                                     upsample_nearest<B>, concat_channels<B>, group_norm_silu<B>>;
  /// One step of the network: images[out] = layer(images[in] [, images[skip]] [, embedding]).
  struct step {
    layer_variant layer;
    std::size_t in, skip, out;
  };

  static unet_config validated(const unet_config& c) {
    const char* where = "unet_config";
    require(c.height >= 1 && c.width >= 1, where, "height", "a non-empty image", ayf::detail::message(c.height, "x", c.width));
    require(c.channels >= 1, where, "channels", "at least 1", c.channels);
    require(c.base_channels >= 1, where, "base_channels", "at least 1", c.base_channels);
    require(!c.channel_multipliers.empty(), where, "channel_multipliers", "at least one level", 0);
    const std::size_t scale = std::size_t{1} << (c.channel_multipliers.size() - 1);
    require(c.height % scale == 0 && c.width % scale == 0, where, "channel_multipliers",
            ayf::detail::message("at most as many levels as halvings of ", c.height, "x", c.width),
            c.channel_multipliers.size());
    require(c.groups >= 1, where, "groups", "at least 1", c.groups);
    for (std::size_t m : c.channel_multipliers) {
      require(m >= 1, where, "channel_multipliers", "positive multipliers", m);
      require((c.base_channels * m) % c.groups == 0, where, "groups",
              ayf::detail::message("a divisor of every level's channel count (", c.base_channels * m, ")"), c.groups);
    }
    for (std::size_t l : c.attention_levels) {
      require(l < c.channel_multipliers.size(), where, "attention_levels",
              ayf::detail::message("levels below ", c.channel_multipliers.size()), l);
      require((c.base_channels * c.channel_multipliers[l]) % c.attention_heads == 0, where, "attention_heads",
              ayf::detail::message("a divisor of the channel count of level ", l, " (", c.base_channels * c.channel_multipliers[l], ")"),
              c.attention_heads);
    }
    require(c.attention_heads >= 1, where, "attention_heads", "at least 1", c.attention_heads);
    require(c.norm_eps > 0, where, "norm_eps", "a positive value", c.norm_eps);
    require(c.frequencies >= 1, where, "frequencies", "at least 1", c.frequencies);
    require(c.frequency_scale > 0, where, "frequency_scale", "a positive scale", c.frequency_scale);
    return c;
  }

  /// Builds the layers and the plan.
  parameter_layout build() {
    const unet_config& c = m_config;
    parameter_layout layout;
    const std::size_t e = c.embedding();
    m_conditioning = conditioning_embedding<B>(layout, "embed", conditioning_of(c, e));
    m_embed2 = linear<B>(layout, "embed2", e, e);
    m_embed_silu = activation<B>(e);

    m_images = {image_shape{c.height, c.width, c.channels}};
    std::size_t current = 0;
    auto add = [&](layer_variant layer, image_shape out, std::size_t skip = 0) {
      m_images.push_back(out);
      m_plan.push_back({std::move(layer), current, skip, m_images.size() - 1});
      current = m_images.size() - 1;
      return current;
    };
    auto attended = [&](std::size_t level) {
      for (std::size_t l : c.attention_levels)
        if (l == level) return true;
      return false;
    };
    const std::size_t levels = c.channel_multipliers.size();
    auto level_channels = [&](std::size_t l) { return c.base_channels * c.channel_multipliers[l]; };
    auto add_block = [&](const std::string& name, std::size_t out_channels, std::size_t level) {
      residual_block<B> block(layout, name, m_images[current], out_channels, e, c.groups, c.norm_eps);
      const image_shape out = block.output();
      add(std::move(block), out);
      if (attended(level)) add(self_attention<B>(layout, name + ".attention", out, c.attention_heads, c.groups, c.norm_eps), out);
      return current;
    };
    {
      conv2d<B> conv_in(layout, "conv_in", m_images[0], level_channels(0), 3);
      const image_shape out = conv_in.output();
      add(std::move(conv_in), out);
    }
    std::vector<std::size_t> skips{current};
    for (std::size_t l = 0; l < levels; ++l) {
      for (std::size_t b = 0; b < c.blocks_per_level; ++b) {
        skips.push_back(add_block("down" + std::to_string(l) + ".block" + std::to_string(b), level_channels(l), l));
      }
      if (l + 1 < levels) {
        avg_pool<B> pool(m_images[current]);
        const image_shape out = pool.output();
        skips.push_back(add(std::move(pool), out));
      }
    }
    add_block("mid", m_images[current].channels, levels - 1);
    for (std::size_t l = levels; l-- > 0;) {
      for (std::size_t b = 0; b <= c.blocks_per_level; ++b) {
        const std::size_t skip = skips.back();
        skips.pop_back();
        concat_channels<B> cat(m_images[current], m_images[skip]);
        const image_shape joined = cat.output();
        add(std::move(cat), joined, skip);
        add_block("up" + std::to_string(l) + ".block" + std::to_string(b), level_channels(l), l);
      }
      if (l > 0) {
        upsample_nearest<B> up(m_images[current]);
        const image_shape out = up.output();
        add(std::move(up), out);
      }
    }
    // Output head: GroupNorm -> SiLU (one layer) -> conv 3x3.
    const image_shape last = m_images[current];
    add(group_norm_silu<B>(layout, "out.norm", last, c.groups, c.norm_eps), last);
    {
      conv2d<B> conv_out(layout, "out.conv", last, c.channels, 3);
      const image_shape out = conv_out.output();
      add(std::move(conv_out), out);
    }
    return layout;
  }

  /// Weights N(0, 1 / fan_in), GroupNorm gamma = 1, biases and beta 0, the s and lambda weights 0
  /// (so a fresh student ignores s and lambda until trained), attention projections 0 (each
  /// attention layer starts as the identity).
  void initialise(context& model_ctx) {
    context ctx(m_config.seed);
    B::fill(model_ctx, m_params.values, scalar(0));
    m_conditioning.initialise(ctx, m_params);
    m_embed2.initialise(ctx, m_params);
    for (const step& o : m_plan) {
      std::visit(
          [&](const auto& layer) {
            using L = std::decay_t<decltype(layer)>;
            if constexpr (std::is_same_v<L, self_attention<B>>) {
              layer.initialise(ctx, m_params, 0.0);
            } else if constexpr (!std::is_same_v<L, concat_channels<B>>) {
              layer.initialise(ctx, m_params);
            }
          },
          o.layer);
    }
  }

  /// The embedding e = silu(linear(silu(z))) ([rows, E], tangent rows from dt and ds).
  void embedding_forward(context& ctx, const tensor& t, const tensor& s, const condition<B>& cond, const tensor* dt,
                         const tensor* ds, std::size_t n, activations& act) {
    no_state none;
    m_conditioning.forward(ctx, m_params, t, s, cond, dt, ds, act.z_embed, act.conditioning, m_ws);
    m_embed_silu.forward(ctx, m_params, act.z_embed, act.a_embed, none, m_ws, n);
    m_embed2.forward(ctx, m_params, act.a_embed, act.z_embed2, none, m_ws, n);
    m_embed_silu.forward(ctx, m_params, act.z_embed2, act.embedding, none, m_ws, n);
  }

  /// The embedding's parameter gradients from dL/de (m_grad_embedding, [n, E]).
  void embedding_backward(context& ctx, const activations& saved) {
    const no_state none;
    constexpr gradient_mode both = gradient_mode::both;
    m_embed_silu.backward(ctx, m_params, saved.z_embed2, none, m_grad_embedding, &m_grad_embedding, m_ws, both);
    m_embed2.backward(ctx, m_params, saved.a_embed, none, m_grad_embedding, &m_grad_a_embed, m_ws, both);
    m_embed_silu.backward(ctx, m_params, saved.z_embed, none, m_grad_a_embed, &m_grad_a_embed, m_ws, both);
    m_conditioning.backward(ctx, m_params, saved.conditioning, m_grad_a_embed, m_ws);
  }

  /// The shared pass. Without tangents: rows = B; with them: every activation is [2B, .].
  void run(context& ctx, const tensor& x, const tensor& t, const tensor& s, const condition<B>& cond,
           const tensor* dx, const tensor* dt, const tensor* ds, activations& act) {
    act.values.resize(m_images.size());
    act.states.resize(m_plan.size());
    this->stack_input(ctx, x, dx, m_config.dims(), act.values[0], act);
    const std::size_t n = act.batch;
    embedding_forward(ctx, t, s, cond, dt, ds, n, act);

    for (std::size_t k = 0; k < m_plan.size(); ++k) {
      const step& o = m_plan[k];
      const tensor& in = act.values[o.in];
      tensor& out = act.values[o.out];
      std::visit(
          [&](const auto& layer) {
            using L = std::decay_t<decltype(layer)>;
            if constexpr (std::is_same_v<L, concat_channels<B>>) {
              layer.forward(ctx, in, act.values[o.skip], out, m_ws);
            } else {
              using S = typename L::state;
              if (!std::holds_alternative<S>(act.states[k])) act.states[k].template emplace<S>();
              S& st = std::get<S>(act.states[k]);
              if constexpr (std::is_same_v<L, residual_block<B>>) {
                layer.forward(ctx, m_params, in, act.embedding, out, st, m_ws, n);
              } else {
                layer.forward(ctx, m_params, in, out, st, m_ws, n);
              }
            }
          },
          o.layer);
    }
  }

  /// Where a layer writes dL/d(image id): the gradient itself when it is the first contribution,
  /// else `scratch`, added by `finish` (skips receive two).
  tensor& target(std::size_t id, tensor& scratch) { return m_written[id] != 0 ? scratch : m_grads[id]; }
  void finish(context& ctx, std::size_t id, const tensor& scratch) {
    if (m_written[id] != 0) {
      if (&scratch != &m_grads[id]) B::scale_sum_rows(ctx, m_grads[id], 1.0, m_grads[id], 1.0, scratch);
    } else {
      m_written[id] = 1;
    }
  }

  friend base;
  static const tensor& output(const activations& act) { return act.values.back(); }

  using base::m_config;
  conditioning_embedding<B> m_conditioning{};
  linear<B> m_embed2{};
  activation<B> m_embed_silu{};
  std::vector<image_shape> m_images;
  std::vector<step> m_plan;
  parameter_set<B> m_params;

  workspace<B> m_ws{};
  std::vector<tensor> m_grads;
  std::vector<char> m_written;
  std::vector<std::pair<tensor, tensor>> m_step_grads;
  tensor m_grad_embedding{}, m_grad_a_embed{};
};

}  // namespace ayf::nn
