// tests/test_backend_ops.cpp: every backend operation of design.md §3 on the host backends,
// against naive reference loops written here in double precision, plus the determinism of
// reductions across thread counts and backends, and the argument errors.
#include <algorithm>
#include <array>
#include <atomic>
#include <bit>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <limits>
#include <random>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include <catch2/catch.hpp>
#include <tbb/info.h>
#include <tbb/task_arena.h>

#include "ayf/backends/eigen/backend.hpp"
#include "ayf/backends/xtensor/backend.hpp"
#include "ayf/core/backend.hpp"
#include "support/tolerance.hpp"

namespace {

using ayf::shape;
using Catch::Contains;

/// The backends under test; a templated test runs once per type.
#define AYF_HOST_BACKENDS \
  ayf::eigen_backend<double>, ayf::eigen_backend<float>, ayf::xtensor_backend<double>

/// A tensor with entries uniform on [lo, hi), exactly representable in the backend's scalar, and
/// the same entries in double for the reference loops. Drawn with std::mt19937_64, which the
/// library does not use.
template <class B>
struct sample {
  typename B::tensor tensor;
  std::vector<double> values;
};

template <class B>
sample<B> random_tensor(typename B::context& ctx, const shape& sh, std::uint64_t seed,
                        double lo = -1.0, double hi = 1.0) {
  using S = typename B::scalar;
  std::mt19937_64 gen(seed);
  std::vector<S> v(sh.size());
  for (auto& x : v) x = static_cast<S>(lo + (hi - lo) * std::ldexp(static_cast<double>(gen() >> 11), -53));
  return {B::from_host(ctx, v, sh), std::vector<double>(v.begin(), v.end())};
}

/// Entry (i, j) through the storage's own indexing (Eigen and xtensor both take (row, col)), so
/// the checks do not depend on to_host.
template <class Tensor>
double at(const Tensor& t, std::size_t i, std::size_t j) {
  if constexpr (requires { t.rows(); }) {
    return static_cast<double>(t(static_cast<Eigen::Index>(i), static_cast<Eigen::Index>(j)));
  } else {
    return static_cast<double>(t(i, j));
  }
}

/// Makes the Eigen executor split even small work across oneTBB; the xtensor backend is serial.
template <class B>
void set_parallel(typename B::context& ctx, bool parallel) {
  if constexpr (requires { ctx.executor.min_parallel_work; }) {
    ctx.executor.min_parallel_work = parallel ? 8 : std::size_t{1} << 30;
  }
}

struct square {
  template <class T>
  T operator()(T x) const { return x * x + T(1); }
};
struct mul_sub {
  template <class T>
  T operator()(T a, T b) const { return a * b - a; }
};
struct fma3 {
  template <class T>
  T operator()(T a, T b, T c) const { return a * b + c; }
};
struct product {
  template <class T>
  T operator()(T a, T b) const { return a * b; }
};
struct product_and_sum {
  template <class T>
  ayf::fn::value_pair<T> operator()(T a, T b) const { return {a * b, a + b}; }
};
struct square_and_negative {
  template <class T>
  ayf::fn::value_pair<T> operator()(T a) const { return {a * a, -a}; }
};
struct product3 {
  template <class T>
  T operator()(T a, T b, T c) const { return a * b * c; }
};
struct identity {
  template <class T>
  T operator()(T a) const { return a; }
};

}  // namespace

TEMPLATE_TEST_CASE("make, resize, fill, copy, to_host and from_host move data exactly",
                   "[backend][cpu]", AYF_HOST_BACKENDS) {
  using B = TestType;
  using S = typename B::scalar;
  typename B::context ctx(3);
  const shape sh(5, 7);

  auto z = B::make(ctx, sh);
  REQUIRE(B::shape_of(z) == sh);
  for (std::size_t i = 0; i < sh.rows; ++i)
    for (std::size_t j = 0; j < sh.cols; ++j) CHECK(at(z, i, j) == 0.0);

  // from_host is row-major: entry (i, j) is values[i * cols + j].
  std::vector<S> values(sh.size());
  for (std::size_t k = 0; k < values.size(); ++k) values[k] = static_cast<S>(0.25 * k - 3.0);
  auto x = B::from_host(ctx, values, sh);
  REQUIRE(B::shape_of(x) == sh);
  for (std::size_t i = 0; i < sh.rows; ++i)
    for (std::size_t j = 0; j < sh.cols; ++j)
      CHECK(at(x, i, j) == static_cast<double>(values[i * sh.cols + j]));
  CHECK(B::to_host(ctx, x) == values);

  // from_host into a tensor resizes it; with the shape it has, it keeps its storage (per-batch uploads).
  auto w = B::make(ctx, shape(2, 3));
  B::from_host(ctx, values, sh, w);
  REQUIRE(B::shape_of(w) == sh);
  CHECK(B::to_host(ctx, w) == values);
  const S* storage = B::storage::data(w);
  std::vector<S> negated(values.size());
  for (std::size_t k = 0; k < values.size(); ++k) negated[k] = -values[k];
  B::from_host(ctx, negated, sh, w);
  CHECK(B::storage::data(w) == storage);
  CHECK(B::to_host(ctx, w) == negated);
  REQUIRE_THROWS_WITH(B::from_host(ctx, values, shape(5, 6), w), Catch::Contains("'values'"));
  CHECK(B::shape_of(w) == sh);  // a failed call leaves it alone
  CHECK(B::to_host(ctx, w) == negated);

  // copy resizes the destination and is deep.
  auto y = B::make(ctx, shape(2, 2));
  B::copy(ctx, x, y);
  REQUIRE(B::shape_of(y) == sh);
  CHECK(B::to_host(ctx, y) == values);
  B::fill(ctx, x, S(2.5));
  CHECK(B::to_host(ctx, y) == values);
  CHECK(B::to_host(ctx, x) == std::vector<S>(sh.size(), S(2.5)));

  // resize to the same shape keeps the data; to another shape changes the shape.
  B::resize(ctx, y, sh);
  CHECK(B::to_host(ctx, y) == values);
  B::resize(ctx, y, shape(3, 4));
  CHECK(B::shape_of(y) == shape(3, 4));
  B::fill(ctx, y, S(-1));
  CHECK(B::to_host(ctx, y) == std::vector<S>(12, S(-1)));

  // Empty tensors round-trip too.
  auto e = B::from_host(ctx, {}, shape(0, 4));
  CHECK(B::shape_of(e) == shape(0, 4));
  CHECK(B::to_host(ctx, e).empty());
}

TEMPLATE_TEST_CASE("transform applies a functor elementwise to one, two and three inputs",
                   "[backend][cpu]", AYF_HOST_BACKENDS) {
  using B = TestType;
  using tol = ayf_test::backend_tolerance<B>;
  typename B::context ctx(5);
  set_parallel<B>(ctx, GENERATE(false, true));
  const shape sh(13, 29);
  const auto a = random_tensor<B>(ctx, sh, 1), b = random_tensor<B>(ctx, sh, 2),
             c = random_tensor<B>(ctx, sh, 3);
  auto out = B::make(ctx, shape(1, 1));  // resized by transform

  auto expect = [&](const auto& reference) {
    REQUIRE(B::shape_of(out) == sh);
    std::size_t bad = 0;
    for (std::size_t i = 0; i < sh.rows; ++i)
      for (std::size_t j = 0; j < sh.cols; ++j)
        bad += !ayf_test::close<tol>(at(out, i, j), reference(i * sh.cols + j), 1.0);
    CHECK(bad == 0);
  };

  B::transform(ctx, out, square{}, a.tensor);
  expect([&](std::size_t k) { return a.values[k] * a.values[k] + 1; });
  B::transform(ctx, out, mul_sub{}, a.tensor, b.tensor);
  expect([&](std::size_t k) { return a.values[k] * b.values[k] - a.values[k]; });
  B::transform(ctx, out, fma3{}, a.tensor, b.tensor, c.tensor);
  expect([&](std::size_t k) { return a.values[k] * b.values[k] + c.values[k]; });
  // Argument order matters: (b, a) is not (a, b).
  B::transform(ctx, out, mul_sub{}, b.tensor, a.tensor);
  expect([&](std::size_t k) { return b.values[k] * a.values[k] - b.values[k]; });

  // In place: out is also the input.
  B::copy(ctx, a.tensor, out);
  B::transform(ctx, out, mul_sub{}, out, b.tensor);
  expect([&](std::size_t k) { return a.values[k] * b.values[k] - a.values[k]; });
}

TEMPLATE_TEST_CASE("transform_pair writes the two results of one functor elementwise", "[backend][cpu]",
                   AYF_HOST_BACKENDS) {
  using B = TestType;
  using tol = ayf_test::backend_tolerance<B>;
  typename B::context ctx(6);
  set_parallel<B>(ctx, GENERATE(false, true));
  const shape sh(13, 29);
  const auto a = random_tensor<B>(ctx, sh, 1), b = random_tensor<B>(ctx, sh, 2);
  auto first = B::make(ctx, shape(1, 1)), second = B::make(ctx, shape(2, 1));  // resized by transform_pair

  auto expect = [&](const auto& want_first, const auto& want_second) {
    REQUIRE(B::shape_of(first) == sh);
    REQUIRE(B::shape_of(second) == sh);
    std::size_t bad = 0;
    for (std::size_t i = 0; i < sh.rows; ++i) {
      for (std::size_t j = 0; j < sh.cols; ++j) {
        bad += !ayf_test::close<tol>(at(first, i, j), want_first(i * sh.cols + j), 1.0);
        bad += !ayf_test::close<tol>(at(second, i, j), want_second(i * sh.cols + j), 1.0);
      }
    }
    CHECK(bad == 0);
  };

  B::transform_pair(ctx, first, second, square_and_negative{}, a.tensor);
  expect([&](std::size_t k) { return a.values[k] * a.values[k]; }, [&](std::size_t k) { return -a.values[k]; });
  B::transform_pair(ctx, first, second, product_and_sum{}, a.tensor, b.tensor);
  expect([&](std::size_t k) { return a.values[k] * b.values[k]; },
         [&](std::size_t k) { return a.values[k] + b.values[k]; });
  // In place, each output on an input: (first, second) = (a b, a + b) from (a, b) held in them.
  B::copy(ctx, a.tensor, first);
  B::copy(ctx, b.tensor, second);
  B::transform_pair(ctx, first, second, product_and_sum{}, first, second);
  expect([&](std::size_t k) { return a.values[k] * b.values[k]; },
         [&](std::size_t k) { return a.values[k] + b.values[k]; });
  // Views as outputs: two halves of one buffer, the rest untouched.
  auto flat = B::make(ctx, shape(1, 2 * sh.size() + 3));
  B::fill(ctx, flat, typename B::scalar(7));
  B::transform_pair(ctx, B::slice(ctx, flat, 0, sh), B::slice(ctx, flat, sh.size() + 3, sh), square_and_negative{},
                    b.tensor);
  const auto values = B::to_host(ctx, flat);
  std::size_t bad = 0;
  for (std::size_t k = 0; k < sh.size(); ++k) {
    bad += !ayf_test::close<tol>(values[k], b.values[k] * b.values[k], 1.0);
    bad += !ayf_test::close<tol>(values[sh.size() + 3 + k], -b.values[k], 1.0);
  }
  for (std::size_t k = sh.size(); k < sh.size() + 3; ++k) bad += values[k] != 7;
  CHECK(bad == 0);
}

TEMPLATE_TEST_CASE("apply_adam updates the moments and the weights by Adam's recursion, in place",
                   "[backend][cpu][adam]", AYF_HOST_BACKENDS) {
  using B = TestType;
  using S = typename B::scalar;
  using tol = ayf_test::backend_tolerance<B>;
  typename B::context ctx(5);
  set_parallel<B>(ctx, GENERATE(false, true));
  // 3 x 3001 elements: not a multiple of any SIMD width or of the Eigen storage's 1024-element chunks.
  const shape sh(3, 3001);
  const auto theta = random_tensor<B>(ctx, sh, 11, -2.0, 2.0), m = random_tensor<B>(ctx, sh, 12, -0.1, 0.1),
             v = random_tensor<B>(ctx, sh, 13, 0.0, 0.01), g = random_tensor<B>(ctx, sh, 14, -3.0, 3.0);
  // Step 4 with clipping (s = 0.7) and decoupled decay; then a zero second moment and gradient.
  const double b1 = 0.9, b2 = 0.999, s = 0.7, lr = 2e-3, eps = 1e-8, wd = 0.05;
  const double c1 = 1 - std::pow(b1, 4.0), c2 = 1 - std::pow(b2, 4.0);
  const ayf::fn::adam_update f{b1, b2, s, lr, c1, c2, eps, wd};
  auto values = theta.tensor, first = m.tensor, second = v.tensor;
  B::apply_adam(ctx, f, values, first, second, g.tensor);

  std::size_t bad_m = 0, bad_v = 0, bad_theta = 0;
  for (std::size_t i = 0; i < sh.rows; ++i) {
    for (std::size_t j = 0; j < sh.cols; ++j) {
      const std::size_t k = i * sh.cols + j;
      const double sg = s * g.values[k];
      const double m1 = b1 * m.values[k] + (1 - b1) * sg, v1 = b2 * v.values[k] + (1 - b2) * sg * sg;
      const double step = lr * (m1 / c1) / (std::sqrt(v1 / c2) + eps);
      const double theta1 = theta.values[k] - step - lr * wd * theta.values[k];
      bad_m += !ayf_test::close<tol>(at(first, i, j), m1, std::abs(m.values[k]) + std::abs(sg));
      bad_v += !ayf_test::close<tol>(at(second, i, j), v1, v.values[k] + sg * sg);
      // The step is a ratio of rounded moments: relative error a few ulps of |step| (about lr).
      bad_theta += !ayf_test::close<tol>(at(values, i, j), theta1, std::abs(theta.values[k]) + 10 * std::abs(step));
    }
  }
  CHECK(bad_m == 0);
  CHECK(bad_v == 0);
  CHECK(bad_theta == 0);

  // Bitwise the element functor applied in a scalar loop (the storage's SIMD form rounds alike).
  std::vector<S> th = B::to_host(ctx, theta.tensor), mh = B::to_host(ctx, m.tensor), vh = B::to_host(ctx, v.tensor);
  const std::vector<S> gh = B::to_host(ctx, g.tensor);
  ayf::host_kernels::apply_adam(0, th.size(), f, th.data(), mh.data(), vh.data(), gh.data());
  CHECK(B::to_host(ctx, values) == th);
  CHECK(B::to_host(ctx, first) == mh);
  CHECK(B::to_host(ctx, second) == vh);

  // v = g = 0: the weights only decay; without decay they stay.
  auto zero = B::make(ctx, sh);
  B::fill(ctx, zero, S(0));
  auto v0 = zero, m0 = zero, values0 = theta.tensor;
  B::apply_adam(ctx, ayf::fn::adam_update{b1, b2, 1.0, lr, c1, c2, eps, 0.0}, values0, m0, v0, zero);
  CHECK(B::to_host(ctx, values0) == B::to_host(ctx, theta.tensor));
  CHECK(B::to_host(ctx, m0) == B::to_host(ctx, zero));

  // A gradient whose square overflows: v = inf, the step m / sqrt(inf) = 0, the weight only decays.
  if constexpr (std::is_same_v<S, float>) {
    auto big = B::make(ctx, sh), v1 = zero, m1 = zero, values1 = theta.tensor;
    B::fill(ctx, big, S(1e20));
    B::apply_adam(ctx, ayf::fn::adam_update{b1, b2, 1.0, lr, c1, c2, eps, wd}, values1, m1, v1, big);
    const auto got = B::to_host(ctx, values1), before = B::to_host(ctx, theta.tensor);
    std::size_t bad = 0;
    for (std::size_t k = 0; k < got.size(); ++k) bad += got[k] != before[k] - S(lr * wd) * before[k];
    CHECK(bad == 0);
  }

  // Shapes must match and the four buffers must be distinct.
  auto small = B::make(ctx, shape(3, 3000));
  CHECK_THROWS_WITH(B::apply_adam(ctx, f, values, first, small, g.tensor),
                    Contains("apply_adam") && Contains("second"));
  CHECK_THROWS_WITH(B::apply_adam(ctx, f, values, values, second, g.tensor),
                    Contains("apply_adam") && Contains("overlapping"));
  CHECK_THROWS_WITH(B::apply_adam(ctx, f, values, first, second, second),
                    Contains("apply_adam") && Contains("overlapping"));
}

TEMPLATE_TEST_CASE("the Eigen backend's SIMD square root is std::sqrt's, bit for bit", "[backend][adam][cpu]", float,
                   double) {
  using S = TestType;
  using limits = std::numeric_limits<S>;
  std::vector<S> x = {S(0), -S(0), S(1), S(2), limits::min(), limits::denorm_min(), limits::max(),
                      limits::infinity(), -S(1), limits::quiet_NaN(), S(0.3)};
  std::mt19937_64 gen(7);
  for (int k = 0; k < 77; ++k) x.push_back(std::ldexp(static_cast<S>(gen() >> 11) + S(1), static_cast<int>(gen() % 200) - 150));
  std::vector<S> root = x;
  ayf::detail::sqrt_in_place(root.data(), root.size());
  for (std::size_t k = 0; k < x.size(); ++k) {
    const S expected = std::sqrt(x[k]);
    INFO("x = " << x[k]);
    if (std::isnan(expected)) {
      CHECK(std::isnan(root[k]));
    } else {
      CHECK(std::bit_cast<std::conditional_t<sizeof(S) == 4, std::uint32_t, std::uint64_t>>(root[k]) ==
            std::bit_cast<std::conditional_t<sizeof(S) == 4, std::uint32_t, std::uint64_t>>(expected));
    }
  }
}

TEMPLATE_TEST_CASE("scale_sum_rows combines rows with scalar and per-sample coefficients",
                   "[backend][cpu]", AYF_HOST_BACKENDS) {
  using B = TestType;
  using tol = ayf_test::backend_tolerance<B>;
  typename B::context ctx(7);
  set_parallel<B>(ctx, GENERATE(false, true));
  const shape sh(11, 17);
  const auto x1 = random_tensor<B>(ctx, sh, 11), x2 = random_tensor<B>(ctx, sh, 12),
             x3 = random_tensor<B>(ctx, sh, 13);
  const auto c1 = random_tensor<B>(ctx, shape::vector(sh.rows), 14, -2.0, 2.0);
  const auto c3 = random_tensor<B>(ctx, shape::vector(sh.rows), 15, -2.0, 2.0);

  // coefficient k of row i, and x_k[i, j], as doubles; the reference sums sum_k c_k x_k with
  // its magnitude sum_k |c_k x_k| as the scale of the rounding error.
  auto check = [&](const typename B::tensor& y, const auto& terms) {
    REQUIRE(B::shape_of(y) == sh);
    std::size_t bad = 0;
    for (std::size_t i = 0; i < sh.rows; ++i)
      for (std::size_t j = 0; j < sh.cols; ++j) {
        double sum = 0, magnitude = 0;
        for (const auto& [coef, x] : terms(i)) {
          sum += coef * x->values[i * sh.cols + j];
          magnitude += std::abs(coef * x->values[i * sh.cols + j]);
        }
        bad += !ayf_test::close<tol>(at(y, i, j), sum, magnitude);
      }
    CHECK(bad == 0);
  };
  using term = std::pair<double, const sample<B>*>;

  SECTION("one scalar coefficient, output resized") {
    auto y = B::make(ctx, shape(2, 3));
    B::scale_sum_rows(ctx, y, 2.5, x1.tensor);
    check(y, [&](std::size_t) { return std::vector<term>{{2.5, &x1}}; });
  }
  SECTION("three scalar coefficients of mixed arithmetic types") {
    auto y = B::make(ctx, sh);
    B::scale_sum_rows(ctx, y, 0.5, x1.tensor, -2.0f, x2.tensor, 3, x3.tensor);
    check(y, [&](std::size_t) { return std::vector<term>{{0.5, &x1}, {-2.0, &x2}, {3.0, &x3}}; });
  }
  SECTION("per-sample [B, 1] coefficients mixed with a scalar") {
    auto y = B::make(ctx, sh);
    B::scale_sum_rows(ctx, y, c1.tensor, x1.tensor, -0.75, x2.tensor, c3.tensor, x3.tensor);
    check(y, [&](std::size_t i) {
      return std::vector<term>{{c1.values[i], &x1}, {-0.75, &x2}, {c3.values[i], &x3}};
    });
  }
  SECTION("the output aliases the first input") {
    auto y = B::make(ctx, sh);
    B::copy(ctx, x1.tensor, y);
    B::scale_sum_rows(ctx, y, c1.tensor, y, 1.25, x2.tensor);
    check(y, [&](std::size_t i) { return std::vector<term>{{c1.values[i], &x1}, {1.25, &x2}}; });
  }
  SECTION("the output aliases a later input") {
    auto y = B::make(ctx, sh);
    B::copy(ctx, x2.tensor, y);
    B::scale_sum_rows(ctx, y, -1.0, x1.tensor, c3.tensor, y, c1.tensor, x3.tensor);
    check(y, [&](std::size_t i) {
      return std::vector<term>{{-1.0, &x1}, {c3.values[i], &x2}, {c1.values[i], &x3}};
    });
  }
}

TEMPLATE_TEST_CASE("reduce_rows sums a functor along each row", "[backend][cpu]",
                   AYF_HOST_BACKENDS) {
  using B = TestType;
  using tol = ayf_test::backend_tolerance<B>;
  typename B::context ctx(9);
  set_parallel<B>(ctx, GENERATE(false, true));
  const shape sh(19, 301);
  const auto a = random_tensor<B>(ctx, sh, 21), b = random_tensor<B>(ctx, sh, 22),
             c = random_tensor<B>(ctx, sh, 23);
  auto out = B::make(ctx, sh);  // resized to [B, 1]

  auto expect = [&](const auto& term) {
    REQUIRE(B::shape_of(out) == shape::vector(sh.rows));
    for (std::size_t i = 0; i < sh.rows; ++i) {
      double sum = 0, magnitude = 0;
      for (std::size_t j = 0; j < sh.cols; ++j) {
        sum += term(i * sh.cols + j);
        magnitude += std::abs(term(i * sh.cols + j));
      }
      INFO("row " << i);
      CHECK(ayf_test::close<tol>(at(out, i, 0), sum, magnitude));
    }
  };
  B::reduce_rows(ctx, out, square{}, a.tensor);
  expect([&](std::size_t k) { return a.values[k] * a.values[k] + 1; });
  B::reduce_rows(ctx, out, product{}, a.tensor, b.tensor);
  expect([&](std::size_t k) { return a.values[k] * b.values[k]; });
  B::reduce_rows(ctx, out, product3{}, a.tensor, b.tensor, c.tensor);
  expect([&](std::size_t k) { return a.values[k] * b.values[k] * c.values[k]; });
}

namespace {
/// im2col of a channels-last [B, H*W*C] image for a 3x3 convolution with zero padding:
/// row (b, y, x), column (ky, kx, c) reads pixel (y + ky - 1, x + kx - 1), channel c, or 0.
struct im2col_map {
  std::int64_t h, w, c;
  std::int64_t operator()(std::int64_t i) const {
    const std::int64_t col = i % (9 * c), row = i / (9 * c);
    const std::int64_t ch = col % c, kx = (col / c) % 3, ky = col / (3 * c);
    const std::int64_t x = row % w + kx - 1, y = (row / w) % h + ky - 1, b = row / (h * w);
    if (x < 0 || x >= w || y < 0 || y >= h) return -1;
    return ((b * h + y) * w + x) * c + ch;
  }
};
/// Its adjoint as a gather: pixel (b, y, x, c) sums the 9 im2col entries that read it.
struct col2im_map {
  std::int64_t h, w, c;
  std::int64_t operator()(std::int64_t i, std::int64_t r) const {
    const std::int64_t ch = i % c, x = (i / c) % w, y = (i / (c * w)) % h, b = i / (c * w * h);
    const std::int64_t ky = r / 3, kx = r % 3;
    const std::int64_t ys = y - ky + 1, xs = x - kx + 1;
    if (xs < 0 || xs >= w || ys < 0 || ys >= h) return -1;
    return ((b * h + ys) * w + xs) * (9 * c) + (ky * 3 + kx) * c + ch;
  }
};
/// The two maps over pixels: block (pixel, tap) of im2col is source pixel; pixel of col2im sums
/// column blocks (pixel', tap).
struct im2col_pixel_map {
  std::int64_t h, w;
  std::int64_t operator()(std::int64_t q) const {
    const std::int64_t tap = q % 9, row = q / 9;
    const std::int64_t kx = tap % 3, ky = tap / 3;
    const std::int64_t x = row % w + kx - 1, y = (row / w) % h + ky - 1, b = row / (h * w);
    if (x < 0 || x >= w || y < 0 || y >= h) return -1;
    return (b * h + y) * w + x;
  }
};
struct col2im_pixel_map {
  std::int64_t h, w;
  std::int64_t operator()(std::int64_t pixel, std::int64_t r) const {
    const std::int64_t x = pixel % w, y = (pixel / w) % h, b = pixel / (w * h);
    const std::int64_t ys = y - r / 3 + 1, xs = x - r % 3 + 1;
    if (xs < 0 || xs >= w || ys < 0 || ys >= h) return -1;
    return ((b * h + ys) * w + xs) * 9 + r;
  }
};
}  // namespace

TEMPLATE_TEST_CASE("gather and gather_sum compute im2col and its adjoint, element by element and over channel runs", "[backend][cpu]",
                   AYF_HOST_BACKENDS) {
  using B = TestType;
  using tol = ayf_test::backend_tolerance<B>;
  typename B::context ctx(4);
  set_parallel<B>(ctx, GENERATE(false, true));
  const std::int64_t batch = 3, h = 5, w = 4, c = 2;
  const shape image(batch, h * w * c), columns(batch * h * w, 9 * c);
  const auto x = random_tensor<B>(ctx, image, 31);
  const auto u = random_tensor<B>(ctx, columns, 32);
  auto cols = B::make(ctx, shape(1, 1));
  B::gather(ctx, cols, columns, x.tensor, im2col_map{h, w, c});
  REQUIRE(B::shape_of(cols) == columns);
  const auto got = B::to_host(ctx, cols);
  std::size_t zeros = 0;
  for (std::int64_t b = 0; b < batch; ++b)
    for (std::int64_t y = 0; y < h; ++y)
      for (std::int64_t xx = 0; xx < w; ++xx)
        for (std::int64_t ky = 0; ky < 3; ++ky)
          for (std::int64_t kx = 0; kx < 3; ++kx)
            for (std::int64_t ch = 0; ch < c; ++ch) {
              const std::int64_t sy = y + ky - 1, sx = xx + kx - 1;
              const double want = (sy < 0 || sy >= h || sx < 0 || sx >= w)
                                      ? 0.0
                                      : x.values[static_cast<std::size_t>(((b * h + sy) * w + sx) * c + ch)];
              const auto k = static_cast<std::size_t>((((b * h + y) * w + xx) * 9 + ky * 3 + kx) * c + ch);
              zeros += want == 0.0;
              REQUIRE(static_cast<double>(got[k]) == want);
            }
  CHECK(zeros == static_cast<std::size_t>(batch * c * (2 * (w * 3) + 2 * (h * 3) - 4)));

  // <im2col(x), u> = <x, col2im(u)>.
  auto back = B::make(ctx, shape(1, 1));
  B::gather_sum(ctx, back, image, u.tensor, col2im_map{h, w, c}, 9);
  REQUIRE(B::shape_of(back) == image);
  const auto adj = B::to_host(ctx, back);
  double lhs = 0, rhs = 0, magnitude = 0;
  for (std::size_t k = 0; k < got.size(); ++k) {
    lhs += static_cast<double>(got[k]) * u.values[k];
    magnitude += std::abs(static_cast<double>(got[k]) * u.values[k]);
  }
  for (std::size_t k = 0; k < adj.size(); ++k) rhs += x.values[k] * static_cast<double>(adj[k]);
  CHECK(ayf_test::close<tol>(rhs, lhs, magnitude));

  CHECK_THROWS_WITH(B::gather_sum(ctx, back, image, u.tensor, col2im_map{h, w, c}, -1),
                    Contains("taps"));

  // The same over runs of c channels (block = c): the map indexes pixels, not elements.
  auto cols_blocked = B::make(ctx, shape(1, 1));
  B::gather(ctx, cols_blocked, columns, x.tensor, im2col_pixel_map{h, w}, c);
  CHECK(B::to_host(ctx, cols_blocked) == got);
  auto back_blocked = B::make(ctx, shape(1, 1));
  B::gather_sum(ctx, back_blocked, image, u.tensor, col2im_pixel_map{h, w}, 9, c);
  CHECK(B::to_host(ctx, back_blocked) == adj);
  CHECK_THROWS_WITH(B::gather(ctx, cols_blocked, columns, x.tensor, im2col_pixel_map{h, w}, 7), Contains("block"));
  CHECK_THROWS_WITH(B::gather_sum(ctx, back_blocked, image, u.tensor, col2im_pixel_map{h, w}, 9, 0),
                    Contains("block"));
}

TEMPLATE_TEST_CASE("reduce_all and dot sum over every element", "[backend][cpu]",
                   AYF_HOST_BACKENDS) {
  using B = TestType;
  using tol = ayf_test::backend_tolerance<B>;
  typename B::context ctx(13);
  set_parallel<B>(ctx, GENERATE(false, true));
  // One chunk, and several chunks of host_kernels::reduce_chunk with a ragged last one.
  const shape sh = GENERATE(shape(13, 29), shape(41, 700));
  const auto a = random_tensor<B>(ctx, sh, 31), b = random_tensor<B>(ctx, sh, 32);
  INFO("shape " << sh);

  long double sum_sq = 0, sum_ab = 0, mag_ab = 0;
  for (std::size_t k = 0; k < sh.size(); ++k) {
    sum_sq += static_cast<long double>(a.values[k]) * a.values[k] + 1;
    sum_ab += static_cast<long double>(a.values[k]) * b.values[k];
    mag_ab += std::abs(static_cast<long double>(a.values[k]) * b.values[k]);
  }
  CHECK(ayf_test::close<tol>(static_cast<double>(B::reduce_all(ctx, square{}, a.tensor)),
                             static_cast<double>(sum_sq)));
  CHECK(ayf_test::close<tol>(static_cast<double>(B::reduce_all(ctx, product{}, a.tensor, b.tensor)),
                             static_cast<double>(sum_ab), static_cast<double>(mag_ab)));
  CHECK(ayf_test::close<tol>(static_cast<double>(B::dot(ctx, a.tensor, b.tensor)),
                             static_cast<double>(sum_ab), static_cast<double>(mag_ab)));
  // An empty tensor sums to zero.
  const auto empty = B::make(ctx, shape(0, 3));
  CHECK(B::reduce_all(ctx, square{}, empty) == 0);
}

TEMPLATE_TEST_CASE("extrema finds the smallest and the largest entry", "[backend][cpu]",
                   AYF_HOST_BACKENDS) {
  using B = TestType;
  using S = typename B::scalar;
  typename B::context ctx(17);
  const shape sh(23, 31);
  auto x = random_tensor<B>(ctx, sh, 41);
  auto host = B::to_host(ctx, x.tensor);
  host[17 * 31 + 4] = S(-7.5);
  host[3 * 31 + 30] = S(9.25);
  const auto planted = B::from_host(ctx, host, sh);
  const auto [lo, hi] = B::extrema(ctx, planted);
  CHECK(lo == S(-7.5));
  CHECK(hi == S(9.25));

  // Without planted values: against a loop over the entries.
  double ref_lo = std::numeric_limits<double>::infinity(), ref_hi = -ref_lo;
  for (double v : x.values) {
    ref_lo = std::min(ref_lo, v);
    ref_hi = std::max(ref_hi, v);
  }
  const auto [lo2, hi2] = B::extrema(ctx, x.tensor);
  CHECK(static_cast<double>(lo2) == ref_lo);
  CHECK(static_cast<double>(hi2) == ref_hi);

  const auto one = B::from_host(ctx, {S(-0.5)}, shape(1, 1));
  CHECK(B::extrema(ctx, one) == std::pair<S, S>{S(-0.5), S(-0.5)});
}

TEMPLATE_TEST_CASE("gemm matches a naive triple loop for every transpose combination",
                   "[backend][gemm][cpu]", AYF_HOST_BACKENDS) {
  using B = TestType;
  using S = typename B::scalar;
  using tol = ayf_test::backend_tolerance<B>;
  using ayf::transpose;
  typename B::context ctx(19);
  const bool ta = GENERATE(false, true), tb = GENERATE(false, true);
  // Small and odd, then large enough for Eigen's blocked kernels.
  const auto dims = GENERATE(std::array<std::size_t, 3>{5, 7, 3}, std::array<std::size_t, 3>{33, 65, 17});
  const std::size_t m = dims[0], k = dims[1], n = dims[2];
  const double alpha = 1.5;
  const double beta = GENERATE(0.0, 1.0, -0.5);
  INFO("op_a " << (ta ? "T" : "N") << ", op_b " << (tb ? "T" : "N") << ", m " << m << ", k " << k
               << ", n " << n << ", beta " << beta);

  // Stored shapes: op(A) is m x k, op(B) is k x n.
  const auto a = random_tensor<B>(ctx, ta ? shape(k, m) : shape(m, k), 51);
  const auto b = random_tensor<B>(ctx, tb ? shape(n, k) : shape(k, n), 52);
  const auto c0 = random_tensor<B>(ctx, shape(m, n), 53);
  auto op_a = [&](std::size_t i, std::size_t p) { return ta ? a.values[p * m + i] : a.values[i * k + p]; };
  auto op_b = [&](std::size_t p, std::size_t j) { return tb ? b.values[j * k + p] : b.values[p * n + j]; };

  auto c = B::make(ctx, shape(m, n));
  if (beta == 0.0) {
    // beta = 0 overwrites C: prior NaNs must not leak (BLAS convention).
    B::fill(ctx, c, std::numeric_limits<S>::quiet_NaN());
  } else {
    B::copy(ctx, c0.tensor, c);
  }
  B::gemm(ctx, ta ? transpose::yes : transpose::no, tb ? transpose::yes : transpose::no,
          static_cast<S>(alpha), a.tensor, b.tensor, static_cast<S>(beta), c);
  REQUIRE(B::shape_of(c) == shape(m, n));
  std::size_t bad = 0;
  for (std::size_t i = 0; i < m; ++i)
    for (std::size_t j = 0; j < n; ++j) {
      double sum = 0, magnitude = 0;
      for (std::size_t p = 0; p < k; ++p) {
        sum += op_a(i, p) * op_b(p, j);
        magnitude += std::abs(op_a(i, p) * op_b(p, j));
      }
      const double prior = beta == 0.0 ? 0.0 : beta * c0.values[i * n + j];
      const double expected = alpha * sum + prior;
      const double scale = std::abs(alpha) * magnitude + std::abs(prior);
      if (!ayf_test::close<tol>(at(c, i, j), expected, scale)) {
        ++bad;
        UNSCOPED_INFO("C(" << i << ", " << j << ") = " << at(c, i, j) << ", expected " << expected);
      }
    }
  CHECK(bad == 0);

  SECTION("beta = 0 resizes a C of another shape") {
    auto d = B::make(ctx, shape(1, 2));
    B::gemm(ctx, ta ? transpose::yes : transpose::no, tb ? transpose::yes : transpose::no, S(1),
            a.tensor, b.tensor, S(0), d);
    REQUIRE(B::shape_of(d) == shape(m, n));
    std::size_t wrong = 0;
    for (std::size_t i = 0; i < m; ++i)
      for (std::size_t j = 0; j < n; ++j) {
        double sum = 0, magnitude = 0;
        for (std::size_t p = 0; p < k; ++p) {
          sum += op_a(i, p) * op_b(p, j);
          magnitude += std::abs(op_a(i, p) * op_b(p, j));
        }
        wrong += !ayf_test::close<tol>(at(d, i, j), sum, magnitude);
      }
    CHECK(wrong == 0);
  }
}

TEMPLATE_TEST_CASE("randn and rand_uniform are the Philox draws at the stream's offset",
                   "[backend][philox][cpu]", AYF_HOST_BACKENDS) {
  using B = TestType;
  using S = typename B::scalar;
  const std::uint64_t seed = 0xfeedfacecafeULL;
  // Even and odd offsets: two normals share a Philox block, so an odd start begins mid-block.
  const std::uint64_t offset = GENERATE(std::uint64_t{123456789012}, std::uint64_t{123456789013});
  typename B::context ctx(seed);
  ctx.rng.offset = offset;
  set_parallel<B>(ctx, GENERATE(false, true));
  const shape sh(17, 9);

  auto x = B::make(ctx, sh), u = B::make(ctx, sh);
  B::randn(ctx, x);
  CHECK(ctx.rng.offset == offset + sh.size());
  B::rand_uniform(ctx, u);
  CHECK(ctx.rng.offset == offset + 2 * sh.size());
  CHECK(ctx.rng.seed == seed);

  std::size_t normal_bad = 0, uniform_bad = 0;
  for (std::size_t i = 0; i < sh.rows; ++i)
    for (std::size_t j = 0; j < sh.cols; ++j) {
      const std::uint64_t index = i * sh.cols + j;  // row-major order of the draws
      normal_bad += at(x, i, j) != static_cast<double>(static_cast<S>(ayf::philox_normal(seed, offset + index)));
      uniform_bad += at(u, i, j) != static_cast<double>(
                                        static_cast<S>(ayf::philox_uniform(seed, offset + sh.size() + index)));
    }
  CHECK(normal_bad == 0);
  CHECK(uniform_bad == 0);

  // A fresh context with the same seed and offset repeats the draws.
  typename B::context again(seed);
  again.rng.offset = offset;
  auto x2 = B::make(again, sh);
  B::randn(again, x2);
  CHECK(B::to_host(again, x2) == B::to_host(ctx, x));
}

TEMPLATE_TEST_CASE("backend operations reject wrong arguments with ayf::error naming them",
                   "[backend][errors][cpu]", AYF_HOST_BACKENDS) {
  using B = TestType;
  using S = typename B::scalar;
  using ayf::transpose;
  typename B::context ctx(23);
  const auto a = B::make(ctx, shape(3, 4)), b = B::make(ctx, shape(4, 3)),
             a2 = B::make(ctx, shape(3, 4));
  auto out = B::make(ctx, shape(3, 4));

  SECTION("transform with inputs of different shapes") {
    REQUIRE_THROWS_AS(B::transform(ctx, out, product{}, a, b), ayf::error);
    REQUIRE_THROWS_WITH(B::transform(ctx, out, product{}, a, b),
                        Contains("transform") && Contains("'input'") && Contains("[3, 4]") &&
                            Contains("[4, 3]"));
    REQUIRE_THROWS_WITH(B::transform(ctx, out, fma3{}, a, a2, b), Contains("'input'"));
    REQUIRE_THROWS_WITH(B::transform_pair(ctx, out, out, product_and_sum{}, a, b),
                        Contains("transform_pair") && Contains("'input'") && Contains("[4, 3]"));
  }
  SECTION("transform_pair into one buffer twice, or into overlapping views") {
    auto other = B::make(ctx, shape(3, 4));
    REQUIRE_THROWS_WITH(B::transform_pair(ctx, other, other, square_and_negative{}, a), Contains("transform_pair"));
    auto flat = B::make(ctx, shape(1, 20));
    REQUIRE_THROWS_WITH(B::transform_pair(ctx, B::slice(ctx, flat, 0, shape(3, 4)), B::slice(ctx, flat, 8, shape(3, 4)),
                                          square_and_negative{}, a),
                        Contains("transform_pair"));
    // Adjacent views do not overlap.
    B::transform_pair(ctx, B::slice(ctx, flat, 0, shape(2, 4)), B::slice(ctx, flat, 8, shape(2, 4)),
                      square_and_negative{}, B::slice(ctx, a, 0, shape(2, 4)));
  }
  SECTION("an output that would be resized while it is also an input") {
    auto coefficient = B::make(ctx, shape(3, 1));
    auto wide = B::make(ctx, shape(3, 8));
    // Resizing `coefficient` to [3, 8] would free the coefficients before they are read.
    REQUIRE_THROWS_WITH(B::scale_sum_rows(ctx, coefficient, coefficient, wide),
                        Contains("scale_sum_rows") && Contains("'out'") && Contains("distinct"));
    // reduce_rows into its own [3, 8] input would shrink it to [3, 1] first.
    REQUIRE_THROWS_WITH(B::reduce_rows(ctx, wide, product{}, wide, wide),
                        Contains("reduce_rows") && Contains("'out'"));
    // Aliasing with an unchanged shape stays allowed.
    auto y = B::make(ctx, shape(3, 8));
    B::fill(ctx, y, S(2));
    B::scale_sum_rows(ctx, y, 0.5, y);
    CHECK(B::to_host(ctx, y) == std::vector<S>(24, S(1)));
  }
  SECTION("scale_sum_rows with tensors of different shapes") {
    REQUIRE_THROWS_AS(B::scale_sum_rows(ctx, out, 1.0, a, 2.0, b), ayf::error);
    REQUIRE_THROWS_WITH(B::scale_sum_rows(ctx, out, 1.0, a, 2.0, b),
                        Contains("scale_sum_rows") && Contains("'x'") && Contains("[4, 3]"));
  }
  SECTION("scale_sum_rows with a coefficient that is not [B, 1]") {
    const auto wide = B::make(ctx, shape(3, 2)), tall = B::make(ctx, shape(4, 1));
    REQUIRE_THROWS_AS(B::scale_sum_rows(ctx, out, wide, a), ayf::error);
    REQUIRE_THROWS_WITH(B::scale_sum_rows(ctx, out, wide, a),
                        Contains("scale_sum_rows") && Contains("'coefficient'") &&
                            Contains("[3, 1]") && Contains("[3, 2]"));
    REQUIRE_THROWS_AS(B::scale_sum_rows(ctx, out, 1.0, a, tall, a2), ayf::error);
    REQUIRE_THROWS_WITH(B::scale_sum_rows(ctx, out, 1.0, a, tall, a2),
                        Contains("'coefficient'") && Contains("[4, 1]"));
  }
  SECTION("reduce_rows, reduce_all and dot with inputs of different shapes") {
    REQUIRE_THROWS_AS(B::reduce_rows(ctx, out, product{}, a, b), ayf::error);
    REQUIRE_THROWS_WITH(B::reduce_rows(ctx, out, product{}, a, b),
                        Contains("reduce_rows") && Contains("'input'") && Contains("[4, 3]"));
    REQUIRE_THROWS_AS(B::reduce_all(ctx, product{}, a, b), ayf::error);
    REQUIRE_THROWS_WITH(B::reduce_all(ctx, product{}, a, b),
                        Contains("reduce_all") && Contains("'input'"));
    REQUIRE_THROWS_AS(B::dot(ctx, a, b), ayf::error);
  }
  SECTION("gemm with mismatched inner dimensions") {
    auto c = B::make(ctx, shape(3, 3));
    // op(A) = [3, 4], op(B) = B^T = [3, 4]: 4 columns against 3 rows.
    REQUIRE_THROWS_AS(B::gemm(ctx, transpose::no, transpose::yes, S(1), a, b, S(0), c), ayf::error);
    REQUIRE_THROWS_WITH(B::gemm(ctx, transpose::no, transpose::yes, S(1), a, b, S(0), c),
                        Contains("gemm") && Contains("'B'") && Contains("received 3"));
    // op(A) = A^T = [4, 3] against op(B) = B = [4, 3].
    REQUIRE_THROWS_AS(B::gemm(ctx, transpose::yes, transpose::no, S(1), a, b, S(0), c),
                      ayf::error);
    // The well-formed products of the same operands do not throw.
    REQUIRE_NOTHROW(B::gemm(ctx, transpose::yes, transpose::no, S(1), a, a2, S(0), c));
    REQUIRE_NOTHROW(B::gemm(ctx, transpose::no, transpose::no, S(1), a, b, S(0), c));
  }
  SECTION("gemm accumulating into a C of the wrong shape") {
    auto c = B::make(ctx, shape(3, 4));  // A B = [3, 3]
    REQUIRE_THROWS_AS(B::gemm(ctx, transpose::no, transpose::no, S(1), a, b, S(1), c), ayf::error);
    REQUIRE_THROWS_WITH(B::gemm(ctx, transpose::no, transpose::no, S(1), a, b, S(1), c),
                        Contains("gemm") && Contains("'C'") && Contains("[3, 3]") &&
                            Contains("[3, 4]"));
  }
  SECTION("from_host with the wrong number of values") {
    const std::vector<S> eleven(11, S(1));
    REQUIRE_THROWS_AS(B::from_host(ctx, eleven, shape(3, 4)), ayf::error);
    REQUIRE_THROWS_WITH(B::from_host(ctx, eleven, shape(3, 4)),
                        Contains("from_host") && Contains("'values'") && Contains("12") &&
                            Contains("received 11"));
    const std::vector<S> thirteen(13, S(1));
    REQUIRE_THROWS_AS(B::from_host(ctx, thirteen, shape(3, 4)), ayf::error);
    REQUIRE_THROWS_WITH(B::from_host(ctx, thirteen, shape(3, 4)),
                        Contains("'values'") && Contains("received 13"));
  }
  SECTION("extrema of an empty tensor") {
    const auto empty = B::make(ctx, shape(0, 4));
    REQUIRE_THROWS_AS(B::extrema(ctx, empty), ayf::error);
    REQUIRE_THROWS_WITH(B::extrema(ctx, empty), Contains("extrema") && Contains("'x'"));
  }
}

namespace {

/// The identity, recording whether any element ran off the calling thread. On the calling thread
/// it waits (up to a deadline) for a oneTBB worker to take some of the work, so the "parallel"
/// run really is split whenever more than one thread is available.
struct split_probe {
  std::thread::id caller;
  std::atomic<bool>* worker_ran;
  std::atomic<bool>* gave_up;
  std::chrono::steady_clock::time_point deadline;

  double operator()(double v) const {
    if (std::this_thread::get_id() != caller) {
      worker_ran->store(true, std::memory_order_relaxed);
    } else if (!worker_ran->load(std::memory_order_relaxed) &&
               !gave_up->load(std::memory_order_relaxed)) {
      while (!worker_ran->load(std::memory_order_relaxed)) {
        if (std::chrono::steady_clock::now() > deadline) {
          gave_up->store(true, std::memory_order_relaxed);
          break;
        }
        std::this_thread::yield();
      }
    }
    return v;
  }
};

}  // namespace

TEST_CASE("reduce_all is bitwise the same serial, on oneTBB threads, and on xtensor",
          "[backend][determinism][cpu]") {
  using eigen_d = ayf::eigen_backend<double>;
  using xt_d = ayf::xtensor_backend<double>;
  const shape sh(1000, 1000);
  eigen_d::context ce(2718);
  auto x = eigen_d::make(ce, sh);
  eigen_d::randn(ce, x);
  xt_d::context cx;
  const auto host = eigen_d::to_host(ce, x);
  const auto xx = xt_d::from_host(cx, host, sh);

  ce.executor.min_parallel_work = std::size_t{1} << 30;
  const double serial = eigen_d::reduce_all(ce, identity{}, x);
  const double serial_dot = eigen_d::dot(ce, x, x);

  const double xtensor = xt_d::reduce_all(cx, identity{}, xx);
  const double xtensor_dot = xt_d::dot(cx, xx, xx);
  CHECK(std::bit_cast<std::uint64_t>(serial) == std::bit_cast<std::uint64_t>(xtensor));
  CHECK(std::bit_cast<std::uint64_t>(serial_dot) == std::bit_cast<std::uint64_t>(xtensor_dot));

  // 1024: one chunk per task; 1 << 17: tasks of about 16 chunks each.
  for (const std::size_t min_work : {std::size_t{1024}, std::size_t{1} << 17}) {
    INFO("min_parallel_work " << min_work);
    std::atomic<bool> worker_ran{false}, gave_up{false};
    const split_probe probe{std::this_thread::get_id(), &worker_ran, &gave_up,
                            std::chrono::steady_clock::now() + std::chrono::seconds(2)};
    ce.executor.min_parallel_work = min_work;
    const double parallel = eigen_d::reduce_all(ce, probe, x);
    const double parallel_dot = eigen_d::dot(ce, x, x);
    if (tbb::info::default_concurrency() > 1) {
      CHECK(worker_ran.load());  // otherwise the comparison below proves nothing
    } else {
      WARN("only one oneTBB thread: the parallel reduction ran serially");
    }
    CHECK(std::bit_cast<std::uint64_t>(serial) == std::bit_cast<std::uint64_t>(parallel));
    CHECK(std::bit_cast<std::uint64_t>(serial_dot) == std::bit_cast<std::uint64_t>(parallel_dot));
  }

  // The documented order (host_kernels.hpp): within each fixed chunk, element i of the chunk
  // into lane i mod reduce_lanes, each lane in order, the lanes added in order; then the chunk
  // sums in order. A plain left-to-right sum of the same data differs in its last bits, which
  // shows that the comparisons above are sensitive to the summation order.
  const std::size_t chunk = ayf::host_kernels::reduce_chunk, lanes = ayf::host_kernels::reduce_lanes;
  double chunked = 0, plain = 0;
  for (std::size_t begin = 0; begin < host.size(); begin += chunk) {
    std::vector<double> lane(lanes, 0.0);
    for (std::size_t k = begin; k < std::min(begin + chunk, host.size()); ++k) lane[(k - begin) % lanes] += host[k];
    double partial = 0;
    for (double v : lane) partial += v;
    chunked += partial;
  }
  for (double v : host) plain += v;
  CHECK(std::bit_cast<std::uint64_t>(serial) == std::bit_cast<std::uint64_t>(chunked));
  CHECK(plain != chunked);
  CHECK(std::abs(serial - plain) < 1e-9);
}

TEMPLATE_TEST_CASE("gemm large enough to split over oneTBB row blocks matches a naive loop and repeats bitwise",
                   "[backend][gemm][cpu]", ayf::eigen_backend<double>, ayf::eigen_backend<float>) {
  using B = TestType;
  using S = typename B::scalar;
  typename B::context ctx(31);
  const std::size_t m = 320, n = 144, k = 160;  // m n k > 2^22: the parallel path
  for (bool ta : {false, true}) {
    for (bool tb : {false, true}) {
      const auto a = random_tensor<B>(ctx, ta ? shape(k, m) : shape(m, k), 101);
      const auto b = random_tensor<B>(ctx, tb ? shape(n, k) : shape(k, n), 102);
      auto c = B::make(ctx, shape(m, n));
      B::gemm(ctx, ta ? ayf::transpose::yes : ayf::transpose::no, tb ? ayf::transpose::yes : ayf::transpose::no, S(1),
              a.tensor, b.tensor, S(0), c);
      const auto first = B::to_host(ctx, c);
      double worst = 0;
      for (std::size_t i = 0; i < m; ++i) {
        for (std::size_t j = 0; j < n; ++j) {
          double expected = 0;
          for (std::size_t p = 0; p < k; ++p) {
            expected += a.values[ta ? p * m + i : i * k + p] * b.values[tb ? j * k + p : p * n + j];
          }
          worst = std::max(worst, std::abs(static_cast<double>(first[i * n + j]) - expected));
        }
      }
      INFO("ta " << ta << " tb " << tb << " max error " << worst);
      CHECK(worst < (std::is_same_v<S, float> ? 1e-4 : 1e-12));
      for (int repeat = 0; repeat < 3; ++repeat) {
        B::gemm(ctx, ta ? ayf::transpose::yes : ayf::transpose::no, tb ? ayf::transpose::yes : ayf::transpose::no,
                S(1), a.tensor, b.tensor, S(0), c);
        CHECK(B::to_host(ctx, c) == first);
      }
    }
  }
}

// ---- broadcast_add, sum_columns, max_rows, gather_rows / scatter_add_rows, gemm_batched ----------

TEMPLATE_TEST_CASE("broadcast_add adds alpha times a row repeated over runs of C columns, or a per-row column",
                   "[backend][primitives][cpu]", AYF_HOST_BACKENDS) {
  using B = TestType;
  using S = typename B::scalar;
  using tol = ayf_test::backend_tolerance<B>;
  typename B::context ctx(41);
  set_parallel<B>(ctx, GENERATE(false, true));
  const shape sh(5, 12);
  const auto y0 = random_tensor<B>(ctx, sh, 61);

  // y + alpha v(i, j) against y0 and the reference broadcast v(i, j).
  auto check = [&](const auto& y, double alpha, const auto& v) {
    REQUIRE(B::shape_of(y) == sh);
    std::size_t bad = 0;
    for (std::size_t i = 0; i < sh.rows; ++i)
      for (std::size_t j = 0; j < sh.cols; ++j) {
        const double prior = y0.values[i * sh.cols + j], term = alpha * v(i, j);
        if (!ayf_test::close<tol>(at(y, i, j), prior + term, std::abs(prior) + std::abs(term))) {
          ++bad;
          UNSCOPED_INFO("y(" << i << ", " << j << ") = " << at(y, i, j) << ", expected " << prior + term);
        }
      }
    CHECK(bad == 0);
  };

  SECTION("a [1, C] row for every divisor C of N (C = 1: one number; C = N: a plain row bias)") {
    for (const std::size_t c : {std::size_t{1}, std::size_t{3}, std::size_t{4}, std::size_t{12}}) {
      INFO("C = " << c);
      const auto v = random_tensor<B>(ctx, shape(1, c), 62 + c);
      auto y = B::make(ctx, sh);
      B::copy(ctx, y0.tensor, y);
      B::broadcast_add(ctx, y, -1.5, v.tensor);
      check(y, -1.5, [&](std::size_t, std::size_t j) { return v.values[j % c]; });
    }
  }
  SECTION("a [R, 1] column, alpha in the backend's scalar") {
    const auto v = random_tensor<B>(ctx, shape::vector(sh.rows), 70);
    auto y = B::make(ctx, sh);
    B::copy(ctx, y0.tensor, y);
    B::broadcast_add(ctx, y, S(0.75), v.tensor);
    check(y, static_cast<double>(S(0.75)), [&](std::size_t i, std::size_t) { return v.values[i]; });
  }
  SECTION("into a view of a flat buffer, from a const view") {
    const auto flat_v = random_tensor<B>(ctx, shape(1, 9), 71);
    auto flat_y = B::make(ctx, shape(1, sh.size() + 2));
    B::copy(ctx, y0.tensor, B::slice(ctx, flat_y, 2, sh));
    B::broadcast_add(ctx, B::slice(ctx, flat_y, 2, sh), 2.0, B::slice(ctx, flat_v.tensor, 5, shape(1, 4)));
    const auto host = B::to_host(ctx, flat_y);
    CHECK(host[0] == S(0));
    CHECK(host[1] == S(0));
    auto y = B::from_host(ctx, std::vector<S>(host.begin() + 2, host.end()), sh);
    check(y, 2.0, [&](std::size_t, std::size_t j) { return flat_v.values[5 + j % 4]; });
  }
}

TEMPLATE_TEST_CASE("sum_columns folds column sums over runs of C columns into [1, C], with beta",
                   "[backend][primitives][cpu]", AYF_HOST_BACKENDS) {
  using B = TestType;
  using S = typename B::scalar;
  using tol = ayf_test::backend_tolerance<B>;
  typename B::context ctx(43);
  set_parallel<B>(ctx, GENERATE(false, true));
  const shape sh(7, 24);
  const auto x = random_tensor<B>(ctx, sh, 81);
  const double beta = GENERATE(0.0, 1.0, -0.5);
  for (const std::size_t c : {std::size_t{1}, std::size_t{3}, std::size_t{8}, std::size_t{24}}) {
    INFO("C = " << c << ", beta = " << beta);
    const auto prior = random_tensor<B>(ctx, shape(1, c), 82 + c);
    auto out = B::make(ctx, shape(1, c));
    if (beta == 0.0) {
      B::fill(ctx, out, std::numeric_limits<S>::quiet_NaN());  // beta = 0 ignores the old values
    } else {
      B::copy(ctx, prior.tensor, out);
    }
    B::sum_columns(ctx, out, beta, x.tensor);
    REQUIRE(B::shape_of(out) == shape(1, c));
    for (std::size_t k = 0; k < c; ++k) {
      double sum = 0, magnitude = 0;
      for (std::size_t i = 0; i < sh.rows; ++i)
        for (std::size_t j = k; j < sh.cols; j += c) {
          sum += x.values[i * sh.cols + j];
          magnitude += std::abs(x.values[i * sh.cols + j]);
        }
      const double base = beta == 0.0 ? 0.0 : beta * prior.values[k];
      INFO("column " << k);
      CHECK(ayf_test::close<tol>(at(out, 0, k), base + sum, magnitude + std::abs(base)));
    }
  }
  SECTION("accumulating into a view of a gradient buffer, from a const view") {
    auto flat = B::make(ctx, shape(1, 10));
    B::fill(ctx, flat, S(1));
    B::sum_columns(ctx, B::slice(ctx, flat, 3, shape(1, 4)), 1.0, B::slice(ctx, std::as_const(x.tensor), 0, shape(2, 24)));
    const auto host = B::to_host(ctx, flat);
    for (std::size_t k = 0; k < 10; ++k) {
      double expected = 1.0;
      if (k >= 3 && k < 7)
        for (std::size_t j = k - 3; j < 48; j += 4) expected += x.values[j];
      INFO("element " << k);
      CHECK(ayf_test::close<tol>(static_cast<double>(host[k]), expected, 48.0));
    }
  }
}

TEMPLATE_TEST_CASE("max_rows takes the largest entry of every row", "[backend][primitives][cpu]", AYF_HOST_BACKENDS) {
  using B = TestType;
  using S = typename B::scalar;
  typename B::context ctx(47);
  set_parallel<B>(ctx, GENERATE(false, true));
  const shape sh(9, 13);
  auto x = random_tensor<B>(ctx, sh, 91, -5.0, 5.0);
  // Row 1 all negative, row 2 a single repeated value, row 3 its maximum last, row 4 a NaN.
  std::vector<S> v(x.values.begin(), x.values.end());
  for (std::size_t j = 0; j < sh.cols; ++j) {
    v[sh.cols + j] = S(-3) - S(j);
    v[2 * sh.cols + j] = S(0.25);
  }
  v[3 * sh.cols + sh.cols - 1] = S(7);
  v[4 * sh.cols + 5] = std::numeric_limits<S>::quiet_NaN();
  const auto t = B::from_host(ctx, v, sh);
  auto out = B::make(ctx, shape(2, 2));  // resized to [9, 1]
  B::max_rows(ctx, out, t);
  REQUIRE(B::shape_of(out) == shape::vector(sh.rows));
  for (std::size_t i = 0; i < sh.rows; ++i) {
    INFO("row " << i);
    if (i == 4) {
      CHECK(std::isnan(at(out, i, 0)));
      continue;
    }
    double m = -std::numeric_limits<double>::infinity();
    for (std::size_t j = 0; j < sh.cols; ++j) m = std::max(m, static_cast<double>(v[i * sh.cols + j]));
    CHECK(at(out, i, 0) == m);
  }
  CHECK(at(out, 1, 0) == -3.0);
  CHECK(at(out, 3, 0) == 7.0);

  // Into a view, from a const view of the last two rows; one column.
  auto flat = B::make(ctx, shape(1, 4));
  B::max_rows(ctx, B::slice(ctx, flat, 1, shape(2, 1)), B::slice(ctx, t, 7 * sh.cols, shape(2, sh.cols)));
  B::max_rows(ctx, B::slice(ctx, flat, 3, shape(1, 1)), B::slice(ctx, t, 0, shape(1, 1)));
  const auto host = B::to_host(ctx, flat);
  CHECK(host[0] == S(0));
  CHECK(static_cast<double>(host[1]) == at(out, 7, 0));
  CHECK(static_cast<double>(host[2]) == at(out, 8, 0));
  CHECK(host[3] == v[0]);
}

TEMPLATE_TEST_CASE("gather_rows picks table rows by label (zeros for negative labels) and scatter_add_rows is its adjoint",
                   "[backend][primitives][cpu]", AYF_HOST_BACKENDS) {
  using B = TestType;
  using S = typename B::scalar;
  using tol = ayf_test::backend_tolerance<B>;
  typename B::context ctx(53);
  set_parallel<B>(ctx, GENERATE(false, true));
  const std::size_t classes = 4, cols = 5;
  const std::vector<int> labels = {-1, 0, 3, 2, -1, 3, 1, 3, -2, 0};
  const std::size_t rows = labels.size();
  std::vector<S> label_values(rows);
  for (std::size_t i = 0; i < rows; ++i) label_values[i] = static_cast<S>(labels[i]);
  const auto index = B::from_host(ctx, label_values, shape::vector(rows));
  const auto table = random_tensor<B>(ctx, shape(classes, cols), 101);

  SECTION("gather_rows resizes out and copies rows exactly") {
    auto out = B::make(ctx, shape(1, 1));
    B::gather_rows(ctx, out, table.tensor, index);
    REQUIRE(B::shape_of(out) == shape(rows, cols));
    for (std::size_t i = 0; i < rows; ++i)
      for (std::size_t j = 0; j < cols; ++j) {
        const double expected = labels[i] < 0 ? 0.0 : table.values[static_cast<std::size_t>(labels[i]) * cols + j];
        INFO("row " << i << ", column " << j);
        CHECK(at(out, i, j) == expected);
      }
  }
  SECTION("gather_rows into a view, from const views of the table and labels") {
    // Table rows 1..3 as a 3-row table; labels 2 and -1 (entries 3 and 4 of index).
    auto flat = B::make(ctx, shape(1, 2 * cols + 1));
    B::gather_rows(ctx, B::slice(ctx, flat, 1, shape(2, cols)), B::slice(ctx, table.tensor, cols, shape(3, cols)),
                   B::slice(ctx, index, 3, shape::vector(2)));
    const auto host = B::to_host(ctx, flat);
    CHECK(host[0] == S(0));
    for (std::size_t j = 0; j < cols; ++j) {
      CHECK(static_cast<double>(host[1 + j]) == table.values[3 * cols + j]);
      CHECK(host[1 + cols + j] == S(0));
    }
  }
  SECTION("scatter_add_rows adds each labelled row into its table row, in row order") {
    const auto in = random_tensor<B>(ctx, shape(rows, cols), 102);
    auto grad = B::make(ctx, shape(classes, cols));
    B::copy(ctx, table.tensor, grad);
    B::scatter_add_rows(ctx, grad, index, in.tensor);
    REQUIRE(B::shape_of(grad) == shape(classes, cols));
    for (std::size_t k = 0; k < classes; ++k)
      for (std::size_t j = 0; j < cols; ++j) {
        double expected = table.values[k * cols + j], magnitude = std::abs(expected);
        for (std::size_t i = 0; i < rows; ++i)
          if (labels[i] == static_cast<int>(k)) {
            expected += in.values[i * cols + j];
            magnitude += std::abs(in.values[i * cols + j]);
          }
        INFO("table row " << k << ", column " << j);
        CHECK(ayf_test::close<tol>(at(grad, k, j), expected, magnitude));
      }
    // The adjoint identity <gather_rows(T), U> = <T, scatter_add_rows(U)> with a zero start.
    auto gathered = B::make(ctx, shape(rows, cols));
    B::gather_rows(ctx, gathered, table.tensor, index);
    auto scattered = B::make(ctx, shape(classes, cols));
    B::scatter_add_rows(ctx, scattered, index, in.tensor);
    const double lhs = static_cast<double>(B::dot(ctx, gathered, in.tensor));
    const double rhs = static_cast<double>(B::dot(ctx, table.tensor, scattered));
    CHECK(ayf_test::close<tol>(lhs, rhs, 50.0));
  }
  SECTION("scatter_add_rows into a view of a gradient buffer, from const views") {
    auto flat = B::make(ctx, shape(1, classes * cols + 2));
    const auto in = random_tensor<B>(ctx, shape(rows, cols), 103);
    B::scatter_add_rows(ctx, B::slice(ctx, flat, 2, shape(classes, cols)), B::slice(ctx, index, 0, shape::vector(rows)),
                        B::slice(ctx, in.tensor, 0, shape(rows, cols)));
    const auto host = B::to_host(ctx, flat);
    CHECK(host[0] == S(0));
    CHECK(host[1] == S(0));
    for (std::size_t k = 0; k < classes; ++k)
      for (std::size_t j = 0; j < cols; ++j) {
        double expected = 0, magnitude = 0;
        for (std::size_t i = 0; i < rows; ++i)
          if (labels[i] == static_cast<int>(k)) {
            expected += in.values[i * cols + j];
            magnitude += std::abs(in.values[i * cols + j]);
          }
        CHECK(ayf_test::close<tol>(static_cast<double>(host[2 + k * cols + j]), expected, magnitude));
      }
  }
}

TEMPLATE_TEST_CASE("gemm_batched multiplies every run of rows like gemm, for every transpose combination",
                   "[backend][primitives][gemm][cpu]", AYF_HOST_BACKENDS) {
  using B = TestType;
  using S = typename B::scalar;
  using tol = ayf_test::backend_tolerance<B>;
  using ayf::transpose;
  typename B::context ctx(59);
  set_parallel<B>(ctx, GENERATE(false, true));
  const bool ta = GENERATE(false, true), tb = GENERATE(false, true);
  const std::size_t batch = GENERATE(std::size_t{1}, std::size_t{3});
  const std::size_t m = 4, k = 6, n = 5;
  const double alpha = -0.75;
  const double beta = GENERATE(0.0, 1.0, 0.5);
  INFO("op_a " << (ta ? "T" : "N") << ", op_b " << (tb ? "T" : "N") << ", batch " << batch << ", beta " << beta);
  const shape member_a = ta ? shape(k, m) : shape(m, k), member_b = tb ? shape(n, k) : shape(k, n);
  // A as a const view at an offset into a flat buffer, B as a tensor.
  const auto flat_a = random_tensor<B>(ctx, shape(1, batch * member_a.size() + 3), 111);
  const auto a = B::slice(ctx, flat_a.tensor, 3, shape(batch * member_a.rows, member_a.cols));
  const auto b = random_tensor<B>(ctx, shape(batch * member_b.rows, member_b.cols), 112);
  const auto c0 = random_tensor<B>(ctx, shape(batch * m, n), 113);
  auto a_at = [&](std::size_t q, std::size_t i, std::size_t p) {  // op(A_q)(i, p)
    const std::size_t base = 3 + q * member_a.size();
    return ta ? flat_a.values[base + p * m + i] : flat_a.values[base + i * k + p];
  };
  auto b_at = [&](std::size_t q, std::size_t p, std::size_t j) {
    const std::size_t base = q * member_b.size();
    return tb ? b.values[base + j * k + p] : b.values[base + p * n + j];
  };
  auto c = B::make(ctx, beta == 0.0 ? shape(2, 7) : shape(batch * m, n));  // beta = 0 resizes C
  if (beta != 0.0) B::copy(ctx, c0.tensor, c);
  B::gemm_batched(ctx, ta ? transpose::yes : transpose::no, tb ? transpose::yes : transpose::no, static_cast<S>(alpha), a,
                  b.tensor, static_cast<S>(beta), c, batch);
  REQUIRE(B::shape_of(c) == shape(batch * m, n));
  std::size_t bad = 0;
  for (std::size_t q = 0; q < batch; ++q)
    for (std::size_t i = 0; i < m; ++i)
      for (std::size_t j = 0; j < n; ++j) {
        double sum = 0, magnitude = 0;
        for (std::size_t p = 0; p < k; ++p) {
          sum += a_at(q, i, p) * b_at(q, p, j);
          magnitude += std::abs(a_at(q, i, p) * b_at(q, p, j));
        }
        const double prior = beta == 0.0 ? 0.0 : beta * c0.values[(q * m + i) * n + j];
        const double expected = alpha * sum + prior;
        if (!ayf_test::close<tol>(at(c, q * m + i, j), expected, std::abs(alpha) * magnitude + std::abs(prior))) {
          ++bad;
          UNSCOPED_INFO("C_" << q << "(" << i << ", " << j << ") = " << at(c, q * m + i, j) << ", expected " << expected);
        }
      }
  CHECK(bad == 0);

  SECTION("into a view of a larger buffer") {
    auto flat_c = B::make(ctx, shape(1, batch * m * n + 1));
    B::gemm_batched(ctx, ta ? transpose::yes : transpose::no, tb ? transpose::yes : transpose::no, static_cast<S>(alpha),
                    a, b.tensor, S(0), B::slice(ctx, flat_c, 1, shape(batch * m, n)), batch);
    const auto host = B::to_host(ctx, flat_c);
    CHECK(host[0] == S(0));
    std::size_t wrong = 0;
    for (std::size_t q = 0; q < batch; ++q)
      for (std::size_t i = 0; i < m; ++i)
        for (std::size_t j = 0; j < n; ++j) {
          double sum = 0, magnitude = 0;
          for (std::size_t p = 0; p < k; ++p) {
            sum += a_at(q, i, p) * b_at(q, p, j);
            magnitude += std::abs(a_at(q, i, p) * b_at(q, p, j));
          }
          wrong += !ayf_test::close<tol>(static_cast<double>(host[1 + (q * m + i) * n + j]), alpha * sum,
                                         std::abs(alpha) * magnitude);
        }
    CHECK(wrong == 0);
  }
}

TEMPLATE_TEST_CASE("broadcast_add, sum_columns, max_rows, gather_rows, scatter_add_rows and gemm_batched reject wrong arguments",
                   "[backend][primitives][errors][cpu]", AYF_HOST_BACKENDS) {
  using B = TestType;
  using S = typename B::scalar;
  using ayf::transpose;
  typename B::context ctx(61);
  auto y = B::make(ctx, shape(5, 12));

  SECTION("broadcast_add with v neither [1, C] (C dividing N) nor [R, 1]") {
    const auto row5 = B::make(ctx, shape(1, 5)), col4 = B::make(ctx, shape(4, 1)), block = B::make(ctx, shape(5, 2)),
               empty = B::make(ctx, shape(1, 0));
    REQUIRE_THROWS_AS(B::broadcast_add(ctx, y, 1.0, row5), ayf::error);
    REQUIRE_THROWS_WITH(B::broadcast_add(ctx, y, 1.0, row5), Contains("broadcast_add") && Contains("'v'") &&
                                                                  Contains("divisor of 12") && Contains("[5, 1]") &&
                                                                  Contains("received [1, 5]"));
    REQUIRE_THROWS_WITH(B::broadcast_add(ctx, y, 1.0, col4), Contains("'v'") && Contains("received [4, 1]"));
    REQUIRE_THROWS_WITH(B::broadcast_add(ctx, y, 1.0, block), Contains("'v'") && Contains("received [5, 2]"));
    REQUIRE_THROWS_WITH(B::broadcast_add(ctx, y, 1.0, empty), Contains("'v'") && Contains("received [1, 0]"));
    CHECK(B::to_host(ctx, y) == std::vector<S>(60, S(0)));  // untouched
  }
  SECTION("sum_columns into an out that is not [1, C] with C dividing N") {
    auto out5 = B::make(ctx, shape(1, 5)), tall = B::make(ctx, shape(2, 3)), empty = B::make(ctx, shape(1, 0));
    REQUIRE_THROWS_AS(B::sum_columns(ctx, out5, 0.0, y), ayf::error);
    REQUIRE_THROWS_WITH(B::sum_columns(ctx, out5, 0.0, y), Contains("sum_columns") && Contains("'out'") &&
                                                               Contains("divisor of 12") && Contains("received [1, 5]"));
    REQUIRE_THROWS_WITH(B::sum_columns(ctx, tall, 1.0, y), Contains("'out'") && Contains("received [2, 3]"));
    REQUIRE_THROWS_WITH(B::sum_columns(ctx, empty, 0.0, y), Contains("'out'") && Contains("received [1, 0]"));
  }
  SECTION("max_rows of rows without columns") {
    typename B::tensor out;
    const auto none = B::make(ctx, shape(3, 0));
    REQUIRE_THROWS_AS(B::max_rows(ctx, out, none), ayf::error);
    REQUIRE_THROWS_WITH(B::max_rows(ctx, out, none),
                        Contains("max_rows") && Contains("'in'") && Contains("column") && Contains("[3, 0]"));
  }
  SECTION("gather_rows and scatter_add_rows with labels that name no row") {
    const auto table = B::make(ctx, shape(4, 3));
    auto grad = B::make(ctx, shape(4, 3));
    B::fill(ctx, grad, S(2));
    const auto in = B::make(ctx, shape(3, 3));
    typename B::tensor out;
    auto labels = [&](S second) { return B::from_host(ctx, {S(0), second, S(-1)}, shape::vector(3)); };
    for (const char* where : {"gather_rows", "scatter_add_rows"}) {
      INFO(where);
      auto call = [&](const typename B::tensor& index) {
        if (std::string(where) == "gather_rows") B::gather_rows(ctx, out, table, index);
        else B::scatter_add_rows(ctx, grad, index, in);
      };
      REQUIRE_THROWS_AS(call(labels(S(4))), ayf::error);
      REQUIRE_THROWS_WITH(call(labels(S(4))), Contains(where) && Contains("'index'") && Contains("below 4") &&
                                                  Contains("row 1") && Contains("received 4"));
      REQUIRE_THROWS_WITH(call(labels(S(1.5))), Contains("'index'") && Contains("row 1") && Contains("received 1.5"));
      REQUIRE_THROWS_WITH(call(labels(S(-0.5))), Contains("'index'") && Contains("received -0.5"));
      REQUIRE_THROWS_WITH(call(labels(std::numeric_limits<S>::quiet_NaN())), Contains("'index'") && Contains("row 1"));
      REQUIRE_THROWS_WITH(call(labels(-std::numeric_limits<S>::infinity())), Contains("'index'") && Contains("row 1"));
      REQUIRE_THROWS_WITH(call(B::make(ctx, shape(3, 2))), Contains(where) && Contains("'index'") &&
                                                                Contains("[3, 1]") && Contains("received [3, 2]"));
      REQUIRE_NOTHROW(call(labels(S(3))));
    }
    // The failed scatters wrote nothing; the valid one added the zero rows of `in`.
    CHECK(B::to_host(ctx, grad) == std::vector<S>(12, S(2)));
    REQUIRE_THROWS_WITH(B::scatter_add_rows(ctx, grad, labels(S(1)), B::make(ctx, shape(3, 4))),
                        Contains("scatter_add_rows") && Contains("'in'") && Contains("[3, 3]") && Contains("[3, 4]"));
  }
  SECTION("gemm_batched with a batch that does not divide the rows, or mismatched members") {
    const auto a = B::make(ctx, shape(6, 4)), b = B::make(ctx, shape(8, 5)), b9 = B::make(ctx, shape(9, 5));
    typename B::tensor c;
    REQUIRE_THROWS_AS(B::gemm_batched(ctx, transpose::no, transpose::no, S(1), a, b, S(0), c, 0), ayf::error);
    REQUIRE_THROWS_WITH(B::gemm_batched(ctx, transpose::no, transpose::no, S(1), a, b, S(0), c, 0),
                        Contains("gemm_batched") && Contains("'batch'") && Contains("received 0"));
    REQUIRE_THROWS_WITH(B::gemm_batched(ctx, transpose::no, transpose::no, S(1), a, b9, S(0), c, 2),
                        Contains("'batch'") && Contains("(6)") && Contains("(9)") && Contains("received 2"));
    // Two members: A_k [3, 4] times B_k [4, 5]; with op(A) = A_k^T [4, 3] the inner sizes differ.
    REQUIRE_NOTHROW(B::gemm_batched(ctx, transpose::no, transpose::no, S(1), a, b, S(0), c, 2));
    CHECK(B::shape_of(c) == shape(6, 5));
    REQUIRE_THROWS_WITH(B::gemm_batched(ctx, transpose::yes, transpose::no, S(1), a, b, S(0), c, 2),
                        Contains("gemm_batched") && Contains("'B'") && Contains("received 4"));
    auto wrong = B::make(ctx, shape(3, 5));
    REQUIRE_THROWS_WITH(B::gemm_batched(ctx, transpose::no, transpose::no, S(1), a, b, S(1), wrong, 2),
                        Contains("gemm_batched") && Contains("'C'") && Contains("[6, 5]") && Contains("[3, 5]"));
  }
}

TEMPLATE_TEST_CASE("reduce_rows sums each row in reduce_all's order: chunks of 8192 in 16 lanes",
                   "[backend][determinism][cpu]", AYF_HOST_BACKENDS) {
  using B = TestType;
  using S = typename B::scalar;
  typename B::context ctx(68);
  // Rows of several chunks with a ragged last chunk, rows shorter than the lanes, and one row of
  // whole chunks; the product's float rounding comes first, so only the order of the sums matters.
  for (const shape sh : {shape(3, 2 * 8192 + 1001), shape(11, 37), shape(5, 7), shape(1, 8192)}) {
    const auto a = random_tensor<B>(ctx, sh, 131, -1.0, 3.0), b = random_tensor<B>(ctx, sh, 132);
    typename B::tensor out;
    B::reduce_rows(ctx, out, product{}, a.tensor, b.tensor);
    INFO("shape " << sh);
    REQUIRE(B::shape_of(out) == shape::vector(sh.rows));
    std::size_t differ = 0;
    double worst = 0;
    for (std::size_t i = 0; i < sh.rows; ++i) {
      double total = 0, plain = 0, magnitude = 0;
      for (std::size_t c0 = 0; c0 < sh.cols; c0 += 8192) {
        double lane[16] = {};
        for (std::size_t j = c0; j < std::min<std::size_t>(c0 + 8192, sh.cols); ++j) {
          const auto term = static_cast<double>(static_cast<S>(a.values[i * sh.cols + j] * b.values[i * sh.cols + j]));
          lane[(j - c0) % 16] += term;
          plain += term;
          magnitude += std::abs(term);
        }
        double chunk = 0;
        for (double l : lane) chunk += l;
        total += chunk;
      }
      differ += at(out, i, 0) != static_cast<S>(total);
      worst = std::max(worst, std::abs(static_cast<double>(at(out, i, 0)) - plain) / magnitude);
    }
    CHECK(differ == 0);
    // And close to the plain sum in column order (S's rounding; in double, the orders' own bound).
    CHECK(worst <= std::max(2 * static_cast<double>(std::numeric_limits<S>::epsilon()),
                            static_cast<double>(sh.cols) * std::numeric_limits<double>::epsilon()));
  }
}

TEMPLATE_TEST_CASE("sum_columns and gemm_batched are bitwise the same on one oneTBB thread and on many",
                   "[backend][primitives][determinism][cpu]", ayf::eigen_backend<double>, ayf::eigen_backend<float>) {
  using B = TestType;
  using S = typename B::scalar;
  using ayf::transpose;
  typename B::context ctx(67);
  const int threads = tbb::info::default_concurrency();
  if (threads < 2) WARN("only one oneTBB thread: the parallel runs below run serially");
  tbb::task_arena one(1), many(threads);

  // sum_columns: 96 columns split over workers; every column sums rows then runs in order.
  const shape sh(300, 384);
  const auto x = random_tensor<B>(ctx, sh, 121, -1.0, 3.0);
  auto column_sums = [&](tbb::task_arena& arena) {
    auto out = B::make(ctx, shape(1, 96));
    arena.execute([&] { B::sum_columns(ctx, out, 0.0, x.tensor); });
    return B::to_host(ctx, out);
  };
  ctx.executor.min_parallel_work = 8;
  const auto serial = column_sums(one);
  const auto parallel = column_sums(many);
  CHECK(serial == parallel);
  // The documented order, summed here in double: chunks of 8192 / 384 = 21 rows (15 chunks, the
  // last one shorter), in each rows then runs within a row; then the chunks in order.
  REQUIRE(ayf::host_kernels::sum_columns_chunk_rows(sh.cols) == 21);
  std::size_t differ = 0;
  for (std::size_t c = 0; c < 96; ++c) {
    double total = 0;
    for (std::size_t r0 = 0; r0 < sh.rows; r0 += 21) {
      double acc = 0;
      for (std::size_t i = r0; i < std::min<std::size_t>(r0 + 21, sh.rows); ++i)
        for (std::size_t j = c; j < sh.cols; j += 96) acc += x.values[i * sh.cols + j];
      total += acc;
    }
    differ += serial[c] != static_cast<S>(total);
  }
  CHECK(differ == 0);

  // gemm_batched: 48 members over the workers, each bitwise a plain gemm of that member.
  const std::size_t batch = 48, m = 12, k = 40, n = 9;
  const auto a = random_tensor<B>(ctx, shape(batch * k, m), 122);  // op(A_q) = A_q^T
  const auto b = random_tensor<B>(ctx, shape(batch * k, n), 123);
  auto products = [&](tbb::task_arena& arena) {
    typename B::tensor c;
    arena.execute([&] { B::gemm_batched(ctx, transpose::yes, transpose::no, S(1.5), a.tensor, b.tensor, S(0), c, batch); });
    return B::to_host(ctx, c);
  };
  const auto batched_serial = products(one);
  const auto batched_parallel = products(many);
  CHECK(batched_serial == batched_parallel);
  std::size_t member_differs = 0;
  for (std::size_t q = 0; q < batch; ++q) {
    typename B::tensor c;
    B::gemm(ctx, transpose::yes, transpose::no, S(1.5), B::slice(ctx, a.tensor, q * k * m, shape(k, m)),
            B::slice(ctx, b.tensor, q * k * n, shape(k, n)), S(0), c);
    const auto member = B::to_host(ctx, c);
    member_differs += !std::equal(member.begin(), member.end(), batched_parallel.begin() + static_cast<std::ptrdiff_t>(q * m * n));
  }
  CHECK(member_differs == 0);

  // Two members large enough for gemm's own oneTBB row blocks (m >= 128, m n k >= 2^22), nested
  // inside the parallel loop over members.
  const std::size_t big_m = 192, big_n = 144, big_k = 160;
  const auto big_a = random_tensor<B>(ctx, shape(2 * big_m, big_k), 124);
  const auto big_b = random_tensor<B>(ctx, shape(2 * big_n, big_k), 125);  // op(B_q) = B_q^T
  auto big_products = [&](tbb::task_arena& arena) {
    typename B::tensor c;
    arena.execute([&] { B::gemm_batched(ctx, transpose::no, transpose::yes, S(1), big_a.tensor, big_b.tensor, S(0), c, 2); });
    return B::to_host(ctx, c);
  };
  const auto big_serial = big_products(one);
  CHECK(big_serial == big_products(many));
  for (std::size_t q = 0; q < 2; ++q) {
    typename B::tensor c;
    B::gemm(ctx, transpose::no, transpose::yes, S(1), B::slice(ctx, big_a.tensor, q * big_m * big_k, shape(big_m, big_k)),
            B::slice(ctx, big_b.tensor, q * big_n * big_k, shape(big_n, big_k)), S(0), c);
    const auto member = B::to_host(ctx, c);
    INFO("member " << q);
    CHECK(std::equal(member.begin(), member.end(), big_serial.begin() + static_cast<std::ptrdiff_t>(q * big_m * big_n)));
  }
}

TEST_CASE("exp_polynomial is within 2 ulp of e^x, clamps outside [-87.3, 88.3] and passes NaN on", "[backend][cpu]") {
  using ayf::host_kernels::exp_polynomial;
  // Every 997th float bit pattern inside the clamp, against e^x in double, in ulp of the float result.
  double worst = 0;
  float worst_x = 0;
  std::size_t checked = 0;
  for (std::uint64_t bits = 0; bits < (std::uint64_t{1} << 32); bits += 997) {
    const float x = std::bit_cast<float>(static_cast<std::uint32_t>(bits));
    if (!(x >= -87.3f && x <= 88.3f)) continue;
    const double want = std::exp(static_cast<double>(x));
    const auto rounded = static_cast<float>(want);
    const double ulp = std::nextafter(rounded, std::numeric_limits<float>::infinity()) - rounded;
    const double error = std::abs(static_cast<double>(exp_polynomial(x)) - want) / ulp;
    if (error > worst) {
      worst = error;
      worst_x = x;
    }
    ++checked;
  }
  INFO("worst " << worst << " ulp at x = " << worst_x << " over " << checked << " points");
  CHECK(checked > 2'000'000);
  CHECK(worst <= 2.0);
  CHECK(exp_polynomial(0.0f) == 1.0f);
  CHECK(exp_polynomial(1.0f) == Approx(std::exp(1.0)).epsilon(3e-7));
  // Clamped: the values at the ends instead of overflow or a subnormal; NaN stays NaN.
  CHECK(exp_polynomial(1000.0f) == exp_polynomial(88.3f));
  CHECK(std::isfinite(exp_polynomial(std::numeric_limits<float>::infinity())));
  CHECK(exp_polynomial(-1000.0f) == exp_polynomial(-87.3f));
  CHECK(exp_polynomial(-87.3f) > 0.0f);
  CHECK(std::isnan(exp_polynomial(std::numeric_limits<float>::quiet_NaN())));
}

TEST_CASE("select_bits picks one operand's bits, signed zeros and NaN included", "[backend][cpu]") {
  using ayf::host_kernels::select_bits;
  const float nan = std::numeric_limits<float>::quiet_NaN(), inf = std::numeric_limits<float>::infinity();
  const std::array<float, 6> values = {-0.0f, 0.0f, nan, -inf, 1.5f, -87.3f};
  for (float a : values)
    for (float b : values) {
      CHECK(std::bit_cast<std::uint32_t>(select_bits(true, a, b)) == std::bit_cast<std::uint32_t>(a));
      CHECK(std::bit_cast<std::uint32_t>(select_bits(false, a, b)) == std::bit_cast<std::uint32_t>(b));
    }
}

TEST_CASE("exp_polynomial over an array (the loop the compiler vectorizes) gives the scalar calls' bits",
          "[backend][cpu]") {
  using ayf::host_kernels::exp_polynomial;
  const float inf = std::numeric_limits<float>::infinity();
  // Every 4099th bit pattern (NaNs, infinities and subnormals among them) and the ends of the clamp.
  std::vector<float> x = {0.0f, -0.0f, inf, -inf, std::numeric_limits<float>::quiet_NaN(), -87.3f, 88.3f,
                          std::nextafter(-87.3f, -inf), std::nextafter(88.3f, inf)};
  for (std::uint64_t bits = 0; bits < (std::uint64_t{1} << 32); bits += 4099)
    x.push_back(std::bit_cast<float>(static_cast<std::uint32_t>(bits)));
  std::vector<float> y(x.size());
  for (std::size_t i = 0; i < x.size(); ++i) y[i] = exp_polynomial(x[i]);
  // One call at a time through a pointer the compiler cannot see through: the out-of-line, scalar code.
  float (*volatile scalar)(float) = exp_polynomial;
  std::size_t differ = 0;
  for (std::size_t i = 0; i < x.size(); ++i) {
    const float one = scalar(x[i]);
    if (std::bit_cast<std::uint32_t>(one) != std::bit_cast<std::uint32_t>(y[i])) ++differ;
  }
  CHECK(differ == 0);
  // The clamp's ends: just outside them the result is the end's.
  CHECK(exp_polynomial(std::nextafter(-87.3f, -inf)) == exp_polynomial(-87.3f));
  CHECK(exp_polynomial(std::nextafter(88.3f, inf)) == exp_polynomial(88.3f));
  CHECK(exp_polynomial(-inf) == exp_polynomial(-87.3f));
}

TEST_CASE("silu_with_slope gives silu(z) and silu'(z) in float and double", "[backend][cpu]") {
  // Against the closed forms in long double; float takes exp_polynomial, double std::exp.
  double worst_float = 0, worst_double = 0;
  for (int k = -4000; k <= 4000; ++k) {
    const long double z = k / 100.0L;
    const long double sg = 1 / (1 + std::exp(-z)), value = z * sg, slope = sg * (1 + z * (1 - sg));
    float slope_f = 0;
    const float value_f = ayf::host_kernels::silu_with_slope(static_cast<float>(z), slope_f);
    double slope_d = 0;
    const double value_d = ayf::host_kernels::silu_with_slope(static_cast<double>(z), slope_d);
    // Errors relative to max(|value|, 1): absolute near the zeros of silu and of its slope.
    auto rel = [](long double got, long double want) {
      return static_cast<double>(std::abs(got - want) / std::max<long double>(std::abs(want), 1.0L));
    };
    worst_float = std::max({worst_float, rel(value_f, value), rel(slope_f, slope)});
    worst_double = std::max({worst_double, rel(value_d, value), rel(slope_d, slope)});
  }
  CHECK(worst_float < 2e-6);  // 8 float epsilons; 9.7e-7 measured
  CHECK(worst_double < 1e-14);
}
