// ayf/backends/eigen/backend.hpp: the Eigen backend. Tensors are row-major Eigen matrices
// (rows = samples); oneTBB parallelizes over the batch; gemm is Eigen's matrix product, OpenBLAS's
// cblas_sgemm / cblas_dgemm when built with AYF_EIGEN_OPENBLAS, or oneDNN's dnnl_sgemm (float) when
// built with AYF_EIGEN_ONEDNN (CMake: AYF_WITH_OPENBLAS, AYF_WITH_ONEDNN, set on ayf::eigen for every
// consumer, so one program never mixes them in one inline function).
#pragma once

#include <Eigen/Core>
#include <algorithm>
#include <cctype>
#include <climits>
#include <cmath>
#include <concepts>
#include <cstddef>
#include <cstdlib>
#include <initializer_list>
#include <iterator>
#include <mutex>
#include <string>
#include <type_traits>
#include <tbb/blocked_range.h>
#include <tbb/parallel_for.h>
#include <tbb/partitioner.h>
#include <tbb/task_arena.h>

#include "ayf/core/host_backend.hpp"

#if defined(__SSE2__) || defined(__AVX__) || defined(__AVX512F__)
#include <immintrin.h>
#elif defined(__ARM_NEON) && defined(__aarch64__)
#include <arm_neon.h>
#endif

#ifndef AYF_EIGEN_OPENBLAS
#define AYF_EIGEN_OPENBLAS 0
#endif
#if AYF_EIGEN_OPENBLAS
#include <cblas.h>
#endif
#ifndef AYF_EIGEN_ONEDNN
#define AYF_EIGEN_ONEDNN 0
#endif
#if AYF_EIGEN_ONEDNN
#include <omp.h>
#include <oneapi/dnnl/dnnl.h>
#endif

namespace ayf {

namespace detail {
/// x[k] = sqrt(x[k]) correctly rounded, k < n: SIMD registers where the target has them, then
/// std::sqrt for the tail (Eigen's packet sqrt approximates under EIGEN_FAST_MATH).
template <std::floating_point S>
void sqrt_in_place(S* x, std::size_t n) {
  std::size_t k = 0;
  constexpr bool single = std::is_same_v<S, float>, twin = std::is_same_v<S, double>;
#if defined(__AVX512F__)
  if constexpr (single) {
    for (; k + 16 <= n; k += 16) _mm512_storeu_ps(x + k, _mm512_sqrt_ps(_mm512_loadu_ps(x + k)));
  } else if constexpr (twin) {
    for (; k + 8 <= n; k += 8) _mm512_storeu_pd(x + k, _mm512_sqrt_pd(_mm512_loadu_pd(x + k)));
  }
#elif defined(__AVX__)
  if constexpr (single) {
    for (; k + 8 <= n; k += 8) _mm256_storeu_ps(x + k, _mm256_sqrt_ps(_mm256_loadu_ps(x + k)));
  } else if constexpr (twin) {
    for (; k + 4 <= n; k += 4) _mm256_storeu_pd(x + k, _mm256_sqrt_pd(_mm256_loadu_pd(x + k)));
  }
#elif defined(__SSE2__)
  if constexpr (single) {
    for (; k + 4 <= n; k += 4) _mm_storeu_ps(x + k, _mm_sqrt_ps(_mm_loadu_ps(x + k)));
  } else if constexpr (twin) {
    for (; k + 2 <= n; k += 2) _mm_storeu_pd(x + k, _mm_sqrt_pd(_mm_loadu_pd(x + k)));
  }
#elif defined(__ARM_NEON) && defined(__aarch64__)
  if constexpr (single) {
    for (; k + 4 <= n; k += 4) vst1q_f32(x + k, vsqrtq_f32(vld1q_f32(x + k)));
  } else if constexpr (twin) {
    for (; k + 2 <= n; k += 2) vst1q_f64(x + k, vsqrtq_f64(vld1q_f64(x + k)));
  }
#else
  (void)single;
  (void)twin;
#endif
  for (; k < n; ++k) x[k] = std::sqrt(x[k]);
}
}  // namespace detail

/// Splits [0, n) across oneTBB workers when n * work_per_item exceeds `min_parallel_work`
/// elements; smaller work stays on the calling thread.
struct tbb_executor {
  std::size_t min_parallel_work = std::size_t{1} << 16;

  template <class Fn>
  void for_blocks(std::size_t n, std::size_t work_per_item, const Fn& fn) const {
    if (n == 0) return;
    const std::size_t work = n * (work_per_item == 0 ? 1 : work_per_item);
    if (work < min_parallel_work || n < 2) {
      fn(std::size_t{0}, n);
      return;
    }
    const std::size_t grain = std::max<std::size_t>(1, min_parallel_work / std::max<std::size_t>(1, work_per_item));
    tbb::parallel_for(tbb::blocked_range<std::size_t>(0, n, grain),
                      [&](const tbb::blocked_range<std::size_t>& r) { fn(r.begin(), r.end()); });
  }

  /// Per-thread scratch slots: how many threads may run for_blocks' tasks at once (the arena's
  /// concurrency), and the calling thread's slot below that (0 outside any arena, where fn runs on
  /// the calling thread alone).
  [[nodiscard]] std::size_t slots() const {
    return static_cast<std::size_t>(std::max(1, tbb::this_task_arena::max_concurrency()));
  }
  [[nodiscard]] std::size_t slot() const {
    const int index = tbb::this_task_arena::current_thread_index();
    return index < 0 ? std::size_t{0} : static_cast<std::size_t>(index);
  }
};

/// Who computes the Eigen backend's matrix products.
enum class gemm_provider { eigen, openblas, onednn };

/// The provider's name, as errors, benchmarks and docs spell it.
[[nodiscard]] inline const char* to_string(gemm_provider provider) {
  switch (provider) {
    case gemm_provider::eigen: return "eigen";
    case gemm_provider::openblas: return "openblas";
    case gemm_provider::onednn: return "onednn";
  }
  return "unknown";
}

template <std::floating_point S>
struct eigen_storage {
  using scalar = S;
  using tensor = Eigen::Matrix<S, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;

  static tensor make(const shape& sh) {
    return tensor::Zero(static_cast<Eigen::Index>(sh.rows), static_cast<Eigen::Index>(sh.cols));
  }
  static shape shape_of(const tensor& x) {
    return {static_cast<std::size_t>(x.rows()), static_cast<std::size_t>(x.cols())};
  }
  static void resize(tensor& y, const shape& sh) {
    y.resize(static_cast<Eigen::Index>(sh.rows), static_cast<Eigen::Index>(sh.cols));
  }
  static S* data(tensor& x) { return x.data(); }
  static const S* data(const tensor& x) { return x.data(); }

  /// fn::adam_update on n elements as Eigen array expressions: the same operations in the same
  /// order, rounded alike, in SIMD packets (a scalar loop cannot vectorize std::sqrt while it may
  /// set errno); the square root by detail::sqrt_in_place (Eigen's own approximates under
  /// EIGEN_FAST_MATH). In chunks that stay in L1 between the expressions.
  static void apply_adam(const fn::adam_update& f, S* theta, S* m, S* v, const S* g, std::size_t n) {
    using array = Eigen::Map<Eigen::Array<S, Eigen::Dynamic, 1>>;
    using const_array = Eigen::Map<const Eigen::Array<S, Eigen::Dynamic, 1>>;
    constexpr std::size_t chunk = 512;
    const S beta1 = S(f.beta1), first_gain = S((1 - f.beta1) * f.scale), beta2 = S(f.beta2),
            second_gain = S(1 - f.beta2), scale = S(f.scale), rate = S(f.learning_rate), bias1 = S(f.bias1),
            bias2 = S(f.bias2), epsilon = S(f.epsilon), decay = S(f.learning_rate * f.decay);
    alignas(64) S root[chunk];
    for (std::size_t begin = 0; begin < n; begin += chunk) {
      const std::size_t len = std::min(chunk, n - begin);
      const auto size = static_cast<Eigen::Index>(len);
      array th(theta + begin, size), mm(m + begin, size), vv(v + begin, size), rt(root, size);
      const const_array gg(g + begin, size);
      mm = beta1 * mm + first_gain * gg;
      vv = beta2 * vv + second_gain * (scale * gg) * (scale * gg);
      rt = vv / bias2;
      detail::sqrt_in_place(root, len);
      th = th - rate * (mm / bias1) / (rt + epsilon) - decay * th;
    }
  }

  /// The products the Eigen backend's gemm can use: Eigen's, OpenBLAS's when built with it, and
  /// oneDNN's (float only: oneDNN has no double GEMM) when built with it.
  static constexpr bool has_openblas = AYF_EIGEN_OPENBLAS != 0;
  static constexpr bool has_onednn = AYF_EIGEN_ONEDNN != 0 && std::is_same_v<S, float>;

  /// Why gemm_with cannot run `provider` in this build and precision; null when it can.
  static constexpr const char* unavailable(gemm_provider provider) {
    if (provider == gemm_provider::openblas && !has_openblas) return "built without AYF_WITH_OPENBLAS";
    if (provider == gemm_provider::onednn && !has_onednn)
      return AYF_EIGEN_ONEDNN != 0 ? "oneDNN has no double gemm" : "built without AYF_WITH_ONEDNN";
    return nullptr;
  }
  /// Whether gemm_with can run `provider` in this build and precision.
  static constexpr bool has_provider(gemm_provider provider) { return unavailable(provider) == nullptr; }

  /// The provider gemm uses, chosen once per process. The environment variable AYF_GEMM (eigen,
  /// openblas or onednn) names one; a provider this precision lacks (onednn for double) leaves the
  /// choice below, an unknown or unbuilt one is an error. Without it, by what measured faster
  /// (docs/performance.md): oneDNN when built with it (float; its JIT kernels follow the CPU's vector
  /// extensions whatever OPENBLAS_CORETYPE says) and it runs AVX-512 kernels; where it does not (an
  /// AVX2 machine, or ONEDNN_MAX_CPU_ISA), OpenBLAS when built with it (oneDNN's AVX2 SGEMM ran the
  /// MLP's products at half OpenBLAS's rate). Else OpenBLAS when built with it, except when this
  /// code is compiled for AVX-512 and OpenBLAS runs kernels without it (its core name is not an
  /// AVX-512 one, e.g. OPENBLAS_CORETYPE=Haswell on an AVX-512 CPU): then Eigen's AVX-512 product.
  static gemm_provider default_gemm() {
    static const gemm_provider chosen = choose_gemm(std::getenv("AYF_GEMM"), onednn_has_avx512_kernels());
    return chosen;
  }

  /// The provider of gemm_serial (the tiled convolution's products): AYF_GEMM's when set, else
  /// oneDNN when built with it (float), whatever its kernels (with AVX2 kernels it ran the U-Net's
  /// tiles 5-10% ahead of OpenBLAS's), else default_gemm()'s.
  static gemm_provider default_tile_gemm() {
    static const gemm_provider chosen = choose_tile_gemm(std::getenv("AYF_GEMM"), default_gemm());
    return chosen;
  }

  /// default_tile_gemm()'s choice for a given value of AYF_GEMM (null or empty: unset) and gemm's
  /// provider.
  static gemm_provider choose_tile_gemm(const char* requested, gemm_provider products) {
    if (requested != nullptr && *requested != '\0') return products;
    if constexpr (has_onednn) return gemm_provider::onednn;
    return products;
  }

  /// Whether oneDNN runs AVX-512 kernels here (its effective ISA, after ONEDNN_MAX_CPU_ISA, is an
  /// avx512_core one); false without oneDNN.
  static bool onednn_has_avx512_kernels() {
#if AYF_EIGEN_ONEDNN
    const auto isa = static_cast<unsigned>(dnnl_get_effective_cpu_isa());
    const auto core = static_cast<unsigned>(dnnl_cpu_isa_avx512_core);
    return (isa & core) == core;
#else
    return false;
#endif
  }

  /// default_gemm()'s choice for a given value of AYF_GEMM (null or empty: unset) and whether oneDNN
  /// runs AVX-512 kernels (by default: here).
  static gemm_provider choose_gemm(const char* requested, bool onednn_avx512 = onednn_has_avx512_kernels()) {
    if (requested != nullptr && *requested != '\0') {
      const std::string name(requested);
      const gemm_provider all[] = {gemm_provider::eigen, gemm_provider::openblas, gemm_provider::onednn};
      const auto* named = std::find_if(std::begin(all), std::end(all),
                                       [&](gemm_provider p) { return name == to_string(p); });
      if (named == std::end(all))
        throw_argument_error("eigen_storage::default_gemm", "AYF_GEMM", "eigen, openblas or onednn", name);
      const char* why = unavailable(*named);
      if (why == nullptr) return *named;
      // onednn named for double in a build with oneDNN: float's provider only, so the choice below.
      const bool other_precision = *named == gemm_provider::onednn && AYF_EIGEN_ONEDNN != 0;
      if (!other_precision)
        throw_argument_error("eigen_storage::default_gemm", "AYF_GEMM",
                             detail::concat("a provider this build has (", name, ": ", why, ")"), name);
    }
    if constexpr (has_onednn) {
      if (onednn_avx512 || !has_openblas) return gemm_provider::onednn;
      return gemm_provider::openblas;
    }
#if AYF_EIGEN_OPENBLAS
#if defined(__AVX512F__)
    if (!openblas_has_avx512_kernels()) return gemm_provider::eigen;
#endif
    return gemm_provider::openblas;
#else
    return gemm_provider::eigen;
#endif
  }

#if AYF_EIGEN_OPENBLAS
  /// Whether OpenBLAS runs its AVX-512 kernels (core SkylakeX, CooperLake or SapphireRapids).
  static bool openblas_has_avx512_kernels() {
    const char* core = openblas_get_corename();
    if (core == nullptr) return false;
    std::string name(core);
    for (char& ch : name) ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
    return name.find("skylakex") != std::string::npos || name.find("cooperlake") != std::string::npos ||
           name.find("sapphire") != std::string::npos;
  }
#endif

  /// C[m x n] = alpha op(A) op(B) + beta C on row-major operands (leading dimensions lda, ldb; C
  /// contiguous) with default_gemm()'s provider.
  static void gemm(std::size_t m, std::size_t n, std::size_t k, bool ta, bool tb, S alpha, const S* a,
                   std::size_t lda, const S* b, std::size_t ldb, S beta, S* c) {
    gemm_with(default_gemm(), m, n, k, ta, tb, alpha, a, lda, b, ldb, beta, c);
  }

  /// gemm with a chosen provider (benchmarks and tests compare them). Large products are split
  /// into a grid of blocks of C across oneTBB workers, each block a single-threaded product: oneTBB
  /// owns the cores. OpenBLAS is set to one thread before its first call (its own pthreads would
  /// oversubscribe the cores next to oneTBB), oneDNN runs each call with one OpenMP thread, and
  /// Eigen's threading is OpenMP-only (design.md §6).
  static void gemm_with(gemm_provider provider, std::size_t m, std::size_t n, std::size_t k, bool ta, bool tb,
                        S alpha, const S* a, std::size_t lda, const S* b, std::size_t ldb, S beta, S* c) {
    if (const char* why = unavailable(provider))
      throw_argument_error("eigen_storage::gemm_with", "provider",
                           detail::concat("a provider this build has (", to_string(provider), ": ", why, ")"),
                           to_string(provider));
    const block_grid grid = split_for(m, n, k);
    if (grid.rows * grid.cols == 1) {
      gemm_block(provider, 0, m, 0, n, n, k, ta, tb, alpha, a, lda, b, ldb, beta, c);
      return;
    }
    // simple_partitioner: one task per block, whichever worker runs it.
    tbb::parallel_for(
        tbb::blocked_range<std::size_t>(0, grid.rows * grid.cols, 1),
        [&](const tbb::blocked_range<std::size_t>& r) {
          for (std::size_t block = r.begin(); block != r.end(); ++block) {
            const std::size_t i = block / grid.cols, j = block % grid.cols;
            gemm_block(provider, m * i / grid.rows, m * (i + 1) / grid.rows, n * j / grid.cols,
                       n * (j + 1) / grid.cols, n, k, ta, tb, alpha, a, lda, b, ldb, beta, c);
          }
        },
        tbb::simple_partitioner());
  }

  /// How gemm_with splits C[m x n]: rows x cols blocks of near-equal size.
  struct block_grid {
    std::size_t rows = 1, cols = 1;
  };

  /// The grid for a product: one block below 2^22 multiply-adds; else blocks of at least 256 rows and
  /// 256 columns, or 128 or 64 where larger blocks would be fewer than 4; at most 16, the longer side
  /// of C split first. It depends on the shape alone, so results are bitwise independent of the
  /// thread count. Every block packs its own panels of A and B: smaller blocks repack more than they
  /// gain (docs/performance.md).
  static block_grid split_for(std::size_t m, std::size_t n, std::size_t k) {
    constexpr std::size_t min_parallel_flops = std::size_t{1} << 22;
    constexpr std::size_t most_blocks = 16, enough_blocks = 4;
    if (m * n * k < min_parallel_flops) return {};
    block_grid grid;
    for (const std::size_t side : {std::size_t{256}, std::size_t{128}, std::size_t{64}}) {
      auto blocks = [side](std::size_t length, std::size_t most) {
        return std::max<std::size_t>(1, std::min(most, length / side));
      };
      if (m >= n) {
        grid.rows = blocks(m, most_blocks);
        grid.cols = blocks(n, most_blocks / grid.rows);
      } else {
        grid.cols = blocks(n, most_blocks);
        grid.rows = blocks(m, most_blocks / grid.cols);
      }
      if (grid.rows * grid.cols >= enough_blocks) break;
    }
    return grid;
  }

  /// gemm with default_tile_gemm()'s provider on the calling thread, never split: the product of one
  /// task inside a parallel loop (a tile of the tiled convolution).
  static void gemm_serial(std::size_t m, std::size_t n, std::size_t k, bool ta, bool tb, S alpha, const S* a,
                          std::size_t lda, const S* b, std::size_t ldb, S beta, S* c) {
    gemm_block(default_tile_gemm(), 0, m, 0, n, n, k, ta, tb, alpha, a, lda, b, ldb, beta, c);
  }

private:
  /// Rows [row_begin, row_end) x columns [col_begin, col_end) of C[m x ldc] = alpha op(A) op(B) + beta C.
  static void gemm_block(gemm_provider provider, std::size_t row_begin, std::size_t row_end, std::size_t col_begin,
                         std::size_t col_end, std::size_t ldc, std::size_t k, bool ta, bool tb, S alpha, const S* a,
                         std::size_t lda, const S* b, std::size_t ldb, S beta, S* c) {
    // op(A) rows [row_begin, row_end): rows of A, or columns of A (read through the transpose);
    // op(B) columns [col_begin, col_end): columns of B, or rows of B.
    const S* a_block = ta ? a + row_begin : a + row_begin * lda;
    const S* b_block = tb ? b + col_begin * ldb : b + col_begin;
    S* c_block = c + row_begin * ldc + col_begin;
    const std::size_t rows = row_end - row_begin, cols = col_end - col_begin;
#if AYF_EIGEN_OPENBLAS
    if (provider == gemm_provider::openblas &&
        openblas_gemm(rows, cols, k, ta, tb, alpha, a_block, lda, b_block, ldb, beta, c_block, ldc))
      return;
#endif
#if AYF_EIGEN_ONEDNN
    if (provider == gemm_provider::onednn &&
        onednn_gemm(rows, cols, k, ta, tb, alpha, a_block, lda, b_block, ldb, beta, c_block, ldc))
      return;
#endif
    (void)provider;
    using matrix = Eigen::Matrix<S, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
    using strided = Eigen::Map<const matrix, 0, Eigen::OuterStride<>>;
    using index = Eigen::Index;
    const auto r = static_cast<index>(rows), q = static_cast<index>(cols), kk = static_cast<index>(k);
    const strided a_map = ta ? strided(a_block, kk, r, Eigen::OuterStride<>(static_cast<index>(lda)))
                             : strided(a_block, r, kk, Eigen::OuterStride<>(static_cast<index>(lda)));
    const strided b_map = tb ? strided(b_block, q, kk, Eigen::OuterStride<>(static_cast<index>(ldb)))
                             : strided(b_block, kk, q, Eigen::OuterStride<>(static_cast<index>(ldb)));
    Eigen::Map<matrix, 0, Eigen::OuterStride<>> c_map(c_block, r, q, Eigen::OuterStride<>(static_cast<index>(ldc)));
    if (beta == S(0)) {
      c_map.setZero();
    } else if (beta != S(1)) {
      c_map *= beta;
    }
    if (!ta && !tb) c_map.noalias() += alpha * a_map * b_map;
    else if (ta && !tb) c_map.noalias() += alpha * a_map.transpose() * b_map;
    else if (!ta && tb) c_map.noalias() += alpha * a_map * b_map.transpose();
    else c_map.noalias() += alpha * a_map.transpose() * b_map.transpose();
  }

#if AYF_EIGEN_OPENBLAS
  /// C[m x n] (leading dimension ldc) = alpha op(A) op(B) + beta C through cblas_?gemm on one
  /// thread; false (nothing done) for an empty product or sizes beyond OpenBLAS's int, left to Eigen.
  static bool openblas_gemm(std::size_t m, std::size_t n, std::size_t k, bool ta, bool tb, S alpha, const S* a,
                            std::size_t lda, const S* b, std::size_t ldb, S beta, S* c, std::size_t ldc) {
    constexpr std::size_t limit = INT_MAX;
    if (m == 0 || n == 0 || k == 0 || m > limit || n > limit || k > limit || lda > limit || ldb > limit ||
        ldc > limit)
      return false;
    static std::once_flag single_thread;
    std::call_once(single_thread, [] { openblas_set_num_threads(1); });
    const auto op_a = ta ? CblasTrans : CblasNoTrans, op_b = tb ? CblasTrans : CblasNoTrans;
    const int mi = static_cast<int>(m), ni = static_cast<int>(n), ki = static_cast<int>(k);
    const int la = static_cast<int>(lda), lb = static_cast<int>(ldb), lc = static_cast<int>(ldc);
    if constexpr (std::is_same_v<S, float>) {
      cblas_sgemm(CblasRowMajor, op_a, op_b, mi, ni, ki, alpha, a, la, b, lb, beta, c, lc);
    } else if constexpr (std::is_same_v<S, double>) {
      cblas_dgemm(CblasRowMajor, op_a, op_b, mi, ni, ki, alpha, a, la, b, lb, beta, c, lc);
    } else {
      return false;
    }
    return true;
  }
#endif

#if AYF_EIGEN_ONEDNN
  /// C[m x n] (leading dimension ldc) = alpha op(A) op(B) + beta C through dnnl_sgemm (row-major) on
  /// the calling thread: the calling thread's OpenMP thread count is 1 for the call and restored after,
  /// so oneDNN's OpenMP team never runs beside oneTBB's workers. False (nothing done) for double and
  /// for an empty product, left to Eigen.
  static bool onednn_gemm(std::size_t m, std::size_t n, std::size_t k, bool ta, bool tb, S alpha, const S* a,
                          std::size_t lda, const S* b, std::size_t ldb, S beta, S* c, std::size_t ldc) {
    if constexpr (!std::is_same_v<S, float>) {
      return false;
    } else {
      if (m == 0 || n == 0 || k == 0) return false;
      const int threads = omp_get_max_threads();
      if (threads != 1) omp_set_num_threads(1);
      const auto dim = [](std::size_t v) { return static_cast<dnnl_dim_t>(v); };
      const dnnl_status_t status = dnnl_sgemm(ta ? 'T' : 'N', tb ? 'T' : 'N', dim(m), dim(n), dim(k), alpha, a,
                                              dim(lda), b, dim(ldb), beta, c, dim(ldc));
      if (threads != 1) omp_set_num_threads(threads);
      if (status != dnnl_success)
        throw_argument_error("eigen_storage::gemm_with", "dnnl_sgemm status", "dnnl_success",
                             std::to_string(static_cast<int>(status)));
      return true;
    }
  }
#endif
};

/// The Eigen backend in precision S (float or double).
template <std::floating_point S>
using eigen_backend = host_backend<eigen_storage<S>, tbb_executor>;

static_assert(backend<eigen_backend<double>>);
static_assert(backend<eigen_backend<float>>);

}  // namespace ayf
