// ayf/backends/eigen/wasserstein.hpp: W2 between Gaussians with general covariances (spec §3.4),
// W2^2 = |mu1 - mu2|^2 + tr(C1 + C2 - 2 (C2^1/2 C1 C2^1/2)^1/2), and its sample estimate: the
// W2 from the Gaussian fitted to samples (any backend's [n, d] tensor) to a reference Gaussian.
#pragma once

#include <Eigen/Core>
#include <Eigen/Eigenvalues>
#include <algorithm>
#include <cmath>
#include <string_view>
#include <type_traits>
#include <vector>

#include "ayf/core/backend.hpp"
#include "ayf/core/error.hpp"

namespace ayf {

namespace wasserstein_detail {

/// Raises ayf::error("<where>: argument '<name>' expected finite values, received <v> at <index>") when
/// `m` holds a NaN or an infinity.
template <class Derived>
void require_finite(std::string_view where, std::string_view name, const Eigen::MatrixBase<Derived>& m) {
  for (Eigen::Index i = 0; i < m.rows(); ++i) {
    for (Eigen::Index j = 0; j < m.cols(); ++j) {
      if (!std::isfinite(m(i, j))) {
        throw_argument_error(where, name, "finite values",
                             m.cols() == 1 ? detail::concat(m(i, j), " at index ", i)
                                           : detail::concat(m(i, j), " at (", i, ", ", j, ")"));
      }
    }
  }
}

}  // namespace wasserstein_detail

/// The symmetric positive semi-definite square root of a symmetric matrix (negative eigenvalues
/// from rounding are clamped to 0). Raises ayf::error when `m` is not finite.
inline Eigen::MatrixXd psd_sqrt(const Eigen::MatrixXd& m) {
  wasserstein_detail::require_finite("psd_sqrt", "m", m);
  const Eigen::SelfAdjointEigenSolver<Eigen::MatrixXd> eig(m);
  require(eig.info() == Eigen::Success, "psd_sqrt", "m", "a symmetric matrix", "a failed eigendecomposition");
  const Eigen::VectorXd root = eig.eigenvalues().cwiseMax(0.0).cwiseSqrt();
  return eig.eigenvectors() * root.asDiagonal() * eig.eigenvectors().transpose();
}

/// W2(N(mu1, C1), N(mu2, C2)). mu: [d]; C: [d, d] symmetric positive semi-definite. Raises ayf::error
/// naming the argument when an input is not finite, and "w2_gaussian: overflow: ..." when W2^2 is not.
inline double w2_gaussian(const Eigen::VectorXd& mu1, const Eigen::MatrixXd& c1,
                          const Eigen::VectorXd& mu2, const Eigen::MatrixXd& c2) {
  const auto d = mu1.size();
  require(mu2.size() == d, "w2_gaussian", "mu2", detail::message("dimension ", d), mu2.size());
  require(c1.rows() == d && c1.cols() == d, "w2_gaussian", "c1", detail::message("a ", d, "x", d, " matrix"),
          detail::message(c1.rows(), "x", c1.cols()));
  require(c2.rows() == d && c2.cols() == d, "w2_gaussian", "c2", detail::message("a ", d, "x", d, " matrix"),
          detail::message(c2.rows(), "x", c2.cols()));
  wasserstein_detail::require_finite("w2_gaussian", "mu1", mu1);
  wasserstein_detail::require_finite("w2_gaussian", "c1", c1);
  wasserstein_detail::require_finite("w2_gaussian", "mu2", mu2);
  wasserstein_detail::require_finite("w2_gaussian", "c2", c2);
  const Eigen::MatrixXd root2 = psd_sqrt(c2);
  const Eigen::MatrixXd middle = root2 * c1 * root2;
  if (!middle.allFinite()) {
    throw error("w2_gaussian: overflow: C2^1/2 C1 C2^1/2 is not finite (the covariances are too large)");
  }
  const double trace = c1.trace() + c2.trace() - 2.0 * psd_sqrt(0.5 * (middle + middle.transpose())).trace();
  const double squared = (mu1 - mu2).squaredNorm() + trace;
  if (!std::isfinite(squared)) {
    throw error(detail::concat("w2_gaussian: overflow: W2^2 = |mu1 - mu2|^2 + trace term is ", squared,
                               " (|mu1 - mu2|^2 = ", (mu1 - mu2).squaredNorm(), ", trace term = ", trace, ")"));
  }
  return std::sqrt(std::max(0.0, squared));
}

/// Sample mean and (unbiased) covariance.
struct gaussian_fit {
  Eigen::VectorXd mean;
  Eigen::MatrixXd covariance;
};

/// Accumulates the first and second moments of d-dimensional samples batch by batch, so a fit
/// over many samples needs O(d^2) memory, not O(n d).
class gaussian_moments {
public:
  explicit gaussian_moments(std::size_t dims)
      : m_sum(Eigen::VectorXd::Zero(static_cast<Eigen::Index>(dims))),
        m_outer(Eigen::MatrixXd::Zero(static_cast<Eigen::Index>(dims), static_cast<Eigen::Index>(dims))) {}

  /// Adds the rows of `samples` ([n, d], row-major). Shifted by the first batch's mean, so the
  /// covariance does not suffer from cancellation when the mean is large. Raises ayf::error naming
  /// the sample when one is not finite, and "gaussian_moments::add: overflow" when the moments overflow.
  void add(const double* samples, std::size_t n, std::size_t d) {
    require(d == static_cast<std::size_t>(m_sum.size()), "gaussian_moments::add", "d",
            detail::message(m_sum.size(), " dimensions"), d);
    if (n == 0) return;
    for (std::size_t k = 0; k < n * d; ++k) {
      if (!std::isfinite(samples[k])) {
        throw_argument_error("gaussian_moments::add", "samples", "finite values",
                             detail::concat(samples[k], " at row ", m_count + k / d, ", column ", k % d));
      }
    }
    const Eigen::Map<const Eigen::Matrix<double, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>> x(
        samples, static_cast<Eigen::Index>(n), static_cast<Eigen::Index>(d));
    if (m_count == 0) m_shift = x.colwise().mean().transpose();
    const Eigen::MatrixXd centered = x.rowwise() - m_shift.transpose();
    m_sum += centered.colwise().sum().transpose();
    m_outer.noalias() += centered.transpose() * centered;
    m_count += n;
    if (!m_sum.allFinite() || !m_outer.allFinite()) {
      throw error(detail::concat("gaussian_moments::add: overflow: the sums of (centered) samples or of their "
                                 "squares are not finite after ", m_count, " samples (values too large)"));
    }
  }

  /// Adds the rows of a tensor of any backend ([n, d]).
  template <backend B>
  void add(typename B::context& ctx, const typename B::tensor& x) {
    const shape sh = B::shape_of(x);
    const auto host = B::to_host(ctx, x);
    if constexpr (std::is_same_v<typename B::scalar, double>) {
      add(host.data(), sh.rows, sh.cols);
    } else {
      const std::vector<double> values(host.begin(), host.end());
      add(values.data(), sh.rows, sh.cols);
    }
  }

  [[nodiscard]] std::size_t count() const { return m_count; }

  /// Mean and unbiased covariance of everything added so far (at least 2 samples).
  [[nodiscard]] gaussian_fit fit() const {
    require(m_count >= 2, "gaussian_moments::fit", "samples", "at least 2 samples", m_count);
    const double n = static_cast<double>(m_count);
    const Eigen::VectorXd centered_mean = m_sum / n;
    gaussian_fit out;
    out.mean = m_shift + centered_mean;
    out.covariance = (m_outer - n * centered_mean * centered_mean.transpose()) / (n - 1);
    if (!out.mean.allFinite() || !out.covariance.allFinite()) {
      throw error("gaussian_moments::fit: overflow: the fitted mean or covariance is not finite");
    }
    return out;
  }

private:
  Eigen::VectorXd m_sum;
  Eigen::MatrixXd m_outer;
  Eigen::VectorXd m_shift;
  std::size_t m_count = 0;
};

/// Mean and unbiased covariance of the rows of `samples` ([n, d], row-major host data).
inline gaussian_fit fit_gaussian(const double* samples, std::size_t n, std::size_t d) {
  gaussian_moments moments(d);
  moments.add(samples, n, d);
  return moments.fit();
}

/// The sample estimate of W2 between the distribution of the rows of `x` ([n, d], any backend)
/// and N(mu, C): W2 from the Gaussian fitted to the samples.
template <backend B>
double w2_sample_estimate(typename B::context& ctx, const typename B::tensor& x,
                          const Eigen::VectorXd& mu, const Eigen::MatrixXd& c) {
  gaussian_moments moments(B::shape_of(x).cols);
  moments.add<B>(ctx, x);
  const gaussian_fit fit = moments.fit();
  return w2_gaussian(fit.mean, fit.covariance, mu, c);
}

/// The sample estimate of W2 to the isotropic data distribution N(0, c^2 I_d).
template <backend B>
double w2_sample_estimate_isotropic(typename B::context& ctx, const typename B::tensor& x, double c) {
  const auto d = static_cast<Eigen::Index>(B::shape_of(x).cols);
  return w2_sample_estimate<B>(ctx, x, Eigen::VectorXd::Zero(d),
                               c * c * Eigen::MatrixXd::Identity(d, d));
}

}  // namespace ayf
