// tests/test_dual.cpp: dual<T> tangents against central finite differences (double, h = 1e-6) and
// against hand-derived closed forms, for every elementary function, the arithmetic operators, and
// the schedule compositions the objectives use.
#include <array>
#include <cmath>
#include <type_traits>

#include <catch2/catch.hpp>

#include "ayf/core/dual.hpp"

namespace {

using d64 = ayf::dual<double>;

// Central difference error budget for step h: truncation h^2 |f'''| / 6 ~ 1e-13 |f'''| plus
// rounding ~ eps |f| / h ~ 1.1e-10 |f|. Against a relative bound of 1e-8 this leaves two orders of
// magnitude, provided |f'| is not much smaller than |f| and |f'''| at the chosen points; the points
// below avoid zeros of f' (e.g. sin at pi/2). The bound is relative to max(|f'|, |f|) because the
// rounding term scales with |f|, not |f'|.
constexpr double h = 1e-6;
constexpr double fd_relative = 1e-8;

template <class F>
double central_difference(const F& f, double x) {
  return (f(x + h) - f(x - h)) / (2 * h);
}

/// Checks f(dual::variable(x)) against f(x) (value) and a central difference (tangent).
template <class F>
void check_against_fd(const F& f, double x) {
  const d64 y = f(d64::variable(x));
  const double value = f(x);
  const double fd = central_difference(f, x);
  INFO("x = " << x << ", value " << y.value << " vs " << value << ", tangent " << y.tangent
              << " vs finite difference " << fd);
  CHECK(y.value == Approx(value).epsilon(1e-15).margin(1e-300));
  const double scale = std::max(std::abs(y.tangent), std::abs(value));
  CHECK(std::abs(y.tangent - fd) <= fd_relative * scale);
}

// Generic lambdas evaluate the same expression on double (for the finite difference) and d64.
// `using std::sin` + ADL picks ayf::sin for duals.
constexpr std::array<double, 5> points{-1.3, -0.4, 0.3, 0.9, 2.2};
constexpr std::array<double, 4> positive_points{0.05, 0.7, 1.9, 12.5};

// The schedule of the brief: S(t) = (1 - t)^2 c^2 + t^2, with S'(t) = -2 (1 - t) c^2 + 2 t.
constexpr double c_sched = 0.7;
template <class T>
T schedule(const T& t) {
  const T one_minus = T(1.0) - t;
  return one_minus * one_minus * (c_sched * c_sched) + t * t;
}
double schedule_derivative(double t) { return -2 * (1 - t) * c_sched * c_sched + 2 * t; }

}  // namespace

TEST_CASE("dual is a trivially copyable constexpr value type", "[dual][cpu]") {
  STATIC_REQUIRE(std::is_trivially_copyable_v<d64>);
  STATIC_REQUIRE(std::is_trivially_copyable_v<ayf::dual<float>>);
  STATIC_REQUIRE(sizeof(d64) == 2 * sizeof(double));
  constexpr d64 x = d64::variable(3.0);
  STATIC_REQUIRE((x * x).value == 9.0);
  STATIC_REQUIRE((x * x).tangent == 6.0);
  STATIC_REQUIRE((x / d64(2.0)).tangent == 0.5);
  constexpr d64 c(4.0);
  STATIC_REQUIRE(c.tangent == 0.0);
  STATIC_REQUIRE(d64().value == 0.0);
  STATIC_REQUIRE(d64().tangent == 0.0);
}

TEST_CASE("dual arithmetic follows the sum, product and quotient rules", "[dual][cpu]") {
  // Two independent directions: a = 1.5 + 0.25 e, b = -0.8 + 2 e, checked against closed forms.
  const d64 a(1.5, 0.25), b(-0.8, 2.0);
  SECTION("binary operators") {
    CHECK((a + b).value == 0.7);
    CHECK((a + b).tangent == 2.25);
    CHECK((a - b).value == 2.3);
    CHECK((a - b).tangent == -1.75);
    CHECK((-a).value == -1.5);
    CHECK((-a).tangent == -0.25);
    const d64 p = a * b;
    CHECK(p.value == Approx(-1.2).epsilon(1e-15));
    CHECK(p.tangent == Approx(0.25 * -0.8 + 1.5 * 2.0).epsilon(1e-15));  // a' b + a b'
    const d64 q = a / b;
    CHECK(q.value == Approx(1.5 / -0.8).epsilon(1e-15));
    CHECK(q.tangent == Approx((0.25 * -0.8 - 1.5 * 2.0) / (0.64)).epsilon(1e-14));
  }
  SECTION("compound assignment matches the binary operators") {
    d64 x = a;
    x += b;
    CHECK((x.value == (a + b).value && x.tangent == (a + b).tangent));
    x = a;
    x -= b;
    CHECK((x.value == (a - b).value && x.tangent == (a - b).tangent));
    x = a;
    x *= b;
    CHECK((x.value == (a * b).value && x.tangent == (a * b).tangent));
    x = a;
    x /= b;
    CHECK((x.value == (a / b).value && x.tangent == (a / b).tangent));
  }
  SECTION("plain scalars promote to constants with zero tangent") {
    const d64 y = 2.0 * a - 1.0;
    CHECK(y.value == 2.0);
    CHECK(y.tangent == 0.5);
    const d64 z = 1.0 / a;  // d(1/a) = -a' / a^2
    CHECK(z.tangent == Approx(-0.25 / 2.25).epsilon(1e-15));
    const d64 w = a / 4.0;
    CHECK(w.tangent == 0.0625);
  }
  SECTION("comparisons look at the value only") {
    CHECK(b < a);
    CHECK(a > b);
    CHECK_FALSE(d64(1.0, 5.0) < d64(1.0, -5.0));
    CHECK_FALSE(d64(1.0, 5.0) > d64(1.0, -5.0));
  }
  SECTION("a polynomial against its finite difference") {
    for (double x : points)
      check_against_fd([](auto t) { return (t * t * t - 2.0 * t) / (t * t + 1.0); }, x);
  }
}

TEST_CASE("dual elementary functions match central finite differences", "[dual][cpu]") {
  using std::cos, std::exp, std::log, std::sin, std::sqrt, std::tanh, std::pow;
  for (double x : points) {
    check_against_fd([](auto t) { return sin(t); }, x);
    check_against_fd([](auto t) { return cos(t); }, x);
    check_against_fd([](auto t) { return exp(t); }, x);
    check_against_fd([](auto t) { return tanh(t); }, x);
    check_against_fd([](auto t) { return ayf::sigmoid(t); }, x);
    // Chain rule through nested functions.
    check_against_fd([](auto t) { return sin(exp(t) * 0.5) * cos(t); }, x);
  }
  for (double x : positive_points) {
    check_against_fd([](auto t) { return log(t); }, x);
    check_against_fd([](auto t) { return sqrt(t); }, x);
    check_against_fd([](auto t) { return pow(t, 2.5); }, x);
    check_against_fd([](auto t) { return pow(t, -1.5); }, x);
    check_against_fd([](auto t) { return pow(t, 0.5); }, x);
    check_against_fd([](auto t) { return log(t) * sqrt(t + 1.0); }, x);
  }
}

TEST_CASE("dual elementary functions match their closed-form derivatives", "[dual][cpu]") {
  // Independent of the finite differences: textbook derivatives, with a tangent of 0.5 to check
  // that the chain rule multiplies by the incoming tangent.
  const double x = 0.6, dx = 0.5;
  const d64 v(x, dx);
  CHECK(ayf::sin(v).tangent == Approx(std::cos(x) * dx).epsilon(1e-15));
  CHECK(ayf::cos(v).tangent == Approx(-std::sin(x) * dx).epsilon(1e-15));
  CHECK(ayf::exp(v).tangent == Approx(std::exp(x) * dx).epsilon(1e-15));
  CHECK(ayf::log(v).tangent == Approx(dx / x).epsilon(1e-15));
  CHECK(ayf::sqrt(v).tangent == Approx(dx / (2 * std::sqrt(x))).epsilon(1e-15));
  CHECK(ayf::tanh(v).tangent == Approx(dx / (std::cosh(x) * std::cosh(x))).epsilon(1e-14));
  CHECK(ayf::pow(v, 3.0).tangent == Approx(3 * x * x * dx).epsilon(1e-15));
  const double s = 1 / (1 + std::exp(-x));
  CHECK(ayf::sigmoid(x) == Approx(s).epsilon(1e-15));
  CHECK(ayf::sigmoid(v).value == Approx(s).epsilon(1e-15));
  CHECK(ayf::sigmoid(v).tangent == Approx(s * (1 - s) * dx).epsilon(1e-14));
  CHECK(ayf::abs(d64(-2.0, 3.0)).value == 2.0);
  CHECK(ayf::abs(d64(-2.0, 3.0)).tangent == -3.0);
  CHECK(ayf::abs(d64(2.0, 3.0)).tangent == 3.0);
  // float duals use the float overloads.
  const ayf::dual<float> f = ayf::exp(ayf::dual<float>::variable(1.0f));
  STATIC_REQUIRE(std::is_same_v<decltype(f.value), float>);
  CHECK(f.tangent == Approx(std::exp(1.0)).epsilon(1e-6));
}

TEST_CASE("dual differentiates the schedule S(t) and the ratio sqrt(S(s)/S(t))", "[dual][cpu]") {
  using std::sqrt;
  const std::array<double, 5> times{0.02, 0.25, 0.5, 0.75, 0.97};
  for (double t : times) {
    INFO("t = " << t);
    const d64 st = schedule(d64::variable(t));
    CHECK(st.value == Approx(schedule(t)).epsilon(1e-15));
    CHECK(st.tangent == Approx(schedule_derivative(t)).epsilon(1e-13).margin(1e-15));
    check_against_fd([](auto u) { return schedule(u); }, t);
  }
  // r(s, t) = sqrt(S(s) / S(t)): d/dt and d/ds separately, by finite differences and closed form
  // dr/dt = -r S'(t) / (2 S(t)), dr/ds = r S'(s) / (2 S(s)).
  const std::array<std::array<double, 2>, 4> pairs{{{0.1, 0.9}, {0.3, 0.6}, {0.0, 0.5}, {0.8, 0.2}}};
  for (const auto& pair : pairs) {
    const double s = pair[0], t = pair[1];  // plain variables: lambdas capture them below
    INFO("s = " << s << ", t = " << t);
    const double r = std::sqrt(schedule(s) / schedule(t));
    check_against_fd([s](auto u) { return sqrt(schedule(decltype(u)(s)) / schedule(u)); }, t);
    check_against_fd([t](auto u) { return sqrt(schedule(u) / schedule(decltype(u)(t))); }, s);
    const d64 by_t = sqrt(schedule(d64(s)) / schedule(d64::variable(t)));
    const d64 by_s = sqrt(schedule(d64::variable(s)) / schedule(d64(t)));
    CHECK(by_t.value == Approx(r).epsilon(1e-15));
    CHECK(by_t.tangent ==
          Approx(-r * schedule_derivative(t) / (2 * schedule(t))).epsilon(1e-13).margin(1e-15));
    CHECK(by_s.tangent ==
          Approx(r * schedule_derivative(s) / (2 * schedule(s))).epsilon(1e-13).margin(1e-15));
  }
}
