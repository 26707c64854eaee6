// ayf/nn/resample.hpp: nearest 2x upsampling, 2x2 average pooling and skip concatenation along
// channels on channels-last images, each a linear index map (B::gather) with its adjoint
// (B::gather_sum / B::gather): forward, JVP (the same map on stacked [x; dx] rows) and backward.
#pragma once

#include <cstddef>
#include <cstdint>
#include <numeric>

#include "ayf/nn/conv.hpp"

namespace ayf::nn {

namespace detail {

/// Nearest 2x upsampling from an h x w image, over runs of c channels: fine pixel (Y, X) reads coarse
/// pixel (Y/2, X/2).
struct nearest_up_map {
  std::int64_t h, w;
  fast_divisor by_2w, by_2h;
  nearest_up_map(std::int64_t h_, std::int64_t w_) : h(h_), w(w_), by_2w(2 * w_), by_2h(2 * h_) {}
  AYF_HOST_DEVICE std::int64_t operator()(std::int64_t q) const {
    const std::int64_t row = by_2w.div(q), x = q - row * 2 * w;
    const std::int64_t b = by_2h.div(row), y = row - b * 2 * h;
    return (b * h + y / 2) * w + x / 2;
  }
};

/// Sum over 2x2 blocks into an h x w image, over runs of c channels: coarse pixel (y, x), tap
/// r = (r/2, r%2) reads fine pixel (2y + r/2, 2x + r%2). The adjoint of nearest_up_map.
struct block_sum_map {
  std::int64_t h, w;
  fast_divisor by_w, by_h;
  block_sum_map(std::int64_t h_, std::int64_t w_) : h(h_), w(w_), by_w(w_), by_h(h_) {}
  AYF_HOST_DEVICE std::int64_t operator()(std::int64_t q, std::int64_t r) const {
    const std::int64_t row = by_w.div(q), x = q - row * w;
    const std::int64_t b = by_h.div(row), y = row - b * h;
    return (b * 2 * h + 2 * y + r / 2) * 2 * w + 2 * x + r % 2;
  }
};

/// Concatenation along channels: [a | b] read from one buffer holding a ([R, P*Ca]) then b
/// ([R, P*Cb], starting at element offset_b). Channels and offset count in the gather's blocks (runs of
/// channels that divide Ca and Cb).
struct concat_map {
  std::int64_t p, ca, cb, offset_b;
  fast_divisor by_ct;
  concat_map(std::int64_t p_, std::int64_t ca_, std::int64_t cb_, std::int64_t offset_b_)
      : p(p_), ca(ca_), cb(cb_), offset_b(offset_b_), by_ct(ca_ + cb_) {}
  AYF_HOST_DEVICE std::int64_t operator()(std::int64_t i) const {
    const std::int64_t pixel = by_ct.div(i), ch = i - pixel * (ca + cb);  // pixel counts over samples
    return ch < ca ? pixel * ca + ch : offset_b + pixel * cb + ch - ca;
  }
};

/// Whether B concatenates and splits channels-last images in one pass (host backends).
template <class B>
concept has_channel_concat = requires(typename B::context& ctx, typename B::tensor& t, const typename B::tensor& x) {
  B::concat_channels(ctx, t, x, x, std::size_t{1}, std::size_t{1});
  B::split_channels(ctx, t, t, x, std::size_t{1}, std::size_t{1});
};

/// Channels [first, first + count) of a [R, P*total] image (the adjoint of concatenation: split), in
/// the gather's blocks as concat_map.
struct channel_range_map {
  std::int64_t total, first, count;
  fast_divisor by_count;
  channel_range_map(std::int64_t total_, std::int64_t first_, std::int64_t count_)
      : total(total_), first(first_), count(count_), by_count(count_) {}
  AYF_HOST_DEVICE std::int64_t operator()(std::int64_t i) const {
    const std::int64_t pixel = by_count.div(i), ch = i - pixel * count;
    return pixel * total + first + ch;
  }
};

}  // namespace detail

/// y = up(x): every pixel of an H x W image repeated over a 2 x 2 block of the 2H x 2W output.
/// Backward: dx = up^T dy, the sum over each block.
template <backend B>
class upsample_nearest {
public:
  upsample_nearest() = default;
  explicit upsample_nearest(image_shape input) : m_in(input) {
    require(input.size() >= 1, "upsample_nearest", "input", "a non-empty image", input.size());
  }
  using state = no_state;
  [[nodiscard]] const image_shape& input() const { return m_in; }
  [[nodiscard]] image_shape output() const { return {2 * m_in.height, 2 * m_in.width, m_in.channels}; }
  [[nodiscard]] std::size_t input_size() const { return m_in.size(); }
  [[nodiscard]] std::size_t output_size() const { return output().size(); }
  void initialise(typename B::context& /*ctx*/, parameter_set<B>& /*params*/) const {}

  /// x: [R, H*W*C] (any rows, stacked tangents included: the map is linear); y: [R, 4*H*W*C].
  template <class Params>
  void forward(typename B::context& ctx, Params& /*params*/, const typename B::tensor& x, typename B::tensor& y,
               state& /*st*/, workspace<B>& /*ws*/, std::size_t /*n*/) const {
    const std::size_t rows = B::shape_of(x).rows;
    require_shape("upsample_nearest::forward", "x", shape(rows, m_in.size()), B::shape_of(x));
    B::gather(ctx, y, shape(rows, output().size()), x, map(), channels());
  }
  /// grad_y: [n, 4*H*W*C] -> grad_x: [n, H*W*C].
  template <class Params>
  void backward(typename B::context& ctx, Params& /*params*/, const typename B::tensor& /*x*/, const state& /*st*/,
                const typename B::tensor& grad_y, typename B::tensor* grad_x, workspace<B>& /*ws*/,
                gradient_mode mode) const {
    const std::size_t n = B::shape_of(grad_y).rows;
    require_shape("upsample_nearest::backward", "grad_y", shape(n, output().size()), B::shape_of(grad_y));
    if (!wants_inputs(mode) || grad_x == nullptr) return;
    B::gather_sum(ctx, *grad_x, shape(n, m_in.size()), grad_y, detail::block_sum_map(map().h, map().w), 4, channels());
  }

private:
  [[nodiscard]] detail::nearest_up_map map() const {
    return detail::nearest_up_map(static_cast<std::int64_t>(m_in.height), static_cast<std::int64_t>(m_in.width));
  }
  [[nodiscard]] std::int64_t channels() const { return static_cast<std::int64_t>(m_in.channels); }
  image_shape m_in{};
};

/// y = pool(x): the mean over each 2 x 2 block of an H x W image (H, W even), an H/2 x W/2 image.
/// Backward: dx = pool^T dy = up(dy) / 4.
template <backend B>
class avg_pool {
public:
  avg_pool() = default;
  explicit avg_pool(image_shape input) : m_in(input) {
    require(input.size() >= 1 && input.height % 2 == 0 && input.width % 2 == 0, "avg_pool", "input",
            "an image of even height and width", ayf::detail::message(input.height, "x", input.width));
  }
  using state = no_state;
  [[nodiscard]] const image_shape& input() const { return m_in; }
  [[nodiscard]] image_shape output() const { return {m_in.height / 2, m_in.width / 2, m_in.channels}; }
  [[nodiscard]] std::size_t input_size() const { return m_in.size(); }
  [[nodiscard]] std::size_t output_size() const { return output().size(); }
  void initialise(typename B::context& /*ctx*/, parameter_set<B>& /*params*/) const {}

  template <class Params>
  void forward(typename B::context& ctx, Params& /*params*/, const typename B::tensor& x, typename B::tensor& y,
               state& /*st*/, workspace<B>& /*ws*/, std::size_t /*n*/) const {
    const std::size_t rows = B::shape_of(x).rows;
    require_shape("avg_pool::forward", "x", shape(rows, m_in.size()), B::shape_of(x));
    const auto [h, w, c] = coarse();
    B::gather_sum(ctx, y, shape(rows, output().size()), x, detail::block_sum_map(h, w), 4, c);
    B::scale_sum_rows(ctx, y, 0.25, y);
  }
  template <class Params>
  void backward(typename B::context& ctx, Params& /*params*/, const typename B::tensor& /*x*/, const state& /*st*/,
                const typename B::tensor& grad_y, typename B::tensor* grad_x, workspace<B>& /*ws*/,
                gradient_mode mode) const {
    const std::size_t n = B::shape_of(grad_y).rows;
    require_shape("avg_pool::backward", "grad_y", shape(n, output().size()), B::shape_of(grad_y));
    if (!wants_inputs(mode) || grad_x == nullptr) return;
    const auto [h, w, c] = coarse();
    B::gather(ctx, *grad_x, shape(n, m_in.size()), grad_y, detail::nearest_up_map(h, w), c);
    B::scale_sum_rows(ctx, *grad_x, 0.25, *grad_x);
  }

private:
  struct dims {
    std::int64_t h, w, c;
  };
  [[nodiscard]] dims coarse() const {
    return {static_cast<std::int64_t>(m_in.height / 2), static_cast<std::int64_t>(m_in.width / 2),
            static_cast<std::int64_t>(m_in.channels)};
  }
  image_shape m_in{};
};

/// y = [a | b] along channels: a is H x W x Ca, b is H x W x Cb, y is H x W x (Ca + Cb).
/// Backward splits dy into its channel ranges.
template <backend B>
class concat_channels {
public:
  concat_channels() = default;
  concat_channels(image_shape a, image_shape b) : m_a(a), m_b(b) {
    require(a.height == b.height && a.width == b.width, "concat_channels", "b", "the height and width of a",
            ayf::detail::message(b.height, "x", b.width));
    require(a.size() >= 1 && b.size() >= 1, "concat_channels", "a", "non-empty images", a.size());
  }
  [[nodiscard]] image_shape output() const { return {m_a.height, m_a.width, m_a.channels + m_b.channels}; }

  /// a: [R, P*Ca], b: [R, P*Cb] (stacked tangents included); y: [R, P*(Ca+Cb)]. Host backends copy
  /// both in one pass (B::concat_channels); otherwise both inputs are staged in the workspace
  /// (ws.image_c) so that one gather reads them.
  void forward(typename B::context& ctx, const typename B::tensor& a, const typename B::tensor& b,
               typename B::tensor& y, workspace<B>& ws) const {
    const std::size_t rows = B::shape_of(a).rows, na = rows * m_a.size(), nb = rows * m_b.size();
    require_shape("concat_channels::forward", "a", shape(rows, m_a.size()), B::shape_of(a));
    require_shape("concat_channels::forward", "b", shape(rows, m_b.size()), B::shape_of(b));
    if constexpr (detail::has_channel_concat<B>) {
      B::concat_channels(ctx, y, a, b, m_a.channels, m_b.channels);
      return;
    }
    detail::scratch<B>(ctx, ws.image_c, shape(1, na + nb));
    B::copy(ctx, a, B::slice(ctx, ws.image_c, 0, B::shape_of(a)));
    B::copy(ctx, b, B::slice(ctx, ws.image_c, na, B::shape_of(b)));
    const auto stage = B::slice(ctx, ws.image_c, 0, shape(1, na + nb));
    // Runs of g = gcd(Ca, Cb) channels move as blocks: the maps count in units of g.
    const auto g = run();
    B::gather(ctx, y, shape(rows, output().size()), stage,
              detail::concat_map(static_cast<std::int64_t>(m_a.pixels()), static_cast<std::int64_t>(m_a.channels) / g,
                                 static_cast<std::int64_t>(m_b.channels) / g, static_cast<std::int64_t>(na) / g),
              g);
  }
  /// grad_y: [n, P*(Ca+Cb)] -> grad_a: [n, P*Ca], grad_b: [n, P*Cb].
  void backward(typename B::context& ctx, const typename B::tensor& grad_y, typename B::tensor& grad_a,
                typename B::tensor& grad_b) const {
    const std::size_t n = B::shape_of(grad_y).rows;
    require_shape("concat_channels::backward", "grad_y", shape(n, output().size()), B::shape_of(grad_y));
    if constexpr (detail::has_channel_concat<B>) {
      B::split_channels(ctx, grad_a, grad_b, grad_y, m_a.channels, m_b.channels);
      return;
    }
    const auto g = run();
    const auto ca = static_cast<std::int64_t>(m_a.channels) / g, cb = static_cast<std::int64_t>(m_b.channels) / g;
    B::gather(ctx, grad_a, shape(n, m_a.size()), grad_y, detail::channel_range_map(ca + cb, 0, ca), g);
    B::gather(ctx, grad_b, shape(n, m_b.size()), grad_y, detail::channel_range_map(ca + cb, ca, cb), g);
  }

private:
  /// The longest run of channels that both images' channel counts divide into.
  [[nodiscard]] std::int64_t run() const {
    return static_cast<std::int64_t>(std::gcd(m_a.channels, m_b.channels));
  }

  image_shape m_a{}, m_b{};
};

}  // namespace ayf::nn
