// ayf/objectives/shortcut.hpp: Shortcut-model distillation (spec §6.5, Eq. 36, AYF's "Shortcut*"):
// a fraction of the batch regresses F(x_t, t, t) on the teacher velocity v(x_t, t); the rest regresses
// F(x_t, t, s) on the bootstrap average sg((F(x_t, t, u) + F(x_u, u, s)) / 2), u = (t + s) / 2,
// x_u = x_t + (u - t) F(x_t, t, u) (two half steps of the student itself).
#pragma once

#include <cmath>
#include <vector>

#include "ayf/core/functors.hpp"
#include "ayf/objectives/objective.hpp"
#include "ayf/objectives/time_sampling.hpp"

namespace ayf {

struct shortcut_config {
  pair_sampler_config pairs{};
  double flow_matching_fraction = 0.25;  ///< rows with s = t and the teacher target
};

namespace detail {
/// m t + (1 - m) s: s = t on the flow-matching rows (mask 1).
struct masked_time {
  template <class T>
  AYF_HOST_DEVICE T operator()(T m, T t, T s) const { return m * t + (T(1) - m) * s; }
};
/// (1 - m) / 2: the weight of each half step on the bootstrap rows.
struct half_unmasked {
  template <class T>
  AYF_HOST_DEVICE T operator()(T m) const { return (T(1) - m) * T(0.5); }
};
}  // namespace detail

template <backend B, class Student>
class shortcut {
  static_assert(trainable_flow_map_model<Student, B>, "shortcut needs a trainable student");

public:
  explicit shortcut(shortcut_config config = {}) : m_config(config) {
    require(config.flow_matching_fraction >= 0 && config.flow_matching_fraction <= 1, "shortcut_config",
            "flow_matching_fraction", "a value in [0, 1]", config.flow_matching_fraction);
  }

  template <class Teacher>
  step_statistics step(typename B::context& ctx, Student& student, Teacher& teacher, const typename B::tensor& x0,
                       const typename B::tensor* labels, double /*iteration*/ = 0) {
    static_assert(velocity_field<Teacher, B>, "the teacher must be a velocity field");
    sample_training_batch<B>(ctx, m_config.pairs, x0, m_batch);
    const condition<B> cond = m_batch.cond(labels);
    const std::size_t n = B::shape_of(x0).rows;
    make_mask(ctx, n);
    teacher(ctx, m_batch.x_t, m_batch.t, cond, m_velocity);
    // Bootstrap target from two half steps of the student.
    B::scale_sum_rows(ctx, m_u, 0.5, m_batch.t, 0.5, m_batch.s);
    student.forward(ctx, m_batch.x_t, m_batch.t, m_u, cond, m_first, m_saved_target);
    B::transform(ctx, m_step, fn::minus{}, m_u, m_batch.t);
    B::scale_sum_rows(ctx, m_x_u, 1.0, m_batch.x_t, m_step, m_first);
    student.forward(ctx, m_x_u, m_u, m_batch.s, cond, m_second, m_saved_target);
    // Rows with mask 1: s = t and target v; others: the bootstrap (F1 + F2) / 2.
    B::transform(ctx, m_s, detail::masked_time{}, m_mask, m_batch.t, m_batch.s);
    B::transform(ctx, m_rest, detail::half_unmasked{}, m_mask);
    B::scale_sum_rows(ctx, m_target, m_mask, m_velocity, m_rest, m_first, m_rest, m_second);
    student.forward(ctx, m_batch.x_t, m_batch.t, m_s, cond, m_f, m_saved);
    B::scale_sum_rows(ctx, m_residual, 1.0, m_f, -1.0, m_target);
    const step_statistics stats = detail::squared_error_gradient<B>(ctx, m_residual);
    student.backward(ctx, m_saved, m_residual);
    return stats;
  }

private:
  void make_mask(typename B::context& ctx, std::size_t n) {
    if (B::shape_of(m_mask).rows == n) return;
    const auto k = static_cast<std::size_t>(std::llround(m_config.flow_matching_fraction * static_cast<double>(n)));
    std::vector<typename B::scalar> mask(n, typename B::scalar(0));
    for (std::size_t i = 0; i < k && i < n; ++i) mask[i] = typename B::scalar(1);
    m_mask = B::from_host(ctx, mask, shape::vector(n));
  }

  shortcut_config m_config;
  training_batch<B> m_batch{};
  typename B::tensor m_mask{}, m_velocity{}, m_u{}, m_first{}, m_step{}, m_x_u{}, m_second{}, m_s{}, m_rest{},
      m_target{}, m_f{}, m_residual{};
  typename Student::activations m_saved{}, m_saved_target{};
};

}  // namespace ayf
