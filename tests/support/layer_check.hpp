// tests/support/layer_check.hpp: the checks every layer passes (design.md §5), on the Eigen backend in
// double: the primal rows of a stacked [x; dx] pass equal the plain forward; the tangent rows equal
// central differences of the forward along dx (relative error < 1e-6); backward's parameter and input
// gradients of L = <u, y> equal central differences along random directions; gradient modes compute
// only what they name.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <functional>
#include <random>
#include <vector>

#include <catch2/catch.hpp>

#include "ayf/backends/eigen/backend.hpp"
#include "ayf/nn/layer.hpp"

namespace ayf_test {

using layer_backend = ayf::eigen_backend<double>;
using layer_tensor = layer_backend::tensor;

/// Entries uniform on [lo, hi) from std::mt19937_64 (not the library's Philox).
inline layer_tensor uniform_tensor(std::size_t rows, std::size_t cols, std::uint64_t seed, double lo = -1.0,
                                   double hi = 1.0) {
  std::mt19937_64 gen(seed);
  std::uniform_real_distribution<double> u(lo, hi);
  layer_tensor t(static_cast<Eigen::Index>(rows), static_cast<Eigen::Index>(cols));
  for (Eigen::Index i = 0; i < t.size(); ++i) t.data()[i] = u(gen);
  return t;
}

inline layer_tensor stack_rows(const layer_tensor& a, const layer_tensor& b) {
  layer_tensor s(a.rows() + b.rows(), a.cols());
  s << a, b;
  return s;
}

/// max |a - b| / max |b| (b's scale at least `floor`).
inline double relative_error(const layer_tensor& a, const layer_tensor& b, double floor = 1e-12) {
  REQUIRE(a.rows() == b.rows());
  REQUIRE(a.cols() == b.cols());
  return (a - b).cwiseAbs().maxCoeff() / std::max(floor, b.cwiseAbs().maxCoeff());
}

/// The derivative checks of one layer given as three callables over the Eigen double backend:
///   forward(x, n) -> y              x stacked [x; dx] when rows(x) == 2n
///   backward(x, u, dx*, mode)       after forward(x, n): accumulates parameter gradients, writes *dx
///   theta()                         the flat parameter tensor (values; may be empty), gradients()
struct layer_probe {
  std::function<layer_tensor(const layer_tensor&, std::size_t)> forward;
  std::function<void(const layer_tensor&, const layer_tensor&, layer_tensor*, ayf::nn::gradient_mode)> backward;
  std::function<layer_tensor&()> values;
  std::function<layer_tensor&()> gradients;
};

/// Runs every check on inputs [n, in] drawn from `seed` (in the box [lo, hi)).
inline void check_layer(const layer_probe& probe, std::size_t n, std::size_t in, std::uint64_t seed,
                        double lo = -1.0, double hi = 1.0, bool input_gradient = true) {
  using ayf::nn::gradient_mode;
  const layer_tensor x = uniform_tensor(n, in, seed, lo, hi);
  const layer_tensor dx = uniform_tensor(n, in, seed + 1);
  const layer_tensor y = probe.forward(x, n);
  const auto out = static_cast<std::size_t>(y.cols());

  // JVP: the tangent rows against central differences; the primal rows against the plain pass.
  const layer_tensor stacked = probe.forward(stack_rows(x, dx), n);
  REQUIRE(static_cast<std::size_t>(stacked.rows()) == 2 * n);
  CHECK(relative_error(stacked.topRows(static_cast<Eigen::Index>(n)), y) < 1e-13);
  const double h = 1e-5;
  const layer_tensor fd = (probe.forward(x + h * dx, n) - probe.forward(x - h * dx, n)) / (2 * h);
  const double jvp_error = relative_error(stacked.bottomRows(static_cast<Eigen::Index>(n)), fd);
  INFO("JVP relative error " << jvp_error);
  CHECK(jvp_error < 1e-6);

  // Backward of L = <u, y>.
  const layer_tensor u = uniform_tensor(n, out, seed + 2);
  auto loss = [&](const layer_tensor& xs) { return (probe.forward(xs, n).array() * u.array()).sum(); };
  layer_tensor& theta = probe.values();
  layer_tensor& grads = probe.gradients();
  grads.setZero();
  probe.forward(x, n);
  layer_tensor grad_x;
  probe.backward(x, u, &grad_x, gradient_mode::both);
  const layer_tensor g = grads;
  const double eps = 1e-6;
  for (std::uint64_t k = 0; k < 3 && theta.size() > 0; ++k) {
    const layer_tensor v = uniform_tensor(1, static_cast<std::size_t>(theta.cols()), seed + 10 + k);
    const layer_tensor saved = theta;
    theta = saved + eps * v;
    const double plus = loss(x);
    theta = saved - eps * v;
    const double minus = loss(x);
    theta = saved;
    const double fd_dir = (plus - minus) / (2 * eps), dir = (g.array() * v.array()).sum();
    INFO("parameter direction " << k << ": backward " << dir << ", differences " << fd_dir);
    CHECK(std::abs(dir - fd_dir) <= 1e-6 * std::max(1.0, std::abs(fd_dir)));
  }
  if (input_gradient) {
    for (std::uint64_t k = 0; k < 3; ++k) {
      const layer_tensor w = uniform_tensor(n, in, seed + 20 + k);
      const double fd_dir = (loss(x + eps * w) - loss(x - eps * w)) / (2 * eps);
      const double dir = (grad_x.array() * w.array()).sum();
      INFO("input direction " << k << ": backward " << dir << ", differences " << fd_dir);
      CHECK(std::abs(dir - fd_dir) <= 1e-6 * std::max(1.0, std::abs(fd_dir)));
    }
  }

  // Gradient modes: parameters only leaves dx alone; inputs only leaves the gradients at zero.
  grads.setZero();
  probe.forward(x, n);
  layer_tensor untouched = layer_tensor::Constant(3, 2, 7.0);
  probe.backward(x, u, &untouched, gradient_mode::parameters);
  CHECK(grads == g);
  CHECK(untouched == layer_tensor::Constant(3, 2, 7.0));
  if (input_gradient) {
    grads.setZero();
    probe.forward(x, n);
    layer_tensor only_x;
    probe.backward(x, u, &only_x, gradient_mode::inputs);
    CHECK((grads.size() == 0 || grads.cwiseAbs().maxCoeff() == 0.0));
    CHECK(relative_error(only_x, grad_x) < 1e-13);
  }
}

/// The probe of a unary layer L (ayf::nn::layer) with its own parameter set.
template <class L>
struct unary_layer_probe {
  using B = layer_backend;
  B::context ctx{7};
  const L& layer;
  ayf::nn::parameter_set<B>& params;
  ayf::nn::workspace<B> ws{};
  typename L::state st{};

  unary_layer_probe(const L& l, ayf::nn::parameter_set<B>& p) : layer(l), params(p) {}

  layer_probe probe() {
    return {[this](const layer_tensor& x, std::size_t n) {
              layer_tensor y;
              layer.forward(ctx, params, x, y, st, ws, n);
              return y;
            },
            [this](const layer_tensor& x, const layer_tensor& u, layer_tensor* dx, ayf::nn::gradient_mode mode) {
              layer.backward(ctx, params, x, st, u, dx, ws, mode);
            },
            [this]() -> layer_tensor& { return params.values; }, [this]() -> layer_tensor& { return params.gradients; }};
  }
};

/// Parameters of `layout` with every value drawn uniformly from [lo, hi) (not the layer's own
/// initialisation, so that zero-initialised blocks are exercised too).
inline ayf::nn::parameter_set<layer_backend> random_parameters(layer_backend::context& ctx,
                                                               const ayf::nn::parameter_layout& layout,
                                                               std::uint64_t seed, double lo = -0.5, double hi = 0.5) {
  ayf::nn::parameter_set<layer_backend> p(ctx, layout);
  p.values = uniform_tensor(1, layout.size(), seed, lo, hi);
  return p;
}

}  // namespace ayf_test
