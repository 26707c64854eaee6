// ayf/core/backend.hpp: the backend concept (design.md §3): where batch-major data lives and how
// to iterate over it. The mathematics is written once against this concept.
#pragma once

#include <concepts>
#include <cstddef>
#include <cstdint>
#include <type_traits>
#include <utility>
#include <vector>

#include "ayf/core/philox.hpp"
#include "ayf/core/shape.hpp"

namespace ayf {

/// Operand transposition for `gemm`.
enum class transpose : bool { no = false, yes = true };

namespace detail {
struct probe_square {
  template <class T>
  AYF_HOST_DEVICE T operator()(T x) const { return x * x; }
};
struct probe_index_map {
  AYF_HOST_DEVICE std::int64_t operator()(std::int64_t i) const { return i; }
  AYF_HOST_DEVICE std::int64_t operator()(std::int64_t i, std::int64_t r) const { return i + r; }
};
}  // namespace detail

/// A backend `B` provides, with the context first and outputs after inputs where the table of
/// design.md §3 does not say otherwise:
///   B::scalar, B::tensor, B::context (holding `philox_stream rng`), B::view (non-owning, trivially
///   copyable; every operation takes tensors and views alike)
///   slice(ctx, flat, offset, shape) -> view of elements [offset, offset + shape.size()) of `flat`
///   make(ctx, shape) -> tensor; shape_of(t) -> shape; resize(ctx, t, shape) (no-op when equal)
///   copy(ctx, in, out); fill(ctx, out, value); to_host(ctx, t) -> std::vector<scalar>;
///   from_host(ctx, values, shape) -> tensor
///   transform(ctx, out, f, in...)                  out[i,j] = f(in_1[i,j], ...)
///   scale_sum_rows(ctx, y, c1, x1, ..., cN, xN)    y[i,:] = sum_k c_k[i] x_k[i,:]; c_k a scalar or a [B, 1] tensor
///   reduce_rows(ctx, out, f, in...)                out[i] = sum_j f(in_1[i,j], ...), out: [B, 1]
///   gather(ctx, out, shape, in, map[, block])     out[i] = in[map(i)] (0 where map(i) < 0), flat indices;
///                                                 with block > 1 over runs of `block` contiguous elements
///   gather_sum(ctx, out, shape, in, map, taps[, block])  out[i] = sum_{r < taps} in[map(i, r)] (map < 0 skipped)
///   reduce_all(ctx, f, in...) -> scalar;  dot(ctx, a, b) -> scalar;  extrema(ctx, t) -> {min, max}
///   randn(ctx, out); rand_uniform(ctx, out)        Philox draws from ctx.rng
///   gemm(ctx, op_a, op_b, alpha, A, B, beta, C)    C = alpha op(A) op(B) + beta C
template <class B>
concept backend =
    requires {
      typename B::scalar;
      typename B::tensor;
      typename B::context;
      typename B::view;
    } && std::floating_point<typename B::scalar> && std::is_trivially_copyable_v<typename B::view> &&
    requires(typename B::context& ctx, typename B::tensor& y, const typename B::tensor& x,
             const shape& sh, typename B::scalar a, const std::vector<typename B::scalar>& host) {
      { ctx.rng } -> std::convertible_to<philox_stream&>;
      { B::make(ctx, sh) } -> std::same_as<typename B::tensor>;
      { B::slice(ctx, y, std::size_t{0}, sh) } -> std::same_as<typename B::view>;
      { B::shape_of(x) } -> std::same_as<shape>;
      B::resize(ctx, y, sh);
      B::copy(ctx, x, y);
      B::fill(ctx, y, a);
      { B::to_host(ctx, x) } -> std::same_as<std::vector<typename B::scalar>>;
      { B::from_host(ctx, host, sh) } -> std::same_as<typename B::tensor>;
      B::transform(ctx, y, detail::probe_square{}, x);
      B::scale_sum_rows(ctx, y, a, x, x, x);
      B::reduce_rows(ctx, y, detail::probe_square{}, x);
      B::gather(ctx, y, sh, x, detail::probe_index_map{});
      B::gather_sum(ctx, y, sh, x, detail::probe_index_map{}, std::int64_t{1});
      B::gather(ctx, y, sh, x, detail::probe_index_map{}, std::int64_t{1});
      B::gather_sum(ctx, y, sh, x, detail::probe_index_map{}, std::int64_t{1}, std::int64_t{1});
      { B::reduce_all(ctx, detail::probe_square{}, x) } -> std::convertible_to<typename B::scalar>;
      { B::dot(ctx, x, x) } -> std::convertible_to<typename B::scalar>;
      { B::extrema(ctx, x) } -> std::same_as<std::pair<typename B::scalar, typename B::scalar>>;
      B::randn(ctx, y);
      B::rand_uniform(ctx, y);
      B::gemm(ctx, transpose::no, transpose::yes, a, x, x, a, y);
    };

template <backend B>
using tensor_t = typename B::tensor;
template <backend B>
using context_t = typename B::context;
template <backend B>
using scalar_t = typename B::scalar;

}  // namespace ayf
