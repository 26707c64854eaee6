// tests/test_durability.cpp: write_file_atomically makes a write durable (design.md §7): the temporary file
// is fsync'ed before the rename and its directory after it. The test binary interposes the C library's
// fsync (forwarding to the system call) and records which paths were synced, in which order.
#include <catch2/catch.hpp>

#if defined(__linux__)

#include <sys/syscall.h>
#include <unistd.h>

#include <filesystem>
#include <mutex>
#include <string>
#include <vector>

#include "ayf/io/atomic_write.hpp"

namespace {

std::mutex synced_mutex;
bool recording = false;
std::vector<std::string> synced_paths;

}  // namespace

// Interposes libc's fsync for the whole test binary; every call still reaches the kernel.
extern "C" int fsync(int fd) {
  {
    std::lock_guard<std::mutex> lock(synced_mutex);
    if (recording) {
      const std::string link = "/proc/self/fd/" + std::to_string(fd);
      std::error_code ec;
      const auto target = std::filesystem::read_symlink(link, ec);
      synced_paths.push_back(ec ? std::string("?") : target.string());
    }
  }
  return static_cast<int>(::syscall(SYS_fsync, fd));
}

namespace fs = std::filesystem;

TEST_CASE("write_file_atomically fsyncs the temporary file before the rename and the directory after it",
          "[io][cpu]") {
  const fs::path dir = fs::temp_directory_path() / ("ayf_durability_" + std::to_string(::getpid()));
  fs::remove_all(dir);
  fs::create_directories(dir);
  const fs::path canonical_dir = fs::canonical(dir);
  const fs::path target = dir / "state.safetensors";

  for (int round = 0; round < 2; ++round) {  // a new file, then replacing it
    {
      std::lock_guard<std::mutex> lock(synced_mutex);
      synced_paths.clear();
      recording = true;
    }
    const std::string content(4096 + round, static_cast<char>('a' + round));
    ayf::io::write_file_atomically(target, content);
    std::vector<std::string> paths;
    {
      std::lock_guard<std::mutex> lock(synced_mutex);
      recording = false;
      paths = synced_paths;
    }
    INFO("round " << round << ", synced: " << paths.size() << " paths");
    REQUIRE(paths.size() >= 2);
    // First the temporary file beside the target (not the target itself: it is renamed afterwards) ...
    const fs::path first(paths.front());
    CHECK(first.parent_path() == canonical_dir);
    CHECK(first.filename() != target.filename());
    // ... last the directory that holds the renamed file.
    CHECK(fs::path(paths.back()) == canonical_dir);
    CHECK(ayf::io::read_file(target, "test") == content);
  }
  fs::remove_all(dir);
}

#endif  // __linux__
