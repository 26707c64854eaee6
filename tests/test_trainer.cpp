// Tests of ayf/data/batch_sampler.hpp, ayf/train/trainer.hpp, model configs in checkpoints
// (ayf/train/model_config.hpp, load_model, export_inference) and the embed_s check of AYF-EMD / AYF-LMD:
// batches follow their documented Philox definition on every backend; the trainer lowers a flow-matching
// loss; a U-Net and an MLP stage resumed from a file that restates nothing continue bit for bit; the hook
// runs between backward and the update; divergence errors name the stage, step, hint and last checkpoint;
// a stop request ends a run after its step with that step's checkpoint and the resumed run continues bit
// for bit; SIGINT / SIGTERM set the stop flag once (ayf/train/stop_signal.hpp); an inference export holds
// the EMA weights in the safetensors byte layout.
#include <catch2/catch.hpp>

#include <pthread.h>
#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <csignal>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <limits>
#include <map>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "ayf/backends/eigen/backend.hpp"
#include "ayf/backends/xtensor/backend.hpp"
#include "ayf/core/philox.hpp"
#include "ayf/data/batch_sampler.hpp"
#include "ayf/data/toy2d.hpp"
#include "ayf/nn/mlp.hpp"
#include "ayf/nn/unet.hpp"
#include "ayf/objectives/ayf_emd.hpp"
#include "ayf/objectives/ayf_lmd.hpp"
#include "ayf/objectives/flow_matching.hpp"
#include "ayf/train/checkpoint.hpp"
#include "ayf/train/stop_signal.hpp"
#include "ayf/train/trainer.hpp"
#include "support/scratch_dir.hpp"

namespace {

using B = ayf::eigen_backend<float>;
using mlp_t = ayf::nn::mlp_flow_model<B>;
using unet_t = ayf::nn::unet_flow_model<B>;
using ayf_test::scratch_dir;
using Catch::Matchers::Contains;
namespace fs = std::filesystem;

std::string read_bytes(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

template <class Backend>
bool same_bits(typename Backend::context& ctx, const typename Backend::tensor& a, const typename Backend::tensor& b) {
  const auto x = Backend::to_host(ctx, a), y = Backend::to_host(ctx, b);
  return x.size() == y.size() && std::memcmp(x.data(), y.data(), x.size() * sizeof(x[0])) == 0;
}

/// 40 labelled rows of 3 columns: row r = (r, r + 0.25, -r), label r % 5.
ayf::data::points small_points() {
  ayf::data::points p;
  p.rows = 40;
  p.cols = 3;
  for (std::size_t r = 0; r < p.rows; ++r) {
    const double v = static_cast<double>(r);
    p.values.insert(p.values.end(), {v, v + 0.25, -v});
    p.labels.push_back(static_cast<int>(r % 5));
  }
  return p;
}

ayf::nn::mlp_config small_mlp() {
  return {.dims = 2, .width = 32, .blocks = 1, .seed = 7};
}

ayf::nn::unet_config small_unet() {
  ayf::nn::unet_config c;
  c.height = c.width = 8;
  c.channels = 1;
  c.base_channels = 8;
  c.channel_multipliers = {1, 2};
  c.groups = 4;
  c.frequencies = 4;
  c.classes = 2;
  c.lambda_scale = 1.0 / 3.0;
  c.attention_levels = {1};  // self-attention at 4x4
  c.attention_heads = 2;
  c.seed = 5;
  return c;
}

/// 48 labelled 8x8 images with values in [-1, 1] from Philox.
ayf::data::images small_images() {
  ayf::data::images im;
  im.count = 48;
  im.height = im.width = 8;
  im.channels = 1;
  for (std::size_t k = 0; k < im.count * im.dims(); ++k) {
    im.values.push_back(static_cast<float>(2 * ayf::philox_uniform(31, k) - 1));
  }
  for (std::size_t i = 0; i < im.count; ++i) im.labels.push_back(static_cast<std::int64_t>(i % 2));
  return im;
}

ayf::data::points gaussian_mixture(std::size_t n) { return ayf::data::eight_gaussians(n, 3); }

}  // namespace

// ---- batch sampler ---------------------------------------------------------------------------------

TEST_CASE("batch_sampler: batch k is the documented Philox draw, the same on every backend", "[data][cpu]") {
  const auto data = small_points();
  const ayf::data::batch_sampler_config config{16, 0.25, 42};
  ayf::data::batch_sampler<B> s(data, config);
  B::context ctx(1);
  for (const std::uint64_t k : {std::uint64_t{0}, std::uint64_t{1}, std::uint64_t{7}}) {
    s.draw(ctx, k);
    const auto x = B::to_host(ctx, s.x());
    REQUIRE(s.labels() != nullptr);
    const auto y = B::to_host(ctx, *s.labels());
    REQUIRE(x.size() == 16 * 3);
    REQUIRE(y.size() == 16);
    CHECK(B::shape_of(*s.labels()) == ayf::shape(16, 1));
    for (std::size_t j = 0; j < 16; ++j) {
      // Row floor(u * 40) with u = philox_uniform(seed, 2 (16 k + j)); dropout from the next draw.
      const std::uint64_t draw = 2 * (16 * k + j);
      const auto r = static_cast<std::size_t>(std::floor(ayf::philox_uniform(42, draw) * 40));
      CHECK(x[3 * j] == static_cast<float>(r));
      CHECK(x[3 * j + 1] == static_cast<float>(r + 0.25));
      const bool dropped = ayf::philox_uniform(42, draw + 1) < 0.25;
      CHECK(y[j] == (dropped ? -1.0f : static_cast<float>(r % 5)));
    }
  }
  // Determinism: a fresh sampler and context draw the same batch 7; batch 8 differs.
  ayf::data::batch_sampler<B> again(data, config);
  B::context other(99);
  B::tensor x7, y7;
  again.draw(other, 7, x7, y7);
  CHECK(same_bits<B>(ctx, x7, s.x()));
  CHECK(same_bits<B>(ctx, y7, *s.labels()));
  s.draw(ctx, 8);
  CHECK(!same_bits<B>(ctx, x7, s.x()));
  CHECK(other.rng.offset == 0);  // the training stream is not touched

  // The xtensor backend (double) draws the same rows, in its own scalar.
  using X = ayf::xtensor_backend<double>;
  ayf::data::batch_sampler<X> xs(data, config);
  X::context xctx(1);
  xs.draw(xctx, 7);
  const auto xd = X::to_host(xctx, xs.x());
  const auto xf = B::to_host(ctx, x7);
  REQUIRE(xd.size() == xf.size());
  for (std::size_t i = 0; i < xd.size(); ++i) CHECK(static_cast<float>(xd[i]) == xf[i]);
  const auto yd = X::to_host(xctx, *xs.labels());
  const auto yf = B::to_host(ctx, y7);
  for (std::size_t i = 0; i < yd.size(); ++i) CHECK(static_cast<float>(yd[i]) == yf[i]);
}

TEST_CASE("batch_sampler: label dropout rate within a binomial bound, 0 and 1 exact, no labels -> null",
          "[data][cpu]") {
  const auto data = small_points();
  B::context ctx(1);
  for (const double p : {0.0, 0.1, 0.5, 1.0}) {
    ayf::data::batch_sampler<B> s(data, {1000, p, 5});
    std::size_t dropped = 0, n = 0;
    for (std::uint64_t k = 1; k <= 10; ++k) {
      s.draw(ctx, k);
      for (const float y : B::to_host(ctx, *s.labels())) {
        dropped += y == -1.0f;
        CHECK((y == -1.0f || (y >= 0 && y < 5 && y == std::floor(y))));
        ++n;
      }
    }
    INFO("p = " << p << ", dropped " << dropped << " of " << n);
    const double mean = p * static_cast<double>(n), sd = std::sqrt(static_cast<double>(n) * p * (1 - p));
    CHECK(std::abs(static_cast<double>(dropped) - mean) <= 5 * sd);  // exact for p = 0 and p = 1
  }
  ayf::data::points plain = small_points();
  plain.labels.clear();
  ayf::data::batch_sampler<B> s(plain, {8, 0.5, 1});
  CHECK(!s.labelled());
  s.draw(ctx, 3);
  CHECK(s.labels() == nullptr);
  CHECK(B::shape_of(s.x()) == ayf::shape(8, 3));
}

TEST_CASE("batch_sampler: invalid data or settings raise ayf::error naming the argument", "[data][cpu]") {
  const auto data = small_points();
  using S = ayf::data::batch_sampler<B>;
  REQUIRE_THROWS_WITH(S(data, {0, 0.0, 1}), Contains("batch_sampler") && Contains("config.batch") && Contains("0"));
  REQUIRE_THROWS_WITH(S(data, {4, 1.5, 1}), Contains("config.label_dropout") && Contains("1.5"));
  REQUIRE_THROWS_WITH(S(data, {4, -0.1, 1}), Contains("config.label_dropout"));
  REQUIRE_THROWS_WITH(S(data, {4, std::nan(""), 1}), Contains("config.label_dropout") && Contains("nan"));
  REQUIRE_THROWS_WITH(S(std::vector<double>{}, 2, std::vector<int>{}, {4, 0.0, 1}),
                      Contains("'values'") && Contains("non-empty"));
  REQUIRE_THROWS_WITH(S(std::vector<double>{1, 2, 3, 4}, 2, std::vector<int>{0}, {4, 0.0, 1}),
                      Contains("'labels'") && Contains("0 or rows = 2") && Contains("received 1"));
  REQUIRE_THROWS_WITH(S(std::vector<double>{1, 2, 3}, 2, std::vector<int>{}, {4, 0.0, 1}),
                      Contains("'values'") && Contains("multiple of cols = 2"));
  REQUIRE_THROWS_WITH(S(std::vector<double>{1, 2, 3, 4}, 2, std::vector<int>{0, -3}, {4, 0.0, 1}),
                      Contains("'labels'") && Contains("-3") && Contains("row 1"));
  auto bad = data;
  bad.labels.pop_back();
  REQUIRE_THROWS_WITH(S(bad, {4, 0.0, 1}), Contains("points.labels"));
}

TEST_CASE("shuffled_indices is a permutation given by Fisher-Yates on Philox draws", "[data][cpu]") {
  const auto order = ayf::data::shuffled_indices(50, 77);
  std::vector<std::size_t> reference(50);
  for (std::size_t i = 0; i < 50; ++i) reference[i] = i;
  for (std::size_t i = 49; i >= 1; --i) {
    std::swap(reference[i], reference[static_cast<std::size_t>(std::floor(ayf::philox_uniform(77, i) * double(i + 1)))]);
  }
  CHECK(order == reference);
  auto sorted = order;
  std::sort(sorted.begin(), sorted.end());
  for (std::size_t i = 0; i < 50; ++i) CHECK(sorted[i] == i);
}

// ---- model configs ---------------------------------------------------------------------------------

TEST_CASE("model configs round-trip through strings exactly; bad values name the key", "[train][cpu]") {
  auto m = small_mlp();
  m.lambda_scale = 1.0 / 3.0;
  m.frequency_scale = 0.1;
  m.embed_s = true;
  const auto ms = ayf::train::config_strings(m);
  CHECK(ms.at("embed_s") == "1");
  const auto m2 = ayf::train::config_from_strings<ayf::nn::mlp_config>(ms, "src");
  CHECK(m2.lambda_scale == m.lambda_scale);  // exact, not to 6 digits
  CHECK(m2.frequency_scale == m.frequency_scale);
  CHECK(m2.embed_s);
  CHECK(ayf::train::config_strings(m2) == ms);

  auto u = small_unet();
  u.channel_multipliers = {1, 2, 4};
  u.norm_eps = 1e-6;
  const auto us = ayf::train::config_strings(u);
  CHECK(us.at("channel_multipliers") == "1,2,4");
  CHECK(us.at("attention_levels") == "1");
  CHECK(us.at("attention_heads") == "2");
  const auto u2 = ayf::train::config_from_strings<ayf::nn::unet_config>(us, "src");
  CHECK(u2.channel_multipliers == u.channel_multipliers);
  CHECK(u2.norm_eps == u.norm_eps);
  CHECK(u2.attention_levels == u.attention_levels);
  CHECK(u2.attention_heads == u.attention_heads);
  CHECK(ayf::train::config_strings(u2) == us);

  auto missing = us;
  missing.erase("groups");
  REQUIRE_THROWS_WITH(ayf::train::config_from_strings<ayf::nn::unet_config>(missing, "load_model: 'f.safetensors'"),
                      Contains("'f.safetensors'") && Contains("config.groups") && Contains("missing"));
  for (const auto& [key, text] : std::map<std::string, std::string>{
           {"channel_multipliers", "1,,2"}, {"channel_multipliers", "1,2,"}, {"groups", "-4"}, {"groups", "4x"},
           {"norm_eps", "inf"}, {"norm_eps", ""}, {"embed_s", "yes"}}) {
    auto bad = us;
    bad[key] = text;
    INFO(key << " = '" << text << "'");
    REQUIRE_THROWS_WITH(ayf::train::config_from_strings<ayf::nn::unet_config>(bad, "src"),
                        Contains("src") && Contains("'config." + key + "'") && Contains("received '" + text + "'"));
  }
}

// ---- trainer -----------------------------------------------------------------------------------------

TEST_CASE("trainer: flow matching on an MLP lowers the loss; progress lines and result", "[train][cpu]") {
  B::context ctx(3);
  mlp_t model(ctx, small_mlp());
  ayf::data::batch_sampler<B> sampler(gaussian_mixture(4000), {128, 0.0, 11});
  ayf::train::trainer_config tc;
  tc.steps = 400;
  tc.adam.learning_rate = 3e-3;
  tc.adam.warmup_steps = 20;
  tc.adam.clip_norm = 1.0;
  tc.progress_every = 100;
  tc.stage = "fm";
  std::ostringstream log;
  tc.log = &log;
  ayf::train::trainer<B, mlp_t> trainer(ctx, model, tc);
  ayf::flow_matching<B, mlp_t> fm;
  std::vector<double> losses;
  const auto result = trainer.run(ctx, sampler, [&](auto& c, const B::tensor& x, const B::tensor* y, std::uint64_t it) {
    CHECK(it == losses.size() + 1);
    CHECK(y == nullptr);
    const auto stats = fm.step(c, model, x, y);
    losses.push_back(stats.loss);
    return stats;
  });
  REQUIRE(losses.size() == 400);
  CHECK(result.first_step == 1);
  CHECK(result.last_step == 400);
  CHECK(trainer.optimizer().steps() == 400);
  double first = 0, last = 0;
  for (std::size_t k = 0; k < 50; ++k) first += losses[k], last += losses[350 + k];
  INFO("mean loss of the first 50 steps " << first / 50 << ", of the last 50 " << last / 50);
  CHECK(last < 0.85 * first);
  CHECK_THAT(log.str(), Contains("fm step 100/400") && Contains("fm step 400/400") && Contains("ETA"));
}

namespace {

/// One stage of an AYF-EMD student (MLP) or a flow-matching U-Net, run through the trainer.
struct stage_run {
  ayf::train::trainer_config config;
  explicit stage_run(const fs::path& checkpoint, std::uint64_t steps) {
    config.steps = steps;
    config.adam.learning_rate = 2e-3;
    config.adam.warmup_steps = 3;
    config.adam.clip_norm = 0.5;
    config.ema_decay = 0.9;
    config.checkpoint = checkpoint;
    config.checkpoint_every = 3;
    config.stage = "stage";
    config.seed = 2024;
    config.log = nullptr;
  }
};

struct final_state {
  std::vector<float> parameters, first, second, ema;
  std::uint64_t adam_steps = 0;
  ayf::philox_stream rng;
};

template <class Model>
final_state capture(B::context& ctx, Model& model, ayf::train::trainer<B, Model>& t) {
  return {B::to_host(ctx, model.parameters().values), B::to_host(ctx, t.optimizer().first_moment()),
          B::to_host(ctx, t.optimizer().second_moment()), B::to_host(ctx, t.ema()->average()),
          t.optimizer().steps(), ctx.rng};
}

void check_identical(const final_state& a, const final_state& b) {
  auto bits = [](const std::vector<float>& x, const std::vector<float>& y) {
    return x.size() == y.size() && std::memcmp(x.data(), y.data(), x.size() * sizeof(float)) == 0;
  };
  CHECK(bits(a.parameters, b.parameters));
  CHECK(bits(a.first, b.first));
  CHECK(bits(a.second, b.second));
  CHECK(bits(a.ema, b.ema));
  CHECK(a.adam_steps == b.adam_steps);
  CHECK(a.rng.seed == b.rng.seed);
  CHECK(a.rng.offset == b.rng.offset);
}

/// A U-Net trained by flow matching with labels and label dropout for `steps` (resuming from
/// `checkpoint` when `model` came from it).
final_state unet_stage(B::context& ctx, unet_t& model, const fs::path& checkpoint, std::uint64_t steps, bool resume) {
  stage_run run(checkpoint, steps);
  run.config.resume = resume;
  ayf::data::batch_sampler<B> sampler(small_images(), {6, 0.3, 17});
  ayf::train::trainer<B, unet_t> t(ctx, model, run.config);
  ayf::flow_matching<B, unet_t> fm;
  t.run(ctx, sampler, [&](auto& c, const B::tensor& x, const B::tensor* y, std::uint64_t) {
    REQUIRE(y != nullptr);
    return fm.step(c, model, x, y);
  });
  return capture(ctx, model, t);
}

/// An AYF-EMD student (MLP) distilled from a fixed MLP teacher; the tangent warmup uses the iteration.
/// With `stop_at`, the objective's step `stop_at` sets the trainer's stop flag; `result` and `log`
/// (when not null) get what run() returned and its lines.
final_state mlp_stage(B::context& ctx, mlp_t& student, const fs::path& checkpoint, std::uint64_t steps, bool resume,
                      std::uint64_t stop_at = 0, ayf::train::train_result* result = nullptr,
                      std::ostream* log = nullptr) {
  stage_run run(checkpoint, steps);
  run.config.resume = resume;
  run.config.log = log;
  std::atomic<bool> stop{false};
  if (stop_at > 0) run.config.stop = &stop;
  B::context tctx(8);
  mlp_t teacher(tctx, small_mlp());
  ayf::data::batch_sampler<B> sampler(gaussian_mixture(500), {32, 0.0, 19});
  ayf::train::trainer<B, mlp_t> t(ctx, student, run.config);
  ayf::ayf_emd_config ec;
  ec.warmup_iterations = 10;
  ayf::ayf_emd<B, mlp_t> emd(ec);
  const auto r = t.run(ctx, sampler, [&](auto& c, const B::tensor& x, const B::tensor* y, std::uint64_t it) {
    if (it == stop_at) stop = true;
    return emd.step(c, student, teacher, x, y, static_cast<double>(it));
  });
  if (result != nullptr) *result = r;
  return capture(ctx, student, t);
}

ayf::nn::mlp_config student_config() {
  auto c = small_mlp();
  c.embed_s = c.embed_lambda = true;
  c.lambda_scale = 1.0 / 3.0;
  return c;
}

}  // namespace

TEST_CASE("trainer: a U-Net stage resumed from a file that restates nothing continues bit for bit",
          "[train][cpu]") {
  scratch_dir dir;
  constexpr std::uint64_t n = 8;
  B::context straight_ctx(1);
  unet_t straight(straight_ctx, small_unet());
  const final_state a = unet_stage(straight_ctx, straight, dir / "straight.safetensors", n, false);

  {
    B::context ctx(1);
    unet_t first(ctx, small_unet());
    unet_stage(ctx, first, dir / "split.safetensors", n / 2, false);
  }
  B::context ctx(12345);  // another stream: the checkpoint restores it
  unet_t resumed = ayf::train::load_model<unet_t>(dir / "split.safetensors", ctx);
  CHECK(resumed.config().channel_multipliers == small_unet().channel_multipliers);
  CHECK(resumed.config().lambda_scale == small_unet().lambda_scale);
  const final_state b = unet_stage(ctx, resumed, dir / "split.safetensors", n, true);
  check_identical(a, b);
}

TEST_CASE("trainer: an AYF-EMD MLP stage resumed from a file that restates nothing continues bit for bit",
          "[train][cpu]") {
  scratch_dir dir;
  constexpr std::uint64_t n = 14;
  B::context tctx(8);
  const mlp_t teacher(tctx, small_mlp());
  B::context straight_ctx(1);
  mlp_t straight = mlp_t::from_teacher(straight_ctx, teacher, student_config());
  const final_state a = mlp_stage(straight_ctx, straight, dir / "straight.safetensors", n, false);
  {
    B::context ctx(1);
    mlp_t first = mlp_t::from_teacher(ctx, teacher, student_config());
    mlp_stage(ctx, first, dir / "split.safetensors", n / 2, false);
  }
  B::context ctx(777);
  mlp_t resumed = ayf::train::load_model<mlp_t>(dir / "split.safetensors", ctx);
  CHECK(resumed.config().embed_s);
  const final_state b = mlp_stage(ctx, resumed, dir / "split.safetensors", n, true);
  check_identical(a, b);

  // The same through make_training_state + load_checkpoint into a state built from the stored config.
  B::context ctx2(5);
  mlp_t loaded = ayf::train::load_model<mlp_t>(dir / "split.safetensors", ctx2);
  ayf::nn::adam<B> opt(ctx2, loaded.parameters());
  ayf::nn::exponential_moving_average<B> ema(ctx2, loaded.parameters(), 0.9);
  auto state = ayf::train::make_training_state<B>(loaded, &opt, &ema, "stage");
  state.settings = {{"batch", "32"}, {"ema", std::to_string(0.9)}};
  ayf::train::load_checkpoint<B>(dir / "split.safetensors", ctx2, state);
  CHECK(state.iteration == n);
  CHECK(opt.steps() == n);
  CHECK(same_bits<B>(ctx2, loaded.parameters().values, resumed.parameters().values));
}

/// The iteration stored in an MLP stage's checkpoint.
std::uint64_t checkpoint_iteration(const fs::path& checkpoint) {
  B::context ctx(1);
  mlp_t model = ayf::train::load_model<mlp_t>(checkpoint, ctx);
  ayf::nn::adam<B> opt(ctx, model.parameters());
  ayf::nn::exponential_moving_average<B> ema(ctx, model.parameters(), 0.9);
  auto state = ayf::train::make_training_state<B>(model, &opt, &ema, "stage");
  state.settings = {{"batch", "32"}, {"ema", std::to_string(0.9)}};
  ayf::train::load_checkpoint<B>(checkpoint, ctx, state);
  return state.iteration;
}

TEST_CASE("trainer: a stop request ends the run after its step with that step's checkpoint; resume continues bit "
          "for bit",
          "[train][cpu]") {
  scratch_dir dir;
  constexpr std::uint64_t n = 11;  // checkpoints every 3 steps (stage_run) and at 11
  B::context tctx(8);
  const mlp_t teacher(tctx, small_mlp());
  B::context straight_ctx(1);
  mlp_t straight = mlp_t::from_teacher(straight_ctx, teacher, student_config());
  const final_state a = mlp_stage(straight_ctx, straight, dir / "straight.safetensors", n, false);
  // Between checkpoints (5), on one (6), and at the last step (a finished run, not a stopped one).
  for (const std::uint64_t stop_at : {5u, 6u, 11u}) {
    INFO("stop requested at step " << stop_at);
    const fs::path path = dir / ("stop" + std::to_string(stop_at) + ".safetensors");
    std::ostringstream log;
    ayf::train::train_result result;
    {
      B::context ctx(1);
      mlp_t first = mlp_t::from_teacher(ctx, teacher, student_config());
      mlp_stage(ctx, first, path, n, false, stop_at, &result, &log);
    }
    CHECK(result.last_step == stop_at);
    CHECK(result.stopped == (stop_at < n));
    CHECK(checkpoint_iteration(path) == stop_at);
    const std::string expected = ayf::detail::concat("stage: stopped at step ", stop_at, " of ", n, "; checkpoint '",
                                                     path.string(), "' (resume continues from it)");
    CHECK((log.str().find(expected) != std::string::npos) == (stop_at < n));
    CHECK_FALSE(fs::exists(fs::path(path.string() + ".tmp")));
    B::context ctx(99);
    mlp_t resumed = ayf::train::load_model<mlp_t>(path, ctx);
    ayf::train::train_result rest;
    const final_state b = mlp_stage(ctx, resumed, path, n, true, 0, &rest);
    CHECK(rest.resumed);
    CHECK(rest.first_step == stop_at + 1);
    CHECK_FALSE(rest.stopped);
    check_identical(a, b);
  }
  SECTION("without a checkpoint file the run still stops, and says so") {
    B::context ctx(1);
    mlp_t model = mlp_t::from_teacher(ctx, teacher, student_config());
    std::ostringstream log;
    ayf::train::train_result result;
    mlp_stage(ctx, model, fs::path(), n, false, 4, &result, &log);
    CHECK(result.stopped);
    CHECK(result.last_step == 4);
    CHECK(log.str().find("stage: stopped at step 4 of 11; no checkpoint configured") != std::string::npos);
  }
}

TEST_CASE("stop_on_signals: SIGINT and SIGTERM set the stop flag once each, then their default action is back",
          "[train][cpu]") {
  // The signals go to the process (kill), as a terminal's or a scheduler's do: the calling thread blocks
  // them after stop_on_signals(), and a thread of its own, or a thread started before, takes them.
  auto signal_and_wait = [](int signal_number) {
    REQUIRE(kill(getpid(), signal_number) == 0);
    for (int k = 0; k < 5000 && ayf::train::stop_signal() != signal_number; ++k) {
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
  };
  struct sigaction saved_int {}, saved_term {}, now {};
  REQUIRE(sigaction(SIGINT, nullptr, &saved_int) == 0);
  REQUIRE(sigaction(SIGTERM, nullptr, &saved_term) == 0);
  ayf::train::clear_stop_request();
  const std::atomic<bool>* flag = ayf::train::stop_on_signals();
  CHECK(flag == ayf::train::stop_request_flag());
  CHECK_FALSE(flag->load());
  CHECK(ayf::train::stop_signal() == 0);
  signal_and_wait(SIGTERM);  // handled: the process goes on
  CHECK(flag->load());
  CHECK(ayf::train::stop_requested());
  CHECK(ayf::train::stop_signal() == SIGTERM);
  REQUIRE(sigaction(SIGTERM, nullptr, &now) == 0);
  CHECK(now.sa_handler == SIG_DFL);  // a second SIGTERM would end the process
  REQUIRE(sigaction(SIGINT, nullptr, &now) == 0);
  CHECK(now.sa_handler != SIG_DFL);
  signal_and_wait(SIGINT);
  CHECK(ayf::train::stop_signal() == SIGINT);
  REQUIRE(sigaction(SIGINT, nullptr, &now) == 0);
  CHECK(now.sa_handler == SIG_DFL);
  ayf::train::clear_stop_request();
  CHECK_FALSE(ayf::train::stop_requested());
  CHECK(ayf::train::stop_signal() == 0);
  ayf::train::request_stop();  // a program's own reason: no signal
  CHECK(flag->load());
  CHECK(ayf::train::stop_signal() == 0);
  ayf::train::clear_stop_request();
  sigaction(SIGINT, &saved_int, nullptr);
  sigaction(SIGTERM, &saved_term, nullptr);
  sigset_t set;  // this thread blocked them: it takes them again
  sigemptyset(&set);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGTERM);
  sigset_t blocked;
  REQUIRE(pthread_sigmask(SIG_SETMASK, nullptr, &blocked) == 0);
  CHECK(sigismember(&blocked, SIGINT) == 1);
  CHECK(sigismember(&blocked, SIGTERM) == 1);
  pthread_sigmask(SIG_UNBLOCK, &set, nullptr);
}

TEST_CASE("trainer: the hook runs once per step after backward and before the optimizer step", "[train][cpu]") {
  B::context ctx(3);
  mlp_t model(ctx, small_mlp());
  const auto before = B::to_host(ctx, model.parameters().values);
  ayf::data::batch_sampler<B> sampler(gaussian_mixture(500), {64, 0.0, 1});
  ayf::train::trainer_config tc;
  tc.steps = 5;
  tc.ema_decay = 0.5;
  tc.log = nullptr;
  ayf::flow_matching<B, mlp_t> fm;
  std::vector<std::uint64_t> calls;  // the step each hook call came after
  std::vector<double> step_norms, hook_norms;
  std::uint64_t current = 0;
  auto step = [&](auto& c, const B::tensor& x, const B::tensor* y, std::uint64_t it) {
    current = it;
    const auto stats = fm.step(c, model, x, y);
    step_norms.push_back(ayf::nn::adam<B>::gradient_norm(c, model.parameters()));
    return stats;
  };
  // The hook sees the gradient backward left (nothing in between), once per step, and zeroing it
  // there leaves the parameters unchanged: Adam's moments stay 0 and its update is 0 / (0 + eps).
  ayf::train::trainer<B, mlp_t> t(ctx, model, tc);
  t.run(ctx, sampler, step, [&](B::context& c, ayf::nn::parameter_set<B>& p) {
    calls.push_back(current);
    hook_norms.push_back(ayf::nn::adam<B>::gradient_norm(c, p));
    p.zero_gradients(c);
  });
  CHECK(calls == std::vector<std::uint64_t>{1, 2, 3, 4, 5});
  CHECK(hook_norms == step_norms);
  for (const double g : hook_norms) CHECK(g > 0);
  CHECK(B::to_host(ctx, model.parameters().values) == before);
  const auto average = B::to_host(ctx, t.ema()->average());  // a weighted mean of unchanged weights
  REQUIRE(average.size() == before.size());
  for (std::size_t k = 0; k < before.size(); ++k) CHECK(average[k] == Approx(before[k]).epsilon(1e-6).margin(1e-7));
  CHECK(t.ema()->updates() == 5);
  CHECK(t.optimizer().steps() == 5);
  // Without the hook the same run moves the parameters (the check above can fail).
  mlp_t other(ctx, small_mlp());
  ayf::train::trainer<B, mlp_t> plain(ctx, other, tc);
  plain.run(ctx, sampler, [&](auto& c, const B::tensor& x, const B::tensor* y, std::uint64_t) {
    return fm.step(c, other, x, y);
  });
  CHECK(B::to_host(ctx, other.parameters().values) != before);
}

TEST_CASE("trainer: a model with parameters() but no config traits trains and checkpoints", "[train][cpu]") {
  scratch_dir dir;
  B::context ctx(3);
  mlp_t inner(ctx, small_mlp());
  struct bare {  // what a user's own model may look like: no config()
    mlp_t* model;
    ayf::nn::parameter_set<B>& parameters() { return model->parameters(); }
  } model{&inner};
  ayf::data::batch_sampler<B> sampler(gaussian_mixture(200), {16, 0.0, 1});
  ayf::train::trainer_config tc;
  tc.steps = 3;
  tc.checkpoint = dir / "bare.safetensors";
  tc.log = nullptr;
  ayf::flow_matching<B, mlp_t> fm;
  ayf::train::trainer<B, bare> t(ctx, model, tc);
  t.run(ctx, sampler, [&](auto& c, const B::tensor& x, const B::tensor* y, std::uint64_t) {
    return fm.step(c, inner, x, y);
  });
  const auto content = ayf::io::read_safetensors(tc.checkpoint);
  CHECK(!content.metadata.contains("model"));
  CHECK(content.metadata.at("train.batch") == "16");
  CHECK(ayf::io::safetensors_values<std::int64_t>(content.at("iteration"))[0] == 3);
}

TEST_CASE("trainer: divergence names the stage, step, hint and last good checkpoint; nothing is written after it",
          "[train][cpu]") {
  scratch_dir dir;
  B::context ctx(3);
  mlp_t model(ctx, small_mlp());
  ayf::data::batch_sampler<B> sampler(gaussian_mixture(500), {32, 0.0, 1});
  ayf::train::trainer_config tc;
  tc.steps = 10;
  tc.checkpoint = dir / "stage.safetensors";
  tc.checkpoint_every = 4;
  tc.stage = "weak";
  tc.label = "weak teacher";
  tc.hint = "--lr (now 0.001)";
  tc.log = nullptr;
  ayf::flow_matching<B, mlp_t> fm;
  const auto path = tc.checkpoint.string();

  SECTION("a non-finite loss at step 6, after the checkpoint of step 4") {
    ayf::train::trainer<B, mlp_t> t(ctx, model, tc);
    std::string bytes_at_4;
    REQUIRE_THROWS_WITH(
        t.run(ctx, sampler,
              [&](auto& c, const B::tensor& x, const B::tensor* y, std::uint64_t it) {
                auto stats = fm.step(c, model, x, y);
                if (it == 5) bytes_at_4 = read_bytes(tc.checkpoint);
                if (it == 6) stats.loss = std::numeric_limits<double>::quiet_NaN();
                return stats;
              }),
        Contains("the weak teacher diverged at step 6 of 10") && Contains("non-finite loss (nan)") &&
            Contains("look at --lr (now 0.001)") && Contains("last good checkpoint: '" + path + "' (step 4)"));
    CHECK(read_bytes(tc.checkpoint) == bytes_at_4);
  }
  SECTION("non-finite gradients: Adam's error, with the stage; none written yet") {
    ayf::train::trainer<B, mlp_t> t(ctx, model, tc);
    REQUIRE_THROWS_WITH(
        t.run(ctx, sampler,
              [&](auto& c, const B::tensor& x, const B::tensor* y, std::uint64_t it) {
                auto stats = fm.step(c, model, x, y);
                if (it == 2) B::fill(c, model.parameters().gradients, std::numeric_limits<float>::infinity());
                return stats;
              }),
        Contains("weak teacher diverged at step 2 of 10") && Contains("adam::step") &&
            Contains("last good checkpoint: none"));
    CHECK(!fs::exists(tc.checkpoint));
  }
  SECTION("an update that leaves non-finite parameters") {
    tc.adam.learning_rate = 1e300;  // finite in double, infinite in the float update
    ayf::train::trainer<B, mlp_t> t(ctx, model, tc);
    REQUIRE_THROWS_WITH(t.run(ctx, sampler,
                              [&](auto& c, const B::tensor& x, const B::tensor* y, std::uint64_t) {
                                return fm.step(c, model, x, y);
                              }),
                        Contains("diverged at step 1 of 10") && Contains("non-finite parameters"));
    CHECK(!fs::exists(tc.checkpoint));
  }
  SECTION("a resumed run names the checkpoint it resumed from") {
    {
      ayf::train::trainer_config first = tc;
      first.steps = 4;
      first.settings["steps"] = "x";  // settings are compared on resume
      ayf::train::trainer<B, mlp_t> t(ctx, model, first);
      t.run(ctx, sampler, [&](auto& c, const B::tensor& x, const B::tensor* y, std::uint64_t) {
        return fm.step(c, model, x, y);
      });
      ayf::train::trainer<B, mlp_t> mismatched(ctx, model, [&] { auto c = tc; c.resume = true; return c; }());
      REQUIRE_THROWS_WITH(mismatched.run(ctx, sampler, [&](auto& c, const B::tensor& x, const B::tensor* y,
                                                           std::uint64_t) { return fm.step(c, model, x, y); }),
                          Contains("train.steps"));
      tc.settings["steps"] = "x";
    }
    tc.resume = true;
    ayf::train::trainer<B, mlp_t> t(ctx, model, tc);
    REQUIRE_THROWS_WITH(t.run(ctx, sampler,
                              [&](auto& c, const B::tensor& x, const B::tensor* y, std::uint64_t it) {
                                auto stats = fm.step(c, model, x, y);
                                if (it == 5) stats.loss = std::numeric_limits<double>::infinity();
                                return stats;
                              }),
                        Contains("diverged at step 5 of 10") && Contains("(step 4)"));
  }
}

// ---- inference export ----------------------------------------------------------------------------------

TEST_CASE("export_inference writes one tensor per block (the EMA weights) that load_model reads back bitwise",
          "[train][cpu]") {
  scratch_dir dir;
  B::context ctx(4);
  unet_t model(ctx, small_unet());
  ayf::nn::exponential_moving_average<B> ema(ctx, model.parameters(), 0.5);
  // Make the EMA differ from the parameters (the first update takes the weights as they are).
  for (int k = 0; k < 2; ++k) {
    B::scale_sum_rows(ctx, model.parameters().values, 1.5, model.parameters().values);
    ema.update(ctx, model.parameters());
  }
  REQUIRE(!same_bits<B>(ctx, ema.average(), model.parameters().values));
  const fs::path path = dir / "unet.safetensors";
  ayf::train::export_inference(path, ctx, model, &ema);

  B::context other(9);
  unet_t loaded = ayf::train::load_model<unet_t>(path, other);
  CHECK(same_bits<B>(ctx, loaded.parameters().values, ema.average()));
  CHECK(loaded.config().groups == 4);

  // The byte layout of the safetensors spec, read here without the library: an 8-byte little-endian
  // header length N, N bytes of JSON, then the data; each block "<name>":{"dtype":"F32","shape":[r,c],
  // "data_offsets":[a,b]} holds the block's EMA values at data + [a, b).
  const std::string bytes = read_bytes(path);
  std::uint64_t n = 0;
  for (int k = 7; k >= 0; --k) n = (n << 8) | static_cast<unsigned char>(bytes[static_cast<std::size_t>(k)]);
  const std::string header = bytes.substr(8, n);
  CHECK(header.find("\"format\":\"ayf.inference.v1\"") != std::string::npos);
  CHECK(header.find("\"model\":\"unet\"") != std::string::npos);
  CHECK(header.find("\"config.channel_multipliers\":\"1,2\"") != std::string::npos);
  CHECK(header.find("\"weights\":\"ema\"") != std::string::npos);
  const auto average = B::to_host(ctx, ema.average());
  std::size_t covered = 0;
  for (const auto& block : model.parameters().layout.blocks()) {
    const std::string prefix = "\"" + block.name + "\":{\"dtype\":\"F32\",\"shape\":[" +
                               std::to_string(block.extent.rows) + "," + std::to_string(block.extent.cols) +
                               "],\"data_offsets\":[";
    const std::size_t at = header.find(prefix);
    INFO(block.name);
    REQUIRE(at != std::string::npos);
    std::size_t begin = 0, end = 0;
    char comma = 0;
    std::istringstream(header.substr(at + prefix.size())) >> begin >> comma >> end;
    const std::size_t count = block.extent.rows * block.extent.cols;
    REQUIRE(end - begin == count * sizeof(float));
    CHECK(std::memcmp(bytes.data() + 8 + n + begin, average.data() + block.offset, count * sizeof(float)) == 0);
    covered += count;
  }
  CHECK(covered == average.size());
  CHECK(bytes.size() == 8 + n + covered * sizeof(float));

  // Without an EMA the parameters are exported; a training checkpoint's "ema" loads with checkpoint_weights::ema.
  ayf::train::export_inference(dir / "raw.safetensors", ctx, model);
  CHECK(same_bits<B>(ctx, ayf::train::load_model<unet_t>(dir / "raw.safetensors", other).parameters().values,
                     model.parameters().values));
  ayf::nn::adam<B> opt(ctx, model.parameters());
  ayf::train::save_checkpoint<B>(dir / "ckpt.safetensors", ctx,
                                 ayf::train::make_training_state<B>(model, &opt, &ema, "fm"));
  CHECK(same_bits<B>(
      ctx,
      ayf::train::load_model<unet_t>(dir / "ckpt.safetensors", other, ayf::train::checkpoint_weights::ema).parameters().values,
      ema.average()));
}

TEST_CASE("load_model errors name the file and the key, model kind or tensor", "[train][cpu]") {
  scratch_dir dir;
  B::context ctx(4);
  mlp_t model(ctx, small_mlp());
  const fs::path path = dir / "mlp.safetensors";
  ayf::train::export_inference(path, ctx, model);
  REQUIRE_THROWS_WITH(ayf::train::load_model<unet_t>(path, ctx),
                      Contains("load_model") && Contains("mlp.safetensors") && Contains("metadata 'model'") &&
                          Contains("'unet'") && Contains("'mlp'"));
  auto content = ayf::io::read_safetensors(path);
  SECTION("a missing config key") {
    content.metadata.erase("config.width");
    ayf::io::add_safetensors_checksums(content);
    ayf::io::write_safetensors(dir / "bad.safetensors", content);
    REQUIRE_THROWS_WITH(ayf::train::load_model<mlp_t>(dir / "bad.safetensors", ctx),
                        Contains("bad.safetensors") && Contains("config.width") && Contains("missing"));
  }
  SECTION("a bad config value") {
    content.metadata["config.blocks"] = "two";
    ayf::io::add_safetensors_checksums(content);
    ayf::io::write_safetensors(dir / "bad.safetensors", content);
    REQUIRE_THROWS_WITH(ayf::train::load_model<mlp_t>(dir / "bad.safetensors", ctx),
                        Contains("bad.safetensors") && Contains("config.blocks") && Contains("'two'"));
  }
  SECTION("a config the model rejects") {
    content.metadata["config.dims"] = "0";
    ayf::io::add_safetensors_checksums(content);
    ayf::io::write_safetensors(dir / "bad.safetensors", content);
    REQUIRE_THROWS_WITH(ayf::train::load_model<mlp_t>(dir / "bad.safetensors", ctx),
                        Contains("bad.safetensors") && Contains("dims"));
  }
  SECTION("a block of the wrong shape") {
    for (auto& t : content.tensors) {
      if (t.name == "out.b") t.shape = {2, 1};
    }
    ayf::io::add_safetensors_checksums(content);
    ayf::io::write_safetensors(dir / "bad.safetensors", content);
    REQUIRE_THROWS_WITH(ayf::train::load_model<mlp_t>(dir / "bad.safetensors", ctx),
                        Contains("bad.safetensors") && Contains("tensor 'out.b'") && Contains("shape"));
  }
  SECTION("a checkpoint without a model key (written before it existed)") {
    ayf::train::training_state<B> state = ayf::train::make_training_state<B>(model, nullptr, nullptr, "fm");
    state.model.clear();
    ayf::train::save_checkpoint<B>(dir / "old.safetensors", ctx, state);
    REQUIRE_THROWS_WITH(ayf::train::load_model<mlp_t>(dir / "old.safetensors", ctx),
                        Contains("old.safetensors") && Contains("metadata 'model'") && Contains("none"));
    // ... still loads into a state that restates the config.
    auto again = ayf::train::make_training_state<B>(model, nullptr, nullptr, "fm");
    ayf::train::load_checkpoint<B>(dir / "old.safetensors", ctx, again);
  }
}

TEST_CASE("checkpoints written before the settings prefix and the model key still resume",
          "[train][cpu]") {
  scratch_dir dir;
  B::context ctx(4);
  mlp_t model(ctx, small_mlp());
  ayf::nn::adam<B> opt(ctx, model.parameters());
  // The old layout: the run's settings mixed into the config, no "model" key.
  auto old = ayf::train::make_training_state<B>(model, &opt, nullptr, "teacher");
  old.model.clear();
  old.config["steps"] = "10";
  old.config["batch"] = "64";
  old.iteration = 10;
  const fs::path path = dir / "old.safetensors";
  ayf::train::save_checkpoint<B>(path, ctx, old);
  const auto content = ayf::io::read_safetensors(path);
  REQUIRE(content.metadata.contains("config.steps"));
  REQUIRE(!content.metadata.contains("model"));

  auto state = ayf::train::make_training_state<B>(model, &opt, nullptr, "teacher");
  state.settings = {{"steps", "10"}, {"batch", "64"}};
  ayf::train::load_checkpoint<B>(path, ctx, state);
  CHECK(state.iteration == 10);
  state.settings["steps"] = "11";
  REQUIRE_THROWS_WITH(ayf::train::load_checkpoint<B>(path, ctx, state),
                      Contains("old.safetensors") && Contains("train.steps") && Contains("expected 11") &&
                          Contains("received 10"));
  state.settings.erase("steps");  // a config.<key> that is neither config nor setting is still an error
  REQUIRE_THROWS_WITH(ayf::train::load_checkpoint<B>(path, ctx, state),
                      Contains("'config.steps'") && Contains("not in the model's config"));
  // A state of another kind is rejected when the file names its kind.
  auto unet_like = ayf::train::make_training_state<B>(model, &opt, nullptr, "teacher");
  ayf::train::save_checkpoint<B>(dir / "new.safetensors", ctx, unet_like);
  unet_like.model = "unet";
  REQUIRE_THROWS_WITH(ayf::train::load_checkpoint<B>(dir / "new.safetensors", ctx, unet_like),
                      Contains("metadata 'model'") && Contains("'unet'") && Contains("'mlp'"));
}

// ---- embed_s ---------------------------------------------------------------------------------------

TEST_CASE("AYF-EMD and AYF-LMD reject a student built without an s input", "[objectives][cpu]") {
  B::context ctx(2);
  mlp_t teacher(ctx, small_mlp());
  auto no_s = small_mlp();
  no_s.embed_lambda = true;
  mlp_t student(ctx, no_s);
  const auto p = gaussian_mixture(16);
  const B::tensor x = B::from_host(ctx, std::vector<float>(p.values.begin(), p.values.end()), ayf::shape(16, 2));
  ayf::ayf_emd<B, mlp_t> emd;
  REQUIRE_THROWS_WITH(emd.step(ctx, student, teacher, x, nullptr, 1.0),
                      Contains("ayf_emd") && Contains("embed_s = true"));
  ayf::ayf_lmd<B, mlp_t> lmd;
  REQUIRE_THROWS_WITH(lmd.step(ctx, student, teacher, x, nullptr, 1.0),
                      Contains("ayf_lmd") && Contains("embed_s = true"));
  ayf::training_batch<B> batch;
  ayf::sample_training_batch<B>(ctx, {}, x, batch);
  REQUIRE_THROWS_WITH(emd.step_on_batch(ctx, student, teacher, batch, nullptr, 1.0), Contains("ayf_emd"));
  REQUIRE_THROWS_WITH(lmd.step_on_batch(ctx, student, teacher, batch, nullptr, 1.0), Contains("ayf_lmd"));
  // With an s input both run; sCD (s = 0 always) takes a student without one.
  auto with_s = no_s;
  with_s.embed_s = true;
  mlp_t flow_map(ctx, with_s);
  CHECK(std::isfinite(emd.step(ctx, flow_map, teacher, x, nullptr, 1.0).loss));
  CHECK(std::isfinite(lmd.step(ctx, flow_map, teacher, x, nullptr, 1.0).loss));
  ayf::ayf_emd_config scd;
  scd.pairs.consistency = true;
  CHECK(std::isfinite(ayf::ayf_emd<B, mlp_t>(scd).step(ctx, student, teacher, x, nullptr, 1.0).loss));
}
