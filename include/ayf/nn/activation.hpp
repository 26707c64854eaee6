// ayf/nn/activation.hpp: pointwise activations y = a(z) with the tangent rule dy = a'(z) dz on the
// tangent rows and the backward dz = a'(z) dy: one functor `Tangent(z, v) = a'(z) v` serves both;
// and silu_saving_sigmoid, whose backward needs silu(z) and sigmoid(z) but not z.
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

/// SiLU that saves sigmoid(z) for its backward instead of z, so that the caller may overwrite z
/// (a residual stream z_{l+1} = z_l + h(silu(z_l)) updated in place): a = silu(z) = z s with
/// s = sigmoid(z) (one exponential per primal value), da = silu'(z) dz on the tangent rows and
/// dz = silu'(z) da in the backward, both with silu'(z) = s + a (1 - s).
template <backend B>
class silu_saving_sigmoid {
public:
  using tensor = typename B::tensor;
  using context = typename B::context;

  silu_saving_sigmoid() = default;
  explicit silu_saving_sigmoid(std::size_t size) : m_size(size) {
    require(size >= 1, "silu_saving_sigmoid", "size", "at least 1", size);
  }

  [[nodiscard]] std::size_t size() const { return m_size; }

  /// a = silu(z) on rows [0, n), da = silu'(z) dz on rows [n, 2n) when z is stacked; sigmoid
  /// ([n, size], resized) = sigmoid(z) of the primal rows.
  void forward(context& ctx, const tensor& z, tensor& a, tensor& sigmoid, std::size_t n) const {
    detail::require_stacked<B>("silu_saving_sigmoid::forward", z, m_size, n);
    B::resize(ctx, a, B::shape_of(z));
    const auto primal = detail::rows_of<B>(ctx, z, 0, n);
    const auto value = detail::rows_of<B>(ctx, a, 0, n);
    B::transform_pair(ctx, value, sigmoid, detail::silu_and_sigmoid{}, primal);
    if (B::shape_of(z).rows == 2 * n) {
      B::transform(ctx, detail::rows_of<B>(ctx, a, n, n), detail::silu_tangent_of_sigmoid{}, sigmoid, value,
                   detail::rows_of<B>(ctx, z, n, n));
    }
  }

  /// grad_z = silu'(z) grad_a, or grad_z += silu'(z) grad_a when `accumulate`, from the forward's
  /// output a (its primal rows are read) and sigmoid; grad_a, grad_z: [n, size].
  void backward(context& ctx, const tensor& a, const tensor& sigmoid, const tensor& grad_a, tensor& grad_z,
                bool accumulate) const {
    const shape sh = B::shape_of(grad_a);
    const std::size_t n = sh.rows;
    require_shape("silu_saving_sigmoid::backward", "grad_a", shape(n, m_size), sh);
    require_shape("silu_saving_sigmoid::backward", "sigmoid", sh, B::shape_of(sigmoid));
    detail::require_stacked<B>("silu_saving_sigmoid::backward", a, m_size, n);
    const auto value = detail::rows_of<B>(ctx, a, 0, n);
    if (accumulate) {
      require_shape("silu_saving_sigmoid::backward", "grad_z", sh, B::shape_of(grad_z));
      B::transform(ctx, grad_z, detail::add_silu_tangent_of_sigmoid{}, grad_z, sigmoid, value, grad_a);
    } else {
      B::transform(ctx, grad_z, detail::silu_tangent_of_sigmoid{}, sigmoid, value, grad_a);
    }
  }

private:
  std::size_t m_size = 0;
};

}  // namespace ayf::nn
