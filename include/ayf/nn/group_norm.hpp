// ayf/nn/group_norm.hpp: GroupNorm on channels-last images, y = gamma * (x - mu) / sqrt(var + eps) + beta
// with mu, var per (sample, group of C/G channels), its JVP and its backward. Both use the same
// symmetric Jacobian of the normalisation: J v = rstd (v - mean(v) - xhat mean(xhat v)).
// Backends with GroupNorm primitives on the channels-last layout (B::group_norm_forward /
// B::group_norm_backward, the host backends) use those; the generic path permutes the image into
// group rows with B::gather and stays as the reference (use_reference_path).
// group_norm_silu is GroupNorm followed by SiLU, a = silu(GN(x)), in the same passes where the
// backend has the fused primitives (B::group_norm_silu_forward / _backward), else the composition.
#pragma once

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <string>

#include "ayf/core/host_kernels.hpp"
#include "ayf/nn/activation.hpp"
#include "ayf/nn/conv.hpp"

namespace ayf::nn {

namespace detail {

/// Image [R, P*C] to group rows [R*G, M] (M = P*C/G) over runs of C/G channels: block (b, g, pixel)
/// of the group rows is the C/G channels of group g at that pixel of sample b. `offset` (in blocks)
/// skips leading rows (the primal rows of a stacked input).
struct image_to_group_map {
  std::int64_t p, g, offset;
  fast_divisor by_p, by_g;
  image_to_group_map(std::int64_t p_, std::int64_t g_, std::int64_t offset_)
      : p(p_), g(g_), offset(offset_), by_p(p_), by_g(g_) {}
  AYF_HOST_DEVICE std::int64_t operator()(std::int64_t i) const {
    const std::int64_t row = by_p.div(i), pixel = i - row * p;
    const std::int64_t b = by_g.div(row), group = row - b * g;
    return offset + (b * p + pixel) * g + group;
  }
};

/// The inverse, over the same runs: block (b, pixel, g) of the image is block (b, g, pixel) of the rows.
struct group_to_image_map {
  std::int64_t p, g;
  fast_divisor by_pg, by_g;
  group_to_image_map(std::int64_t p_, std::int64_t g_) : p(p_), g(g_), by_pg(p_ * g_), by_g(g_) {}
  AYF_HOST_DEVICE std::int64_t operator()(std::int64_t q) const {
    const std::int64_t b = by_pg.div(q), rest = q - b * p * g;
    const std::int64_t pixel = by_g.div(rest), group = rest - pixel * g;
    return (b * g + group) * p + pixel;
  }
};

/// A [1, C] row broadcast to every pixel of every sample, as one run of C channels per pixel.
struct channel_broadcast_map {
  AYF_HOST_DEVICE std::int64_t operator()(std::int64_t) const { return 0; }
};

struct scaled_value {
  double a;
  template <class T>
  AYF_HOST_DEVICE T operator()(T x) const { return T(a) * x; }
};
struct scaled_square {
  double a;
  template <class T>
  AYF_HOST_DEVICE T operator()(T x) const { return T(a) * x * x; }
};
struct scaled_product {
  double a;
  template <class T>
  AYF_HOST_DEVICE T operator()(T x, T y) const { return T(a) * x * y; }
};
/// rstd = 1 / sqrt(var + eps).
struct inverse_sqrt_plus {
  double eps;
  template <class T>
  AYF_HOST_DEVICE T operator()(T var) const {
    using std::sqrt;
    return T(1) / sqrt(var + T(eps));
  }
};

/// Whether B has GroupNorm primitives on the channels-last layout (host backends).
template <class B>
concept has_group_norm_primitives =
    requires(typename B::context& ctx, typename B::tensor& t, typename B::view v, const host_kernels::group_norm_dims& d) {
      B::group_norm_forward(ctx, t, t, t, t, v, v, std::size_t{1}, d);
      B::group_norm_backward(ctx, &t, v, v, t, t, t, v, d);
    };

/// Whether B has GroupNorm followed by SiLU as fused primitives (host backends).
template <class B>
concept has_group_norm_silu_primitives =
    requires(typename B::context& ctx, typename B::tensor& t, typename B::view v, const host_kernels::group_norm_dims& d) {
      B::group_norm_silu_forward(ctx, t, t, t, t, v, v, v, std::size_t{1}, d);
      B::group_norm_silu_backward(ctx, &t, v, v, t, t, t, v, v, d);
    };

}  // namespace detail

/// What backward needs of one GroupNorm pass: the normalised primal xhat, in the image layout
/// [B, H*W*C] (image_layout, the primitives' path) or in group rows [B*G, M] (the gather path), and
/// rstd = 1 / sqrt(var + eps) per (sample, group), [B*G, 1] sample-major in both.
template <backend B>
struct group_norm_state {
  std::size_t batch = 0;
  bool image_layout = false;
  typename B::tensor xhat{}, rstd{};
};

template <backend B>
class group_norm_silu;

/// GroupNorm with G groups over a channels-last image; gamma ("<name>.gamma", initialised to 1 by
/// `initialise`) and beta ("<name>.beta", 0) are [1, C].
template <backend B>
class group_norm {
public:
  using tensor = typename B::tensor;
  using context = typename B::context;
  using scalar = typename B::scalar;
  using state = group_norm_state<B>;

  group_norm() = default;
  group_norm(parameter_layout& layout, const std::string& name, image_shape image, std::size_t groups,
             double eps = 1e-5)
      : m_image(image), m_groups(groups), m_eps(eps) {
    require(image.size() >= 1, "group_norm", "image", "a non-empty image", image.size());
    require(groups >= 1 && image.channels % groups == 0, "group_norm", "groups",
            ayf::detail::message("a divisor of the channel count ", image.channels), groups);
    require(eps > 0, "group_norm", "eps", "a positive value", eps);
    m_gamma = layout.add(name + ".gamma", 1, image.channels);
    m_beta = layout.add(name + ".beta", 1, image.channels);
  }

  [[nodiscard]] const image_shape& image() const { return m_image; }
  [[nodiscard]] std::size_t groups() const { return m_groups; }
  [[nodiscard]] std::size_t input_size() const { return m_image.size(); }
  [[nodiscard]] std::size_t output_size() const { return m_image.size(); }
  [[nodiscard]] std::size_t gamma_block() const { return m_gamma; }
  [[nodiscard]] std::size_t beta_block() const { return m_beta; }
  /// With `on`, the permutations into group rows (B::gather) and the generic reductions even where
  /// the backend has the GroupNorm primitives (the reference the fast path is tested against).
  /// backward follows the layout of its state, i.e. the path of the forward pass that filled it.
  void use_reference_path(bool on) { m_reference = on; }
  [[nodiscard]] bool reference_path() const { return m_reference; }

  /// gamma = 1, beta = 0.
  void initialise(context& ctx, parameter_set<B>& params) const {
    B::fill(ctx, params.value(ctx, m_gamma), scalar(1));
    B::fill(ctx, params.value(ctx, m_beta), scalar(0));
  }

  /// y = GN(x) on rows [0, n); with stacked rows [x; dx] (R = 2n) also dy = gamma J dx.
  /// x, y: [R, H*W*C].
  void forward(context& ctx, parameter_set<B>& params, const tensor& x, tensor& y, state& st, workspace<B>& ws,
               std::size_t primal_rows) const {
    const std::size_t rows = B::shape_of(x).rows, n = primal_rows, pc = m_image.size();
    require_input("group_norm::forward", x, n);
    const std::size_t g = m_groups, m = pc / g, c = m_image.channels;
    st.batch = n;
    if constexpr (detail::has_group_norm_primitives<B>) {
      if (!m_reference) {
        primitive_forward(ctx, params, x, y, st, n, nullptr);
        return;
      }
    }
    st.image_layout = false;
    // xhat = (x - mu) rstd in group rows: mu = mean, var = mean (x - mu)^2.
    B::gather(ctx, st.xhat, shape(n * g, m), x, to_group(0), run());
    auto mean = detail::scratch<B>(ctx, ws.rows_a, shape(n * g, 1));
    B::reduce_rows(ctx, mean, detail::scaled_value{-1.0 / static_cast<double>(m)}, st.xhat);
    B::broadcast_add(ctx, st.xhat, 1.0, mean);
    B::reduce_rows(ctx, st.rstd, detail::scaled_square{1.0 / static_cast<double>(m)}, st.xhat);
    B::transform(ctx, st.rstd, detail::inverse_sqrt_plus{m_eps}, st.rstd);
    B::scale_sum_rows(ctx, st.xhat, st.rstd, st.xhat);
    B::resize(ctx, y, shape(rows, pc));
    B::gather(ctx, B::slice(ctx, y, 0, shape(n, pc)), shape(n, pc), st.xhat, to_image(), run());
    if (rows == 2 * n) {
      // dxhat = J dx, in group rows, then back to the image layout.
      auto v = detail::scratch<B>(ctx, ws.image_a, shape(n * g, m));
      B::gather(ctx, v, shape(n * g, m), x, to_group(static_cast<std::int64_t>(n * pc)), run());
      project(ctx, st, v, ws);
      B::gather(ctx, B::slice(ctx, y, n * pc, shape(n, pc)), shape(n, pc), v, to_image(), run());
    }
    // y = gamma xhat + beta (beta on the primal rows only).
    auto gamma = detail::scratch<B>(ctx, ws.image_b, shape(rows, pc));
    B::gather(ctx, gamma, shape(rows, pc), params.value(ctx, m_gamma),
              detail::channel_broadcast_map{}, static_cast<std::int64_t>(c));
    B::transform(ctx, y, detail::product{}, y, gamma);
    B::broadcast_add(ctx, detail::rows_of<B>(ctx, y, 0, n), 1.0, params.value(ctx, m_beta));
  }

  /// Given dL/dy ([n, H*W*C]): dgamma += sum dy xhat, dbeta += sum dy (per channel), and
  /// grad_x = J^T (gamma dy) = J (gamma dy) (J is symmetric).
  void backward(context& ctx, parameter_set<B>& params, const tensor& /*x*/, const state& st, const tensor& grad_y,
                tensor* grad_x, workspace<B>& ws, gradient_mode mode) const {
    const std::size_t n = st.batch, pc = m_image.size(), g = m_groups, m = pc / g, c = m_image.channels;
    require_shape("group_norm::backward", "grad_y", shape(n, pc), B::shape_of(grad_y));
    if constexpr (detail::has_group_norm_primitives<B>) {
      if (st.image_layout) {
        primitive_backward(ctx, params, st, grad_y, grad_x, ws, mode, nullptr);
        return;
      }
    }
    if (wants_parameters(mode)) {
      auto xhat = detail::scratch<B>(ctx, ws.image_a, shape(n, pc));
      B::gather(ctx, xhat, shape(n, pc), st.xhat, to_image(), run());
      B::transform(ctx, xhat, detail::product{}, grad_y, xhat);
      B::sum_columns(ctx, params.gradient(ctx, m_gamma), 1.0, xhat);
      B::sum_columns(ctx, params.gradient(ctx, m_beta), 1.0, grad_y);
    }
    if (!wants_inputs(mode) || grad_x == nullptr) return;
    // gamma dy in the image layout, then in group rows, projected, and back.
    auto scaled = detail::scratch<B>(ctx, ws.image_a, shape(n, pc));
    B::gather(ctx, scaled, shape(n, pc), params.value(ctx, m_gamma),
              detail::channel_broadcast_map{}, static_cast<std::int64_t>(c));
    B::transform(ctx, scaled, detail::product{}, grad_y, scaled);
    auto v = detail::scratch<B>(ctx, ws.image_b, shape(n * g, m));
    B::gather(ctx, v, shape(n * g, m), scaled, to_group(0), run());
    project(ctx, st, v, ws);
    B::gather(ctx, *grad_x, shape(n, pc), v, to_image(), run());
  }

  /// The saved xhat of `st` in the image layout [B, H*W*C], whichever path filled it.
  void normalised(context& ctx, const state& st, tensor& out) const {
    const shape sh(st.batch, m_image.size());
    if (st.image_layout) {
      B::copy(ctx, st.xhat, out);
    } else {
      B::gather(ctx, out, sh, st.xhat, to_image(), run());
    }
  }

private:
  friend class group_norm_silu<B>;

  [[nodiscard]] host_kernels::group_norm_dims dims() const {
    return {m_image.pixels(), m_image.channels, m_groups, m_eps};
  }

  /// x is [n, H*W*C] or stacked [2n, H*W*C].
  void require_input(const char* where, const tensor& x, std::size_t n) const {
    const std::size_t rows = B::shape_of(x).rows;
    require_shape(where, "x", shape(rows, m_image.size()), B::shape_of(x));
    require(rows == n || rows == 2 * n, where, "primal_rows", "the rows of x or half of them", n);
  }

  /// The host primitives' forward into `st` (the image layout); with `slope`, SiLU follows in the
  /// same passes (B::group_norm_silu_forward, group_norm_silu's fused path) and *slope = silu'(z).
  void primitive_forward(context& ctx, parameter_set<B>& params, const tensor& x, tensor& y, state& st, std::size_t n,
                         tensor* slope) const {
    if (slope == nullptr) {
      B::group_norm_forward(ctx, y, st.xhat, st.rstd, x, params.value(ctx, m_gamma), params.value(ctx, m_beta), n,
                            dims());
    } else if constexpr (detail::has_group_norm_silu_primitives<B>) {
      B::group_norm_silu_forward(ctx, y, st.xhat, st.rstd, *slope, x, params.value(ctx, m_gamma),
                                 params.value(ctx, m_beta), n, dims());
    }
    st.batch = n;
    st.image_layout = true;
  }

  /// The primitives' backward of a state in the image layout: per (sample, channel) sums of dy xhat
  /// and dy, their column sums dgamma and dbeta (mode), and grad_x; with `slope`, grad_y is dL/da of
  /// group_norm_silu and dy = slope grad_y.
  void primitive_backward(context& ctx, parameter_set<B>& params, const state& st, const tensor& grad_y,
                          tensor* grad_x, workspace<B>& ws, gradient_mode mode, const tensor* slope) const {
    const std::size_t n = st.batch, c = m_image.channels;
    auto sum_xhat = detail::scratch<B>(ctx, ws.rows_a, shape(n, c));
    auto sum_dy = detail::scratch<B>(ctx, ws.rows_b, shape(n, c));
    tensor* input_gradient = wants_inputs(mode) ? grad_x : nullptr;
    if (slope == nullptr) {
      B::group_norm_backward(ctx, input_gradient, sum_xhat, sum_dy, st.xhat, st.rstd, grad_y,
                             params.value(ctx, m_gamma), dims());
    } else if constexpr (detail::has_group_norm_silu_primitives<B>) {
      B::group_norm_silu_backward(ctx, input_gradient, sum_xhat, sum_dy, st.xhat, st.rstd, *slope, grad_y,
                                  params.value(ctx, m_gamma), dims());
    }
    if (wants_parameters(mode)) {
      B::sum_columns(ctx, params.gradient(ctx, m_gamma), 1.0, sum_xhat);
      B::sum_columns(ctx, params.gradient(ctx, m_beta), 1.0, sum_dy);
    }
  }

  /// v <- J v = rstd (v - mean(v) - xhat mean(xhat v)) per group row.
  void project(context& ctx, const state& st, const typename B::view& v, workspace<B>& ws) const {
    const std::size_t rows = B::shape_of(st.xhat).rows, m = B::shape_of(st.xhat).cols;
    const double inv_m = 1.0 / static_cast<double>(m);
    auto mean = detail::scratch<B>(ctx, ws.rows_a, shape(rows, 1));
    auto moment = detail::scratch<B>(ctx, ws.rows_b, shape(rows, 1));
    B::reduce_rows(ctx, mean, detail::scaled_value{-inv_m}, v);
    B::reduce_rows(ctx, moment, detail::scaled_product{-inv_m}, v, st.xhat);
    B::scale_sum_rows(ctx, v, 1.0, v, moment, st.xhat);
    B::broadcast_add(ctx, v, 1.0, mean);
    B::scale_sum_rows(ctx, v, st.rstd, v);
  }

  /// `offset` in elements (a multiple of the run length C/G).
  [[nodiscard]] detail::image_to_group_map to_group(std::int64_t offset) const {
    return detail::image_to_group_map(static_cast<std::int64_t>(m_image.pixels()), static_cast<std::int64_t>(m_groups),
                                      offset / run());
  }
  [[nodiscard]] detail::group_to_image_map to_image() const {
    return detail::group_to_image_map(static_cast<std::int64_t>(m_image.pixels()), static_cast<std::int64_t>(m_groups));
  }
  /// The channels of one group at one pixel: the contiguous run every map copies.
  [[nodiscard]] std::int64_t run() const { return static_cast<std::int64_t>(m_image.channels / m_groups); }

  image_shape m_image{};
  std::size_t m_groups = 1;
  double m_eps = 1e-5;
  std::size_t m_gamma = 0, m_beta = 0;
  bool m_reference = false;
};

/// What backward needs of one GroupNorm + SiLU pass: the GroupNorm state and, on the fused path,
/// slope = silu'(z) ([n, P*C], z = GN(x) on the primal rows), or on the composed path z itself.
template <backend B>
struct group_norm_silu_state {
  group_norm_state<B> norm{};
  bool fused = false;
  typename B::tensor slope{}, pre{};
};

/// a = silu(GN(x)) on a channels-last image, with its JVP (da = silu'(z) dz) and backward. The
/// parameters are the GroupNorm's ("<name>.gamma", "<name>.beta"), so it reads the checkpoints of a
/// group_norm followed by an activation. On backends with the fused primitives one pass writes xhat,
/// a and the slope (one exp per value, none in backward); use_reference_path(true) composes
/// group_norm's gather path with the activation layer (the reference the fused path is tested
/// against).
template <backend B>
class group_norm_silu {
public:
  using tensor = typename B::tensor;
  using context = typename B::context;
  using scalar = typename B::scalar;
  using state = group_norm_silu_state<B>;

  group_norm_silu() = default;
  group_norm_silu(parameter_layout& layout, const std::string& name, image_shape image, std::size_t groups,
                  double eps = 1e-5)
      : m_norm(layout, name, image, groups, eps), m_silu(image.size()) {}

  [[nodiscard]] const image_shape& image() const { return m_norm.image(); }
  [[nodiscard]] std::size_t groups() const { return m_norm.groups(); }
  [[nodiscard]] std::size_t input_size() const { return m_norm.input_size(); }
  [[nodiscard]] std::size_t output_size() const { return m_norm.output_size(); }
  [[nodiscard]] const group_norm<B>& norm() const { return m_norm; }
  /// With `on`, GroupNorm's gather path followed by the activation layer, even where the backend has
  /// the fused primitives. backward follows the path of the forward pass that filled its state.
  void use_reference_path(bool on) { m_norm.use_reference_path(on); }
  [[nodiscard]] bool reference_path() const { return m_norm.reference_path(); }

  void initialise(context& ctx, parameter_set<B>& params) const { m_norm.initialise(ctx, params); }

  /// a = silu(GN(x)) on rows [0, n); with stacked rows [x; dx] also da = silu'(z) gamma J dx.
  void forward(context& ctx, parameter_set<B>& params, const tensor& x, tensor& y, state& st, workspace<B>& ws,
               std::size_t primal_rows) const {
    if constexpr (detail::has_group_norm_silu_primitives<B>) {
      if (!m_norm.reference_path()) {
        m_norm.require_input("group_norm_silu::forward", x, primal_rows);
        m_norm.primitive_forward(ctx, params, x, y, st.norm, primal_rows, &st.slope);
        st.fused = true;
        return;
      }
    }
    st.fused = false;
    no_state none;
    m_norm.forward(ctx, params, x, st.pre, st.norm, ws, primal_rows);
    m_silu.forward(ctx, params, st.pre, y, none, ws, primal_rows);
  }

  /// Given dL/da ([n, P*C]): dgamma, dbeta accumulate (mode) and grad_x = J^T (gamma silu'(z) dL/da).
  void backward(context& ctx, parameter_set<B>& params, const tensor& x, const state& st, const tensor& grad_y,
                tensor* grad_x, workspace<B>& ws, gradient_mode mode) const {
    const std::size_t n = st.norm.batch, pc = input_size();
    require_shape("group_norm_silu::backward", "grad_y", shape(n, pc), B::shape_of(grad_y));
    if constexpr (detail::has_group_norm_silu_primitives<B>) {
      if (st.fused) {
        m_norm.primitive_backward(ctx, params, st.norm, grad_y, grad_x, ws, mode, &st.slope);
        return;
      }
    }
    const no_state none;
    m_silu.backward(ctx, params, st.pre, none, grad_y, &m_grad_pre, ws, gradient_mode::inputs);
    m_norm.backward(ctx, params, x, st.norm, m_grad_pre, grad_x, ws, mode);
  }

private:
  group_norm<B> m_norm{};
  activation<B> m_silu{};
  mutable tensor m_grad_pre{};
};

}  // namespace ayf::nn
