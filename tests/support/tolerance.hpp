// tests/support/tolerance.hpp: the per-(backend, scalar) tolerance trait of design.md §5. Tests ask
// `tolerance<S, B>` (or `backend_tolerance<B>`) instead of sprinkling numbers; a backend whose
// arithmetic differs (fused kernels, tensor cores) specializes `tolerance<S, its_backend>`.
#pragma once

#include <algorithm>
#include <cmath>

namespace ayf_test {

/// Defaults by scalar type: a few hundred ulps of headroom for sums of a few thousand terms.
template <class Scalar>
struct scalar_tolerance;

template <>
struct scalar_tolerance<float> {
  static constexpr double relative = 1e-5;
  static constexpr double absolute = 1e-6;
};

template <>
struct scalar_tolerance<double> {
  static constexpr double relative = 1e-12;
  static constexpr double absolute = 1e-14;
};

/// `tolerance<double>::relative`; specialize on `Backend` to loosen or tighten one backend.
template <class Scalar, class Backend = void>
struct tolerance : scalar_tolerance<Scalar> {};

template <class Backend>
using backend_tolerance = tolerance<typename Backend::scalar, Backend>;

/// True when |actual - expected| <= relative * max(|expected|, scale) + absolute, where `scale`
/// is the magnitude the rounding error grows with (e.g. sum |terms| for a sum that cancels).
template <class Tolerance>
[[nodiscard]] bool close(double actual, double expected, double scale = 0) {
  const double bound =
      Tolerance::relative * std::max(std::abs(expected), std::abs(scale)) + Tolerance::absolute;
  return std::abs(actual - expected) <= bound;
}

}  // namespace ayf_test
