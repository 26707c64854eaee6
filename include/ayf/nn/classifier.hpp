// ayf/nn/classifier.hpp: a small convolutional image classifier composed of the shared layers, used as
// an independent feature extractor for sample metrics (Frechet distance, precision / recall, class
// accuracy). Trained with softmax cross-entropy (objectives/cross_entropy.hpp); its penultimate
// activations are the features.
#pragma once

#include <cstddef>
#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "ayf/core/error.hpp"
#include "ayf/nn/activation.hpp"
#include "ayf/nn/conv.hpp"
#include "ayf/nn/group_norm.hpp"
#include "ayf/nn/linear.hpp"
#include "ayf/nn/parameters.hpp"
#include "ayf/nn/resample.hpp"

namespace ayf::nn {

/// Architecture (channels-last images x: [B, H*W*C], H and W divisible by 4):
///   [conv3x3 -> GroupNorm -> SiLU] at C_0 = base, twice, then 2x2 average pool;
///   [conv3x3 -> GroupNorm -> SiLU] at 2 base, then 2x2 average pool;
///   features  phi = silu(flatten(h) W_1 + b_1)      ([B, features])
///   logits    z   = phi W_2 + b_2                   ([B, classes]).
struct classifier_config {
  std::size_t height = 28;
  std::size_t width = 28;
  std::size_t channels = 1;
  std::size_t base_channels = 16;
  std::size_t groups = 4;      ///< GroupNorm groups (divides base_channels)
  std::size_t features = 128;  ///< width of the penultimate layer
  std::size_t classes = 10;
  std::uint64_t seed = 0;      ///< Philox seed of the initialisation

  /// The config as text entries (stored beside a checkpoint and compared on resume).
  [[nodiscard]] std::map<std::string, std::string> entries() const {
    return {{"classifier.height", std::to_string(height)},     {"classifier.width", std::to_string(width)},
            {"classifier.channels", std::to_string(channels)}, {"classifier.base", std::to_string(base_channels)},
            {"classifier.groups", std::to_string(groups)},     {"classifier.features", std::to_string(features)},
            {"classifier.classes", std::to_string(classes)}};
  }
};

/// Activations of one forward pass: values[0] is the input, values[k] the output of step k.
template <backend B>
struct classifier_activations {
  std::size_t batch = 0;
  std::vector<typename B::tensor> values;
  std::vector<group_norm_state<B>> norms;
};

template <backend B>
class image_classifier {
public:
  using tensor = typename B::tensor;
  using context = typename B::context;
  using scalar = typename B::scalar;
  using activations = classifier_activations<B>;

  image_classifier(context& ctx, const classifier_config& config) : m_config(validated(config)), m_params(ctx, build()) {
    context init(m_config.seed);
    B::fill(ctx, m_params.values, scalar(0));
    for (const auto& c : m_convs) c.initialise(init, m_params);
    for (const auto& n : m_norms) n.initialise(init, m_params);
    m_fc1.initialise(init, m_params);
    m_fc2.initialise(init, m_params);
  }

  [[nodiscard]] const classifier_config& config() const { return m_config; }
  parameter_set<B>& parameters() { return m_params; }
  const parameter_set<B>& parameters() const { return m_params; }
  [[nodiscard]] std::size_t size() const { return m_params.size(); }

  /// logits: [B, classes] for x: [B, H*W*C]; `saved` keeps what backward needs.
  void forward(context& ctx, const tensor& x, tensor& logits, activations& saved) {
    const std::size_t n = B::shape_of(x).rows;
    require_shape("image_classifier::forward", "x", shape(n, input_size()), B::shape_of(x));
    saved.batch = n;
    saved.values.resize(value_count);
    saved.norms.resize(m_norms.size());
    auto& v = saved.values;
    B::resize(ctx, v[0], B::shape_of(x));
    B::copy(ctx, x, v[0]);
    std::size_t k = 0;
    for (std::size_t level = 0; level < 3; ++level) {  // conv -> GN -> SiLU (-> pool)
      m_convs[level].forward(ctx, m_params, v[k], v[k + 1], m_none, m_ws, n);
      m_norms[level].forward(ctx, m_params, v[k + 1], v[k + 2], saved.norms[level], m_ws, n);
      m_acts[level].forward(ctx, m_params, v[k + 2], v[k + 3], m_none, m_ws, n);
      k += 3;
      if (level >= 1) {
        m_pools[level - 1].forward(ctx, m_params, v[k], v[k + 1], m_none, m_ws, n);
        k += 1;
      }
    }
    B::resize(ctx, v[k + 1], shape(n, m_config.features));
    m_fc1.forward(ctx, m_params, v[k], v[k + 1], m_none, m_ws, n);
    m_act_fc.forward(ctx, m_params, v[k + 1], v[k + 2], m_none, m_ws, n);
    B::resize(ctx, v[k + 3], shape(n, m_config.classes));
    m_fc2.forward(ctx, m_params, v[k + 2], v[k + 3], m_none, m_ws, n);
    B::resize(ctx, logits, shape(n, m_config.classes));
    B::copy(ctx, v[k + 3], logits);
  }

  /// The penultimate features phi ([B, features]) of the pass that filled `saved`.
  [[nodiscard]] const tensor& features(const activations& saved) const { return saved.values[value_count - 2]; }

  /// Accumulates dL/dtheta into parameters().gradients given dL/dlogits ([B, classes]) at `saved`.
  void backward(context& ctx, const activations& saved, const tensor& grad_logits) {
    const std::size_t n = saved.batch;
    require_shape("image_classifier::backward", "grad_logits", shape(n, m_config.classes), B::shape_of(grad_logits));
    require(saved.values.size() == value_count, "image_classifier::backward", "saved",
            "the activations of a forward pass", saved.values.size());
    const auto& v = saved.values;
    constexpr gradient_mode both = gradient_mode::both;
    std::size_t k = value_count - 1;  // index of the logits
    tensor* g = &m_grad_a;
    tensor* h = &m_grad_b;
    B::resize(ctx, *h, shape(n, m_config.features));
    m_fc2.backward(ctx, m_params, v[k - 1], m_none, grad_logits, h, m_ws, both);
    std::swap(g, h);
    B::resize(ctx, *h, B::shape_of(v[k - 2]));
    m_act_fc.backward(ctx, m_params, v[k - 2], m_none, *g, h, m_ws, both);
    std::swap(g, h);
    B::resize(ctx, *h, B::shape_of(v[k - 3]));
    m_fc1.backward(ctx, m_params, v[k - 3], m_none, *g, h, m_ws, both);
    std::swap(g, h);
    k -= 3;  // v[k]: the last pooled image, *g its gradient
    for (std::size_t level = 3; level-- > 0;) {
      if (level >= 1) {
        B::resize(ctx, *h, B::shape_of(v[k - 1]));
        m_pools[level - 1].backward(ctx, m_params, v[k - 1], m_none, *g, h, m_ws, both);
        std::swap(g, h);
        k -= 1;
      }
      B::resize(ctx, *h, B::shape_of(v[k - 1]));
      m_acts[level].backward(ctx, m_params, v[k - 1], m_none, *g, h, m_ws, both);
      std::swap(g, h);
      B::resize(ctx, *h, B::shape_of(v[k - 2]));
      m_norms[level].backward(ctx, m_params, v[k - 2], saved.norms[level], *g, h, m_ws, both);
      std::swap(g, h);
      const gradient_mode mode = level == 0 ? gradient_mode::parameters : both;
      if (level > 0) B::resize(ctx, *h, B::shape_of(v[k - 3]));
      m_convs[level].backward(ctx, m_params, v[k - 3], m_none, *g, h, m_ws, mode);
      std::swap(g, h);
      k -= 3;
    }
  }

  [[nodiscard]] std::size_t input_size() const { return m_config.height * m_config.width * m_config.channels; }

private:
  // input, 3 x (conv, norm, act), 2 pools, fc1, act, fc2
  static constexpr std::size_t value_count = 1 + 9 + 2 + 3;

  static classifier_config validated(const classifier_config& c) {
    constexpr const char* where = "classifier_config";
    require(c.height >= 4 && c.height % 4 == 0, where, "height", "a multiple of 4", c.height);
    require(c.width >= 4 && c.width % 4 == 0, where, "width", "a multiple of 4", c.width);
    require(c.channels >= 1, where, "channels", "at least 1", c.channels);
    require(c.base_channels >= 1, where, "base_channels", "at least 1", c.base_channels);
    require(c.groups >= 1 && c.base_channels % c.groups == 0, where, "groups",
            ayf::detail::message("a divisor of base_channels = ", c.base_channels), c.groups);
    require(c.features >= 1, where, "features", "at least 1", c.features);
    require(c.classes >= 2, where, "classes", "at least 2", c.classes);
    return c;
  }

  parameter_layout build() {
    parameter_layout layout;
    const std::size_t c0 = m_config.base_channels, c1 = 2 * m_config.base_channels;
    image_shape img{m_config.height, m_config.width, m_config.channels};
    const std::size_t outs[3] = {c0, c0, c1};
    for (std::size_t level = 0; level < 3; ++level) {
      m_convs.emplace_back(layout, "conv" + std::to_string(level), img, outs[level], 3);
      img = m_convs.back().output();
      m_norms.emplace_back(layout, "norm" + std::to_string(level), img, m_config.groups);
      m_acts.emplace_back(img.size());
      if (level >= 1) {
        m_pools.emplace_back(img);
        img = m_pools.back().output();
      }
    }
    m_fc1 = linear<B>(layout, "fc1", img.size(), m_config.features);
    m_act_fc = activation<B>(m_config.features);
    m_fc2 = linear<B>(layout, "fc2", m_config.features, m_config.classes);
    return layout;
  }

  classifier_config m_config;
  std::vector<conv2d<B>> m_convs;
  std::vector<group_norm<B>> m_norms;
  std::vector<activation<B>> m_acts;
  std::vector<avg_pool<B>> m_pools;
  linear<B> m_fc1, m_fc2;
  activation<B> m_act_fc;
  parameter_set<B> m_params;
  workspace<B> m_ws;
  no_state m_none;
  tensor m_grad_a{}, m_grad_b{};
};

}  // namespace ayf::nn
