// tests/test_hardening.cpp: non-finite values never become a score or a checkpoint. Metrics and W2 raise
// ayf::error on NaN / overflow; Adam and EMA configs reject non-finite fields; checkpoints carry
// per-tensor checksums (checked here against an independent FNV-1a) and finite checks on save and load;
// atomic writes leave no temporary file; the CSV reader keeps a first row with a BOM or nan.
#include <catch2/catch.hpp>

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
#include <vector>

#include <Eigen/Core>

#include "ayf/analysis/metrics.hpp"
#include "ayf/backends/eigen/backend.hpp"
#include "ayf/backends/eigen/wasserstein.hpp"
#include "ayf/core/philox.hpp"
#include "ayf/data/toy2d.hpp"
#include "ayf/io/atomic_write.hpp"
#include "ayf/io/csv.hpp"
#include "ayf/io/safetensors.hpp"
#include "ayf/nn/mlp.hpp"
#include "ayf/nn/optimizer.hpp"
#include "ayf/objectives/flow_matching.hpp"
#include "ayf/train/checkpoint.hpp"
#include "support/scratch_dir.hpp"

namespace {

namespace fs = std::filesystem;
using Catch::Contains;
using B = ayf::eigen_backend<float>;
using model_t = ayf::nn::mlp_flow_model<B>;
constexpr double qnan = std::numeric_limits<double>::quiet_NaN();
constexpr double inf = std::numeric_limits<double>::infinity();

/// A fresh directory for one test (support/scratch_dir.hpp), named after this file.
struct scratch_dir : ayf_test::scratch_dir {
  scratch_dir() : ayf_test::scratch_dir("ayf_test_hardening") {}
};

std::string read_bytes(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}
void write_bytes(const fs::path& path, const std::string& bytes) {
  std::ofstream(path, std::ios::binary | std::ios::trunc).write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
}

/// n x d standard normal samples times `scale`, row-major.
std::vector<double> normal_samples(std::size_t n, std::size_t d, double scale, std::uint64_t seed) {
  std::vector<double> x(n * d);
  for (std::size_t k = 0; k < x.size(); ++k) x[k] = scale * ayf::philox_normal(seed, k);
  return x;
}

}  // namespace

// ---- metrics ---------------------------------------------------------------------------------------

TEST_CASE("sliced W2, MMD and sorted W2 raise on NaN and infinite samples instead of scoring", "[metrics][cpu]") {
  auto a = normal_samples(50, 2, 1.0, 1);
  auto b = normal_samples(40, 2, 1.0, 2);
  REQUIRE(std::isfinite(ayf::sliced_w2({a, 2}, {b, 2}, 16)));
  auto bad_b = b;
  bad_b[2 * 7 + 1] = qnan;
  REQUIRE_THROWS_WITH(ayf::sliced_w2({a, 2}, {bad_b, 2}, 16),
                      Contains("sliced_w2") && Contains("'b'") && Contains("nan") && Contains("row 7, column 1"));
  auto bad_a = a;
  bad_a[0] = -inf;
  REQUIRE_THROWS_WITH(ayf::sliced_w2({bad_a, 2}, {b, 2}, 16), Contains("sliced_w2") && Contains("'a'") && Contains("inf"));
  REQUIRE_THROWS_WITH(ayf::mmd_rbf({a, 2}, {bad_b, 2}), Contains("mmd_rbf") && Contains("'b'") && Contains("nan"));
  REQUIRE_THROWS_WITH(ayf::mmd_rbf({bad_a, 2}, {b, 2}), Contains("mmd_rbf") && Contains("'a'"));
  REQUIRE_THROWS_WITH(ayf::sorted_w2_squared({0, 1, qnan}, {0, 1}), Contains("sorted_w2_squared") && Contains("'x'"));
  REQUIRE_THROWS_WITH(ayf::sorted_w2_squared({0, 1}, {inf}), Contains("sorted_w2_squared") && Contains("'y'"));
}

TEST_CASE("sliced W2 and MMD raise when an intermediate overflows", "[metrics][cpu]") {
  // Finite samples whose projections or squared distances exceed the double range.
  const auto a = normal_samples(20, 2, 1e307, 3);
  const auto b = normal_samples(20, 2, -1e307, 4);
  REQUIRE_THROWS_WITH(ayf::sliced_w2({a, 2}, {b, 2}, 8), Contains("sliced_w2") && Contains("overflow"));
  REQUIRE_THROWS_WITH(ayf::sorted_w2_squared({-1e300}, {1e300}), Contains("sorted_w2_squared") && Contains("overflow"));
  // A bandwidth so small that -1 / (2 h^2) is -inf gives exp(-inf * 0) = NaN for duplicate points.
  const std::vector<double> dup{0, 0, 0, 0, 1, 1};
  REQUIRE_THROWS_WITH(ayf::mmd_rbf({dup, 2}, {dup, 2}, std::vector<double>{1e-200}),
                      Contains("mmd_rbf") && Contains("'bandwidths'"));
}

TEST_CASE("Gaussian W2 raises on non-finite input instead of returning 0", "[metrics][gaussian][cpu]") {
  const Eigen::VectorXd mu = Eigen::VectorXd::Zero(2);
  const Eigen::MatrixXd c = Eigen::MatrixXd::Identity(2, 2);
  REQUIRE(ayf::w2_gaussian(mu, c, mu, c) == 0.0);
  Eigen::VectorXd bad_mu = mu;
  bad_mu[1] = qnan;
  REQUIRE_THROWS_WITH(ayf::w2_gaussian(bad_mu, c, mu, c), Contains("w2_gaussian") && Contains("'mu1'"));
  REQUIRE_THROWS_WITH(ayf::w2_gaussian(mu, c, bad_mu, c), Contains("w2_gaussian") && Contains("'mu2'"));
  Eigen::MatrixXd bad_c = c;
  bad_c(0, 1) = bad_c(1, 0) = inf;
  REQUIRE_THROWS_WITH(ayf::w2_gaussian(mu, bad_c, mu, c), Contains("w2_gaussian") && Contains("'c1'"));
  REQUIRE_THROWS_WITH(ayf::w2_gaussian(mu, c, mu, bad_c), Contains("w2_gaussian") && Contains("'c2'"));
  // Finite but huge: |mu1 - mu2|^2 overflows.
  const Eigen::VectorXd far = Eigen::VectorXd::Constant(2, 1e200);
  REQUIRE_THROWS_WITH(ayf::w2_gaussian(far, c, -far, c), Contains("w2_gaussian") && Contains("overflow"));
}

TEST_CASE("Monte-Carlo W2 of samples scaled by 1e160 raises (the moments overflow) instead of returning 0",
          "[metrics][gaussian][cpu]") {
  // As gaussian_theorem --delta 1e160: the samples are finite, their squares are not.
  const std::size_t n = 200, d = 2;
  const auto x = normal_samples(n, d, 1e160, 5);
  const auto w2 = [&] {
    ayf::gaussian_moments moments(d);
    moments.add(x.data(), n, d);
    const ayf::gaussian_fit fit = moments.fit();
    return ayf::w2_gaussian(fit.mean, fit.covariance, Eigen::VectorXd::Zero(2), Eigen::MatrixXd::Identity(2, 2));
  };
  REQUIRE_THROWS_WITH(w2(), Contains("overflow"));

  using D = ayf::eigen_backend<double>;
  D::context ctx(1);
  const D::tensor t = D::from_host(ctx, x, ayf::shape(n, d));
  REQUIRE_THROWS_WITH(ayf::w2_sample_estimate_isotropic<D>(ctx, t, 1.0), Contains("overflow"));
  auto with_nan = x;
  for (auto& v : with_nan) v *= 1e-160;
  REQUIRE(std::isfinite(ayf::w2_sample_estimate_isotropic<D>(ctx, D::from_host(ctx, with_nan, ayf::shape(n, d)), 1.0)));
  with_nan[2 * 9] = qnan;
  REQUIRE_THROWS_WITH(ayf::w2_sample_estimate_isotropic<D>(ctx, D::from_host(ctx, with_nan, ayf::shape(n, d)), 1.0),
                      Contains("'samples'") && Contains("nan") && Contains("row 9, column 0"));
}

// ---- optimizer configs -----------------------------------------------------------------------------

TEST_CASE("Adam and EMA reject non-finite and out-of-range settings, naming the field", "[nn][cpu]") {
  B::context ctx(1);
  ayf::nn::mlp_config mc;
  mc.dims = 2;
  mc.width = 8;
  mc.blocks = 1;
  model_t model(ctx, mc);
  const auto make = [&](ayf::nn::adam_config c) { ayf::nn::adam<B> opt(ctx, model.parameters(), c); };
  const auto with = [](auto field, double value) {
    ayf::nn::adam_config c;
    c.*field = value;
    return c;
  };
  using ac = ayf::nn::adam_config;
  for (const double lr : {inf, qnan, -1e-3, 0.0}) {
    INFO("learning_rate = " << lr);
    REQUIRE_THROWS_WITH(make(with(&ac::learning_rate, lr)), Contains("adam_config") && Contains("'learning_rate'"));
  }
  REQUIRE_THROWS_WITH(make(with(&ac::learning_rate, inf)), Contains("received inf"));
  REQUIRE_THROWS_WITH(make(with(&ac::beta1, qnan)), Contains("'beta1'"));
  REQUIRE_THROWS_WITH(make(with(&ac::beta2, 1.0)), Contains("'beta2'"));
  REQUIRE_THROWS_WITH(make(with(&ac::epsilon, inf)), Contains("'epsilon'"));
  REQUIRE_THROWS_WITH(make(with(&ac::weight_decay, qnan)), Contains("'weight_decay'"));
  REQUIRE_THROWS_WITH(make(with(&ac::weight_decay, -0.1)), Contains("'weight_decay'"));
  REQUIRE_THROWS_WITH(make(with(&ac::clip_norm, inf)), Contains("'clip_norm'"));
  REQUIRE_NOTHROW(make(ac{1e-3, 0.9, 0.999, 1e-8, 0.01, 10, 1.0}));
  const auto make_ema = [&](double decay) { ayf::nn::exponential_moving_average<B> ema(ctx, model.parameters(), decay); };
  REQUIRE_THROWS_WITH(make_ema(qnan), Contains("'decay'"));

  // A non-finite gradient: ayf::error naming the gradients and the optimizer step, parameters untouched.
  ayf::nn::adam<B> opt(ctx, model.parameters());
  const auto before = B::to_host(ctx, model.parameters().values);
  auto g = std::vector<float>(model.parameters().size(), 0.0f);
  g[3] = std::numeric_limits<float>::quiet_NaN();
  B::copy(ctx, B::from_host(ctx, g, ayf::shape(1, g.size())), model.parameters().gradients);
  REQUIRE_THROWS_AS(opt.step(ctx, model.parameters()), ayf::error);
  REQUIRE_THROWS_WITH(opt.step(ctx, model.parameters()),
                      Contains("adam::step") && Contains("'gradients'") && Contains("optimizer step 1"));
  CHECK(B::to_host(ctx, model.parameters().values) == before);
  CHECK(opt.steps() == 0);
}

// ---- checkpoints -----------------------------------------------------------------------------------

namespace {

/// 64-bit FNV-1a, written from its definition: h = 0xcbf29ce484222325; h = (h xor byte) * 0x100000001b3.
std::uint64_t reference_fnv1a(const std::string& bytes, std::uint64_t h = 0xcbf29ce484222325ULL) {
  for (const char c : bytes) {
    h ^= static_cast<std::uint8_t>(c);
    h *= 0x100000001b3ULL;
  }
  return h;
}
std::string reference_checksum(std::uint64_t h) {
  char text[32];
  std::snprintf(text, sizeof text, "fnv1a64:%016llx", static_cast<unsigned long long>(h));
  return text;
}

/// A small model trained a few steps with Adam and EMA, so moments and EMA are non-trivial.
struct trained {
  B::context ctx{77};
  model_t model{ctx, config()};
  ayf::nn::adam<B> opt{ctx, model.parameters()};
  ayf::nn::exponential_moving_average<B> ema{ctx, model.parameters(), 0.9};

  static ayf::nn::mlp_config config() {
    ayf::nn::mlp_config c;
    c.dims = 2;
    c.width = 16;
    c.blocks = 1;
    c.seed = 3;
    return c;
  }
  trained() {
    ayf::flow_matching<B, model_t> fm;
    for (std::uint64_t it = 1; it <= 3; ++it) {
      const auto p = ayf::data::checkerboard(32, 5, it * 32);
      const B::tensor x = B::from_host(ctx, std::vector<float>(p.values.begin(), p.values.end()), ayf::shape(32, 2));
      model.parameters().zero_gradients(ctx);
      fm.step(ctx, model, x, nullptr);
      opt.step(ctx, model.parameters());
      ema.update(ctx, model.parameters());
    }
  }
  ayf::train::training_state<B> state() {
    auto s = ayf::train::make_training_state<B>(model, &opt, &ema, "flow_matching");
    s.iteration = 3;
    return s;
  }
};

/// The message of load_checkpoint on `path` into a fresh model, or "" when it loads.
std::string load_error(const fs::path& path) {
  trained fresh;
  auto s = fresh.state();
  try {
    ayf::train::load_checkpoint<B>(path, fresh.ctx, s);
  } catch (const ayf::error& e) {
    return e.what();
  }
  return "";
}

/// Byte offset (in the file) of tensor `name`'s data.
std::size_t data_offset(const std::string& file, const std::string& name) {
  std::uint64_t n = 0;
  for (int k = 7; k >= 0; --k) n = (n << 8) | static_cast<unsigned char>(file[static_cast<std::size_t>(k)]);
  const auto content = ayf::io::parse_safetensors(file, "file");
  std::size_t offset = 8 + static_cast<std::size_t>(n);
  for (const auto& t : content.tensors) {  // in offset order, contiguous
    if (t.name == name) return offset;
    offset += t.bytes.size();
  }
  FAIL("no tensor " << name);
  return 0;
}

/// Rewrites `content` to `path` with checksums computed by the reference FNV-1a above (format v2).
void write_with_reference_checksums(const fs::path& path, ayf::io::safetensors_content content) {
  std::map<std::string, std::string> plain;
  for (const auto& [key, value] : content.metadata) {
    if (key.rfind("checksum.", 0) != 0) plain[key] = value;
  }
  std::string joined;
  for (const auto& [key, value] : plain) joined += key + '\0' + value + '\0';
  auto metadata = plain;
  metadata["checksum.__metadata__"] = reference_checksum(reference_fnv1a(joined));
  for (const auto& t : content.tensors) {
    metadata["checksum." + t.name] = reference_checksum(reference_fnv1a(std::string(t.bytes.begin(), t.bytes.end())));
  }
  ayf::io::write_safetensors(path, content.tensors, metadata);
}

template <class T>
void set_value(ayf::io::safetensors_content& content, const std::string& name, std::size_t index, T value) {
  for (auto& t : content.tensors) {
    if (t.name == name) std::memcpy(t.bytes.data() + index * sizeof(T), &value, sizeof(T));
  }
}

}  // namespace

TEST_CASE("checkpoints store FNV-1a checksums of every tensor and of the metadata", "[train][cpu]") {
  scratch_dir dir;
  trained r;
  const fs::path path = dir / "ckpt.safetensors";
  ayf::train::save_checkpoint<B>(path, r.ctx, r.state());
  const auto content = ayf::io::read_safetensors(path);
  CHECK(content.metadata.at("format") == "ayf.checkpoint.v2");
  for (const auto& t : content.tensors) {
    INFO(t.name);
    CHECK(content.metadata.at("checksum." + t.name) ==
          reference_checksum(reference_fnv1a(std::string(t.bytes.begin(), t.bytes.end()))));
  }
  CHECK(content.tensors.size() == 8);  // parameters, 2 moments, adam.steps, ema, ema.updates, iteration, rng
  // Rewritten with the reference checksums, the file is identical: the documented format is the whole story.
  write_with_reference_checksums(dir / "again.safetensors", content);
  CHECK(read_bytes(dir / "again.safetensors") == read_bytes(path));
  CHECK(load_error(path).empty());
}

TEST_CASE("the EMA's update count is checkpointed; files without it count one update per iteration", "[train][cpu]") {
  scratch_dir dir;
  trained r;
  r.ema.set_updates(2);  // differs from the iteration (3), so the two sources are told apart
  const fs::path path = dir / "ckpt.safetensors";
  ayf::train::save_checkpoint<B>(path, r.ctx, r.state());
  {
    trained fresh;
    fresh.ema.set_updates(0);
    auto s = fresh.state();
    ayf::train::load_checkpoint<B>(path, fresh.ctx, s);
    CHECK(fresh.ema.updates() == 2);
  }
  auto content = ayf::io::read_safetensors(path);
  std::erase_if(content.tensors, [](const auto& t) { return t.name == "ema.updates"; });
  write_with_reference_checksums(dir / "older.safetensors", content);
  trained fresh;
  fresh.ema.set_updates(0);
  auto s = fresh.state();
  ayf::train::load_checkpoint<B>(dir / "older.safetensors", fresh.ctx, s);
  CHECK(fresh.ema.updates() == 3);
}

TEST_CASE("a checkpoint with one flipped bit in any tensor or the metadata fails to load, naming file and tensor",
          "[train][cpu]") {
  scratch_dir dir;
  trained r;
  const fs::path path = dir / "good.safetensors";
  ayf::train::save_checkpoint<B>(path, r.ctx, r.state());
  const std::string good = read_bytes(path);
  REQUIRE(load_error(path).empty());
  for (const std::string name :
       {"parameters", "adam.first_moment", "adam.second_moment", "adam.steps", "ema", "ema.updates", "iteration", "rng"}) {
    for (const std::size_t byte : {std::size_t(0), std::size_t(5)}) {
      // The lowest bit of the first element keeps every value finite and non-negative; the
      // bit in byte 5 is a middle mantissa bit of an F32 or a high bit of an I64.
      if (byte == 5 && (name == "adam.steps" || name == "ema.updates")) continue;  // one I64; covered by rng
      std::string flipped = good;
      flipped[data_offset(good, name) + byte] ^= 0x01;
      const fs::path bad = dir / ("flipped_" + name + ".safetensors");
      write_bytes(bad, flipped);
      const std::string msg = load_error(bad);
      INFO(name << " byte " << byte << ": " << msg);
      CHECK(Contains("flipped_" + name + ".safetensors").match(msg));
      CHECK(Contains("tensor '" + name + "'").match(msg));
      CHECK(Contains("checksum").match(msg));
    }
  }
  // The metadata: parameter_count is not compared with anything, only its checksum protects it.
  std::string flipped = good;
  const std::size_t at = flipped.find("\"parameter_count\":\"");
  REQUIRE(at != std::string::npos);
  flipped[at + 19] ^= 0x01;
  write_bytes(dir / "flipped_meta.safetensors", flipped);
  const std::string msg = load_error(dir / "flipped_meta.safetensors");
  CHECK(Contains("flipped_meta.safetensors").match(msg));
  CHECK(Contains("checksum.__metadata__").match(msg));
}

TEST_CASE("saving a checkpoint with a NaN parameter raises naming the tensor and keeps the old file",
          "[train][cpu]") {
  scratch_dir dir;
  trained r;
  const fs::path path = dir / "ckpt.safetensors";
  ayf::train::save_checkpoint<B>(path, r.ctx, r.state());
  const std::string before = read_bytes(path);
  auto values = B::to_host(r.ctx, r.model.parameters().values);
  values[11] = std::numeric_limits<float>::quiet_NaN();
  B::copy(r.ctx, B::from_host(r.ctx, values, ayf::shape(1, values.size())), r.model.parameters().values);
  REQUIRE_THROWS_WITH(ayf::train::save_checkpoint<B>(path, r.ctx, r.state()),
                      Contains("save_checkpoint") && Contains("ckpt.safetensors") && Contains("tensor 'parameters'") &&
                          Contains("nan") && Contains("index 11"));
  CHECK(read_bytes(path) == before);
  CHECK(!fs::exists(dir / "ckpt.safetensors.tmp"));

  trained s;
  auto second = B::to_host(s.ctx, s.opt.second_moment());
  second[2] = -1e-3f;
  B::copy(s.ctx, B::from_host(s.ctx, second, ayf::shape(1, second.size())), s.opt.second_moment());
  REQUIRE_THROWS_WITH(ayf::train::save_checkpoint<B>(dir / "neg.safetensors", s.ctx, s.state()),
                      Contains("tensor 'adam.second_moment'") && Contains(">= 0"));
  CHECK(!fs::exists(dir / "neg.safetensors"));
}

TEST_CASE("loading rejects non-finite values and negative second moments even with valid checksums",
          "[train][cpu]") {
  scratch_dir dir;
  trained r;
  const fs::path path = dir / "ckpt.safetensors";
  ayf::train::save_checkpoint<B>(path, r.ctx, r.state());
  const auto content = ayf::io::read_safetensors(path);

  SECTION("negative Adam second moment (v2, checksums recomputed)") {
    auto c = content;
    set_value<float>(c, "adam.second_moment", 4, -0.5f);
    write_with_reference_checksums(dir / "neg.safetensors", c);
    const std::string msg = load_error(dir / "neg.safetensors");
    CHECK(Contains("neg.safetensors").match(msg));
    CHECK(Contains("tensor 'adam.second_moment'").match(msg));
    CHECK(Contains(">= 0").match(msg));
    CHECK(Contains("index 4").match(msg));
  }
  SECTION("NaN in a parameter, the first moment or the EMA (v2, checksums recomputed)") {
    for (const std::string name : {"parameters", "adam.first_moment", "ema"}) {
      auto c = content;
      set_value<float>(c, name, 1, std::numeric_limits<float>::infinity());
      write_with_reference_checksums(dir / "inf.safetensors", c);
      const std::string msg = load_error(dir / "inf.safetensors");
      INFO(msg);
      CHECK(Contains("tensor '" + name + "'").match(msg));
      CHECK(Contains("finite").match(msg));
    }
  }
  SECTION("version 1 files (no checksums) load, with the same value checks") {
    auto meta = content.metadata;
    for (auto it = meta.begin(); it != meta.end();) it = it->first.rfind("checksum.", 0) == 0 ? meta.erase(it) : std::next(it);
    meta["format"] = "ayf.checkpoint.v1";
    ayf::io::write_safetensors(dir / "v1.safetensors", content.tensors, meta);
    CHECK(load_error(dir / "v1.safetensors").empty());
    auto c = content;
    set_value<float>(c, "parameters", 0, std::numeric_limits<float>::quiet_NaN());
    ayf::io::write_safetensors(dir / "v1_nan.safetensors", c.tensors, meta);
    const std::string msg = load_error(dir / "v1_nan.safetensors");
    CHECK(Contains("v1_nan.safetensors").match(msg));
    CHECK(Contains("tensor 'parameters'").match(msg));
    // A v2 file stripped of its checksums is not a v1 file.
    meta["format"] = "ayf.checkpoint.v2";
    ayf::io::write_safetensors(dir / "v2_bare.safetensors", content.tensors, meta);
    CHECK(Contains("checksum").match(load_error(dir / "v2_bare.safetensors")));
  }
}

// ---- atomic writes ---------------------------------------------------------------------------------

TEST_CASE("write_file_atomically writes the content, leaves no temporary file, keeps the old file on failure",
          "[io][cpu]") {
  scratch_dir dir;
  const fs::path path = dir / "sub" / "file.bin";
  std::string content(100000, '\0');
  for (std::size_t k = 0; k < content.size(); ++k) content[k] = static_cast<char>((k * 131) % 251);
  ayf::io::write_file_atomically(path, content);
  CHECK(read_bytes(path) == content);
  ayf::io::write_file_atomically(path, "second");
  CHECK(read_bytes(path) == "second");
  std::size_t entries = 0;
  for ([[maybe_unused]] const auto& e : fs::directory_iterator(dir / "sub")) ++entries;
  CHECK(entries == 1);  // no file.bin.tmp
  // The temporary path is taken by a directory: the write fails, the old file stays.
  fs::create_directories(dir / "sub" / "file.bin.tmp");
  REQUIRE_THROWS_WITH(ayf::io::write_file_atomically(path, "third"), Contains("file.bin.tmp"));
  CHECK(read_bytes(path) == "second");
  CHECK(fs::is_directory(dir / "sub" / "file.bin.tmp"));
}

// ---- CSV -------------------------------------------------------------------------------------------

TEST_CASE("CSV: a UTF-8 byte-order mark is skipped and the first row is kept", "[io][csv][cpu]") {
  const auto headerless = ayf::io::parse_points_csv("\xEF\xBB\xBF" "1,2\n3,4\n", "bom.csv");
  CHECK(headerless.rows == 2);
  CHECK(headerless.values == std::vector<double>{1, 2, 3, 4});
  ayf::io::csv_read_options options;
  options.label_column = "y";
  const auto with_header = ayf::io::parse_points_csv("\xEF\xBB\xBF" "y,x\r\n1,0.5\r\n0,2.5\r\n", "bom.csv", options);
  CHECK(with_header.rows == 2);
  CHECK(with_header.values == std::vector<double>{0.5, 2.5});
  CHECK(with_header.labels == std::vector<int>{1, 0});
}

TEST_CASE("CSV: a headerless first row with nan or inf is a data row, not a header", "[io][csv][cpu]") {
  // Rejected like any non-finite value, naming line 1 (it used to vanish as a "header").
  REQUIRE_THROWS_WITH(ayf::io::parse_points_csv("nan,1\n2,3\n", "nan.csv"),
                      Contains("nan.csv") && Contains("line 1") && Contains("column 1") && Contains("'nan'"));
  REQUIRE_THROWS_WITH(ayf::io::parse_points_csv("1,-inf\n2,3\n4,5\n", "inf.csv"), Contains("line 1"));
  REQUIRE_THROWS_WITH(ayf::io::parse_points_csv("1,1e999\n2,3\n", "big.csv"), Contains("line 1"));
  // Still a header when a field is a name.
  CHECK(ayf::io::parse_points_csv("x,nan_count\n1,2\n", "h.csv").rows == 1);
}

TEST_CASE("CSV: allow_non_finite keeps nan and inf values, first row included", "[io][csv][cpu]") {
  ayf::io::csv_read_options options;
  options.allow_non_finite = true;
  const auto p = ayf::io::parse_points_csv("\xEF\xBB\xBF" "nan,1\n2,-inf\nINF,3\n", "nan.csv", options);
  REQUIRE(p.rows == 3);
  CHECK(std::isnan(p.values[0]));
  CHECK(p.values[1] == 1);
  CHECK(p.values[3] == -inf);
  CHECK(p.values[4] == inf);
  REQUIRE_THROWS_WITH(ayf::io::parse_points_csv("1,2\n3,abc\n", "x.csv", options), Contains("line 2"));
}
