// ayf/objectives/time_sampling.hpp: the (t, s) pair sampler of spec §8.3 (tau ~ N(P_mean, P_std^2),
// d = sigmoid(tau), s ~ U[0, 1 - d], t = s + d; optionally d = 0 for a share of the pairs), lambda ~
// U[lambda_min, lambda_max] (spec §7), and the training batch x_t = (1 - t) x0 + t eps that every objective
// starts from.
#pragma once

#include <cmath>

#include "ayf/core/functors.hpp"
#include "ayf/core/dual.hpp"
#include "ayf/core/model.hpp"
#include "ayf/paths/interpolant.hpp"

namespace ayf {

struct pair_sampler_config {
  double p_mean = -0.8;        ///< ImageNet-512 value (spec §8.3; medium confidence)
  double p_std = 1.0;
  double lambda_min = 1.0;     ///< guidance scale range fed to teacher and student (spec §7)
  double lambda_max = 3.0;
  bool consistency = false;    ///< s = 0 and t = d: the continuous consistency baseline (sCD)
  /// Share of pairs drawn with s = t (d = 0, t ~ U[0, 1]): there the EMD gradient is flow matching toward
  /// the teacher (spec §6.1, Eq. 27), which pins the flow map's small steps to the (guided) teacher
  /// velocity; MeanFlow trains 75% of its pairs so. In [0, 1); not with `consistency`.
  double diagonal_fraction = 0;
};

namespace detail {
/// d = sigmoid(tau + mean).
struct interval_from_normal {
  double mean;
  template <class T>
  AYF_HOST_DEVICE T operator()(T tau) const { return sigmoid(tau + T(mean)); }
};
/// s = u (1 - d): uniform on [0, 1 - d].
struct start_in_interval {
  template <class T>
  AYF_HOST_DEVICE T operator()(T u, T d) const { return u * (T(1) - d); }
};
/// d, or 0 where u < fraction: the pairs with s = t.
struct zero_below {
  double fraction;
  template <class T>
  AYF_HOST_DEVICE T operator()(T d, T u) const { return u < T(fraction) ? T(0) : d; }
};
/// min(t, 1).
struct at_most_one {
  template <class T>
  AYF_HOST_DEVICE T operator()(T t) const { return t < T(1) ? t : T(1); }
};
}  // namespace detail

/// A training batch: noise, times, guidance scale, the interpolant and per-sample scratch.
template <backend B>
struct training_batch {
  typename B::tensor eps, t, s, lambda, x_t, scratch;
  condition<B> cond(const typename B::tensor* labels) const { return {labels, &lambda}; }
};

/// Draws eps ~ N(0, I), (t, s) as in spec §8.3 and lambda ~ U[lambda_min, lambda_max] from ctx.rng,
/// and forms x_t. x0: [B, D]. With diagonal_fraction = 0 the draws are those of earlier versions.
template <backend B>
void sample_training_batch(typename B::context& ctx, const pair_sampler_config& config,
                           const typename B::tensor& x0, training_batch<B>& batch) {
  require(config.p_std > 0, "sample_training_batch", "p_std", "a positive standard deviation", config.p_std);
  require(config.lambda_min <= config.lambda_max, "sample_training_batch", "lambda_max",
          detail::message("at least lambda_min = ", config.lambda_min), config.lambda_max);
  require(config.diagonal_fraction >= 0 && config.diagonal_fraction < 1, "sample_training_batch", "diagonal_fraction",
          "a share in [0, 1)", config.diagonal_fraction);
  require(!config.consistency || config.diagonal_fraction == 0, "sample_training_batch", "diagonal_fraction",
          "0 with consistency (s = 0 always)", config.diagonal_fraction);
  const shape sh = B::shape_of(x0);
  const shape vec = shape::vector(sh.rows);
  B::resize(ctx, batch.eps, sh);
  B::resize(ctx, batch.t, vec);
  B::resize(ctx, batch.s, vec);
  B::resize(ctx, batch.lambda, vec);
  B::resize(ctx, batch.scratch, vec);
  B::randn(ctx, batch.eps);
  // d = sigmoid(tau) in batch.t for now.
  B::randn(ctx, batch.t);
  B::scale_sum_rows(ctx, batch.t, config.p_std, batch.t);
  const double mean = config.p_mean;
  B::transform(ctx, batch.t, detail::interval_from_normal{mean}, batch.t);
  if (config.diagonal_fraction > 0) {
    B::rand_uniform(ctx, batch.scratch);
    B::transform(ctx, batch.t, detail::zero_below{config.diagonal_fraction}, batch.t, batch.scratch);
  }
  if (config.consistency) {
    B::fill(ctx, batch.s, typename B::scalar(0));
  } else {
    // s = u (1 - d), t = s + d.
    B::rand_uniform(ctx, batch.s);
    B::transform(ctx, batch.s, detail::start_in_interval{}, batch.s, batch.t);
    B::scale_sum_rows(ctx, batch.t, 1.0, batch.t, 1.0, batch.s);
    B::transform(ctx, batch.t, detail::at_most_one{}, batch.t);  // rounding
  }
  B::rand_uniform(ctx, batch.lambda);
  B::scale_sum_rows(ctx, batch.lambda, config.lambda_max - config.lambda_min, batch.lambda);
  B::transform(ctx, batch.lambda, fn::add{config.lambda_min}, batch.lambda);
  interpolate<B>(ctx, x0, batch.eps, batch.t, batch.x_t, batch.scratch);
}

}  // namespace ayf
