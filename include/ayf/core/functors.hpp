// ayf/core/functors.hpp: the small elementwise functors the library passes to backend operations.
// Named AYF_HOST_DEVICE structs rather than lambdas, so that they also run on the Thrust CUDA
// system (nvcc cannot send a host lambda, generic or capturing, to a kernel; design.md §3).
#pragma once

#include <cmath>

#include "ayf/config.hpp"

namespace ayf::fn {

/// a - b.
struct minus {
  template <class T>
  AYF_HOST_DEVICE T operator()(T a, T b) const { return a - b; }
};
/// 1 - x.
struct one_minus {
  template <class T>
  AYF_HOST_DEVICE T operator()(T x) const { return T(1) - x; }
};
/// x * x.
struct square {
  template <class T>
  AYF_HOST_DEVICE T operator()(T x) const { return x * x; }
};
/// sqrt(x).
struct square_root {
  template <class T>
  AYF_HOST_DEVICE T operator()(T x) const {
    using std::sqrt;
    return sqrt(x);
  }
};
/// x.
struct identity {
  template <class T>
  AYF_HOST_DEVICE T operator()(T x) const { return x; }
};
/// shift + scale x.
struct affine {
  double shift, scale;
  template <class T>
  AYF_HOST_DEVICE T operator()(T x) const { return T(shift) + T(scale) * x; }
};
/// x + shift.
struct add {
  double shift;
  template <class T>
  AYF_HOST_DEVICE T operator()(T x) const { return x + T(shift); }
};
/// c (a - b).
struct scaled_difference {
  double c;
  template <class T>
  AYF_HOST_DEVICE T operator()(T a, T b) const { return T(c) * (a - b); }
};
/// 1 / (x + c).
struct reciprocal_plus {
  double c;
  template <class T>
  AYF_HOST_DEVICE T operator()(T x) const { return T(1) / (x + T(c)); }
};

}  // namespace ayf::fn
