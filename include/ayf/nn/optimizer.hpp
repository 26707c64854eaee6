// ayf/nn/optimizer.hpp: Adam / AdamW (Kingma & Ba 2015; Loshchilov & Hutter 2019) with linear
// learning-rate warmup and global-norm gradient clipping, and an EMA of the weights, over the flat
// buffers of a parameter_set (design.md §4): a step is the gradient norm's pass and one fused pass
// (B::apply_adam) that updates the moments and the weights.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>

#include "ayf/core/error.hpp"
#include "ayf/core/functors.hpp"

#include "ayf/nn/parameters.hpp"

namespace ayf::nn {

struct adam_config {
  double learning_rate = 1e-3;
  double beta1 = 0.9;
  double beta2 = 0.999;
  double epsilon = 1e-8;
  double weight_decay = 0.0;       ///< decoupled (AdamW): theta -= lr * weight_decay * theta
  std::uint64_t warmup_steps = 0;  ///< lr ramps linearly from lr / warmup to lr over these steps
  double clip_norm = 0.0;          ///< rescale gradients to this global L2 norm when above it; 0 = off
};


/// Adam over a parameter_set's flat buffers. The moments and the step count are the whole state
/// (checkpointed with the parameters for a bit-exact resume).
template <backend B>
class adam {
public:
  adam(typename B::context& ctx, const parameter_set<B>& params, adam_config config = {})
      : m_config(checked(config)), m_first(B::make(ctx, B::shape_of(params.values))),
        m_second(B::make(ctx, B::shape_of(params.values))) {}

  /// The global L2 norm of the gradient.
  static double gradient_norm(typename B::context& ctx, const parameter_set<B>& params) {
    return std::sqrt(static_cast<double>(B::dot(ctx, params.gradients, params.gradients)));
  }

  /// The learning rate of step `step` (1-based) after warmup.
  [[nodiscard]] double learning_rate(std::uint64_t step) const {
    if (m_config.warmup_steps == 0) return m_config.learning_rate;
    return m_config.learning_rate * std::min(1.0, static_cast<double>(step) / static_cast<double>(m_config.warmup_steps));
  }

  /// One update from params.gradients; returns the gradient norm before clipping. Raises ayf::error
  /// ("adam::step: argument 'gradients' ...", nothing updated) when the gradient norm is not finite.
  double step(typename B::context& ctx, parameter_set<B>& params) {
    require_shape("adam::step", "params", B::shape_of(m_first), B::shape_of(params.values));
    const double norm = gradient_norm(ctx, params);
    if (!std::isfinite(norm)) {
      throw error(ayf::detail::concat("adam::step: argument 'gradients' expected finite values, received a global norm of ",
                                 norm, " (optimizer step ", m_steps + 1, ")"));
    }
    const double scale = (m_config.clip_norm > 0 && norm > m_config.clip_norm) ? m_config.clip_norm / norm : 1.0;
    ++m_steps;
    const double c1 = 1 - std::pow(m_config.beta1, static_cast<double>(m_steps));
    const double c2 = 1 - std::pow(m_config.beta2, static_cast<double>(m_steps));
    const fn::adam_update update{m_config.beta1, m_config.beta2, scale,
                                 learning_rate(m_steps), c1, c2, m_config.epsilon, m_config.weight_decay};
    B::apply_adam(ctx, update, params.values, m_first, m_second, params.gradients);
    return norm;
  }

  [[nodiscard]] const adam_config& config() const { return m_config; }
  [[nodiscard]] std::uint64_t steps() const { return m_steps; }
  typename B::tensor& first_moment() { return m_first; }
  typename B::tensor& second_moment() { return m_second; }
  /// Restores the step count from a checkpoint (the moments are restored through the accessors).
  void set_steps(std::uint64_t steps) { m_steps = steps; }

private:
  static adam_config checked(const adam_config& c) {
    using std::isfinite;
    require(isfinite(c.learning_rate) && c.learning_rate > 0, "adam_config", "learning_rate",
            "a positive finite rate", c.learning_rate);
    require(isfinite(c.beta1) && c.beta1 >= 0 && c.beta1 < 1, "adam_config", "beta1", "a value in [0, 1)", c.beta1);
    require(isfinite(c.beta2) && c.beta2 >= 0 && c.beta2 < 1, "adam_config", "beta2", "a value in [0, 1)", c.beta2);
    require(isfinite(c.epsilon) && c.epsilon > 0, "adam_config", "epsilon", "a positive finite value", c.epsilon);
    require(isfinite(c.weight_decay) && c.weight_decay >= 0, "adam_config", "weight_decay", "a finite value >= 0",
            c.weight_decay);
    require(isfinite(c.learning_rate * c.weight_decay), "adam_config", "weight_decay",
            "a finite learning_rate * weight_decay", c.weight_decay);
    require(isfinite(c.clip_norm) && c.clip_norm >= 0, "adam_config", "clip_norm", "a finite norm >= 0 (0 = off)",
            c.clip_norm);
    return c;
  }

  adam_config m_config;
  typename B::tensor m_first, m_second;
  std::uint64_t m_steps = 0;
};

/// Exponential moving average of the weights with bias correction: after n updates with iterates
/// theta_1..theta_n, average = sum_k (1 - decay) decay^(n - k) theta_k / (1 - decay^n), the normalised
/// weighted mean of the iterates (the initial weights get no weight; cf. Adam's moment correction).
/// Update n uses ema <- d_n ema + (1 - d_n) theta with d_n = decay (1 - decay^(n-1)) / (1 - decay^n).
/// Before any update the average is the initial weights.
template <backend B>
class exponential_moving_average {
public:
  exponential_moving_average(typename B::context& ctx, const parameter_set<B>& params, double decay)
      : m_decay(decay), m_average(B::make(ctx, B::shape_of(params.values))) {
    require(std::isfinite(decay) && decay >= 0 && decay < 1, "exponential_moving_average", "decay",
            "a finite value in [0, 1)", decay);
    B::copy(ctx, params.values, m_average);
  }
  void update(typename B::context& ctx, const parameter_set<B>& params) {
    ++m_updates;
    const double d = current_decay();
    B::scale_sum_rows(ctx, m_average, d, m_average, 1 - d, params.values);
  }
  typename B::tensor& average() { return m_average; }
  const typename B::tensor& average() const { return m_average; }
  [[nodiscard]] double decay() const { return m_decay; }
  /// Updates so far (checkpointed: resuming continues the same weighting).
  [[nodiscard]] std::uint64_t updates() const { return m_updates; }
  void set_updates(std::uint64_t n) { m_updates = n; }

private:
  /// d_n of the bias-corrected update n = m_updates (0 for the first update).
  [[nodiscard]] double current_decay() const {
    if (m_decay == 0 || m_updates <= 1) return 0.0;
    const double n = static_cast<double>(m_updates), log_decay = std::log(m_decay);
    return m_decay * std::expm1((n - 1) * log_decay) / std::expm1(n * log_decay);  // (1 - d^(n-1)) / (1 - d^n)
  }

  double m_decay;
  typename B::tensor m_average;
  std::uint64_t m_updates = 0;
};

}  // namespace ayf::nn
