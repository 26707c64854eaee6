// ayf/backends/eigen/backend.hpp: the Eigen backend. Tensors are row-major Eigen matrices
// (rows = samples); oneTBB parallelizes over the batch; gemm is Eigen's matrix product.
#pragma once

#include <Eigen/Core>
#include <concepts>
#include <cstddef>
#include <tbb/blocked_range.h>
#include <tbb/parallel_for.h>
#include <tbb/partitioner.h>

#include "ayf/core/host_backend.hpp"

namespace ayf {

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
};

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

  /// C[m x n] = alpha op(A) op(B) + beta C with Eigen's blocked product on row-major maps. Large
  /// products are split over row blocks of C across oneTBB workers, each block a single-threaded
  /// Eigen product: oneTBB owns the cores (Eigen's own threading is OpenMP-only and would
  /// oversubscribe them next to oneTBB; design.md §6).
  static void gemm(std::size_t m, std::size_t n, std::size_t k, bool ta, bool tb, S alpha, const S* a,
                   std::size_t lda, const S* b, std::size_t ldb, S beta, S* c) {
    constexpr std::size_t min_parallel_flops = std::size_t{1} << 22;
    constexpr std::size_t min_rows = 64;
    if (m * n * k < min_parallel_flops || m < 2 * min_rows) {
      gemm_rows(0, m, n, k, ta, tb, alpha, a, lda, b, ldb, beta, c);
      return;
    }
    // simple_partitioner: the row blocks depend only on m, never on scheduling, so results are
    // reproducible run to run (Eigen's kernel blocking may depend on a block's size).
    tbb::parallel_for(
        tbb::blocked_range<std::size_t>(0, m, min_rows),
        [&](const tbb::blocked_range<std::size_t>& r) { gemm_rows(r.begin(), r.end(), n, k, ta, tb, alpha, a, lda, b, ldb, beta, c); },
        tbb::simple_partitioner());
  }

private:
  /// Rows [row_begin, row_end) of C = alpha op(A) op(B) + beta C.
  static void gemm_rows(std::size_t row_begin, std::size_t row_end, std::size_t n, std::size_t k, bool ta, bool tb,
                        S alpha, const S* a, std::size_t lda, const S* b, std::size_t ldb, S beta, S* c) {
    using matrix = Eigen::Matrix<S, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
    using strided = Eigen::Map<const matrix, 0, Eigen::OuterStride<>>;
    using index = Eigen::Index;
    const auto rows = static_cast<index>(row_end - row_begin);
    // op(A) rows [row_begin, row_end): rows of A, or columns of A (read through the transpose).
    const strided a_block = ta ? strided(a + row_begin, static_cast<index>(k), rows, Eigen::OuterStride<>(static_cast<index>(lda)))
                               : strided(a + row_begin * lda, rows, static_cast<index>(k), Eigen::OuterStride<>(static_cast<index>(lda)));
    const strided b_full(b, static_cast<index>(tb ? n : k), static_cast<index>(tb ? k : n),
                         Eigen::OuterStride<>(static_cast<index>(ldb)));
    Eigen::Map<matrix> c_block(c + row_begin * n, rows, static_cast<index>(n));
    if (beta == S(0)) {
      c_block.setZero();
    } else if (beta != S(1)) {
      c_block *= beta;
    }
    if (!ta && !tb) c_block.noalias() += alpha * a_block * b_full;
    else if (ta && !tb) c_block.noalias() += alpha * a_block.transpose() * b_full;
    else if (!ta && tb) c_block.noalias() += alpha * a_block * b_full.transpose();
    else c_block.noalias() += alpha * a_block.transpose() * b_full.transpose();
  }

};

/// The Eigen backend in precision S (float or double).
template <std::floating_point S>
using eigen_backend = host_backend<eigen_storage<S>, tbb_executor>;

static_assert(backend<eigen_backend<double>>);
static_assert(backend<eigen_backend<float>>);

}  // namespace ayf
