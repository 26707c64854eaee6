// ayf/objectives/objective.hpp: what the objectives need of a student (design.md §4): forward with
// saved activations, forward_jvp (primal + tangent in one pass) and backward into a flat gradient,
// and the statistics every objective step reports.
#pragma once

#include <cmath>

#include "ayf/core/error.hpp"
#include "ayf/core/functors.hpp"
#include "ayf/core/model.hpp"

namespace ayf {

/// A trainable average-velocity model F(x, t, s): `typename M::activations`,
/// forward(ctx, x, t, s, cond, out, saved), forward_jvp(ctx, x, t, s, cond, dx, dt, ds, out, dout, saved)
/// and backward(ctx, saved, dL_dF) accumulating into its parameter gradients.
template <class M, class B>
concept trainable_flow_map_model =
    flow_map_model<M, B> &&
    requires(M& m, typename B::context& ctx, const typename B::tensor& x, const condition<B>& cond,
             typename B::tensor& out, typename M::activations& saved) {
      m.forward(ctx, x, x, x, cond, out, saved);
      m.forward_jvp(ctx, x, x, x, cond, x, x, x, out, out, saved);
      m.backward(ctx, saved, x);
    };

/// What one objective step reports.
struct step_statistics {
  double loss = 0;          ///< the objective's value at theta (for EMD/LMD ~ |g_hat|^2: uninformative, spec §4.4)
  double tangent_norm = 0;  ///< mean per-sample |g| before normalisation (EMD/LMD), else the mean residual norm
};

namespace detail {

/// Raises ayf::error naming `objective` when the student exposes config().embed_s and it is false: a
/// flow-map objective needs F to depend on s (a velocity model would be trained toward a different map).
template <class Student>
void require_s_input(const Student& student, const char* objective) {
  if constexpr (requires { static_cast<bool>(student.config().embed_s); }) {
    if (!student.config().embed_s) {
      throw error(concat(objective, ": the student needs embed_s = true (an s input) to be a flow map F(x, t, s), "
                                    "received a student built with embed_s = false"));
    }
  }
}

/// `out` with the shape of `like` and every element `value` (resized once, then reused).
template <backend B>
void fill_like(typename B::context& ctx, typename B::tensor& out, const typename B::tensor& like, double value) {
  B::resize(ctx, out, B::shape_of(like));
  B::fill(ctx, out, static_cast<typename B::scalar>(value));
}

/// For L = mean_i |r_i|^2 over the rows of `residual` ([B, D]): the loss, its root as the
/// statistic, and dL/dF = 2 r / B written over `residual`.
template <backend B>
step_statistics squared_error_gradient(typename B::context& ctx, typename B::tensor& residual) {
  const double batch = static_cast<double>(B::shape_of(residual).rows);
  step_statistics stats;
  stats.loss = static_cast<double>(B::dot(ctx, residual, residual)) / batch;
  stats.tangent_norm = std::sqrt(stats.loss);
  B::scale_sum_rows(ctx, residual, 2.0 / batch, residual);
  return stats;
}

/// Tangent normalisation g_hat = g / (|g| + c) per sample (spec §4.4) and the gradient of the
/// stop-gradient loss mean_i |F_i - sg(F_i - g_hat_i)|^2 with respect to F at theta: 2 g_hat / B.
/// `normalize = false` uses g itself. g, grad_output: [B, D]; norms: [B, 1] scratch.
template <backend B>
step_statistics normalized_tangent_gradient(typename B::context& ctx, const typename B::tensor& g, double c,
                                            bool normalize, typename B::tensor& norms,
                                            typename B::tensor& grad_output) {
  const double batch = static_cast<double>(B::shape_of(g).rows);
  B::reduce_rows(ctx, norms, fn::square{}, g);
  B::transform(ctx, norms, fn::square_root{}, norms);
  step_statistics stats;
  stats.tangent_norm = static_cast<double>(B::reduce_all(ctx, fn::identity{}, norms)) / batch;
  if (normalize) {
    // norms <- 1 / (|g| + c); loss = mean (|g| / (|g| + c))^2.
    B::transform(ctx, norms, fn::reciprocal_plus{c}, norms);
    B::scale_sum_rows(ctx, grad_output, norms, g);
    stats.loss = static_cast<double>(B::dot(ctx, grad_output, grad_output)) / batch;
    B::scale_sum_rows(ctx, grad_output, 2.0 / batch, grad_output);
  } else {
    stats.loss = static_cast<double>(B::dot(ctx, g, g)) / batch;
    B::scale_sum_rows(ctx, grad_output, 2.0 / batch, g);
  }
  return stats;
}

}  // namespace detail
}  // namespace ayf
