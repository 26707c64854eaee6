// ayf/paths/interpolant.hpp: the rectified-flow interpolant x_t = (1 - t) x0 + t eps (spec §1),
// its conditional velocity eps - x0, and the EDM noise level sigma(t) = t / (1 - t).
#pragma once

#include <cmath>
#include <limits>

#include "ayf/core/functors.hpp"
#include "ayf/core/backend.hpp"
#include "ayf/core/error.hpp"

namespace ayf {

namespace detail {
/// 1 for a time outside [0, 1] (NaN included), else 0.
struct outside_unit_interval {
  template <class T>
  AYF_HOST_DEVICE double operator()(T v) const { return (v >= 0 && v <= 1) ? 0.0 : 1.0; }
};
/// Raises unless every entry of the per-sample time vector `t` ([batch, 1]) lies in [0, 1].
template <backend B>
void require_unit_times(typename B::context& ctx, const char* where, const char* argument,
                        const typename B::tensor& t, std::size_t batch) {
  require_vector(where, argument, batch, B::shape_of(t));
  if (batch == 0) return;
  // Counting entries outside [0, 1] catches NaN, which min/max comparisons would skip.
  const auto outside = B::reduce_all(ctx, outside_unit_interval{}, t);
  if (outside > 0) {
    const auto [lo, hi] = B::extrema(ctx, t);
    throw_argument_error(where, argument, "times in [0, 1]",
                         detail::concat(outside, " outside (values in [", lo, ", ", hi, "], NaN counted)"));
  }
}
}  // namespace detail

/// x_t = (1 - t) x0 + t eps. x0, eps, out: [B, D]; t: [B, 1] in [0, 1].
template <backend B>
void interpolate(typename B::context& ctx, const typename B::tensor& x0,
                 const typename B::tensor& eps, const typename B::tensor& t,
                 typename B::tensor& out, typename B::tensor& one_minus_t) {
  require_shape("interpolate", "eps", B::shape_of(x0), B::shape_of(eps));
  detail::require_unit_times<B>(ctx, "interpolate", "t", t, B::shape_of(x0).rows);
  B::transform(ctx, one_minus_t, fn::one_minus{}, t);
  B::scale_sum_rows(ctx, out, one_minus_t, x0, t, eps);
}

/// Convenience overload that allocates its [B, 1] workspace.
template <backend B>
void interpolate(typename B::context& ctx, const typename B::tensor& x0,
                 const typename B::tensor& eps, const typename B::tensor& t,
                 typename B::tensor& out) {
  typename B::tensor one_minus_t = B::make(ctx, shape::vector(B::shape_of(x0).rows));
  interpolate<B>(ctx, x0, eps, t, out, one_minus_t);
}

/// Conditional velocity d x_t / dt = eps - x0. x0, eps, out: [B, D].
template <backend B>
void conditional_velocity(typename B::context& ctx, const typename B::tensor& x0,
                          const typename B::tensor& eps, typename B::tensor& out) {
  require_shape("conditional_velocity", "eps", B::shape_of(x0), B::shape_of(eps));
  B::scale_sum_rows(ctx, out, 1.0, eps, -1.0, x0);
}

/// EDM noise level sigma(t) = t / (1 - t); +infinity at t = 1.
inline double sigma_from_time(double t) {
  require(t >= 0 && t <= 1, "sigma_from_time", "t", "a time in [0, 1]", t);
  return t == 1 ? std::numeric_limits<double>::infinity() : t / (1 - t);
}

/// FM time of an EDM noise level: t(sigma) = sigma / (1 + sigma); 1 at sigma = +infinity.
inline double time_from_sigma(double sigma) {
  require(sigma >= 0, "time_from_sigma", "sigma", "a noise level >= 0", sigma);
  return std::isinf(sigma) ? 1.0 : sigma / (1 + sigma);
}

}  // namespace ayf
