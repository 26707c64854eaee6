// ayf/io/atomic_write.hpp: files written atomically (design.md §7): the content goes to a
// temporary file beside the target, is flushed, and is renamed over it, so a reader never sees half a file.
#pragma once

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <string>
#include <string_view>
#include <system_error>

#include "ayf/core/error.hpp"

namespace ayf::io {

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
