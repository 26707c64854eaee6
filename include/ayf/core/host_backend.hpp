// ayf/core/host_backend.hpp: a backend (design.md §3) over any host storage with contiguous
// row-major data. Eigen and xtensor plug in their tensor type and executor; the loops are shared.
#pragma once

#include <algorithm>
#include <array>
#include <cstddef>
#include <cstdint>
#include <sstream>
#include <tuple>
#include <type_traits>
#include <utility>
#include <vector>

#include "ayf/core/backend.hpp"
#include "ayf/core/backend_checks.hpp"
#include "ayf/core/error.hpp"
#include "ayf/core/functors.hpp"
#include "ayf/core/host_kernels.hpp"

namespace ayf {

/// Runs `fn(begin, end)` over [0, n) on the calling thread.
struct serial_executor {
  template <class Fn>
  void for_blocks(std::size_t n, std::size_t /*work_per_item*/, const Fn& fn) const {
    if (n > 0) fn(std::size_t{0}, n);
  }
};

/// Storage requirements: scalar, tensor, make(shape), shape_of, resize, data (const and not).
template <class Storage>
concept host_storage = requires(typename Storage::tensor& y, const typename Storage::tensor& x,
                                const shape& sh) {
  typename Storage::scalar;
  { Storage::make(sh) } -> std::same_as<typename Storage::tensor>;
  { Storage::shape_of(x) } -> std::same_as<shape>;
  Storage::resize(y, sh);
  { Storage::data(y) } -> std::same_as<typename Storage::scalar*>;
  { Storage::data(x) } -> std::same_as<const typename Storage::scalar*>;
};

/// A non-owning, trivially copyable window [rows, cols] onto contiguous row-major host data:
/// a slice of a flat parameter buffer, or a whole tensor. `S` may be const.
template <class S>
struct host_view {
  S* data = nullptr;
  shape extent{};
};

template <host_storage Storage, class Executor = serial_executor>
struct host_backend {
  using scalar = typename Storage::scalar;
  using tensor = typename Storage::tensor;
  using view = host_view<scalar>;
  using const_view = host_view<const scalar>;
  using storage = Storage;

  /// Execution context: the Philox stream every draw takes from, and the executor.
  struct context {
    philox_stream rng{};
    Executor executor{};
    context() = default;
    explicit context(std::uint64_t seed) : rng{seed, 0} {}
  };

  // ---- operands: a tensor, a view or a const view ----------------------------------------------
  static shape shape_of(const tensor& x) { return Storage::shape_of(x); }
  static shape shape_of(const view& x) { return x.extent; }
  static shape shape_of(const const_view& x) { return x.extent; }

  /// The whole tensor as a view.
  static view as_view(tensor& x) { return {Storage::data(x), shape_of(x)}; }
  static const_view as_view(const tensor& x) { return {Storage::data(x), shape_of(x)}; }

  /// Elements [offset, offset + sh.size()) of `flat`'s row-major data viewed as `sh`.
  static view slice(context& /*ctx*/, tensor& flat, std::size_t offset, const shape& sh) {
    detail::check_slice(shape_of(flat), offset, sh);
    return {Storage::data(flat) + offset, sh};
  }
  static const_view slice(context& /*ctx*/, const tensor& flat, std::size_t offset, const shape& sh) {
    detail::check_slice(shape_of(flat), offset, sh);
    return {Storage::data(flat) + offset, sh};
  }

  // ---- data movement -------------------------------------------------------------------------
  static tensor make(context& /*ctx*/, const shape& sh) { return Storage::make(sh); }
  /// Gives `y` the shape (a no-op when it has it). A view cannot change shape: it must match.
  static void resize(context& /*ctx*/, tensor& y, const shape& sh) {
    const shape have = Storage::shape_of(y);
    if (have.rows != sh.rows || have.cols != sh.cols) Storage::resize(y, sh);
  }
  static void resize(context& /*ctx*/, const view& y, const shape& sh) {
    require_shape("resize", "out", sh, y.extent);
  }
  /// y = x, in blocks over the executor's threads (a layer's copies are megabytes).
  template <class In, class Out>
  static void copy(context& ctx, const In& x, Out&& y) {
    resize(ctx, y, shape_of(x));
    const scalar* px = data(x);
    scalar* py = data(y);
    ctx.executor.for_blocks(shape_of(x).size(), 1,
                            [&](std::size_t b, std::size_t e) { std::copy(px + b, px + e, py + b); });
  }
  template <class Out>
  static void fill(context& ctx, Out&& y, scalar value) {
    scalar* py = data(y);
    ctx.executor.for_blocks(shape_of(y).size(), 1,
                            [&](std::size_t b, std::size_t e) { std::fill(py + b, py + e, value); });
  }
  template <class In>
  static std::vector<scalar> to_host(context& /*ctx*/, const In& x) {
    const scalar* p = data(x);
    return std::vector<scalar>(p, p + shape_of(x).size());
  }
  static tensor from_host(context& ctx, const std::vector<scalar>& values, const shape& sh) {
    tensor y;
    from_host(ctx, values, sh, y);
    return y;
  }
  /// The same into y (resized to sh; no allocation when it has that shape).
  static void from_host(context& ctx, const std::vector<scalar>& values, const shape& sh, tensor& y) {
    require(values.size() == sh.size(), "from_host", "values", detail::message(sh.size(), " values for shape ", sh),
            values.size());
    resize(ctx, y, sh);
    std::copy(values.begin(), values.end(), Storage::data(y));
  }

  // ---- elementwise ---------------------------------------------------------------------------
  /// out[i,j] = f(in_1[i,j], ..., in_n[i,j]); every input has out's shape (out is resized to it).
  /// A functor with a static member `work` (e.g. a libm call) counts as that many elementwise
  /// operations per value when the executor decides how to split.
  template <class Out, class F, class... In>
  static void transform(context& ctx, Out&& out, const F& f, const In&... in) {
    static_assert(sizeof...(In) >= 1, "transform needs at least one input");
    static_assert((is_operand<In> && ...), "transform inputs must be tensors or views");
    const shape sh = same_shape("transform", in...);
    require_no_resized_alias("transform", out, sh, in...);
    resize(ctx, out, sh);
    scalar* o = data(out);
    std::size_t work = 1;
    if constexpr (requires { F::work; }) work = F::work;
    ctx.executor.for_blocks(sh.size(), work, [&](std::size_t b, std::size_t e) {
      host_kernels::transform(b, e, o, f, data(in)...);
    });
  }

  /// {out1[i,j], out2[i,j]} = f(in_1[i,j], ..., in_n[i,j]) with f returning an fn::value_pair: two
  /// results of one pass (a value and a derivative sharing an exponential). out1 and out2 are
  /// resized to the inputs' shape and must not overlap; each may alias an input element for element.
  template <class Out1, class Out2, class F, class... In>
  static void transform_pair(context& ctx, Out1&& out1, Out2&& out2, const F& f, const In&... in) {
    static_assert(sizeof...(In) >= 1, "transform_pair needs at least one input");
    static_assert((is_operand<In> && ...), "transform_pair inputs must be tensors or views");
    const shape sh = same_shape("transform_pair", in...);
    require_no_resized_alias("transform_pair", out1, sh, in...);
    require_no_resized_alias("transform_pair", out2, sh, in...);
    resize(ctx, out1, sh);
    resize(ctx, out2, sh);
    scalar* o1 = data(out1);
    scalar* o2 = data(out2);
    detail::require_distinct_buffers("transform_pair", sh.size(), o1, o2);
    std::size_t work = 1;
    if constexpr (requires { F::work; }) work = F::work;
    ctx.executor.for_blocks(sh.size(), work, [&](std::size_t b, std::size_t e) {
      host_kernels::transform_pair(b, e, o1, o2, f, data(in)...);
    });
  }

  /// y[i, :] = sum_k c_k[i] x_k[i, :]; arguments alternate coefficient, tensor. A coefficient is a
  /// scalar or a per-sample [B, 1] tensor or view. y may alias any x_k.
  template <class Out, class... Args>
  static void scale_sum_rows(context& ctx, Out&& y, const Args&... args) {
    static_assert(sizeof...(Args) >= 2 && sizeof...(Args) % 2 == 0,
                  "scale_sum_rows takes pairs (coefficient, tensor)");
    constexpr std::size_t n = sizeof...(Args) / 2;
    const auto refs = std::forward_as_tuple(args...);
    const shape sh = shape_of(std::get<1>(refs));
    std::array<host_kernels::row_coefficient<scalar>, n> c{};
    std::array<const scalar*, n> x{};
    [&]<std::size_t... K>(std::index_sequence<K...>) {
      ((c[K] = coefficient(std::get<2 * K>(refs), sh.rows),
        x[K] = checked_data("scale_sum_rows", std::get<2 * K + 1>(refs), sh)),
       ...);
    }(std::make_index_sequence<n>{});
    require_no_resized_alias("scale_sum_rows", y, sh, args...);
    resize(ctx, y, sh);
    scalar* out = data(y);
    ctx.executor.for_blocks(sh.rows, sh.cols, [&](std::size_t b, std::size_t e) {
      host_kernels::scale_sum_rows(b, e, sh.cols, out, c, x);
    });
  }

  /// The fused Adam update (fn::adam_update) of every element, in place: values, first and second
  /// moments (never resized) from gradients, all of one shape and four distinct buffers. One pass
  /// over memory; the element arithmetic is the storage's (vectorized where it has apply_adam).
  template <class Values, class First, class Second, class G>
  static void apply_adam(context& ctx, const fn::adam_update& f, Values&& values, First&& first, Second&& second,
                         const G& gradients) {
    static_assert(is_operand<G>, "apply_adam: gradients must be a tensor or view");
    const shape sh = shape_of(gradients);
    scalar* theta = data(values);
    scalar* m = data(first);
    scalar* v = data(second);
    const scalar* g = data(gradients);
    detail::require_adam_operands(sh, shape_of(values), shape_of(first), shape_of(second), theta, m, v, g);
    ctx.executor.for_blocks(sh.size(), 8, [&](std::size_t b, std::size_t e) {
      if constexpr (requires { Storage::apply_adam(f, theta, m, v, g, std::size_t{0}); }) {
        Storage::apply_adam(f, theta + b, m + b, v + b, g + b, e - b);
      } else {
        host_kernels::apply_adam(b, e, f, theta, m, v, g);
      }
    });
  }

  /// y[i, j] += alpha v[0, j mod C] for a [1, C] row v whose C divides y's columns (a bias per
  /// pixel of a channels-last image; per column when C = N), or y[i, j] += alpha v[i, 0] for a
  /// [R, 1] column v. y: [R, N], never resized; alpha a scalar or double.
  template <class Out, class Alpha, class V>
  static void broadcast_add(context& ctx, Out&& y, Alpha alpha, const V& v) {
    static_assert(std::is_arithmetic_v<Alpha>, "broadcast_add: alpha is a number");
    static_assert(is_operand<V>, "broadcast_add: v must be a tensor or view");
    const shape sy = shape_of(y);
    const std::size_t period = detail::broadcast_period(sy, shape_of(v));
    scalar* o = data(y);
    const scalar* x = data(v);
    const auto a = static_cast<scalar>(alpha);
    ctx.executor.for_blocks(sy.rows, sy.cols, [&](std::size_t b, std::size_t e) {
      host_kernels::broadcast_add(b, e, sy.cols, o, a, x, period);
    });
  }

  // ---- index maps --------------------------------------------------------------------------
  /// out[i] = in[map(i)] (flat row-major indices; map(i) < 0 gives 0) for every i of `out_shape`:
  /// im2col, resampling, concatenation, broadcasting. out is resized to out_shape. With block > 1
  /// the map indexes runs of `block` contiguous elements (e.g. the channels of a pixel) instead.
  template <class Out, class In, class Map>
  static void gather(context& ctx, Out&& out, const shape& out_shape, const In& in, const Map& map,
                     std::int64_t block = 1) {
    static_assert(is_operand<In>, "gather: the input must be a tensor or view");
    const std::size_t blocks = detail::block_count("gather", out_shape, block);
    require_no_resized_alias("gather", out, out_shape, in);
    resize(ctx, out, out_shape);
    scalar* o = data(out);
    const scalar* x = data(in);
    const auto b = static_cast<std::size_t>(block);
    ctx.executor.for_blocks(blocks, 4 * b, [&](std::size_t begin, std::size_t end) {
      host_kernels::gather(begin, end, o, x, map, b);
    });
  }

  /// The channels-last concatenation y [R, P*(Ca+Cb)] = [a | b] per pixel of a [R, P*Ca] and b
  /// [R, P*Cb] in one pass (y resized), and its adjoint split_channels: ga [R, P*Ca] and gb [R, P*Cb]
  /// (resized) from gy [R, P*(Ca+Cb)]. Copies: equal to the gathers with nn::detail::concat_map and
  /// channel_range_map (the path of backends without these operations).
  template <class Out, class A, class Bm>
  static void concat_channels(context& ctx, Out&& y, const A& a, const Bm& b, std::size_t ca, std::size_t cb) {
    static_assert(is_operand<A> && is_operand<Bm>, "concat_channels: a and b must be tensors or views");
    require(ca >= 1 && cb >= 1, "concat_channels", "ca", "at least one channel on each side", ca);
    const std::size_t pixels = channel_pixels("concat_channels", "a", shape_of(a), ca);
    const shape sa = shape_of(a), out_shape(sa.rows, sa.cols / ca * (ca + cb));
    require_shape("concat_channels", "b", shape(sa.rows, sa.cols / ca * cb), shape_of(b));
    require_no_resized_alias("concat_channels", y, out_shape, a, b);
    resize(ctx, y, out_shape);
    scalar* o = data(y);
    const scalar* pa = data(a);
    const scalar* pb = data(b);
    ctx.executor.for_blocks(pixels, ca + cb, [&](std::size_t begin, std::size_t end) {
      host_kernels::concat_channels(begin, end, o, pa, ca, pb, cb);
    });
  }
  template <class OutA, class OutB, class G>
  static void split_channels(context& ctx, OutA&& ga, OutB&& gb, const G& gy, std::size_t ca, std::size_t cb) {
    static_assert(is_operand<G>, "split_channels: gy must be a tensor or view");
    require(ca >= 1 && cb >= 1, "split_channels", "ca", "at least one channel on each side", ca);
    const std::size_t pixels = channel_pixels("split_channels", "gy", shape_of(gy), ca + cb);
    const shape sg = shape_of(gy);
    const shape sa(sg.rows, sg.cols / (ca + cb) * ca), sb(sg.rows, sg.cols / (ca + cb) * cb);
    require_no_resized_alias("split_channels", ga, sa, gy);
    require_no_resized_alias("split_channels", gb, sb, gy);
    resize(ctx, ga, sa);
    resize(ctx, gb, sb);
    scalar* pa = data(ga);
    scalar* pb = data(gb);
    const scalar* in = data(gy);
    ctx.executor.for_blocks(pixels, ca + cb, [&](std::size_t begin, std::size_t end) {
      host_kernels::split_channels(begin, end, pa, ca, pb, cb, in);
    });
  }

  /// out[i] = sum_{r < taps} in[map(i, r)] (map < 0 skipped), r in order: the adjoint of a gather
  /// written as a gather (col2im, the gradient of resampling), deterministic without atomics. With
  /// block > 1 the map indexes runs of `block` contiguous elements.
  template <class Out, class In, class Map>
  static void gather_sum(context& ctx, Out&& out, const shape& out_shape, const In& in, const Map& map,
                         std::int64_t taps, std::int64_t block = 1) {
    static_assert(is_operand<In>, "gather_sum: the input must be a tensor or view");
    require(taps >= 0, "gather_sum", "taps", "a non-negative count", taps);
    const std::size_t blocks = detail::block_count("gather_sum", out_shape, block);
    require_no_resized_alias("gather_sum", out, out_shape, in);
    resize(ctx, out, out_shape);
    scalar* o = data(out);
    const scalar* x = data(in);
    const auto b = static_cast<std::size_t>(block);
    ctx.executor.for_blocks(blocks, (static_cast<std::size_t>(taps) + 1) * b, [&](std::size_t begin, std::size_t end) {
      host_kernels::gather_sum(begin, end, o, x, map, taps, b);
    });
  }

  /// The column matrix of a k x k "same" stencil (stride 1, zero padding k / 2, tap-major, see
  /// host_kernels::stencil_dims) of the first `rows` channels-last images of x ([>= rows, H*W*C]):
  /// cols is resized to [rows*H*W, k*k*C]. The contiguous host form of gather with nn's im2col map.
  template <class Out, class In>
  static void im2col(context& ctx, Out&& cols, const In& x, std::size_t rows, const host_kernels::stencil_dims& d) {
    static_assert(is_operand<In>, "im2col: the input must be a tensor or view");
    require_stencil_input("im2col", "x", x, rows, d);
    const shape sh(rows * d.height * d.width, d.kernel * d.kernel * d.channels);
    require_no_resized_alias("im2col", cols, sh, x);
    resize(ctx, cols, sh);
    scalar* o = data(cols);
    const scalar* px = data(x);
    ctx.executor.for_blocks(rows * d.height, d.width * sh.cols, [&](std::size_t begin, std::size_t end) {
      host_kernels::im2col(begin, end, d, o, px);
    });
  }

  /// The adjoint of im2col: x (= x + when `accumulate`) the sum over taps of cols
  /// ([rows*H*W, k*k*C]) at the pixels they read; x is resized to [rows, H*W*C] unless accumulating.
  template <class Out, class In>
  static void col2im(context& ctx, Out&& x, const In& cols, std::size_t rows, const host_kernels::stencil_dims& d,
                     bool accumulate) {
    static_assert(is_operand<In>, "col2im: the columns must be a tensor or view");
    require_stencil("col2im", d);
    const shape sh(rows, d.height * d.width * d.channels);
    require_shape("col2im", "cols", shape(rows * d.height * d.width, d.kernel * d.kernel * d.channels), shape_of(cols));
    if (accumulate) {
      require_shape("col2im", "x", sh, shape_of(x));
    } else {
      require_no_resized_alias("col2im", x, sh, cols);
      resize(ctx, x, sh);
    }
    scalar* o = data(x);
    const scalar* pc = data(cols);
    ctx.executor.for_blocks(rows * d.height, d.width * d.kernel * d.kernel * d.channels,
                            [&](std::size_t begin, std::size_t end) {
                              host_kernels::col2im(begin, end, d, o, pc, accumulate);
                            });
  }

  /// GroupNorm on channels-last images without permuting them (host_kernels::group_norm_forward):
  /// x is [R, P*C] with R = n primal rows, or 2n stacked rows [x; dx]. rstd ([n*G, 1], sample-major)
  /// = 1 / sqrt(var + eps), xhat ([n, P*C], the image layout) = (x - mu) rstd, y ([R, P*C]) = gamma
  /// xhat + beta on rows [0, n) and dy = gamma J dx on rows [n, 2n), J v = rstd (v - mean(v) - xhat
  /// mean(xhat v)) per (sample, group). gamma, beta: [1, C]. Parallel over (sample, block of groups).
  template <class Y, class Xhat, class Rstd, class X, class Gamma, class Beta>
  static void group_norm_forward(context& ctx, Y&& y, Xhat&& xhat, Rstd&& rstd, const X& x, const Gamma& gamma,
                                 const Beta& beta, std::size_t n, const host_kernels::group_norm_dims& d) {
    group_norm_forward_pass("group_norm_forward", ctx, y, xhat, rstd, static_cast<tensor*>(nullptr), x, gamma, beta,
                            n, d);
  }

  /// GroupNorm then SiLU in the same passes: y = silu(z) with z = gamma xhat + beta on rows [0, n),
  /// slope ([n, P*C], resized) = silu'(z), and the tangent rows slope dz (dz as group_norm_forward's).
  template <class Y, class Xhat, class Rstd, class Slope, class X, class Gamma, class Beta>
  static void group_norm_silu_forward(context& ctx, Y&& y, Xhat&& xhat, Rstd&& rstd, Slope&& slope, const X& x,
                                      const Gamma& gamma, const Beta& beta, std::size_t n,
                                      const host_kernels::group_norm_dims& d) {
    group_norm_forward_pass("group_norm_silu_forward", ctx, y, xhat, rstd, &slope, x, gamma, beta, n, d);
  }

  /// The backward of group_norm_forward given dy ([n, P*C]) and the saved xhat ([n, P*C]) and rstd
  /// ([n*G, 1]): sum_xhat[b, c] = sum_p dy xhat and sum_dy[b, c] = sum_p dy ([n, C], resized; the
  /// column sums of the two are dgamma and dbeta), and, when grad_x is not null, *grad_x = J (gamma
  /// dy) ([n, P*C], resized). gamma: [1, C].
  template <class SumXhat, class SumDy, class Xhat, class Rstd, class Dy, class Gamma>
  static void group_norm_backward(context& ctx, tensor* grad_x, SumXhat&& sum_xhat, SumDy&& sum_dy, const Xhat& xhat,
                                  const Rstd& rstd, const Dy& dy, const Gamma& gamma,
                                  const host_kernels::group_norm_dims& d) {
    group_norm_backward_pass("group_norm_backward", ctx, grad_x, sum_xhat, sum_dy, xhat, rstd,
                             static_cast<const tensor*>(nullptr), dy, gamma, d);
  }

  /// The backward of group_norm_silu_forward given da = dL/dy of its output and its slope: that of
  /// group_norm_backward with dy = slope da, in the same passes.
  template <class SumXhat, class SumDy, class Xhat, class Rstd, class Slope, class Da, class Gamma>
  static void group_norm_silu_backward(context& ctx, tensor* grad_x, SumXhat&& sum_xhat, SumDy&& sum_dy,
                                       const Xhat& xhat, const Rstd& rstd, const Slope& slope, const Da& da,
                                       const Gamma& gamma, const host_kernels::group_norm_dims& d) {
    static_assert(is_operand<Slope>, "group_norm_silu_backward: slope must be a tensor or view");
    group_norm_backward_pass("group_norm_silu_backward", ctx, grad_x, sum_xhat, sum_dy, xhat, rstd, &slope, da, gamma,
                             d);
  }

  // ---- the tiled stencil products (conv2d's host path) ---------------------------------------
  /// The bands of the tiled stencil products: a task covers image rows [y0, y1) of one sample,
  /// rows_per_band of them (the last band of a sample may have fewer), whose kernel-row columns
  /// (host_kernels::im2col_band: k*C values per pixel of rows y0 - k/2 .. y1 + k/2 - 1) take about
  /// 384 KiB, so they stay in cache between the im2col and the band's k products. Depends only on the
  /// geometry and the scalar type, never on threads.
  using stencil_band_grid = host_kernels::stencil_band_grid;
  static stencil_band_grid stencil_bands(const host_kernels::stencil_dims& d) {
    constexpr std::size_t band_bytes = std::size_t{384} << 10;
    const std::size_t halo = 2 * (d.kernel / 2);
    const std::size_t row_bytes = std::max<std::size_t>(1, d.width * d.kernel * d.channels) * sizeof(scalar);
    const std::size_t fit = band_bytes / row_bytes, height = std::max<std::size_t>(1, d.height);
    const std::size_t rows = std::min(height, fit > halo ? fit - halo : std::size_t{1});
    const std::size_t bands = (height + rows - 1) / rows;  // then rows spread evenly over the bands
    return {(height + bands - 1) / bands, bands};
  }

  /// y = cols(x) W (+ y when `accumulate`), the im2col + GEMM of a "same" stencil without the full
  /// column matrix: x [>= rows, H*W*C], W [k*k*C, C_out], y [rows, H*W*C_out] (resized unless
  /// accumulating). The images go in bands of rows (stencil_bands), in parallel; each task builds its
  /// band's kernel-row columns in its thread's slot of `scratch` (grown when too small, then reused)
  /// and runs k single-threaded GEMMs (one per tap row) into the band's rows of y.
  template <class Out, class In, class Wm>
  static void stencil_gemm(context& ctx, Out&& y, const In& x, std::size_t rows, const host_kernels::stencil_dims& d,
                           const Wm& w, bool accumulate, tensor& scratch) {
    static_assert(is_operand<In> && is_operand<Wm>, "stencil_gemm: x and W must be tensors or views");
    stencil_gemm_pass(ctx, y, x, rows, d, w, accumulate, scratch);
  }
  /// The same, and row r of `row_bias` ([rows, C_out]) added to every pixel of row r of y in the
  /// band loop, while each band of y is in cache (a layer's bias, and per-sample terms such as the
  /// residual block's embedding projection): y = cols(x) W (+ y) + row_bias broadcast over pixels.
  template <class Out, class In, class Wm, class RowBias>
  static void stencil_gemm(context& ctx, Out&& y, const In& x, std::size_t rows, const host_kernels::stencil_dims& d,
                           const Wm& w, const RowBias& row_bias, bool accumulate, tensor& scratch) {
    static_assert(is_operand<In> && is_operand<Wm> && is_operand<RowBias>,
                  "stencil_gemm: x, W and row_bias must be tensors or views");
    stencil_gemm_pass(ctx, y, x, rows, d, w, accumulate, scratch, row_bias);
  }

  /// dx = col2im(dy W^T) (+ dx when `accumulate`), the data gradient of stencil_gemm as a stencil
  /// product of its own: dx = cols(dy) W' with W' = host_kernels::stencil_flip_weights(W) (stride 1,
  /// zero padding k / 2), tiled like stencil_gemm, no scatter. d: x's geometry (C = C_in); dy
  /// [>= rows, H*W*C_out], W [k*k*C_in, C_out], dx [rows, H*W*C_in] (resized unless accumulating).
  template <class Out, class In, class Wm>
  static void stencil_gemm_adjoint(context& ctx, Out&& dx, const In& dy, std::size_t rows,
                                   const host_kernels::stencil_dims& d, const Wm& w, bool accumulate,
                                   tensor& scratch) {
    static_assert(is_operand<In> && is_operand<Wm>, "stencil_gemm_adjoint: dy and W must be tensors or views");
    require_stencil("stencil_gemm_adjoint", d);
    const std::size_t c_in = d.channels, c_out = shape_of(w).cols, kk = d.kernel * d.kernel;
    require_shape("stencil_gemm_adjoint", "W", shape(kk * c_in, c_out), shape_of(w));
    const host_kernels::stencil_dims d_out{d.height, d.width, c_out, d.kernel};
    require_stencil_input("stencil_gemm_adjoint", "dy", dy, rows, d_out);
    prepare_output(ctx, "stencil_gemm_adjoint", "dx", dx, shape(rows, d.height * d.width * c_in), accumulate, dy, w);
    // scratch: W' [k*k*C_out, C_in], then the column slots.
    const std::size_t flipped_size = round_up(kk * c_out * c_in), slot_size = stencil_slot_size(d_out);
    grow(scratch, flipped_size + worker_slots(ctx) * slot_size);
    scalar* flipped = Storage::data(scratch);
    host_kernels::stencil_flip_weights(d.kernel, c_in, c_out, data(w), flipped);
    tiled_stencil_gemm(ctx, data(dx), data(dy), rows, d_out, flipped, c_in, accumulate, flipped + flipped_size,
                       slot_size, nullptr);
  }

  /// dW += cols(x)^T dy, the weight gradient of stencil_gemm, band by band: x [>= rows, H*W*C], dy
  /// [rows, H*W*C_out], dW [k*k*C, C_out] (never resized). The bands go in a fixed number of chunks
  /// (at most 16, from the problem size alone); each chunk sums its bands' products (k per band, one
  /// per row block of dW) in order into its own partial in `scratch`, and dW adds the partials in
  /// chunk order (in double): the result does not depend on the number of threads.
  template <class Out, class In, class G>
  static void stencil_gemm_weights(context& ctx, Out&& dw, const In& x, const G& dy, std::size_t rows,
                                   const host_kernels::stencil_dims& d, tensor& scratch) {
    static_assert(is_operand<In> && is_operand<G>, "stencil_gemm_weights: x and dy must be tensors or views");
    stencil_weights_pass(ctx, dw, static_cast<scalar*>(nullptr), x, dy, rows, d, scratch);
  }
  /// The same, and the bias gradient in the same pass while each band of dy is in cache: db [1,
  /// C_out] (never resized) += the sum of dy over pixels. Per band the column sums in double, added
  /// to the chunk's partial (one rounding per band), the partials added to db in chunk order in double.
  template <class Out, class OutBias, class In, class G>
  static void stencil_gemm_weights(context& ctx, Out&& dw, OutBias&& db, const In& x, const G& dy, std::size_t rows,
                                   const host_kernels::stencil_dims& d, tensor& scratch) {
    static_assert(is_operand<In> && is_operand<G>, "stencil_gemm_weights: x and dy must be tensors or views");
    require_shape("stencil_gemm_weights", "db", shape(1, shape_of(dw).cols), shape_of(db));
    stencil_weights_pass(ctx, dw, data(db), x, dy, rows, d, scratch);
  }

private:
  /// stencil_gemm's checks and bands, with at most one row_bias operand.
  template <class Out, class In, class Wm, class... RowBias>
  static void stencil_gemm_pass(context& ctx, Out& y, const In& x, std::size_t rows, const host_kernels::stencil_dims& d,
                                const Wm& w, bool accumulate, tensor& scratch, const RowBias&... row_bias) {
    static_assert(sizeof...(RowBias) <= 1, "stencil_gemm: one row_bias at most");
    require_stencil_input("stencil_gemm", "x", x, rows, d);
    const std::size_t fan_in = d.kernel * d.kernel * d.channels, c_out = shape_of(w).cols;
    require_shape("stencil_gemm", "W", shape(fan_in, c_out), shape_of(w));
    (require_shape("stencil_gemm", "row_bias", shape(rows, c_out), shape_of(row_bias)), ...);
    prepare_output(ctx, "stencil_gemm", "y", y, shape(rows, d.height * d.width * c_out), accumulate, x, w, row_bias...);
    const std::size_t slot_size = stencil_slot_size(d);
    grow(scratch, worker_slots(ctx) * slot_size);
    const scalar* bias = nullptr;
    ((bias = data(row_bias)), ...);
    tiled_stencil_gemm(ctx, data(y), data(x), rows, d, data(w), c_out, accumulate, Storage::data(scratch), slot_size,
                       bias);
  }

  template <class Out, class In, class G>
  static void stencil_weights_pass(context& ctx, Out& dw, scalar* db, const In& x, const G& dy, std::size_t rows,
                                   const host_kernels::stencil_dims& d, tensor& scratch) {
    require_stencil_input("stencil_gemm_weights", "x", x, rows, d);
    const std::size_t fan_in = d.kernel * d.kernel * d.channels, c_out = shape_of(dw).cols;
    require_shape("stencil_gemm_weights", "dW", shape(fan_in, c_out), shape_of(dw));
    require_shape("stencil_gemm_weights", "dy", shape(rows, d.height * d.width * c_out), shape_of(dy));
    const stencil_band_grid grid = stencil_bands(d);
    const std::size_t tasks = rows * grid.bands_per_sample, k = d.kernel, kc = k * d.channels;
    if (tasks == 0 || c_out == 0 || d.width == 0) return;
    constexpr std::size_t max_chunks = 16;
    const std::size_t chunks = std::min(tasks, max_chunks), per_chunk = (tasks + chunks - 1) / chunks;
    const std::size_t used = (tasks + per_chunk - 1) / per_chunk;  // chunks that own bands
    // A chunk's partial: dW's [k*k*C, C_out], then (with db) the bias gradient's C_out.
    const std::size_t weights_size = fan_in * c_out;
    const std::size_t partial_size = round_up(weights_size + (db != nullptr ? c_out : 0));
    const std::size_t slot_size = stencil_slot_size(d);
    const std::size_t slots = worker_slots(ctx);
    grow(scratch, used * partial_size + slots * slot_size);
    scalar* partials = Storage::data(scratch);
    scalar* columns = partials + used * partial_size;
    const scalar* px = data(x);
    const scalar* pg = data(dy);
    const std::size_t chunk_work = per_chunk * grid.rows_per_band * d.width * k * kc * c_out;
    // Per band: partial_ky (+)= cols_ky^T dy_band, the k row blocks of dW.
    ctx.executor.for_blocks(used, chunk_work, [&](std::size_t begin, std::size_t end) {
      scalar* cols = columns + worker_slot(ctx, slots) * slot_size;
      for (std::size_t chunk = begin; chunk < end; ++chunk) {
        scalar* partial = partials + chunk * partial_size;
        const std::size_t t_end = std::min(tasks, (chunk + 1) * per_chunk);
        for (std::size_t t = chunk * per_chunk; t < t_end; ++t) {
          const auto [b, y0, y1] = grid.at(t, d.height);
          const std::size_t m = (y1 - y0) * d.width;
          host_kernels::im2col_band(b, y0, y1, d, cols, px);
          const scalar* g = pg + (b * d.height + y0) * d.width * c_out;
          const scalar beta = t == chunk * per_chunk ? scalar(0) : scalar(1);
          for (std::size_t ky = 0; ky < k; ++ky) {
            gemm_on_thread(kc, c_out, m, true, false, scalar(1), cols + ky * d.width * kc, kc, g, c_out, beta,
                           partial + ky * kc * c_out);
          }
          if (db != nullptr) host_kernels::sum_columns(0, c_out, m, c_out, c_out, partial + weights_size, beta, g);
        }
      }
    });
    const std::size_t total = weights_size + (db != nullptr ? c_out : 0);
    scalar* g = data(dw);
    ctx.executor.for_blocks(total, used, [&](std::size_t begin, std::size_t end) {
      for (std::size_t i = begin; i < end; ++i) {
        double sum = 0;
        for (std::size_t chunk = 0; chunk < used; ++chunk) sum += static_cast<double>(partials[chunk * partial_size + i]);
        scalar& out = i < weights_size ? g[i] : db[i - weights_size];
        out = static_cast<scalar>(static_cast<double>(out) + sum);
      }
    });
  }

  /// The bands of stencil_gemm on raw operands: y [rows*H*W, c_out] = cols(x) W (+ y), W [k*k*C,
  /// c_out]; per band one im2col_band into the thread's slot of slot_size elements from `columns`,
  /// then k single-threaded products y_band (+)= cols_ky W_ky, W_ky the rows [ky*k*C, (ky+1)*k*C) of W;
  /// with row_bias ([rows, c_out]) not null, its row b added to every pixel of the band.
  static void tiled_stencil_gemm(context& ctx, scalar* y, const scalar* x, std::size_t rows,
                                 const host_kernels::stencil_dims& d, const scalar* w, std::size_t c_out,
                                 bool accumulate, scalar* columns, std::size_t slot_size, const scalar* row_bias) {
    const std::size_t k = d.kernel, kc = k * d.channels, slots = worker_slots(ctx);
    const stencil_band_grid grid = stencil_bands(d);
    if (c_out == 0 || d.height == 0 || d.width == 0) return;
    const scalar beta = accumulate ? scalar(1) : scalar(0);
    const std::size_t band_work = grid.rows_per_band * d.width * k * kc * c_out;
    ctx.executor.for_blocks(rows * grid.bands_per_sample, band_work, [&](std::size_t begin, std::size_t end) {
      scalar* cols = columns + worker_slot(ctx, slots) * slot_size;
      for (std::size_t t = begin; t < end; ++t) {
        const auto [b, y0, y1] = grid.at(t, d.height);
        const std::size_t m = (y1 - y0) * d.width;
        host_kernels::im2col_band(b, y0, y1, d, cols, x);
        scalar* out = y + (b * d.height + y0) * d.width * c_out;
        for (std::size_t ky = 0; ky < k; ++ky) {
          gemm_on_thread(m, c_out, kc, false, false, scalar(1), cols + ky * d.width * kc, kc, w + ky * kc * c_out,
                         c_out, ky == 0 ? beta : scalar(1), out);
        }
        if (row_bias != nullptr) host_kernels::broadcast_add(0, m, c_out, out, scalar(1), row_bias + b * c_out, c_out);
      }
    });
  }

  /// C = alpha op(A) op(B) + beta C on the calling thread: the storage's single-threaded product
  /// (gemm_serial) when it has one, else the reference loops.
  static void gemm_on_thread(std::size_t m, std::size_t n, std::size_t k, bool ta, bool tb, scalar alpha,
                             const scalar* a, std::size_t lda, const scalar* b, std::size_t ldb, scalar beta,
                             scalar* c) {
    if constexpr (requires { Storage::gemm_serial(m, n, k, ta, tb, alpha, a, lda, b, ldb, beta, c); }) {
      Storage::gemm_serial(m, n, k, ta, tb, alpha, a, lda, b, ldb, beta, c);
    } else {
      host_kernels::gemm(m, n, k, ta, tb, alpha, a, lda, b, ldb, beta, c);
    }
  }

  /// The executor's per-thread scratch slots (executor.slots() / slot(); one slot when it has none).
  static std::size_t worker_slots(const context& ctx) {
    if constexpr (requires { ctx.executor.slots(); }) {
      return std::max<std::size_t>(1, ctx.executor.slots());
    } else {
      return 1;
    }
  }
  static std::size_t worker_slot(const context& ctx, std::size_t slots) {
    std::size_t slot = 0;
    if constexpr (requires { ctx.executor.slot(); }) slot = ctx.executor.slot();
    require(slot < slots, "stencil_gemm", "executor", "a thread slot below its slot count", slot);
    return slot;
  }

  /// An output of shape sh: checked when accumulating into it, else resized (and not an input that
  /// the resize would invalidate).
  template <class Out, class... In>
  static void prepare_output(context& ctx, const char* where, const char* name, Out& out, const shape& sh,
                             bool accumulate, const In&... in) {
    if (accumulate) {
      require_shape(where, name, sh, shape_of(out));
    } else {
      require_no_resized_alias(where, out, sh, in...);
      resize(ctx, out, sh);
    }
  }

  /// Elements of one thread's column slot (one band's kernel-row columns, whole cache lines).
  static std::size_t stencil_slot_size(const host_kernels::stencil_dims& d) {
    const stencil_band_grid grid = stencil_bands(d);
    return round_up((grid.rows_per_band + 2 * (d.kernel / 2)) * d.width * d.kernel * d.channels);
  }
  /// n rounded up to whole 64-byte lines of scalars.
  static constexpr std::size_t round_up(std::size_t n) {
    constexpr std::size_t line = 64 / sizeof(scalar) > 0 ? 64 / sizeof(scalar) : 1;
    return (n + line - 1) / line * line;
  }
  /// Grows a scratch tensor to at least n elements (its values are not kept).
  static void grow(tensor& scratch, std::size_t n) {
    if (Storage::shape_of(scratch).size() < n) Storage::resize(scratch, shape(1, n));
  }
  template <class X>
  static void require_stencil_input(const char* where, const char* name, const X& x, std::size_t rows,
                                    const host_kernels::stencil_dims& d) {
    require_stencil(where, d);
    const std::size_t image = d.height * d.width * d.channels;
    if (shape_of(x).rows < rows || shape_of(x).cols != image)
      throw_argument_error(where, name, detail::concat("at least ", rows, " rows of ", image, " values"), shape_of(x));
  }

public:
  /// out[i, :] = table[index[i], :], a zero row where index[i] < 0 (the null class); index: [R, 1]
  /// integer labels stored as scalars, table: [K, C]; out is resized to [R, C]. A label that is not
  /// an integer or is >= K raises.
  template <class Out, class Table, class Index>
  static void gather_rows(context& ctx, Out&& out, const Table& table, const Index& index) {
    static_assert(is_operand<Table> && is_operand<Index>, "gather_rows: table and index must be tensors or views");
    const shape st = shape_of(table), si = shape_of(index);
    detail::check_index_shape("gather_rows", si);
    check_row_labels("gather_rows", index, st.rows);
    const shape so(si.rows, st.cols);
    require_no_resized_alias("gather_rows", out, so, table, index);
    resize(ctx, out, so);
    scalar* o = data(out);
    const scalar* t = data(table);
    const scalar* k = data(index);
    ctx.executor.for_blocks(si.rows, st.cols, [&](std::size_t b, std::size_t e) {
      host_kernels::gather_rows(b, e, st.cols, o, t, k);
    });
  }

  /// The adjoint of gather_rows: table[k, :] += sum of in[i, :] over the rows i with index[i] = k,
  /// i in order (negative labels skipped). table: [K, C] (not resized), index: [R, 1], in: [R, C].
  template <class Table, class Index, class In>
  static void scatter_add_rows(context& ctx, Table&& table, const Index& index, const In& in) {
    static_assert(is_operand<Index> && is_operand<In>, "scatter_add_rows: index and in must be tensors or views");
    const shape st = shape_of(table), si = shape_of(index);
    detail::check_index_shape("scatter_add_rows", si);
    require_shape("scatter_add_rows", "in", shape(si.rows, st.cols), shape_of(in));
    check_row_labels("scatter_add_rows", index, st.rows);
    scalar* t = data(table);
    const scalar* k = data(index);
    const scalar* x = data(in);
    const std::size_t work = si.rows + si.rows * st.cols / std::max<std::size_t>(st.rows, 1);
    ctx.executor.for_blocks(st.rows, work, [&](std::size_t b, std::size_t e) {
      host_kernels::scatter_add_rows(b, e, st.cols, si.rows, t, k, x);
    });
  }

  // ---- reductions ----------------------------------------------------------------------------
  /// out[i] = sum_j f(in_1[i, j], ...); out: [B, 1]. Each row in reduce_all's order, in double
  /// (host_kernels::reduce_row_sum).
  template <class Out, class F, class... In>
  static void reduce_rows(context& ctx, Out&& out, const F& f, const In&... in) {
    const shape sh = same_shape("reduce_rows", in...);
    require_no_resized_alias("reduce_rows", out, shape::vector(sh.rows), in...);
    resize(ctx, out, shape::vector(sh.rows));
    scalar* o = data(out);
    ctx.executor.for_blocks(sh.rows, sh.cols, [&](std::size_t b, std::size_t e) {
      host_kernels::reduce_rows(b, e, sh.cols, o, f, data(in)...);
    });
  }

  /// out[0, c] = beta out[0, c] + sum_{i, q} in[i, q C + c]: column sums of in [R, N] folded over
  /// runs of C = out's columns (C divides N; C = N: plain column sums, e.g. a bias gradient; C
  /// channels: a channels-last conv bias gradient). out: [1, C], never resized; beta = 0 ignores
  /// its values. Summed in double, rows then runs in order within chunks of rows, then the chunks in
  /// order (host_kernels::sum_columns): independent of the thread count.
  template <class Out, class Beta, class In>
  static void sum_columns(context& ctx, Out&& out, Beta beta, const In& in) {
    static_assert(std::is_arithmetic_v<Beta>, "sum_columns: beta is a number");
    static_assert(is_operand<In>, "sum_columns: in must be a tensor or view");
    const shape si = shape_of(in);
    const std::size_t period = detail::column_period(shape_of(out), si);
    scalar* o = data(out);
    const scalar* x = data(in);
    const auto b = static_cast<double>(beta);
    // Tasks of 16 columns at least: a task reads whole cache lines and sums them in vector registers.
    constexpr std::size_t lanes = 16;
    const std::size_t tasks = (period + lanes - 1) / lanes;
    ctx.executor.for_blocks(tasks, lanes * si.rows * (si.cols / period), [&](std::size_t begin, std::size_t end) {
      host_kernels::sum_columns(begin * lanes, std::min(end * lanes, period), si.rows, si.cols, period, o, b, x);
    });
  }

  /// out[i, 0] = max_j in[i, j] (NaN when row i holds a NaN); out is resized to [R, 1]; in needs a column.
  template <class Out, class In>
  static void max_rows(context& ctx, Out&& out, const In& in) {
    static_assert(is_operand<In>, "max_rows: in must be a tensor or view");
    const shape sh = shape_of(in);
    if (sh.cols == 0) {
      std::ostringstream received;
      received << sh;
      throw_argument_error("max_rows", "in", "at least one column", received.str());
    }
    require_no_resized_alias("max_rows", out, shape::vector(sh.rows), in);
    resize(ctx, out, shape::vector(sh.rows));
    scalar* o = data(out);
    const scalar* x = data(in);
    ctx.executor.for_blocks(sh.rows, sh.cols, [&](std::size_t b, std::size_t e) {
      host_kernels::max_rows(b, e, sh.cols, o, x);
    });
  }

  /// sum over all elements of f(in_1, ...), in a fixed chunked order (thread-count independent).
  template <class F, class... In>
  static scalar reduce_all(context& ctx, const F& f, const In&... in) {
    const shape sh = same_shape("reduce_all", in...);
    const std::size_t chunks = host_kernels::chunk_count(sh.size());
    // The chunk sums on the stack up to 2^23 elements (no allocation in an optimizer step).
    constexpr std::size_t on_stack = 1024;
    std::array<double, on_stack> local{};
    std::vector<double> heap(chunks > on_stack ? chunks : 0);
    double* partial = chunks > on_stack ? heap.data() : local.data();
    ctx.executor.for_blocks(chunks, host_kernels::reduce_chunk, [&](std::size_t b, std::size_t e) {
      for (std::size_t k = b; k < e; ++k)
        partial[k] = host_kernels::reduce_chunk_sum(k, sh.size(), f, data(in)...);
    });
    double total = 0;
    for (std::size_t k = 0; k < chunks; ++k) total += partial[k];
    return static_cast<scalar>(total);
  }

  template <class A, class Bv>
  static scalar dot(context& ctx, const A& a, const Bv& b) {
    return reduce_all(ctx, [](scalar u, scalar v) { return u * v; }, a, b);
  }

  /// {min, max} over all elements; raises on an empty tensor.
  template <class In>
  static std::pair<scalar, scalar> extrema(context& /*ctx*/, const In& x) {
    const std::size_t n = shape_of(x).size();
    require(n > 0, "extrema", "x", "a non-empty tensor", shape_of(x));
    const auto [lo, hi] = std::minmax_element(data(x), data(x) + n);
    return {*lo, *hi};
  }

  // ---- random numbers ------------------------------------------------------------------------
  /// Standard normal Philox draws; takes shape_of(out).size() indices from ctx.rng.
  template <class Out>
  static void randn(context& ctx, Out&& out) {
    const std::size_t n = shape_of(out).size();
    const std::uint64_t first = ctx.rng.take(n);
    scalar* o = data(out);
    ctx.executor.for_blocks(n, 16, [&](std::size_t b, std::size_t e) {
      host_kernels::randn(b, e, o, ctx.rng.seed, first);
    });
  }
  /// Uniform [0, 1) Philox draws.
  template <class Out>
  static void rand_uniform(context& ctx, Out&& out) {
    const std::size_t n = shape_of(out).size();
    const std::uint64_t first = ctx.rng.take(n);
    scalar* o = data(out);
    ctx.executor.for_blocks(n, 16, [&](std::size_t b, std::size_t e) {
      host_kernels::rand_uniform(b, e, o, ctx.rng.seed, first);
    });
  }

  // ---- GEMM ----------------------------------------------------------------------------------
  /// C = alpha op(A) op(B) + beta C. C must already have the result's shape when beta != 0.
  template <class A, class Bm, class C>
  static void gemm(context& ctx, transpose op_a, transpose op_b, scalar alpha, const A& a, const Bm& b,
                   scalar beta, C&& c) {
    const shape sa = shape_of(a), sb = shape_of(b);
    const bool ta = op_a == transpose::yes, tb = op_b == transpose::yes;
    const std::size_t m = ta ? sa.cols : sa.rows, k = ta ? sa.rows : sa.cols;
    const std::size_t kb = tb ? sb.cols : sb.rows, n = tb ? sb.rows : sb.cols;
    // The message is built only on failure: a passing check must not allocate (hot path).
    if (k != kb) throw_argument_error("gemm", "B", detail::concat(k, " rows of op(B) to match op(A)'s columns"), kb);
    if (beta != scalar(0)) require_shape("gemm", "C", shape(m, n), shape_of(c));
    resize(ctx, c, shape(m, n));
    if constexpr (requires { Storage::gemm(m, n, k, ta, tb, alpha, data(a), sa.cols, data(b), sb.cols, beta, data(c)); }) {
      Storage::gemm(m, n, k, ta, tb, alpha, data(a), sa.cols, data(b), sb.cols, beta, data(c));
    } else {
      host_kernels::gemm(m, n, k, ta, tb, alpha, data(a), sa.cols, data(b), sb.cols, beta, data(c));
    }
  }

  /// C_k = alpha op(A_k) op(B_k) + beta C_k for k < batch, where A_k, B_k, C_k are the k-th runs of
  /// rows/batch consecutive rows of A [batch*ra, ca], B [batch*rb, cb] and C [batch*m, n] (C is
  /// resized when beta = 0 and must match otherwise), with gemm's transpose rules per member.
  /// Members run in parallel; each is gemm's product, so the result does not depend on threads.
  template <class A, class Bm, class C>
  static void gemm_batched(context& ctx, transpose op_a, transpose op_b, scalar alpha, const A& a, const Bm& b,
                           scalar beta, C&& c, std::size_t batch) {
    static_assert(is_operand<A> && is_operand<Bm>, "gemm_batched: A and B must be tensors or views");
    const shape sa = shape_of(a), sb = shape_of(b);
    const bool ta = op_a == transpose::yes, tb = op_b == transpose::yes;
    const detail::batched_gemm_dims g = detail::batched_gemm_shape(ta, tb, sa, sb, batch);
    const shape sc(batch * g.m, g.n);
    if (beta != scalar(0)) require_shape("gemm_batched", "C", sc, shape_of(c));
    require_no_resized_alias("gemm_batched", c, sc, a, b);
    resize(ctx, c, sc);
    if (g.m == 0 || g.n == 0) return;
    const scalar* pa = data(a);
    const scalar* pb = data(b);
    scalar* pc = data(c);
    const std::size_t stride_a = g.rows_a * sa.cols, stride_b = g.rows_b * sb.cols, stride_c = g.m * g.n;
    ctx.executor.for_blocks(batch, g.m * g.n * (g.k + 1), [&](std::size_t begin, std::size_t end) {
      for (std::size_t k = begin; k < end; ++k) {
        const scalar* ak = pa + k * stride_a;
        const scalar* bk = pb + k * stride_b;
        scalar* ck = pc + k * stride_c;
        if constexpr (has_storage_gemm) {
          Storage::gemm(g.m, g.n, g.k, ta, tb, alpha, ak, sa.cols, bk, sb.cols, beta, ck);
        } else {
          host_kernels::gemm(g.m, g.n, g.k, ta, tb, alpha, ak, sa.cols, bk, sb.cols, beta, ck);
        }
      }
    });
  }

private:
  /// Whether the storage brings its own GEMM (Eigen's product); else the reference loops.
  static constexpr bool has_storage_gemm =
      requires(std::size_t d, bool t, scalar s, const scalar* p, scalar* q) { Storage::gemm(d, d, d, t, t, s, p, d, p, d, s, q); };

  template <class X>
  static constexpr bool is_operand = std::is_same_v<X, tensor> || std::is_same_v<X, view> ||
                                     std::is_same_v<X, const_view>;

  static scalar* data(tensor& x) { return Storage::data(x); }
  static const scalar* data(const tensor& x) { return Storage::data(x); }
  static scalar* data(const view& x) { return x.data; }
  static const scalar* data(const const_view& x) { return x.data; }

  static void require_stencil(const char* where, const host_kernels::stencil_dims& d) {
    require(d.kernel % 2 == 1, where, "kernel", "an odd size", d.kernel);
    require(d.height >= 1 && d.width >= 1 && d.channels >= 1, where, "image", "a non-empty image",
            d.height * d.width * d.channels);
  }

  /// The pixel count R*P of a channels-last operand [R, P*channels] (channels >= 1, checked by the
  /// caller, dividing its columns).
  static std::size_t channel_pixels(const char* where, const char* name, const shape& sh, std::size_t channels) {
    if (sh.cols % channels != 0)
      throw_argument_error(where, name, detail::concat("rows of whole pixels of ", channels, " channels"), sh);
    return sh.rows * (sh.cols / channels);
  }

  static void require_group_norm(const char* where, const host_kernels::group_norm_dims& d) {
    require(d.pixels >= 1 && d.channels >= 1, where, "image", "a non-empty image", d.pixels * d.channels);
    if (d.groups == 0 || d.channels % d.groups != 0)
      throw_argument_error(where, "groups", detail::concat("a divisor of the channel count ", d.channels), d.groups);
    require(d.eps > 0, where, "eps", "a positive value", d.eps);
  }

  /// group_norm_forward, and with slope not null group_norm_silu_forward (its slope output).
  template <class Y, class Xhat, class Rstd, class Slope, class X, class Gamma, class Beta>
  static void group_norm_forward_pass(const char* where, context& ctx, Y& y, Xhat& xhat, Rstd& rstd, Slope* slope,
                                      const X& x, const Gamma& gamma, const Beta& beta, std::size_t n,
                                      const host_kernels::group_norm_dims& d) {
    static_assert(is_operand<X> && is_operand<Gamma> && is_operand<Beta>,
                  "group_norm_forward: x, gamma and beta must be tensors or views");
    require_group_norm(where, d);
    const std::size_t image = d.pixels * d.channels, rows = shape_of(x).rows;
    if (shape_of(x).cols != image || n == 0 || (rows != n && rows != 2 * n))
      throw_argument_error(where, "x", detail::concat(n, " or ", 2 * n, " rows of ", image, " values"), shape_of(x));
    require_shape(where, "gamma", shape(1, d.channels), shape_of(gamma));
    require_shape(where, "beta", shape(1, d.channels), shape_of(beta));
    require_no_resized_alias(where, y, shape(rows, image), x, gamma, beta);
    require_no_resized_alias(where, xhat, shape(n, image), x, gamma, beta);
    require_no_resized_alias(where, rstd, shape::vector(n * d.groups), x, gamma, beta);
    scalar* ps = nullptr;
    if (slope != nullptr) {
      require_no_resized_alias(where, *slope, shape(n, image), x, gamma, beta);
      resize(ctx, *slope, shape(n, image));
      ps = data(*slope);
    }
    resize(ctx, y, shape(rows, image));
    resize(ctx, xhat, shape(n, image));
    resize(ctx, rstd, shape::vector(n * d.groups));
    scalar* py = data(y);
    scalar* ph = data(xhat);
    scalar* pr = data(rstd);
    const scalar* px = data(x);
    const scalar* pg = data(gamma);
    const scalar* pb = data(beta);
    const bool tangent = rows == 2 * n;
    const std::size_t blocks = host_kernels::group_norm_blocks(d);
    const std::size_t work = (tangent ? 8 : 4) * image / blocks;
    ctx.executor.for_blocks(n * blocks, work, [&](std::size_t begin, std::size_t end) {
      host_kernels::group_norm_forward(begin, end, d, n, tangent, py, ph, pr, ps, px, pg, pb);
    });
  }

  /// group_norm_backward, and with slope not null group_norm_silu_backward.
  template <class SumXhat, class SumDy, class Xhat, class Rstd, class Slope, class Dy, class Gamma>
  static void group_norm_backward_pass(const char* where, context& ctx, tensor* grad_x, SumXhat& sum_xhat,
                                       SumDy& sum_dy, const Xhat& xhat, const Rstd& rstd, const Slope* slope,
                                       const Dy& dy, const Gamma& gamma, const host_kernels::group_norm_dims& d) {
    static_assert(is_operand<Xhat> && is_operand<Rstd> && is_operand<Dy> && is_operand<Gamma>,
                  "group_norm_backward: xhat, rstd, dy and gamma must be tensors or views");
    require_group_norm(where, d);
    const std::size_t image = d.pixels * d.channels, n = shape_of(dy).rows;
    require_shape(where, "dy", shape(n, image), shape_of(dy));
    require_shape(where, "xhat", shape(n, image), shape_of(xhat));
    require_vector(where, "rstd", n * d.groups, shape_of(rstd));
    require_shape(where, "gamma", shape(1, d.channels), shape_of(gamma));
    const scalar* pslope = nullptr;
    if (slope != nullptr) {
      require_shape(where, "slope", shape(n, image), shape_of(*slope));
      pslope = data(*slope);
    }
    const shape sums(n, d.channels);
    require_no_resized_alias(where, sum_xhat, sums, xhat, rstd, dy, gamma);
    require_no_resized_alias(where, sum_dy, sums, xhat, rstd, dy, gamma);
    if (slope != nullptr) {
      require_no_resized_alias(where, sum_xhat, sums, *slope);
      require_no_resized_alias(where, sum_dy, sums, *slope);
    }
    resize(ctx, sum_xhat, sums);
    resize(ctx, sum_dy, sums);
    scalar* pgx = nullptr;
    if (grad_x != nullptr) {
      require_no_resized_alias(where, *grad_x, shape(n, image), xhat, rstd, dy, gamma);
      if (slope != nullptr) require_no_resized_alias(where, *grad_x, shape(n, image), *slope);
      resize(ctx, *grad_x, shape(n, image));
      pgx = data(*grad_x);
    }
    scalar* psx = data(sum_xhat);
    scalar* psd = data(sum_dy);
    const scalar* ph = data(xhat);
    const scalar* pr = data(rstd);
    const scalar* pd = data(dy);
    const scalar* pg = data(gamma);
    const std::size_t blocks = host_kernels::group_norm_blocks(d);
    ctx.executor.for_blocks(n * blocks, (slope != nullptr ? 5 : 4) * image / blocks,
                            [&](std::size_t begin, std::size_t end) {
                              host_kernels::group_norm_backward(begin, end, d, pgx, psx, psd, ph, pr, pslope, pd, pg);
                            });
  }

  /// Raises at the first label of index that is not an integer below table_rows.
  template <class Index>
  static void check_row_labels(const char* where, const Index& index, std::size_t table_rows) {
    const scalar* k = data(index);
    const std::size_t n = shape_of(index).rows;
    for (std::size_t i = 0; i < n; ++i)
      if (!host_kernels::valid_row_label(k[i], table_rows)) detail::throw_row_label_error(where, i, k[i], table_rows);
  }

  template <class Out, class... Args>
  static void require_no_resized_alias(const char* where, const Out& out, const shape& sh, const Args&... args) {
    detail::require_no_resized_alias<tensor>(where, out, shape_of(out), sh, args...);
  }

  template <class First, class... In>
  static shape same_shape([[maybe_unused]] const char* where, const First& first, const In&... rest) {
    const shape sh = shape_of(first);
    (require_shape(where, "input", sh, shape_of(rest)), ...);
    return sh;
  }
  template <class X>
  static const scalar* checked_data(const char* where, const X& x, const shape& sh) {
    static_assert(is_operand<X>, "scale_sum_rows: every second argument must be a tensor or view");
    require_shape(where, "x", sh, shape_of(x));
    return data(x);
  }
  template <class C>
  static host_kernels::row_coefficient<scalar> coefficient(const C& c, std::size_t rows) {
    if constexpr (std::is_arithmetic_v<C>) {
      return {nullptr, static_cast<scalar>(c)};
    } else {
      static_assert(is_operand<C>, "a coefficient is a scalar or a [B, 1] tensor or view");
      require_vector("scale_sum_rows", "coefficient", rows, shape_of(c));
      return {data(c), scalar(0)};
    }
  }
};

}  // namespace ayf
