// tests/test_backend_concept.cpp: the backend concept (ayf/core/backend.hpp) rejects a backend that
// lacks an operation, or whose operations take only tensors where views and const views must
// work too; and accepts the real backends and a complete one under another name.
#include <cstddef>
#include <utility>

#include <catch2/catch.hpp>

#include "ayf/backends/eigen/backend.hpp"
#include "ayf/backends/xtensor/backend.hpp"
#include "ayf/core/backend.hpp"

namespace {

using base = ayf::eigen_backend<double>;

/// Everything the Eigen backend has, under another name.
struct complete : base {};

/// Hides max_rows.
struct without_max_rows : base {
  template <class... Args>
  static void max_rows(Args&&...) = delete;
};

/// Hides gemm_batched.
struct without_gemm_batched : base {
  template <class... Args>
  static void gemm_batched(Args&&...) = delete;
};

/// gemm_batched for owning tensors only.
struct tensor_only_gemm_batched : base {
  static void gemm_batched(context& ctx, ayf::transpose op_a, ayf::transpose op_b, scalar alpha, const tensor& a,
                           const tensor& b, scalar beta, tensor& c, std::size_t batch) {
    base::gemm_batched(ctx, op_a, op_b, alpha, a, b, beta, c, batch);
  }
};

/// sum_columns writing only into tensors (a bias gradient is a view of the gradient buffer).
struct tensor_output_sum_columns : base {
  template <class In>
  static void sum_columns(context& ctx, tensor& out, double beta, const In& in) {
    base::sum_columns(ctx, out, beta, in);
  }
};

/// transform reading only tensors.
struct tensor_input_transform : base {
  template <class Out, class F, class... In>
    requires(std::is_same_v<In, tensor> && ...)
  static void transform(context& ctx, Out&& out, const F& f, const In&... in) {
    base::transform(ctx, std::forward<Out>(out), f, in...);
  }
};

/// gather_rows whose labels must be a tensor.
struct tensor_index_gather_rows : base {
  template <class Out, class Table>
  static void gather_rows(context& ctx, Out&& out, const Table& table, const tensor& index) {
    base::gather_rows(ctx, std::forward<Out>(out), table, index);
  }
};

static_assert(ayf::backend<ayf::eigen_backend<double>>);
static_assert(ayf::backend<ayf::eigen_backend<float>>);
static_assert(ayf::backend<ayf::xtensor_backend<double>>);
static_assert(ayf::backend<complete>);
static_assert(!ayf::backend<without_max_rows>);
static_assert(!ayf::backend<without_gemm_batched>);
static_assert(!ayf::backend<tensor_only_gemm_batched>);
static_assert(!ayf::backend<tensor_output_sum_columns>);
static_assert(!ayf::backend<tensor_input_transform>);
static_assert(!ayf::backend<tensor_index_gather_rows>);

}  // namespace

TEST_CASE("the backend concept rejects a missing primitive and tensor-only operations", "[backend][concept][cpu]") {
  // The static_asserts above are the test; these repeat them so the run lists the verdicts.
  CHECK(ayf::backend<complete>);
  CHECK_FALSE(ayf::backend<without_max_rows>);
  CHECK_FALSE(ayf::backend<without_gemm_batched>);
  CHECK_FALSE(ayf::backend<tensor_only_gemm_batched>);
  CHECK_FALSE(ayf::backend<tensor_output_sum_columns>);
  CHECK_FALSE(ayf::backend<tensor_input_transform>);
  CHECK_FALSE(ayf::backend<tensor_index_gather_rows>);
}
