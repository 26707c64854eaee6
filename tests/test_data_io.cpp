// tests/test_data_io.cpp: the 2-D toy generators against their documented distributions
// (ayf/data/toy2d.hpp), and the file formats: CSV, .npy (bytes written here from the NumPy format
// description), safetensors (byte layouts of the reference implementation's own tests), PNG
// (signature, IHDR, and pixels decoded with stb_image). Round trips are bitwise; every corrupt
// input must raise ayf::error naming the file and the field.
#include <algorithm>
#include <array>
#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <limits>
#include <map>
#include <random>
#include <string>
#include <string_view>
#include <vector>

#include <catch2/catch.hpp>

#include "ayf/core/error.hpp"
#include "ayf/data/toy2d.hpp"
#include "ayf/io/csv.hpp"
#include "ayf/io/npy.hpp"
#include "ayf/io/png.hpp"
#include "ayf/io/safetensors.hpp"
#include "support/scratch_dir.hpp"

// A reader for checking the written PNG pixels; static, so it never clashes with other TUs.
#define STB_IMAGE_STATIC
#define STB_IMAGE_IMPLEMENTATION
#define STBI_ONLY_PNG
#if defined(__GNUC__)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wunused-function"
#endif
#include <stb/stb_image.h>
#if defined(__GNUC__)
#pragma GCC diagnostic pop
#endif

namespace {

namespace fs = std::filesystem;
using ayf::data::points;
using Catch::Contains;

/// A fresh directory for one test (support/scratch_dir.hpp), named after this file.
struct scratch_dir : ayf_test::scratch_dir {
  scratch_dir() : ayf_test::scratch_dir("ayf_test_data_io") {}
};

void write_bytes(const fs::path& path, std::string_view bytes) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
}

std::string read_bytes(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

/// Bitwise equality of two double vectors (so -0.0 != 0.0 and NaN payloads count).
bool same_bits(const std::vector<double>& a, const std::vector<double>& b) {
  return a.size() == b.size() && (a.empty() || std::memcmp(a.data(), b.data(), a.size() * sizeof(double)) == 0);
}

struct moments {
  double mean_x = 0, mean_y = 0, var_x = 0, var_y = 0;
};

moments moments_of(const points& p) {
  moments m;
  const auto n = static_cast<double>(p.rows);
  for (std::size_t i = 0; i < p.rows; ++i) {
    m.mean_x += p.at(i, 0) / n;
    m.mean_y += p.at(i, 1) / n;
  }
  for (std::size_t i = 0; i < p.rows; ++i) {
    m.var_x += (p.at(i, 0) - m.mean_x) * (p.at(i, 0) - m.mean_x) / n;
    m.var_y += (p.at(i, 1) - m.mean_y) * (p.at(i, 1) - m.mean_y) / n;
  }
  return m;
}

/// |count - n p| within 5 binomial standard deviations.
bool binomial_ok(std::size_t count, std::size_t n, double p) {
  const double mean = static_cast<double>(n) * p, sd = std::sqrt(static_cast<double>(n) * p * (1 - p));
  return std::abs(static_cast<double>(count) - mean) <= 5 * sd;
}

constexpr double pi = 3.14159265358979323846;

// ---- .npy bytes written from the format description (numpy.lib.format) ----------------------------

/// magic, version, little-endian header length (2 bytes for 1.0, 4 for 2.0/3.0), the dict text,
/// then `data`. The dict is used as given (the caller pads it).
std::string npy_bytes(int major, std::string_view dict, std::string_view data) {
  std::string out("\x93NUMPY", 6);
  out += static_cast<char>(major);
  out += '\0';
  const std::size_t n = dict.size();
  out += static_cast<char>(n & 0xff);
  out += static_cast<char>((n >> 8) & 0xff);
  if (major >= 2) {
    out += static_cast<char>((n >> 16) & 0xff);
    out += static_cast<char>((n >> 24) & 0xff);
  }
  out += dict;
  out += data;
  return out;
}

template <class T>
std::string raw(const std::vector<T>& values) {
  return {reinterpret_cast<const char*>(values.data()), values.size() * sizeof(T)};
}

// ---- safetensors bytes ----------------------------------------------------------------------------

/// 8-byte little-endian length of `header`, the header, then `data`.
std::string st_bytes(std::string_view header, std::string_view data = {}) {
  std::string out;
  for (int k = 0; k < 8; ++k) out += static_cast<char>((static_cast<std::uint64_t>(header.size()) >> (8 * k)) & 0xff);
  out += header;
  out += data;
  return out;
}

void require_st_error(std::string_view bytes, std::string_view field) {
  INFO("field " << field);
  REQUIRE_THROWS_MATCHES(ayf::io::parse_safetensors(bytes, "corrupt.safetensors"), ayf::error,
                         Catch::Matchers::Predicate<ayf::error>(
                             [&](const ayf::error& e) {
                               const std::string what = e.what();
                               return what.find("corrupt.safetensors") != std::string::npos &&
                                      what.find(field) != std::string::npos;
                             },
                             "names the file and '" + std::string(field) + "'"));
}

}  // namespace

// ================================================================================================
// toy generators
// ================================================================================================

TEST_CASE("checkerboard: uniform on the 8 black unit squares of [-2, 2]^2", "[data][cpu]") {
  const std::size_t n = 16000;
  const points p = ayf::data::checkerboard(n, 7);
  REQUIRE(p.rows == n);
  REQUIRE(p.cols == 2);
  REQUIRE(p.values.size() == 2 * n);
  CHECK(p.labels.empty());
  std::map<std::pair<int, int>, std::size_t> squares;
  double frac_x = 0, frac_y = 0;
  for (std::size_t i = 0; i < n; ++i) {
    const double x = p.at(i, 0), y = p.at(i, 1);
    REQUIRE(x >= -2);
    REQUIRE(x < 2);
    REQUIRE(y >= -2);
    REQUIRE(y < 2);
    const int cx = static_cast<int>(std::floor(x)), cy = static_cast<int>(std::floor(y));
    INFO("point " << i << " = (" << x << ", " << y << ")");
    REQUIRE((cx + cy) % 2 == 0);  // black: lower-left corner with an even coordinate sum
    ++squares[{cx, cy}];
    frac_x += (x - cx) / static_cast<double>(n);
    frac_y += (y - cy) / static_cast<double>(n);
  }
  CHECK(squares.size() == 8);
  for (const auto& [square, count] : squares) {
    INFO("square " << square.first << ", " << square.second << ": " << count);
    CHECK(binomial_ok(count, n, 1.0 / 8));
  }
  // Uniform within a square: the fractional parts have mean 1/2, sd sqrt(1/12 / n).
  const double bound = 5 * std::sqrt(1.0 / 12 / static_cast<double>(n));
  CHECK(std::abs(frac_x - 0.5) < bound);
  CHECK(std::abs(frac_y - 0.5) < bound);
  const moments m = moments_of(p);
  CHECK(std::abs(m.mean_x) < 0.05);
  CHECK(std::abs(m.mean_y) < 0.05);
  CHECK(std::sqrt(m.var_x) == Approx(4 / std::sqrt(12.0)).epsilon(0.02));
  CHECK(std::sqrt(m.var_y) == Approx(4 / std::sqrt(12.0)).epsilon(0.02));
}

TEST_CASE("eight_gaussians: N(2 (cos k pi/4, sin k pi/4), 0.1^2 I), equal weights", "[data][cpu]") {
  const std::size_t n = 16000;
  const points p = ayf::data::eight_gaussians(n, 3);
  REQUIRE(p.rows == n);
  CHECK(p.labels.empty());
  std::array<std::size_t, 8> counts{};
  std::array<double, 8> sum_dx2{}, sum_dy2{};
  for (std::size_t i = 0; i < n; ++i) {
    const double x = p.at(i, 0), y = p.at(i, 1);
    double angle = std::atan2(y, x);
    if (angle < 0) angle += 2 * pi;
    const auto k = static_cast<std::size_t>(std::lround(angle / (pi / 4))) % 8;
    const double dx = x - 2 * std::cos(static_cast<double>(k) * pi / 4);
    const double dy = y - 2 * std::sin(static_cast<double>(k) * pi / 4);
    INFO("point " << i);
    REQUIRE(std::hypot(dx, dy) < 0.7);  // 7 standard deviations
    ++counts[k];
    sum_dx2[k] += dx * dx;
    sum_dy2[k] += dy * dy;
  }
  for (std::size_t k = 0; k < 8; ++k) {
    INFO("component " << k);
    CHECK(binomial_ok(counts[k], n, 1.0 / 8));
    const auto c = static_cast<double>(counts[k]);
    // The sample variance of c normals has relative sd sqrt(2 / c) ~ 0.045: allow 4 of those.
    CHECK(std::sqrt(sum_dx2[k] / c) == Approx(0.1).epsilon(0.1));
    CHECK(std::sqrt(sum_dy2[k] / c) == Approx(0.1).epsilon(0.1));
  }
  const moments m = moments_of(p);
  CHECK(std::sqrt(m.var_x) == Approx(std::sqrt(2.01)).epsilon(0.03));
  CHECK(std::sqrt(m.var_y) == Approx(std::sqrt(2.01)).epsilon(0.03));
}

TEST_CASE("two_moons: scaled make_moons with labels for the moon", "[data][cpu]") {
  const std::size_t n = 16000;
  const points p = ayf::data::two_moons(n, 5);
  REQUIRE(p.rows == n);
  REQUIRE(p.labels.size() == n);
  std::size_t ones = 0;
  double radial_sq = 0;
  for (std::size_t i = 0; i < n; ++i) {
    const int label = p.labels[i];
    REQUIRE((label == 0 || label == 1));
    ones += static_cast<std::size_t>(label);
    // Undo the documented map: q = (cos theta, sin theta) + noise / 2 for both moons.
    const double sign = label == 0 ? 1.0 : -1.0;
    const double qx = sign * p.at(i, 0) / 2 + 0.5, qy = sign * p.at(i, 1) / 2 + 0.25;
    const double radius = std::hypot(qx, qy);
    INFO("point " << i << " label " << label);
    REQUIRE(std::abs(radius - 1) < 0.35);  // noise / 2 has sd 0.05 per coordinate
    REQUIRE(qy > -0.35);                   // theta in [0, pi): sin theta >= 0
    radial_sq += (radius - 1) * (radius - 1) / static_cast<double>(n);
  }
  CHECK(binomial_ok(ones, n, 0.5));
  CHECK(std::sqrt(radial_sq) == Approx(0.05).epsilon(0.1));
  const moments m = moments_of(p);
  const double var_x = 3 + 0.01;
  const double var_y = 2 - 16 / (pi * pi) + (4 / pi - 0.5) * (4 / pi - 0.5) + 0.01;
  CHECK(std::abs(m.mean_x) < 0.05);
  CHECK(std::abs(m.mean_y) < 0.05);
  CHECK(std::sqrt(m.var_x) == Approx(std::sqrt(var_x)).epsilon(0.02));
  CHECK(std::sqrt(m.var_y) == Approx(std::sqrt(var_y)).epsilon(0.02));
}

TEST_CASE("two_class_mixture: a ring (label 0) around four blobs (label 1)", "[data][cpu]") {
  const std::size_t n = 16000;
  const points p = ayf::data::two_class_mixture(n, 11);
  REQUIRE(p.rows == n);
  REQUIRE(p.labels.size() == n);
  std::size_t ring = 0;
  double ring_radius = 0, ring_radius_sq = 0;
  std::array<std::size_t, 4> blobs{};
  double blob_sq = 0;
  for (std::size_t i = 0; i < n; ++i) {
    const double x = p.at(i, 0), y = p.at(i, 1);
    INFO("point " << i << " = (" << x << ", " << y << ") label " << p.labels[i]);
    if (p.labels[i] == 0) {
      const double r = std::hypot(x, y);
      REQUIRE(std::abs(r - 1.5) < 0.7);
      ++ring;
      ring_radius += r;
      ring_radius_sq += r * r;
    } else {
      REQUIRE(p.labels[i] == 1);
      const double cx = x > 0 ? 0.75 : -0.75, cy = y > 0 ? 0.75 : -0.75;
      REQUIRE(std::hypot(x - cx, y - cy) < 1.0);
      ++blobs[(x > 0 ? 1u : 0u) + (y > 0 ? 2u : 0u)];
      blob_sq += ((x - cx) * (x - cx) + (y - cy) * (y - cy)) / 2;
    }
  }
  CHECK(binomial_ok(ring, n, 0.5));
  const auto rings = static_cast<double>(ring);
  const double mean_r = ring_radius / rings;
  CHECK(mean_r == Approx(1.5).margin(0.01));
  CHECK(std::sqrt(ring_radius_sq / rings - mean_r * mean_r) == Approx(0.1).epsilon(0.08));
  for (const auto count : blobs) CHECK(binomial_ok(count, n - ring, 0.25));
  CHECK(std::sqrt(blob_sq / static_cast<double>(n - ring)) == Approx(0.15).epsilon(0.05));
}

TEST_CASE("toy generators are deterministic in (seed, offset) and make_toy2d dispatches by name", "[data][cpu]") {
  for (const auto name : ayf::data::toy2d_names) {
    INFO(name);
    const points a = ayf::data::make_toy2d(name, 64, 42);
    const points b = ayf::data::make_toy2d(name, 64, 42);
    const points c = ayf::data::make_toy2d(name, 64, 43);
    CHECK(same_bits(a.values, b.values));
    CHECK(a.labels == b.labels);
    CHECK_FALSE(same_bits(a.values, c.values));
    // Generating in two pieces gives the same points: the offset counts points.
    const points tail = ayf::data::make_toy2d(name, 24, 42, 40);
    CHECK(same_bits(std::vector<double>(a.values.begin() + 80, a.values.end()), tail.values));
    if (!a.labels.empty()) CHECK(std::vector<int>(a.labels.begin() + 40, a.labels.end()) == tail.labels);
  }
  CHECK(same_bits(ayf::data::make_toy2d("checkerboard", 10, 1).values, ayf::data::checkerboard(10, 1).values));
  CHECK(same_bits(ayf::data::make_toy2d("eight_gaussians", 10, 1).values, ayf::data::eight_gaussians(10, 1).values));
  CHECK(same_bits(ayf::data::make_toy2d("two_moons", 10, 1).values, ayf::data::two_moons(10, 1).values));
  CHECK(same_bits(ayf::data::make_toy2d("two_class_mixture", 10, 1).values,
                  ayf::data::two_class_mixture(10, 1).values));
  CHECK(ayf::data::make_toy2d("checkerboard", 0, 1).rows == 0);
  REQUIRE_THROWS_MATCHES(ayf::data::make_toy2d("spirals", 10, 1), ayf::error,
                         Catch::Matchers::Predicate<ayf::error>([](const ayf::error& e) {
                           const std::string w = e.what();
                           return w.find("'name'") != std::string::npos && w.find("'spirals'") != std::string::npos &&
                                  w.find("checkerboard") != std::string::npos &&
                                  w.find("two_class_mixture") != std::string::npos;
                         }));
}

// ================================================================================================
// CSV
// ================================================================================================

TEST_CASE("CSV round trip is bitwise, labels included", "[io][csv][cpu]") {
  const scratch_dir dir;
  points p = ayf::data::two_class_mixture(50, 9);
  // Values whose decimal form is delicate.
  p.values[0] = 1.0 / 3;
  p.values[1] = -0.0;
  p.values[2] = 5e-324;
  p.values[3] = -1.7976931348623157e308;
  p.values[4] = 0.1;
  p.labels[0] = -7;
  const fs::path path = dir / "sub" / "points.csv";  // the parent directory is created
  ayf::io::write_points_csv(path, p);
  CHECK(read_bytes(path).substr(0, 12) == "x0,x1,label\n");
  const points q = ayf::io::read_points_csv(path, {"label"});
  CHECK(q.rows == p.rows);
  CHECK(q.cols == 2);
  CHECK(same_bits(q.values, p.values));
  CHECK(q.labels == p.labels);
  // Without selecting the label column it reads as a third value column.
  const points r = ayf::io::read_points_csv(path);
  CHECK(r.cols == 3);
  CHECK(r.labels.empty());
  CHECK(r.at(0, 2) == -7.0);

  points unlabelled = ayf::data::checkerboard(20, 2);
  ayf::io::write_points_csv(path, unlabelled, {"u", "v"});
  CHECK(read_bytes(path).substr(0, 4) == "u,v\n");
  CHECK(same_bits(ayf::io::read_points_csv(path).values, unlabelled.values));
}

TEST_CASE("CSV: headerless files, spaces, CRLF, blank lines, label column by name or index", "[io][csv][cpu]") {
  const points a = ayf::io::parse_points_csv("1,2\n3, 4.5\n", "a.csv");
  CHECK(a.rows == 2);
  CHECK(a.cols == 2);
  CHECK(a.values == std::vector<double>{1, 2, 3, 4.5});

  const std::string text = "x, y ,class\r\n\r\n1.5,-2,1\r\n +3e-2 , 4 , 0\r\n\n";
  const points b = ayf::io::parse_points_csv(text, "b.csv", {"class"});
  CHECK(b.rows == 2);
  CHECK(b.cols == 2);
  CHECK(b.values == std::vector<double>{1.5, -2, 3e-2, 4});
  CHECK(b.labels == std::vector<int>{1, 0});
  const points c = ayf::io::parse_points_csv(text, "b.csv", {"2"});
  CHECK(c.labels == b.labels);
  const points d = ayf::io::parse_points_csv("7,0.5\n3,0.25\n", "d.csv", {"0"});
  CHECK(d.labels == std::vector<int>{7, 3});
  CHECK(d.values == std::vector<double>{0.5, 0.25});
  const points e = ayf::io::parse_points_csv("x;y\n1;2\n", "e.csv", {"", ';'});
  CHECK(e.values == std::vector<double>{1, 2});
}

TEST_CASE("CSV: corrupt or missing input raises ayf::error with path, line and column", "[io][csv][cpu]") {
  const scratch_dir dir;
  const auto fails_with = [](const fs::path& path, const ayf::io::csv_read_options& options,
                             std::vector<std::string> parts) {
    parts.push_back(path.string());
    try {
      (void)ayf::io::read_points_csv(path, options);
      FAIL("no error for " << path);
    } catch (const ayf::error& e) {
      const std::string what = e.what();
      for (const auto& part : parts) {
        INFO(what);
        CHECK_THAT(what, Contains(part));
      }
    }
  };
  fails_with(dir / "missing.csv", {}, {"no such file"});
  fails_with(dir.operator/(""), {}, {"not a regular file"});

  const auto file = [&](std::string_view name, std::string_view content) {
    const fs::path path = dir / name;
    write_bytes(path, content);
    return path;
  };
  fails_with(file("empty.csv", ""), {}, {"empty"});
  fails_with(file("blank.csv", "\n \n"), {}, {"empty"});
  fails_with(file("header.csv", "x,y\n"), {}, {"no data rows"});
  fails_with(file("bad.csv", "x,y\n1,2\n3,abc\n"), {}, {"line 3", "column 2", "'abc'"});
  fails_with(file("nan.csv", "1,2\n3,nan\n"), {}, {"line 2", "column 2", "finite"});
  fails_with(file("ragged.csv", "x,y\n1,2\n\n3,4,5\n"), {}, {"line 4", "expected 2 columns", "received 3"});
  fails_with(file("short.csv", "1,2\n3\n"), {}, {"line 2", "received 1"});
  fails_with(file("label.csv", "x,y,label\n1,2,0\n3,4,1.5\n"), {"label"}, {"line 3", "column 3", "integer label"});
  fails_with(file("nolabel.csv", "x,y\n1,2\n"), {"label"}, {"label_column", "x, y", "'label'"});
  fails_with(file("index.csv", "1,2\n"), {"5"}, {"label_column", "below 2"});
  fails_with(file("single.csv", "1\n2\n"), {"0"}, {"no values"});

  points bad;
  bad.rows = 2;
  bad.cols = 2;
  bad.values = {1, 2, 3};
  REQUIRE_THROWS_WITH(ayf::io::write_points_csv(dir / "w.csv", bad), Contains("points.values"));
  bad.values.push_back(std::numeric_limits<double>::quiet_NaN());
  REQUIRE_THROWS_WITH(ayf::io::write_points_csv(dir / "w.csv", bad), Contains("finite"));
  bad.values.back() = 0;
  REQUIRE_THROWS_WITH(ayf::io::write_points_csv(dir / "w.csv", bad, {"only_one"}), Contains("header"));
  CHECK_FALSE(fs::exists(dir / "w.csv"));
}

// ================================================================================================
// .npy
// ================================================================================================

TEST_CASE("npy: hand-written files of every supported version and dtype parse", "[io][npy][cpu]") {
  // numpy.save(np.arange(6.0).reshape(2, 3)) with NumPy 1.24: the dict padded with spaces to
  // 118 bytes so that 10 + 118 = 128 is a multiple of 64.
  std::string dict = "{'descr': '<f8', 'fortran_order': False, 'shape': (2, 3), }";
  dict += std::string(128 - 10 - dict.size() - 1, ' ') + "\n";
  const std::vector<double> values{0, 1, 2, 3, 4, 5};
  const std::string numpy_file = npy_bytes(1, dict, raw(values));
  REQUIRE(numpy_file.size() == 176);
  const auto a = ayf::io::parse_npy(numpy_file, "a.npy");
  CHECK(a.dtype == ayf::io::npy_dtype::f8);
  CHECK(a.shape == std::vector<std::size_t>{2, 3});
  CHECK(a.to_doubles() == values);
  // The writer produces exactly these bytes.
  CHECK(ayf::io::format_npy(values.data(), values.size(), {2, 3}) == numpy_file);

  // Keys in another order, double quotes, no trailing comma, spaces; version 2.0.
  const std::vector<float> f{1.5f, -2.25f, 3.0f};
  const auto b = ayf::io::parse_npy(
      npy_bytes(2, "{ \"shape\" : ( 3 , ) ,  'fortran_order':False,'descr':'<f4' }\n", raw(f)), "b.npy");
  CHECK(b.dtype == ayf::io::npy_dtype::f4);
  CHECK(b.shape == std::vector<std::size_t>{3});
  CHECK(b.to_doubles() == std::vector<double>{1.5, -2.25, 3.0});

  // Version 3.0 (UTF-8 header), int32 and int64, uint8.
  const std::vector<std::int32_t> i4{-1, 2, 2147483647, -2147483647 - 1};
  const auto c = ayf::io::parse_npy(
      npy_bytes(3, "{'descr': '<i4', 'fortran_order': False, 'shape': (2, 2), }\n", raw(i4)), "c.npy");
  CHECK(c.to_int64() == std::vector<std::int64_t>{-1, 2, 2147483647, -2147483648LL});
  const std::vector<std::int64_t> i8{-5, 1LL << 40};
  const auto d =
      ayf::io::parse_npy(npy_bytes(1, "{'descr': '<i8', 'fortran_order': False, 'shape': (2,), }\n", raw(i8)), "d.npy");
  CHECK(d.to_int64() == i8);
  const auto e = ayf::io::parse_npy(
      npy_bytes(1, "{'descr': '|u1', 'fortran_order': False, 'shape': (1, 3), }\n", std::string("\x00\x7f\xff", 3)),
      "e.npy");
  CHECK(e.to_doubles() == std::vector<double>{0, 127, 255});
  // Long headers: every byte of the header length counts (300 > 255 in 1.0; 70000 > 65535 in 2.0).
  for (const auto& [major, length] : {std::pair{1, std::size_t{300}}, std::pair{2, std::size_t{70000}}}) {
    std::string padded = "{'descr': '<i8', 'fortran_order': False, 'shape': (2,), }";
    padded += std::string(length - padded.size() - 1, ' ') + "\n";
    const auto long_header = ayf::io::parse_npy(npy_bytes(major, padded, raw(i8)), "long.npy");
    CHECK(long_header.to_int64() == i8);
  }
  // Zero-size arrays are fine.
  const auto z = ayf::io::parse_npy(npy_bytes(1, "{'descr': '<f8', 'fortran_order': False, 'shape': (0, 2), }\n", ""),
                                    "z.npy");
  CHECK(z.shape == std::vector<std::size_t>{0, 2});
  CHECK(z.to_doubles().empty());
}

TEST_CASE("npy: points and labels round trip bitwise", "[io][npy][cpu]") {
  const scratch_dir dir;
  points p = ayf::data::two_moons(33, 4);
  p.values[0] = -0.0;
  p.values[1] = std::numeric_limits<double>::denorm_min();
  ayf::io::write_points_npy(dir / "x.npy", p, dir / "y.npy");
  const points q = ayf::io::read_points_npy(dir / "x.npy", dir / "y.npy");
  CHECK(q.rows == 33);
  CHECK(q.cols == 2);
  CHECK(same_bits(q.values, p.values));
  CHECK(q.labels == p.labels);
  const auto labels = ayf::io::read_npy(dir / "y.npy");
  CHECK(labels.dtype == ayf::io::npy_dtype::i8);
  CHECK(ayf::io::read_points_npy(dir / "x.npy").labels.empty());

  const std::vector<float> f{0.1f, 0.2f, 0.3f, 0.4f, 0.5f, 0.6f};
  ayf::io::write_npy(dir / "f.npy", f, {3, 2});
  const points pf = ayf::io::read_points_npy(dir / "f.npy");
  CHECK(pf.rows == 3);
  for (std::size_t i = 0; i < f.size(); ++i) CHECK(pf.values[i] == static_cast<double>(f[i]));
  REQUIRE_THROWS_WITH(ayf::io::write_npy(dir / "g.npy", f, {4, 2}), Contains("shape (4, 2)"));
  REQUIRE_THROWS_WITH(ayf::io::write_npy(dir / "g.npy", f, {1, 2, 3, 1, 1}), Contains("'shape'"));
  // Images: [N, H, W] and [N, H, W, C] read back with their shape and values.
  ayf::io::write_npy(dir / "i3.npy", f, {1, 2, 3});
  const auto i3 = ayf::io::read_npy(dir / "i3.npy", 4);
  CHECK(i3.shape == std::vector<std::size_t>{1, 2, 3});
  CHECK(i3.dtype == ayf::io::npy_dtype::f4);
  const auto v3 = i3.to_doubles();
  for (std::size_t i = 0; i < f.size(); ++i) CHECK(v3[i] == static_cast<double>(f[i]));
  ayf::io::write_npy(dir / "i4.npy", f, {3, 1, 1, 2});
  CHECK(ayf::io::read_npy(dir / "i4.npy", 4).shape == std::vector<std::size_t>{3, 1, 1, 2});
}

TEST_CASE("npy: corrupt input raises ayf::error naming the file and the field", "[io][npy][cpu]") {
  const scratch_dir dir;
  const std::vector<double> values{1, 2, 3, 4};
  const std::string good_dict = "{'descr': '<f8', 'fortran_order': False, 'shape': (2, 2), }\n";
  const auto fails_with = [&](std::string_view name, std::string_view bytes, std::vector<std::string> parts) {
    const fs::path path = dir / name;
    write_bytes(path, bytes);
    parts.push_back(path.string());
    try {
      (void)ayf::io::read_npy(path);
      FAIL("no error for " << name);
    } catch (const ayf::error& e) {
      const std::string what = e.what();
      for (const auto& part : parts) {
        INFO(what);
        CHECK_THAT(what, Contains(part));
      }
    }
  };
  const std::string good = npy_bytes(1, good_dict, raw(values));
  REQUIRE(ayf::io::parse_npy(good, "good").to_doubles() == values);
  fails_with("empty.npy", "", {"not a .npy file"});
  fails_with("magic.npy", "\x93NUMPZ" + good.substr(6), {"magic"});
  fails_with("short_header.npy", good.substr(0, 20), {"truncated", "header length"});
  fails_with("v2_preamble.npy", std::string("\x93NUMPY\x02\x00\x10\x00", 10), {"truncated"});
  fails_with("truncated_data.npy", good.substr(0, good.size() - 1), {"data length mismatch", "31"});
  fails_with("extra_data.npy", good + "x", {"data length mismatch", "33"});
  fails_with("version.npy", npy_bytes(4, good_dict, raw(values)), {"version 4.0"});
  fails_with("fortran.npy",
             npy_bytes(1, "{'descr': '<f8', 'fortran_order': True, 'shape': (2, 2), }\n", raw(values)),
             {"'fortran_order'", "not supported"});
  fails_with("big_endian.npy",
             npy_bytes(1, "{'descr': '>f8', 'fortran_order': False, 'shape': (2, 2), }\n", raw(values)),
             {"'descr'", "'>f8'"});
  fails_with("object.npy", npy_bytes(1, "{'descr': '|O', 'fortran_order': False, 'shape': (2, 2), }\n", raw(values)),
             {"'descr'"});
  fails_with("three_d.npy",
             npy_bytes(1, "{'descr': '<f8', 'fortran_order': False, 'shape': (1, 2, 2), }\n", raw(values)),
             {"'shape'", "received 3"});
  fails_with("scalar.npy", npy_bytes(1, "{'descr': '<f8', 'fortran_order': False, 'shape': (), }\n", raw(values)),
             {"'shape'", "received 0"});
  fails_with("unknown_key.npy",
             npy_bytes(1, "{'descr': '<f8', 'fortran_order': False, 'shape': (2, 2), 'x': 1}\n", raw(values)),
             {"unknown key 'x'"});
  fails_with("missing_key.npy", npy_bytes(1, "{'descr': '<f8', 'shape': (2, 2), }\n", raw(values)), {"missing key"});
  fails_with("duplicate_key.npy",
             npy_bytes(1, "{'descr': '<f8', 'descr': '<f8', 'fortran_order': False, 'shape': (4,)}\n", raw(values)),
             {"duplicate key 'descr'"});
  fails_with("unterminated.npy", npy_bytes(1, "{'descr': '<f8\n", raw(values)), {"unterminated"});
  fails_with("no_brace.npy", npy_bytes(1, "'descr': '<f8'\n", raw(values)), {"expected '{'"});
  fails_with("negative.npy",
             npy_bytes(1, "{'descr': '<f8', 'fortran_order': False, 'shape': (-4,), }\n", raw(values)),
             {"non-negative integer"});
  fails_with("overflow.npy",
             npy_bytes(1,
                       "{'descr': '<f8', 'fortran_order': False, 'shape': (4294967296, 4294967296), }\n",
                       raw(values)),
             {"'shape' overflows"});
  fails_with("bool.npy", npy_bytes(1, "{'descr': '<f8', 'fortran_order': maybe, 'shape': (4,), }\n", raw(values)),
             {"True or False"});
  // A header length far past the end of a tiny file.
  fails_with("huge_header.npy", std::string("\x93NUMPY\x02\x00\xff\xff\xff\x7f{}", 14), {"truncated"});

  // Labels must be an integer 1-D array with one entry per row.
  ayf::io::write_npy(dir / "x.npy", values, {2, 2});
  ayf::io::write_npy(dir / "float_labels.npy", std::vector<double>{0, 1}, {2});
  REQUIRE_THROWS_WITH(ayf::io::read_points_npy(dir / "x.npy", dir / "float_labels.npy"),
                      Contains("float_labels.npy") && Contains("integer dtype"));
  ayf::io::write_npy(dir / "three_labels.npy", std::vector<std::int64_t>{0, 1, 1}, {3});
  REQUIRE_THROWS_WITH(ayf::io::read_points_npy(dir / "x.npy", dir / "three_labels.npy"),
                      Contains("three_labels.npy") && Contains("(2,)"));
  ayf::io::write_npy(dir / "one_d.npy", values, {4});
  REQUIRE_THROWS_WITH(ayf::io::read_points_npy(dir / "one_d.npy"), Contains("one_d.npy") && Contains("2 dimensions"));
  REQUIRE_THROWS_WITH(ayf::io::read_npy(dir / "missing.npy"), Contains("missing.npy") && Contains("no such file"));
}

// ================================================================================================
// safetensors
// ================================================================================================

TEST_CASE("safetensors: byte layout of the reference implementation", "[io][safetensors][cpu]") {
  // huggingface/safetensors tensor.rs tests: test_serialization, test_serialization_forced_alignement,
  // test_empty. One F32 tensor [1, 2, 3] = 0..5: a 64-byte header needs no padding.
  const std::vector<float> values{0, 1, 2, 3, 4, 5};
  const std::string data = raw(values);
  CHECK(ayf::io::serialize_safetensors({ayf::io::make_safetensors_tensor("attn.0", values, {1, 2, 3})}) ==
        st_bytes(R"({"attn.0":{"dtype":"F32","shape":[1,2,3],"data_offsets":[0,24]}})", data));
  // A 65-byte header is padded with 7 spaces to 72.
  CHECK(ayf::io::serialize_safetensors({ayf::io::make_safetensors_tensor("attn0", values, {1, 1, 2, 3})}) ==
        st_bytes(R"({"attn0":{"dtype":"F32","shape":[1,1,2,3],"data_offsets":[0,24]}}       )", data));
  CHECK(ayf::io::serialize_safetensors({}) == st_bytes("{}      "));
  CHECK(ayf::io::serialize_safetensors({}, {{"framework", "pt"}}) ==
        st_bytes(R"({"__metadata__":{"framework":"pt"}}     )"));

  // Tensors are laid out by descending dtype alignment (the reference's Dtype order), then by name.
  ayf::io::safetensors_content content;
  content.add("b", std::vector<float>{1}, {1});
  content.add("a", std::vector<double>{2}, {1});
  content.add("c", std::vector<std::uint8_t>{3}, {1});
  content.add("z", std::vector<std::int64_t>{4}, {1});
  content.add("d", std::vector<std::int32_t>{5}, {1});
  content.add("e", std::vector<float>{6}, {1});
  const std::string bytes = ayf::io::serialize_safetensors(content.tensors, content.metadata);
  const std::string header =
      R"({"z":{"dtype":"I64","shape":[1],"data_offsets":[0,8]},"a":{"dtype":"F64","shape":[1],"data_offsets":[8,16]},)"
      R"("b":{"dtype":"F32","shape":[1],"data_offsets":[16,20]},"e":{"dtype":"F32","shape":[1],"data_offsets":[20,24]},)"
      R"("d":{"dtype":"I32","shape":[1],"data_offsets":[24,28]},"c":{"dtype":"U8","shape":[1],"data_offsets":[28,29]}})";
  REQUIRE(bytes.size() >= 8 + header.size());
  CHECK(bytes.substr(8, header.size()) == header);
  CHECK((bytes.size() - 8 - 29) % 8 == 0);
}

TEST_CASE("safetensors: round trip of every dtype, scalars, empty tensors and metadata", "[io][safetensors][cpu]") {
  const scratch_dir dir;
  ayf::io::safetensors_content content;
  const std::vector<float> f32{1.5f, -0.0f, std::numeric_limits<float>::denorm_min(), 3e38f, -7, 0.1f};
  const std::vector<double> f64{1.0 / 3, -0.0, 5e-324, 1e308};
  const std::vector<std::int64_t> i64{std::numeric_limits<std::int64_t>::min(), 0, 42};
  const std::vector<std::int32_t> i32{-1, 2};
  const std::vector<std::uint8_t> u8{0, 255, 7};
  content.add("model.w", f32, {2, 3});
  content.add("model.b", f64, {4});
  content.add("step", std::vector<std::int64_t>{12345}, {});  // a scalar
  content.add("rng", i64, {3});
  content.add("mask", i32, {1, 2});
  content.add("bytes", u8, {3});
  content.add("nothing", std::vector<float>{}, {0, 3});
  content.metadata = {{"format", "ayf"}, {"note", "quote \" backslash \\ newline \n tab \t ctl \x01 utf8 \xc3\xa9"}};
  ayf::io::write_safetensors(dir / "ckpt.safetensors", content);
  const auto back = ayf::io::read_safetensors(dir / "ckpt.safetensors");
  CHECK(back.metadata == content.metadata);
  REQUIRE(back.tensors.size() == content.tensors.size());
  for (const auto& t : content.tensors) {
    INFO(t.name);
    const auto& u = back.at(t.name);
    CHECK(u.dtype == t.dtype);
    CHECK(u.shape == t.shape);
    CHECK(u.bytes == t.bytes);
  }
  CHECK(back.get<float>("model.w") == f32);
  CHECK(std::memcmp(back.get<double>("model.b").data(), f64.data(), f64.size() * sizeof(double)) == 0);
  CHECK(back.get<std::int64_t>("step") == std::vector<std::int64_t>{12345});
  CHECK(back.get<std::int64_t>("rng") == i64);
  CHECK(back.get<std::int32_t>("mask") == i32);
  CHECK(back.get<std::uint8_t>("bytes") == u8);
  CHECK(back.get<float>("nothing").empty());
  // Tensors come back in file (offset) order, which is the writer's layout order.
  CHECK(back.tensors.front().name == "rng");
  CHECK(back.find("missing") == nullptr);
  REQUIRE_THROWS_WITH(back.get<double>("model.w"), Contains("'model.w'") && Contains("F32") && Contains("F64"));
  REQUIRE_THROWS_WITH(back.at("missing"), Contains("'missing'") && Contains("model.w"));

  // Writer argument errors.
  auto duplicate = content.tensors;
  duplicate.push_back(duplicate.front());
  REQUIRE_THROWS_WITH(ayf::io::write_safetensors(dir / "d.safetensors", duplicate), Contains("unique names"));
  auto wrong = content.tensors;
  wrong.front().bytes.pop_back();
  REQUIRE_THROWS_WITH(ayf::io::write_safetensors(dir / "d.safetensors", wrong), Contains("model.w"));
  REQUIRE_THROWS_WITH(ayf::io::make_safetensors_tensor("t", f64, {3}), Contains("'t'"));
  REQUIRE_THROWS_WITH(
      ayf::io::write_safetensors(dir / "d.safetensors", {ayf::io::make_safetensors_tensor("__metadata__", f64, {4})}),
      Contains("__metadata__"));
  CHECK_FALSE(fs::exists(dir / "d.safetensors"));
}

TEST_CASE("safetensors: corrupt input raises ayf::error and never reads out of bounds", "[io][safetensors][cpu]") {
  const std::string eight(8, '\0');  // one F64 / I64 or two F32 values
  // A well-formed file to start from.
  const std::string good_header = R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}})";
  REQUIRE(ayf::io::parse_safetensors(st_bytes(good_header, eight), "good").tensors.size() == 1);

  require_st_error("", "truncated");
  require_st_error(std::string("\x10\0\0\0", 4), "truncated");
  // Header length larger than the file.
  std::string long_length = st_bytes(good_header, eight);
  long_length[0] = static_cast<char>(0xff);
  long_length[5] = static_cast<char>(0x01);
  require_st_error(long_length, "header length");
  // Leading JSON whitespace is accepted, as by the reference reader; the header must be an object.
  CHECK(ayf::io::parse_safetensors(st_bytes(" \n {}"), "spaces").tensors.empty());
  require_st_error(st_bytes("[]"), "expected an object");
  require_st_error(st_bytes("\"x\""), "expected an object");
  require_st_error(st_bytes(R"({"a":{"dtype":"F32")"), "invalid JSON");
  require_st_error(st_bytes(R"({"a":{"dtype":"F32",}})"), "invalid JSON");
  require_st_error(st_bytes(R"({"a":1} x)"), "trailing characters");
  require_st_error(st_bytes(R"({"a":{"dtype":"F32","shape":[-2],"data_offsets":[0,8]}})", eight), "invalid JSON");
  require_st_error(st_bytes(R"({"a":{"dtype":"F32","shape":[2.0],"data_offsets":[0,8]}})", eight), "fraction");
  require_st_error(st_bytes(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,99999999999999999999]}})", eight),
                   "overflows");
  require_st_error(st_bytes("{\"a\xff\":{}}"), "UTF-8");
  require_st_error(st_bytes(R"({"\ud800":{}})"), "surrogate");
  require_st_error(st_bytes(R"({"\q":{}})"), "invalid escape");
  require_st_error(st_bytes(std::string(100, '[')), "nested too deeply");
  require_st_error(st_bytes("{\"a\":" + std::string(100, '[') + std::string(100, ']') + "}"), "nested too deeply");
  require_st_error(st_bytes(R"({"a":{"dtype":"BF16","shape":[2],"data_offsets":[0,4]}})", std::string(4, '\0')),
                   "'dtype'");
  require_st_error(st_bytes(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,16]}})", eight), "out of range");
  require_st_error(st_bytes(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[8,0]}})", eight), "out of range");
  require_st_error(st_bytes(R"({"a":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}})", eight), "'data_offsets'");
  require_st_error(st_bytes(R"({"a":{"dtype":"F64","shape":[2],"data_offsets":[0,8]}})", eight), "'data_offsets'");
  require_st_error(st_bytes(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0]}})", eight), "'data_offsets'");
  require_st_error(st_bytes(R"({"a":{"dtype":"F32","shape":[4294967296,4294967296,16],"data_offsets":[0,8]}})", eight),
                   "'data_offsets'");
  // Overlapping tensors, a gap, and bytes no tensor covers.
  require_st_error(st_bytes(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},)"
                            R"("b":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}})",
                            std::string(12, '\0')),
                   "overlaps");
  require_st_error(st_bytes(R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}})", eight), "gap");
  require_st_error(st_bytes(good_header, eight + "x"), "trailing bytes");
  // Duplicate names, malformed metadata, missing or unknown fields.
  require_st_error(st_bytes(R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},)"
                            R"("a":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}})",
                            eight),
                   "duplicate key \"a\"");
  require_st_error(st_bytes(R"({"__metadata__":{"k":1}})"), "'__metadata__'");
  require_st_error(st_bytes(R"({"__metadata__":["k"]})"), "'__metadata__'");
  require_st_error(st_bytes(R"({"a":{"dtype":"F32","shape":[2]}})", eight), "data_offsets");
  require_st_error(st_bytes(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8],"x":[]}})", eight),
                   "unknown field 'x'");
  require_st_error(st_bytes(R"({"a":[1]})"), "tensor 'a'");
  require_st_error(st_bytes(R"({"a":{"dtype":true}})"), "invalid JSON");

  // Through a file: the path is named.
  const scratch_dir dir;
  write_bytes(dir / "bad.safetensors", st_bytes(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,16]}})", eight));
  REQUIRE_THROWS_WITH(ayf::io::read_safetensors(dir / "bad.safetensors"),
                      Contains((dir / "bad.safetensors").string()) && Contains("'data_offsets'"));
  REQUIRE_THROWS_WITH(ayf::io::read_safetensors(dir / "none.safetensors"), Contains("none.safetensors"));
}

// ================================================================================================
// PNG
// ================================================================================================

namespace {

std::uint32_t big_endian_u32(const std::string& bytes, std::size_t at) {
  std::uint32_t v = 0;
  for (std::size_t k = 0; k < 4; ++k) v = (v << 8) | static_cast<unsigned char>(bytes[at + k]);
  return v;
}

struct decoded_png {
  int width = 0, height = 0, channels = 0;
  std::vector<unsigned char> pixels;
};

decoded_png decode(const std::string& bytes) {
  decoded_png d;
  unsigned char* p = stbi_load_from_memory(reinterpret_cast<const unsigned char*>(bytes.data()),
                                           static_cast<int>(bytes.size()), &d.width, &d.height, &d.channels, 0);
  REQUIRE(p != nullptr);
  d.pixels.assign(p, p + static_cast<std::size_t>(d.width) * static_cast<std::size_t>(d.height) *
                             static_cast<std::size_t>(d.channels));
  stbi_image_free(p);
  return d;
}

}  // namespace

TEST_CASE("PNG scatter plot: signature, IHDR, colours per label", "[io][png][cpu]") {
  const scratch_dir dir;
  points p;
  p.rows = 2;
  p.cols = 2;
  p.values = {0.0, 0.0, 1.0, -1.0};
  p.labels = {0, 1};
  ayf::io::scatter_options options;
  options.width = 320;
  options.height = 200;
  options.range = std::array<double, 4>{-1, 1, -1, 1};
  options.opacity = 1;
  options.point_radius = 2;
  ayf::io::write_scatter_png(dir / "scatter.png", p, options);
  const std::string bytes = read_bytes(dir / "scatter.png");
  REQUIRE(bytes.size() > 33);
  CHECK(bytes.substr(0, 8) == std::string("\x89PNG\r\n\x1a\n", 8));
  CHECK(bytes.substr(12, 4) == "IHDR");
  CHECK(big_endian_u32(bytes, 16) == 320);
  CHECK(big_endian_u32(bytes, 20) == 200);
  CHECK(bytes[24] == 8);  // bit depth
  CHECK(bytes[25] == 2);  // colour type RGB
  CHECK(bytes.substr(bytes.size() - 8, 4) == "IEND");

  const decoded_png image = decode(bytes);
  REQUIRE(image.width == 320);
  REQUIRE(image.height == 200);
  REQUIRE(image.channels == 3);
  const auto pixel = [&](int x, int y) {
    const auto at = (static_cast<std::size_t>(y) * 320 + static_cast<std::size_t>(x)) * 3;
    return std::array<int, 3>{image.pixels[at], image.pixels[at + 1], image.pixels[at + 2]};
  };
  const ayf::io::rgb c0 = ayf::io::label_colour(0), c1 = ayf::io::label_colour(1);
  // (0, 0) maps to pixel (159.5, 99.5) and (1, -1) to the bottom-right corner (319, 199).
  CHECK(pixel(160, 100) == std::array<int, 3>{c0.r, c0.g, c0.b});
  CHECK(pixel(318, 198) == std::array<int, 3>{c1.r, c1.g, c1.b});
  CHECK(pixel(40, 40) == std::array<int, 3>{255, 255, 255});       // background
  CHECK(pixel(40, 0) == std::array<int, 3>{160, 160, 160});        // frame
  CHECK(pixel(160, 40) == std::array<int, 3>{200, 200, 200});      // the axis x = 0

  // Default options: 512 x 512 with a computed range; labels absent.
  ayf::io::write_scatter_png(dir / "default.png", ayf::data::eight_gaussians(500, 1));
  const std::string d = read_bytes(dir / "default.png");
  CHECK(big_endian_u32(d, 16) == 512);
  CHECK(big_endian_u32(d, 20) == 512);

  points three;
  three.rows = 1;
  three.cols = 3;
  three.values = {1, 2, 3};
  REQUIRE_THROWS_WITH(ayf::io::write_scatter_png(dir / "bad.png", three), Contains("points.cols"));
  options.range = std::array<double, 4>{1, 1, 0, 1};
  REQUIRE_THROWS_WITH(ayf::io::write_scatter_png(dir / "bad.png", p, options), Contains("options.range"));
  CHECK_FALSE(fs::exists(dir / "bad.png"));
  // A path below a regular file cannot be written.
  REQUIRE_THROWS_AS(ayf::io::write_scatter_png(dir / "scatter.png" / "x.png", p), ayf::error);
}

TEST_CASE("PNG image grid: layout, value mapping and IHDR", "[io][png][cpu]") {
  const scratch_dir dir;
  // Five 1-channel 3 x 4 images on a 2 x 3 grid with padding 1: width 3*4 + 4 = 16, height 2*3 + 3 = 9.
  const std::size_t h = 3, w = 4;
  std::vector<float> images(5 * h * w);
  for (std::size_t n = 0; n < 5; ++n) {
    for (std::size_t k = 0; k < h * w; ++k) images[n * h * w + k] = static_cast<float>(n) / 4.0f;
  }
  images[0] = -3;   // clamped to black
  images[1] = 0.5f; // 127.5 rounds to 128
  ayf::io::image_grid_options options;
  options.padding = 1;
  options.background = 10;
  ayf::io::write_image_grid_png(dir / "grid.png", images, 2, 3, h, w, 1, options);
  const std::string bytes = read_bytes(dir / "grid.png");
  CHECK(bytes.substr(0, 8) == std::string("\x89PNG\r\n\x1a\n", 8));
  CHECK(big_endian_u32(bytes, 16) == 16);
  CHECK(big_endian_u32(bytes, 20) == 9);
  CHECK(bytes[25] == 0);  // greyscale
  const decoded_png image = decode(bytes);
  REQUIRE(image.channels == 1);
  const auto at = [&](std::size_t x, std::size_t y) { return static_cast<int>(image.pixels[y * 16 + x]); };
  CHECK(at(0, 0) == 10);  // padding
  CHECK(at(1, 1) == 0);   // image 0, pixel (0, 0): clamped
  CHECK(at(2, 1) == 128);
  CHECK(at(3, 1) == 0);
  CHECK(at(1 + 4 + 1, 1) == 64);            // image 1: 0.25 * 255 = 63.75
  CHECK(at(1 + 2 * 5, 2) == 128);           // image 2
  CHECK(at(1, 1 + 3 + 1) == 191);           // image 3 (second grid row): 0.75 * 255 = 191.25
  CHECK(at(1 + 5, 1 + 4) == 255);           // image 4
  CHECK(at(1 + 2 * 5, 1 + 4) == 10);        // no sixth image: background

  // RGB, CHW order: channel planes go to R, G, B.
  const std::vector<double> rgb_image{1, 1, 0, 0, 0.5, 0.5};  // [3, 1, 2]
  ayf::io::write_image_grid_png(dir / "rgb.png", rgb_image, 1, 1, 1, 2, 3, {0, 1, 0, 255});
  const decoded_png colour = decode(read_bytes(dir / "rgb.png"));
  REQUIRE(colour.channels == 3);
  CHECK(std::vector<int>(colour.pixels.begin(), colour.pixels.end()) == std::vector<int>{255, 0, 128, 255, 0, 128});

  REQUIRE_THROWS_WITH(ayf::io::write_image_grid_png(dir / "bad.png", images, 1, 2, h, w, 1), Contains("'images'"));
  REQUIRE_THROWS_WITH(ayf::io::write_image_grid_png(dir / "bad.png", images, 2, 3, h, w + 2, 1),
                      Contains("'images.size()'"));
  REQUIRE_THROWS_WITH(ayf::io::write_image_grid_png(dir / "bad.png", images, 2, 3, h, w, 2), Contains("'channels'"));
  CHECK_FALSE(fs::exists(dir / "bad.png"));
}
