// ayf/backends/zlib/gzip.hpp: gzip decompression through zlib (component ayf::zlib), and files read
// whole that may be gzip-compressed (detected by the gzip magic 1f 8b, not by the name). Concatenated
// gzip members are decoded in turn; a corrupt or truncated stream, or bytes after the last member,
// raise ayf::error naming the source.
#pragma once

#include <zlib.h>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <limits>
#include <string>
#include <string_view>

#include "ayf/core/error.hpp"
#include "ayf/io/atomic_write.hpp"

namespace ayf::io {

/// True when `bytes` start with the gzip magic 0x1f 0x8b.
inline bool is_gzip(std::string_view bytes) {
  return bytes.size() >= 2 && static_cast<unsigned char>(bytes[0]) == 0x1f &&
         static_cast<unsigned char>(bytes[1]) == 0x8b;
}

/// The decompressed content of the gzip stream `bytes` (named `source` in messages); at most
/// `max_bytes` of output (a larger stream raises ayf::error instead of exhausting memory; the default
/// is 8 GiB).
inline std::string gunzip(std::string_view bytes, std::string_view source,
                          std::size_t max_bytes = std::size_t{1} << 33) {
  const auto fail = [&](const auto&... what) {
    throw error(ayf::detail::concat("gunzip: '", source, "': ", what...));
  };
  if (!is_gzip(bytes)) fail("not a gzip stream (expected the magic 1f 8b)");
  z_stream zs{};
  if (inflateInit2(&zs, 16 + MAX_WBITS) != Z_OK) fail("zlib inflateInit2 failed");
  struct end_guard {
    z_stream* zs;
    ~end_guard() { inflateEnd(zs); }
  } guard{&zs};

  std::string out;
  std::size_t consumed = 0;
  constexpr std::size_t chunk = std::size_t{1} << 20;
  while (true) {
    // One member: feed the input in pieces a uInt can count.
    bool member_done = false;
    while (!member_done) {
      if (zs.avail_in == 0 && consumed < bytes.size()) {
        const std::size_t piece = std::min<std::size_t>(bytes.size() - consumed, std::numeric_limits<uInt>::max());
        zs.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(bytes.data() + consumed));
        zs.avail_in = static_cast<uInt>(piece);
        consumed += piece;
      }
      // Room for one byte past the limit, so reaching it is told apart from exceeding it.
      const std::size_t old_size = out.size();
      const std::size_t grow = max_bytes - old_size < chunk ? max_bytes - old_size + 1 : chunk;
      out.resize(old_size + grow);
      zs.next_out = reinterpret_cast<Bytef*>(out.data() + old_size);
      zs.avail_out = static_cast<uInt>(grow);
      const bool input_left = zs.avail_in > 0 || consumed < bytes.size();
      const int rc = inflate(&zs, Z_NO_FLUSH);
      out.resize(old_size + grow - zs.avail_out);
      if (out.size() > max_bytes) fail("decompressed size exceeds the limit of ", max_bytes, " bytes");
      if (rc == Z_STREAM_END) {
        member_done = true;
      } else if (rc == Z_BUF_ERROR && !input_left) {
        fail("truncated gzip stream: the input ends inside a member after ", out.size(), " decompressed bytes");
      } else if (rc != Z_OK && rc != Z_BUF_ERROR) {
        const std::string reason = zs.msg != nullptr ? std::string(zs.msg) : ayf::detail::concat("code ", rc);
        fail("corrupt gzip stream (zlib: ", reason, ") after ", out.size(), " decompressed bytes");
      } else if (rc == Z_OK && zs.avail_in == 0 && consumed == bytes.size() && zs.avail_out != 0) {
        fail("truncated gzip stream: the input ends inside a member after ", out.size(), " decompressed bytes");
      }
    }
    const std::size_t rest = zs.avail_in + (bytes.size() - consumed);
    if (rest == 0) break;
    if (!is_gzip(bytes.substr(bytes.size() - rest))) {
      fail("trailing garbage: ", rest, " bytes after the end of the gzip stream");
    }
    if (inflateReset(&zs) != Z_OK) fail("zlib inflateReset failed");
  }
  return out;
}

/// The bytes of the file at `path`, decompressed when they are a gzip stream (see gunzip).
inline std::string read_maybe_gzip(const std::filesystem::path& path, std::string_view where) {
  std::string bytes = read_file(path, where);
  if (!is_gzip(bytes)) return bytes;
  return gunzip(bytes, path.string());
}

}  // namespace ayf::io
