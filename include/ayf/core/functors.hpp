// ayf/core/functors.hpp: the small elementwise functors the library passes to backend operations.
// Named AYF_HOST_DEVICE structs rather than lambdas, so that they also run on the Thrust CUDA
// system (nvcc cannot send a host lambda, generic or capturing, to a kernel; design.md §3).
#pragma once

#include <cmath>

#include "ayf/config.hpp"

namespace ayf::fn {

/// The two results of one element that a functor of B::transform_pair returns.
template <class T>
struct value_pair {
  T first, second;
};

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

/// One Adam / AdamW element update (Kingma & Ba 2015, Algorithm 1; decoupled weight decay,
/// Loshchilov & Hutter 2019), s the gradient's clip factor, c1 = 1 - b1^n and c2 = 1 - b2^n:
///   m <- b1 m + ((1 - b1) s) g;   v <- b2 v + ((1 - b2) s g) s g;
///   theta <- theta - lr (m / c1) / (sqrt(v / c2) + eps) - (lr wd) theta.
/// Every backend's apply_adam rounds each operation to T in this order (Eigen's arrays included).
struct adam_update {
  double beta1, beta2, scale, learning_rate, bias1, bias2, epsilon, decay;
  template <class T>
  AYF_HOST_DEVICE void operator()(T& theta, T& m, T& v, T g) const {
    using std::sqrt;
    m = T(beta1) * m + T((1 - beta1) * scale) * g;
    const T sg = T(scale) * g;
    v = T(beta2) * v + T(1 - beta2) * sg * sg;
    theta = theta - T(learning_rate) * (m / T(bias1)) / (sqrt(v / T(bias2)) + T(epsilon)) -
            T(learning_rate * decay) * theta;
  }
};

}  // namespace ayf::fn
