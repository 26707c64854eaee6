// ayf/objectives/ayf_lmd.hpp: AYF-LMD, Lagrangian map distillation (spec §5.3): (F-, dF/ds) = JVP
// along (0, 0, 1); f- = x_t + (s - t) F-; g = F- + r (s - t) dF/ds - v(f-, s) (= df/ds - v(f, s) at r = 1);
// g_hat = g / (|g| + c); L = mean |F - sg(F- - g_hat)|^2. One extra teacher call at the student's own output.
#pragma once

#include "ayf/core/functors.hpp"
#include "ayf/objectives/ayf_emd.hpp"

namespace ayf {

using ayf_lmd_config = ayf_emd_config;

/// A student whose config() says embed_s = false is rejected with ayf::error (dF/ds is the tangent).
template <backend B, class Student>
class ayf_lmd {
  static_assert(trainable_flow_map_model<Student, B>, "ayf_lmd needs a trainable student (forward_jvp, backward)");

public:
  explicit ayf_lmd(ayf_lmd_config config = {}) : m_config(config) {}

  /// x0: [B, D] data; labels: [B, 1] or null; iteration: for the warmup. Draws from ctx.rng.
  template <class Teacher>
  step_statistics step(typename B::context& ctx, Student& student, Teacher& teacher, const typename B::tensor& x0,
                       const typename B::tensor* labels, double iteration);

  /// The same on a given batch (t, s, lambda, x_t already set).
  template <class Teacher>
  step_statistics step_on_batch(typename B::context& ctx, Student& student, Teacher& teacher,
                                const training_batch<B>& batch, const typename B::tensor* labels, double iteration);

  const typename B::tensor& output_gradient() const { return m_grad_output; }

private:
  ayf_lmd_config m_config;
  training_batch<B> m_batch{};
  typename B::tensor m_ones{}, m_zeros{}, m_zero_x{}, m_f{}, m_df{}, m_coefficient{}, m_endpoint{}, m_velocity{},
      m_tangent{}, m_norms{}, m_grad_output{};
  typename Student::activations m_saved{};
};

// Out of the class, not inline: see ayf_emd.hpp.
template <backend B, class Student>
template <class Teacher>
step_statistics ayf_lmd<B, Student>::step(typename B::context& ctx, Student& student, Teacher& teacher,
                                          const typename B::tensor& x0, const typename B::tensor* labels,
                                          double iteration) {
  static_assert(velocity_field<Teacher, B>, "the teacher must be a velocity field");
  detail::require_s_input(student, "ayf_lmd");  // before any draw from ctx.rng
  sample_training_batch<B>(ctx, m_config.pairs, x0, m_batch);
  return step_on_batch(ctx, student, teacher, m_batch, labels, iteration);
}

template <backend B, class Student>
template <class Teacher>
step_statistics ayf_lmd<B, Student>::step_on_batch(typename B::context& ctx, Student& student, Teacher& teacher,
                                                   const training_batch<B>& batch, const typename B::tensor* labels,
                                                   double iteration) {
  detail::require_s_input(student, "ayf_lmd");
  const condition<B> cond = batch.cond(labels);
  detail::fill_like<B>(ctx, m_ones, batch.t, 1.0);
  detail::fill_like<B>(ctx, m_zeros, batch.t, 0.0);
  detail::fill_like<B>(ctx, m_zero_x, batch.x_t, 0.0);
  student.forward_jvp(ctx, batch.x_t, batch.t, batch.s, cond, m_zero_x, m_zeros, m_ones, m_f, m_df, m_saved);
  // f- = x_t + (s - t) F-, then the teacher at (f-, s).
  B::transform(ctx, m_coefficient, fn::minus{}, batch.s, batch.t);  // s - t
  B::scale_sum_rows(ctx, m_endpoint, 1.0, batch.x_t, m_coefficient, m_f);
  teacher(ctx, m_endpoint, batch.s, cond, m_velocity);
  const double r = tangent_warmup(iteration, m_config.warmup_iterations, m_config.r_max);
  B::scale_sum_rows(ctx, m_coefficient, r, m_coefficient);
  B::scale_sum_rows(ctx, m_tangent, 1.0, m_f, m_coefficient, m_df, -1.0, m_velocity);
  const step_statistics stats = detail::normalized_tangent_gradient<B>(
      ctx, m_tangent, m_config.tangent_c, m_config.normalize_tangent, m_norms, m_grad_output);
  student.backward(ctx, m_saved, m_grad_output);
  return stats;
}

}  // namespace ayf
