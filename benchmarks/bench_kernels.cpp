// The host's elementwise kernels on one thread, where the compiler's vectorization decides the speed:
// e^x by host_kernels::exp_polynomial against std::exp over an array, SiLU and its tangent (the MLP's
// activation functors), and the fused GroupNorm + SiLU forward on the U-Net's stacked primal and
// tangent rows (28x28x32 and 14x14x64, 8 groups, 128 samples). Counter "values" = primal values per
// second. Built with -march=${AYF_BENCH_ARCH} (native by default): configure a second build directory
// with -DAYF_BENCH_ARCH=x86-64-v3 (AVX2) or x86-64 (SSE2) to time the code paths of other machines here.
#include <benchmark/benchmark.h>

#include <cmath>
#include <cstddef>
#include <random>
#include <vector>

#include "ayf/core/host_kernels.hpp"
#include "ayf/nn/layer.hpp"

namespace {

/// n normal values times `scale` (std::mt19937, seed 1).
std::vector<float> normal_values(std::size_t n, float scale) {
  std::mt19937 engine(1);
  std::normal_distribution<float> normal;
  std::vector<float> v(n);
  for (float& x : v) x = scale * normal(engine);
  return v;
}

constexpr std::size_t array_size = 1024 * 256;  // one MLP activation: width 1024, batch 256

/// Counter "values": `per_iteration` values per iteration, as a rate.
void count_values(benchmark::State& state, std::size_t per_iteration) {
  state.counters["values"] = benchmark::Counter(static_cast<double>(per_iteration * state.iterations()),
                                                benchmark::Counter::kIsRate);
}

/// y[i] = f(x[i]) over one activation of normal values times 10.
template <class F>
void exp_array(benchmark::State& state, F f) {
  const std::vector<float> x = normal_values(array_size, 10.0f);
  std::vector<float> y(array_size);
  for (auto _ : state) {
    for (std::size_t i = 0; i < array_size; ++i) y[i] = f(x[i]);
    benchmark::DoNotOptimize(y.data());
    benchmark::ClobberMemory();
  }
  count_values(state, array_size);
}
BENCHMARK_CAPTURE(exp_array, exp_polynomial, [](float v) { return ayf::host_kernels::exp_polynomial(v); });
BENCHMARK_CAPTURE(exp_array, std_exp, [](float v) { return std::exp(v); });

/// silu(z) and silu'(z) dz through the activation layer's functors, as the MLP's forward and JVP.
void silu_and_tangent_array(benchmark::State& state) {
  const std::vector<float> z = normal_values(array_size, 3.0f), dz = normal_values(array_size, 1.0f);
  std::vector<float> y(array_size), dy(array_size);
  const ayf::nn::detail::silu silu;
  const ayf::nn::detail::silu_tangent silu_tangent;
  for (auto _ : state) {
    for (std::size_t i = 0; i < array_size; ++i) y[i] = silu(z[i]);
    for (std::size_t i = 0; i < array_size; ++i) dy[i] = silu_tangent(z[i], dz[i]);
    benchmark::DoNotOptimize(y.data());
    benchmark::DoNotOptimize(dy.data());
    benchmark::ClobberMemory();
  }
  count_values(state, array_size);
}
BENCHMARK(silu_and_tangent_array);

/// GroupNorm (+ SiLU when range(3) is 1) forward with the tangent rows: range = (side, channels,
/// groups, silu), 128 samples.
void group_norm_forward_stacked(benchmark::State& state) {
  const auto side = static_cast<std::size_t>(state.range(0)), channels = static_cast<std::size_t>(state.range(1)),
             groups = static_cast<std::size_t>(state.range(2));
  const bool silu = state.range(3) != 0;
  const std::size_t n = 128, pixels = side * side, row = pixels * channels;
  const ayf::host_kernels::group_norm_dims d{pixels, channels, groups, 1e-5};
  const std::vector<float> x = normal_values(2 * n * row, 1.0f), gamma(channels, 1.1f), beta(channels, 0.1f);
  std::vector<float> y(2 * n * row), xhat(n * row), slope(n * row), rstd(n * groups);
  const std::size_t tasks = n * ayf::host_kernels::group_norm_blocks(d);
  for (auto _ : state) {
    ayf::host_kernels::group_norm_forward(std::size_t{0}, tasks, d, n, true, y.data(), xhat.data(), rstd.data(),
                                          silu ? slope.data() : static_cast<float*>(nullptr), x.data(),
                                          gamma.data(), beta.data());
    benchmark::DoNotOptimize(y.data());
    benchmark::ClobberMemory();
  }
  count_values(state, n * row);
}
BENCHMARK(group_norm_forward_stacked)
    ->Args({28, 32, 8, 0})
    ->Args({28, 32, 8, 1})
    ->Args({14, 64, 8, 1})
    ->Unit(benchmark::kMillisecond);

}  // namespace
