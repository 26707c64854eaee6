// tests/test_image_data.cpp: IDX parsing (bytes built here from the MNIST format description: magic
// 00 00 <dtype> <rank>, big-endian uint32 extents, big-endian payload), every corrupt case; gzip
// streams written with zlib's own gz* writer; the Fashion-MNIST loader on synthetic directories and on
// the installed data set (skipped with a warning when absent); user images from .npy.
#include <zlib.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <random>
#include <string>
#include <string_view>
#include <vector>

#include <catch2/catch.hpp>

#include "ayf/backends/zlib/fashion_mnist.hpp"
#include "ayf/backends/zlib/gzip.hpp"
#include "ayf/core/error.hpp"
#include "ayf/data/images.hpp"
#include "ayf/io/idx.hpp"
#include "ayf/io/npy.hpp"
#include "support/scratch_dir.hpp"

namespace {

namespace fs = std::filesystem;
using Catch::Contains;

/// A fresh directory for one test (support/scratch_dir.hpp), named after this file.
struct scratch_dir : ayf_test::scratch_dir {
  scratch_dir() : ayf_test::scratch_dir("ayf_test_image_data") {}
};

void write_bytes(const fs::path& path, std::string_view bytes) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
}

/// Writes `bytes` gzip-compressed with zlib's gz* file interface.
void write_gz(const fs::path& path, std::string_view bytes) {
  gzFile f = gzopen(path.string().c_str(), "wb9");
  REQUIRE(f != nullptr);
  REQUIRE(gzwrite(f, bytes.data(), static_cast<unsigned>(bytes.size())) == static_cast<int>(bytes.size()));
  REQUIRE(gzclose(f) == Z_OK);
}

std::string read_bytes(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

/// Big-endian uint32.
std::string be32(std::uint32_t v) {
  return {static_cast<char>(v >> 24), static_cast<char>((v >> 16) & 0xFF), static_cast<char>((v >> 8) & 0xFF),
          static_cast<char>(v & 0xFF)};
}

/// An IDX file written byte by byte: magic, extents, payload.
std::string idx_bytes(std::uint8_t dtype, const std::vector<std::uint32_t>& dims, std::string_view payload) {
  std::string out{'\0', '\0', static_cast<char>(dtype), static_cast<char>(dims.size())};
  for (const auto d : dims) out += be32(d);
  out += payload;
  return out;
}

/// `count` u8 images of rows x cols, pixel value (i * 7 + k) mod 256, as an IDX file.
std::string idx_images(std::uint32_t count, std::uint32_t rows, std::uint32_t cols) {
  std::string payload(std::size_t{count} * rows * cols, '\0');
  for (std::size_t j = 0; j < payload.size(); ++j) payload[j] = static_cast<char>((j * 7) % 256);
  return idx_bytes(0x08, {count, rows, cols}, payload);
}

std::string idx_labels(const std::vector<std::uint8_t>& labels) {
  return idx_bytes(0x08, {static_cast<std::uint32_t>(labels.size())},
                   std::string(labels.begin(), labels.end()));
}

/// A version 1.0 .npy file: header dict padded to 64 bytes, then `data`.
std::string npy_bytes(std::string_view descr, std::string_view shape, std::string_view data) {
  std::string dict = "{'descr': '" + std::string(descr) + "', 'fortran_order': False, 'shape': " +
                     std::string(shape) + ", }";
  while ((10 + dict.size() + 1) % 64 != 0) dict += ' ';
  dict += '\n';
  std::string out("\x93NUMPY\x01\x00", 8);
  out += static_cast<char>(dict.size() & 0xFF);
  out += static_cast<char>(dict.size() >> 8);
  return out + dict + std::string(data);
}

template <class T>
std::string raw(const std::vector<T>& v) {
  return {reinterpret_cast<const char*>(v.data()), v.size() * sizeof(T)};
}

void parse_fails(std::string_view bytes, const std::vector<std::string>& fragments) {
  CAPTURE(fragments);
  try {
    (void)ayf::io::parse_idx(bytes, "bad.idx");
    FAIL("parse_idx accepted corrupt input");
  } catch (const ayf::error& e) {
    const std::string message = e.what();
    CAPTURE(message);
    CHECK_THAT(message, Contains("bad.idx"));
    for (const auto& f : fragments) CHECK_THAT(message, Contains(f));
  }
}

}  // namespace

TEST_CASE("IDX: hand-written files parse to their extents and big-endian values", "[io][idx]") {
  // u8 [2, 2, 3]: the Fashion-MNIST image layout.
  const std::string u8_payload = {0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, static_cast<char>(255)};
  const auto a = ayf::io::parse_idx(idx_bytes(0x08, {2, 2, 3}, u8_payload), "a.idx");
  CHECK(a.dtype == ayf::io::idx_dtype::u8);
  CHECK(a.shape == std::vector<std::size_t>{2, 2, 3});
  CHECK(a.size() == 12);
  CHECK(a.to_doubles().back() == 255.0);
  CHECK(a.to_int64()[4] == 4);

  // i32 [3] = {1, -2, 0x01020304}, i16 [2] = {-1, 258}, i8 [2] = {-128, 127}.
  const auto i32 = ayf::io::parse_idx(idx_bytes(0x0C, {3}, be32(1) + be32(0xFFFFFFFEu) + be32(0x01020304u)), "b");
  CHECK(i32.to_int64() == std::vector<std::int64_t>{1, -2, 0x01020304});
  const auto i16 = ayf::io::parse_idx(idx_bytes(0x0B, {2}, std::string("\xFF\xFF\x01\x02", 4)), "c");
  CHECK(i16.to_int64() == std::vector<std::int64_t>{-1, 258});
  const auto i8 = ayf::io::parse_idx(idx_bytes(0x09, {2}, std::string("\x80\x7F", 2)), "d");
  CHECK(i8.to_int64() == std::vector<std::int64_t>{-128, 127});

  // f32 1.5 = 0x3FC00000, f64 -2.25 = 0xC002000000000000.
  const auto f32 = ayf::io::parse_idx(idx_bytes(0x0D, {1, 1}, be32(0x3FC00000u)), "e");
  CHECK(f32.to_doubles() == std::vector<double>{1.5});
  const auto f64 = ayf::io::parse_idx(idx_bytes(0x0E, {1}, be32(0xC0020000u) + be32(0)), "f");
  CHECK(f64.to_doubles() == std::vector<double>{-2.25});
  REQUIRE_THROWS_WITH(f64.to_int64(), Contains("integer dtype") && Contains("f64"));

  // An extent of 0: no payload.
  const auto empty = ayf::io::parse_idx(idx_bytes(0x08, {0, 28, 28}, ""), "g");
  CHECK(empty.size() == 0);
  CHECK(empty.payload.empty());
}

TEST_CASE("IDX: format_idx and idx_payload round trip every dtype bitwise", "[io][idx]") {
  using ayf::io::idx_dtype;
  const std::vector<std::uint8_t> u8{0, 17, 255};
  const std::vector<std::int8_t> i8{-128, 0, 127};
  const std::vector<std::int16_t> i16{-32768, 1, 32767};
  const std::vector<std::int32_t> i32{-2147483647 - 1, 5, 2147483647};
  const std::vector<float> f32{-0.0f, 1e-30f, 3.25f};
  const std::vector<double> f64{-1e300, 0.1, 2.0};
  const auto check = [](idx_dtype dtype, const std::string& payload, const std::vector<double>& expected) {
    const std::string bytes = ayf::io::format_idx(dtype, {1, 3}, payload);
    const auto back = ayf::io::parse_idx(bytes, "round_trip");
    CHECK(back.dtype == dtype);
    CHECK(back.shape == std::vector<std::size_t>{1, 3});
    CHECK(std::string(back.payload.begin(), back.payload.end()) == payload);
    CHECK(back.to_doubles() == expected);
  };
  check(idx_dtype::u8, ayf::io::idx_payload(u8), {0, 17, 255});
  check(idx_dtype::i8, ayf::io::idx_payload(i8), {-128, 0, 127});
  check(idx_dtype::i16, ayf::io::idx_payload(i16), {-32768, 1, 32767});
  check(idx_dtype::i32, ayf::io::idx_payload(i32), {-2147483648.0, 5, 2147483647});
  check(idx_dtype::f32, ayf::io::idx_payload(f32), {-0.0, static_cast<double>(1e-30f), 3.25});
  check(idx_dtype::f64, ayf::io::idx_payload(f64), f64);
  // The writer's bytes are the hand-written layout.
  CHECK(ayf::io::format_idx(idx_dtype::i32, {1}, ayf::io::idx_payload(std::vector<std::int32_t>{-2})) ==
        idx_bytes(0x0C, {1}, be32(0xFFFFFFFEu)));
  REQUIRE_THROWS_WITH(ayf::io::format_idx(idx_dtype::u8, {2, 2}, "abc"), Contains("payload") && Contains("4 bytes"));
  REQUIRE_THROWS_WITH(ayf::io::format_idx(idx_dtype::u8, {}, ""), Contains("shape"));
}

TEST_CASE("IDX: every corrupt file raises ayf::error naming the file and the problem", "[io][idx]") {
  const std::string good = idx_bytes(0x08, {2, 3}, "abcdef");
  REQUIRE_NOTHROW(ayf::io::parse_idx(good, "good.idx"));
  parse_fails("", {"truncated", "0 bytes", "magic"});
  parse_fails(std::string("\0\0\x08", 3), {"truncated", "3 bytes"});
  std::string bad_first_byte = good;
  bad_first_byte[0] = '\x01';
  parse_fails(bad_first_byte, {"bad magic", "0x1"});
  parse_fails(good.substr(0, 1) + "\x02" + good.substr(2), {"bad magic"});
  parse_fails(std::string("\x1f\x8b\x08\x00", 4) + "rest", {"bad magic", "gzip"});
  parse_fails(idx_bytes(0x07, {2, 3}, "abcdef"), {"bad dtype code 0x7"});
  parse_fails(idx_bytes(0x0A, {2, 3}, "abcdef"), {"bad dtype code 0xa"});
  parse_fails(idx_bytes(0x08, {}, "abcdef"), {"rank 0"});
  parse_fails(good.substr(0, 9), {"truncated", "rank 2", "12-byte header", "9 bytes"});
  parse_fails(good.substr(0, good.size() - 1), {"truncated payload", "6 elements", "5 after the header"});
  parse_fails(idx_bytes(0x0C, {2}, "1234567"), {"truncated payload", "8 bytes", "7 after"});
  parse_fails(good + "x", {"trailing garbage", "1 bytes"});
  // A claimed rank larger than the bytes present.
  parse_fails(std::string("\0\0\x08\xFF", 4) + std::string(16, '\0'), {"truncated", "rank 255"});
  // Absurd extents: the count overflows 64 bits (never allocated), or is merely larger than the file.
  parse_fails(idx_bytes(0x08, {0xFFFFFFFFu, 0xFFFFFFFFu, 0xFFFFFFFFu}, "ab"), {"overflows"});
  parse_fails(idx_bytes(0x0E, {0x80000000u, 0x80000000u}, "ab"), {"overflows"});
  parse_fails(idx_bytes(0x08, {60000, 28, 28}, "ab"), {"truncated payload", "47040000 elements"});
}

TEST_CASE("gzip: files written by zlib decompress to their bytes; corrupt streams are rejected", "[io][gzip]") {
  scratch_dir dir;
  const std::string idx = idx_images(3, 28, 28);
  write_gz(dir / "images.gz", idx);
  const std::string compressed = read_bytes(dir / "images.gz");
  REQUIRE(ayf::io::is_gzip(compressed));
  CHECK(compressed.size() < idx.size());
  CHECK(ayf::io::gunzip(compressed, "images.gz") == idx);
  CHECK(ayf::io::read_maybe_gzip(dir / "images.gz", "test") == idx);
  write_bytes(dir / "images.idx", idx);
  CHECK(ayf::io::read_maybe_gzip(dir / "images.idx", "test") == idx);
  const auto parsed = ayf::data::read_idx_maybe_gzip(dir / "images.gz");
  CHECK(parsed.shape == std::vector<std::size_t>{3, 28, 28});

  // Two concatenated members decode to the concatenation (what `cat a.gz b.gz` gives).
  write_gz(dir / "second.gz", "tail");
  CHECK(ayf::io::gunzip(compressed + read_bytes(dir / "second.gz"), "two") == idx + "tail");
  // An empty stream.
  write_gz(dir / "empty.gz", "");
  CHECK(ayf::io::gunzip(read_bytes(dir / "empty.gz"), "empty.gz").empty());

  REQUIRE_THROWS_WITH(ayf::io::gunzip(compressed.substr(0, compressed.size() / 2), "half.gz"),
                      Contains("half.gz") && Contains("truncated"));
  REQUIRE_THROWS_WITH(ayf::io::gunzip(compressed.substr(0, compressed.size() - 4), "no_size.gz"),
                      Contains("no_size.gz") && Contains("truncated"));
  std::string flipped = compressed;
  flipped[flipped.size() - 6] = static_cast<char>(flipped[flipped.size() - 6] ^ 0x5A);  // inside the CRC-32
  REQUIRE_THROWS_WITH(ayf::io::gunzip(flipped, "crc.gz"), Contains("crc.gz") && Contains("corrupt"));
  std::string bad_body = compressed;
  for (std::size_t j = 12; j < 40; ++j) bad_body[j] = '\xFF';
  REQUIRE_THROWS_WITH(ayf::io::gunzip(bad_body, "body.gz"), Contains("body.gz") && Contains("corrupt"));
  REQUIRE_THROWS_WITH(ayf::io::gunzip(compressed + "junk", "junk.gz"),
                      Contains("junk.gz") && Contains("trailing garbage") && Contains("4 bytes"));
  REQUIRE_THROWS_WITH(ayf::io::gunzip(idx, "plain"), Contains("plain") && Contains("not a gzip stream"));
  REQUIRE_THROWS_WITH(ayf::io::gunzip(compressed, "bomb.gz", 1000), Contains("bomb.gz") && Contains("limit"));
  REQUIRE_THROWS_WITH(ayf::io::gunzip(compressed, "bomb.gz", idx.size() - 1), Contains("limit"));
  CHECK(ayf::io::gunzip(compressed, "exact.gz", idx.size()) == idx);
}

TEST_CASE("Fashion-MNIST loader: synthetic directories, compressed or not, and their errors", "[data][fashion]") {
  using ayf::data::fashion_mnist_split;
  using ayf::data::load_fashion_mnist;
  scratch_dir dir;
  const std::vector<std::uint8_t> train_labels{0, 9, 3, 5};
  write_gz(dir / "train-images-idx3-ubyte.gz", idx_images(4, 28, 28));
  write_gz(dir / "train-labels-idx1-ubyte.gz", idx_labels(train_labels));
  write_bytes(dir / "t10k-images-idx3-ubyte", idx_images(2, 28, 28));
  write_bytes(dir / "t10k-labels-idx1-ubyte", idx_labels({1, 2}));

  const auto train = load_fashion_mnist(fashion_mnist_split::train, dir.path());
  train.check("test");
  CHECK(train.count == 4);
  CHECK(train.height == 28);
  CHECK(train.width == 28);
  CHECK(train.channels == 1);
  CHECK(train.dims() == 784);
  CHECK(train.labels == std::vector<std::int64_t>{0, 9, 3, 5});
  for (std::size_t j = 0; j < train.values.size(); ++j) {
    const auto p = static_cast<double>((j * 7) % 256);
    REQUIRE(std::abs(train.values[j] - (p / 127.5 - 1.0)) < 1e-6);
  }
  CHECK(*std::min_element(train.values.begin(), train.values.end()) == -1.0f);
  CHECK(*std::max_element(train.values.begin(), train.values.end()) == 1.0f);
  const auto test = load_fashion_mnist(fashion_mnist_split::test, dir.path());
  CHECK(test.count == 2);
  CHECK(test.labels == std::vector<std::int64_t>{1, 2});

  // Errors name the file and what is wrong.
  write_bytes(dir / "t10k-labels-idx1-ubyte", idx_labels({1, 2, 3}));
  REQUIRE_THROWS_WITH(load_fashion_mnist(fashion_mnist_split::test, dir.path()),
                      Contains("t10k-labels-idx1-ubyte") && Contains("expected 2 labels") && Contains("received 3"));
  write_bytes(dir / "t10k-labels-idx1-ubyte", idx_labels({1, 10}));
  REQUIRE_THROWS_WITH(load_fashion_mnist(fashion_mnist_split::test, dir.path()),
                      Contains("t10k-labels-idx1-ubyte") && Contains("label 1 = 10") && Contains("[0, 9]"));
  write_bytes(dir / "t10k-labels-idx1-ubyte", idx_bytes(0x0D, {2}, be32(0) + be32(0)));
  REQUIRE_THROWS_WITH(load_fashion_mnist(fashion_mnist_split::test, dir.path()),
                      Contains("t10k-labels-idx1-ubyte") && Contains("integer dtype"));
  write_bytes(dir / "t10k-labels-idx1-ubyte", idx_labels({1, 2}));
  write_bytes(dir / "t10k-images-idx3-ubyte", idx_images(2, 27, 28));
  REQUIRE_THROWS_WITH(load_fashion_mnist(fashion_mnist_split::test, dir.path()),
                      Contains("t10k-images-idx3-ubyte") && Contains("28 x 28") && Contains("27 x 28"));
  write_bytes(dir / "t10k-images-idx3-ubyte", idx_bytes(0x08, {2, 784}, std::string(2 * 784, '\0')));
  REQUIRE_THROWS_WITH(load_fashion_mnist(fashion_mnist_split::test, dir.path()),
                      Contains("t10k-images-idx3-ubyte") && Contains("3 dimensions"));
  write_bytes(dir / "t10k-images-idx3-ubyte", idx_images(2, 28, 28).substr(0, 100));
  REQUIRE_THROWS_WITH(load_fashion_mnist(fashion_mnist_split::test, dir.path()),
                      Contains("t10k-images-idx3-ubyte") && Contains("truncated payload"));
  fs::remove(dir / "t10k-images-idx3-ubyte");
  REQUIRE_THROWS_WITH(load_fashion_mnist(fashion_mnist_split::test, dir.path()),
                      Contains("t10k-images-idx3-ubyte") && Contains("t10k-images-idx3-ubyte.gz") &&
                          Contains("neither"));
  // A truncated .gz is reported with its name.
  const std::string gz = read_bytes(dir / "train-images-idx3-ubyte.gz");
  write_bytes(dir / "train-images-idx3-ubyte.gz", gz.substr(0, gz.size() / 2));
  REQUIRE_THROWS_WITH(load_fashion_mnist(fashion_mnist_split::train, dir.path()),
                      Contains("train-images-idx3-ubyte.gz") && Contains("truncated"));
}

TEST_CASE("Fashion-MNIST: the installed data set loads (60000 / 10000 images of 28 x 28, labels 0-9)",
          "[data][fashion]") {
  const fs::path dir{std::string(ayf::data::fashion_mnist_default_dir)};
  if (!fs::is_directory(dir)) {
    WARN("SKIPPED: " << dir << " is missing (install Debian's dataset-fashion-mnist)");
    return;
  }
  for (const auto split : {ayf::data::fashion_mnist_split::train, ayf::data::fashion_mnist_split::test}) {
    const auto set = ayf::data::load_fashion_mnist(split, dir);
    const std::size_t expected = split == ayf::data::fashion_mnist_split::train ? 60000 : 10000;
    set.check("test");
    CHECK(set.count == expected);
    CHECK(set.height == 28);
    CHECK(set.width == 28);
    CHECK(set.dims() == 784);
    REQUIRE(set.labels.size() == expected);
    std::vector<std::size_t> per_class(10, 0);
    for (const auto label : set.labels) {
      REQUIRE((label >= 0 && label <= 9));
      ++per_class[static_cast<std::size_t>(label)];
    }
    // The published splits are balanced: 6000 / 1000 images per class.
    for (const auto c : per_class) CHECK(c == expected / 10);
    const auto [lo, hi] = std::minmax_element(set.values.begin(), set.values.end());
    CHECK(*lo == -1.0f);
    CHECK(*hi == 1.0f);
    double mean = 0;
    for (const float v : set.values) mean += v;
    mean /= static_cast<double>(set.values.size());
    // Fashion-MNIST's mean pixel is about 0.286 of 255, i.e. about -0.43 after scaling.
    CHECK(mean > -0.5);
    CHECK(mean < -0.35);
  }
}

TEST_CASE("images from .npy: [N, H, W] uint8 and [N, H, W, C] float, with int32 / int64 labels", "[data][npy]") {
  scratch_dir dir;
  // uint8 [2, 2, 3]: p -> p / 127.5 - 1.
  const std::vector<std::uint8_t> u8{0, 255, 51, 102, 153, 204, 1, 2, 3, 4, 5, 6};
  write_bytes(dir / "u8.npy", npy_bytes("|u1", "(2, 2, 3)", raw(u8)));
  write_bytes(dir / "labels64.npy", npy_bytes("<i8", "(2,)", raw(std::vector<std::int64_t>{7, 0})));
  const auto a = ayf::data::read_images_npy(dir / "u8.npy", dir / "labels64.npy");
  a.check("test");
  CHECK(a.count == 2);
  CHECK(a.height == 2);
  CHECK(a.width == 3);
  CHECK(a.channels == 1);
  CHECK(a.labels == std::vector<std::int64_t>{7, 0});
  for (std::size_t j = 0; j < u8.size(); ++j) CHECK(a.values[j] == Approx(u8[j] / 127.5 - 1.0).margin(1e-6));
  CHECK(a.values[0] == -1.0f);
  CHECK(a.values[1] == 1.0f);

  // float32 [1, 2, 2, 3] channels-last, taken as is; int32 labels; no labels at all.
  std::vector<float> f4(12);
  for (std::size_t j = 0; j < f4.size(); ++j) f4[j] = -1.0f + static_cast<float>(j) / 6.0f;
  f4.back() = 1.0f;
  write_bytes(dir / "f4.npy", npy_bytes("<f4", "(1, 2, 2, 3)", raw(f4)));
  write_bytes(dir / "labels32.npy", npy_bytes("<i4", "(1,)", raw(std::vector<std::int32_t>{4})));
  const auto b = ayf::data::read_images_npy(dir / "f4.npy", dir / "labels32.npy");
  CHECK(b.count == 1);
  CHECK(b.height == 2);
  CHECK(b.width == 2);
  CHECK(b.channels == 3);
  CHECK(b.dims() == 12);
  CHECK(b.values == f4);
  CHECK(b.labels == std::vector<std::int64_t>{4});
  const auto c = ayf::data::read_images_npy(dir / "f4.npy");
  CHECK_FALSE(c.has_labels());
  // float64 too.
  write_bytes(dir / "f8.npy", npy_bytes("<f8", "(1, 1, 2)", raw(std::vector<double>{-1.0, 0.25})));
  CHECK(ayf::data::read_images_npy(dir / "f8.npy").values == std::vector<float>{-1.0f, 0.25f});

  // Errors name the file and what is wrong.
  write_bytes(dir / "range.npy", npy_bytes("<f4", "(1, 1, 2)", raw(std::vector<float>{0.5f, 1.5f})));
  REQUIRE_THROWS_WITH(ayf::data::read_images_npy(dir / "range.npy"),
                      Contains("range.npy") && Contains("[-1, 1]") && Contains("element 1"));
  write_bytes(dir / "nan.npy", npy_bytes("<f8", "(1, 1, 1)", raw(std::vector<double>{std::nan("")})));
  REQUIRE_THROWS_WITH(ayf::data::read_images_npy(dir / "nan.npy"), Contains("nan.npy") && Contains("finite"));
  write_bytes(dir / "flat.npy", npy_bytes("|u1", "(2, 6)", raw(u8)));
  REQUIRE_THROWS_WITH(ayf::data::read_images_npy(dir / "flat.npy"),
                      Contains("flat.npy") && Contains("[N, H, W]") && Contains("received 2"));
  write_bytes(dir / "five.npy", npy_bytes("|u1", "(1, 2, 1, 3, 2)", raw(u8)));
  REQUIRE_THROWS_WITH(ayf::data::read_images_npy(dir / "five.npy"),
                      Contains("five.npy") && Contains("'shape'") && Contains("received 5"));
  write_bytes(dir / "int.npy", npy_bytes("<i4", "(1, 1, 1)", raw(std::vector<std::int32_t>{3})));
  REQUIRE_THROWS_WITH(ayf::data::read_images_npy(dir / "int.npy"), Contains("int.npy") && Contains("'<i4'"));
  REQUIRE_THROWS_WITH(ayf::data::read_images_npy(dir / "u8.npy", dir / "labels32.npy"),
                      Contains("labels32.npy") && Contains("expected (2,)"));
  write_bytes(dir / "float_labels.npy", npy_bytes("<f8", "(2,)", raw(std::vector<double>{1, 2})));
  REQUIRE_THROWS_WITH(ayf::data::read_images_npy(dir / "u8.npy", dir / "float_labels.npy"),
                      Contains("float_labels.npy") && Contains("'<i4' or '<i8'"));
  write_bytes(dir / "negative.npy", npy_bytes("<i8", "(2,)", raw(std::vector<std::int64_t>{1, -3})));
  REQUIRE_THROWS_WITH(ayf::data::read_images_npy(dir / "u8.npy", dir / "negative.npy"),
                      Contains("negative.npy") && Contains("label 1 = -3"));
  REQUIRE_THROWS_WITH(ayf::data::read_images_npy(dir / "missing.npy"), Contains("missing.npy"));
  // The 2-D default of read_npy is unchanged.
  REQUIRE_THROWS_WITH(ayf::io::read_npy(dir / "u8.npy"), Contains("expected 1 or 2 dimensions"));
}
