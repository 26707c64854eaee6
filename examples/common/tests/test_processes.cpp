// ayf_cli/processes.hpp in a 1-process build: --shards resolution and the top-level error handler.
#include <catch2/catch.hpp>

#include <iostream>
#include <sstream>
#include <string>

#include "ayf_cli/processes.hpp"

namespace {

/// The message of the option_error `f` raises, or "" when it raises none.
template <class F>
std::string option_error_of(F&& f) {
  try {
    f();
  } catch (const ayf_cli::option_error& e) {
    return e.what();
  }
  return "";
}

/// What report_error writes to std::cerr, and its return value.
std::string reported(const std::exception& e, const ayf_cli::process_group& group, int& rc) {
  std::ostringstream captured;
  std::streambuf* const old = std::cerr.rdbuf(captured.rdbuf());
  rc = ayf_cli::report_error("prog", e, group);
  std::cerr.rdbuf(old);
  return captured.str();
}

}  // namespace

TEST_CASE("cli: --shards defaults to one per process and must split the batch over the processes", "[cli]") {
  const ayf_cli::process_group one{0, 1}, four{3, 4};
  CHECK(ayf_cli::resolve_shards(0, 16, one) == 1);
  CHECK(ayf_cli::resolve_shards(2, 16, one) == 2);
  CHECK(ayf_cli::resolve_shards(0, 16, four) == 4);
  CHECK(ayf_cli::resolve_shards(8, 16, four) == 8);
  CHECK(option_error_of([&] { (void)ayf_cli::resolve_shards(3, 16, one); }) ==
        "--shards: expected a divisor of --batch (16), received '3'");
  CHECK(option_error_of([&] { (void)ayf_cli::resolve_shards(2, 16, four); }) ==
        "--shards: expected a multiple of the process count 4, received '2'");
  CHECK(option_error_of([&] { (void)ayf_cli::resolve_shards(0, 6, four); }) ==
        "--shards: expected a divisor of --batch (6), received '4'");
}

TEST_CASE("cli: report_error writes one line without the program's and the trainer's prefixes, from rank 0",
          "[cli]") {
  int rc = 0;
  CHECK(reported(ayf::error("prog: trainer: the teacher diverged"), {0, 1}, rc) ==
        "prog: error: the teacher diverged\n");
  CHECK(rc == 1);
  CHECK(reported(ayf::error("program: x"), {0, 1}, rc) == "prog: error: program: x\n");
  CHECK(reported(ayf_cli::option_error("--shards: bad"), {0, 2}, rc) == "prog: error: --shards: bad\n");
  CHECK(rc == 1);
  CHECK(reported(ayf_cli::option_error("--shards: bad"), {1, 2}, rc).empty());  // rank 0 reports it
  CHECK(rc == 1);
}
