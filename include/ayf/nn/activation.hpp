// ayf/nn/activation.hpp: pointwise activations y = a(z) with the tangent rule dy = a'(z) dz on the
// tangent rows and the backward dz = a'(z) dy: one functor `Tangent(z, v) = a'(z) v` serves both.
#pragma once

#include <cstddef>

#include "ayf/nn/layer.hpp"

namespace ayf::nn {

/// y = Value(x) elementwise over [R, size]; Tangent(z, v) = Value'(z) v.
template <backend B, class Value = detail::silu, class Tangent = detail::silu_tangent>
class activation {
public:
  using tensor = typename B::tensor;
  using context = typename B::context;
  using state = no_state;

  activation() = default;
  explicit activation(std::size_t size) : m_size(size) {
    require(size >= 1, "activation", "size", "at least 1", size);
  }

  [[nodiscard]] std::size_t input_size() const { return m_size; }
  [[nodiscard]] std::size_t output_size() const { return m_size; }
  void initialise(context& /*ctx*/, parameter_set<B>& /*params*/) const {}

  /// y = a(x) on rows [0, n); dy = a'(x) dx on rows [n, 2n).
  template <class Params>
  void forward(context& ctx, Params& /*params*/, const tensor& x, tensor& y, state& /*st*/, workspace<B>& /*ws*/,
               std::size_t n) const {
    detail::require_stacked<B>("activation::forward", x, m_size, n);
    B::resize(ctx, y, B::shape_of(x));
    const auto primal = detail::rows_of<B>(ctx, x, 0, n);
    if (B::shape_of(x).rows == 2 * n) {
      B::transform(ctx, detail::rows_of<B>(ctx, y, n, n), Tangent{}, primal, detail::rows_of<B>(ctx, x, n, n));
    }
    B::transform(ctx, detail::rows_of<B>(ctx, y, 0, n), Value{}, primal);
  }

  /// dx = a'(x) dy (no parameters).
  template <class Params>
  void backward(context& ctx, Params& /*params*/, const tensor& x, const state& /*st*/, const tensor& grad_y,
                tensor* grad_x, workspace<B>& /*ws*/, gradient_mode mode) const {
    const std::size_t n = B::shape_of(grad_y).rows;
    require_shape("activation::backward", "grad_y", shape(n, m_size), B::shape_of(grad_y));
    if (!wants_inputs(mode) || grad_x == nullptr) return;
    B::transform(ctx, *grad_x, Tangent{}, detail::rows_of<B>(ctx, x, 0, n), grad_y);
  }

private:
  std::size_t m_size = 0;
};

}  // namespace ayf::nn
