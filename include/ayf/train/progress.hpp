// ayf/train/progress.hpp: a progress reporter for training loops (design.md §7): every `every` steps
// (and at the last) it prints
//   <label> step 1200/4000  loss 0.8123  |g| 1.234  312.4 steps/s  ETA 9s
// with the loss and gradient norm averaged over the steps since the previous line.
#pragma once

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <iostream>
#include <ostream>
#include <string>
#include <utility>

namespace ayf::train {

/// "9s", "2m05s", "1h02m".
inline std::string format_duration(double seconds) {
  if (!(seconds >= 0)) seconds = 0;
  const auto s = static_cast<std::uint64_t>(seconds + 0.5);
  char buffer[32];
  if (s < 60) std::snprintf(buffer, sizeof buffer, "%llus", static_cast<unsigned long long>(s));
  else if (s < 3600) std::snprintf(buffer, sizeof buffer, "%llum%02llus", static_cast<unsigned long long>(s / 60), static_cast<unsigned long long>(s % 60));
  else std::snprintf(buffer, sizeof buffer, "%lluh%02llum", static_cast<unsigned long long>(s / 3600), static_cast<unsigned long long>((s % 3600) / 60));
  return buffer;
}

class progress {
public:
  using clock = std::chrono::steady_clock;

  /// Steps run from `first_step` (exclusive; a resumed run's start) to `total`; a line every
  /// `every` steps (0: only the last).
  progress(std::string label, std::uint64_t total, std::uint64_t every, std::ostream& os = std::cerr,
           std::uint64_t first_step = 0)
      : m_label(std::move(label)), m_total(total), m_every(every), m_os(&os), m_first(first_step),
        m_last_step(first_step), m_start(clock::now()), m_last_time(m_start) {}

  /// Records step `step` (1-based) with its loss and tangent norm |g| (spec §4.4); prints when due.
  void update(std::uint64_t step, double loss, double tangent_norm) {
    m_loss += loss;
    m_norm += tangent_norm;
    ++m_count;
    if ((m_every != 0 && step % m_every == 0) || step == m_total) print(step);
  }

  /// The line of `step` (without printing).
  [[nodiscard]] std::string line(std::uint64_t step, double loss, double tangent_norm, double rate) const {
    const double eta = rate > 0 ? static_cast<double>(m_total > step ? m_total - step : 0) / rate : 0.0;
    char buffer[256];
    std::snprintf(buffer, sizeof buffer, "%s%sstep %llu/%llu  loss %.4f  |g| %.3f  %.1f steps/s  ETA %s",
                  m_label.c_str(), m_label.empty() ? "" : " ", static_cast<unsigned long long>(step),
                  static_cast<unsigned long long>(m_total), loss, tangent_norm, rate, format_duration(eta).c_str());
    return buffer;
  }

  /// Seconds since construction.
  [[nodiscard]] double elapsed() const { return std::chrono::duration<double>(clock::now() - m_start).count(); }

private:
  void print(std::uint64_t step) {
    const auto now = clock::now();
    const double since_start = std::chrono::duration<double>(now - m_start).count();
    const double rate = since_start > 0 ? static_cast<double>(step - m_first) / since_start : 0.0;
    const double n = m_count > 0 ? static_cast<double>(m_count) : 1.0;
    *m_os << line(step, m_loss / n, m_norm / n, rate) << '\n' << std::flush;
    m_loss = m_norm = 0;
    m_count = 0;
    m_last_step = step;
    m_last_time = now;
  }

  std::string m_label;
  std::uint64_t m_total, m_every;
  std::ostream* m_os;
  std::uint64_t m_first, m_last_step;
  clock::time_point m_start, m_last_time;
  double m_loss = 0, m_norm = 0;
  std::uint64_t m_count = 0;
};

}  // namespace ayf::train
