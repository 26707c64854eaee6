// Tests of ayf/train: a checkpointed resume is bit-exact (N steps straight vs N/2, save, load into a
// fresh model / optimizer / context, N/2 more), corrupt or mismatched checkpoints raise ayf::error
// naming the file and the field, and the progress reporter prints the documented line.
#include <catch2/catch.hpp>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "ayf/backends/eigen/backend.hpp"
#include "ayf/data/toy2d.hpp"
#include "ayf/nn/mlp.hpp"
#include "ayf/nn/optimizer.hpp"
#include "ayf/objectives/ayf_emd.hpp"
#include "ayf/objectives/flow_matching.hpp"
#include "ayf/train/checkpoint.hpp"
#include "ayf/train/progress.hpp"

namespace {

using B = ayf::eigen_backend<float>;
using model_t = ayf::nn::mlp_flow_model<B>;
namespace fs = std::filesystem;

ayf::nn::mlp_config small_config() {
  return {.dims = 2, .width = 32, .blocks = 1, .seed = 7};
}

fs::path temp_path(const std::string& name) {
  const fs::path dir = fs::temp_directory_path() / "ayf_test_train";
  fs::create_directories(dir);
  return dir / name;
}

/// A training run: model, Adam, EMA and a context, stepping flow matching on checkerboard batches
/// that depend only on the iteration.
struct run {
  B::context ctx{1234};
  model_t model{ctx, small_config()};
  ayf::nn::adam<B> opt{ctx, model.parameters(), ayf::nn::adam_config{1e-3, 0.9, 0.999, 1e-8, 0.0, 5, 1.0}};
  ayf::nn::exponential_moving_average<B> ema{ctx, model.parameters(), 0.9};
  ayf::flow_matching<B, model_t> fm;
  std::uint64_t iteration = 0;

  void steps(std::uint64_t count) {
    for (std::uint64_t k = 0; k < count; ++k) {
      ++iteration;
      const auto p = ayf::data::checkerboard(64, 99, iteration * 64);
      const std::vector<float> xv(p.values.begin(), p.values.end());
      const B::tensor x = B::from_host(ctx, xv, ayf::shape(64, 2));
      model.parameters().zero_gradients(ctx);
      fm.step(ctx, model, x, nullptr);
      opt.step(ctx, model.parameters());
      ema.update(ctx, model.parameters());
    }
  }
  ayf::train::training_state<B> state() {
    auto s = ayf::train::make_training_state<B>(model, &opt, &ema, "flow_matching");
    s.iteration = iteration;
    return s;
  }
  void save(const fs::path& path) { ayf::train::save_checkpoint<B>(path, ctx, state()); }
  void load(const fs::path& path) {
    auto s = state();
    ayf::train::load_checkpoint<B>(path, ctx, s);
    iteration = s.iteration;
  }
};

std::string load_error(const fs::path& path, ayf::nn::mlp_config config, std::string objective = "flow_matching") {
  B::context ctx(1);
  model_t model(ctx, config);
  ayf::nn::adam<B> opt(ctx, model.parameters());
  auto state = ayf::train::make_training_state<B>(model, &opt, nullptr, std::move(objective));
  try {
    ayf::train::load_checkpoint<B>(path, ctx, state);
  } catch (const ayf::error& e) {
    return e.what();
  }
  return "";
}

bool contains(const std::string& haystack, const std::string& needle) { return haystack.find(needle) != std::string::npos; }

}  // namespace

TEST_CASE("checkpoint resume is bitwise identical to an uninterrupted run", "[train]") {
  constexpr std::uint64_t n = 40;
  run straight;
  straight.steps(n);

  const fs::path path = temp_path("resume.safetensors");
  {
    run first;
    first.steps(n / 2);
    first.save(path);
  }
  run resumed;  // fresh model, optimizer, EMA and context
  resumed.ctx.rng = ayf::philox_stream{555, 777};
  resumed.load(path);
  CHECK(resumed.iteration == n / 2);
  CHECK(resumed.opt.steps() == n / 2);
  CHECK(resumed.ema.updates() == n / 2);
  resumed.steps(n / 2);

  const auto a = B::to_host(straight.ctx, straight.model.parameters().values);
  const auto b = B::to_host(resumed.ctx, resumed.model.parameters().values);
  REQUIRE(a.size() == b.size());
  CHECK(std::memcmp(a.data(), b.data(), a.size() * sizeof(float)) == 0);
  const auto ea = B::to_host(straight.ctx, straight.ema.average());
  const auto eb = B::to_host(resumed.ctx, resumed.ema.average());
  CHECK(std::memcmp(ea.data(), eb.data(), ea.size() * sizeof(float)) == 0);
  CHECK(straight.ctx.rng.seed == resumed.ctx.rng.seed);
  CHECK(straight.ctx.rng.offset == resumed.ctx.rng.offset);
}

TEST_CASE("double checkpoints keep F64", "[train]") {
  using D = ayf::eigen_backend<double>;
  D::context ctx(3);
  ayf::nn::mlp_flow_model<D> model(ctx, small_config());
  const fs::path path = temp_path("double.safetensors");
  auto state = ayf::train::make_training_state<D>(model, nullptr, nullptr, "x");
  ayf::train::save_checkpoint<D>(path, ctx, state);
  const auto content = ayf::io::read_safetensors(path);
  CHECK(content.at("parameters").dtype == ayf::io::safetensors_dtype::F64);
  CHECK(content.metadata.at("format") == std::string(ayf::train::checkpoint_format));
  CHECK(content.metadata.at("config.width") == "32");
  ayf::nn::mlp_flow_model<D> other(ctx, [] { auto c = small_config(); c.seed = 8; return c; }());
  auto other_state = ayf::train::make_training_state<D>(other, nullptr, nullptr, "x");
  ayf::train::load_checkpoint<D>(path, ctx, other_state);
  CHECK(D::to_host(ctx, other.parameters().values) == D::to_host(ctx, model.parameters().values));
}

TEST_CASE("corrupt and mismatched checkpoints raise ayf::error naming the problem", "[train]") {
  const fs::path good = temp_path("good.safetensors");
  {
    run r;
    r.steps(2);
    r.save(good);
  }
  CHECK(load_error(good, small_config()).empty());

  SECTION("missing file") {
    const fs::path missing = temp_path("does_not_exist.safetensors");
    const std::string msg = load_error(missing, small_config());
    CHECK(contains(msg, "does_not_exist.safetensors"));
    CHECK(contains(msg, "no such file"));
  }
  SECTION("truncated file") {
    std::ifstream in(good, std::ios::binary);
    std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    const fs::path truncated = temp_path("truncated.safetensors");
    std::ofstream(truncated, std::ios::binary).write(bytes.data(), static_cast<std::streamsize>(bytes.size() / 2));
    const std::string msg = load_error(truncated, small_config());
    CHECK(contains(msg, "truncated.safetensors"));
    CHECK(contains(msg, "corrupt or truncated"));
  }
  SECTION("wrong parameter count") {
    // A checkpoint of a model with a different width but the same config keys claimed.
    B::context ctx(2);
    auto c = small_config();
    c.width = 16;
    model_t other(ctx, c);
    auto state = ayf::train::make_training_state<B>(other, nullptr, nullptr, "flow_matching");
    state.config = ayf::train::config_strings(small_config());  // lies about its config
    const fs::path wrong = temp_path("wrong_count.safetensors");
    ayf::train::save_checkpoint<B>(wrong, ctx, state);
    const std::string msg = load_error(wrong, small_config());
    CHECK(contains(msg, "wrong_count.safetensors"));
    CHECK(contains(msg, "'parameters'"));
    CHECK(contains(msg, "parameter count"));
  }
  SECTION("wrong config") {
    auto c = small_config();
    c.frequencies = 4;
    const std::string msg = load_error(good, c);
    CHECK(contains(msg, "good.safetensors"));
    CHECK(contains(msg, "config.frequencies"));
  }
  SECTION("wrong objective") {
    const std::string msg = load_error(good, small_config(), "ayf_emd");
    CHECK(contains(msg, "objective"));
  }
}

TEST_CASE("progress prints step, loss, gradient norm, rate and ETA", "[train]") {
  std::ostringstream os;
  ayf::train::progress p("fm", 10, 5, os);
  for (std::uint64_t k = 1; k <= 10; ++k) p.update(k, 0.5, 2.0);
  const std::string text = os.str();
  CHECK(contains(text, "fm step 5/10  loss 0.5000  |g| 2.000  "));
  CHECK(contains(text, "fm step 10/10"));
  CHECK(contains(text, "steps/s  ETA "));
  CHECK(ayf::train::format_duration(9) == "9s");
  CHECK(ayf::train::format_duration(125) == "2m05s");
  CHECK(ayf::train::format_duration(3720) == "1h02m");
}

TEST_CASE("a short AYF-EMD distillation from a flow-matching teacher reduces nothing to NaN", "[train]") {
  // Smoke: the toy2d pipeline's pieces (teacher FM, student from_teacher, AYF-EMD, checkpoint) run.
  B::context ctx(5);
  model_t teacher(ctx, small_config());
  ayf::flow_matching<B, model_t> fm;
  ayf::nn::adam<B> topt(ctx, teacher.parameters());
  for (int k = 0; k < 5; ++k) {
    const auto p = ayf::data::eight_gaussians(64, 1, static_cast<std::uint64_t>(k) * 64);
    const B::tensor x = B::from_host(ctx, std::vector<float>(p.values.begin(), p.values.end()), ayf::shape(64, 2));
    teacher.parameters().zero_gradients(ctx);
    fm.step(ctx, teacher, x, nullptr);
    topt.step(ctx, teacher.parameters());
  }
  auto sc = small_config();
  sc.embed_s = sc.embed_lambda = true;
  model_t student = model_t::from_teacher(ctx, teacher, sc);
  ayf::ayf_emd<B, model_t> emd;
  ayf::nn::adam<B> sopt(ctx, student.parameters());
  for (int k = 0; k < 5; ++k) {
    const auto p = ayf::data::eight_gaussians(64, 2, static_cast<std::uint64_t>(k) * 64);
    const B::tensor x = B::from_host(ctx, std::vector<float>(p.values.begin(), p.values.end()), ayf::shape(64, 2));
    student.parameters().zero_gradients(ctx);
    const auto stats = emd.step(ctx, student, teacher, x, nullptr, k);
    CHECK(std::isfinite(stats.loss));
    sopt.step(ctx, student.parameters());
  }
  const fs::path path = temp_path("student.safetensors");
  auto state = ayf::train::make_training_state<B>(student, &sopt, nullptr, "ayf_emd");
  ayf::train::save_checkpoint<B>(path, ctx, state);
  CHECK(load_error(path, small_config(), "ayf_emd") != "");  // a teacher config does not load a student
}
