// ayf/nn/conv.hpp: channels-last images [B, H*W*C] and the 2-D convolution (k x k, stride 1, zero
// padding k / 2) as im2col (B::gather) + GEMM: y = cols(x) W + b, its JVP on stacked [x; dx] rows
// and its backward (dW = cols^T dy, db = 1^T dy, dx = col2im(dy W^T) via B::gather_sum).
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

#include "ayf/core/backend.hpp"
#include "ayf/core/error.hpp"
#include "ayf/nn/parameters.hpp"

namespace ayf::nn {

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
/// images, per-row statistics, a column of ones). Each grows to the largest size asked of it and is
/// then reused: no allocation once warm. Views of a buffer are valid until it next grows.
template <backend B>
struct workspace {
  typename B::tensor cols{}, image_a{}, image_b{}, image_c{}, rows_a{}, rows_b{}, ones{};
};

namespace detail {

/// The first sh.size() elements of `buffer` viewed as `sh` (the buffer grows when too small).
template <backend B>
typename B::view scratch(typename B::context& ctx, typename B::tensor& buffer, const shape& sh) {
  if (B::shape_of(buffer).size() < sh.size()) B::resize(ctx, buffer, shape(1, sh.size()));
  return B::slice(ctx, buffer, 0, sh);
}

/// A view of n ones shaped `sh` (n = sh.size()): [n, 1] for bias GEMMs, [1, n] for broadcasts.
template <backend B>
typename B::view ones(typename B::context& ctx, workspace<B>& ws, const shape& sh) {
  if (B::shape_of(ws.ones).size() < sh.size()) {
    B::resize(ctx, ws.ones, shape(1, sh.size()));
    B::fill(ctx, ws.ones, typename B::scalar(1));
  }
  return B::slice(ctx, ws.ones, 0, sh);
}

/// Division by a fixed divisor d >= 1 as a multiply and a shift: with l = ceil(log2 d), s = 31 + l
/// and m = ceil(2^s / d), floor(n m / 2^s) = floor(n / d) for every 0 <= n < 2^31 (Granlund and
/// Montgomery; Hacker's Delight 10-9); larger n (or d > 2^31) use the hardware division. The index
/// maps below divide every element's index several times; this keeps them off the slow 64-bit divide.
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

}  // namespace detail

/// y = conv_k(x; W) + b: W is [k*k*C_in, C_out] (row = tap-major, channel-minor, as im2col), b is
/// [1, C_out]. With stacked rows [x; dx] and primal_rows = B, the tangent rows get dy = conv_k(dx; W)
/// (the bias only on the primal rows): one GEMM for both.
template <backend B>
class conv2d {
public:
  using tensor = typename B::tensor;
  using context = typename B::context;
  using scalar = typename B::scalar;

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
  [[nodiscard]] std::size_t kernel() const { return m_kernel; }
  [[nodiscard]] std::size_t weight_block() const { return m_weight; }
  [[nodiscard]] std::size_t bias_block() const { return m_bias; }
  [[nodiscard]] std::size_t fan_in() const { return m_kernel * m_kernel * m_in.channels; }

  /// y = conv(x) (+ y when `accumulate`), the bias added to rows [0, primal_rows).
  /// x: [R, H*W*C_in]; y: [R, H*W*C_out].
  void forward(context& ctx, parameter_set<B>& params, const tensor& x, tensor& y, workspace<B>& ws,
               std::size_t primal_rows, bool accumulate = false) const {
    const std::size_t rows = B::shape_of(x).rows, p = m_in.pixels();
    require_shape("conv2d::forward", "x", shape(rows, m_in.size()), B::shape_of(x));
    require(primal_rows <= rows, "conv2d::forward", "primal_rows", "at most the rows of x", primal_rows);
    if (accumulate) {
      require_shape("conv2d::forward", "y", shape(rows, m_out.size()), B::shape_of(y));
    } else {
      B::resize(ctx, y, shape(rows, m_out.size()));
    }
    const scalar beta = accumulate ? scalar(1) : scalar(0);
    auto y_pixels = B::slice(ctx, y, 0, shape(rows * p, m_out.channels));
    if (m_kernel == 1) {
      B::gemm(ctx, transpose::no, transpose::no, scalar(1), B::slice(ctx, x, 0, shape(rows * p, m_in.channels)),
              params.value(ctx, m_weight), beta, y_pixels);
    } else {
      auto cols = columns(ctx, x, rows, ws);
      B::gemm(ctx, transpose::no, transpose::no, scalar(1), cols, params.value(ctx, m_weight), beta, y_pixels);
    }
    B::gemm(ctx, transpose::no, transpose::no, scalar(1), detail::ones<B>(ctx, ws, shape(primal_rows * p, 1)),
            params.value(ctx, m_bias), scalar(1), B::slice(ctx, y, 0, shape(primal_rows * p, m_out.channels)));
  }

  /// forward with every row primal.
  void forward(context& ctx, parameter_set<B>& params, const tensor& x, tensor& y, workspace<B>& ws) const {
    forward(ctx, params, x, y, ws, B::shape_of(x).rows);
  }

  /// Given dL/dy ([n, H*W*C_out]) at the pass on x (whose first n rows are the primal ones):
  /// dW += cols(x)^T dy, db += 1^T dy, and, when grad_x is given, grad_x = col2im(dy W^T) ([n, H*W*C_in]).
  void backward(context& ctx, parameter_set<B>& params, const tensor& x, const tensor& grad_y, tensor* grad_x,
                workspace<B>& ws) const {
    const std::size_t n = B::shape_of(grad_y).rows, p = m_in.pixels();
    require_shape("conv2d::backward", "grad_y", shape(n, m_out.size()), B::shape_of(grad_y));
    require(B::shape_of(x).rows >= n && B::shape_of(x).cols == m_in.size(), "conv2d::backward", "x",
            "the input of the forward pass", B::shape_of(x));
    const auto dy = B::slice(ctx, grad_y, 0, shape(n * p, m_out.channels));
    B::gemm(ctx, transpose::yes, transpose::no, scalar(1), detail::ones<B>(ctx, ws, shape(n * p, 1)), dy, scalar(1),
            params.gradient(ctx, m_bias));
    if (m_kernel == 1) {
      B::gemm(ctx, transpose::yes, transpose::no, scalar(1), B::slice(ctx, x, 0, shape(n * p, m_in.channels)), dy,
              scalar(1), params.gradient(ctx, m_weight));
      if (grad_x != nullptr) {
        B::resize(ctx, *grad_x, shape(n, m_in.size()));
        B::gemm(ctx, transpose::no, transpose::yes, scalar(1), dy, params.value(ctx, m_weight), scalar(0),
                B::slice(ctx, *grad_x, 0, shape(n * p, m_in.channels)));
      }
      return;
    }
    auto cols = columns(ctx, x, n, ws);
    B::gemm(ctx, transpose::yes, transpose::no, scalar(1), cols, dy, scalar(1), params.gradient(ctx, m_weight));
    if (grad_x != nullptr) {
      // dcols = dy W^T reuses the column buffer; dx = col2im(dcols).
      B::gemm(ctx, transpose::no, transpose::yes, scalar(1), dy, params.value(ctx, m_weight), scalar(0), cols);
      const auto k = static_cast<std::int64_t>(m_kernel);
      B::gather_sum(ctx, *grad_x, shape(n, m_in.size()), cols, col2im(), k * k,
                    static_cast<std::int64_t>(m_in.channels));
    }
  }

private:
  /// im2col of the first `rows` rows of x into the workspace: [rows*H*W, k*k*C_in].
  typename B::view columns(context& ctx, const tensor& x, std::size_t rows, workspace<B>& ws) const {
    const shape sh(rows * m_in.pixels(), fan_in());
    auto cols = detail::scratch<B>(ctx, ws.cols, sh);
    B::gather(ctx, cols, sh, x,
              detail::im2col_map(static_cast<std::int64_t>(m_in.height), static_cast<std::int64_t>(m_in.width),
                                 static_cast<std::int64_t>(m_kernel)),
              static_cast<std::int64_t>(m_in.channels));
    return cols;
  }
  [[nodiscard]] detail::col2im_map col2im() const {
    return detail::col2im_map(static_cast<std::int64_t>(m_in.height), static_cast<std::int64_t>(m_in.width),
                              static_cast<std::int64_t>(m_kernel));
  }

  image_shape m_in{}, m_out{};
  std::size_t m_kernel = 1;
  std::size_t m_weight = 0, m_bias = 0;
};

}  // namespace ayf::nn
