// ayf/paths/time_grid.hpp: sampling time grids t_0 > t_1 > ... > t_N in [0, 1] (spec §9):
// uniform t_k = k / N (§9.1), a user list, and EDM's Karras sigma grid converted by t = sigma / (1 + sigma) (§9.4).
#pragma once

#include <cmath>
#include <cstddef>
#include <vector>

#include "ayf/core/error.hpp"
#include "ayf/paths/interpolant.hpp"

namespace ayf {

/// A strictly decreasing list of at least two times in [0, 1]; samplers step from front() to back().
class time_grid {
public:
  /// Validates `times`: at least two entries, each in [0, 1], strictly decreasing.
  explicit time_grid(std::vector<double> times) : m_times(std::move(times)) {
    require(m_times.size() >= 2, "time_grid", "times", "at least 2 grid points", m_times.size());
    for (std::size_t k = 0; k < m_times.size(); ++k) {
      const double t = m_times[k];
      if (!(t >= 0 && t <= 1)) {
        throw_argument_error("time_grid", "times", "every time in [0, 1]",
                             detail::concat(t, " at index ", k));
      }
      if (k > 0 && !(t < m_times[k - 1])) {
        throw_argument_error("time_grid", "times", "strictly decreasing times",
                             detail::concat(m_times[k - 1], " followed by ", t, " at index ", k));
      }
    }
  }

  /// t_k = t_max - (t_max - t_min) k / steps, k = 0..steps (spec §9.1 with t_max = 1, t_min = 0).
  static time_grid uniform(std::size_t steps, double t_max = 1.0, double t_min = 0.0) {
    require(steps >= 1, "time_grid::uniform", "steps", "at least 1 step", steps);
    std::vector<double> t(steps + 1);
    for (std::size_t k = 0; k <= steps; ++k) {
      t[k] = k == steps ? t_min : t_max - (t_max - t_min) * static_cast<double>(k) / static_cast<double>(steps);
    }
    return time_grid(std::move(t));
  }

  /// EDM's grid sigma_i = (sigma_max^(1/rho) + i/(n-1) (sigma_min^(1/rho) - sigma_max^(1/rho)))^rho,
  /// i = 0..n-1, mapped to t = sigma / (1 + sigma), followed by t = 0 when `append_zero`.
  static time_grid karras(std::size_t points, double sigma_min = 0.002, double sigma_max = 80.0,
                          double rho = 7.0, bool append_zero = true) {
    require(points >= 2, "time_grid::karras", "points", "at least 2 points", points);
    require(sigma_min > 0 && sigma_min < sigma_max, "time_grid::karras", "sigma_min",
            "0 < sigma_min < sigma_max", sigma_min);
    require(rho > 0, "time_grid::karras", "rho", "rho > 0", rho);
    std::vector<double> t;
    const double a = std::pow(sigma_max, 1 / rho), b = std::pow(sigma_min, 1 / rho);
    for (std::size_t i = 0; i < points; ++i) {
      const double sigma = std::pow(a + static_cast<double>(i) / static_cast<double>(points - 1) * (b - a), rho);
      t.push_back(time_from_sigma(sigma));
    }
    if (append_zero) t.push_back(0.0);
    return time_grid(std::move(t));
  }

  [[nodiscard]] std::size_t steps() const { return m_times.size() - 1; }
  [[nodiscard]] double operator[](std::size_t k) const { return m_times[k]; }
  [[nodiscard]] double front() const { return m_times.front(); }
  [[nodiscard]] double back() const { return m_times.back(); }
  [[nodiscard]] const std::vector<double>& times() const { return m_times; }

private:
  std::vector<double> m_times;
};

}  // namespace ayf
