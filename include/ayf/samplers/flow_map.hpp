// ayf/samplers/flow_map.hpp: flow-map samplers on a time grid: deterministic multistep
// x_{k+1} = f(x_k, t_k, t_{k+1}) (spec §9.1) and gamma-sampling (spec §9.2, boxed):
// x_{n+1} = (1 - t_{n+1}) / (1 - s') f(x_n, t_n, s') + gamma t_{n+1} z, sigma(s') = sqrt(1 - gamma^2) sigma(t_{n+1}).
#pragma once

#include <cmath>
#include <utility>

#include "ayf/samplers/common.hpp"

namespace ayf {

/// The intermediate time s' of gamma-sampling: sigma(s') = sqrt(1 - gamma^2) sigma(t_next), i.e.
/// s' = r t / (1 - t + r t) with r = sqrt(1 - gamma^2). gamma = 0 gives t_next, gamma = 1 gives 0.
inline double gamma_intermediate_time(double t_next, double gamma) {
  require(gamma >= 0 && gamma <= 1, "gamma_intermediate_time", "gamma", "a value in [0, 1]", gamma);
  require(t_next >= 0 && t_next <= 1, "gamma_intermediate_time", "t_next", "a time in [0, 1]", t_next);
  const double r = std::sqrt(1 - gamma * gamma);
  if (r == 0) return 0.0;
  return r * t_next / (1 - t_next + r * t_next);
}

/// Deterministic multistep flow-map sampling: x <- f(x, t_k, t_{k+1}) for every grid step.
/// x: [B, D], noise at grid.front() on entry, the sample at grid.back() on exit.
template <backend B, class FlowMap, class Observer = no_observer>
void flow_map_sample(typename B::context& ctx, FlowMap& flow, typename B::tensor& x,
                     const time_grid& grid, const condition<B>& cond = {}, Observer&& observer = {}) {
  static_assert(flow_map<FlowMap, B>, "flow_map_sample needs a flow map map(ctx, x, t, s, cond, out)");
  detail::require_sampler_inputs<B>("flow_map_sample", x, cond);
  detail::step_times<B> times(ctx, B::shape_of(x).rows);
  typename B::tensor next = B::make(ctx, B::shape_of(x));
  for (std::size_t k = 0; k < grid.steps(); ++k) {
    times.set(ctx, grid[k], grid[k + 1]);
    flow.map(ctx, x, times.from, times.to, cond, next);
    using std::swap;
    swap(x, next);
    observer(step_info{k, grid[k], grid[k + 1]}, x);
  }
}

/// Gamma-sampling (CTM, spec §9.2): jump to s', rescale to t_{n+1} and add fresh noise of std
/// gamma t_{n+1} (drawn from ctx.rng). Preserves the marginals of an exact flow map; gamma = 0 is
/// flow_map_sample, gamma = 1 is consistency multistep sampling, draw for draw.
template <backend B, class FlowMap, class Observer = no_observer>
void gamma_sample(typename B::context& ctx, FlowMap& flow, typename B::tensor& x, const time_grid& grid,
                  double gamma, const condition<B>& cond = {}, Observer&& observer = {}) {
  static_assert(flow_map<FlowMap, B>, "gamma_sample needs a flow map map(ctx, x, t, s, cond, out)");
  require(gamma >= 0 && gamma <= 1, "gamma_sample", "gamma", "a value in [0, 1]", gamma);
  detail::require_sampler_inputs<B>("gamma_sample", x, cond);
  detail::step_times<B> times(ctx, B::shape_of(x).rows);
  typename B::tensor jumped = B::make(ctx, B::shape_of(x));
  typename B::tensor noise = B::make(ctx, B::shape_of(x));
  for (std::size_t k = 0; k < grid.steps(); ++k) {
    const double t_next = grid[k + 1];
    const double s_prime = gamma_intermediate_time(t_next, gamma);
    times.set(ctx, grid[k], s_prime);
    flow.map(ctx, x, times.from, times.to, cond, jumped);
    const double rescale = (1 - t_next) / (1 - s_prime);
    const double noise_scale = gamma * t_next;
    if (noise_scale > 0) {
      B::randn(ctx, noise);
      B::scale_sum_rows(ctx, x, rescale, jumped, noise_scale, noise);
    } else {
      B::scale_sum_rows(ctx, x, rescale, jumped);
    }
    observer(step_info{k, grid[k], t_next}, x);
  }
}

}  // namespace ayf
