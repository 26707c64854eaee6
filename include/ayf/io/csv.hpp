// ayf/io/csv.hpp: points as CSV (design.md §7): comma-separated numbers, an optional header line,
// an optional integer label column; corrupt input raises ayf::error naming the file, line and column.
// Writing goes through write_file_atomically and uses the shortest round-trip decimal form, so
// write + read reproduces every double bit for bit.
#pragma once

#include <charconv>
#include <cmath>
#include <cstddef>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <limits>
#include <optional>
#include <string>
#include <string_view>
#include <system_error>
#include <vector>

#include "ayf/core/error.hpp"
#include "ayf/data/toy2d.hpp"
#include "ayf/io/atomic_write.hpp"

namespace ayf::io {

struct csv_read_options {
  /// The column holding integer class labels, taken out of the values into points.labels: empty
  /// for none, a header name, or a 0-based column index written in digits ("2"). A header name
  /// wins over an index.
  std::string label_column;
  char delimiter = ',';
  /// Accept nan / inf values (read as NaN / infinities) instead of rejecting them.
  bool allow_non_finite = false;
};

namespace csv_detail {

inline std::string_view trim(std::string_view s) {
  const auto blank = [](char c) { return c == ' ' || c == '\t' || c == '\r'; };
  while (!s.empty() && blank(s.front())) s.remove_prefix(1);
  while (!s.empty() && blank(s.back())) s.remove_suffix(1);
  return s;
}

inline std::vector<std::string_view> split(std::string_view line, char delimiter) {
  std::vector<std::string_view> fields;
  std::size_t start = 0;
  while (true) {
    const std::size_t end = line.find(delimiter, start);
    fields.push_back(trim(line.substr(start, end == std::string_view::npos ? std::string_view::npos : end - start)));
    if (end == std::string_view::npos) return fields;
    start = end + 1;
  }
}

/// The double `field` spells (optionally with a leading '+'; "nan", "inf", "infinity" in any case
/// included), or nothing. With `out_of_range`, a number too large or too small for a double ("1e999")
/// sets it and gives nothing.
inline std::optional<double> parse_any_number(std::string_view field, bool* out_of_range = nullptr) {
  if (field.size() > 1 && field.front() == '+' && field[1] != '-' && field[1] != '+') field.remove_prefix(1);
  double value = 0;
  const auto [end, ec] = std::from_chars(field.data(), field.data() + field.size(), value);
  if (end != field.data() + field.size() || field.empty()) return std::nullopt;
  if (out_of_range != nullptr) *out_of_range = ec == std::errc::result_out_of_range;
  if (ec != std::errc()) return std::nullopt;
  return value;
}

/// Whether `field` spells a number (finite, nan, inf, or out of a double's range): a data field, not a name.
inline bool is_numeric(std::string_view field) {
  bool out_of_range = false;
  return parse_any_number(field, &out_of_range).has_value() || out_of_range;
}

/// The finite double `field` spells (optionally with a leading '+'), or nothing.
inline std::optional<double> parse_number(std::string_view field) {
  const auto value = parse_any_number(field);
  if (!value || !std::isfinite(*value)) return std::nullopt;
  return value;
}

inline std::optional<int> parse_label(std::string_view field) {
  if (field.size() > 1 && field.front() == '+' && field[1] != '-' && field[1] != '+') field.remove_prefix(1);
  int value = 0;
  const auto [end, ec] = std::from_chars(field.data(), field.data() + field.size(), value);
  if (ec != std::errc() || end != field.data() + field.size()) return std::nullopt;
  return value;
}

inline std::string_view unquote(std::string_view name) {
  if (name.size() >= 2 && name.front() == '"' && name.back() == '"') return name.substr(1, name.size() - 2);
  return name;
}

struct csv_line {
  std::size_t number;  // 1-based line number in the file
  std::string_view text;
};

}  // namespace csv_detail

/// Parses CSV `text` (named `source` in messages) into points: [rows, cols] values plus labels
/// when options.label_column is set. The first non-blank line is a header when one of its fields
/// is not a finite number; blank lines are skipped; every other line must have the header's (or
/// the first row's) field count; fields may be padded with spaces; "\r\n" line ends are accepted.
/// There is no quoting, except that header names may be enclosed in double quotes. A UTF-8 byte-order
/// mark at the start is skipped; "nan" and "inf" count as numbers when telling a header from a row, so a
/// headerless file whose first row holds them keeps that row (and rejects it unless allow_non_finite).
inline data::points parse_points_csv(std::string_view text, std::string_view source,
                                     const csv_read_options& options = {}) {
  constexpr std::string_view where = "read_points_csv";
  if (text.starts_with("\xEF\xBB\xBF")) text.remove_prefix(3);
  std::vector<csv_detail::csv_line> lines;
  for (std::size_t start = 0, number = 1; start < text.size(); ++number) {
    std::size_t end = text.find('\n', start);
    if (end == std::string_view::npos) end = text.size();
    const std::string_view line = text.substr(start, end - start);
    if (!csv_detail::trim(line).empty()) lines.push_back({number, line});
    start = end + 1;
  }
  if (lines.empty()) throw error(ayf::detail::concat(where, ": '", source, "' is empty (no header, no rows)"));

  std::vector<std::string_view> header;
  const std::vector<std::string_view> first = csv_detail::split(lines.front().text, options.delimiter);
  bool has_header = false;
  for (const auto field : first) has_header = has_header || !csv_detail::is_numeric(field);
  if (has_header) {
    for (const auto field : first) header.push_back(csv_detail::unquote(field));
  }
  const std::size_t columns = first.size();
  const std::size_t first_row = has_header ? 1 : 0;
  if (lines.size() == first_row) {
    throw error(ayf::detail::concat(where, ": '", source, "' has a header (line ", lines.front().number,
                                    ") but no data rows"));
  }

  std::optional<std::size_t> label_index;
  if (!options.label_column.empty()) {
    for (std::size_t c = 0; c < header.size() && !label_index; ++c) {
      if (header[c] == options.label_column) label_index = c;
    }
    if (!label_index) {
      std::size_t index = 0;
      const auto& name = options.label_column;
      const auto [end, ec] = std::from_chars(name.data(), name.data() + name.size(), index);
      if (ec != std::errc() || end != name.data() + name.size() || index >= columns) {
        std::string names;
        for (const auto h : header) names += (names.empty() ? "" : ", ") + std::string(h);
        throw_argument_error(where, "label_column",
                             ayf::detail::concat("a column of '", source, "': ",
                                                 header.empty() ? "" : "one of [" + names + "] or ",
                                                 "an index below ", columns),
                             ayf::detail::concat("'", name, "'"));
      }
      label_index = index;
    }
    if (columns < 2) {
      throw error(ayf::detail::concat(where, ": '", source, "' has ", columns,
                                      " column; the label column would leave no values"));
    }
  }

  data::points result;
  result.rows = lines.size() - first_row;
  result.cols = columns - (label_index ? 1 : 0);
  result.values.reserve(result.rows * result.cols);
  if (label_index) result.labels.reserve(result.rows);
  for (std::size_t r = first_row; r < lines.size(); ++r) {
    const auto& line = lines[r];
    const auto fields = csv_detail::split(line.text, options.delimiter);
    if (fields.size() != columns) {
      throw error(ayf::detail::concat(where, ": '", source, "' line ", line.number, ": expected ", columns,
                                      " columns (as line ", lines.front().number, "), received ", fields.size()));
    }
    for (std::size_t c = 0; c < columns; ++c) {
      if (label_index && c == *label_index) {
        const auto label = csv_detail::parse_label(fields[c]);
        if (!label) {
          throw error(ayf::detail::concat(where, ": '", source, "' line ", line.number, ", column ", c + 1,
                                          ": expected an integer label, received '", fields[c], "'"));
        }
        result.labels.push_back(*label);
      } else {
        const auto value = options.allow_non_finite ? csv_detail::parse_any_number(fields[c])
                                                    : csv_detail::parse_number(fields[c]);
        if (!value) {
          throw error(ayf::detail::concat(where, ": '", source, "' line ", line.number, ", column ", c + 1,
                                          ": expected a ", options.allow_non_finite ? "" : "finite ",
                                          "number, received '", fields[c], "'"));
        }
        result.values.push_back(*value);
      }
    }
  }
  return result;
}

/// Reads the CSV file at `path` (see parse_points_csv). Raises ayf::error naming the path when it
/// is missing, unreadable, empty or malformed (with line and 1-based column).
inline data::points read_points_csv(const std::filesystem::path& path, const csv_read_options& options = {}) {
  const std::string text = ayf::io::read_file(path, "read_points_csv");
  return parse_points_csv(text, path.string(), options);
}

/// The CSV text of `points` ([rows, cols] values, labels appended as the last column when present):
/// a header line (`header`, one name per written column, or "x0,x1,...[,label]" when empty), then
/// one line per row in the shortest decimal form that reads back to the same double.
inline std::string format_points_csv(const data::points& points, const std::vector<std::string>& header = {}) {
  constexpr std::string_view where = "write_points_csv";
  points.check(where);
  const std::size_t written = points.cols + (points.has_labels() ? 1 : 0);
  require(header.empty() || header.size() == written, where, "header",
          ayf::detail::message("0 or ", written, " names (cols", points.has_labels() ? " + label" : "", ")"),
          header.size());
  std::string out;
  for (std::size_t c = 0; c < written; ++c) {
    if (c) out += ',';
    if (!header.empty()) {
      require(header[c].find_first_of(",\n\r") == std::string::npos, where, "header",
              "names without ',' or line breaks", header[c]);
      out += header[c];
    } else if (c < points.cols) {
      out += 'x';
      out += std::to_string(c);
    } else {
      out += "label";
    }
  }
  out += '\n';
  char buffer[64];
  for (std::size_t r = 0; r < points.rows; ++r) {
    for (std::size_t c = 0; c < points.cols; ++c) {
      const double value = points.values[r * points.cols + c];
      require(std::isfinite(value), where, "points.values", "finite numbers",
              ayf::detail::message(value, " at row ", r, ", column ", c));
      const auto result = std::to_chars(buffer, buffer + sizeof buffer, value);
      if (c) out += ',';
      out.append(buffer, result.ptr);
    }
    if (points.has_labels()) {
      out += ',';
      out += std::to_string(points.labels[r]);
    }
    out += '\n';
  }
  return out;
}

/// Writes `points` as CSV (see format_points_csv) to `path` atomically.
inline void write_points_csv(const std::filesystem::path& path, const data::points& points,
                             const std::vector<std::string>& header = {}) {
  write_file_atomically(path, format_points_csv(points, header));
}

}  // namespace ayf::io
