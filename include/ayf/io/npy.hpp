// ayf/io/npy.hpp: NumPy .npy files (the NEP 1 / numpy.lib.format layout): read format versions 1.0,
// 2.0 and 3.0 and write 1.0; dtypes '<f4', '<f8', '<i4', '<i8' (and '|u1' on read); C order; 1-D or
// 2-D (up to a caller's max_rank on read, e.g. 4 for images). Corrupt input (bad magic, truncation, a
// malformed header dict, a data length that does not match the shape) raises ayf::error naming the
// file; nothing is read out of bounds.
#pragma once

#include <bit>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <limits>
#include <optional>
#include <string>
#include <string_view>
#include <system_error>
#include <type_traits>
#include <utility>
#include <vector>

#include "ayf/core/error.hpp"
#include "ayf/data/toy2d.hpp"
#include "ayf/io/atomic_write.hpp"

namespace ayf::io {

static_assert(std::endian::native == std::endian::little, "ayf/io/npy.hpp assumes a little-endian host");

/// The element types handled: '<f4', '<f8', '<i4', '<i8', '|u1'.
enum class npy_dtype { f4, f8, i4, i8, u1 };

/// One array: `data` holds shape[0] * ... elements of `dtype`, little-endian, C order.
struct npy_array {
  npy_dtype dtype = npy_dtype::f8;
  std::vector<std::size_t> shape;
  std::vector<std::uint8_t> data;

  [[nodiscard]] std::size_t size() const {
    std::size_t n = 1;
    for (const auto extent : shape) n *= extent;
    return n;
  }
  /// The elements converted to double / int64 (an integer array's values exactly; a float array
  /// converts to int64 only when every value is integral, else ayf::error).
  [[nodiscard]] std::vector<double> to_doubles() const;
  [[nodiscard]] std::vector<std::int64_t> to_int64() const;
};

namespace npy_detail {

inline constexpr std::string_view magic{"\x93NUMPY", 6};

inline std::size_t item_size(npy_dtype dtype) {
  switch (dtype) {
    case npy_dtype::f4: case npy_dtype::i4: return 4;
    case npy_dtype::f8: case npy_dtype::i8: return 8;
    case npy_dtype::u1: return 1;
  }
  return 0;
}

inline std::string_view descr(npy_dtype dtype) {
  switch (dtype) {
    case npy_dtype::f4: return "<f4";
    case npy_dtype::f8: return "<f8";
    case npy_dtype::i4: return "<i4";
    case npy_dtype::i8: return "<i8";
    case npy_dtype::u1: return "|u1";
  }
  return "?";
}

template <class T>
constexpr npy_dtype dtype_of() {
  if constexpr (std::is_same_v<T, float>) return npy_dtype::f4;
  else if constexpr (std::is_same_v<T, double>) return npy_dtype::f8;
  else if constexpr (std::is_same_v<T, std::int32_t>) return npy_dtype::i4;
  else if constexpr (std::is_same_v<T, std::int64_t>) return npy_dtype::i8;
  else if constexpr (std::is_same_v<T, std::uint8_t>) return npy_dtype::u1;
  else static_assert(sizeof(T) == 0, "npy: element type must be float, double, int32_t, int64_t or uint8_t");
}

template <class T>
T load(const std::uint8_t* p) {
  T value;
  std::memcpy(&value, p, sizeof(T));
  return value;
}

/// Raises ayf::error("<where>: '<source>': <parts>").
template <class... Parts>
[[noreturn]] void corrupt(std::string_view where, std::string_view source, const Parts&... parts) {
  throw error(ayf::detail::concat(where, ": '", source, "': ", parts...));
}

/// A cursor over the header dict, a Python literal such as
/// {'descr': '<f8', 'fortran_order': False, 'shape': (3, 2), }
class header_parser {
public:
  header_parser(std::string_view text, std::string_view source) : m_text(text), m_source(source) {}

  [[noreturn]] void fail(std::string_view what) const {
    throw error(ayf::detail::concat("read_npy: '", m_source, "': malformed header dict at character ", m_pos,
                                    ": ", what, " (header: ", m_text, ")"));
  }
  void skip_space() {
    while (m_pos < m_text.size() && (m_text[m_pos] == ' ' || m_text[m_pos] == '\t' || m_text[m_pos] == '\n' ||
                                     m_text[m_pos] == '\r')) {
      ++m_pos;
    }
  }
  bool accept(char c) {
    skip_space();
    if (m_pos < m_text.size() && m_text[m_pos] == c) {
      ++m_pos;
      return true;
    }
    return false;
  }
  void expect(char c) {
    if (!accept(c)) fail(ayf::detail::concat("expected '", c, "'"));
  }
  std::string string_literal() {
    skip_space();
    if (m_pos >= m_text.size() || (m_text[m_pos] != '\'' && m_text[m_pos] != '"')) fail("expected a quoted string");
    const char quote = m_text[m_pos++];
    const std::size_t end = m_text.find(quote, m_pos);
    if (end == std::string_view::npos) fail("unterminated string");
    std::string value(m_text.substr(m_pos, end - m_pos));
    m_pos = end + 1;
    return value;
  }
  bool boolean() {
    skip_space();
    if (m_text.substr(m_pos, 4) == "True") {
      m_pos += 4;
      return true;
    }
    if (m_text.substr(m_pos, 5) == "False") {
      m_pos += 5;
      return false;
    }
    fail("expected True or False");
  }
  std::size_t integer() {
    skip_space();
    std::size_t value = 0, digits = 0;
    while (m_pos < m_text.size() && m_text[m_pos] >= '0' && m_text[m_pos] <= '9') {
      const auto digit = static_cast<std::size_t>(m_text[m_pos] - '0');
      if (value > (std::numeric_limits<std::size_t>::max() - digit) / 10) fail("shape extent overflows");
      value = value * 10 + digit;
      ++m_pos;
      ++digits;
    }
    if (digits == 0) fail("expected a non-negative integer");
    (void)accept('L');  // Python 2 long suffix, written by old NumPy versions
    return value;
  }
  std::vector<std::size_t> tuple() {
    expect('(');
    std::vector<std::size_t> values;
    if (accept(')')) return values;
    while (true) {
      values.push_back(integer());
      if (accept(')')) return values;
      expect(',');
      if (accept(')')) return values;
    }
  }
  bool at_end() {
    skip_space();
    return m_pos == m_text.size();
  }

private:
  std::string_view m_text;
  std::string_view m_source;
  std::size_t m_pos = 0;
};

}  // namespace npy_detail

/// Parses the bytes of a .npy file (named `source` in messages) holding 1 to `max_rank` dimensions.
inline npy_array parse_npy(std::string_view bytes, std::string_view source, std::size_t max_rank = 2) {
  const auto fail = [&](const auto&... what) { npy_detail::corrupt("read_npy", source, what...); };
  if (bytes.size() < 10 || bytes.substr(0, 6) != npy_detail::magic) {
    fail("not a .npy file (expected the magic string \\x93NUMPY and a header, received ", bytes.size(), " bytes",
         bytes.size() >= 6 ? " with another start" : "", ")");
  }
  const auto* u = reinterpret_cast<const std::uint8_t*>(bytes.data());
  const unsigned major = u[6], minor = u[7];
  std::size_t header_length = 0, header_start = 0;
  if (major == 1) {
    header_length = std::size_t{u[8]} | (std::size_t{u[9]} << 8);
    header_start = 10;
  } else if (major == 2 || major == 3) {
    if (bytes.size() < 12) fail("truncated: ", bytes.size(), " bytes, shorter than the version ", major, " preamble");
    header_length = std::size_t{u[8]} | (std::size_t{u[9]} << 8) | (std::size_t{u[10]} << 16) |
                    (std::size_t{u[11]} << 24);
    header_start = 12;
  } else {
    fail("unsupported format version ", major, ".", minor, " (expected 1.0, 2.0 or 3.0)");
  }
  if (minor != 0) fail("unsupported format version ", major, ".", minor, " (expected 1.0, 2.0 or 3.0)");
  if (header_length > bytes.size() - header_start) {
    fail("truncated: header length ", header_length, " runs past the end of the file (", bytes.size(), " bytes)");
  }

  npy_detail::header_parser parser(bytes.substr(header_start, header_length), source);
  std::optional<std::string> descr;
  std::optional<bool> fortran_order;
  std::optional<std::vector<std::size_t>> shape;
  parser.expect('{');
  while (!parser.accept('}')) {
    const std::string key = parser.string_literal();
    parser.expect(':');
    if (key == "descr") {
      if (descr) parser.fail("duplicate key 'descr'");
      descr = parser.string_literal();
    } else if (key == "fortran_order") {
      if (fortran_order) parser.fail("duplicate key 'fortran_order'");
      fortran_order = parser.boolean();
    } else if (key == "shape") {
      if (shape) parser.fail("duplicate key 'shape'");
      shape = parser.tuple();
    } else {
      parser.fail(ayf::detail::concat("unknown key '", key, "' (expected descr, fortran_order, shape)"));
    }
    if (!parser.accept(',')) {
      parser.expect('}');
      break;
    }
  }
  if (!parser.at_end()) parser.fail("trailing characters after the dict");
  if (!descr || !fortran_order || !shape) parser.fail("missing key (expected descr, fortran_order and shape)");

  npy_array array;
  if (*descr == "<f4") array.dtype = npy_dtype::f4;
  else if (*descr == "<f8") array.dtype = npy_dtype::f8;
  else if (*descr == "<i4") array.dtype = npy_dtype::i4;
  else if (*descr == "<i8") array.dtype = npy_dtype::i8;
  else if (*descr == "|u1" || *descr == "<u1") array.dtype = npy_dtype::u1;
  else fail("field 'descr' expected one of '<f4', '<f8', '<i4', '<i8', '|u1', received '", *descr, "'");
  if (*fortran_order) {
    fail("field 'fortran_order' is True: Fortran-ordered arrays are not supported; save a C-ordered copy "
         "(numpy.ascontiguousarray)");
  }
  if (shape->empty() || shape->size() > max_rank) {
    fail("field 'shape' expected 1 ", (max_rank == 2 ? "or" : "to"), " ", max_rank, " dimensions, received ",
         shape->size());
  }
  std::size_t elements = 1;
  for (const auto extent : *shape) {
    if (extent != 0 && elements > std::numeric_limits<std::size_t>::max() / extent) fail("field 'shape' overflows");
    elements *= extent;
  }
  const std::size_t item = npy_detail::item_size(array.dtype);
  const std::size_t data_start = header_start + header_length;
  const std::size_t available = bytes.size() - data_start;
  if (elements > std::numeric_limits<std::size_t>::max() / item || elements * item != available) {
    fail("data length mismatch: shape and dtype '", *descr, "' need ", elements, " x ", item,
         " bytes, the file holds ", available, " after the header");
  }
  array.shape = std::move(*shape);
  array.data.assign(u + data_start, u + bytes.size());
  return array;
}

/// Reads the .npy file at `path` (see parse_npy).
inline npy_array read_npy(const std::filesystem::path& path, std::size_t max_rank = 2) {
  const std::string bytes = ayf::io::read_file(path, "read_npy");
  return parse_npy(bytes, path.string(), max_rank);
}

inline std::vector<double> npy_array::to_doubles() const {
  const std::size_t n = size();
  std::vector<double> out(n);
  const std::uint8_t* p = data.data();
  for (std::size_t i = 0; i < n; ++i) {
    switch (dtype) {
      case npy_dtype::f4: out[i] = npy_detail::load<float>(p + 4 * i); break;
      case npy_dtype::f8: out[i] = npy_detail::load<double>(p + 8 * i); break;
      case npy_dtype::i4: out[i] = npy_detail::load<std::int32_t>(p + 4 * i); break;
      case npy_dtype::i8: out[i] = static_cast<double>(npy_detail::load<std::int64_t>(p + 8 * i)); break;
      case npy_dtype::u1: out[i] = p[i]; break;
    }
  }
  return out;
}

inline std::vector<std::int64_t> npy_array::to_int64() const {
  const std::size_t n = size();
  std::vector<std::int64_t> out(n);
  const std::uint8_t* p = data.data();
  for (std::size_t i = 0; i < n; ++i) {
    double value = 0;
    switch (dtype) {
      case npy_dtype::i4: out[i] = npy_detail::load<std::int32_t>(p + 4 * i); continue;
      case npy_dtype::i8: out[i] = npy_detail::load<std::int64_t>(p + 8 * i); continue;
      case npy_dtype::u1: out[i] = p[i]; continue;
      case npy_dtype::f4: value = npy_detail::load<float>(p + 4 * i); break;
      case npy_dtype::f8: value = npy_detail::load<double>(p + 8 * i); break;
    }
    if (!(value == std::floor(value) && std::abs(value) < 9.0e15)) {
      throw error(ayf::detail::concat("npy_array::to_int64: element ", i, " = ", value, " of a '",
                                      npy_detail::descr(dtype), "' array is not an integer"));
    }
    out[i] = static_cast<std::int64_t>(value);
  }
  return out;
}

/// The bytes of a version 1.0 .npy file holding `count` elements of T (float, double, int32_t,
/// int64_t or uint8_t) in C order with `shape` (1 to 4 dimensions, e.g. images [N, H, W] or
/// [N, H, W, C]; the product must equal count).
template <class T>
std::string format_npy(const T* values, std::size_t count, const std::vector<std::size_t>& shape) {
  constexpr std::string_view where = "write_npy";
  require(shape.size() >= 1 && shape.size() <= 4, where, "shape", "1 to 4 dimensions", shape.size());
  std::size_t elements = 1;
  std::string tuple = "(";
  for (std::size_t k = 0; k < shape.size(); ++k) {
    elements *= shape[k];
    tuple += (k ? ", " : "") + std::to_string(shape[k]);
  }
  tuple += shape.size() == 1 ? ",)" : ")";
  require(elements == count, where, "values", ayf::detail::message("shape ", tuple, " = ", elements, " elements"),
          count);
  std::string header = ayf::detail::concat("{'descr': '", npy_detail::descr(npy_detail::dtype_of<T>()),
                                           "', 'fortran_order': False, 'shape': ", tuple, ", }");
  // NumPy pads with spaces and a final newline so the data starts at a multiple of 64 bytes.
  const std::size_t unpadded = npy_detail::magic.size() + 4 + header.size() + 1;
  header.append((64 - unpadded % 64) % 64, ' ');
  header += '\n';
  std::string out(npy_detail::magic);
  out += static_cast<char>(1);
  out += static_cast<char>(0);
  out += static_cast<char>(header.size() & 0xff);
  out += static_cast<char>(header.size() >> 8);
  out += header;
  out.append(reinterpret_cast<const char*>(values), count * sizeof(T));
  return out;
}

/// Writes `values` ([shape] in C order) to `path` as a version 1.0 .npy file, atomically.
template <class T>
void write_npy(const std::filesystem::path& path, const std::vector<T>& values, const std::vector<std::size_t>& shape) {
  write_file_atomically(path, format_npy(values.data(), values.size(), shape));
}

/// Reads points: `values_path` holds a 2-D array [rows, cols] (any dtype above, converted to
/// double); the optional `labels_path` a 1-D integer array [rows] (an empty path: no labels).
inline data::points read_points_npy(const std::filesystem::path& values_path,
                                    const std::filesystem::path& labels_path = {}) {
  const npy_array values = read_npy(values_path);
  if (values.shape.size() != 2) {
    throw error(ayf::detail::concat("read_points_npy: '", values_path.string(),
                                    "': field 'shape' expected 2 dimensions [rows, cols], received ",
                                    values.shape.size()));
  }
  data::points points;
  points.rows = values.shape[0];
  points.cols = values.shape[1];
  points.values = values.to_doubles();
  if (!labels_path.empty()) {
    const npy_array labels = read_npy(labels_path);
    const std::string source = labels_path.string();
    const auto fail = [&](const auto&... what) { npy_detail::corrupt("read_points_npy", source, what...); };
    if (labels.dtype == npy_dtype::f4 || labels.dtype == npy_dtype::f8) {
      fail("field 'descr' expected an integer dtype for labels, received '", npy_detail::descr(labels.dtype), "'");
    }
    if (labels.shape.size() != 1 || labels.shape[0] != points.rows) {
      fail("field 'shape' expected (", points.rows, ",) to match '", values_path.string(), "', received ",
           labels.shape.size(), " dimensions of ", labels.shape[0], (labels.shape.size() > 1 ? ", ..." : ""));
    }
    for (const auto label : labels.to_int64()) {
      if (label < std::numeric_limits<int>::min() || label > std::numeric_limits<int>::max()) {
        fail("label ", label, " does not fit an int");
      }
      points.labels.push_back(static_cast<int>(label));
    }
  }
  return points;
}

/// Writes points.values as a '<f8' array [rows, cols] to `values_path` and, when there are labels
/// and `labels_path` is not empty, the labels as a '<i8' array [rows] to `labels_path`.
inline void write_points_npy(const std::filesystem::path& values_path, const data::points& points,
                             const std::filesystem::path& labels_path = {}) {
  points.check("write_points_npy");
  write_npy(values_path, points.values, {points.rows, points.cols});
  if (points.has_labels() && !labels_path.empty()) {
    write_npy(labels_path, std::vector<std::int64_t>(points.labels.begin(), points.labels.end()), {points.rows});
  }
}

}  // namespace ayf::io
