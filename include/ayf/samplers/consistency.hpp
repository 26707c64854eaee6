// ayf/samplers/consistency.hpp: multistep consistency-model sampling (spec §9.3, §3.4): denoise
// x0 = f(x_t, t), then re-noise x_s = (1 - s) x0 + s z with fresh z, down a time grid.
#pragma once

#include "ayf/samplers/common.hpp"

namespace ayf {

/// x: [B, D], noise at grid.front() on entry, the clean sample on exit. Noise from ctx.rng.
template <backend B, class Consistency, class Observer = no_observer>
void consistency_multistep_sample(typename B::context& ctx, Consistency& model, typename B::tensor& x,
                                  const time_grid& grid, const condition<B>& cond = {},
                                  Observer&& observer = {}) {
  static_assert(consistency_model<Consistency, B>,
                "consistency_multistep_sample needs a consistency model denoise(ctx, x, t, cond, out)");
  detail::require_sampler_inputs<B>("consistency_multistep_sample", x, cond);
  detail::step_times<B> times(ctx, B::shape_of(x).rows);
  typename B::tensor denoised = B::make(ctx, B::shape_of(x));
  typename B::tensor noise = B::make(ctx, B::shape_of(x));
  for (std::size_t k = 0; k < grid.steps(); ++k) {
    const double t_next = grid[k + 1];
    times.set(ctx, grid[k], 0.0);
    model.denoise(ctx, x, times.from, cond, denoised);
    if (t_next > 0) {
      B::randn(ctx, noise);
      B::scale_sum_rows(ctx, x, 1 - t_next, denoised, t_next, noise);
    } else {
      B::copy(ctx, denoised, x);
    }
    observer(step_info{k, grid[k], t_next}, x);
  }
}

}  // namespace ayf
