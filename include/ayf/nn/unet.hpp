// ayf/nn/unet.hpp: a small U-Net modelling a velocity field v(x, t, y) (teacher) or the average velocity
// F(x, t, s, lambda, y) of the Euler flow map f = x + (s - t) F (student, spec §2) on channels-last images,
// with forward, forward_jvp (primal and tangent stacked as [2B, .]) and backward, like mlp_flow_model.
#pragma once

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "ayf/core/model.hpp"
#include "ayf/nn/conv.hpp"
#include "ayf/nn/group_norm.hpp"
#include "ayf/nn/mlp.hpp"
#include "ayf/nn/parameters.hpp"
#include "ayf/nn/resample.hpp"

namespace ayf::nn {

/// Architecture (channels-last images x: [B, H*W*C]):
///   embedding  e = silu(silu(e(t) W_t [+ onehot(y) W_y] + b [+ e(s) W_s + e(lambda) W_lambda]) W_2 + b_2),
///              e(u) = [sin(omega_k u), cos(omega_k u)], omega_k = frequency_scale * pi * k (as mlp_config);
///   conv_in    3x3, C -> base * multipliers[0];
///   down       per level l: blocks_per_level residual blocks to base * multipliers[l], then a 2x2
///              average pool (not after the last level); every output is kept as a skip;
///   mid        one residual block;
///   up         per level, last to first: blocks_per_level + 1 times [concat a skip; residual block],
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
  std::uint64_t seed = 0;                            ///< Philox seed of the initialisation

  [[nodiscard]] std::size_t dims() const { return height * width * channels; }
  [[nodiscard]] std::size_t embedding() const { return embedding_channels > 0 ? embedding_channels : 4 * base_channels; }
};

namespace detail {

/// Per-(sample, channel) values [R, C] broadcast over the P pixels of a [R, P*C] image, over runs of
/// C channels: pixel block q of sample q / P reads block q / P.
struct sample_channel_map {
  fast_divisor by_p;
  explicit sample_channel_map(std::int64_t p) : by_p(p) {}
  AYF_HOST_DEVICE std::int64_t operator()(std::int64_t q) const { return by_p.div(q); }
};
/// Its adjoint: the sum over pixels, [n, C] from [n, P*C] with P taps, over runs of C channels.
struct pixel_sum_map {
  std::int64_t p;
  AYF_HOST_DEVICE std::int64_t operator()(std::int64_t b, std::int64_t r) const { return b * p + r; }
};

/// a = silu(z) on rows [0, n); da = silu'(z) dz on rows [n, 2n) when z is stacked [2n, .].
template <backend B>
void silu_stacked(typename B::context& ctx, const typename B::tensor& z, typename B::tensor& a, std::size_t n) {
  const shape sh = B::shape_of(z);
  const std::size_t d = sh.cols;
  B::resize(ctx, a, sh);
  const auto primal = B::slice(ctx, z, 0, shape(n, d));
  if (sh.rows == 2 * n) {
    B::transform(ctx, B::slice(ctx, a, n * d, shape(n, d)), silu_tangent{}, primal, B::slice(ctx, z, n * d, shape(n, d)));
  }
  B::transform(ctx, B::slice(ctx, a, 0, shape(n, d)), silu{}, primal);
}

/// Block `block` of `params` drawn from N(0, std^2) with ctx's stream.
template <backend B>
void normal_init(typename B::context& ctx, parameter_set<B>& params, std::size_t block, double std) {
  auto v = params.value(ctx, block);
  B::randn(ctx, v);
  B::scale_sum_rows(ctx, v, std, v);
}

}  // namespace detail

/// Forward activations of one residual block (stacked [2B, .] after a JVP pass).
template <backend B>
struct residual_block_state {
  group_norm_state<B> norm1, norm2;
  typename B::tensor y1{}, a1{}, z1{}, y2{}, a2{}, bias{};
};

/// Backward scratch of one residual block (primal rows only).
template <backend B>
struct residual_block_grads {
  typename B::tensor grad_a{}, grad_z{}, grad_in{}, grad_norm{}, grad_bias{};
};

/// out = skip(x) + conv2(silu(GN2(conv1(silu(GN1(x))) + e W_e))): e is the [R, E] embedding, its
/// projection added as a per-(sample, channel) bias.
template <backend B>
class residual_block {
public:
  using tensor = typename B::tensor;
  using context = typename B::context;
  using scalar = typename B::scalar;

  residual_block(parameter_layout& layout, const std::string& name, image_shape input, std::size_t out_channels,
                 std::size_t embedding, std::size_t groups, double eps)
      : m_in(input), m_out{input.height, input.width, out_channels}, m_embedding(embedding),
        m_norm1(layout, name + ".norm1", input, groups, eps), m_conv1(layout, name + ".conv1", input, out_channels, 3),
        m_embed(layout.add(name + ".embed.w", embedding, out_channels)),
        m_norm2(layout, name + ".norm2", m_out, groups, eps), m_conv2(layout, name + ".conv2", m_out, out_channels, 3),
        m_has_skip(input.channels != out_channels) {
    if (m_has_skip) m_skip = conv2d<B>(layout, name + ".skip", input, out_channels, 1);
  }

  [[nodiscard]] const image_shape& input() const { return m_in; }
  [[nodiscard]] const image_shape& output() const { return m_out; }

  /// Convolutions N(0, 1 / fan_in), the embedding projection N(0, 1 / E), norms gamma = 1, biases 0.
  void initialise(context& ctx, parameter_set<B>& params) const {
    m_norm1.initialise(ctx, params);
    m_norm2.initialise(ctx, params);
    auto conv = [&](const conv2d<B>& c) {
      detail::normal_init<B>(ctx, params, c.weight_block(), 1 / std::sqrt(static_cast<double>(c.fan_in())));
    };
    conv(m_conv1);
    conv(m_conv2);
    if (m_has_skip) conv(m_skip);
    detail::normal_init<B>(ctx, params, m_embed, 1 / std::sqrt(static_cast<double>(m_embedding)));
  }

  /// x: [R, P*C_in], embedding: [R, E], y: [R, P*C_out]; rows [0, n) primal, [n, R) tangents.
  void forward(context& ctx, parameter_set<B>& params, const tensor& x, const tensor& embedding, tensor& y,
               residual_block_state<B>& st, workspace<B>& ws, std::size_t n) const {
    const std::size_t rows = B::shape_of(x).rows, p = m_in.pixels(), c = m_out.channels;
    require_shape("residual_block::forward", "embedding", shape(rows, m_embedding), B::shape_of(embedding));
    m_norm1.forward(ctx, params, x, st.y1, st.norm1, ws, n);
    detail::silu_stacked<B>(ctx, st.y1, st.a1, n);
    m_conv1.forward(ctx, params, st.a1, st.z1, ws, n);
    // z1 += broadcast over pixels of e W_e (the tangent rows get de W_e).
    B::gemm(ctx, transpose::no, transpose::no, scalar(1), embedding, params.value(ctx, m_embed), scalar(0), st.bias);
    auto bias = detail::scratch<B>(ctx, ws.image_a, shape(rows, p * c));
    B::gather(ctx, bias, shape(rows, p * c), st.bias,
              detail::sample_channel_map(static_cast<std::int64_t>(p)), static_cast<std::int64_t>(c));
    B::scale_sum_rows(ctx, st.z1, 1.0, st.z1, 1.0, bias);
    m_norm2.forward(ctx, params, st.z1, st.y2, st.norm2, ws, n);
    detail::silu_stacked<B>(ctx, st.y2, st.a2, n);
    m_conv2.forward(ctx, params, st.a2, y, ws, n);
    if (m_has_skip) {
      m_skip.forward(ctx, params, x, y, ws, n, true);
    } else {
      B::scale_sum_rows(ctx, y, 1.0, y, 1.0, x);
    }
  }

  /// Given dL/dy ([n, P*C_out]) at the pass that filled `st`: accumulates the parameter gradients and
  /// dL/de into grad_embedding ([n, E]); writes dL/dx into grad_x ([n, P*C_in]).
  void backward(context& ctx, parameter_set<B>& params, const tensor& x, const tensor& embedding,
                const residual_block_state<B>& st, residual_block_grads<B>& g, const tensor& grad_y, tensor& grad_x,
                tensor& grad_embedding, workspace<B>& ws) const {
    const std::size_t n = st.norm1.batch, p = m_in.pixels(), c = m_out.channels;
    if (m_has_skip) {
      m_skip.backward(ctx, params, x, grad_y, &grad_x, ws);
    } else {
      B::copy(ctx, grad_y, grad_x);
    }
    m_conv2.backward(ctx, params, st.a2, grad_y, &g.grad_a, ws);
    B::transform(ctx, g.grad_a, detail::silu_tangent{}, B::slice(ctx, st.y2, 0, shape(n, m_out.size())), g.grad_a);
    m_norm2.backward(ctx, params, st.norm2, g.grad_a, g.grad_z, ws);
    // The embedding bias: dL/d(e W_e) sums dL/dz1 over pixels.
    B::gather_sum(ctx, g.grad_bias, shape(n, c), g.grad_z,
                  detail::pixel_sum_map{static_cast<std::int64_t>(p)}, static_cast<std::int64_t>(p),
                  static_cast<std::int64_t>(c));
    B::gemm(ctx, transpose::yes, transpose::no, scalar(1), B::slice(ctx, embedding, 0, shape(n, m_embedding)),
            g.grad_bias, scalar(1), params.gradient(ctx, m_embed));
    B::gemm(ctx, transpose::no, transpose::yes, scalar(1), g.grad_bias, params.value(ctx, m_embed), scalar(1),
            grad_embedding);
    m_conv1.backward(ctx, params, st.a1, g.grad_z, &g.grad_in, ws);
    B::transform(ctx, g.grad_in, detail::silu_tangent{}, B::slice(ctx, st.y1, 0, shape(n, m_in.size())), g.grad_in);
    m_norm1.backward(ctx, params, st.norm1, g.grad_in, g.grad_norm, ws);
    B::scale_sum_rows(ctx, grad_x, 1.0, grad_x, 1.0, g.grad_norm);
  }

private:
  image_shape m_in{}, m_out{};
  std::size_t m_embedding = 0;
  group_norm<B> m_norm1;
  conv2d<B> m_conv1;
  std::size_t m_embed = 0;
  group_norm<B> m_norm2;
  conv2d<B> m_conv2;
  bool m_has_skip = false;
  conv2d<B> m_skip{};
};

/// Activations of one pass, owned by the caller and reused across steps (no allocation once warm).
/// After forward_jvp the tensors are stacked [2B, .]: rows [0, B) primal, rows [B, 2B) tangent.
template <backend B>
struct unet_activations {
  std::size_t batch = 0;
  bool stacked = false;
  typename B::tensor embed_t{}, embed_s{}, embed_lambda{}, onehot{}, z_embed{}, a_embed{}, z_embed2{}, embedding{};
  std::vector<typename B::tensor> values;  // the network's images in order; [0] the input
  std::vector<residual_block_state<B>> blocks;
  group_norm_state<B> out_norm;
  typename B::tensor y_out{}, a_out{}, output{};
};

template <backend B>
class unet_flow_model {
public:
  using tensor = typename B::tensor;
  using context = typename B::context;
  using scalar = typename B::scalar;
  using activations = unet_activations<B>;

  unet_flow_model(context& ctx, const unet_config& config) : m_config(validated(config)), m_params(ctx, build()) {
    initialise(ctx);
    make_constants(ctx);
  }

  /// A student that starts as exactly its teacher's Euler step: the teacher's weights fill the
  /// common prefix of the flat buffer, the s and lambda weights start at zero (spec §2).
  static unet_flow_model from_teacher(context& ctx, const unet_flow_model& teacher, unet_config student) {
    const unet_config& t = teacher.config();
    require(student.height == t.height && student.width == t.width && student.channels == t.channels &&
                student.base_channels == t.base_channels && student.channel_multipliers == t.channel_multipliers &&
                student.blocks_per_level == t.blocks_per_level && student.groups == t.groups &&
                student.norm_eps == t.norm_eps && student.embedding() == t.embedding() &&
                student.frequencies == t.frequencies && student.frequency_scale == t.frequency_scale &&
                student.classes == t.classes,
            "unet_flow_model::from_teacher", "student", "the teacher's architecture (all but embed_s, embed_lambda)",
            "a different architecture");
    require(!t.embed_s && !t.embed_lambda, "unet_flow_model::from_teacher", "teacher",
            "a velocity model (no s or lambda inputs)", "a model with s or lambda inputs");
    unet_flow_model out(ctx, student);
    B::fill(ctx, out.m_params.values, scalar(0));
    const std::size_t n = teacher.m_params.size();
    B::copy(ctx, B::slice(ctx, teacher.m_params.values, 0, shape(1, n)), B::slice(ctx, out.m_params.values, 0, shape(1, n)));
    return out;
  }

  [[nodiscard]] const unet_config& config() const { return m_config; }
  parameter_set<B>& parameters() { return m_params; }
  const parameter_set<B>& parameters() const { return m_params; }

  /// out = F(x, t, s). x, out: [B, H*W*C]; t, s: [B, 1]; cond.labels / cond.guidance: [B, 1] or null.
  void forward(context& ctx, const tensor& x, const tensor& t, const tensor& s, const condition<B>& cond,
               tensor& out) {
    forward(ctx, x, t, s, cond, out, m_scratch);
  }

  /// forward, keeping the activations in `saved` for backward.
  void forward(context& ctx, const tensor& x, const tensor& t, const tensor& s, const condition<B>& cond,
               tensor& out, activations& saved) {
    run(ctx, x, t, s, cond, nullptr, nullptr, nullptr, saved);
    B::copy(ctx, saved.output, out);
  }

  /// Velocity-field call (teachers): out = F(x, t, t).
  void operator()(context& ctx, const tensor& x, const tensor& t, const condition<B>& cond, tensor& out) {
    forward(ctx, x, t, t, cond, out, m_scratch);
  }

  /// Primal and tangent in one pass: out = F(x, t, s), dout = dF[dx, dt, ds] (lambda and labels
  /// held fixed). dx: [B, H*W*C]; dt, ds: [B, 1]. Saves the primal activations for backward.
  void forward_jvp(context& ctx, const tensor& x, const tensor& t, const tensor& s, const condition<B>& cond,
                   const tensor& dx, const tensor& dt, const tensor& ds, tensor& out, tensor& dout,
                   activations& saved) {
    run(ctx, x, t, s, cond, &dx, &dt, &ds, saved);
    const std::size_t n = saved.batch, d = m_config.dims();
    B::copy(ctx, B::slice(ctx, std::as_const(saved.output), 0, shape(n, d)), out);
    B::copy(ctx, B::slice(ctx, std::as_const(saved.output), n * d, shape(n, d)), dout);
  }

  /// Accumulates dL/dtheta into parameters().gradients, given dL/dF ([B, H*W*C]) at the pass that
  /// filled `saved` (forward or the primal of forward_jvp; no second forward).
  void backward(context& ctx, const activations& saved, const tensor& grad_output) {
    const std::size_t n = saved.batch, e = m_config.embedding();
    require_shape("unet_flow_model::backward", "grad_output", shape(n, m_config.dims()), B::shape_of(grad_output));
    require(saved.values.size() == m_images.size(), "unet_flow_model::backward", "saved",
            "the activations of a forward pass of this model", saved.values.size());
    const std::size_t count = m_images.size();
    m_grads.resize(count);
    m_written.assign(count, 0);
    m_op_grads.resize(m_ops.size());
    m_block_grads.resize(m_blocks.size());
    B::resize(ctx, m_grad_embedding, shape(n, e));
    B::fill(ctx, m_grad_embedding, scalar(0));

    // Output head: F = conv(silu(GN(h))).
    m_conv_out.backward(ctx, m_params, saved.a_out, grad_output, &m_grad_head, m_ws);
    B::transform(ctx, m_grad_head, detail::silu_tangent{},
                 B::slice(ctx, saved.y_out, 0, shape(n, m_norm_out.image().size())), m_grad_head);
    m_norm_out.backward(ctx, m_params, saved.out_norm, m_grad_head, target(count - 1, m_grad_head_x), m_ws);
    finish(ctx, count - 1, m_grad_head_x);

    for (std::size_t k = m_ops.size(); k-- > 0;) {
      const op& o = m_ops[k];
      require(m_written[o.out] != 0, "unet_flow_model::backward", "plan", "a gradient for every output", o.out);
      const tensor& g = m_grads[o.out];
      tensor& grad_in = target(o.in, m_op_grads[k].first);
      switch (o.kind) {
        case op_kind::conv_in:
          m_conv_in.backward(ctx, m_params, saved.values[o.in], g, nullptr, m_ws);
          continue;  // no gradient for the input image
        case op_kind::block:
          m_blocks[o.layer].backward(ctx, m_params, saved.values[o.in], saved.embedding, saved.blocks[o.layer],
                                     m_block_grads[o.layer], g, grad_in, m_grad_embedding, m_ws);
          break;
        case op_kind::pool:
          m_pools[o.layer].backward(ctx, g, grad_in);
          break;
        case op_kind::upsample:
          m_ups[o.layer].backward(ctx, g, grad_in);
          break;
        case op_kind::concat: {
          tensor& grad_skip = target(o.skip, m_op_grads[k].second);
          m_concats[o.layer].backward(ctx, g, grad_in, grad_skip);
          finish(ctx, o.skip, m_op_grads[k].second);
          break;
        }
      }
      finish(ctx, o.in, m_op_grads[k].first);
    }
    embedding_backward(ctx, saved);
  }

  /// The number of parameters.
  [[nodiscard]] std::size_t size() const { return m_params.size(); }

private:
  enum class op_kind { conv_in, block, pool, upsample, concat };
  /// One step of the network: images[out] = layer(images[in] [, images[skip]]).
  struct op {
    op_kind kind;
    std::size_t layer, in, skip, out;
  };
  struct embedding_indices {
    std::size_t w_t = 0, w_y = 0, b = 0, w_2 = 0, b_2 = 0, w_s = 0, w_lambda = 0;
  };

  static unet_config validated(const unet_config& c) {
    const char* where = "unet_config";
    require(c.height >= 1 && c.width >= 1, where, "height", "a non-empty image", ayf::detail::concat(c.height, "x", c.width));
    require(c.channels >= 1, where, "channels", "at least 1", c.channels);
    require(c.base_channels >= 1, where, "base_channels", "at least 1", c.base_channels);
    require(!c.channel_multipliers.empty(), where, "channel_multipliers", "at least one level", 0);
    const std::size_t scale = std::size_t{1} << (c.channel_multipliers.size() - 1);
    require(c.height % scale == 0 && c.width % scale == 0, where, "channel_multipliers",
            ayf::detail::concat("at most as many levels as halvings of ", c.height, "x", c.width),
            c.channel_multipliers.size());
    require(c.groups >= 1, where, "groups", "at least 1", c.groups);
    for (std::size_t m : c.channel_multipliers) {
      require(m >= 1, where, "channel_multipliers", "positive multipliers", m);
      require((c.base_channels * m) % c.groups == 0, where, "groups",
              ayf::detail::concat("a divisor of every level's channel count (", c.base_channels * m, ")"), c.groups);
    }
    require(c.norm_eps > 0, where, "norm_eps", "a positive value", c.norm_eps);
    require(c.frequencies >= 1, where, "frequencies", "at least 1", c.frequencies);
    require(c.frequency_scale > 0, where, "frequency_scale", "a positive scale", c.frequency_scale);
    return c;
  }

  /// Builds the layers and the plan; the teacher's blocks come first, so a student's buffer starts
  /// with its teacher's (the s and lambda weights are appended last).
  parameter_layout build() {
    const unet_config& c = m_config;
    parameter_layout layout;
    const std::size_t f = 2 * c.frequencies, e = c.embedding();
    m_embed.w_t = layout.add("embed.w_t", f, e);
    if (c.classes > 0) m_embed.w_y = layout.add("embed.w_y", c.classes, e);
    m_embed.b = layout.add("embed.b", 1, e);
    m_embed.w_2 = layout.add("embed2.w", e, e);
    m_embed.b_2 = layout.add("embed2.b", 1, e);

    m_images = {image_shape{c.height, c.width, c.channels}};
    auto add_image = [&](image_shape s) {
      m_images.push_back(s);
      return m_images.size() - 1;
    };
    const std::size_t levels = c.channel_multipliers.size();
    auto level_channels = [&](std::size_t l) { return c.base_channels * c.channel_multipliers[l]; };
    m_conv_in = conv2d<B>(layout, "conv_in", m_images[0], level_channels(0), 3);
    std::size_t current = add_image(m_conv_in.output());
    m_ops.push_back({op_kind::conv_in, 0, 0, 0, current});
    std::vector<std::size_t> skips{current};
    auto add_block = [&](const std::string& name, std::size_t in, std::size_t out_channels) {
      m_blocks.emplace_back(layout, name, m_images[in], out_channels, e, c.groups, c.norm_eps);
      const std::size_t out = add_image(m_blocks.back().output());
      m_ops.push_back({op_kind::block, m_blocks.size() - 1, in, 0, out});
      return out;
    };
    for (std::size_t l = 0; l < levels; ++l) {
      for (std::size_t b = 0; b < c.blocks_per_level; ++b) {
        current = add_block("down" + std::to_string(l) + ".block" + std::to_string(b), current, level_channels(l));
        skips.push_back(current);
      }
      if (l + 1 < levels) {
        m_pools.emplace_back(m_images[current]);
        const std::size_t out = add_image(m_pools.back().output());
        m_ops.push_back({op_kind::pool, m_pools.size() - 1, current, 0, out});
        current = out;
        skips.push_back(current);
      }
    }
    current = add_block("mid", current, m_images[current].channels);
    for (std::size_t l = levels; l-- > 0;) {
      for (std::size_t b = 0; b <= c.blocks_per_level; ++b) {
        const std::size_t skip = skips.back();
        skips.pop_back();
        m_concats.emplace_back(m_images[current], m_images[skip]);
        const std::size_t joined = add_image(m_concats.back().output());
        m_ops.push_back({op_kind::concat, m_concats.size() - 1, current, skip, joined});
        current = add_block("up" + std::to_string(l) + ".block" + std::to_string(b), joined, level_channels(l));
      }
      if (l > 0) {
        m_ups.emplace_back(m_images[current]);
        const std::size_t out = add_image(m_ups.back().output());
        m_ops.push_back({op_kind::upsample, m_ups.size() - 1, current, 0, out});
        current = out;
      }
    }
    m_norm_out = group_norm<B>(layout, "out.norm", m_images[current], c.groups, c.norm_eps);
    m_conv_out = conv2d<B>(layout, "out.conv", m_images[current], c.channels, 3);
    if (c.embed_s) m_embed.w_s = layout.add("embed.w_s", f, e);
    if (c.embed_lambda) m_embed.w_lambda = layout.add("embed.w_lambda", f, e);
    return layout;
  }

  /// Weights N(0, 1 / fan_in), GroupNorm gamma = 1, biases and beta 0, the s and lambda weights 0
  /// (so a fresh student ignores s and lambda until trained).
  void initialise(context& model_ctx) {
    context ctx(m_config.seed);
    B::fill(model_ctx, m_params.values, scalar(0));
    const double f = static_cast<double>(2 * m_config.frequencies + m_config.classes);
    const double e = static_cast<double>(m_config.embedding());
    detail::normal_init<B>(ctx, m_params, m_embed.w_t, 1 / std::sqrt(f));
    if (m_config.classes > 0) detail::normal_init<B>(ctx, m_params, m_embed.w_y, 1 / std::sqrt(f));
    detail::normal_init<B>(ctx, m_params, m_embed.w_2, 1 / std::sqrt(e));
    auto conv = [&](const conv2d<B>& c) {
      detail::normal_init<B>(ctx, m_params, c.weight_block(), 1 / std::sqrt(static_cast<double>(c.fan_in())));
    };
    conv(m_conv_in);
    for (const auto& b : m_blocks) b.initialise(ctx, m_params);
    m_norm_out.initialise(ctx, m_params);
    conv(m_conv_out);
  }

  /// omega = [omega_1..omega_K, omega_1..omega_K], phase = [0..0, pi/2..pi/2]: e(u) = sin(u omega + phase).
  void make_constants(context& ctx) {
    const std::size_t k = m_config.frequencies;
    std::vector<scalar> omega(2 * k), phase(2 * k), columns(m_config.classes);
    constexpr double pi = 3.141592653589793238462643383279;
    for (std::size_t i = 0; i < k; ++i) {
      omega[i] = omega[i + k] = static_cast<scalar>(m_config.frequency_scale * pi * static_cast<double>(i + 1));
      phase[i] = scalar(0);
      phase[i + k] = static_cast<scalar>(pi / 2);
    }
    for (std::size_t c = 0; c < m_config.classes; ++c) columns[c] = static_cast<scalar>(c);
    m_omega = B::from_host(ctx, omega, shape(1, 2 * k));
    m_phase = B::from_host(ctx, phase, shape(1, 2 * k));
    m_class_columns = B::from_host(ctx, columns, shape(1, m_config.classes));
    m_class_ones = B::from_host(ctx, std::vector<scalar>(m_config.classes, scalar(1)), shape(1, m_config.classes));
  }

  /// e(u * scale) into the primal rows of `features` and, with a tangent, e'(.) du into the rest.
  void embed(context& ctx, const tensor& u, const tensor* du, double scale, std::size_t n, tensor& features) {
    const std::size_t f = 2 * m_config.frequencies;
    auto phase = B::slice(ctx, features, 0, shape(n, f));
    B::gemm(ctx, transpose::no, transpose::no, static_cast<scalar>(scale), u, m_omega, scalar(0), phase);
    B::gemm(ctx, transpose::no, transpose::no, scalar(1), detail::ones<B>(ctx, m_ws, shape(n, 1)), m_phase, scalar(1),
            phase);
    if (du != nullptr) {
      auto tangent = B::slice(ctx, features, n * f, shape(n, f));
      B::gemm(ctx, transpose::no, transpose::no, static_cast<scalar>(scale), *du, m_omega, scalar(0), tangent);
      B::transform(ctx, tangent, detail::cos_times{}, phase, tangent);
    }
    B::transform(ctx, phase, detail::sine{}, phase);
  }

  /// The conditioning embedding e ([rows, E], tangent rows from dt and ds).
  void embedding_forward(context& ctx, const tensor& t, const tensor& s, const condition<B>& cond, const tensor* dt,
                         const tensor* ds, std::size_t n, std::size_t rows, activations& act) {
    const std::size_t f = 2 * m_config.frequencies, e = m_config.embedding();
    B::resize(ctx, act.embed_t, shape(rows, f));
    embed(ctx, t, dt, 1.0, n, act.embed_t);
    B::gemm(ctx, transpose::no, transpose::no, scalar(1), act.embed_t, m_params.value(ctx, m_embed.w_t), scalar(0),
            act.z_embed);
    auto primal = B::slice(ctx, act.z_embed, 0, shape(n, e));
    if (m_config.classes > 0) {
      B::resize(ctx, act.onehot, shape(n, m_config.classes));
      if (cond.labels != nullptr) {
        require_vector("unet_flow_model", "cond.labels", n, B::shape_of(*cond.labels));
        // onehot[i, c] = (label_i == c); the null class -1 gives a zero row.
        B::gemm(ctx, transpose::no, transpose::no, scalar(1), *cond.labels, m_class_ones, scalar(0), act.onehot);
        B::gemm(ctx, transpose::no, transpose::no, scalar(1), detail::ones<B>(ctx, m_ws, shape(n, 1)), m_class_columns,
                scalar(0), m_class_grid);
        B::transform(ctx, act.onehot, detail::onehot_equal{}, act.onehot, m_class_grid);
      } else {
        B::fill(ctx, act.onehot, scalar(0));
      }
      B::gemm(ctx, transpose::no, transpose::no, scalar(1), act.onehot, m_params.value(ctx, m_embed.w_y), scalar(1),
              primal);
    }
    B::gemm(ctx, transpose::no, transpose::no, scalar(1), detail::ones<B>(ctx, m_ws, shape(n, 1)),
            m_params.value(ctx, m_embed.b), scalar(1), primal);
    if (m_config.embed_s) {
      B::resize(ctx, act.embed_s, shape(rows, f));
      embed(ctx, s, ds, 1.0, n, act.embed_s);
      B::gemm(ctx, transpose::no, transpose::no, scalar(1), act.embed_s, m_params.value(ctx, m_embed.w_s), scalar(1),
              act.z_embed);
    }
    if (m_config.embed_lambda) {
      B::resize(ctx, act.embed_lambda, shape(n, f));
      if (cond.guidance != nullptr) {
        require_vector("unet_flow_model", "cond.guidance", n, B::shape_of(*cond.guidance));
        embed(ctx, *cond.guidance, nullptr, m_config.lambda_scale, n, act.embed_lambda);
      } else {
        B::resize(ctx, m_default_lambda, shape(n, 1));
        B::fill(ctx, m_default_lambda, static_cast<scalar>(m_config.default_lambda));
        embed(ctx, m_default_lambda, nullptr, m_config.lambda_scale, n, act.embed_lambda);
      }
      B::gemm(ctx, transpose::no, transpose::no, scalar(1), act.embed_lambda, m_params.value(ctx, m_embed.w_lambda),
              scalar(1), primal);
    }
    detail::silu_stacked<B>(ctx, act.z_embed, act.a_embed, n);
    B::gemm(ctx, transpose::no, transpose::no, scalar(1), act.a_embed, m_params.value(ctx, m_embed.w_2), scalar(0),
            act.z_embed2);
    B::gemm(ctx, transpose::no, transpose::no, scalar(1), detail::ones<B>(ctx, m_ws, shape(n, 1)),
            m_params.value(ctx, m_embed.b_2), scalar(1), B::slice(ctx, act.z_embed2, 0, shape(n, e)));
    detail::silu_stacked<B>(ctx, act.z_embed2, act.embedding, n);
  }

  /// The embedding's parameter gradients from dL/de (m_grad_embedding, [n, E]).
  void embedding_backward(context& ctx, const activations& saved) {
    const std::size_t n = saved.batch, f = 2 * m_config.frequencies, e = m_config.embedding();
    auto primal = [&](const tensor& stackable, std::size_t cols) { return B::slice(ctx, stackable, 0, shape(n, cols)); };
    B::transform(ctx, m_grad_embedding, detail::silu_tangent{}, primal(saved.z_embed2, e), m_grad_embedding);
    B::gemm(ctx, transpose::yes, transpose::no, scalar(1), primal(saved.a_embed, e), m_grad_embedding, scalar(1),
            m_params.gradient(ctx, m_embed.w_2));
    B::gemm(ctx, transpose::yes, transpose::no, scalar(1), detail::ones<B>(ctx, m_ws, shape(n, 1)), m_grad_embedding,
            scalar(1), m_params.gradient(ctx, m_embed.b_2));
    B::gemm(ctx, transpose::no, transpose::yes, scalar(1), m_grad_embedding, m_params.value(ctx, m_embed.w_2),
            scalar(0), m_grad_a_embed);
    B::transform(ctx, m_grad_a_embed, detail::silu_tangent{}, primal(saved.z_embed, e), m_grad_a_embed);
    auto accumulate = [&](const auto& input, std::size_t block) {
      B::gemm(ctx, transpose::yes, transpose::no, scalar(1), input, m_grad_a_embed, scalar(1),
              m_params.gradient(ctx, block));
    };
    accumulate(primal(saved.embed_t, f), m_embed.w_t);
    if (m_config.classes > 0) accumulate(saved.onehot, m_embed.w_y);
    accumulate(detail::ones<B>(ctx, m_ws, shape(n, 1)), m_embed.b);
    if (m_config.embed_s) accumulate(primal(saved.embed_s, f), m_embed.w_s);
    if (m_config.embed_lambda) accumulate(saved.embed_lambda, m_embed.w_lambda);
  }

  /// The shared pass. Without tangents: rows = B; with them: every activation is [2B, .].
  void run(context& ctx, const tensor& x, const tensor& t, const tensor& s, const condition<B>& cond,
           const tensor* dx, const tensor* dt, const tensor* ds, activations& act) {
    const shape sx = B::shape_of(x);
    const std::size_t n = sx.rows, d = m_config.dims();
    const bool jvp = dx != nullptr;
    require_shape("unet_flow_model", "x", shape(n, d), sx);
    require_vector("unet_flow_model", "t", n, B::shape_of(t));
    require_vector("unet_flow_model", "s", n, B::shape_of(s));
    if (jvp) {
      require_shape("unet_flow_model::forward_jvp", "dx", sx, B::shape_of(*dx));
      require_vector("unet_flow_model::forward_jvp", "dt", n, B::shape_of(*dt));
      require_vector("unet_flow_model::forward_jvp", "ds", n, B::shape_of(*ds));
    }
    const std::size_t rows = jvp ? 2 * n : n;
    act.batch = n;
    act.stacked = jvp;
    act.values.resize(m_images.size());
    act.blocks.resize(m_blocks.size());

    // Inputs, stacked [x; dx].
    tensor& input = act.values[0];
    B::resize(ctx, input, shape(rows, d));
    B::copy(ctx, x, B::slice(ctx, input, 0, shape(n, d)));
    if (jvp) B::copy(ctx, *dx, B::slice(ctx, input, n * d, shape(n, d)));
    embedding_forward(ctx, t, s, cond, dt, ds, n, rows, act);

    for (const op& o : m_ops) {
      const tensor& in = act.values[o.in];
      tensor& out = act.values[o.out];
      switch (o.kind) {
        case op_kind::conv_in:
          m_conv_in.forward(ctx, m_params, in, out, m_ws, n);
          break;
        case op_kind::block:
          m_blocks[o.layer].forward(ctx, m_params, in, act.embedding, out, act.blocks[o.layer], m_ws, n);
          break;
        case op_kind::pool:
          m_pools[o.layer].forward(ctx, in, out);
          break;
        case op_kind::upsample:
          m_ups[o.layer].forward(ctx, in, out);
          break;
        case op_kind::concat:
          m_concats[o.layer].forward(ctx, in, act.values[o.skip], out, m_ws);
          break;
      }
    }
    m_norm_out.forward(ctx, m_params, act.values.back(), act.y_out, act.out_norm, m_ws, n);
    detail::silu_stacked<B>(ctx, act.y_out, act.a_out, n);
    m_conv_out.forward(ctx, m_params, act.a_out, act.output, m_ws, n);
  }

  /// Where a layer writes dL/d(image id): the gradient itself when it is the first contribution,
  /// else `scratch`, added by `finish` (skips receive two).
  tensor& target(std::size_t id, tensor& scratch) { return m_written[id] != 0 ? scratch : m_grads[id]; }
  void finish(context& ctx, std::size_t id, const tensor& scratch) {
    if (m_written[id] != 0) {
      B::scale_sum_rows(ctx, m_grads[id], 1.0, m_grads[id], 1.0, scratch);
    } else {
      m_written[id] = 1;
    }
  }

  unet_config m_config;
  embedding_indices m_embed{};
  std::vector<image_shape> m_images;
  std::vector<op> m_ops;
  conv2d<B> m_conv_in{};
  std::vector<residual_block<B>> m_blocks;
  std::vector<avg_pool<B>> m_pools;
  std::vector<upsample_nearest<B>> m_ups;
  std::vector<concat_channels<B>> m_concats;
  group_norm<B> m_norm_out{};
  conv2d<B> m_conv_out{};
  parameter_set<B> m_params;

  workspace<B> m_ws{};
  activations m_scratch{};
  tensor m_omega{}, m_phase{}, m_class_columns{}, m_class_ones{}, m_class_grid{}, m_default_lambda{};
  std::vector<tensor> m_grads;
  std::vector<char> m_written;
  std::vector<std::pair<tensor, tensor>> m_op_grads;
  std::vector<residual_block_grads<B>> m_block_grads;
  tensor m_grad_embedding{}, m_grad_a_embed{}, m_grad_head{}, m_grad_head_x{};
};

}  // namespace ayf::nn
