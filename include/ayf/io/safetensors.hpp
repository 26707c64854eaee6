// ayf/io/safetensors.hpp: the safetensors format (design.md §7, checkpoints): an 8-byte little-endian
// header length N, N bytes of JSON {"__metadata__": {string: string}, name: {"dtype", "shape",
// "data_offsets": [begin, end]}}, then the tensors' raw little-endian bytes. Files are written as the
// reference implementation writes them (readable by Python's safetensors) and read with every offset,
// size and name checked, so corrupt input raises ayf::error and nothing is read out of bounds.
#pragma once

#include <algorithm>
#include <bit>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <initializer_list>
#include <iterator>
#include <limits>
#include <map>
#include <set>
#include <string>
#include <string_view>
#include <system_error>
#include <type_traits>
#include <utility>
#include <vector>

#include "ayf/core/error.hpp"
#include "ayf/core/hash.hpp"
#include "ayf/io/atomic_write.hpp"

namespace ayf::io {

static_assert(std::endian::native == std::endian::little, "ayf/io/safetensors.hpp assumes a little-endian host");

/// The element types handled (safetensors names).
enum class safetensors_dtype { U8, I32, F32, F64, I64 };

/// One tensor: `bytes` holds prod(shape) elements of `dtype`, little-endian, C order ([] is a scalar).
struct safetensors_tensor {
  std::string name;
  safetensors_dtype dtype = safetensors_dtype::F32;
  std::vector<std::size_t> shape;
  std::vector<std::uint8_t> bytes;
};

namespace safetensors_detail {

/// The largest header accepted, as in the reference implementation.
inline constexpr std::size_t max_header_size = 100'000'000;

inline std::string_view name_of(safetensors_dtype dtype) {
  switch (dtype) {
    case safetensors_dtype::U8: return "U8";
    case safetensors_dtype::I32: return "I32";
    case safetensors_dtype::F32: return "F32";
    case safetensors_dtype::F64: return "F64";
    case safetensors_dtype::I64: return "I64";
  }
  return "?";
}

inline std::size_t item_size(safetensors_dtype dtype) {
  switch (dtype) {
    case safetensors_dtype::U8: return 1;
    case safetensors_dtype::I32: case safetensors_dtype::F32: return 4;
    case safetensors_dtype::F64: case safetensors_dtype::I64: return 8;
  }
  return 0;
}

/// The order of the reference implementation's Dtype enum (by alignment), U8 < I32 < F32 < F64 <
/// I64; the writer lays tensors out by descending rank, then by name, as the reference does.
inline int reference_rank(safetensors_dtype dtype) {
  switch (dtype) {
    case safetensors_dtype::U8: return 0;
    case safetensors_dtype::I32: return 1;
    case safetensors_dtype::F32: return 2;
    case safetensors_dtype::F64: return 3;
    case safetensors_dtype::I64: return 4;
  }
  return 0;
}

template <class T>
constexpr safetensors_dtype dtype_of() {
  if constexpr (std::is_same_v<T, float>) return safetensors_dtype::F32;
  else if constexpr (std::is_same_v<T, double>) return safetensors_dtype::F64;
  else if constexpr (std::is_same_v<T, std::int64_t>) return safetensors_dtype::I64;
  else if constexpr (std::is_same_v<T, std::int32_t>) return safetensors_dtype::I32;
  else if constexpr (std::is_same_v<T, std::uint8_t>) return safetensors_dtype::U8;
  else static_assert(sizeof(T) == 0, "safetensors: element type must be float, double, int64_t, int32_t or uint8_t");
}

/// prod(shape), or false on overflow.
inline bool element_count(const std::vector<std::size_t>& shape, std::size_t& count) {
  count = 1;
  for (const auto extent : shape) {
    if (extent != 0 && count > std::numeric_limits<std::size_t>::max() / extent) return false;
    count *= extent;
  }
  return true;
}

inline bool valid_utf8(std::string_view s) {
  std::size_t i = 0;
  while (i < s.size()) {
    const auto c = static_cast<unsigned char>(s[i]);
    std::size_t extra = 0;
    std::uint32_t code = 0;
    if (c < 0x80) { ++i; continue; }
    if ((c & 0xE0) == 0xC0) { extra = 1; code = c & 0x1Fu; }
    else if ((c & 0xF0) == 0xE0) { extra = 2; code = c & 0x0Fu; }
    else if ((c & 0xF8) == 0xF0) { extra = 3; code = c & 0x07u; }
    else return false;
    if (s.size() - i <= extra) return false;
    for (std::size_t k = 1; k <= extra; ++k) {
      const auto d = static_cast<unsigned char>(s[i + k]);
      if ((d & 0xC0) != 0x80) return false;
      code = (code << 6) | (d & 0x3Fu);
    }
    constexpr std::uint32_t smallest[] = {0, 0x80, 0x800, 0x10000};
    if (code < smallest[extra] || code > 0x10FFFF || (code >= 0xD800 && code <= 0xDFFF)) return false;
    i += extra + 1;
  }
  return true;
}

// ---- a JSON subset: objects, arrays, strings, non-negative integers ---------------------------

struct json_value {
  enum class kind { object, array, string, integer };
  kind type = kind::object;
  std::string text;                                        // string
  std::uint64_t integer = 0;                               // integer
  std::vector<std::string> keys;                           // object keys, in file order
  std::vector<json_value> items;                           // array elements, or the values of `keys`

  [[nodiscard]] std::string_view type_name() const {
    switch (type) {
      case kind::object: return "an object";
      case kind::array: return "an array";
      case kind::string: return "a string";
      case kind::integer: return "an integer";
    }
    return "?";
  }
};

class json_parser {
public:
  json_parser(std::string_view text, std::string_view source) : m_text(text), m_source(source) {}

  json_value document() {
    json_value v = value(0);
    skip_space();
    if (m_pos != m_text.size()) fail("trailing characters after the JSON value");
    return v;
  }

private:
  static constexpr int max_depth = 64;

  [[noreturn]] void fail(std::string_view what) const {
    throw error(ayf::detail::concat("read_safetensors: '", m_source, "': invalid JSON header at byte ", m_pos,
                                    ": ", what));
  }
  void skip_space() {
    while (m_pos < m_text.size() &&
           (m_text[m_pos] == ' ' || m_text[m_pos] == '\t' || m_text[m_pos] == '\n' || m_text[m_pos] == '\r')) {
      ++m_pos;
    }
  }
  char peek() {
    skip_space();
    if (m_pos >= m_text.size()) fail("unexpected end of the header");
    return m_text[m_pos];
  }
  void expect(char c) {
    if (peek() != c) fail(ayf::detail::concat("expected '", c, "', found '", m_text[m_pos], "'"));
    ++m_pos;
  }

  json_value value(int depth) {
    if (depth > max_depth) fail("nested too deeply");
    const char c = peek();
    json_value v;
    if (c == '{') {
      v.type = json_value::kind::object;
      ++m_pos;
      std::set<std::string, std::less<>> keys;
      if (peek() == '}') {
        ++m_pos;
        return v;
      }
      while (true) {
        if (peek() != '"') fail("expected a string key");
        std::string key = string();
        if (!keys.insert(key).second) fail(ayf::detail::concat("duplicate key \"", key, "\""));
        expect(':');
        v.keys.push_back(std::move(key));
        v.items.push_back(value(depth + 1));
        if (peek() == ',') {
          ++m_pos;
          continue;
        }
        expect('}');
        return v;
      }
    }
    if (c == '[') {
      v.type = json_value::kind::array;
      ++m_pos;
      if (peek() == ']') {
        ++m_pos;
        return v;
      }
      while (true) {
        v.items.push_back(value(depth + 1));
        if (peek() == ',') {
          ++m_pos;
          continue;
        }
        expect(']');
        return v;
      }
    }
    if (c == '"') {
      v.type = json_value::kind::string;
      v.text = string();
      return v;
    }
    if (c >= '0' && c <= '9') {
      v.type = json_value::kind::integer;
      if (c == '0' && m_pos + 1 < m_text.size() && m_text[m_pos + 1] >= '0' && m_text[m_pos + 1] <= '9') {
        fail("leading zero in a number");
      }
      while (m_pos < m_text.size() && m_text[m_pos] >= '0' && m_text[m_pos] <= '9') {
        const auto digit = static_cast<std::uint64_t>(m_text[m_pos] - '0');
        if (v.integer > (std::numeric_limits<std::uint64_t>::max() - digit) / 10) fail("integer overflows 64 bits");
        v.integer = v.integer * 10 + digit;
        ++m_pos;
      }
      if (m_pos < m_text.size() && (m_text[m_pos] == '.' || m_text[m_pos] == 'e' || m_text[m_pos] == 'E')) {
        fail("expected a non-negative integer, found a fraction or exponent");
      }
      return v;
    }
    fail(ayf::detail::concat("unexpected character '", c,
                             "' (this header reader accepts objects, arrays, strings and non-negative integers)"));
  }

  unsigned hex4() {
    if (m_text.size() - m_pos < 4) fail("truncated \\u escape");
    unsigned code = 0;
    for (int k = 0; k < 4; ++k) {
      const char h = m_text[m_pos++];
      code <<= 4;
      if (h >= '0' && h <= '9') code |= static_cast<unsigned>(h - '0');
      else if (h >= 'a' && h <= 'f') code |= static_cast<unsigned>(h - 'a' + 10);
      else if (h >= 'A' && h <= 'F') code |= static_cast<unsigned>(h - 'A' + 10);
      else fail("invalid hex digit in a \\u escape");
    }
    return code;
  }

  static void append_utf8(std::string& out, std::uint32_t code) {
    if (code < 0x80) {
      out += static_cast<char>(code);
    } else if (code < 0x800) {
      out += static_cast<char>(0xC0 | (code >> 6));
      out += static_cast<char>(0x80 | (code & 0x3F));
    } else if (code < 0x10000) {
      out += static_cast<char>(0xE0 | (code >> 12));
      out += static_cast<char>(0x80 | ((code >> 6) & 0x3F));
      out += static_cast<char>(0x80 | (code & 0x3F));
    } else {
      out += static_cast<char>(0xF0 | (code >> 18));
      out += static_cast<char>(0x80 | ((code >> 12) & 0x3F));
      out += static_cast<char>(0x80 | ((code >> 6) & 0x3F));
      out += static_cast<char>(0x80 | (code & 0x3F));
    }
  }

  std::string string() {
    ++m_pos;  // the opening quote
    std::string out;
    while (true) {
      if (m_pos >= m_text.size()) fail("unterminated string");
      const char c = m_text[m_pos++];
      if (c == '"') return out;
      if (static_cast<unsigned char>(c) < 0x20) fail("unescaped control character in a string");
      if (c != '\\') {
        out += c;
        continue;
      }
      if (m_pos >= m_text.size()) fail("unterminated escape");
      switch (const char e = m_text[m_pos++]; e) {
        case '"': out += '"'; break;
        case '\\': out += '\\'; break;
        case '/': out += '/'; break;
        case 'b': out += '\b'; break;
        case 'f': out += '\f'; break;
        case 'n': out += '\n'; break;
        case 'r': out += '\r'; break;
        case 't': out += '\t'; break;
        case 'u': {
          std::uint32_t code = hex4();
          if (code >= 0xDC00 && code <= 0xDFFF) fail("unpaired low surrogate in a \\u escape");
          if (code >= 0xD800 && code <= 0xDBFF) {
            if (m_text.size() - m_pos < 2 || m_text[m_pos] != '\\' || m_text[m_pos + 1] != 'u') {
              fail("unpaired high surrogate in a \\u escape");
            }
            m_pos += 2;
            const std::uint32_t low = hex4();
            if (low < 0xDC00 || low > 0xDFFF) fail("invalid low surrogate in a \\u escape");
            code = 0x10000 + ((code - 0xD800) << 10) + (low - 0xDC00);
          }
          append_utf8(out, code);
          break;
        }
        default: fail(ayf::detail::concat("invalid escape '\\", e, "'"));
      }
    }
  }

  std::string_view m_text;
  std::string_view m_source;
  std::size_t m_pos = 0;
};

inline void write_json_string(std::string& out, std::string_view s) {
  out += '"';
  for (const char c : s) {
    switch (c) {
      case '"': out += "\\\""; break;
      case '\\': out += "\\\\"; break;
      case '\n': out += "\\n"; break;
      case '\r': out += "\\r"; break;
      case '\t': out += "\\t"; break;
      case '\b': out += "\\b"; break;
      case '\f': out += "\\f"; break;
      default:
        if (static_cast<unsigned char>(c) < 0x20) {
          constexpr char hex[] = "0123456789abcdef";
          out += "\\u00";
          out += hex[(c >> 4) & 0xF];
          out += hex[c & 0xF];
        } else {
          out += c;
        }
    }
  }
  out += '"';
}

/// Raises ayf::error("read_safetensors: '<source>': <parts>").
template <class... Parts>
[[noreturn]] void corrupt(std::string_view source, const Parts&... parts) {
  throw error(ayf::detail::concat("read_safetensors: '", source, "': ", parts...));
}

}  // namespace safetensors_detail

/// A tensor with the values of `values` (float, double, int64_t, int32_t or uint8_t): [shape], whose
/// product must equal values.size().
template <class T>
safetensors_tensor make_safetensors_tensor(std::string name, const std::vector<T>& values,
                                           std::vector<std::size_t> shape) {
  std::size_t count = 0;
  require(safetensors_detail::element_count(shape, count) && count == values.size(), "make_safetensors_tensor",
          "values", ayf::detail::message("prod(shape) = ", count, " elements for tensor '", name, "'"),
          values.size());
  safetensors_tensor t{std::move(name), safetensors_detail::dtype_of<T>(), std::move(shape), {}};
  t.bytes.resize(values.size() * sizeof(T));
  if (!values.empty()) std::memcpy(t.bytes.data(), values.data(), t.bytes.size());
  return t;
}

/// The values of `tensor`, whose dtype must be T's exactly (F32 = float, F64 = double, I64 =
/// int64_t, I32 = int32_t, U8 = uint8_t).
template <class T>
std::vector<T> safetensors_values(const safetensors_tensor& tensor) {
  constexpr safetensors_dtype wanted = safetensors_detail::dtype_of<T>();
  if (tensor.dtype != wanted) {
    throw error(ayf::detail::concat("safetensors_values: tensor '", tensor.name, "' has dtype ",
                                    safetensors_detail::name_of(tensor.dtype), ", requested ",
                                    safetensors_detail::name_of(wanted)));
  }
  require(tensor.bytes.size() % sizeof(T) == 0, "safetensors_values", "tensor.bytes",
          ayf::detail::message("a multiple of ", sizeof(T), " bytes"), tensor.bytes.size());
  std::vector<T> values(tensor.bytes.size() / sizeof(T));
  if (!values.empty()) std::memcpy(values.data(), tensor.bytes.data(), tensor.bytes.size());
  return values;
}

/// The tensors and the `__metadata__` string map of one file.
struct safetensors_content {
  std::vector<safetensors_tensor> tensors;
  std::map<std::string, std::string> metadata;

  /// Appends a tensor with `values`: [shape].
  template <class T>
  void add(std::string name, const std::vector<T>& values, std::vector<std::size_t> shape) {
    tensors.push_back(make_safetensors_tensor(std::move(name), values, std::move(shape)));
  }
  [[nodiscard]] const safetensors_tensor* find(std::string_view name) const {
    for (const auto& t : tensors) {
      if (t.name == name) return &t;
    }
    return nullptr;
  }
  [[nodiscard]] const safetensors_tensor& at(std::string_view name) const {
    if (const auto* t = find(name)) return *t;
    std::string names;
    for (const auto& t : tensors) names += (names.empty() ? "" : ", ") + t.name;
    throw_argument_error("safetensors_content::at", "name", "one of [" + names + "]",
                         ayf::detail::concat("'", name, "'"));
  }
  /// The values of tensor `name` (see safetensors_values).
  template <class T>
  [[nodiscard]] std::vector<T> get(std::string_view name) const {
    return safetensors_values<T>(at(name));
  }
};

/// The bytes of a safetensors file, laid out as the reference implementation does: tensors by
/// descending dtype alignment, then by name, contiguous from offset 0; header JSON with
/// "__metadata__" first (keys sorted; omitted when empty), each tensor's keys in the order dtype,
/// shape, data_offsets; padded with spaces to a multiple of 8 bytes.
inline std::string serialize_safetensors(const std::vector<safetensors_tensor>& tensors,
                                         const std::map<std::string, std::string>& metadata = {}) {
  constexpr std::string_view where = "write_safetensors";
  std::vector<const safetensors_tensor*> order;
  std::set<std::string_view> names;
  for (const auto& t : tensors) {
    require(!t.name.empty() && t.name != "__metadata__" && safetensors_detail::valid_utf8(t.name), where,
            "tensor name", "a non-empty UTF-8 name other than __metadata__", ayf::detail::message("'", t.name, "'"));
    require(names.insert(t.name).second, where, "tensor name", "unique names",
            ayf::detail::message("'", t.name, "' twice"));
    std::size_t count = 0;
    require(safetensors_detail::element_count(t.shape, count) &&
                count <= std::numeric_limits<std::size_t>::max() / safetensors_detail::item_size(t.dtype) &&
                t.bytes.size() == count * safetensors_detail::item_size(t.dtype),
            where, "tensor bytes",
            ayf::detail::message("prod(shape) * ", safetensors_detail::item_size(t.dtype), " = ",
                                count * safetensors_detail::item_size(t.dtype), " bytes for tensor '", t.name, "'"),
            t.bytes.size());
    order.push_back(&t);
  }
  for (const auto& [key, value] : metadata) {
    require(safetensors_detail::valid_utf8(key) && safetensors_detail::valid_utf8(value), where, "metadata",
            "UTF-8 keys and values", ayf::detail::message("'", key, "'"));
  }
  std::stable_sort(order.begin(), order.end(), [](const safetensors_tensor* l, const safetensors_tensor* r) {
    const int lr = safetensors_detail::reference_rank(l->dtype), rr = safetensors_detail::reference_rank(r->dtype);
    return lr != rr ? lr > rr : l->name < r->name;
  });

  std::string header = "{";
  bool first = true;
  if (!metadata.empty()) {
    header += "\"__metadata__\":{";
    for (const auto& [key, value] : metadata) {
      if (!first) header += ',';
      first = false;
      safetensors_detail::write_json_string(header, key);
      header += ':';
      safetensors_detail::write_json_string(header, value);
    }
    header += '}';
    first = false;
  }
  std::size_t offset = 0;
  for (const auto* t : order) {
    if (!first) header += ',';
    first = false;
    safetensors_detail::write_json_string(header, t->name);
    header += ":{\"dtype\":\"";
    header += safetensors_detail::name_of(t->dtype);
    header += "\",\"shape\":[";
    for (std::size_t k = 0; k < t->shape.size(); ++k) {
      if (k > 0) header += ',';
      header += std::to_string(t->shape[k]);
    }
    header += "],\"data_offsets\":[" + std::to_string(offset) + ",";
    offset += t->bytes.size();
    header += std::to_string(offset) + "]}";
  }
  header += '}';
  header.append((8 - header.size() % 8) % 8, ' ');

  std::string out;
  out.reserve(8 + header.size() + offset);
  const std::uint64_t n = header.size();
  for (int k = 0; k < 8; ++k) out += static_cast<char>((n >> (8 * k)) & 0xFF);
  out += header;
  for (const auto* t : order) out.append(reinterpret_cast<const char*>(t->bytes.data()), t->bytes.size());
  return out;
}

/// Writes `tensors` (names unique) and `metadata` to `path` atomically (see serialize_safetensors).
inline void write_safetensors(const std::filesystem::path& path, const std::vector<safetensors_tensor>& tensors,
                              const std::map<std::string, std::string>& metadata = {}) {
  write_file_atomically(path, serialize_safetensors(tensors, metadata));
}

inline void write_safetensors(const std::filesystem::path& path, const safetensors_content& content) {
  write_safetensors(path, content.tensors, content.metadata);
}

/// Parses the bytes of a safetensors file (named `source` in messages). Checks, as the reference
/// implementation does: the header fits in the file and is at most 100 MB of UTF-8 JSON holding an
/// object (keys unique); "__metadata__" maps strings to strings; each tensor has exactly dtype (one of U8, I32,
/// F32, F64, I64), shape and data_offsets [begin, end] with end - begin = prod(shape) * item size;
/// sorted by offset, the tensors tile the data section from 0 to its end with no gap or overlap.
/// Returns the tensors in offset order.
inline safetensors_content parse_safetensors(std::string_view bytes, std::string_view source) {
  const auto fail = [&](const auto&... what) { safetensors_detail::corrupt(source, what...); };
  if (bytes.size() < 8) fail("truncated: ", bytes.size(), " bytes, shorter than the 8-byte header length");
  std::uint64_t n = 0;
  for (int k = 7; k >= 0; --k) n = (n << 8) | static_cast<unsigned char>(bytes[static_cast<std::size_t>(k)]);
  if (n > bytes.size() - 8) {
    fail("header length ", n, " is larger than the file's remaining ", bytes.size() - 8, " bytes");
  }
  if (n > safetensors_detail::max_header_size) {
    fail("header length ", n, " exceeds the limit of ", safetensors_detail::max_header_size, " bytes");
  }
  const std::string_view header = bytes.substr(8, static_cast<std::size_t>(n));
  const std::string_view data = bytes.substr(8 + static_cast<std::size_t>(n));
  if (!safetensors_detail::valid_utf8(header)) fail("the header is not valid UTF-8");
  const safetensors_detail::json_value root = safetensors_detail::json_parser(header, source).document();
  using kind = safetensors_detail::json_value::kind;
  if (root.type != kind::object) fail("the header is ", root.type_name(), ", expected an object");

  safetensors_content content;
  struct placed {
    std::uint64_t begin, end;
    std::size_t index;
  };
  std::vector<placed> layout;
  for (std::size_t member = 0; member < root.keys.size(); ++member) {
    const std::string& name = root.keys[member];
    const safetensors_detail::json_value& entry = root.items[member];
    if (name == "__metadata__") {
      if (entry.type != kind::object) fail("field '__metadata__' is ", entry.type_name(), ", expected an object");
      for (std::size_t k = 0; k < entry.keys.size(); ++k) {
        const std::string& key = entry.keys[k];
        const safetensors_detail::json_value& value = entry.items[k];
        if (value.type != kind::string) {
          fail("field '__metadata__' key '", key, "' is ", value.type_name(), ", expected a string");
        }
        content.metadata.emplace(key, value.text);
      }
      continue;
    }
    if (entry.type != kind::object) fail("tensor '", name, "' is ", entry.type_name(), ", expected an object");
    const safetensors_detail::json_value *dtype = nullptr, *shape = nullptr, *offsets = nullptr;
    for (std::size_t k = 0; k < entry.keys.size(); ++k) {
      const std::string& key = entry.keys[k];
      const safetensors_detail::json_value& value = entry.items[k];
      if (key == "dtype") dtype = &value;
      else if (key == "shape") shape = &value;
      else if (key == "data_offsets") offsets = &value;
      else fail("tensor '", name, "' has unknown field '", key, "' (expected dtype, shape, data_offsets)");
    }
    if (!dtype || !shape || !offsets) fail("tensor '", name, "' lacks one of the fields dtype, shape, data_offsets");
    safetensors_tensor tensor;
    tensor.name = name;
    if (dtype->type != kind::string) fail("tensor '", name, "' field 'dtype' is ", dtype->type_name());
    bool known = false;
    for (const auto candidate : {safetensors_dtype::U8, safetensors_dtype::I32, safetensors_dtype::F32,
                                 safetensors_dtype::F64, safetensors_dtype::I64}) {
      if (dtype->text == safetensors_detail::name_of(candidate)) {
        tensor.dtype = candidate;
        known = true;
      }
    }
    if (!known) {
      fail("tensor '", name, "' field 'dtype' expected one of F32, F64, I64, I32, U8, received '", dtype->text, "'");
    }
    if (shape->type != kind::array) fail("tensor '", name, "' field 'shape' is ", shape->type_name());
    for (const auto& extent : shape->items) {
      if (extent.type != kind::integer || extent.integer > std::numeric_limits<std::size_t>::max()) {
        fail("tensor '", name, "' field 'shape' must hold non-negative integers");
      }
      tensor.shape.push_back(static_cast<std::size_t>(extent.integer));
    }
    if (offsets->type != kind::array || offsets->items.size() != 2 || offsets->items[0].type != kind::integer ||
        offsets->items[1].type != kind::integer) {
      fail("tensor '", name, "' field 'data_offsets' expected [begin, end]");
    }
    const std::uint64_t begin = offsets->items[0].integer, end = offsets->items[1].integer;
    if (begin > end || end > data.size()) {
      fail("tensor '", name, "' field 'data_offsets' [", begin, ", ", end, "] is out of range of the ", data.size(),
           "-byte data section");
    }
    std::size_t count = 0;
    const std::size_t item = safetensors_detail::item_size(tensor.dtype);
    if (!safetensors_detail::element_count(tensor.shape, count) ||
        count > std::numeric_limits<std::size_t>::max() / item || end - begin != count * item) {
      fail("tensor '", name, "' field 'data_offsets' spans ", end - begin, " bytes, but dtype ", dtype->text,
           " and its shape need ", count, " x ", item);
    }
    layout.push_back({begin, end, content.tensors.size()});
    content.tensors.push_back(std::move(tensor));
  }
  std::stable_sort(layout.begin(), layout.end(),
                   [](const placed& l, const placed& r) { return l.begin != r.begin ? l.begin < r.begin : l.end < r.end; });
  std::uint64_t expected = 0;
  std::vector<safetensors_tensor> ordered;
  ordered.reserve(layout.size());
  for (const auto& p : layout) {
    auto& tensor = content.tensors[p.index];
    if (p.begin != expected) {
      fail("tensor '", tensor.name, "' field 'data_offsets' starts at ", p.begin, ", expected ", expected,
           p.begin < expected ? " (it overlaps the previous tensor)" : " (a gap before it)");
    }
    expected = p.end;
    const auto* first = reinterpret_cast<const std::uint8_t*>(data.data()) + p.begin;
    tensor.bytes.assign(first, first + (p.end - p.begin));
    ordered.push_back(std::move(tensor));
  }
  if (expected != data.size()) {
    fail("the tensors cover ", expected, " bytes of the ", data.size(), "-byte data section (trailing bytes)");
  }
  content.tensors = std::move(ordered);
  return content;
}

// ---- checksums: metadata "checksum.<tensor name>" and "checksum.__metadata__" ----------------------

/// The metadata key prefix of checksums.
inline constexpr std::string_view safetensors_checksum_prefix = "checksum.";
/// The metadata key of the checksum over the other (non-checksum) metadata.
inline constexpr std::string_view safetensors_metadata_checksum_key = "checksum.__metadata__";

using ayf::fnv1a64;  // the checksums' hash (ayf/core/hash.hpp)

namespace safetensors_detail {
inline std::string checksum_text(std::uint64_t hash) {
  constexpr char hex[] = "0123456789abcdef";
  std::string out = "fnv1a64:";
  for (int k = 15; k >= 0; --k) out += hex[(hash >> (4 * k)) & 0xF];
  return out;
}
inline bool is_checksum_key(std::string_view key) { return key.starts_with(safetensors_checksum_prefix); }
}  // namespace safetensors_detail

/// "fnv1a64:<16 lower-case hex digits>" of the tensor's raw little-endian bytes (the data section span).
inline std::string safetensors_checksum(const safetensors_tensor& tensor) {
  return safetensors_detail::checksum_text(fnv1a64(tensor.bytes.data(), tensor.bytes.size()));
}

/// The checksum of the metadata entries whose key does not start with "checksum.": FNV-1a over
/// key, NUL, value, NUL for each, keys in byte order.
inline std::string safetensors_metadata_checksum(const std::map<std::string, std::string>& metadata) {
  std::uint64_t hash = fnv1a64(nullptr, 0);
  for (const auto& [key, value] : metadata) {
    if (safetensors_detail::is_checksum_key(key)) continue;
    hash = fnv1a64(key.data(), key.size() + 1, hash);  // with the terminating NUL
    hash = fnv1a64(value.data(), value.size() + 1, hash);
  }
  return safetensors_detail::checksum_text(hash);
}

/// Sets metadata "checksum.<name>" for every tensor and "checksum.__metadata__" (replacing old ones).
inline void add_safetensors_checksums(safetensors_content& content) {
  for (auto it = content.metadata.begin(); it != content.metadata.end();) {
    it = safetensors_detail::is_checksum_key(it->first) ? content.metadata.erase(it) : std::next(it);
  }
  const std::string metadata_checksum = safetensors_metadata_checksum(content.metadata);
  for (const auto& t : content.tensors) {
    content.metadata[std::string(safetensors_checksum_prefix) + t.name] = safetensors_checksum(t);
  }
  content.metadata[std::string(safetensors_metadata_checksum_key)] = metadata_checksum;
}

/// What is wrong with the checksums of `content` ("tensor '<name>': ..." or "metadata ..."), or empty
/// when every tensor and the metadata have a checksum that matches and no checksum names a missing tensor.
inline std::string safetensors_checksum_problem(const safetensors_content& content) {
  const auto stored = [&](const std::string& key) -> const std::string* {
    const auto it = content.metadata.find(key);
    return it == content.metadata.end() ? nullptr : &it->second;
  };
  const std::string meta_key(safetensors_metadata_checksum_key);
  if (const std::string* s = stored(meta_key); s == nullptr) {
    return ayf::detail::concat("metadata '", meta_key, "' missing");
  } else if (const std::string computed = safetensors_metadata_checksum(content.metadata); *s != computed) {
    return ayf::detail::concat("metadata: checksum mismatch ('", meta_key, "' = ", *s, ", computed ", computed,
                               "): the file is corrupt");
  }
  for (const auto& t : content.tensors) {
    const std::string key = std::string(safetensors_checksum_prefix) + t.name;
    const std::string* s = stored(key);
    if (s == nullptr) return ayf::detail::concat("tensor '", t.name, "': checksum metadata '", key, "' missing");
    if (const std::string computed = safetensors_checksum(t); *s != computed) {
      return ayf::detail::concat("tensor '", t.name, "': checksum mismatch ('", key, "' = ", *s, ", computed ",
                                 computed, "): the file is corrupt");
    }
  }
  for (const auto& [key, value] : content.metadata) {
    if (!safetensors_detail::is_checksum_key(key) || key == meta_key) continue;
    if (content.find(std::string_view(key).substr(safetensors_checksum_prefix.size())) == nullptr) {
      return ayf::detail::concat("metadata '", key, "' = ", value, " names no tensor of the file");
    }
  }
  return {};
}

/// Raises ayf::error("verify_safetensors_checksums: '<source>': <problem>") when
/// safetensors_checksum_problem finds one.
inline void verify_safetensors_checksums(const safetensors_content& content, std::string_view source) {
  if (const std::string problem = safetensors_checksum_problem(content); !problem.empty()) {
    throw error(ayf::detail::concat("verify_safetensors_checksums: '", source, "': ", problem));
  }
}

/// Reads the safetensors file at `path` (see parse_safetensors).
inline safetensors_content read_safetensors(const std::filesystem::path& path) {
  const std::string bytes = ayf::io::read_file(path, "read_safetensors");
  return parse_safetensors(bytes, path.string());
}

}  // namespace ayf::io
