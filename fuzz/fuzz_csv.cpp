// fuzz/fuzz_csv.cpp: ayf::io::parse_points_csv on arbitrary text, with each of csv_options()
// (no label column, a label column by name and by index, ';' as delimiter). Corrupt input must raise ayf::error; parsed points
// must be consistent (rows * cols finite values, one label per row) and survive a write
// (format_points_csv) + read round trip bit for bit.
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string>

#include "ayf/core/error.hpp"
#include "ayf/io/csv.hpp"
#include "csv_options.hpp"
#include "fuzz_support.hpp"

namespace {

void parse_and_check(std::string_view text, const ayf::io::csv_read_options& options) {
  ayf::data::points points;
  try {
    points = ayf::io::parse_points_csv(text, "fuzz.csv", options);
  } catch (const ayf::error&) {
    return;
  }
  ayf_fuzz::check(points.rows > 0 && points.cols > 0, "csv: at least one row and one column");
  ayf_fuzz::check(points.values.size() == points.rows * points.cols, "csv: rows * cols values");
  ayf_fuzz::check(options.label_column.empty() ? points.labels.empty() : points.labels.size() == points.rows,
                  "csv: one label per row exactly when a label column is asked for");
  for (const double v : points.values) ayf_fuzz::check(std::isfinite(v), "csv: values are finite");

  const std::string written = ayf::io::format_points_csv(points);
  ayf::io::csv_read_options back;
  if (points.has_labels()) back.label_column = "label";
  const ayf::data::points again = ayf::io::parse_points_csv(written, "round trip", back);
  ayf_fuzz::check(again.rows == points.rows && again.cols == points.cols, "csv: round trip keeps the shape");
  ayf_fuzz::check(again.labels == points.labels, "csv: round trip keeps the labels");
  ayf_fuzz::check(again.values.size() == points.values.size() &&
                      std::memcmp(again.values.data(), points.values.data(), points.values.size() * sizeof(double)) == 0,
                  "csv: round trip keeps every value bit for bit");
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view text = ayf_fuzz::bytes(data, size);
  for (const auto& options : ayf_fuzz::csv_options()) parse_and_check(text, options);
  return 0;
}
