// ayf/core/dual.hpp: forward-mode dual numbers (value, tangent) for scalar schedules, analytic
// teachers and coefficient functions; d/dt of any expression in dual<T> is exact to rounding.
#pragma once

#include <cmath>

#include "ayf/config.hpp"

namespace ayf {

/// `value + tangent * e` with `e^2 = 0`. Trivially copyable; no heap.
template <class T>
struct dual {
  T value{};
  T tangent{};

  constexpr dual() = default;
  AYF_HOST_DEVICE constexpr dual(T v) : value(v), tangent(0) {}  // NOLINT: constants promote
  AYF_HOST_DEVICE constexpr dual(T v, T d) : value(v), tangent(d) {}

  /// The independent variable at `v` (tangent 1).
  AYF_HOST_DEVICE static constexpr dual variable(T v) { return dual(v, T(1)); }

  AYF_HOST_DEVICE constexpr dual& operator+=(const dual& b) { return *this = *this + b; }
  AYF_HOST_DEVICE constexpr dual& operator-=(const dual& b) { return *this = *this - b; }
  AYF_HOST_DEVICE constexpr dual& operator*=(const dual& b) { return *this = *this * b; }
  AYF_HOST_DEVICE constexpr dual& operator/=(const dual& b) { return *this = *this / b; }

  AYF_HOST_DEVICE friend constexpr dual operator+(const dual& a, const dual& b) {
    return {a.value + b.value, a.tangent + b.tangent};
  }
  AYF_HOST_DEVICE friend constexpr dual operator-(const dual& a, const dual& b) {
    return {a.value - b.value, a.tangent - b.tangent};
  }
  AYF_HOST_DEVICE friend constexpr dual operator-(const dual& a) { return {-a.value, -a.tangent}; }
  AYF_HOST_DEVICE friend constexpr dual operator*(const dual& a, const dual& b) {
    return {a.value * b.value, a.tangent * b.value + a.value * b.tangent};
  }
  AYF_HOST_DEVICE friend constexpr dual operator/(const dual& a, const dual& b) {
    return {a.value / b.value, (a.tangent * b.value - a.value * b.tangent) / (b.value * b.value)};
  }
  AYF_HOST_DEVICE friend constexpr bool operator<(const dual& a, const dual& b) {
    return a.value < b.value;
  }
  AYF_HOST_DEVICE friend constexpr bool operator>(const dual& a, const dual& b) {
    return a.value > b.value;
  }
};

// Elementary functions: value and the chain rule's derivative factor.
template <class T>
AYF_HOST_DEVICE dual<T> sin(const dual<T>& a) {
  using std::cos, std::sin;
  return {sin(a.value), cos(a.value) * a.tangent};
}
template <class T>
AYF_HOST_DEVICE dual<T> cos(const dual<T>& a) {
  using std::cos, std::sin;
  return {cos(a.value), -sin(a.value) * a.tangent};
}
template <class T>
AYF_HOST_DEVICE dual<T> exp(const dual<T>& a) {
  using std::exp;
  const T e = exp(a.value);
  return {e, e * a.tangent};
}
template <class T>
AYF_HOST_DEVICE dual<T> log(const dual<T>& a) {
  using std::log;
  return {log(a.value), a.tangent / a.value};
}
template <class T>
AYF_HOST_DEVICE dual<T> sqrt(const dual<T>& a) {
  using std::sqrt;
  const T r = sqrt(a.value);
  return {r, a.tangent / (T(2) * r)};
}
template <class T>
AYF_HOST_DEVICE dual<T> tanh(const dual<T>& a) {
  using std::tanh;
  const T y = tanh(a.value);
  return {y, (T(1) - y * y) * a.tangent};
}
template <class T>
AYF_HOST_DEVICE dual<T> pow(const dual<T>& a, T p) {
  using std::pow;
  return {pow(a.value, p), p * pow(a.value, p - T(1)) * a.tangent};
}
template <class T>
AYF_HOST_DEVICE dual<T> abs(const dual<T>& a) {
  return a.value < T(0) ? -a : a;
}
/// The logistic sigmoid 1 / (1 + e^-x), on plain scalars and duals.
template <class T>
AYF_HOST_DEVICE T sigmoid(const T& x) {
  using std::exp;
  return T(1) / (T(1) + exp(-x));
}

}  // namespace ayf
