// tests/test_step_allocation.cpp: warmed-up training steps on the host backends make no heap allocation.
// Flow matching, AYF-EMD (autoguided teacher) and AYF-LMD steps with Adam, on the MLP and on a U-Net
// with attention and class labels, run in a one-thread oneTBB arena so that every loop runs on this
// thread, whose allocations support/allocation_counter.cpp counts: operator new and, where the linker
// wraps it, the malloc family, i.e. Eigen's tensor storage. (Buffers that oneDNN or OpenBLAS take inside
// their own shared libraries are not counted.) A resize to a new shape is counted (negative control).
#include <catch2/catch.hpp>

#include <cstddef>
#include <cstdint>
#include <functional>
#include <string>
#include <type_traits>
#include <vector>

#include <oneapi/tbb/task_arena.h>

#include "ayf/backends/eigen/backend.hpp"
#include "ayf/backends/xtensor/backend.hpp"
#include "ayf/core/error.hpp"
#include "ayf/core/philox.hpp"
#include "ayf/data/batch_sampler.hpp"
#include "ayf/flow_map/parametrization.hpp"
#include "ayf/guidance/guidance.hpp"
#include "ayf/nn/mlp.hpp"
#include "ayf/nn/optimizer.hpp"
#include "ayf/nn/unet.hpp"
#include "ayf/objectives/ayf_emd.hpp"
#include "ayf/objectives/ayf_lmd.hpp"
#include "ayf/objectives/flow_matching.hpp"
#include "ayf/paths/time_grid.hpp"
#include "ayf/samplers/flow_map.hpp"
#include "ayf/samplers/ode.hpp"
#include "ayf/train/trainer.hpp"
#include "support/allocation_counter.hpp"
#include "thrust/cases.hpp"

namespace {

using ayf::shape;

/// The conformance suite's MLP with 3 classes.
ayf::nn::mlp_config mlp_shape(bool student, std::uint64_t seed) {
  return ayf_conformance::mlp_shape(student, seed, 3);
}

/// The conformance suite's U-Net (8x8x1, 4 and 8 channels, 3 classes) with attention on the second level.
ayf::nn::unet_config unet_shape(bool student, std::uint64_t seed) {
  ayf::nn::unet_config c = ayf_conformance::unet_shape(student, seed);
  c.attention_levels = {1};
  c.attention_heads = 2;
  return c;
}

std::size_t data_dims(const ayf::nn::mlp_config& c) { return c.dims; }
std::size_t data_dims(const ayf::nn::unet_config& c) { return c.dims(); }

/// Allocations on this thread during `steps` calls of `step` after `warm` calls, all in a one-thread arena.
std::size_t allocations_once_warm(const std::function<void()>& step, int warm = 2, int steps = 3) {
  tbb::task_arena one(1);
  std::size_t allocations = 0;
  one.execute([&] {
    for (int k = 0; k < warm; ++k) step();
    const std::size_t before = ayf_test_alloc::calls;
    for (int k = 0; k < steps; ++k) step();
    allocations = ayf_test_alloc::calls - before;
  });
  return allocations;
}

/// FM on the teacher, then AYF-EMD and AYF-LMD on the student from the autoguided teacher, each with Adam.
template <class B, class Model, class Config>
void check_training_steps(Config (*config)(bool, std::uint64_t), std::size_t batch) {
  typename B::context ctx(11);
  Model teacher(ctx, config(false, 1));
  Model weak(ctx, config(false, 2));
  auto guided = ayf::make_autoguided_velocity<B>(teacher, weak);
  Model student = Model::from_teacher(ctx, teacher, config(true, 3));
  ayf::nn::adam<B> teacher_adam(ctx, teacher.parameters());
  ayf::nn::adam<B> student_adam(ctx, student.parameters());
  ayf::flow_matching<B, Model> fm;
  ayf::ayf_emd<B, Model> emd;
  ayf::ayf_lmd<B, Model> lmd;
  auto x0 = B::make(ctx, shape(batch, data_dims(teacher.config())));
  auto labels = B::make(ctx, shape::vector(batch));
  B::fill(ctx, labels, 1.0);
  double iteration = 0;
  auto fm_step = [&] {
    B::randn(ctx, x0);
    teacher.parameters().zero_gradients(ctx);
    fm.step(ctx, teacher, x0, &labels);
    teacher_adam.step(ctx, teacher.parameters());
  };
  auto emd_step = [&] {
    B::randn(ctx, x0);
    student.parameters().zero_gradients(ctx);
    emd.step(ctx, student, guided, x0, &labels, iteration++);
    student_adam.step(ctx, student.parameters());
  };
  auto lmd_step = [&] {
    B::randn(ctx, x0);
    student.parameters().zero_gradients(ctx);
    lmd.step(ctx, student, guided, x0, &labels, iteration++);
    student_adam.step(ctx, student.parameters());
  };
  CHECK(allocations_once_warm(fm_step) == 0);
  CHECK(allocations_once_warm(emd_step) == 0);
  CHECK(allocations_once_warm(lmd_step) == 0);
  // All three interleaved, as a trainer that alternates them would.
  CHECK(allocations_once_warm([&] {
          fm_step();
          emd_step();
          lmd_step();
        }) == 0);
}

}  // namespace

TEST_CASE("the allocation counter sees Eigen tensor allocations", "[allocation][cpu]") {
  if (!ayf_test_alloc::counts_malloc()) {
    WARN("this linker does not wrap malloc: Eigen's tensor allocations are not counted");
    return;
  }
  using B = ayf::eigen_backend<float>;
  B::context ctx(1);
  const std::size_t before = ayf_test_alloc::calls;
  auto x = B::make(ctx, shape(16, 16));
  CHECK(ayf_test_alloc::calls - before == 1);
  B::resize(ctx, x, shape(32, 32));
  CHECK(ayf_test_alloc::calls - before == 2);
  B::resize(ctx, x, shape(32, 32));  // the same shape: no-op
  CHECK(ayf_test_alloc::calls - before == 2);
}

TEST_CASE("a check's composed expectation is formatted only when it fails, as concat would", "[allocation][cpu]") {
  const double bound = 0.1;
  const std::size_t rows = 7;
  const std::size_t before = ayf_test_alloc::calls;
  ayf::require(true, "where", "value", ayf::detail::message("at least ", bound, " in ", rows, " rows"), 0.05);
  CHECK(ayf_test_alloc::calls == before);
  std::string text;
  try {
    ayf::require(false, "where", "value", ayf::detail::message("at least ", bound, " in ", rows, " rows"),
                 ayf::detail::message(0.05, "!"));
  } catch (const ayf::error& e) {
    text = e.what();
  }
  CHECK(text == ayf::detail::concat("where: argument 'value' expected at least ", bound, " in 7 rows, received ", 0.05,
                                    "!"));
  CHECK(text.find("0.10000000000000001") != std::string::npos);  // 17 digits, as concat
  // A hot-path check: the time-pair sampler names the bound it was given.
  ayf::pair_sampler_config config;
  config.lambda_min = 2.5;
  config.lambda_max = 1.0;
  using B = ayf::eigen_backend<double>;
  B::context ctx(3);
  ayf::training_batch<B> batch;
  REQUIRE_THROWS_WITH(ayf::sample_training_batch<B>(ctx, config, B::make(ctx, shape(4, 2)), batch),
                      Catch::Contains("at least lambda_min = 2.5, received 1"));
}

TEMPLATE_TEST_CASE("warmed-up FM, AYF-EMD and AYF-LMD steps allocate nothing on the host backends",
                   "[allocation][train][cpu]", ayf::eigen_backend<float>, ayf::eigen_backend<double>,
                   ayf::xtensor_backend<double>) {
  using B = TestType;
  if (std::is_same_v<typename B::storage, ayf::eigen_storage<typename B::scalar>> && !ayf_test_alloc::counts_malloc())
    WARN("this linker does not wrap malloc: Eigen's tensor allocations are not counted");
  SECTION("MLP") { check_training_steps<B, ayf::nn::mlp_flow_model<B>>(mlp_shape, 24); }
  SECTION("U-Net with attention") { check_training_steps<B, ayf::nn::unet_flow_model<B>>(unet_shape, 4); }
}

TEST_CASE("a trainer's iterations allocate nothing between progress lines and checkpoints", "[allocation][train][cpu]") {
  // AYF-EMD on a U-Net from an autoguided teacher, with labels (dropped at random), the batch sampler,
  // Adam with clipping and warmup, and the EMA; one shard and two (the sharded path draws its rows).
  using B = ayf::eigen_backend<float>;
  using unet = ayf::nn::unet_flow_model<B>;
  ayf::data::images data;
  data.count = 32;
  data.height = data.width = 8;
  data.channels = 1;
  for (std::size_t k = 0; k < data.count * data.dims(); ++k)
    data.values.push_back(static_cast<float>(2 * ayf::philox_uniform(5, k) - 1));
  for (std::size_t i = 0; i < data.count; ++i) data.labels.push_back(static_cast<std::int64_t>(i % 3));
  for (const std::size_t shards : {std::size_t{1}, std::size_t{2}}) {
    INFO("shards " << shards);
    B::context ctx(4);
    unet teacher(ctx, unet_shape(false, 1));
    unet weak(ctx, unet_shape(false, 2));
    auto guided = ayf::make_autoguided_velocity<B>(teacher, weak);
    unet student = unet::from_teacher(ctx, teacher, unet_shape(true, 3));
    ayf::data::batch_sampler<B> sampler(data, {8, 0.2, 9});
    ayf::train::trainer_config config;
    config.steps = 12;
    config.adam.warmup_steps = 4;
    config.adam.clip_norm = 1.0;
    config.ema_decay = 0.9;
    config.shards = shards;
    config.log = nullptr;
    ayf::train::trainer<B, unet> trainer(ctx, student, config);
    ayf::ayf_emd<B, unet> emd;
    std::vector<std::size_t> counts;  // reserved: recording never allocates
    counts.reserve(64);
    std::size_t first_warm = 0;
    tbb::task_arena one(1);
    one.execute([&] {
      trainer.run(ctx, sampler, [&](auto& c, const B::tensor& x, const B::tensor* y, std::uint64_t it) {
        if (it == 4 && first_warm == 0) first_warm = counts.size();
        counts.push_back(ayf_test_alloc::calls);
        return emd.step(c, student, guided, x, y, static_cast<double>(it));
      });
    });
    REQUIRE(counts.size() == 12 * shards);
    // From the first call of iteration 4 to the last call of iteration 12: whole iterations 4 to 11.
    CHECK(counts.back() - counts[first_warm] == 0);
  }
}

TEMPLATE_TEST_CASE("sampling with network models allocates nothing between steps on the host backends",
                   "[allocation][samplers][cpu]", ayf::eigen_backend<float>, ayf::xtensor_backend<double>) {
  // Euler on the autoguided U-Net teacher, flow-map and gamma sampling on the U-Net student, with labels
  // and a guidance scale: the allocation count after each step, steps 2 to 8 (the models size their
  // scratch activations on their first call).
  using B = TestType;
  using unet = ayf::nn::unet_flow_model<B>;
  typename B::context ctx(6);
  unet teacher(ctx, unet_shape(false, 1));
  unet weak(ctx, unet_shape(false, 2));
  auto guided = ayf::make_autoguided_velocity<B>(teacher, weak);
  unet student = unet::from_teacher(ctx, teacher, unet_shape(true, 3));
  auto flow = ayf::make_euler_flow_map<B>(student);
  auto labels = B::make(ctx, shape::vector(4));
  B::fill(ctx, labels, 2.0);
  auto guidance = B::make(ctx, shape::vector(4));
  B::fill(ctx, guidance, 1.5);
  const ayf::condition<B> cond{&labels, &guidance};
  const auto grid = ayf::time_grid::uniform(8);
  std::vector<std::size_t> counts;
  counts.reserve(16);
  auto observer = [&](const ayf::step_info& /*step*/, const typename B::tensor& /*x*/) {
    counts.push_back(ayf_test_alloc::calls);
  };
  tbb::task_arena one(1);
  for (int which = 0; which < 3; ++which) {
    INFO("sampler " << which << " (0 Euler, 1 flow map, 2 gamma)");
    auto x = B::make(ctx, shape(4, data_dims(teacher.config())));
    B::randn(ctx, x);
    counts.clear();
    one.execute([&] {
      if (which == 0) ayf::euler_sample<B>(ctx, guided, x, grid, cond, observer);
      if (which == 1) ayf::flow_map_sample<B>(ctx, flow, x, grid, cond, observer);
      if (which == 2) ayf::gamma_sample<B>(ctx, flow, x, grid, 0.5, cond, observer);
    });
    REQUIRE(counts.size() == 8);
    CHECK(counts.back() - counts.front() == 0);
  }
}
