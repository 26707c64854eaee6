// One training step (objective gradient + Adam update) in float of the MLP and of the U-Net: flow
// matching (teacher training) and AYF-EMD with an autoguided teacher (spec Algorithm 1), for the MLP
// shapes of the training issue (weak teacher as wide as the teacher, or a quarter as wide) and
// 28x28x1 images (batch 128), on the Eigen backend and, when built with ayf::thrust, the Thrust
// backend (host system). Compiled by nvcc as bench_steps_cuda.cu (AYF_BENCH_CUDA), it runs the
// Thrust backend on CUDA only and reports the fraction of the step spent in cuBLAS (GEMMs timed
// with CUDA events; this synchronizes per GEMM). The CPU column is the process's CPU time (all
// threads): on a machine shared with other work it shows the work a step costs, real time its latency.
#include <benchmark/benchmark.h>

#include <chrono>
#include <string>

#ifndef AYF_BENCH_CUDA
#define AYF_BENCH_CUDA 0
#endif
#if !AYF_BENCH_CUDA
#include "ayf/backends/eigen/backend.hpp"
#endif
#if AYF_BENCH_CUDA || AYF_BENCH_THRUST
#include "ayf/backends/thrust/backend.hpp"
#endif
#include "ayf/guidance/guidance.hpp"
#include "ayf/nn/mlp.hpp"
#include "ayf/nn/optimizer.hpp"
#include "ayf/nn/unet.hpp"
#include "ayf/objectives/ayf_emd.hpp"
#include "ayf/objectives/flow_matching.hpp"

namespace {

#if !AYF_BENCH_CUDA
/// The Eigen backend's product in the run's context (JSON "context"): provider, OpenBLAS's kernels, and
/// the convolution tiles' provider where it differs.
const bool gemm_context = [] {
  using storage = ayf::eigen_storage<float>;
  std::string what = ayf::to_string(storage::default_gemm());
#if AYF_EIGEN_OPENBLAS
  if (storage::default_gemm() != ayf::gemm_provider::onednn) {  // OpenBLAS's kernels made the choice
    const char* core = openblas_get_corename();
    what += std::string(" (OpenBLAS core ") + (core != nullptr ? core : "?") + ")";
  }
#endif
  if (storage::default_tile_gemm() != storage::default_gemm())
    what += std::string("; convolution tiles ") + ayf::to_string(storage::default_tile_gemm());
  benchmark::AddCustomContext("ayf_gemm", what);
  return true;
}();
#endif

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

/// Per-step bookkeeping around the timed loop: on CUDA, waits for the stream at the end and
/// reports cuBLAS time over wall time as the counter `cublas_fraction`.
template <class B>
struct step_timer {
  typename B::context& ctx;
  std::chrono::steady_clock::time_point start = std::chrono::steady_clock::now();
  explicit step_timer(typename B::context& c) : ctx(c) {
#if AYF_BENCH_CUDA
    ctx.time_gemm = true;
    ctx.gemm_milliseconds = 0;
#endif
  }
  void finish(benchmark::State& state) {
#if AYF_BENCH_CUDA
    cudaStreamSynchronize(ctx.stream);
    const double wall_ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count();
    state.counters["cublas_fraction"] = wall_ms > 0 ? ctx.gemm_milliseconds / wall_ms : 0.0;
#else
    (void)state;
#endif
  }
};

template <class B>
void flow_matching_step(benchmark::State& state) {
  using model = ayf::nn::mlp_flow_model<B>;
  const auto dims = static_cast<std::size_t>(state.range(0)), width = static_cast<std::size_t>(state.range(1)),
             batch = static_cast<std::size_t>(state.range(2));
  typename B::context ctx(1);
  model teacher(ctx, shape_config(dims, width, false, 1));
  ayf::nn::adam<B> optimizer(ctx, teacher.parameters());
  ayf::flow_matching<B, model> objective;
  typename B::tensor x0 = B::make(ctx, ayf::shape(batch, dims));
  B::randn(ctx, x0);
  step_timer<B> timer(ctx);
  for (auto _ : state) {
    teacher.parameters().zero_gradients(ctx);
    benchmark::DoNotOptimize(objective.step(ctx, teacher, x0, nullptr));
    optimizer.step(ctx, teacher.parameters());
  }
  timer.finish(state);
  state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations() * batch));
}

template <class B>
void ayf_emd_step(benchmark::State& state) {
  using model = ayf::nn::mlp_flow_model<B>;
  const auto dims = static_cast<std::size_t>(state.range(0)), width = static_cast<std::size_t>(state.range(1)),
             batch = static_cast<std::size_t>(state.range(2));
  const auto weak_width = static_cast<std::size_t>(state.range(3));
  typename B::context ctx(2);
  model teacher(ctx, shape_config(dims, width, false, 1));
  model weak(ctx, shape_config(dims, weak_width, false, 2));
  auto guided = ayf::make_autoguided_velocity<B>(teacher, weak);
  model student = model::from_teacher(ctx, teacher, shape_config(dims, width, true, 3));
  ayf::nn::adam<B> optimizer(ctx, student.parameters());
  ayf::ayf_emd<B, model> objective;
  typename B::tensor x0 = B::make(ctx, ayf::shape(batch, dims));
  B::randn(ctx, x0);
  double iteration = 0;
  step_timer<B> timer(ctx);
  for (auto _ : state) {
    student.parameters().zero_gradients(ctx);
    benchmark::DoNotOptimize(objective.step(ctx, student, guided, x0, nullptr, iteration++));
    optimizer.step(ctx, student.parameters());
  }
  timer.finish(state);
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

template <class B>
void unet_flow_matching_step(benchmark::State& state) {
  using unet = ayf::nn::unet_flow_model<B>;
  const auto batch = static_cast<std::size_t>(state.range(0));
  typename B::context ctx(1);
  unet teacher(ctx, unet_shape(false, 1));
  ayf::nn::adam<B> optimizer(ctx, teacher.parameters());
  ayf::flow_matching<B, unet> objective;
  typename B::tensor x0 = B::make(ctx, ayf::shape(batch, teacher.config().dims()));
  B::randn(ctx, x0);
  // One untimed step first: a U-Net step runs for seconds, so the timed loop may be one iteration.
  teacher.parameters().zero_gradients(ctx);
  (void)objective.step(ctx, teacher, x0, nullptr);
  for (auto _ : state) {
    teacher.parameters().zero_gradients(ctx);
    benchmark::DoNotOptimize(objective.step(ctx, teacher, x0, nullptr));
    optimizer.step(ctx, teacher.parameters());
  }
  state.counters["parameters"] = static_cast<double>(teacher.size());
  state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations() * batch));
}

template <class B>
void unet_ayf_emd_step(benchmark::State& state) {
  using unet = ayf::nn::unet_flow_model<B>;
  const auto batch = static_cast<std::size_t>(state.range(0));
  typename B::context ctx(2);
  unet teacher(ctx, unet_shape(false, 1));
  unet weak(ctx, unet_shape(false, 2));
  auto guided = ayf::make_autoguided_velocity<B>(teacher, weak);
  unet student = unet::from_teacher(ctx, teacher, unet_shape(true, 3));
  ayf::nn::adam<B> optimizer(ctx, student.parameters());
  ayf::ayf_emd<B, unet> objective;
  typename B::tensor x0 = B::make(ctx, ayf::shape(batch, teacher.config().dims()));
  B::randn(ctx, x0);
  double iteration = 0;
  student.parameters().zero_gradients(ctx);
  (void)objective.step(ctx, student, guided, x0, nullptr, iteration++);  // untimed warm-up
  for (auto _ : state) {
    student.parameters().zero_gradients(ctx);
    benchmark::DoNotOptimize(objective.step(ctx, student, guided, x0, nullptr, iteration++));
    optimizer.step(ctx, student.parameters());
  }
  state.counters["parameters"] = static_cast<double>(student.size());
  state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations() * batch));
}

}  // namespace

// EMD args: D, width, batch, weak teacher width.
#define AYF_STEP_BENCHMARKS(B)                                                                                     \
  BENCHMARK_TEMPLATE(flow_matching_step, B)->Args({2, 256, 1024})->Args({784, 1024, 256})->Unit(benchmark::kMillisecond)->MeasureProcessCPUTime()->UseRealTime(); \
  BENCHMARK_TEMPLATE(ayf_emd_step, B)->Args({2, 256, 1024, 256})->Args({2, 256, 1024, 64})->Args({784, 1024, 256, 1024}) \
      ->Args({784, 1024, 256, 256})->Unit(benchmark::kMillisecond)->MeasureProcessCPUTime()->UseRealTime();                                 \
  BENCHMARK_TEMPLATE(unet_flow_matching_step, B)->Arg(128)->Unit(benchmark::kMillisecond)->MeasureProcessCPUTime()->UseRealTime();          \
  BENCHMARK_TEMPLATE(unet_ayf_emd_step, B)->Arg(128)->Unit(benchmark::kMillisecond)->MeasureProcessCPUTime()->UseRealTime();

#if !AYF_BENCH_CUDA
AYF_STEP_BENCHMARKS(ayf::eigen_backend<float>)
#endif
#if AYF_BENCH_CUDA || AYF_BENCH_THRUST
AYF_STEP_BENCHMARKS(ayf::thrust_backend<float>)
#endif
