// ayf/backends/xtensor/backend.hpp: the thin xtensor backend. Tensors are row-major
// xt::xtensor<S, 2> (rows = samples); loops and Philox draws are the shared host kernels.
#pragma once

#include <array>
#include <concepts>
#include <cstddef>
#include <xtensor/xtensor.hpp>

#include "ayf/core/host_backend.hpp"

namespace ayf {

template <std::floating_point S>
struct xtensor_storage {
  using scalar = S;
  using tensor = xt::xtensor<S, 2, xt::layout_type::row_major>;

  static tensor make(const shape& sh) {
    return tensor(std::array<std::size_t, 2>{sh.rows, sh.cols}, S(0));
  }
  static shape shape_of(const tensor& x) { return {x.shape()[0], x.shape()[1]}; }
  static void resize(tensor& y, const shape& sh) {
    y.resize(std::array<std::size_t, 2>{sh.rows, sh.cols});
  }
  static S* data(tensor& x) { return x.data(); }
  static const S* data(const tensor& x) { return x.data(); }
};

/// The xtensor backend in precision S; serial, reference GEMM.
template <std::floating_point S>
using xtensor_backend = host_backend<xtensor_storage<S>>;

static_assert(backend<xtensor_backend<double>>);

}  // namespace ayf
