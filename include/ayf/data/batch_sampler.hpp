// ayf/data/batch_sampler.hpp: training batches from an in-memory dataset (host rows [N, D], optional
// integer labels). Batch k of a stage is a function of (seed, k) only: row j of it is row
// floor(u N) of the data with u = philox_uniform(seed, 2 (k batch + j)) (with replacement), and with
// label dropout p its label becomes the null class -1 when philox_uniform(seed, 2 (k batch + j) + 1) < p.
// So a resumed run draws the same batches, on every backend, and a data-parallel rank can draw just its
// rows of a batch (draw_rows).
#pragma once

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <type_traits>
#include <utility>
#include <vector>

#include "ayf/core/backend.hpp"
#include "ayf/core/error.hpp"
#include "ayf/core/philox.hpp"
#include "ayf/data/images.hpp"
#include "ayf/data/toy2d.hpp"

namespace ayf::data {

struct batch_sampler_config {
  std::size_t batch = 512;     ///< rows per batch
  double label_dropout = 0.0;  ///< probability in [0, 1] that a label becomes the null class -1
  std::uint64_t seed = 0;      ///< Philox seed of the row picks and the dropout draws
};

/// A permutation of 0..n-1 by Fisher-Yates from Philox: for i = n-1 down to 1, swap entry i with
/// entry floor(u_i (i + 1)), u_i = philox_uniform(seed, i). (Train / held-out splits.)
inline std::vector<std::size_t> shuffled_indices(std::size_t n, std::uint64_t seed) {
  std::vector<std::size_t> order(n);
  for (std::size_t i = 0; i < n; ++i) order[i] = i;
  for (std::size_t i = n; i-- > 1;) std::swap(order[i], order[detail::pick(philox_uniform(seed, i), i + 1)]);
  return order;
}

/// Draws batches x: [batch, D] and labels: [batch, 1] (class indices as scalars, -1 = null class) into
/// tensors it owns and reuses (the host staging buffers are allocated once).
template <backend B>
class batch_sampler {
public:
  using scalar = typename B::scalar;
  using tensor = typename B::tensor;

  /// values: [rows, cols] row-major; labels: empty or [rows] integers >= 0.
  template <class T, class L = int>
  batch_sampler(const std::vector<T>& values, std::size_t cols, const std::vector<L>& labels,
                batch_sampler_config config)
      : m_config(config), m_cols(cols) {
    constexpr const char* where = "batch_sampler";
    require(config.batch >= 1, where, "config.batch", "at least 1", config.batch);
    require(std::isfinite(config.label_dropout) && config.label_dropout >= 0 && config.label_dropout <= 1, where,
            "config.label_dropout", "a probability in [0, 1]", config.label_dropout);
    require(cols >= 1, where, "cols", "at least 1", cols);
    require(!values.empty(), where, "values", "a non-empty dataset", "0 values");
    require(values.size() % cols == 0, where, "values",
            ayf::detail::message("a multiple of cols = ", cols, " values"), values.size());
    m_rows = values.size() / cols;
    require(labels.empty() || labels.size() == m_rows, where, "labels",
            ayf::detail::message("0 or rows = ", m_rows, " labels"), labels.size());
    m_values.assign(values.begin(), values.end());
    m_labels.reserve(labels.size());
    for (std::size_t r = 0; r < labels.size(); ++r) {
      if constexpr (std::is_signed_v<L>) {
        if (labels[r] < 0) {
          throw error(ayf::detail::concat(where, ": argument 'labels' expected class indices >= 0, received ",
                                          labels[r], " at row ", r));
        }
      }
      m_labels.push_back(static_cast<scalar>(labels[r]));
    }
  }

  /// A toy point set (values converted to the backend's scalar).
  batch_sampler(const points& data, batch_sampler_config config)
      : batch_sampler(checked(data).values, data.cols, data.labels, config) {}

  /// An image set: rows are images, H*W*C features (channels-last).
  batch_sampler(const images& data, batch_sampler_config config)
      : batch_sampler(checked(data).values, data.dims(), data.labels, config) {}

  /// Draws batch k into x(): [batch, D] and, for labelled data, labels(): [batch, 1].
  void draw(typename B::context& ctx, std::uint64_t k) { draw(ctx, k, m_x, m_y); }

  /// Draws batch k into caller tensors x: [batch, D] and labels: [batch, 1] (left alone when the data
  /// have no labels).
  void draw(typename B::context& ctx, std::uint64_t k, tensor& x, tensor& labels) {
    draw_rows(ctx, k, 0, m_config.batch, x, labels);
  }

  /// Draws rows [first, first + n) of batch k (a data-parallel rank's share) into x: [n, D] and
  /// labels: [n, 1]: the same rows as those of draw(ctx, k).
  void draw_rows(typename B::context& ctx, std::uint64_t k, std::size_t first, std::size_t n, tensor& x,
                 tensor& labels) {
    const std::size_t batch = m_config.batch;
    require(n >= 1 && first <= batch && n <= batch - first, "batch_sampler::draw_rows", "rows",
            ayf::detail::message("a non-empty range within the batch of ", batch, " rows"),
            ayf::detail::message("[", first, ", ", first + n, ")"));
    m_host_x.resize(n * m_cols);
    if (labelled()) m_host_y.resize(n);
    for (std::size_t j = 0; j < n; ++j) {
      const std::uint64_t draw = 2 * (k * batch + first + j);
      const std::size_t r = detail::pick(philox_uniform(m_config.seed, draw), m_rows);
      for (std::size_t c = 0; c < m_cols; ++c) m_host_x[j * m_cols + c] = m_values[r * m_cols + c];
      if (labelled()) {
        const bool drop = m_config.label_dropout > 0 && philox_uniform(m_config.seed, draw + 1) < m_config.label_dropout;
        m_host_y[j] = drop ? scalar(-1) : m_labels[r];
      }
    }
    B::from_host(ctx, m_host_x, shape(n, m_cols), x);
    if (labelled()) B::from_host(ctx, m_host_y, shape::vector(n), labels);
  }

  /// The last batch drawn by draw(ctx, k).
  [[nodiscard]] const tensor& x() const { return m_x; }
  /// Its labels, or null when the data have none (what the objectives take as `labels`).
  [[nodiscard]] const tensor* labels() const { return labelled() ? &m_y : nullptr; }

  [[nodiscard]] bool labelled() const { return !m_labels.empty(); }
  [[nodiscard]] std::size_t rows() const { return m_rows; }
  [[nodiscard]] std::size_t dims() const { return m_cols; }
  [[nodiscard]] std::size_t batch() const { return m_config.batch; }
  [[nodiscard]] const batch_sampler_config& config() const { return m_config; }

private:
  template <class Data>
  static const Data& checked(const Data& data) {
    data.check("batch_sampler");
    return data;
  }

  batch_sampler_config m_config;
  std::size_t m_cols = 0, m_rows = 0;
  std::vector<scalar> m_values, m_labels;
  std::vector<scalar> m_host_x, m_host_y;
  tensor m_x{}, m_y{};
};

}  // namespace ayf::data
