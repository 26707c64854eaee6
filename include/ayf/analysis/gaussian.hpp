// ayf/analysis/gaussian.hpp: closed forms for Gaussian data N(0, c^2 I) (spec §3.2): the marginal
// variance S(t) = (1-t)^2 c^2 + t^2, the optimal velocity k(t) x, flow map sqrt(S(s)/S(t)) x,
// average velocity, and consistency model c x / sqrt(S(t)); the perturbed CM a(t) = (c + delta t) / sqrt(S(t))
// (Eq. 7) and the perturbed flow map A(t, s) = sqrt(S(s)/S(t)) (1 + delta (t - s)) (spec §3.6).
#pragma once

#include <cmath>

#include "ayf/config.hpp"
#include "ayf/core/dual.hpp"

namespace ayf::gaussian {

/// S(t) = (1 - t)^2 c^2 + t^2, the variance of p_t per dimension.
template <class T>
AYF_HOST_DEVICE T marginal_variance(T t, double c) {
  const T one_minus = T(1) - t;
  return one_minus * one_minus * T(c * c) + t * t;
}

/// k(t) = (t - c^2 (1 - t)) / S(t): the optimal velocity is v*(x, t) = k(t) x.
template <class T>
AYF_HOST_DEVICE T velocity_coefficient(T t, double c) {
  return (t - T(c * c) * (T(1) - t)) / marginal_variance(t, c);
}

/// sqrt(S(s) / S(t)): the optimal flow map is f*(x, t, s) = sqrt(S(s)/S(t)) x.
template <class T>
AYF_HOST_DEVICE T flow_map_coefficient(T t, T s, double c) {
  using std::sqrt;
  return sqrt(marginal_variance(s, c) / marginal_variance(t, c));
}

/// (1 - sqrt(S(s)/S(t))) / (t - s): the optimal average velocity F*(x, t, s), written without the
/// cancellation as ((1 + c^2)(t + s) - 2 c^2) / (S(t) (1 + sqrt(S(s)/S(t)))); equals k(t) at s = t.
template <class T>
AYF_HOST_DEVICE T average_velocity_coefficient(T t, T s, double c) {
  const T numerator = T(1 + c * c) * (t + s) - T(2 * c * c);
  return numerator / (marginal_variance(t, c) * (T(1) + flow_map_coefficient(t, s, c)));
}

/// c / sqrt(S(t)): the optimal consistency model f*(x, t) = c x / sqrt(S(t)).
template <class T>
AYF_HOST_DEVICE T consistency_coefficient(T t, double c) {
  using std::sqrt;
  return T(c) / sqrt(marginal_variance(t, c));
}

/// a(t) = (c + delta t) / sqrt(S(t)) (spec Eq. 7); a(0) = 1; delta = 0 is the optimal CM.
template <class T>
AYF_HOST_DEVICE T perturbed_consistency_coefficient(T t, double c, double delta) {
  using std::sqrt;
  return (T(c) + T(delta) * t) / sqrt(marginal_variance(t, c));
}

/// A(t, s) = sqrt(S(s)/S(t)) (1 + delta (t - s)); A(t, t) = 1; delta = 0 is the optimal flow map.
template <class T>
AYF_HOST_DEVICE T perturbed_flow_map_coefficient(T t, T s, double c, double delta) {
  return flow_map_coefficient(t, s, c) * (T(1) + T(delta) * (t - s));
}

// Coefficient functors (HD, trivially copyable) for the linear models of gaussian_models.hpp.

/// t -> k(t).
struct optimal_velocity {
  double c = 0.5;
  template <class T>
  AYF_HOST_DEVICE T operator()(T t) const { return velocity_coefficient(t, c); }
};

/// (t, s) -> A(t, s) of the perturbed flow map; delta = 0 gives the exact one.
struct perturbed_flow_map {
  double c = 0.5;
  double delta = 0.0;
  template <class T>
  AYF_HOST_DEVICE T operator()(T t, T s) const { return perturbed_flow_map_coefficient(t, s, c, delta); }
};

/// (t, s) -> the average velocity of the perturbed flow map, (1 - A(t, s)) / (t - s)
/// = F*(t, s) - delta sqrt(S(s)/S(t)); k(t) - delta at s = t.
struct perturbed_average_velocity {
  double c = 0.5;
  double delta = 0.0;
  template <class T>
  AYF_HOST_DEVICE T operator()(T t, T s) const {
    return average_velocity_coefficient(t, s, c) - T(delta) * flow_map_coefficient(t, s, c);
  }
};

/// t -> a(t) of the perturbed consistency model; delta = 0 gives the optimal CM.
struct perturbed_consistency {
  double c = 0.5;
  double delta = 0.0;
  template <class T>
  AYF_HOST_DEVICE T operator()(T t) const { return perturbed_consistency_coefficient(t, c, delta); }
};

}  // namespace ayf::gaussian
