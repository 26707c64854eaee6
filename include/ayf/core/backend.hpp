// ayf/core/backend.hpp: the backend concept (design.md §3): where batch-major data lives and how
// to iterate over it. The mathematics is written once against this concept.
#pragma once

#include <concepts>
#include <cstddef>
#include <cstdint>
#include <type_traits>
#include <utility>
#include <vector>

#include "ayf/core/functors.hpp"
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
struct probe_product {
  template <class T>
  AYF_HOST_DEVICE T operator()(T x, T y) const { return x * y; }
};
struct probe_pair {
  template <class T>
  AYF_HOST_DEVICE fn::value_pair<T> operator()(T x) const { return {x, x * x}; }
};
struct probe_index_map {
  AYF_HOST_DEVICE std::int64_t operator()(std::int64_t i) const { return i; }
  AYF_HOST_DEVICE std::int64_t operator()(std::int64_t i, std::int64_t r) const { return i + r; }
};
}  // namespace detail

/// A backend `B` provides, with the context first and outputs after inputs where the table of
/// design.md §3 does not say otherwise:
///   B::scalar, B::tensor, B::context (holding `philox_stream rng`), B::view and B::const_view
///   (non-owning, trivially copyable; every operation takes tensors, views and const views alike as
///   inputs, and tensors and views as outputs)
///   slice(ctx, flat, offset, shape) -> view (const_view of a const flat) of elements
///                                     [offset, offset + shape.size()) of `flat`
///   make(ctx, shape) -> tensor; shape_of(t) -> shape; resize(ctx, t, shape) (no-op when equal)
///   copy(ctx, in, out); fill(ctx, out, value); to_host(ctx, t) -> std::vector<scalar>;
///   from_host(ctx, values, shape) -> tensor; from_host(ctx, values, shape, out) (out resized)
///   transform(ctx, out, f, in...)                  out[i,j] = f(in_1[i,j], ...)
///   transform_pair(ctx, out1, out2, f, in...)      {out1[i,j], out2[i,j]} = f(in_1[i,j], ...) (an fn::value_pair)
///   scale_sum_rows(ctx, y, c1, x1, ..., cN, xN)    y[i,:] = sum_k c_k[i] x_k[i,:]; c_k a scalar or a [B, 1] tensor
///   reduce_rows(ctx, out, f, in...)                out[i] = sum_j f(in_1[i,j], ...), out: [B, 1]
///   gather(ctx, out, shape, in, map[, block])     out[i] = in[map(i)] (0 where map(i) < 0), flat indices;
///                                                 with block > 1 over runs of `block` contiguous elements
///   gather_sum(ctx, out, shape, in, map, taps[, block])  out[i] = sum_{r < taps} in[map(i, r)] (map < 0 skipped)
///   reduce_all(ctx, f, in...) -> scalar;  dot(ctx, a, b) -> scalar;  extrema(ctx, t) -> {min, max}
///   randn(ctx, out); rand_uniform(ctx, out)        Philox draws from ctx.rng
///   gemm(ctx, op_a, op_b, alpha, A, B, beta, C)    C = alpha op(A) op(B) + beta C
///   broadcast_add(ctx, y, alpha, v)                y[i,j] += alpha v[0, j mod C] (v: [1, C], C | N) or alpha v[i, 0]
///   sum_columns(ctx, out, beta, in)                out[0,c] = beta out[0,c] + sum_{i,q} in[i, qC + c], out: [1, C]
///   max_rows(ctx, out, in)                         out[i] = max_j in[i,j], out: [B, 1]
///   gather_rows(ctx, out, table, index)            out[i,:] = table[index[i],:] (zeros for index[i] < 0)
///   scatter_add_rows(ctx, table, index, in)        table[index[i],:] += in[i,:], i in order
///   gemm_batched(ctx, op_a, op_b, alpha, A, B, beta, C, batch)  gemm on each of `batch` runs of rows
///   apply_adam(ctx, f, values, m, v, g)           f(values[i], m[i], v[i], g[i]) in place (fn::adam_update)
template <class B>
concept backend =
    requires {
      typename B::scalar;
      typename B::tensor;
      typename B::context;
      typename B::view;
      typename B::const_view;
    } && std::floating_point<typename B::scalar> && std::is_trivially_copyable_v<typename B::view> &&
    std::is_trivially_copyable_v<typename B::const_view> &&
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
      B::from_host(ctx, host, sh, y);
      B::transform(ctx, y, detail::probe_square{}, x);
      B::transform_pair(ctx, y, y, detail::probe_pair{}, x);
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
      B::broadcast_add(ctx, y, a, x);
      B::sum_columns(ctx, y, a, x);
      B::max_rows(ctx, y, x);
      B::gather_rows(ctx, y, x, x);
      B::scatter_add_rows(ctx, y, x, x);
      B::gemm_batched(ctx, transpose::no, transpose::yes, a, x, x, a, y, std::size_t{1});
      B::apply_adam(ctx, fn::adam_update{}, y, y, y, x);
    } &&
    // Views as outputs, views and const views as inputs (layers work on slices of flat buffers).
    requires(typename B::context& ctx, const typename B::tensor& x, const typename B::view& v,
             const typename B::const_view& cv, const shape& sh, typename B::scalar a, double d) {
      { B::slice(ctx, x, std::size_t{0}, sh) } -> std::same_as<typename B::const_view>;
      { B::shape_of(v) } -> std::same_as<shape>;
      { B::shape_of(cv) } -> std::same_as<shape>;
      B::resize(ctx, v, sh);
      B::copy(ctx, cv, v);
      B::fill(ctx, v, a);
      { B::to_host(ctx, cv) } -> std::same_as<std::vector<typename B::scalar>>;
      B::transform(ctx, v, detail::probe_square{}, cv);
      B::transform(ctx, v, detail::probe_product{}, v, cv);
      B::transform_pair(ctx, v, v, detail::probe_pair{}, cv);
      B::scale_sum_rows(ctx, v, cv, cv, a, v);
      B::reduce_rows(ctx, v, detail::probe_square{}, cv);
      B::gather(ctx, v, sh, cv, detail::probe_index_map{}, std::int64_t{1});
      B::gather_sum(ctx, v, sh, cv, detail::probe_index_map{}, std::int64_t{1}, std::int64_t{1});
      { B::reduce_all(ctx, detail::probe_product{}, cv, v) } -> std::convertible_to<typename B::scalar>;
      { B::dot(ctx, cv, v) } -> std::convertible_to<typename B::scalar>;
      { B::extrema(ctx, cv) } -> std::same_as<std::pair<typename B::scalar, typename B::scalar>>;
      B::randn(ctx, v);
      B::rand_uniform(ctx, v);
      B::gemm(ctx, transpose::yes, transpose::no, a, cv, v, a, v);
      B::broadcast_add(ctx, v, d, cv);
      B::sum_columns(ctx, v, d, cv);
      B::max_rows(ctx, v, cv);
      B::gather_rows(ctx, v, cv, cv);
      B::scatter_add_rows(ctx, v, cv, v);
      B::gemm_batched(ctx, transpose::yes, transpose::yes, a, cv, v, a, v, std::size_t{2});
      B::apply_adam(ctx, fn::adam_update{}, v, v, v, cv);
    };

template <backend B>
using tensor_t = typename B::tensor;
template <backend B>
using context_t = typename B::context;
template <backend B>
using scalar_t = typename B::scalar;

}  // namespace ayf
