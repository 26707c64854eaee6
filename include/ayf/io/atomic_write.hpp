// ayf/io/atomic_write.hpp: whole files read with clear errors, and files written atomically (design.md §7):
// the content goes to a temporary file beside the target, is flushed, and is renamed over it, so a reader
// never sees half a file.
#pragma once

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <string_view>
#include <system_error>

#include "ayf/core/error.hpp"

namespace ayf::io {

/// The bytes of the regular file `path`; raises ayf::error("<where>: cannot read '<path>': ...") when it is
/// missing, not a regular file, or unreadable.
inline std::string read_file(const std::filesystem::path& path, std::string_view where) {
  std::error_code ec;
  if (!std::filesystem::is_regular_file(path, ec)) {
    throw error(detail::concat(where, ": cannot read '", path.string(), "': ",
                               std::filesystem::exists(path, ec) ? "not a regular file" : "no such file"));
  }
  std::ifstream in(path, std::ios::binary);
  if (!in) throw error(detail::concat(where, ": cannot open '", path.string(), "' for reading"));
  std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  if (in.bad()) throw error(detail::concat(where, ": reading '", path.string(), "' failed"));
  return bytes;
}

/// Writes `content` to `path` atomically; creates missing parent directories. Raises ayf::error
/// naming the path on any failure and leaves an existing file at `path` untouched.
inline void write_file_atomically(const std::filesystem::path& path, std::string_view content) {
  namespace fs = std::filesystem;
  std::error_code ec;
  if (path.has_parent_path()) {
    fs::create_directories(path.parent_path(), ec);
    if (ec) {
      throw error(detail::concat("write_file_atomically: cannot create directory '",
                                 path.parent_path().string(), "': ", ec.message()));
    }
  }
  fs::path temporary = path;
  temporary += ".tmp";
  {
    std::ofstream out(temporary, std::ios::binary | std::ios::trunc);
    if (!out) throw error(detail::concat("write_file_atomically: cannot open '", temporary.string(), "' for writing"));
    out.write(content.data(), static_cast<std::streamsize>(content.size()));
    out.flush();
    if (!out) {
      out.close();
      fs::remove(temporary, ec);
      throw error(detail::concat("write_file_atomically: writing '", temporary.string(), "' failed"));
    }
  }
  fs::rename(temporary, path, ec);
  if (ec) {
    fs::remove(temporary, ec);
    throw error(detail::concat("write_file_atomically: cannot rename onto '", path.string(), "': ", ec.message()));
  }
}

}  // namespace ayf::io
