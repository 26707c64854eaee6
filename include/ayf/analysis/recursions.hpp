// ayf/analysis/recursions.hpp: exact variance recursions of multistep sampling for linear models
// x -> A(t, s) x started from N(0, I) (spec §3.4, §3.6): gamma-sampling
// sigma_{n+1}^2 = ((1 - t_{n+1}) / (1 - s'))^2 A(t_n, s')^2 sigma_n^2 + gamma^2 t_{n+1}^2, whose gamma = 0 case is
// deterministic flow-map sampling (a product of A^2) and whose gamma = 1 case is the CM recursion (Eq. 8).
#pragma once

#include <cmath>

#include "ayf/paths/time_grid.hpp"
#include "ayf/samplers/flow_map.hpp"

namespace ayf {

/// Per-dimension variance of gamma-sampling with the flow map A(t, s) x on `grid`, from
/// `initial_variance` at grid.front(). `map_coefficient(t, s)` is evaluated in double.
template <class MapCoefficient>
double gamma_sampling_variance(const MapCoefficient& map_coefficient, const time_grid& grid,
                               double gamma, double initial_variance = 1.0) {
  double variance = initial_variance;
  for (std::size_t k = 0; k < grid.steps(); ++k) {
    const double t_next = grid[k + 1];
    const double s_prime = gamma_intermediate_time(t_next, gamma);
    const double a = (1 - t_next) / (1 - s_prime) * map_coefficient(grid[k], s_prime);
    variance = a * a * variance + gamma * gamma * t_next * t_next;
  }
  return variance;
}

/// Deterministic flow-map sampling: Sigma_N^2 = prod_k A(t_k, t_{k+1})^2 (spec §3.6).
template <class MapCoefficient>
double flow_map_sampling_variance(const MapCoefficient& map_coefficient, const time_grid& grid,
                                  double initial_variance = 1.0) {
  return gamma_sampling_variance(map_coefficient, grid, 0.0, initial_variance);
}

/// Multistep CM sampling with f(x, t) = a(t) x: Eq. 8, sigma_s^2 = (1 - s)^2 a(t)^2 sigma_t^2 + s^2,
/// and the output variance a(t_1)^2 sigma_{t_1}^2 (spec §3.4).
template <class ConsistencyCoefficient>
double consistency_sampling_variance(const ConsistencyCoefficient& consistency_coefficient,
                                     const time_grid& grid, double initial_variance = 1.0) {
  return gamma_sampling_variance([&](double t, double /*s*/) { return consistency_coefficient(t); },
                                 grid, 1.0, initial_variance);
}

/// W2 between N(0, c^2 I_d) and N(0, sigma^2 I_d): sqrt(d) |c - sigma| (spec Eq. 9).
inline double w2_isotropic(double c, double sigma, std::size_t dims) {
  require(c >= 0, "w2_isotropic", "c", "a standard deviation >= 0", c);
  require(sigma >= 0, "w2_isotropic", "sigma", "a standard deviation >= 0", sigma);
  return std::sqrt(static_cast<double>(dims)) * std::abs(c - sigma);
}

}  // namespace ayf
