// ayf_cli/options.hpp: the one way the example programs declare their command-line options (CLI11),
// check their output directory and start external programs.
//
// Every option parses its own text strictly: counts are unsigned integers in a closed range (so
// "-1" is an error, never SIZE_MAX), numbers are finite and in an interval, lists are non-empty
// and bounded, choices come from a fixed set. A bad value raises CLI::ValidationError
// "--name: expected <what>, received '<text>'", which CLI11_PARSE prints before exiting non-zero.
#pragma once

#include <CLI/CLI.hpp>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cmath>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <limits>
#include <string>
#include <string_view>
#include <system_error>
#include <type_traits>
#include <vector>

#include <spawn.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include "ayf/core/error.hpp"

extern char** environ;

namespace ayf_cli {

/// Raises the option error "<option>: expected <expected>, received '<received>'".
[[noreturn]] inline void reject(std::string_view option, std::string_view expected, std::string_view received) {
  throw CLI::ValidationError(std::string(option),
                             ayf::detail::concat("expected ", expected, ", received '", received, "'"));
}

/// The shortest text that reads back as `x` ("0.001", "1e+06").
inline std::string number_text(double x) {
  char buffer[64];
  const auto result = std::to_chars(buffer, buffer + sizeof buffer, x);
  return std::string(buffer, result.ptr);
}

/// A range of finite doubles; an open end excludes its bound.
struct interval {
  double lo = -std::numeric_limits<double>::max();
  double hi = std::numeric_limits<double>::max();
  bool lo_open = false;
  bool hi_open = false;

  [[nodiscard]] bool contains(double x) const {
    return std::isfinite(x) && (lo_open ? x > lo : x >= lo) && (hi_open ? x < hi : x <= hi);
  }
  /// "a finite number in (0, 1]".
  [[nodiscard]] std::string describe() const {
    return ayf::detail::concat("a finite number in ", lo_open ? "(" : "[", number_text(lo), ", ", number_text(hi),
                               hi_open ? ")" : "]");
  }
};

namespace detail {

inline std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

/// Splits every result at ','; empty items are kept (and rejected by the parsers).
inline std::vector<std::string> items(const CLI::results_t& results) {
  std::vector<std::string> out;
  for (const auto& r : results) {
    std::size_t start = 0;
    while (true) {
      const std::size_t end = r.find(',', start);
      out.emplace_back(trim(std::string_view(r).substr(start, end == std::string::npos ? std::string::npos : end - start)));
      if (end == std::string::npos) break;
      start = end + 1;
    }
  }
  return out;
}

inline std::string join(const std::vector<std::string>& names) {
  std::string out;
  for (const auto& n : names) out += (out.empty() ? "" : ", ") + n;
  return out;
}

template <class T>
std::string count_range(T min, T max) {
  return ayf::detail::concat("an integer in [", min, ", ", max, "]");
}

inline std::string list_size(std::size_t min_items, std::size_t max_items) {
  return min_items == max_items ? ayf::detail::concat(min_items)
                                : ayf::detail::concat(min_items, " to ", max_items);
}

}  // namespace detail

/// The unsigned integer `text` spells (digits only, optional surrounding blanks) when it lies in
/// [min, max]; otherwise the option error naming `option` and the text.
template <class T>
T parse_count(std::string_view option, std::string_view text, T min, T max) {
  static_assert(std::is_integral_v<T> && std::is_unsigned_v<T>);
  const std::string_view t = detail::trim(text);
  const bool digits = !t.empty() && std::all_of(t.begin(), t.end(), [](char c) { return c >= '0' && c <= '9'; });
  T value = 0;
  if (digits) {
    const auto [end, ec] = std::from_chars(t.data(), t.data() + t.size(), value);
    if (ec == std::errc() && end == t.data() + t.size() && value >= min && value <= max) return value;
  }
  reject(option, detail::count_range(min, max), text);
}

/// The finite double `text` spells when `range` contains it; otherwise the option error.
inline double parse_number(std::string_view option, std::string_view text, const interval& range) {
  std::string_view t = detail::trim(text);
  if (t.size() > 1 && t.front() == '+' && t[1] != '-' && t[1] != '+') t.remove_prefix(1);
  double value = 0;
  const auto [end, ec] = std::from_chars(t.data(), t.data() + t.size(), value);
  if (t.empty() || ec != std::errc() || end != t.data() + t.size() || !range.contains(value)) {
    reject(option, range.describe(), text);
  }
  return value;
}

/// The items of a comma- (or blank-) separated list: between min_items and max_items of them,
/// none empty; otherwise the option error.
inline std::vector<std::string> parse_list(std::string_view option, const CLI::results_t& results,
                                           std::size_t min_items, std::size_t max_items, std::string_view what) {
  std::vector<std::string> list = detail::items(results);
  std::string received;
  for (const auto& r : results) received += (received.empty() ? "" : " ") + r;
  const bool empty_item = std::any_of(list.begin(), list.end(), [](const std::string& s) { return s.empty(); });
  if (empty_item || list.size() < min_items || list.size() > max_items) {
    reject(option, ayf::detail::concat("a comma-separated list of ", detail::list_size(min_items, max_items), " ", what,
                                       empty_item ? " (no empty items)" : ""),
           received);
  }
  return list;
}

namespace detail {

template <class Parse>
CLI::Option* add(CLI::App& app, const std::string& name, const std::string& help, std::string default_text,
                 std::string type, Parse parse) {
  CLI::Option* opt = app.add_option(
      name,
      [name, parse](const CLI::results_t& results) {
        parse(name, results);
        return true;
      },
      help);
  opt->type_name(std::move(type));
  if (!default_text.empty()) opt->default_str(std::move(default_text));
  return opt;
}

inline std::string text_of(double x) { return number_text(x); }
inline std::string text_of(const std::string& x) { return x; }
template <class T>
std::string text_of(T x) {
  return std::to_string(x);
}

template <class T>
std::string list_text(const std::vector<T>& values) {
  std::string out;
  for (std::size_t i = 0; i < values.size(); ++i) {
    if (i) out += ',';
    out += text_of(values[i]);
  }
  return out;
}

}  // namespace detail

/// An unsigned count in [min, max].
template <class T>
CLI::Option* add_count(CLI::App& app, const std::string& name, T& value, const std::string& help, T min, T max) {
  return detail::add(app, name, ayf::detail::concat(help, " (", detail::count_range(min, max), ")"),
                     ayf::detail::concat(value), "UINT", [&value, min, max](const std::string& n, const CLI::results_t& r) {
                       value = parse_count<T>(n, r.empty() ? std::string() : r.back(), min, max);
                     });
}

/// A finite number in `range`.
inline CLI::Option* add_number(CLI::App& app, const std::string& name, double& value, const std::string& help,
                               const interval& range) {
  return detail::add(app, name, ayf::detail::concat(help, " (", range.describe(), ")"), number_text(value),
                     "FLOAT", [&value, range](const std::string& n, const CLI::results_t& r) {
                       value = parse_number(n, r.empty() ? std::string() : r.back(), range);
                     });
}

/// A list of 1..max_items counts, each in [min, max].
template <class T>
CLI::Option* add_count_list(CLI::App& app, const std::string& name, std::vector<T>& values, const std::string& help,
                            T min, T max, std::size_t max_items) {
  const std::string what = ayf::detail::concat("integers in [", min, ", ", max, "]");
  return detail::add(app, name, ayf::detail::concat(help, " (", detail::list_size(1, max_items), " ", what, ")"),
                     detail::list_text(values), "UINT,...",
                     [&values, min, max, max_items, what](const std::string& n, const CLI::results_t& r) {
                       std::vector<T> parsed;
                       for (const auto& item : parse_list(n, r, 1, max_items, what)) {
                         parsed.push_back(parse_count<T>(n, item, min, max));
                       }
                       values = std::move(parsed);
                     })
      ->expected(1, -1)
      ->allow_extra_args(true);
}

/// A list of min_items..max_items numbers, each in `range`.
inline CLI::Option* add_number_list(CLI::App& app, const std::string& name, std::vector<double>& values,
                                    const std::string& help, const interval& range, std::size_t min_items,
                                    std::size_t max_items) {
  std::string what = range.describe();
  what.replace(0, std::string_view("a finite number").size(), "finite numbers");
  return detail::add(app, name, ayf::detail::concat(help, " (", detail::list_size(min_items, max_items), " ", what, ")"),
                     detail::list_text(values), min_items == 2 && max_items == 2 ? "FLOAT FLOAT" : "FLOAT,...",
                     [&values, range, min_items, max_items, what](const std::string& n, const CLI::results_t& r) {
                       std::vector<double> parsed;
                       for (const auto& item : parse_list(n, r, min_items, max_items, what)) {
                         parsed.push_back(parse_number(n, item, range));
                       }
                       values = std::move(parsed);
                     })
      ->expected(1, -1)
      ->allow_extra_args(true);
}

/// One of `choices`.
inline CLI::Option* add_choice(CLI::App& app, const std::string& name, std::string& value, const std::string& help,
                               const std::vector<std::string>& choices) {
  const std::string what = "one of " + detail::join(choices);
  return detail::add(app, name, ayf::detail::concat(help, " (", what, ")"), value, "TEXT",
                     [&value, choices, what](const std::string& n, const CLI::results_t& r) {
                       const std::string v = r.empty() ? std::string() : r.back();
                       if (std::find(choices.begin(), choices.end(), v) == choices.end()) reject(n, what, v);
                       value = v;
                     });
}

/// A non-empty list of distinct items of `choices` (order kept).
inline CLI::Option* add_choice_list(CLI::App& app, const std::string& name, std::vector<std::string>& values,
                                    const std::string& help, const std::vector<std::string>& choices) {
  const std::string what = "a comma-separated subset of " + detail::join(choices);
  return detail::add(app, name, ayf::detail::concat(help, " (", what, ")"), detail::list_text(values), "TEXT,...",
                     [&values, choices, what](const std::string& n, const CLI::results_t& r) {
                       std::vector<std::string> parsed;
                       for (const auto& item : parse_list(n, r, 1, choices.size(), "distinct names")) {
                         if (std::find(choices.begin(), choices.end(), item) == choices.end() ||
                             std::find(parsed.begin(), parsed.end(), item) != parsed.end()) {
                           reject(n, what + " (each once)", item);
                         }
                         parsed.push_back(item);
                       }
                       values = std::move(parsed);
                     })
      ->expected(1, -1)
      ->allow_extra_args(true);
}

/// A non-empty text (a path or a name) of at most 4096 characters.
inline CLI::Option* add_text(CLI::App& app, const std::string& name, std::string& value, const std::string& help) {
  return detail::add(app, name, help, value, "TEXT", [&value](const std::string& n, const CLI::results_t& r) {
    const std::string v = r.empty() ? std::string() : r.back();
    if (v.empty() || v.size() > 4096 || v.find('\0') != std::string::npos) {
      reject(n, "a non-empty text of at most 4096 characters", v);
    }
    value = v;
  });
}

/// Creates `dir` (with its parents) and checks that a file can be created in it, before any work.
/// Raises ayf::error naming `option`, the directory and the reason.
inline void prepare_output_directory(std::string_view option, const std::filesystem::path& dir) {
  namespace fs = std::filesystem;
  const auto fail = [&](std::string_view why) {
    throw ayf::error(ayf::detail::concat(option, ": expected a writable directory, received '", dir.string(), "' (", why,
                                         ")"));
  };
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec) fail(ec.message());
  if (!fs::is_directory(dir, ec)) fail("not a directory");
  const fs::path probe = dir / ayf::detail::concat(".ayf_write_check_", ::getpid());
  {
    std::ofstream out(probe, std::ios::binary | std::ios::trunc);
    if (!(out << "ok") || !out.flush()) {
      fs::remove(probe, ec);
      fail("cannot create a file in it");
    }
  }
  fs::remove(probe, ec);
}

/// How an external program ended: `started` false when it could not be run (then `error` says
/// why, e.g. not found); otherwise its exit status, or the signal that ended it.
struct process_result {
  bool started = false;
  int exit_status = -1;
  int signal = 0;
  std::string error;
  [[nodiscard]] bool succeeded() const { return started && signal == 0 && exit_status == 0; }
};

/// Runs `argv[0]` (looked up in PATH) with the arguments `argv`, without a shell (posix_spawnp),
/// and waits for it. Arguments are passed as they are: nothing in them is interpreted.
inline process_result run_process(const std::vector<std::string>& argv) {
  process_result result;
  if (argv.empty()) {
    result.error = "no program given";
    return result;
  }
  std::vector<std::string> storage(argv);
  std::vector<char*> args;
  for (auto& a : storage) args.push_back(a.data());
  args.push_back(nullptr);
  pid_t pid = 0;
  const int rc = ::posix_spawnp(&pid, args[0], nullptr, nullptr, args.data(), environ);
  if (rc != 0) {
    result.error = std::error_code(rc, std::generic_category()).message();
    return result;
  }
  result.started = true;
  int status = 0;
  pid_t waited = 0;
  do {
    waited = ::waitpid(pid, &status, 0);
  } while (waited == -1 && errno == EINTR);
  if (waited == -1) {
    result.error = std::error_code(errno, std::generic_category()).message();
    return result;
  }
  if (WIFEXITED(status)) {
    result.exit_status = WEXITSTATUS(status);
    // posix_spawnp may report a failed exec as the child's exit status 127.
    if (result.exit_status == 127) result.error = "exit status 127 (not found or not executable)";
  } else if (WIFSIGNALED(status)) {
    result.signal = WTERMSIG(status);
  }
  return result;
}

}  // namespace ayf_cli
