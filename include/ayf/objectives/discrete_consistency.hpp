// ayf/objectives/discrete_consistency.hpp: the discrete flow-map consistency loss (spec Eq. 18; TCD,
// §6.7; with s = 0 the discrete CM loss of Eq. 1): t' = t + eps (s - t), x_t' = x_t + (t' - t) v(x_t, t),
// L = mean w(t, s) |f(x_t, t, s) - sg(f(x_t', t', s))|^2 with w = 1 / (t - s)^2. Its gradient divided by
// eps tends to the AYF-EMD gradient (spec §4.2) as eps -> 0.
#pragma once

#include "ayf/core/functors.hpp"
#include "ayf/objectives/objective.hpp"
#include "ayf/objectives/time_sampling.hpp"

namespace ayf {

struct discrete_consistency_config {
  pair_sampler_config pairs{};
  double epsilon = 0.05;  ///< relative step toward s: t' = t + epsilon (s - t)
};

namespace detail {
/// t' = t + eps (s - t).
struct step_toward {
  double eps;
  template <class T>
  AYF_HOST_DEVICE T operator()(T t, T s) const { return t + T(eps) * (s - t); }
};
/// 1 / (a - b).
struct reciprocal_difference {
  template <class T>
  AYF_HOST_DEVICE T operator()(T a, T b) const { return T(1) / (a - b); }
};
}  // namespace detail

template <backend B, class Student>
class discrete_consistency {
  static_assert(trainable_flow_map_model<Student, B>, "discrete_consistency needs a trainable student");

public:
  explicit discrete_consistency(discrete_consistency_config config = {}) : m_config(config) {
    require(config.epsilon > 0 && config.epsilon <= 1, "discrete_consistency_config", "epsilon", "a value in (0, 1]",
            config.epsilon);
  }

  template <class Teacher>
  step_statistics step(typename B::context& ctx, Student& student, Teacher& teacher, const typename B::tensor& x0,
                       const typename B::tensor* labels, double /*iteration*/ = 0) {
    sample_training_batch<B>(ctx, m_config.pairs, x0, m_batch);
    return step_on_batch(ctx, student, teacher, m_batch, labels);
  }

  template <class Teacher>
  step_statistics step_on_batch(typename B::context& ctx, Student& student, Teacher& teacher,
                                const training_batch<B>& batch, const typename B::tensor* labels) {
    static_assert(velocity_field<Teacher, B>, "the teacher must be a velocity field");
    const condition<B> cond = batch.cond(labels);
    const double eps = m_config.epsilon;
    teacher(ctx, batch.x_t, batch.t, cond, m_velocity);
    // t' and x_t'.
    B::transform(ctx, m_t_prime, detail::step_toward{eps}, batch.t, batch.s);
    B::transform(ctx, m_step, fn::scaled_difference{eps}, batch.s, batch.t);  // eps (s - t)
    B::scale_sum_rows(ctx, m_x_prime, 1.0, batch.x_t, m_step, m_velocity);
    // Target f-(x_t', t', s) = x_t' + (s - t') F-(x_t', t', s).
    student.forward(ctx, m_x_prime, m_t_prime, batch.s, cond, m_f_target, m_saved_target);
    B::transform(ctx, m_step, fn::minus{}, batch.s, m_t_prime);  // s - t'
    B::scale_sum_rows(ctx, m_target, 1.0, m_x_prime, m_step, m_f_target);
    // f(x_t, t, s) - target, and dL/dF = (2 / B) w (s - t) (f - target) = (2 / B) (f - target) / (s - t).
    student.forward(ctx, batch.x_t, batch.t, batch.s, cond, m_f, m_saved);
    B::transform(ctx, m_step, fn::minus{}, batch.s, batch.t);  // s - t
    B::scale_sum_rows(ctx, m_residual, 1.0, batch.x_t, m_step, m_f, -1.0, m_target);
    B::transform(ctx, m_step, detail::reciprocal_difference{}, batch.s, batch.t);  // 1 / (s - t)
    B::scale_sum_rows(ctx, m_residual, m_step, m_residual);  // sqrt(w) (f - target), signed by (s - t)
    step_statistics stats = detail::squared_error_gradient<B>(ctx, m_residual);
    stats.tangent_norm /= eps;  // |f - target| / eps estimates |df/dt|
    student.backward(ctx, m_saved, m_residual);
    return stats;
  }

  const typename B::tensor& output_gradient() const { return m_residual; }

private:
  discrete_consistency_config m_config;
  training_batch<B> m_batch{};
  typename B::tensor m_velocity{}, m_t_prime{}, m_step{}, m_x_prime{}, m_f_target{}, m_target{}, m_f{}, m_residual{};
  typename Student::activations m_saved{}, m_saved_target{};
};

}  // namespace ayf
