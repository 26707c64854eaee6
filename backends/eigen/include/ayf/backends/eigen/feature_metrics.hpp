// ayf/backends/eigen/feature_metrics.hpp: model-independent metrics between two feature sets (rows of
// [n, d] host doubles): the Frechet distance of the fitted Gaussians,
//   FD = |mu1 - mu2|^2 + tr(C1 + C2 - 2 (C1^1/2 C2 C1^1/2)^1/2)   (the squared W2 of spec §3.4),
// and precision / recall over k-nearest-neighbour manifolds (Kynkaanniemi et al. 2019), with exact
// brute-force distances computed in blocks by GEMM.
#pragma once

#include <Eigen/Core>
#include <Eigen/Eigenvalues>
#include <algorithm>
#include <cmath>
#include <cstddef>
#include <limits>
#include <string_view>
#include <vector>

#include "ayf/analysis/metrics.hpp"
#include "ayf/backends/eigen/wasserstein.hpp"
#include "ayf/core/error.hpp"

namespace ayf {

namespace feature_metrics_detail {

using row_matrix = Eigen::Matrix<double, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;

inline void require_square(std::string_view where, std::string_view argument, const Eigen::MatrixXd& c,
                           Eigen::Index d) {
  require(c.rows() == d && c.cols() == d, where, argument, detail::message("a ", d, "x", d, " matrix"),
          detail::message(c.rows(), "x", c.cols()));
}

/// The non-negative eigenvalues of the symmetric part of m (round-off negatives clamped to 0).
inline Eigen::VectorXd clamped_eigenvalues(const Eigen::MatrixXd& m, std::string_view where) {
  const Eigen::SelfAdjointEigenSolver<Eigen::MatrixXd> eig(0.5 * (m + m.transpose()), Eigen::EigenvaluesOnly);
  require(eig.info() == Eigen::Success, where, "covariance", "a symmetric matrix", "a failed eigendecomposition");
  return eig.eigenvalues().cwiseMax(0.0);
}

}  // namespace feature_metrics_detail

/// FD(N(mu1, C1), N(mu2, C2)) = |mu1 - mu2|^2 + tr(C1 + C2 - 2 (C1^1/2 C2 C1^1/2)^1/2), in double with
/// symmetric eigendecompositions. mu: [d]; C: [d, d] symmetric positive semi-definite, finite.
inline double frechet_distance(const Eigen::VectorXd& mu1, const Eigen::MatrixXd& c1, const Eigen::VectorXd& mu2,
                               const Eigen::MatrixXd& c2) {
  constexpr std::string_view where = "frechet_distance";
  using namespace feature_metrics_detail;
  const Eigen::Index d = mu1.size();
  require(d > 0, where, "mu1", "at least 1 dimension", d);
  require(mu2.size() == d, where, "mu2", detail::message("dimension ", d), mu2.size());
  require_square(where, "c1", c1, d);
  require_square(where, "c2", c2, d);
  wasserstein_detail::require_finite(where, "mu1", mu1);
  wasserstein_detail::require_finite(where, "mu2", mu2);
  wasserstein_detail::require_finite(where, "c1", c1);
  wasserstein_detail::require_finite(where, "c2", c2);
  const Eigen::MatrixXd root1 = psd_sqrt(0.5 * (c1 + c1.transpose()));
  const Eigen::MatrixXd middle = root1 * c2 * root1;
  const double trace_root = clamped_eigenvalues(middle, where).cwiseSqrt().sum();
  const double fd = (mu1 - mu2).squaredNorm() + c1.trace() + c2.trace() - 2.0 * trace_root;
  return std::max(0.0, fd);
}

/// FD between two fitted Gaussians (mean and covariance).
inline double frechet_distance(const gaussian_fit& a, const gaussian_fit& b) {
  return frechet_distance(a.mean, a.covariance, b.mean, b.covariance);
}

/// FD between the Gaussians fitted (mean, unbiased covariance) to the rows of `a` and `b` ([n, d],
/// [m, d], at least 2 rows each, finite).
inline double frechet_distance(const host_samples& a, const host_samples& b) {
  constexpr std::string_view where = "frechet_distance";
  metrics_detail::require_finite(where, "a", a);
  metrics_detail::require_finite(where, "b", b);
  metrics_detail::check_pair(where, a, b, 2);
  return frechet_distance(fit_gaussian(a.data, a.rows, a.cols), fit_gaussian(b.data, b.rows, b.cols));
}

struct precision_recall_config {
  std::size_t k = 3;        ///< neighbours defining each sample's radius (the k-th nearest other sample)
  std::size_t block = 512;  ///< rows per block of the distance computation (memory: block x max(n, m) doubles)
};

struct precision_recall_result {
  double precision = 0;  ///< fraction of generated samples inside the real k-NN manifold
  double recall = 0;     ///< fraction of real samples inside the generated k-NN manifold
};

namespace feature_metrics_detail {

/// Squared distances between the rows of `a` [blk, d] and all rows of `b` [m, d]: |a|^2 + |b|^2 - 2 a b^T
/// (one GEMM), clamped at 0.
inline void squared_distances(const row_matrix& a, const row_matrix& b, const Eigen::VectorXd& b_norms,
                              row_matrix& out) {
  out.noalias() = -2.0 * a * b.transpose();
  const Eigen::VectorXd a_norms = a.rowwise().squaredNorm();
  out.colwise() += a_norms;
  out.rowwise() += b_norms.transpose();
  out = out.cwiseMax(0.0);
}

/// The squared distance from each row of x to its k-th nearest other row.
inline Eigen::VectorXd knn_radii(const row_matrix& x, std::size_t k, std::size_t block) {
  const auto n = x.rows();
  const Eigen::VectorXd norms = x.rowwise().squaredNorm();
  Eigen::VectorXd radii(n);
  row_matrix dist;
  std::vector<double> row(static_cast<std::size_t>(n));
  for (Eigen::Index start = 0; start < n; start += static_cast<Eigen::Index>(block)) {
    const Eigen::Index rows = std::min<Eigen::Index>(static_cast<Eigen::Index>(block), n - start);
    squared_distances(x.middleRows(start, rows), x, norms, dist);
    for (Eigen::Index i = 0; i < rows; ++i) {
      std::copy(dist.row(i).data(), dist.row(i).data() + n, row.begin());
      row[static_cast<std::size_t>(start + i)] = std::numeric_limits<double>::infinity();  // not its own neighbour
      const auto kth = row.begin() + static_cast<std::ptrdiff_t>(k - 1);
      std::nth_element(row.begin(), kth, row.end());
      radii(start + i) = *kth;
    }
  }
  return radii;
}

/// The fraction of rows of `queries` within the radius of at least one row of `reference`.
inline double coverage(const row_matrix& queries, const row_matrix& reference, const Eigen::VectorXd& radii,
                       std::size_t block) {
  const auto n = queries.rows();
  const Eigen::VectorXd norms = reference.rowwise().squaredNorm();
  row_matrix dist;
  std::size_t inside = 0;
  for (Eigen::Index start = 0; start < n; start += static_cast<Eigen::Index>(block)) {
    const Eigen::Index rows = std::min<Eigen::Index>(static_cast<Eigen::Index>(block), n - start);
    squared_distances(queries.middleRows(start, rows), reference, norms, dist);
    for (Eigen::Index i = 0; i < rows; ++i) {
      if (((dist.row(i).transpose() - radii).array() <= 0.0).any()) ++inside;
    }
  }
  return static_cast<double>(inside) / static_cast<double>(n);
}

}  // namespace feature_metrics_detail

/// Improved precision and recall (Kynkaanniemi et al. 2019). Each sample's k-NN radius is the distance
/// to its k-th nearest other sample of the same set; precision is the fraction of `generated` rows
/// within the radius of some `real` row, recall the fraction of `real` rows within the radius of some
/// `generated` row. real: [n, d], generated: [m, d], n, m > k, finite. Distances are exact (brute force,
/// GEMM in blocks, both sets centred on the real mean first); the result does not depend on `block`
/// beyond round-off at ties.
inline precision_recall_result precision_recall(const host_samples& real, const host_samples& generated,
                                                const precision_recall_config& config = {}) {
  constexpr std::string_view where = "precision_recall";
  using namespace feature_metrics_detail;
  require(config.k >= 1, where, "config.k", "at least 1", config.k);
  require(config.block >= 1, where, "config.block", "at least 1", config.block);
  metrics_detail::require_finite(where, "real", real);
  metrics_detail::require_finite(where, "generated", generated);
  metrics_detail::check_pair(where, real, generated, config.k + 1);
  using map = Eigen::Map<const row_matrix>;
  const map r(real.data, static_cast<Eigen::Index>(real.rows), static_cast<Eigen::Index>(real.cols));
  const map g(generated.data, static_cast<Eigen::Index>(generated.rows), static_cast<Eigen::Index>(generated.cols));
  const Eigen::RowVectorXd centre = r.colwise().mean();
  const row_matrix rc = r.rowwise() - centre;
  const row_matrix gc = g.rowwise() - centre;
  precision_recall_result out;
  out.precision = coverage(gc, rc, knn_radii(rc, config.k, config.block), config.block);
  out.recall = coverage(rc, gc, knn_radii(gc, config.k, config.block), config.block);
  return out;
}

}  // namespace ayf
