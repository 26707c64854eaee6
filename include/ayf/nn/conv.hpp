// ayf/nn/conv.hpp: channels-last images [B, H*W*C] and the 2-D convolution (k x k, stride 1, zero
// padding k / 2) as im2col (B::gather) + GEMM: y = cols(x) W + b, its JVP on stacked [x; dx] rows
// and its backward (dW = cols^T dy, db = column sums of dy, dx = col2im(dy W^T) via B::gather_sum).
// The host backends run it tiled (B::stencil_gemm*: column tiles in cache, dx = cols(dy) W' with
// the flipped weights) or with the full column matrix (B::im2col / B::col2im); see conv_path.
#pragma once

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <string>

#include "ayf/core/backend.hpp"
#include "ayf/core/error.hpp"
#include "ayf/core/host_kernels.hpp"
#include "ayf/nn/layer.hpp"

namespace ayf::nn {

namespace detail {
/// Per-(sample, channel) values [R, C] broadcast over the P pixels of a [R, P*C] image, over runs of
/// C channels: pixel block q of sample q / P reads block q / P.
struct sample_channel_map {
  fast_divisor by_p;
  explicit sample_channel_map(std::int64_t p) : by_p(p) {}
  AYF_HOST_DEVICE std::int64_t operator()(std::int64_t q) const { return by_p.div(q); }
};

/// im2col over channel runs: block q = (pixel (b, y, x), tap (ky, kx)) of the [R*H*W, k*k*C] column
/// matrix, tap-major, is the C channels of pixel (y + ky - k/2, x + kx - k/2); -1 (zeros) outside.
struct im2col_map {
  std::int64_t h, w, k;
  fast_divisor by_taps, by_w, by_h, by_k;
  im2col_map(std::int64_t h_, std::int64_t w_, std::int64_t k_)
      : h(h_), w(w_), k(k_), by_taps(k_ * k_), by_w(w_), by_h(h_), by_k(k_) {}
  AYF_HOST_DEVICE std::int64_t operator()(std::int64_t q) const {
    const std::int64_t pixel = by_taps.div(q), tap = q - pixel * k * k;
    const std::int64_t row = by_w.div(pixel), x = pixel - row * w;
    const std::int64_t b = by_h.div(row), y = row - b * h;
    const std::int64_t ky = by_k.div(tap), kx = tap - ky * k;
    const std::int64_t ys = y + ky - k / 2, xs = x + kx - k / 2;
    if (ys < 0 || ys >= h || xs < 0 || xs >= w) return -1;
    return (b * h + ys) * w + xs;
  }
};

/// col2im, the adjoint of im2col as a gather over channel runs: pixel (b, y, x) sums the k*k column
/// blocks that read it, tap r = (ky, kx) at output pixel (y - ky + k/2, x - kx + k/2).
struct col2im_map {
  std::int64_t h, w, k;
  fast_divisor by_w, by_h, by_k;
  col2im_map(std::int64_t h_, std::int64_t w_, std::int64_t k_) : h(h_), w(w_), k(k_), by_w(w_), by_h(h_), by_k(k_) {}
  AYF_HOST_DEVICE std::int64_t operator()(std::int64_t pixel, std::int64_t r) const {
    const std::int64_t row = by_w.div(pixel), x = pixel - row * w;
    const std::int64_t b = by_h.div(row), y = row - b * h;
    const std::int64_t ky = by_k.div(r), kx = r - ky * k;
    const std::int64_t yo = y - ky + k / 2, xo = x - kx + k / 2;
    if (yo < 0 || yo >= h || xo < 0 || xo >= w) return -1;
    return ((b * h + yo) * w + xo) * (k * k) + r;
  }
};

/// Whether B has the contiguous stencil primitives im2col / col2im (host backends).
template <class B>
concept has_stencil_primitives =
    requires(typename B::context& ctx, typename B::view v, const typename B::tensor& x, host_kernels::stencil_dims d) {
      B::im2col(ctx, v, x, std::size_t{1}, d);
      B::col2im(ctx, v, v, std::size_t{1}, d, true);
    };

/// Whether B has the tiled stencil products stencil_gemm / _adjoint / _weights (host backends).
template <class B>
concept has_tiled_stencil = requires(typename B::context& ctx, typename B::view v, const typename B::tensor& x,
                                     typename B::tensor& scratch, host_kernels::stencil_dims d) {
  B::stencil_gemm(ctx, v, x, std::size_t{1}, d, v, true, scratch);
  B::stencil_gemm(ctx, v, x, std::size_t{1}, d, v, v, true, scratch);
  B::stencil_gemm_adjoint(ctx, v, x, std::size_t{1}, d, v, true, scratch);
  B::stencil_gemm_weights(ctx, v, x, x, std::size_t{1}, d, scratch);
  B::stencil_gemm_weights(ctx, v, v, x, x, std::size_t{1}, d, scratch);
};

}  // namespace detail

/// How conv2d (k > 1) computes on a backend:
///   tiled   the pixels in tiles whose columns stay in cache (B::stencil_gemm, _adjoint, _weights);
///           dx = cols(dy) W' with the flipped weights, dW summed over tiles in fixed chunks;
///   im2col  the full [R*H*W, k*k*C] column matrix (B::im2col) and one GEMM; dx by B::col2im;
///   gather  the same with B::gather / B::gather_sum and the index maps (every backend: the reference).
/// A layer asks for one; a backend without it runs the next one down (tiled -> im2col -> gather).
enum class conv_path { tiled, im2col, gather };

/// y = conv_k(x; W) + b: W is [k*k*C_in, C_out] (row = tap-major, channel-minor, as im2col), b is
/// [1, C_out]. With stacked rows [x; dx] and primal_rows = B, the tangent rows get dy = conv_k(dx; W)
/// (the bias only on the primal rows): one GEMM for both.
template <backend B>
class conv2d {
public:
  using tensor = typename B::tensor;
  using context = typename B::context;
  using scalar = typename B::scalar;
  using state = no_state;

  conv2d() = default;
  /// Appends the blocks "<name>.w" and "<name>.b" to `layout`.
  conv2d(parameter_layout& layout, const std::string& name, image_shape input, std::size_t out_channels,
         std::size_t kernel)
      : m_in(input), m_out{input.height, input.width, out_channels}, m_kernel(kernel) {
    require(kernel % 2 == 1, "conv2d", "kernel", "an odd size (1, 3, ...)", kernel);
    require(input.height >= 1 && input.width >= 1 && input.channels >= 1, "conv2d", "input",
            "a non-empty image", input.size());
    require(out_channels >= 1, "conv2d", "out_channels", "at least 1", out_channels);
    m_weight = layout.add(name + ".w", kernel * kernel * input.channels, out_channels);
    m_bias = layout.add(name + ".b", 1, out_channels);
  }

  [[nodiscard]] const image_shape& input() const { return m_in; }
  [[nodiscard]] const image_shape& output() const { return m_out; }
  [[nodiscard]] std::size_t input_size() const { return m_in.size(); }
  [[nodiscard]] std::size_t output_size() const { return m_out.size(); }
  [[nodiscard]] std::size_t kernel() const { return m_kernel; }
  [[nodiscard]] std::size_t weight_block() const { return m_weight; }
  [[nodiscard]] std::size_t bias_block() const { return m_bias; }
  [[nodiscard]] std::size_t fan_in() const { return m_kernel * m_kernel * m_in.channels; }
  /// Asks for a conv_path (default: tiled); path() is the one that runs on B (the fast paths are
  /// tested against the gather reference).
  void use_path(conv_path p) { m_path = p; }
  [[nodiscard]] conv_path path() const {
    if (m_path == conv_path::tiled && detail::has_tiled_stencil<B>) return conv_path::tiled;
    if (m_path != conv_path::gather && detail::has_stencil_primitives<B>) return conv_path::im2col;
    return conv_path::gather;
  }

  /// W ~ N(0, gain^2 / fan_in), b = 0.
  void initialise(context& ctx, parameter_set<B>& params, double gain = 1.0) const {
    detail::normal_init<B>(ctx, params, m_weight, gain / std::sqrt(static_cast<double>(fan_in())));
    B::fill(ctx, params.value(ctx, m_bias), scalar(0));
  }

  /// y = conv(x) (+ y when `accumulate`), the bias added to rows [0, n) (the tangent rule is the
  /// convolution without bias). x: [R, H*W*C_in]; y: [R, H*W*C_out]. With `sample_bias` ([R, C_out],
  /// stacked like x), its row r is added to every pixel of row r as well (the residual block's
  /// embedding projection; its tangent rows are the tangent's). The tiled path adds both in its band
  /// loop (one row bias, b + sample_bias on rows [0, n)); the others after the products.
  void forward(context& ctx, parameter_set<B>& params, const tensor& x, tensor& y, state& /*st*/, workspace<B>& ws,
               std::size_t n, bool accumulate = false, const tensor* sample_bias = nullptr) const {
    detail::require_stacked<B>("conv2d::forward", x, m_in.size(), n);
    const std::size_t rows = B::shape_of(x).rows, p = m_in.pixels(), c = m_out.channels;
    if (sample_bias != nullptr) require_shape("conv2d::forward", "sample_bias", shape(rows, c), B::shape_of(*sample_bias));
    if (accumulate) {
      require_shape("conv2d::forward", "y", shape(rows, m_out.size()), B::shape_of(y));
    } else {
      B::resize(ctx, y, shape(rows, m_out.size()));
    }
    const scalar beta = accumulate ? scalar(1) : scalar(0);
    auto y_pixels = B::slice(ctx, y, 0, shape(rows * p, c));
    if (m_kernel == 1) {
      B::gemm(ctx, transpose::no, transpose::no, scalar(1), B::slice(ctx, x, 0, shape(rows * p, m_in.channels)),
              params.value(ctx, m_weight), beta, y_pixels);
    } else if (tiled_forward(ctx, params, x, y, rows, n, sample_bias, ws, accumulate)) {
      return;
    } else {
      auto cols = columns(ctx, x, rows, ws);
      B::gemm(ctx, transpose::no, transpose::no, scalar(1), cols, params.value(ctx, m_weight), beta, y_pixels);
    }
    B::broadcast_add(ctx, detail::rows_of<B>(ctx, y, 0, n), 1.0, params.value(ctx, m_bias));
    if (sample_bias != nullptr) {
      auto spread = detail::scratch<B>(ctx, ws.image_a, shape(rows, p * c));
      B::gather(ctx, spread, shape(rows, p * c), *sample_bias, detail::sample_channel_map(static_cast<std::int64_t>(p)),
                static_cast<std::int64_t>(c));
      B::scale_sum_rows(ctx, y, 1.0, y, 1.0, spread);
    }
  }

  /// Given dL/dy ([n, H*W*C_out]) at the pass on x (whose first n rows are the primal ones):
  /// dW += cols(x)^T dy, db += the sum of dy over pixels, and grad_x = col2im(dy W^T) ([n, H*W*C_in];
  /// added to grad_x when `accumulate_input`).
  void backward(context& ctx, parameter_set<B>& params, const tensor& x, const state& /*st*/, const tensor& grad_y,
                tensor* grad_x, workspace<B>& ws, gradient_mode mode, bool accumulate_input = false) const {
    const std::size_t n = B::shape_of(grad_y).rows, p = m_in.pixels();
    require_shape("conv2d::backward", "grad_y", shape(n, m_out.size()), B::shape_of(grad_y));
    require(B::shape_of(x).rows >= n && B::shape_of(x).cols == m_in.size(), "conv2d::backward", "x",
            "the input of the forward pass", B::shape_of(x));
    const bool inputs = wants_inputs(mode) && grad_x != nullptr;
    if (inputs && accumulate_input) require_shape("conv2d::backward", "grad_x", shape(n, m_in.size()), B::shape_of(*grad_x));
    const auto dy = B::slice(ctx, grad_y, 0, shape(n * p, m_out.channels));
    const scalar beta_x = accumulate_input ? scalar(1) : scalar(0);
    if (m_kernel == 1) {
      if (wants_parameters(mode)) {
        B::sum_columns(ctx, params.gradient(ctx, m_bias), 1.0, grad_y);
        B::gemm(ctx, transpose::yes, transpose::no, scalar(1), B::slice(ctx, x, 0, shape(n * p, m_in.channels)), dy,
                scalar(1), params.gradient(ctx, m_weight));
      }
      if (inputs) {
        B::resize(ctx, *grad_x, shape(n, m_in.size()));
        B::gemm(ctx, transpose::no, transpose::yes, scalar(1), dy, params.value(ctx, m_weight), beta_x,
                B::slice(ctx, *grad_x, 0, shape(n * p, m_in.channels)));
      }
      return;
    }
    if (wants_parameters(mode) && !tiled_weight_gradient(ctx, params, x, grad_y, n, ws)) {
      B::sum_columns(ctx, params.gradient(ctx, m_bias), 1.0, grad_y);
      auto cols = columns(ctx, x, n, ws);
      B::gemm(ctx, transpose::yes, transpose::no, scalar(1), cols, dy, scalar(1), params.gradient(ctx, m_weight));
    }
    if (inputs) {
      if (tiled_input_gradient(ctx, params, grad_y, *grad_x, n, ws, accumulate_input)) return;
      // dcols = dy W^T in the column buffer; dx = col2im(dcols).
      auto cols = detail::scratch<B>(ctx, ws.cols, shape(n * p, fan_in()));
      B::gemm(ctx, transpose::no, transpose::yes, scalar(1), dy, params.value(ctx, m_weight), scalar(0), cols);
      if constexpr (detail::has_stencil_primitives<B>) {
        if (path() == conv_path::im2col) {
          if (!accumulate_input) B::resize(ctx, *grad_x, shape(n, m_in.size()));
          B::col2im(ctx, *grad_x, cols, n, stencil(), accumulate_input);
          return;
        }
      }
      const auto k = static_cast<std::int64_t>(m_kernel);
      if (accumulate_input) {
        auto staged = detail::scratch<B>(ctx, ws.image_a, shape(n, m_in.size()));
        B::gather_sum(ctx, staged, shape(n, m_in.size()), cols, col2im(), k * k, static_cast<std::int64_t>(m_in.channels));
        B::scale_sum_rows(ctx, *grad_x, 1.0, *grad_x, 1.0, staged);
      } else {
        B::gather_sum(ctx, *grad_x, shape(n, m_in.size()), cols, col2im(), k * k,
                      static_cast<std::int64_t>(m_in.channels));
      }
    }
  }

private:
  /// The tiled path (false, nothing done, where it does not run): y = cols(x) W (+ y) over rows
  /// [0, rows); dW += cols(x)^T dy and db += the sum of dy over pixels (one pass over dy's bands);
  /// dx = cols(dy) W' (+ dx). Scratch: the column buffer ws.cols.
  bool tiled_forward(context& ctx, parameter_set<B>& params, const tensor& x, tensor& y, std::size_t rows,
                     std::size_t n, const tensor* sample_bias, workspace<B>& ws, bool accumulate) const {
    if constexpr (detail::has_tiled_stencil<B>) {
      if (path() == conv_path::tiled) {
        // The row bias: b on rows [0, n), 0 on the tangent rows, plus sample_bias.
        auto row_bias = detail::scratch<B>(ctx, ws.rows_a, shape(rows, m_out.channels));
        B::fill(ctx, row_bias, scalar(0));
        B::broadcast_add(ctx, B::slice(ctx, ws.rows_a, 0, shape(n, m_out.channels)), 1.0, params.value(ctx, m_bias));
        if (sample_bias != nullptr) B::scale_sum_rows(ctx, row_bias, 1.0, row_bias, 1.0, *sample_bias);
        B::stencil_gemm(ctx, y, x, rows, stencil(), params.value(ctx, m_weight), row_bias, accumulate, ws.cols);
        return true;
      }
    }
    return false;
  }
  bool tiled_weight_gradient(context& ctx, parameter_set<B>& params, const tensor& x, const tensor& grad_y,
                             std::size_t n, workspace<B>& ws) const {
    if constexpr (detail::has_tiled_stencil<B>) {
      if (path() == conv_path::tiled) {
        B::stencil_gemm_weights(ctx, params.gradient(ctx, m_weight), params.gradient(ctx, m_bias), x, grad_y, n,
                                stencil(), ws.cols);
        return true;
      }
    }
    return false;
  }
  bool tiled_input_gradient(context& ctx, parameter_set<B>& params, const tensor& grad_y, tensor& grad_x,
                            std::size_t n, workspace<B>& ws, bool accumulate) const {
    if constexpr (detail::has_tiled_stencil<B>) {
      if (path() == conv_path::tiled) {
        B::stencil_gemm_adjoint(ctx, grad_x, grad_y, n, stencil(), params.value(ctx, m_weight), accumulate, ws.cols);
        return true;
      }
    }
    return false;
  }

  /// im2col of the first `rows` rows of x into the workspace: [rows*H*W, k*k*C_in].
  typename B::view columns(context& ctx, const tensor& x, std::size_t rows, workspace<B>& ws) const {
    const shape sh(rows * m_in.pixels(), fan_in());
    auto cols = detail::scratch<B>(ctx, ws.cols, sh);
    if constexpr (detail::has_stencil_primitives<B>) {
      if (path() != conv_path::gather) {
        B::im2col(ctx, cols, x, rows, stencil());
        return cols;
      }
    }
    B::gather(ctx, cols, sh, x,
              detail::im2col_map(static_cast<std::int64_t>(m_in.height), static_cast<std::int64_t>(m_in.width),
                                 static_cast<std::int64_t>(m_kernel)),
              static_cast<std::int64_t>(m_in.channels));
    return cols;
  }
  [[nodiscard]] host_kernels::stencil_dims stencil() const {
    return {m_in.height, m_in.width, m_in.channels, m_kernel};
  }
  [[nodiscard]] detail::col2im_map col2im() const {
    return detail::col2im_map(static_cast<std::int64_t>(m_in.height), static_cast<std::int64_t>(m_in.width),
                              static_cast<std::int64_t>(m_kernel));
  }

  image_shape m_in{}, m_out{};
  std::size_t m_kernel = 1;
  std::size_t m_weight = 0, m_bias = 0;
  conv_path m_path = conv_path::tiled;
};

}  // namespace ayf::nn
