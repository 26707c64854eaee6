// ayf/analysis/linear_models.hpp: models that scale the state per sample by a coefficient of time
// (v = k(t) x, f = A(t, s) x, F = a(t, s) x, f = a(t) x), written as ordinary velocity fields,
// flow maps and consistency models that the generic samplers run (spec §3, Theorem 3.1).
#pragma once

#include "ayf/analysis/gaussian.hpp"
#include <type_traits>

#include "ayf/core/model.hpp"

namespace ayf {

/// v(x, t) = k(t) x for a coefficient functor k(t) (HD).
template <backend B, class Coefficient>
class linear_velocity_field {
public:
  explicit linear_velocity_field(Coefficient k) : m_k(k) {}
  /// x, out: [B, D]; t: [B, 1].
  void operator()(typename B::context& ctx, const typename B::tensor& x, const typename B::tensor& t,
                  const condition<B>& /*cond*/, typename B::tensor& out) {
    require_vector("linear_velocity_field", "t", B::shape_of(x).rows, B::shape_of(t));
    B::transform(ctx, m_coefficient, m_k, t);
    B::scale_sum_rows(ctx, out, m_coefficient, x);
  }

private:
  Coefficient m_k;
  typename B::tensor m_coefficient{};
};

/// f(x, t, s) = A(t, s) x for a coefficient functor A(t, s) (HD). With an average-velocity functor
/// a(t, s) also a flow_map_model: forward gives F = a(t, s) x.
template <backend B, class MapCoefficient, class AverageCoefficient = void>
class linear_flow_map {
public:
  explicit linear_flow_map(MapCoefficient a) : m_a(a) {}
  linear_flow_map(MapCoefficient a, AverageCoefficient average) : m_a(a), m_average(average) {}

  /// out = A(t, s) x. x, out: [B, D]; t, s: [B, 1].
  void map(typename B::context& ctx, const typename B::tensor& x, const typename B::tensor& t,
           const typename B::tensor& s, const condition<B>& /*cond*/, typename B::tensor& out) {
    scale_by(ctx, m_a, x, t, s, out);
  }

  /// out = F(x, t, s) = a(t, s) x (only with an average-velocity coefficient).
  void forward(typename B::context& ctx, const typename B::tensor& x, const typename B::tensor& t,
               const typename B::tensor& s, const condition<B>& /*cond*/, typename B::tensor& out)
    requires(!std::is_void_v<AverageCoefficient>)
  {
    scale_by(ctx, m_average, x, t, s, out);
  }

private:
  template <class K>
  void scale_by(typename B::context& ctx, const K& k, const typename B::tensor& x,
                const typename B::tensor& t, const typename B::tensor& s, typename B::tensor& out) {
    const std::size_t batch = B::shape_of(x).rows;
    require_vector("linear_flow_map", "t", batch, B::shape_of(t));
    require_vector("linear_flow_map", "s", batch, B::shape_of(s));
    B::transform(ctx, m_coefficient, k, t, s);
    B::scale_sum_rows(ctx, out, m_coefficient, x);
  }

  struct none {};
  MapCoefficient m_a;
  [[no_unique_address]] std::conditional_t<std::is_void_v<AverageCoefficient>, none, AverageCoefficient> m_average{};
  typename B::tensor m_coefficient{};
};

/// f(x, t) = a(t) x for a coefficient functor a(t) (HD).
template <backend B, class Coefficient>
class linear_consistency_model {
public:
  explicit linear_consistency_model(Coefficient a) : m_a(a) {}
  /// out = a(t) x. x, out: [B, D]; t: [B, 1].
  void denoise(typename B::context& ctx, const typename B::tensor& x, const typename B::tensor& t,
               const condition<B>& /*cond*/, typename B::tensor& out) {
    require_vector("linear_consistency_model", "t", B::shape_of(x).rows, B::shape_of(t));
    B::transform(ctx, m_coefficient, m_a, t);
    B::scale_sum_rows(ctx, out, m_coefficient, x);
  }

private:
  Coefficient m_a;
  typename B::tensor m_coefficient{};
};

// The Gaussian models of Theorem 3.1.

/// The optimal velocity v*(x, t) = k(t) x of data N(0, c^2 I).
template <backend B>
auto gaussian_optimal_velocity(double c) {
  return linear_velocity_field<B, gaussian::optimal_velocity>(gaussian::optimal_velocity{c});
}

/// The perturbed flow map A(t, s) x (delta = 0: the exact f*), also giving F = (1 - A) / (t - s) x.
template <backend B>
auto gaussian_perturbed_flow_map(double c, double delta) {
  return linear_flow_map<B, gaussian::perturbed_flow_map, gaussian::perturbed_average_velocity>(
      gaussian::perturbed_flow_map{c, delta}, gaussian::perturbed_average_velocity{c, delta});
}

/// The perturbed consistency model a(t) x of spec Eq. 7 (delta = 0: the optimal CM).
template <backend B>
auto gaussian_perturbed_consistency_model(double c, double delta) {
  return linear_consistency_model<B, gaussian::perturbed_consistency>(gaussian::perturbed_consistency{c, delta});
}

}  // namespace ayf
