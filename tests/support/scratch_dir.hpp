// tests/support/scratch_dir.hpp: a fresh directory under the system temporary directory for one test,
// removed with its contents at scope exit.
#pragma once

#include <atomic>
#include <chrono>
#include <filesystem>
#include <random>
#include <string>
#include <string_view>
#include <system_error>

namespace ayf_test {

class scratch_dir {
public:
  /// A new directory named `<prefix>_<clock ticks>_<random>_<counter>`.
  explicit scratch_dir(std::string_view prefix = "ayf_test") {
    static std::atomic<unsigned> counter{0};
    const auto ticks = std::chrono::steady_clock::now().time_since_epoch().count();
    m_path = std::filesystem::temp_directory_path() /
             (std::string(prefix) + "_" + std::to_string(ticks) + "_" + std::to_string(std::random_device{}()) +
              "_" + std::to_string(counter++));
    std::filesystem::create_directories(m_path);
  }
  ~scratch_dir() {
    std::error_code ec;
    std::filesystem::remove_all(m_path, ec);
  }
  scratch_dir(const scratch_dir&) = delete;
  scratch_dir& operator=(const scratch_dir&) = delete;
  [[nodiscard]] std::filesystem::path operator/(std::string_view name) const { return m_path / name; }
  [[nodiscard]] const std::filesystem::path& path() const { return m_path; }

private:
  std::filesystem::path m_path;
};

}  // namespace ayf_test
