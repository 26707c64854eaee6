// ayf/objectives/cross_entropy.hpp: softmax cross-entropy for classifiers (nn/classifier.hpp):
// L = mean_i [logsumexp(z_i) - z_i[y_i]], dL/dz_i = (softmax(z_i) - onehot(y_i)) / B.
// The logits are [B, K] with few classes, so the loss is evaluated on a host copy in double
// (max-shifted log-sum-exp) and the gradient is copied back.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <vector>

#include "ayf/core/backend.hpp"
#include "ayf/core/error.hpp"
#include "ayf/objectives/objective.hpp"

namespace ayf {

/// What one cross-entropy evaluation reports.
struct cross_entropy_result {
  double loss = 0;          ///< mean negative log-likelihood
  std::size_t correct = 0;  ///< rows whose largest logit is the label (ties: the first)
};

/// Softmax cross-entropy of `logits` ([B, K]) against `labels` ([B] or [B, 1], class indices stored
/// as scalars, each an integer in [0, K)); when `grad_logits` is not null it receives dL/dz ([B, K]).
template <backend B>
cross_entropy_result softmax_cross_entropy(typename B::context& ctx, const typename B::tensor& logits,
                                           const typename B::tensor& labels, typename B::tensor* grad_logits = nullptr) {
  constexpr const char* where = "softmax_cross_entropy";
  const shape sz = B::shape_of(logits);
  const std::size_t n = sz.rows, k = sz.cols;
  require(n >= 1 && k >= 2, where, "logits", "a [B, K] tensor with B >= 1 and K >= 2", sz);
  const shape sy = B::shape_of(labels);
  require(sy.rows * sy.cols == n, where, "labels", ayf::detail::message("B = ", n, " class indices"), sy);
  const std::vector<typename B::scalar> z = B::to_host(ctx, logits);
  const std::vector<typename B::scalar> y = B::to_host(ctx, labels);
  std::vector<typename B::scalar> grad(grad_logits != nullptr ? n * k : 0);
  cross_entropy_result result;
  double total = 0;
  for (std::size_t i = 0; i < n; ++i) {
    const double label = static_cast<double>(y[i]);
    if (!(label >= 0 && label < static_cast<double>(k) && label == std::floor(label))) {
      throw error(ayf::detail::concat(where, ": argument 'labels' row ", i, " expected a class index in [0, ", k - 1,
                                      "], received ", label));
    }
    const auto c = static_cast<std::size_t>(label);
    const auto* row = z.data() + i * k;
    double top = static_cast<double>(row[0]);
    std::size_t arg = 0;
    for (std::size_t j = 1; j < k; ++j) {
      if (static_cast<double>(row[j]) > top) top = static_cast<double>(row[j]), arg = j;
    }
    double sum = 0;
    for (std::size_t j = 0; j < k; ++j) sum += std::exp(static_cast<double>(row[j]) - top);
    const double log_sum = top + std::log(sum);
    total += log_sum - static_cast<double>(row[c]);
    if (arg == c) ++result.correct;
    if (grad_logits != nullptr) {
      for (std::size_t j = 0; j < k; ++j) {
        const double p = std::exp(static_cast<double>(row[j]) - log_sum);
        grad[i * k + j] = static_cast<typename B::scalar>((p - (j == c ? 1.0 : 0.0)) / static_cast<double>(n));
      }
    }
  }
  result.loss = total / static_cast<double>(n);
  if (grad_logits != nullptr) *grad_logits = B::from_host(ctx, grad, shape(n, k));
  return result;
}

}  // namespace ayf
