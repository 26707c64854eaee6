// SGEMM of the Eigen backend at the shapes of the MLP and U-Net steps, side by side in one run:
// Eigen's product, OpenBLAS's and oneDNN's (when built with AYF_WITH_OPENBLAS / AYF_WITH_ONEDNN),
// each on oneTBB blocks of one thread each (what eigen_storage::gemm does), OpenBLAS on its own
// threads (one unsplit call; the measured peak at 2048^3), and the backend's default
// (eigen_storage::default_gemm). Counter FLOPS = 2 m n k per second. OPENBLAS_CORETYPE (read by
// OpenBLAS when it loads) selects its kernels, e.g. Haswell (AVX2) or SkylakeX (AVX-512); unset,
// OpenBLAS detects the CPU. ONEDNN_MAX_CPU_ISA (e.g. AVX2) caps oneDNN's.
#include <benchmark/benchmark.h>

#include <algorithm>
#include <cstddef>
#include <string>
#include <thread>
#include <vector>

#include "ayf/backends/eigen/backend.hpp"

namespace {

using storage = ayf::eigen_storage<float>;

enum provider_arg : long { eigen_rows = 0, openblas_rows = 1, openblas_threads = 2, backend_default = 3, onednn_rows = 4 };

void sgemm(benchmark::State& state) {
  const auto m = static_cast<std::size_t>(state.range(0)), n = static_cast<std::size_t>(state.range(1)),
             k = static_cast<std::size_t>(state.range(2));
  const bool ta = state.range(3) != 0, tb = state.range(4) != 0;
  const long provider = state.range(5);
  if ((provider == openblas_rows || provider == openblas_threads) && !storage::has_openblas) {
    state.SkipWithError("built without AYF_WITH_OPENBLAS");
    return;
  }
  if (provider == onednn_rows && !storage::has_onednn) {
    state.SkipWithError("built without AYF_WITH_ONEDNN");
    return;
  }
  std::vector<float> a(m * k), b(k * n), c(m * n);
  for (std::size_t i = 0; i < a.size(); ++i) a[i] = static_cast<float>((i * 7919) % 1000) * 1e-3f - 0.5f;
  for (std::size_t i = 0; i < b.size(); ++i) b[i] = static_cast<float>((i * 104729) % 1000) * 1e-3f - 0.5f;
  const std::size_t lda = ta ? m : k, ldb = tb ? k : n;
  auto run = [&] {
    if (provider == eigen_rows || provider == openblas_rows || provider == onednn_rows) {
      const auto which = provider == eigen_rows      ? ayf::gemm_provider::eigen
                         : provider == openblas_rows ? ayf::gemm_provider::openblas
                                                     : ayf::gemm_provider::onednn;
      storage::gemm_with(which, m, n, k, ta, tb, 1.0f, a.data(), lda, b.data(), ldb, 0.0f, c.data());
    } else if (provider == backend_default) {
      storage::gemm(m, n, k, ta, tb, 1.0f, a.data(), lda, b.data(), ldb, 0.0f, c.data());
    } else {
#if AYF_EIGEN_OPENBLAS
      cblas_sgemm(CblasRowMajor, ta ? CblasTrans : CblasNoTrans, tb ? CblasTrans : CblasNoTrans, static_cast<int>(m),
                  static_cast<int>(n), static_cast<int>(k), 1.0f, a.data(), static_cast<int>(lda), b.data(),
                  static_cast<int>(ldb), 0.0f, c.data(), static_cast<int>(n));
#endif
    }
  };
  run();  // first call: OpenBLAS's one-thread setting (gemm_with), then the thread count below
#if AYF_EIGEN_OPENBLAS
  if (provider == openblas_threads)
    openblas_set_num_threads(static_cast<int>(std::max(1u, std::thread::hardware_concurrency())));
#endif
  for (auto _ : state) {
    run();
    benchmark::DoNotOptimize(c.data());
    benchmark::ClobberMemory();
  }
#if AYF_EIGEN_OPENBLAS
  if (provider == openblas_threads) openblas_set_num_threads(1);
#endif
#if AYF_EIGEN_OPENBLAS
  if (provider == openblas_rows || provider == openblas_threads)
    state.SetLabel(std::string("OpenBLAS core ") + openblas_get_corename());
#endif
  if (provider == backend_default)
    state.SetLabel(std::string("default: ") + ayf::to_string(storage::default_gemm()));
  state.counters["FLOPS"] = benchmark::Counter(2.0 * static_cast<double>(m) * static_cast<double>(n) *
                                                   static_cast<double>(k) * static_cast<double>(state.iterations()),
                                               benchmark::Counter::kIsRate);
}

/// {m, n, k, op(A) transposed, op(B) transposed}: the shapes of the steps' products.
const std::vector<std::vector<long>> shapes = {
    {2048, 2048, 2048, 0, 0},  // square: the peak
    {256, 1024, 1024, 0, 0},   // MLP (784, 1024, 256): hidden layer forward
    {512, 1024, 1024, 0, 0},   // the same on stacked primal/tangent rows (JVP)
    {1024, 1024, 256, 1, 0},   // its weight gradient x^T dy
    {256, 1024, 1024, 0, 1},   // its input gradient dy W^T
    {1024, 256, 256, 0, 0},    // MLP (2, 256, 1024): hidden layer forward
    {200704, 32, 288, 0, 0},   // U-Net 28x28, 32 -> 32 conv 3x3 on stacked rows (batch 128): cols W
    {50176, 64, 576, 0, 0},    // U-Net 14x14, 64 -> 64 conv 3x3 on stacked rows
    {288, 32, 100352, 1, 0},   // U-Net 28x28 conv weight gradient cols^T dy
    {100352, 288, 32, 0, 1},   // U-Net 28x28 conv input gradient dy W^T (then col2im)
};

void shape_args(benchmark::internal::Benchmark* bench) {
  for (const auto& s : shapes)
    for (long provider : {eigen_rows, openblas_rows, onednn_rows, openblas_threads, backend_default}) {
      std::vector<long> args = s;
      args.push_back(provider);
      bench->Args(args);
    }
}

}  // namespace

BENCHMARK(sgemm)->ArgNames({"m", "n", "k", "ta", "tb", "provider"})->Apply(shape_args)->Unit(benchmark::kMillisecond)->UseRealTime();
