// One training step (objective gradient + Adam update) of the MLP and of the U-Net in float on the
// Eigen backend: flow matching (teacher training) and AYF-EMD with an autoguided teacher (spec
// Algorithm 1), for the shapes of the training issue and 28x28x1 images (batch 128). The EMD/FM
// ratio is the figure of merit (design.md §6: floor ~1.8).
#include <benchmark/benchmark.h>

#include "ayf/backends/eigen/backend.hpp"
#include "ayf/guidance/guidance.hpp"
#include "ayf/nn/mlp.hpp"
#include "ayf/nn/optimizer.hpp"
#include "ayf/nn/unet.hpp"
#include "ayf/objectives/ayf_emd.hpp"
#include "ayf/objectives/flow_matching.hpp"

namespace {

using B = ayf::eigen_backend<float>;
using model = ayf::nn::mlp_flow_model<B>;

/// "4 layers" = the input layer, 2 residual blocks and the output layer.
ayf::nn::mlp_config shape_config(std::size_t dims, std::size_t width, bool student, std::uint64_t seed) {
  ayf::nn::mlp_config c;
  c.dims = dims;
  c.width = width;
  c.blocks = 2;
  c.frequencies = 8;
  c.embed_s = student;
  c.embed_lambda = student;
  c.seed = seed;
  return c;
}

void flow_matching_step(benchmark::State& state) {
  const auto dims = static_cast<std::size_t>(state.range(0)), width = static_cast<std::size_t>(state.range(1)),
             batch = static_cast<std::size_t>(state.range(2));
  B::context ctx(1);
  model teacher(ctx, shape_config(dims, width, false, 1));
  ayf::nn::adam<B> optimizer(ctx, teacher.parameters());
  ayf::flow_matching<B, model> objective;
  B::tensor x0 = B::make(ctx, ayf::shape(batch, dims));
  B::randn(ctx, x0);
  for (auto _ : state) {
    teacher.parameters().zero_gradients(ctx);
    benchmark::DoNotOptimize(objective.step(ctx, teacher, x0, nullptr));
    optimizer.step(ctx, teacher.parameters());
  }
  state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations() * batch));
}

void ayf_emd_step(benchmark::State& state) {
  const auto dims = static_cast<std::size_t>(state.range(0)), width = static_cast<std::size_t>(state.range(1)),
             batch = static_cast<std::size_t>(state.range(2));
  B::context ctx(2);
  model teacher(ctx, shape_config(dims, width, false, 1));
  model weak(ctx, shape_config(dims, width, false, 2));
  auto guided = ayf::make_autoguided_velocity<B>(teacher, weak);
  model student = model::from_teacher(ctx, teacher, shape_config(dims, width, true, 3));
  ayf::nn::adam<B> optimizer(ctx, student.parameters());
  ayf::ayf_emd<B, model> objective;
  B::tensor x0 = B::make(ctx, ayf::shape(batch, dims));
  B::randn(ctx, x0);
  double iteration = 0;
  for (auto _ : state) {
    student.parameters().zero_gradients(ctx);
    benchmark::DoNotOptimize(objective.step(ctx, student, guided, x0, nullptr, iteration++));
    optimizer.step(ctx, student.parameters());
  }
  state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations() * batch));
}

/// The U-Net at 28x28x1: base 32 channels, two levels (28x28x32, 14x14x64), one block per level.
ayf::nn::unet_config unet_shape(bool student, std::uint64_t seed) {
  ayf::nn::unet_config c;
  c.height = 28;
  c.width = 28;
  c.channels = 1;
  c.base_channels = 32;
  c.channel_multipliers = {1, 2};
  c.blocks_per_level = 1;
  c.groups = 8;
  c.frequencies = 8;
  c.embed_s = student;
  c.embed_lambda = student;
  c.seed = seed;
  return c;
}

using unet = ayf::nn::unet_flow_model<B>;

void unet_flow_matching_step(benchmark::State& state) {
  const auto batch = static_cast<std::size_t>(state.range(0));
  B::context ctx(1);
  unet teacher(ctx, unet_shape(false, 1));
  ayf::nn::adam<B> optimizer(ctx, teacher.parameters());
  ayf::flow_matching<B, unet> objective;
  B::tensor x0 = B::make(ctx, ayf::shape(batch, teacher.config().dims()));
  B::randn(ctx, x0);
  for (auto _ : state) {
    teacher.parameters().zero_gradients(ctx);
    benchmark::DoNotOptimize(objective.step(ctx, teacher, x0, nullptr));
    optimizer.step(ctx, teacher.parameters());
  }
  state.counters["parameters"] = static_cast<double>(teacher.size());
  state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations() * batch));
}

void unet_ayf_emd_step(benchmark::State& state) {
  const auto batch = static_cast<std::size_t>(state.range(0));
  B::context ctx(2);
  unet teacher(ctx, unet_shape(false, 1));
  unet weak(ctx, unet_shape(false, 2));
  auto guided = ayf::make_autoguided_velocity<B>(teacher, weak);
  unet student = unet::from_teacher(ctx, teacher, unet_shape(true, 3));
  ayf::nn::adam<B> optimizer(ctx, student.parameters());
  ayf::ayf_emd<B, unet> objective;
  B::tensor x0 = B::make(ctx, ayf::shape(batch, teacher.config().dims()));
  B::randn(ctx, x0);
  double iteration = 0;
  for (auto _ : state) {
    student.parameters().zero_gradients(ctx);
    benchmark::DoNotOptimize(objective.step(ctx, student, guided, x0, nullptr, iteration++));
    optimizer.step(ctx, student.parameters());
  }
  state.counters["parameters"] = static_cast<double>(student.size());
  state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations() * batch));
}

}  // namespace

BENCHMARK(flow_matching_step)->Args({2, 256, 1024})->Args({784, 1024, 256})->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK(ayf_emd_step)->Args({2, 256, 1024})->Args({784, 1024, 256})->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK(unet_flow_matching_step)->Arg(128)->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK(unet_ayf_emd_step)->Arg(128)->Unit(benchmark::kMillisecond)->UseRealTime();
