// ayf/nn/linear.hpp: the linear layer y = x W + b (W: [in, out], b: [1, out]). Its tangent rule is
// the map itself without the bias: one GEMM over the stacked rows [x; dx] gives [y; dy] (design.md §4).
#pragma once

#include <cmath>
#include <cstddef>
#include <string>

#include "ayf/nn/layer.hpp"

namespace ayf::nn {

template <backend B>
class linear {
public:
  using tensor = typename B::tensor;
  using context = typename B::context;
  using scalar = typename B::scalar;
  using state = no_state;

  linear() = default;
  /// Appends "<name>.w" ([in, out]) and, with `bias`, "<name>.b" ([1, out]) to `layout`.
  linear(parameter_layout& layout, const std::string& name, std::size_t in, std::size_t out, bool bias = true)
      : m_in(in), m_out(out), m_has_bias(bias) {
    require(in >= 1, "linear", "in", "at least 1", in);
    require(out >= 1, "linear", "out", "at least 1", out);
    m_weight = layout.add(name + ".w", in, out);
    if (bias) m_bias = layout.add(name + ".b", 1, out);
  }

  [[nodiscard]] std::size_t input_size() const { return m_in; }
  [[nodiscard]] std::size_t output_size() const { return m_out; }
  [[nodiscard]] std::size_t weight_block() const { return m_weight; }
  [[nodiscard]] bool has_bias() const { return m_has_bias; }
  [[nodiscard]] std::size_t bias_block() const { return m_bias; }

  /// W ~ N(0, gain^2 / in), b = 0.
  void initialise(context& ctx, parameter_set<B>& params, double gain = 1.0) const {
    detail::normal_init<B>(ctx, params, m_weight, gain / std::sqrt(static_cast<double>(m_in)));
    if (m_has_bias) B::fill(ctx, params.value(ctx, m_bias), scalar(0));
  }

  /// y = x W (+ y when `accumulate`), b added to rows [0, n).
  void forward(context& ctx, parameter_set<B>& params, const tensor& x, tensor& y, state& /*st*/, workspace<B>& /*ws*/,
               std::size_t n, bool accumulate = false) const {
    detail::require_stacked<B>("linear::forward", x, m_in, n);
    const std::size_t rows = B::shape_of(x).rows;
    if (accumulate) require_shape("linear::forward", "y", shape(rows, m_out), B::shape_of(y));
    B::gemm(ctx, transpose::no, transpose::no, scalar(1), x, params.value(ctx, m_weight),
            accumulate ? scalar(1) : scalar(0), y);
    if (m_has_bias) B::broadcast_add(ctx, detail::rows_of<B>(ctx, y, 0, n), 1.0, params.value(ctx, m_bias));
  }

  /// dW += x^T dy, db += 1^T dy (a column sum); dx = dy W^T (+ dx when `accumulate_input`).
  void backward(context& ctx, parameter_set<B>& params, const tensor& x, const state& /*st*/, const tensor& grad_y,
                tensor* grad_x, workspace<B>& /*ws*/, gradient_mode mode, bool accumulate_input = false) const {
    const std::size_t n = B::shape_of(grad_y).rows;
    require_shape("linear::backward", "grad_y", shape(n, m_out), B::shape_of(grad_y));
    if (wants_parameters(mode)) {
      B::gemm(ctx, transpose::yes, transpose::no, scalar(1), detail::rows_of<B>(ctx, x, 0, n), grad_y, scalar(1),
              params.gradient(ctx, m_weight));
      if (m_has_bias) B::sum_columns(ctx, params.gradient(ctx, m_bias), 1.0, grad_y);
    }
    if (wants_inputs(mode) && grad_x != nullptr) {
      if (accumulate_input) require_shape("linear::backward", "grad_x", shape(n, m_in), B::shape_of(*grad_x));
      B::gemm(ctx, transpose::no, transpose::yes, scalar(1), grad_y, params.value(ctx, m_weight),
              accumulate_input ? scalar(1) : scalar(0), *grad_x);
    }
  }

private:
  std::size_t m_in = 0, m_out = 0;
  bool m_has_bias = true;
  std::size_t m_weight = 0, m_bias = 0;
};

}  // namespace ayf::nn
