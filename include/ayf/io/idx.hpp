// ayf/io/idx.hpp: IDX files (the MNIST format): a magic of two zero bytes, a dtype code and the rank,
// then `rank` big-endian uint32 extents, then the payload in C order, big-endian. Parsed in memory with
// complete checks (magic, dtype, rank, truncated extents, payload length against the extents, element
// count overflow); corrupt input raises ayf::error naming the source, nothing is read out of bounds.
#pragma once

#include <bit>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <limits>
#include <string>
#include <string_view>
#include <type_traits>
#include <vector>

#include "ayf/core/error.hpp"
#include "ayf/io/atomic_write.hpp"

namespace ayf::io {

/// The IDX element types, by their dtype code (third magic byte).
enum class idx_dtype : std::uint8_t { u8 = 0x08, i8 = 0x09, i16 = 0x0B, i32 = 0x0C, f32 = 0x0D, f64 = 0x0E };

/// One array: `payload` holds shape[0] * ... elements of `dtype`, big-endian, C order, as in the file.
struct idx_array {
  idx_dtype dtype = idx_dtype::u8;
  std::vector<std::size_t> shape;
  std::vector<std::uint8_t> payload;

  [[nodiscard]] std::size_t size() const {
    std::size_t n = 1;
    for (const auto extent : shape) n *= extent;
    return n;
  }
  /// Element i converted to double (exact for every dtype but f64 -> double, which is the identity).
  [[nodiscard]] double value(std::size_t i) const;
  /// All elements converted to double.
  [[nodiscard]] std::vector<double> to_doubles() const;
  /// All elements of an integer dtype (u8, i8, i16, i32) as int64; a float dtype raises ayf::error.
  [[nodiscard]] std::vector<std::int64_t> to_int64() const;
};

namespace idx_detail {

inline bool known_dtype(std::uint8_t code) {
  return code == 0x08 || code == 0x09 || code == 0x0B || code == 0x0C || code == 0x0D || code == 0x0E;
}

inline std::size_t item_size(idx_dtype dtype) {
  switch (dtype) {
    case idx_dtype::u8: case idx_dtype::i8: return 1;
    case idx_dtype::i16: return 2;
    case idx_dtype::i32: case idx_dtype::f32: return 4;
    case idx_dtype::f64: return 8;
  }
  return 0;
}

inline std::string_view name(idx_dtype dtype) {
  switch (dtype) {
    case idx_dtype::u8: return "u8";
    case idx_dtype::i8: return "i8";
    case idx_dtype::i16: return "i16";
    case idx_dtype::i32: return "i32";
    case idx_dtype::f32: return "f32";
    case idx_dtype::f64: return "f64";
  }
  return "?";
}

/// The big-endian unsigned integer of `n` bytes at p.
inline std::uint64_t load_be(const std::uint8_t* p, std::size_t n) {
  std::uint64_t v = 0;
  for (std::size_t k = 0; k < n; ++k) v = (v << 8) | p[k];
  return v;
}

}  // namespace idx_detail

/// Parses the bytes of an IDX file (named `source` in messages). Rank 1 to 255; extents may be 0.
inline idx_array parse_idx(std::string_view bytes, std::string_view source) {
  const auto fail = [&](const auto&... what) {
    throw error(ayf::detail::concat("read_idx: '", source, "': ", what...));
  };
  const auto* u = reinterpret_cast<const std::uint8_t*>(bytes.data());
  if (bytes.size() < 4) fail("truncated: ", bytes.size(), " bytes, shorter than the 4-byte magic");
  if (u[0] != 0 || u[1] != 0) {
    fail("bad magic: expected the first two bytes 0x00 0x00, received 0x", std::hex, unsigned{u[0]}, " 0x",
         unsigned{u[1]}, std::dec, (u[0] == 0x1f && u[1] == 0x8b ? " (a gzip stream: decompress it first)" : ""));
  }
  if (!idx_detail::known_dtype(u[2])) {
    fail("bad dtype code 0x", std::hex, unsigned{u[2]}, std::dec,
         " (expected 0x08 u8, 0x09 i8, 0x0B i16, 0x0C i32, 0x0D f32 or 0x0E f64)");
  }
  const std::size_t rank = u[3];
  if (rank == 0) fail("rank 0 (expected at least 1 dimension)");
  const std::size_t header = 4 + 4 * rank;
  if (bytes.size() < header) {
    fail("truncated: rank ", rank, " needs a ", header, "-byte header, the file holds ", bytes.size(), " bytes");
  }

  idx_array array;
  array.dtype = static_cast<idx_dtype>(u[2]);
  const std::size_t item = idx_detail::item_size(array.dtype);
  std::size_t elements = 1;
  bool overflow = false;
  array.shape.resize(rank);
  for (std::size_t k = 0; k < rank; ++k) {
    const auto extent = static_cast<std::size_t>(idx_detail::load_be(u + 4 + 4 * k, 4));
    array.shape[k] = extent;
    if (extent != 0 && elements > std::numeric_limits<std::size_t>::max() / extent) overflow = true;
    else elements *= extent;
  }
  const std::size_t available = bytes.size() - header;
  bool any_zero = false;
  for (const auto extent : array.shape) any_zero = any_zero || extent == 0;
  if (!any_zero && (overflow || elements > std::numeric_limits<std::size_t>::max() / item)) {
    fail("the element count of the extents overflows (dimension ", rank, " header, ", available,
         " payload bytes)");
  }
  if (any_zero) elements = 0;
  const std::size_t needed = elements * item;
  if (available < needed) {
    fail("truncated payload: ", elements, " elements of ", idx_detail::name(array.dtype), " need ", needed,
         " bytes, the file holds ", available, " after the header");
  }
  if (available > needed) {
    fail("trailing garbage: ", available - needed, " bytes after the ", needed, "-byte payload");
  }
  array.payload.assign(u + header, u + bytes.size());
  return array;
}

/// Reads the (uncompressed) IDX file at `path` (see parse_idx).
inline idx_array read_idx(const std::filesystem::path& path) {
  const std::string bytes = read_file(path, "read_idx");
  return parse_idx(bytes, path.string());
}

/// The bytes of an IDX file: the magic, the extents of `shape` (1 to 255 of them, each < 2^32) and
/// `payload`, which must hold product(shape) big-endian elements of `dtype`.
inline std::string format_idx(idx_dtype dtype, const std::vector<std::size_t>& shape, std::string_view payload) {
  constexpr std::string_view where = "format_idx";
  require(idx_detail::known_dtype(static_cast<std::uint8_t>(dtype)), where, "dtype", "a known IDX dtype code",
          unsigned{static_cast<std::uint8_t>(dtype)});
  require(!shape.empty() && shape.size() <= 255, where, "shape", "1 to 255 dimensions", shape.size());
  std::size_t elements = 1;
  for (const auto extent : shape) {
    require(extent <= 0xFFFFFFFFu, where, "shape", "extents below 2^32", extent);
    elements *= extent;
  }
  const std::size_t needed = elements * idx_detail::item_size(dtype);
  require(payload.size() == needed, where, "payload",
          ayf::detail::message(elements, " elements of ", idx_detail::name(dtype), " = ", needed, " bytes"),
          payload.size());
  std::string out{'\0', '\0', static_cast<char>(dtype), static_cast<char>(shape.size())};
  for (const auto extent : shape) {
    for (int shift = 24; shift >= 0; shift -= 8) out += static_cast<char>((extent >> shift) & 0xFF);
  }
  out += payload;
  return out;
}

/// The big-endian payload of `values` as IDX elements: T is uint8_t, int8_t, int16_t, int32_t, float or double.
template <class T>
std::string idx_payload(const std::vector<T>& values) {
  static_assert(std::is_arithmetic_v<T> && (sizeof(T) == 1 || sizeof(T) == 2 || sizeof(T) == 4 || sizeof(T) == 8),
                "idx_payload: T must be a 1-, 2-, 4- or 8-byte arithmetic type");
  std::string out;
  out.reserve(values.size() * sizeof(T));
  for (const T& v : values) {
    unsigned char raw[sizeof(T)];
    std::memcpy(raw, &v, sizeof(T));
    if constexpr (std::endian::native == std::endian::little) {
      for (std::size_t k = sizeof(T); k-- > 0;) out += static_cast<char>(raw[k]);
    } else {
      for (std::size_t k = 0; k < sizeof(T); ++k) out += static_cast<char>(raw[k]);
    }
  }
  return out;
}

inline double idx_array::value(std::size_t i) const {
  const std::uint8_t* p = payload.data() + i * idx_detail::item_size(dtype);
  switch (dtype) {
    case idx_dtype::u8: return p[0];
    case idx_dtype::i8: return static_cast<std::int8_t>(p[0]);
    case idx_dtype::i16: return static_cast<std::int16_t>(idx_detail::load_be(p, 2));
    case idx_dtype::i32: return static_cast<std::int32_t>(idx_detail::load_be(p, 4));
    case idx_dtype::f32: return std::bit_cast<float>(static_cast<std::uint32_t>(idx_detail::load_be(p, 4)));
    case idx_dtype::f64: return std::bit_cast<double>(idx_detail::load_be(p, 8));
  }
  return 0.0;
}

inline std::vector<double> idx_array::to_doubles() const {
  const std::size_t n = size();
  std::vector<double> out(n);
  for (std::size_t i = 0; i < n; ++i) out[i] = value(i);
  return out;
}

inline std::vector<std::int64_t> idx_array::to_int64() const {
  if (dtype == idx_dtype::f32 || dtype == idx_dtype::f64) {
    throw error(ayf::detail::concat("idx_array::to_int64: expected an integer dtype, received ",
                                    idx_detail::name(dtype)));
  }
  const std::size_t n = size();
  std::vector<std::int64_t> out(n);
  for (std::size_t i = 0; i < n; ++i) out[i] = static_cast<std::int64_t>(value(i));
  return out;
}

}  // namespace ayf::io
