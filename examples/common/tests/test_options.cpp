// ayf_cli/options.hpp: strict option parsing, the output-directory check and shell-free process start.
#include <catch2/catch.hpp>

#include <cstdint>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include <unistd.h>

#include "ayf_cli/options.hpp"

namespace fs = std::filesystem;

namespace {

/// Parses `args` (after the program name); returns the option error's message, or "" on success.
std::string parse(CLI::App& app, std::vector<std::string> args) {
  std::vector<std::string> reversed(args.rbegin(), args.rend());
  try {
    app.parse(reversed);
  } catch (const CLI::ParseError& e) {
    return e.what();
  }
  return "";
}

}  // namespace

TEST_CASE("cli: counts reject negative, fractional, empty and out-of-range text, naming option and value", "[cli]") {
  CHECK(ayf_cli::parse_count<std::size_t>("--n", "12", 1, 100) == 12);
  CHECK(ayf_cli::parse_count<std::size_t>("--n", " 7 ", 1, 100) == 7);
  CHECK(ayf_cli::parse_count<std::uint64_t>("--seed", "18446744073709551615", 0, UINT64_MAX) == UINT64_MAX);
  for (const char* bad : {"-1", "0", "101", "1.5", "1e3", "abc", "", "+-3", "18446744073709551616", "0x10"}) {
    INFO(bad);
    try {
      ayf_cli::parse_count<std::size_t>("--samples", bad, 1, 100);
      FAIL("accepted");
    } catch (const CLI::ValidationError& e) {
      const std::string what = e.what();
      CHECK(what.find("--samples") != std::string::npos);
      CHECK(what.find(std::string("'") + bad + "'") != std::string::npos);
      CHECK(what.find("[1, 100]") != std::string::npos);
    }
  }
}

TEST_CASE("cli: numbers must be finite and inside the interval", "[cli]") {
  const ayf_cli::interval positive{0.0, 1.0, true, false};
  CHECK(ayf_cli::parse_number("--lr", "1e-3", positive) == 1e-3);
  CHECK(ayf_cli::parse_number("--lr", "+0.5", positive) == 0.5);
  CHECK(ayf_cli::parse_number("--lr", "1", positive) == 1.0);
  for (const char* bad : {"0", "1.0001", "nan", "-nan", "inf", "-inf", "infinity", "1e400", "abc", "", "0.5x", "-0.1"}) {
    INFO(bad);
    CHECK_THROWS_WITH(ayf_cli::parse_number("--lr", bad, positive),
                      Catch::Contains("--lr") && Catch::Contains(std::string("'") + bad + "'") &&
                          Catch::Contains("a finite number in (0, 1]"));
  }
  CHECK(ayf_cli::interval{}.contains(-1e300));
  CHECK_FALSE(ayf_cli::interval{}.contains(std::numeric_limits<double>::infinity()));
}

TEST_CASE("cli: options registered through the helper parse, bound and report every value", "[cli]") {
  CLI::App app;
  std::size_t steps = 10;
  double lr = 1e-3;
  std::vector<std::size_t> counts{1, 2};
  std::vector<double> range{1.0, 3.0};
  std::string backend = "eigen";
  std::vector<std::string> methods{"a"};
  std::string out = "dir";
  ayf_cli::add_count<std::size_t>(app, "--steps", steps, "steps", 1, 1000);
  ayf_cli::add_number(app, "--lr", lr, "rate", {0.0, 1.0, true, false});
  ayf_cli::add_count_list<std::size_t>(app, "--sample-steps", counts, "counts", 1, 64, 3);
  ayf_cli::add_number_list(app, "--lambda-range", range, "scales", {0.0, 100.0}, 2, 2);
  ayf_cli::add_choice(app, "--backend", backend, "backend", {"eigen", "thrust"});
  ayf_cli::add_choice_list(app, "--methods", methods, "methods", {"a", "b", "c"});
  ayf_cli::add_text(app, "--out", out, "output directory");

  // The help shows the defaults and the bounds.
  const std::string help = app.help();
  CHECK(help.find("an integer in [1, 1000]") != std::string::npos);
  CHECK(help.find("1,2") != std::string::npos);
  CHECK(help.find("0.001") != std::string::npos);

  CHECK(parse(app, {"--steps", "5", "--lr", "0.5", "--sample-steps", "4,8", "--lambda-range", "2", "5",
                    "--backend", "thrust", "--methods", "c,a", "--out", "x y"}) == "");
  CHECK(steps == 5);
  CHECK(lr == 0.5);
  CHECK(counts == std::vector<std::size_t>{4, 8});
  CHECK(range == std::vector<double>{2.0, 5.0});
  CHECK(backend == "thrust");
  CHECK(methods == std::vector<std::string>{"c", "a"});
  CHECK(out == "x y");

  struct bad_case {
    std::vector<std::string> args;
    std::vector<std::string> needles;
  };
  const std::vector<bad_case> cases{
      {{"--steps", "-1"}, {"--steps", "'-1'"}},
      {{"--steps", "1001"}, {"--steps", "'1001'"}},
      {{"--lr", "inf"}, {"--lr", "'inf'"}},
      {{"--lr", "nan"}, {"--lr", "'nan'"}},
      {{"--sample-steps", "abc"}, {"--sample-steps", "'abc'"}},
      {{"--sample-steps", ""}, {"--sample-steps", "list of 1 to 3"}},
      {{"--sample-steps", ","}, {"--sample-steps", "no empty items"}},
      {{"--sample-steps", "1,,2"}, {"--sample-steps", "'1,,2'"}},
      {{"--sample-steps", "1,2,3,4"}, {"--sample-steps", "'1,2,3,4'"}},
      {{"--sample-steps", "0"}, {"--sample-steps", "'0'"}},
      {{"--lambda-range", "1"}, {"--lambda-range", "list of 2"}},
      {{"--lambda-range", "1", "nan"}, {"--lambda-range", "'nan'"}},
      {{"--backend", "cuda"}, {"--backend", "'cuda'", "eigen, thrust"}},
      {{"--methods", "a,d"}, {"--methods", "'d'"}},
      {{"--methods", "a,a"}, {"--methods", "each once"}},
      {{"--out", ""}, {"--out", "non-empty"}},
  };
  for (const auto& c : cases) {
    CLI::App fresh;
    std::size_t s = 10;
    double l = 1e-3;
    std::vector<std::size_t> k{1};
    std::vector<double> lr2{1, 3};
    std::string b = "eigen", o = "dir";
    std::vector<std::string> m{"a"};
    ayf_cli::add_count<std::size_t>(fresh, "--steps", s, "steps", 1, 1000);
    ayf_cli::add_number(fresh, "--lr", l, "rate", {0.0, 1.0, true, false});
    ayf_cli::add_count_list<std::size_t>(fresh, "--sample-steps", k, "counts", 1, 64, 3);
    ayf_cli::add_number_list(fresh, "--lambda-range", lr2, "scales", {0.0, 100.0}, 2, 2);
    ayf_cli::add_choice(fresh, "--backend", b, "backend", {"eigen", "thrust"});
    ayf_cli::add_choice_list(fresh, "--methods", m, "methods", {"a", "b", "c"});
    ayf_cli::add_text(fresh, "--out", o, "output directory");
    const std::string message = parse(fresh, c.args);
    INFO(c.args.front() << " " << (c.args.size() > 1 ? c.args[1] : "") << " -> " << message);
    REQUIRE_FALSE(message.empty());
    for (const auto& needle : c.needles) {
      INFO(needle);
      CHECK(message.find(needle) != std::string::npos);
    }
  }
}

TEST_CASE("cli: the output directory is created and probed before any work", "[cli]") {
  const fs::path root = fs::temp_directory_path() / ("ayf_cli_test_" + std::to_string(::getpid()));
  fs::remove_all(root);
  fs::create_directories(root);
  ayf_cli::prepare_output_directory("--out", root / "a" / "b");
  CHECK(fs::is_directory(root / "a" / "b"));
  CHECK(fs::is_empty(root / "a" / "b"));  // the probe file is removed
  std::ofstream(root / "file") << "x";
  CHECK_THROWS_WITH(ayf_cli::prepare_output_directory("--out", root / "file" / "sub"),
                    Catch::Contains("--out") && Catch::Contains("file/sub"));
  CHECK_THROWS_WITH(ayf_cli::prepare_output_directory("--out", root / "file"), Catch::Contains("not a directory", Catch::CaseSensitive::No));
  fs::remove_all(root);
}

TEST_CASE("cli: run_process passes arguments as data, reports exit status and a missing program", "[cli]") {
  const fs::path marker = fs::current_path() / "ayf_cli_injected";
  fs::remove(marker);
  // `test A = A` exits 0 only when both arguments arrive unchanged; a shell would run the $(...).
  const std::string tricky = "it's '$(touch ayf_cli_injected)' `touch ayf_cli_injected`; touch ayf_cli_injected";
  const auto same = ayf_cli::run_process({"test", tricky, "=", tricky});
  CHECK(same.succeeded());
  CHECK_FALSE(fs::exists(marker));
  const auto differ = ayf_cli::run_process({"test", "a", "=", "b"});
  CHECK(differ.started);
  CHECK(differ.exit_status == 1);
  CHECK_FALSE(differ.succeeded());
  const auto missing = ayf_cli::run_process({"ayf-no-such-program-xyz"});
  CHECK_FALSE(missing.succeeded());
  CHECK_FALSE(missing.error.empty());
}
