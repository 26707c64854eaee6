// ayf/io/atomic_write.hpp: whole files read with clear errors, and files written atomically (design.md §7):
// the content goes to a temporary file beside the target, is flushed and fsync'ed, renamed over the target,
// and the directory is fsync'ed, so a reader never sees half a file and a power cut keeps the old or the new
// file. On systems without POSIX fsync the content is flushed through the C++ stream only.
#pragma once

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <string_view>
#include <system_error>

#include "ayf/core/error.hpp"

#if defined(__unix__) || defined(__APPLE__)
#include <fcntl.h>
#include <unistd.h>
#define AYF_POSIX_FSYNC 1
#endif

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

namespace atomic_write_detail {

#ifdef AYF_POSIX_FSYNC
/// Writes `content` to a new file `path` and fsyncs it; the error text on failure, empty on success.
inline std::string write_synced(const std::filesystem::path& path, std::string_view content) {
  const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0666);
  if (fd < 0) return detail::concat("cannot open '", path.string(), "' for writing: ", std::strerror(errno));
  std::size_t done = 0;
  while (done < content.size()) {
    const ::ssize_t n = ::write(fd, content.data() + done, content.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      const int e = errno;
      ::close(fd);
      return detail::concat("writing '", path.string(), "' failed: ", std::strerror(e));
    }
    done += static_cast<std::size_t>(n);
  }
  if (::fsync(fd) != 0) {
    const int e = errno;
    ::close(fd);
    return detail::concat("fsync of '", path.string(), "' failed: ", std::strerror(e));
  }
  if (::close(fd) != 0) return detail::concat("closing '", path.string(), "' failed: ", std::strerror(errno));
  return {};
}

/// fsyncs the directory `dir` so a rename inside it is durable; the error text, empty on success.
/// File systems that cannot sync a directory (EINVAL, ENOTSUP) count as success.
inline std::string sync_directory(const std::filesystem::path& dir) {
  const int fd = ::open(dir.empty() ? "." : dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return detail::concat("cannot open directory '", dir.string(), "': ", std::strerror(errno));
  int e = 0;
  if (::fsync(fd) != 0 && errno != EINVAL && errno != ENOTSUP) e = errno;
  ::close(fd);
  return e == 0 ? std::string() : detail::concat("fsync of directory '", dir.string(), "' failed: ", std::strerror(e));
}
#else
inline std::string write_synced(const std::filesystem::path& path, std::string_view content) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  if (!out) return detail::concat("cannot open '", path.string(), "' for writing");
  out.write(content.data(), static_cast<std::streamsize>(content.size()));
  out.flush();
  if (!out) return detail::concat("writing '", path.string(), "' failed");
  return {};
}
inline std::string sync_directory(const std::filesystem::path&) { return {}; }
#endif

}  // namespace atomic_write_detail

/// Writes `content` to `path` atomically and durably (temporary file "<path>.tmp", fsync, rename, fsync of the
/// directory); creates missing parent directories. Raises ayf::error naming the path on any failure; a failure
/// before the rename leaves an existing file at `path` untouched and removes the temporary file.
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
  if (const std::string failure = atomic_write_detail::write_synced(temporary, content); !failure.empty()) {
    if (!fs::is_directory(temporary, ec)) fs::remove(temporary, ec);
    throw error(detail::concat("write_file_atomically: ", failure));
  }
  fs::rename(temporary, path, ec);
  if (ec) {
    const std::string reason = ec.message();
    fs::remove(temporary, ec);
    throw error(detail::concat("write_file_atomically: cannot rename onto '", path.string(), "': ", reason));
  }
  if (const std::string failure = atomic_write_detail::sync_directory(path.parent_path()); !failure.empty()) {
    throw error(detail::concat("write_file_atomically: '", path.string(), "' was written, but ", failure));
  }
}

}  // namespace ayf::io
