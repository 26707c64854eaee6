// ayf/nn/layer.hpp: the layer concept (design.md §4). A layer declares its parameter blocks in a
// parameter_layout, runs forward on stacked rows [x; dx] (rows [0, n) primal, rows [n, R) tangents,
// R = n or 2n) with its tangent rule written out, saves what backward needs in its `state`, and runs
// backward from that state with a gradient mode. Models compose layers (mlp.hpp, unet.hpp).
#pragma once

#include <cmath>
#include <concepts>
#include <cstddef>
#include <cstdint>
#include <type_traits>

#include "ayf/core/backend.hpp"
#include "ayf/core/error.hpp"
#include "ayf/core/host_kernels.hpp"
#include "ayf/nn/parameters.hpp"

namespace ayf::nn {

/// What backward computes: parameter gradients (accumulated), the input gradient (written), or both.
enum class gradient_mode : unsigned { parameters = 1, inputs = 2, both = 3 };

[[nodiscard]] constexpr bool wants_parameters(gradient_mode m) { return (static_cast<unsigned>(m) & 1U) != 0; }
[[nodiscard]] constexpr bool wants_inputs(gradient_mode m) { return (static_cast<unsigned>(m) & 2U) != 0; }

/// The geometry of a channels-last image: pixel (y, x), channel c of sample b is element
/// b * H*W*C + (y * W + x) * C + c of a batch-major [B, H*W*C] tensor.
struct image_shape {
  std::size_t height = 0;
  std::size_t width = 0;
  std::size_t channels = 0;
  [[nodiscard]] std::size_t pixels() const { return height * width; }
  [[nodiscard]] std::size_t size() const { return height * width * channels; }
  friend bool operator==(const image_shape&, const image_shape&) = default;
};

/// Scratch buffers shared by the layers of one network (im2col columns, group-layout and broadcast
/// images, per-row statistics). Each grows to the largest size asked of it and is then reused: no
/// allocation once warm. Views of a buffer are valid until it next grows.
template <backend B>
struct workspace {
  typename B::tensor cols{}, image_a{}, image_b{}, image_c{}, rows_a{}, rows_b{};
};

/// A layer with no saved state beyond its input.
struct no_state {};

/// A unary layer L on backend B: y = L(x) with x: [R, input_size()], y: [R, output_size()].
///   initialise(ctx, params)                         its blocks' initial values (ctx's Philox stream)
///   forward(ctx, params, x, y, st, ws, n)           rows [0, n) primal, [n, R) the tangent rule
///   backward(ctx, params, x, st, dy, dx, ws, mode)  dy: [n, out]; parameter gradients accumulate,
///                                                   *dx = dL/dx ([n, in]) when mode asks for inputs
/// `x` in backward is the input of the forward pass that filled `st` (its first n rows are used).
template <class L, class B>
concept layer =
    backend<B> && requires { typename L::state; } &&
    requires(const L& l, typename B::context& ctx, parameter_set<B>& p, const typename B::tensor& x,
             typename B::tensor& y, typename L::state& st, const typename L::state& cst, workspace<B>& ws,
             std::size_t n, typename B::tensor* dx, gradient_mode mode) {
      { l.input_size() } -> std::convertible_to<std::size_t>;
      { l.output_size() } -> std::convertible_to<std::size_t>;
      l.initialise(ctx, p);
      l.forward(ctx, p, x, y, st, ws, n);
      l.backward(ctx, p, x, cst, x, dx, ws, mode);
    };

/// A layer with a second, conditioning input e ([R, conditioning_size()], stacked like x), e.g. the
/// residual block's embedding: forward(ctx, p, x, e, y, st, ws, n) and
/// backward(ctx, p, x, e, st, dy, dx, de, ws, mode), de accumulated ([n, E]).
template <class L, class B>
concept conditioned_layer =
    backend<B> && requires { typename L::state; } &&
    requires(const L& l, typename B::context& ctx, parameter_set<B>& p, const typename B::tensor& x,
             typename B::tensor& y, typename L::state& st, const typename L::state& cst, workspace<B>& ws,
             std::size_t n, typename B::tensor* dx, gradient_mode mode) {
      { l.input_size() } -> std::convertible_to<std::size_t>;
      { l.conditioning_size() } -> std::convertible_to<std::size_t>;
      { l.output_size() } -> std::convertible_to<std::size_t>;
      l.initialise(ctx, p);
      l.forward(ctx, p, x, x, y, st, ws, n);
      l.backward(ctx, p, x, x, cst, x, dx, dx, ws, mode);
    };

namespace detail {

/// The first sh.size() elements of `buffer` viewed as `sh` (the buffer grows when too small).
template <backend B>
typename B::view scratch(typename B::context& ctx, typename B::tensor& buffer, const shape& sh) {
  if (B::shape_of(buffer).size() < sh.size()) B::resize(ctx, buffer, shape(1, sh.size()));
  return B::slice(ctx, buffer, 0, sh);
}

/// Rows [first, first + count) of a [R, cols] operand.
template <backend B, class T>
auto rows_of(typename B::context& ctx, T& x, std::size_t first, std::size_t count) {
  const std::size_t cols = B::shape_of(x).cols;
  return B::slice(ctx, x, first * cols, shape(count, cols));
}

/// Checks the stacking of a forward input: R = n or R = 2n rows of `cols` columns. The messages are
/// built only on failure: a passing check must not allocate (hot path).
template <backend B>
void require_stacked(const char* where, const typename B::tensor& x, std::size_t cols, std::size_t n) {
  const shape sh = B::shape_of(x);
  if (sh.cols != cols) throw_argument_error(where, "x", ayf::detail::concat("[R, ", cols, "]"), sh);
  if (n < 1 || (sh.rows != n && sh.rows != 2 * n))
    throw_argument_error(where, "primal_rows", ayf::detail::concat("the rows of x (", sh.rows, ") or half of them"), n);
}

/// Division by a fixed divisor d >= 1 as a multiply and a shift: with l = ceil(log2 d), s = 31 + l
/// and m = ceil(2^s / d), floor(n m / 2^s) = floor(n / d) for every 0 <= n < 2^31 (Granlund and
/// Montgomery; Hacker's Delight 10-9); larger n (or d > 2^31) use the hardware division. Index
/// maps divide every element's index several times; this keeps them off the slow 64-bit divide.
struct fast_divisor {
  std::uint64_t d = 1, magic = std::uint64_t{1} << 31, limit = std::uint64_t{1} << 31;
  unsigned shift = 31;

  fast_divisor() = default;
  explicit fast_divisor(std::int64_t divisor) : d(static_cast<std::uint64_t>(divisor)) {
    require(divisor >= 1, "fast_divisor", "divisor", "at least 1", divisor);
    if (d > (std::uint64_t{1} << 31)) {
      limit = 0;  // always the hardware division
      return;
    }
    unsigned l = 0;
    while ((std::uint64_t{1} << l) < d) ++l;
    shift = 31 + l;
    magic = ((std::uint64_t{1} << shift) + d - 1) / d;
  }
  /// n / d for n >= 0.
  AYF_HOST_DEVICE std::int64_t div(std::int64_t n) const {
    const auto u = static_cast<std::uint64_t>(n);
    return static_cast<std::int64_t>(u < limit ? (u * magic) >> shift : u / d);
  }
};

/// e^-z for SiLU: in float on the host by host_kernels::exp_polynomial (within 2 ulp of expf; the
/// transforms over it vectorize, a libm call per element does not), as the fused GroupNorm + SiLU
/// loop; otherwise exp.
template <class T>
AYF_HOST_DEVICE T exp_of_negative(T z) {
#if !defined(__CUDA_ARCH__)
  if constexpr (std::is_same_v<T, float>) return host_kernels::exp_polynomial(-z);
#endif
  using std::exp;
  return exp(-z);
}
/// silu(z) = z sigmoid(z).
struct silu {
  template <class T>
  AYF_HOST_DEVICE T operator()(T z) const {
    return z / (T(1) + exp_of_negative(z));
  }
};
/// d silu(z) = sigmoid(z) (1 + z (1 - sigmoid(z))) dz.
struct silu_tangent {
  template <class T>
  AYF_HOST_DEVICE T operator()(T z, T dz) const {
    const T sg = T(1) / (T(1) + exp_of_negative(z));
    return sg * (T(1) + z * (T(1) - sg)) * dz;
  }
};
/// {silu(z), sigmoid(z)} = {z s, s} with s = 1 / (1 + e^-z): one exponential for both.
struct silu_and_sigmoid {
  template <class T>
  AYF_HOST_DEVICE fn::value_pair<T> operator()(T z) const {
    const T s = T(1) / (T(1) + exp_of_negative(z));
    return {z * s, s};
  }
};
/// silu'(z) v from s = sigmoid(z) and a = silu(z) = z s: silu'(z) = s (1 + z (1 - s)) = s + a (1 - s).
struct silu_tangent_of_sigmoid {
  template <class T>
  AYF_HOST_DEVICE T operator()(T s, T a, T v) const {
    return (s + a * (T(1) - s)) * v;
  }
};
/// g + silu'(z) v, as silu_tangent_of_sigmoid: the backward of z_{l+1} = z_l + h(silu(z_l)) in one pass.
struct add_silu_tangent_of_sigmoid {
  template <class T>
  AYF_HOST_DEVICE T operator()(T g, T s, T a, T v) const {
    return g + silu_tangent_of_sigmoid{}(s, a, v);
  }
};
struct product {
  template <class T>
  AYF_HOST_DEVICE T operator()(T x, T y) const { return x * y; }
};

/// Block `block` of `params` drawn from N(0, std^2) with ctx's stream.
template <backend B>
void normal_init(typename B::context& ctx, parameter_set<B>& params, std::size_t block, double std) {
  auto v = params.value(ctx, block);
  B::randn(ctx, v);
  B::scale_sum_rows(ctx, v, std, v);
}

}  // namespace detail
}  // namespace ayf::nn
