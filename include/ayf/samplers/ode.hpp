// ayf/samplers/ode.hpp: teacher PF-ODE solvers dx/dt = v(x, t) on a time grid (spec §9.4):
// Euler x_{i+1} = x_i + h v(x_i, t_i), and EDM's deterministic Heun (Euler on the last step to t = 0).
#pragma once

#include "ayf/samplers/common.hpp"

namespace ayf {

/// Integrates x in place from grid.front() to grid.back() with Euler steps. x: [B, D].
/// Observer: obs(step_info, x) after each step. No allocation inside the step loop.
template <backend B, class Velocity, class Observer = no_observer>
void euler_sample(typename B::context& ctx, Velocity& v, typename B::tensor& x, const time_grid& grid,
                  const condition<B>& cond = {}, Observer&& observer = {}) {
  static_assert(velocity_field<Velocity, B>, "euler_sample needs a velocity field v(ctx, x, t, cond, out)");
  detail::require_sampler_inputs<B>("euler_sample", x, cond);
  detail::step_times<B> times(ctx, B::shape_of(x).rows);
  typename B::tensor velocity = B::make(ctx, B::shape_of(x));
  for (std::size_t i = 0; i < grid.steps(); ++i) {
    const double h = grid[i + 1] - grid[i];
    times.set(ctx, grid[i], grid[i + 1]);
    v(ctx, x, times.from, cond, velocity);
    B::scale_sum_rows(ctx, x, 1.0, x, h, velocity);
    observer(step_info{i, grid[i], grid[i + 1]}, x);
  }
}

/// Integrates x in place with EDM's deterministic Heun steps: predictor x~ = x + h d, corrector
/// x + h/2 (d + v(x~, t_{i+1})), except a plain Euler step when t_{i+1} = 0. 2 NFE per step.
template <backend B, class Velocity, class Observer = no_observer>
void heun_sample(typename B::context& ctx, Velocity& v, typename B::tensor& x, const time_grid& grid,
                 const condition<B>& cond = {}, Observer&& observer = {}) {
  static_assert(velocity_field<Velocity, B>, "heun_sample needs a velocity field v(ctx, x, t, cond, out)");
  detail::require_sampler_inputs<B>("heun_sample", x, cond);
  detail::step_times<B> times(ctx, B::shape_of(x).rows);
  typename B::tensor d = B::make(ctx, B::shape_of(x));
  typename B::tensor d_next = B::make(ctx, B::shape_of(x));
  typename B::tensor predicted = B::make(ctx, B::shape_of(x));
  for (std::size_t i = 0; i < grid.steps(); ++i) {
    const double h = grid[i + 1] - grid[i];
    times.set(ctx, grid[i], grid[i + 1]);
    v(ctx, x, times.from, cond, d);
    if (grid[i + 1] > 0) {
      B::scale_sum_rows(ctx, predicted, 1.0, x, h, d);
      v(ctx, predicted, times.to, cond, d_next);
      B::scale_sum_rows(ctx, x, 1.0, x, 0.5 * h, d, 0.5 * h, d_next);
    } else {
      B::scale_sum_rows(ctx, x, 1.0, x, h, d);
    }
    observer(step_info{i, grid[i], grid[i + 1]}, x);
  }
}

}  // namespace ayf
