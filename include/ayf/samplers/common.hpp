// ayf/samplers/common.hpp: what every sampler shares: the observer hook called after each step,
// the checks on the state, and per-sample time vectors filled from a time grid.
#pragma once

#include <cstddef>

#include "ayf/core/model.hpp"
#include "ayf/paths/time_grid.hpp"

namespace ayf {

/// Passed to observers after step `index` moved the state from `t_from` to `t_to`.
struct step_info {
  std::size_t index = 0;
  double t_from = 0;
  double t_to = 0;
};

/// The default observer: does nothing.
struct no_observer {
  template <class Tensor>
  void operator()(const step_info& /*step*/, const Tensor& /*x*/) const {}
};

namespace detail {

template <backend B>
void require_sampler_inputs(const char* where, const typename B::tensor& x, const condition<B>& cond) {
  const shape sh = B::shape_of(x);
  require(sh.rows > 0 && sh.cols > 0, where, "x", "a non-empty [B, D] state", sh);
  if (cond.labels != nullptr) require_vector(where, "cond.labels", sh.rows, B::shape_of(*cond.labels));
  if (cond.guidance != nullptr) require_vector(where, "cond.guidance", sh.rows, B::shape_of(*cond.guidance));
}

/// Time vectors [B, 1] for the two ends of a step, allocated once before the step loop.
template <backend B>
struct step_times {
  typename B::tensor from, to;
  step_times(typename B::context& ctx, std::size_t batch)
      : from(B::make(ctx, shape::vector(batch))), to(B::make(ctx, shape::vector(batch))) {}
  void set(typename B::context& ctx, double t_from, double t_to) {
    B::fill(ctx, from, static_cast<typename B::scalar>(t_from));
    B::fill(ctx, to, static_cast<typename B::scalar>(t_to));
  }
};

}  // namespace detail
}  // namespace ayf
