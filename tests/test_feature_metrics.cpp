// tests/test_feature_metrics.cpp: the Frechet distance against closed forms (commuting covariances:
// |mu1 - mu2|^2 + sum (sqrt(a_i) - sqrt(b_i))^2; any 2 x 2 pair: tr sqrt(M) = sqrt(tr M + 2 sqrt(det M)))
// and sample estimates converging to them; k-NN precision / recall on sets whose answer is known by
// hand and against a slow direct O(n m) loop.
#include <Eigen/Dense>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <vector>

#include <catch2/catch.hpp>

#include "ayf/analysis/metrics.hpp"
#include "ayf/backends/eigen/feature_metrics.hpp"
#include "ayf/backends/eigen/wasserstein.hpp"
#include "ayf/core/error.hpp"
#include "ayf/core/philox.hpp"

namespace {

using Catch::Contains;

Eigen::VectorXd normal_vector(Eigen::Index d, std::uint64_t seed) {
  Eigen::VectorXd v(d);
  for (Eigen::Index i = 0; i < d; ++i) v(i) = ayf::philox_normal(seed, static_cast<std::uint64_t>(i));
  return v;
}

/// A random symmetric positive definite matrix A A^T / d + 0.1 I.
Eigen::MatrixXd random_spd(Eigen::Index d, std::uint64_t seed) {
  Eigen::MatrixXd a(d, d);
  for (Eigen::Index i = 0; i < d * d; ++i) a.data()[i] = ayf::philox_normal(seed, static_cast<std::uint64_t>(i));
  return a * a.transpose() / static_cast<double>(d) + 0.1 * Eigen::MatrixXd::Identity(d, d);
}

/// A random orthogonal matrix (the Q of a QR factorization).
Eigen::MatrixXd random_orthogonal(Eigen::Index d, std::uint64_t seed) {
  Eigen::MatrixXd a(d, d);
  for (Eigen::Index i = 0; i < d * d; ++i) a.data()[i] = ayf::philox_normal(seed, static_cast<std::uint64_t>(i));
  return Eigen::HouseholderQR<Eigen::MatrixXd>(a).householderQ();
}

/// n samples of N(mu, C), row-major [n, d].
std::vector<double> gaussian_samples(const Eigen::VectorXd& mu, const Eigen::MatrixXd& c, std::size_t n,
                                     std::uint64_t seed) {
  const Eigen::MatrixXd l = c.llt().matrixL();
  const auto d = mu.size();
  std::vector<double> out(n * static_cast<std::size_t>(d));
  Eigen::VectorXd z(d);
  for (std::size_t i = 0; i < n; ++i) {
    for (Eigen::Index j = 0; j < d; ++j) {
      z(j) = ayf::philox_normal(seed, i * static_cast<std::uint64_t>(d) + static_cast<std::uint64_t>(j));
    }
    const Eigen::VectorXd x = mu + l * z;
    std::copy(x.data(), x.data() + d, out.begin() + static_cast<std::ptrdiff_t>(i * static_cast<std::size_t>(d)));
  }
  return out;
}

/// Closed form for commuting covariances Q diag(a) Q^T, Q diag(b) Q^T.
double fd_commuting(const Eigen::VectorXd& mu1, const Eigen::VectorXd& a, const Eigen::VectorXd& mu2,
                    const Eigen::VectorXd& b) {
  return (mu1 - mu2).squaredNorm() + (a.cwiseSqrt() - b.cwiseSqrt()).squaredNorm();
}

/// Precision / recall by the definition, with distances from coordinate differences and full sorts.
ayf::precision_recall_result reference_precision_recall(const std::vector<double>& real, const std::vector<double>& gen,
                                                        std::size_t d, std::size_t k) {
  const auto dist2 = [d](const double* x, const double* y) {
    double s = 0;
    for (std::size_t j = 0; j < d; ++j) s += (x[j] - y[j]) * (x[j] - y[j]);
    return s;
  };
  const auto radii = [&](const std::vector<double>& set) {
    const std::size_t n = set.size() / d;
    std::vector<double> out(n);
    for (std::size_t i = 0; i < n; ++i) {
      std::vector<double> others;
      for (std::size_t j = 0; j < n; ++j) {
        if (j != i) others.push_back(dist2(&set[i * d], &set[j * d]));
      }
      std::sort(others.begin(), others.end());
      out[i] = others[k - 1];
    }
    return out;
  };
  const auto covered = [&](const std::vector<double>& queries, const std::vector<double>& ref) {
    const std::vector<double> r = radii(ref);
    const std::size_t n = queries.size() / d, m = ref.size() / d;
    std::size_t inside = 0;
    for (std::size_t i = 0; i < n; ++i) {
      bool in = false;
      for (std::size_t j = 0; j < m && !in; ++j) in = dist2(&queries[i * d], &ref[j * d]) <= r[j];
      inside += in ? 1 : 0;
    }
    return static_cast<double>(inside) / static_cast<double>(n);
  };
  return {covered(gen, real), covered(real, gen)};
}

std::vector<double> uniform_box(std::size_t n, double x_hi, double y_hi, std::uint64_t seed) {
  std::vector<double> out(2 * n);
  for (std::size_t i = 0; i < n; ++i) {
    out[2 * i] = x_hi * ayf::philox_uniform(seed, 2 * i);
    out[2 * i + 1] = y_hi * ayf::philox_uniform(seed, 2 * i + 1);
  }
  return out;
}

}  // namespace

TEST_CASE("Frechet distance: commuting covariances match |mu1 - mu2|^2 + sum (sqrt a - sqrt b)^2",
          "[metrics][frechet]") {
  const Eigen::Index d = 6;
  const Eigen::VectorXd mu1 = normal_vector(d, 1), mu2 = normal_vector(d, 2);
  Eigen::VectorXd a(d), b(d);
  a << 0.5, 1.0, 2.0, 3.0, 0.01, 9.0;
  b << 4.0, 1.0, 0.25, 7.0, 2.0, 1e-3;
  const double expected = fd_commuting(mu1, a, mu2, b);
  // Diagonal.
  const double diagonal = ayf::frechet_distance(mu1, Eigen::MatrixXd(a.asDiagonal()), mu2, Eigen::MatrixXd(b.asDiagonal()));
  CHECK(diagonal == Approx(expected).epsilon(1e-12));
  // Full covariances sharing eigenvectors.
  const Eigen::MatrixXd q = random_orthogonal(d, 3);
  const Eigen::MatrixXd c1 = q * a.asDiagonal() * q.transpose(), c2 = q * b.asDiagonal() * q.transpose();
  CHECK((c1 - Eigen::MatrixXd(c1.diagonal().asDiagonal())).norm() > 0.1);
  CHECK(ayf::frechet_distance(mu1, c1, mu2, c2) == Approx(expected).epsilon(1e-10));
  // Singular covariances (round-off negatives clamped): a zero variance, and C1 = 0.
  Eigen::VectorXd a0 = a;
  a0(0) = 0.0;
  const Eigen::MatrixXd c1_singular = q * a0.asDiagonal() * q.transpose();
  CHECK(ayf::frechet_distance(mu1, c1_singular, mu2, c2) == Approx(fd_commuting(mu1, a0, mu2, b)).epsilon(1e-8));
  CHECK(ayf::frechet_distance(mu1, Eigen::MatrixXd::Zero(d, d), mu2, c2) ==
        Approx((mu1 - mu2).squaredNorm() + b.sum()).epsilon(1e-12));
  // One dimension: (m1 - m2)^2 + (s1 - s2)^2.
  CHECK(ayf::frechet_distance(Eigen::VectorXd::Constant(1, 1.0), Eigen::MatrixXd::Constant(1, 1, 4.0),
                              Eigen::VectorXd::Constant(1, -2.0), Eigen::MatrixXd::Constant(1, 1, 9.0)) ==
        Approx(9.0 + 1.0).epsilon(1e-14));
}

TEST_CASE("Frechet distance: non-commuting 2 x 2 covariances match tr sqrt(M) = sqrt(tr M + 2 sqrt(det M))",
          "[metrics][frechet]") {
  for (std::uint64_t seed = 10; seed < 15; ++seed) {
    const Eigen::MatrixXd c1 = random_spd(2, seed), c2 = random_spd(2, seed + 100);
    REQUIRE((c1 * c2 - c2 * c1).norm() > 1e-3);
    const Eigen::VectorXd mu1 = normal_vector(2, seed + 200), mu2 = normal_vector(2, seed + 300);
    // M = C1^1/2 C2 C1^1/2: tr M = tr(C1 C2), det M = det C1 det C2.
    const double tr_root = std::sqrt((c1 * c2).trace() + 2.0 * std::sqrt(c1.determinant() * c2.determinant()));
    const double expected = (mu1 - mu2).squaredNorm() + c1.trace() + c2.trace() - 2.0 * tr_root;
    CHECK(ayf::frechet_distance(mu1, c1, mu2, c2) == Approx(expected).epsilon(1e-12));
  }
}

TEST_CASE("Frechet distance: symmetric, FD(X, X) ~ 0, equals W2^2, rejects non-finite input", "[metrics][frechet]") {
  const Eigen::Index d = 5;
  const Eigen::MatrixXd c1 = random_spd(d, 21), c2 = random_spd(d, 22);
  const Eigen::VectorXd mu1 = normal_vector(d, 23), mu2 = normal_vector(d, 24);
  const double fd12 = ayf::frechet_distance(mu1, c1, mu2, c2);
  CHECK(fd12 > 0.1);
  CHECK(ayf::frechet_distance(mu2, c2, mu1, c1) == Approx(fd12).epsilon(1e-11));
  // w2_gaussian computes (C2^1/2 C1 C2^1/2)^1/2, the other ordering.
  const double w2 = ayf::w2_gaussian(mu1, c1, mu2, c2);
  CHECK(fd12 == Approx(w2 * w2).epsilon(1e-11));
  CHECK(ayf::frechet_distance(mu1, c1, mu1, c1) < 1e-12);

  const std::vector<double> x = gaussian_samples(mu1, c1, 500, 25);
  const ayf::host_samples xs(x, static_cast<std::size_t>(d));
  CHECK(ayf::frechet_distance(xs, xs) < 1e-11);

  Eigen::VectorXd bad = mu1;
  bad(2) = std::numeric_limits<double>::quiet_NaN();
  REQUIRE_THROWS_WITH(ayf::frechet_distance(bad, c1, mu2, c2), Contains("'mu1'") && Contains("finite"));
  Eigen::MatrixXd bad_c = c2;
  bad_c(1, 1) = std::numeric_limits<double>::infinity();
  REQUIRE_THROWS_WITH(ayf::frechet_distance(mu1, c1, mu2, bad_c), Contains("'c2'") && Contains("finite"));
  std::vector<double> y = x;
  y[7] = std::numeric_limits<double>::infinity();
  REQUIRE_THROWS_WITH(ayf::frechet_distance(xs, ayf::host_samples(y, static_cast<std::size_t>(d))),
                      Contains("'b'") && Contains("row 1, column 2"));
  REQUIRE_THROWS_WITH(ayf::frechet_distance(mu1, c1, normal_vector(3, 1), c2), Contains("'mu2'"));
  REQUIRE_THROWS_WITH(ayf::frechet_distance(mu1, c1, mu2, Eigen::MatrixXd::Identity(4, 4)), Contains("'c2'"));
}

TEST_CASE("Frechet distance of samples converges to the closed form as N grows", "[metrics][frechet]") {
  const Eigen::Index d = 4;
  const Eigen::MatrixXd c1 = random_spd(d, 31), c2 = random_spd(d, 32);
  const Eigen::VectorXd mu1 = normal_vector(d, 33), mu2 = 0.5 * normal_vector(d, 34);
  const double exact = ayf::frechet_distance(mu1, c1, mu2, c2);
  // Root-mean-square error over independent draws: the estimate's spread falls like 1 / sqrt(N) and its
  // bias like 1 / N, so a tenfold N should cut the RMS error about threefold.
  const std::uint64_t draws = 8;
  std::vector<double> rms;
  for (const std::size_t n : {300, 3000, 30000}) {
    double sum = 0;
    for (std::uint64_t r = 0; r < draws; ++r) {
      const std::vector<double> x = gaussian_samples(mu1, c1, n, 100 + 2 * r);
      const std::vector<double> y = gaussian_samples(mu2, c2, n, 101 + 2 * r);
      const double fd = ayf::frechet_distance(ayf::host_samples(x, d), ayf::host_samples(y, d));
      sum += (fd - exact) * (fd - exact);
    }
    rms.push_back(std::sqrt(sum / static_cast<double>(draws)));
  }
  CAPTURE(exact, rms);
  CHECK(rms[1] < rms[0] / 2);
  CHECK(rms[2] < rms[1] / 2);
  // One large draw lands within a few percent.
  const std::vector<double> x = gaussian_samples(mu1, c1, 300000, 35), y = gaussian_samples(mu2, c2, 300000, 36);
  const double fd = ayf::frechet_distance(ayf::host_samples(x, d), ayf::host_samples(y, d));
  CHECK(std::abs(fd - exact) < 0.01 * exact);
}

TEST_CASE("precision / recall: hand-worked one-dimensional sets", "[metrics][precision_recall]") {
  const std::vector<double> real{0, 1, 2, 3};
  // k = 1: every real radius is 1; 0.5 lies within 1 of 0, 10 does not. Generated radii are 9.5.
  const auto r1 = ayf::precision_recall(ayf::host_samples(real, 1), ayf::host_samples(std::vector<double>{0.5, 10}, 1),
                                        {.k = 1});
  CHECK(r1.precision == 0.5);
  CHECK(r1.recall == 1.0);
  // k = 2: real radii 2, 1, 1, 2; 3.9 is 0.9 from 3 (inside), 5.5 and -2.5 are 2.5 from the ends.
  const auto r2 = ayf::precision_recall(ayf::host_samples(real, 1),
                                        ayf::host_samples(std::vector<double>{3.9, 5.5, -2.5}, 1), {.k = 2});
  CHECK(r2.precision == Approx(1.0 / 3.0).epsilon(1e-15));
  CHECK(r2.recall == 1.0);
}

TEST_CASE("precision / recall: identical sets 1 / 1, far sets 0 / 0, half the support recall ~ 0.5",
          "[metrics][precision_recall]") {
  const std::size_t d = 5;
  const Eigen::VectorXd mu = normal_vector(static_cast<Eigen::Index>(d), 41);
  const Eigen::MatrixXd c = random_spd(static_cast<Eigen::Index>(d), 42);
  const std::vector<double> x = gaussian_samples(mu, c, 400, 43);
  const auto same = ayf::precision_recall(ayf::host_samples(x, d), ayf::host_samples(x, d));
  CHECK(same.precision == 1.0);
  CHECK(same.recall == 1.0);

  std::vector<double> far = gaussian_samples(mu, c, 300, 44);
  for (auto& v : far) v += 1000.0;
  const auto disjoint = ayf::precision_recall(ayf::host_samples(x, d), ayf::host_samples(far, d));
  CHECK(disjoint.precision == 0.0);
  CHECK(disjoint.recall == 0.0);

  // Real: uniform on [0, 1]^2; generated: uniform on [0, 0.5] x [0, 1] at the same density. Every
  // generated sample lies on the real manifold; the generated manifold covers most of the left half
  // (k-NN balls leave small holes: the precision of ~0.98 measures them) plus a rim about one k-NN
  // radius (~0.02) wide.
  const std::vector<double> real = uniform_box(4000, 1.0, 1.0, 45), gen = uniform_box(2000, 0.5, 1.0, 46);
  const auto half = ayf::precision_recall(ayf::host_samples(real, 2), ayf::host_samples(gen, 2));
  CAPTURE(half.precision, half.recall);
  CHECK(half.precision > 0.98);
  CHECK(half.recall > 0.46);
  CHECK(half.recall < 0.54);
  // Swapped roles: precision ~ 0.5, recall ~ 1.
  const auto swapped = ayf::precision_recall(ayf::host_samples(gen, 2), ayf::host_samples(real, 2));
  CHECK(swapped.precision > 0.46);
  CHECK(swapped.precision < 0.54);
  CHECK(swapped.recall > 0.98);
}

TEST_CASE("precision / recall equal a direct O(n m) loop for every k and block size", "[metrics][precision_recall]") {
  const std::size_t d = 3;
  const Eigen::VectorXd mu = normal_vector(3, 51);
  const Eigen::MatrixXd c = random_spd(3, 52);
  const std::vector<double> real = gaussian_samples(mu, c, 230, 53);
  std::vector<double> gen = gaussian_samples(mu, 1.7 * c, 170, 54);
  for (std::size_t i = 0; i < gen.size(); i += d) gen[i] += 0.8;
  for (const std::size_t k : {1, 3, 5, 10}) {
    const auto expected = reference_precision_recall(real, gen, d, k);
    CAPTURE(k, expected.precision, expected.recall);
    // Non-trivial answers, so the comparison can fail.
    CHECK(expected.precision > 0.1);
    CHECK(expected.precision < 0.95);
    CHECK(expected.recall > 0.1);
    CHECK(expected.recall < 1.0);
    for (const std::size_t block : {1, 7, 64, 1000}) {
      CAPTURE(block);
      const auto got = ayf::precision_recall(ayf::host_samples(real, d), ayf::host_samples(gen, d),
                                             {.k = k, .block = block});
      CHECK(got.precision == expected.precision);
      CHECK(got.recall == expected.recall);
    }
  }
}

TEST_CASE("precision / recall: argument errors", "[metrics][precision_recall]") {
  const std::vector<double> a{0, 1, 2, 3}, b{0, 1, 2};
  REQUIRE_THROWS_WITH(ayf::precision_recall(ayf::host_samples(a, 1), ayf::host_samples(b, 1), {.k = 3}),
                      Contains("b.rows") && Contains("at least 4"));
  REQUIRE_THROWS_WITH(ayf::precision_recall(ayf::host_samples(a, 1), ayf::host_samples(b, 1), {.k = 0}),
                      Contains("config.k"));
  REQUIRE_THROWS_WITH(ayf::precision_recall(ayf::host_samples(a, 2), ayf::host_samples(a, 1), {.k = 1}),
                      Contains("b.cols"));
  std::vector<double> nan = a;
  nan[1] = std::numeric_limits<double>::quiet_NaN();
  REQUIRE_THROWS_WITH(ayf::precision_recall(ayf::host_samples(nan, 1), ayf::host_samples(a, 1), {.k = 1}),
                      Contains("'real'") && Contains("finite"));
}
