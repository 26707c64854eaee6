// ayf/objectives/flow_matching.hpp: flow matching (spec §1): L = mean |F(x_t, t, t) - (eps - x0)|^2
// with x_t = (1 - t) x0 + t eps, t ~ U[t_min, t_max]; trains a velocity model (teacher) from data.
#pragma once

#include "ayf/core/functors.hpp"
#include "ayf/objectives/objective.hpp"
#include "ayf/objectives/time_sampling.hpp"

namespace ayf {

struct flow_matching_config {
  double t_min = 0.0;
  double t_max = 1.0;
};

/// One flow-matching gradient: zeroes nothing, accumulates dL/dtheta into the model's gradients.
template <backend B, class Model>
class flow_matching {
  static_assert(trainable_flow_map_model<Model, B>, "flow_matching needs a trainable model (forward with saved, backward)");

public:
  explicit flow_matching(flow_matching_config config = {}) : m_config(config) {
    require(config.t_min >= 0 && config.t_min < config.t_max && config.t_max <= 1, "flow_matching_config", "t_max",
            "0 <= t_min < t_max <= 1", config.t_max);
  }

  /// x0: [B, D] data; labels: [B, 1] or null. Draws eps and t from ctx.rng.
  step_statistics step(typename B::context& ctx, Model& model, const typename B::tensor& x0,
                       const typename B::tensor* labels);

private:
  flow_matching_config m_config;
  typename B::tensor m_eps{}, m_t{}, m_x_t{}, m_scratch{}, m_target{}, m_out{}, m_residual{};
  typename Model::activations m_saved{};
};

// Out of the class, not inline: see ayf_emd.hpp.
template <backend B, class Model>
step_statistics flow_matching<B, Model>::step(typename B::context& ctx, Model& model, const typename B::tensor& x0,
                                              const typename B::tensor* labels) {
  const shape sh = B::shape_of(x0);
  B::resize(ctx, m_eps, sh);
  B::resize(ctx, m_t, shape::vector(sh.rows));
  B::randn(ctx, m_eps);
  B::rand_uniform(ctx, m_t);
  const double lo = m_config.t_min, span = m_config.t_max - m_config.t_min;
  B::transform(ctx, m_t, fn::affine{lo, span}, m_t);
  interpolate<B>(ctx, x0, m_eps, m_t, m_x_t, m_scratch);
  conditional_velocity<B>(ctx, x0, m_eps, m_target);
  model.forward(ctx, m_x_t, m_t, m_t, condition<B>{labels, nullptr}, m_out, m_saved);
  B::scale_sum_rows(ctx, m_residual, 1.0, m_out, -1.0, m_target);
  const step_statistics stats = detail::squared_error_gradient<B>(ctx, m_residual);
  model.backward(ctx, m_saved, m_residual);
  return stats;
}

}  // namespace ayf
