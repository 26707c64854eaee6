// ayf/objectives/ayf_emd.hpp: AYF-EMD, Eulerian map distillation (spec §4.4, Algorithm 1):
// (F-, dF/dt) = JVP of F(., ., s) at (x_t, t) along (v, 1); g = (F- - v) + r (t - s) dF/dt (= -df/dt, Eq. 4);
// g_hat = g / (|g| + c); L = mean |F - F- + g_hat|^2 with r = min(r_max, iteration / H) (spec §8.2).
// With pair_sampler_config::consistency (s = 0) it is the continuous consistency baseline sCD (spec §6.2).
#pragma once

#include <algorithm>

#include "ayf/core/functors.hpp"
#include "ayf/objectives/objective.hpp"
#include "ayf/objectives/time_sampling.hpp"

namespace ayf {

struct ayf_emd_config {
  pair_sampler_config pairs{};
  double tangent_c = 0.1;          ///< c of the tangent normalisation (spec §4.4)
  bool normalize_tangent = true;
  double warmup_iterations = 10000; ///< H (spec §8.2); 0 = no warmup (r = r_max)
  double r_max = 0.99;
};

/// The warmup weight r = min(r_max, iteration / H).
inline double tangent_warmup(double iteration, double warmup_iterations, double r_max) {
  if (warmup_iterations <= 0) return r_max;
  return std::min(r_max, iteration / warmup_iterations);
}

/// One AYF-EMD gradient from a teacher velocity field (any, e.g. autoguided): the student's
/// forward_jvp gives F- and dF/dt in one pass and backward reuses its activations. A student whose
/// config() says embed_s = false is rejected with ayf::error (except for sCD, where s = 0 always).
template <backend B, class Student>
class ayf_emd {
  static_assert(trainable_flow_map_model<Student, B>, "ayf_emd needs a trainable student (forward_jvp, backward)");

public:
  explicit ayf_emd(ayf_emd_config config = {}) : m_config(config) {
    require(config.tangent_c >= 0, "ayf_emd_config", "tangent_c", "c >= 0", config.tangent_c);
    require(config.r_max >= 0 && config.r_max <= 1, "ayf_emd_config", "r_max", "a value in [0, 1]", config.r_max);
  }

  /// x0: [B, D] data; labels: [B, 1] or null; iteration: for the warmup. Draws from ctx.rng.
  template <class Teacher>
  step_statistics step(typename B::context& ctx, Student& student, Teacher& teacher, const typename B::tensor& x0,
                       const typename B::tensor* labels, double iteration);

  /// The same on a given batch (t, s, lambda, x_t already set).
  template <class Teacher>
  step_statistics step_on_batch(typename B::context& ctx, Student& student, Teacher& teacher,
                                const training_batch<B>& batch, const typename B::tensor* labels, double iteration);

  /// dL/dF of the last step ([B, D]).
  const typename B::tensor& output_gradient() const { return m_grad_output; }
  const ayf_emd_config& config() const { return m_config; }

private:
  ayf_emd_config m_config;
  training_batch<B> m_batch{};
  typename B::tensor m_velocity{}, m_ones{}, m_zeros{}, m_f{}, m_df{}, m_coefficient{}, m_tangent{}, m_norms{},
      m_grad_output{};
  typename Student::activations m_saved{};
};

// The steps are defined out of the class, not inline, so that an explicit instantiation declaration
// (ayf/backends/eigen/compiled.hpp) keeps a user's translation unit from instantiating them.
template <backend B, class Student>
template <class Teacher>
step_statistics ayf_emd<B, Student>::step(typename B::context& ctx, Student& student, Teacher& teacher,
                                          const typename B::tensor& x0, const typename B::tensor* labels,
                                          double iteration) {
  static_assert(velocity_field<Teacher, B>, "the teacher must be a velocity field");
  if (!m_config.pairs.consistency) detail::require_s_input(student, "ayf_emd");  // before any draw from ctx.rng
  sample_training_batch<B>(ctx, m_config.pairs, x0, m_batch);
  return step_on_batch(ctx, student, teacher, m_batch, labels, iteration);
}

template <backend B, class Student>
template <class Teacher>
step_statistics ayf_emd<B, Student>::step_on_batch(typename B::context& ctx, Student& student, Teacher& teacher,
                                                   const training_batch<B>& batch, const typename B::tensor* labels,
                                                   double iteration) {
  if (!m_config.pairs.consistency) detail::require_s_input(student, "ayf_emd");
  const condition<B> cond = batch.cond(labels);
  teacher(ctx, batch.x_t, batch.t, cond, m_velocity);
  detail::fill_like<B>(ctx, m_ones, batch.t, 1.0);
  detail::fill_like<B>(ctx, m_zeros, batch.t, 0.0);
  student.forward_jvp(ctx, batch.x_t, batch.t, batch.s, cond, m_velocity, m_ones, m_zeros, m_f, m_df, m_saved);
  const double r = tangent_warmup(iteration, m_config.warmup_iterations, m_config.r_max);
  B::transform(ctx, m_coefficient, fn::scaled_difference{r}, batch.t, batch.s);  // r (t - s)
  B::scale_sum_rows(ctx, m_tangent, 1.0, m_f, -1.0, m_velocity, m_coefficient, m_df);
  const step_statistics stats = detail::normalized_tangent_gradient<B>(
      ctx, m_tangent, m_config.tangent_c, m_config.normalize_tangent, m_norms, m_grad_output);
  student.backward(ctx, m_saved, m_grad_output);
  return stats;
}

}  // namespace ayf
