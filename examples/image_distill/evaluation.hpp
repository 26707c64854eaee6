// image_distill/evaluation.hpp: what judges the samples, independent of the models judged: the
// classifier's penultimate features of an image set, and from them the Frechet distance to the
// reference features, k-NN precision / recall, and the class accuracy of conditional samples.
// Also the sample outputs: the 10 x 10 grid PNG and the .npy files.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <limits>
#include <string>
#include <vector>

#include "ayf/analysis/metrics.hpp"
#include "ayf/backends/eigen/feature_metrics.hpp"
#include "ayf/core/error.hpp"
#include "ayf/io/npy.hpp"
#include "ayf/io/png.hpp"
#include "ayf/nn/classifier.hpp"

namespace image_distill {

/// Features [rows, cols] in double and the classifier's predicted class per row.
struct feature_set {
  std::vector<double> values;
  std::vector<std::int64_t> predicted;
  std::size_t rows = 0, cols = 0;
  [[nodiscard]] ayf::host_samples samples() const { return {values.data(), rows, cols}; }
};

/// The classifier's features of `images` (host, [n, D] floats), in chunks of `chunk` rows.
template <class B>
feature_set extract_features(typename B::context& ctx, ayf::nn::image_classifier<B>& net, const std::vector<float>& images,
                             std::size_t n, std::size_t chunk) {
  const std::size_t d = net.input_size(), k = net.config().classes;
  feature_set f;
  f.rows = n;
  f.cols = net.config().features;
  f.values.reserve(n * f.cols);
  f.predicted.reserve(n);
  typename ayf::nn::image_classifier<B>::activations saved;
  typename B::tensor logits;
  using S = typename B::scalar;
  for (std::size_t first = 0; first < n; first += chunk) {
    const std::size_t m = std::min(chunk, n - first);
    const std::vector<S> part(images.begin() + static_cast<std::ptrdiff_t>(first * d),
                              images.begin() + static_cast<std::ptrdiff_t>((first + m) * d));
    const typename B::tensor x = B::from_host(ctx, part, ayf::shape(m, d));
    net.forward(ctx, x, logits, saved);
    const std::vector<S> phi = B::to_host(ctx, net.features(saved));
    f.values.insert(f.values.end(), phi.begin(), phi.end());
    const std::vector<S> z = B::to_host(ctx, logits);
    for (std::size_t i = 0; i < m; ++i) {
      f.predicted.push_back(static_cast<std::int64_t>(std::max_element(z.begin() + static_cast<std::ptrdiff_t>(i * k),
                                                                       z.begin() + static_cast<std::ptrdiff_t>((i + 1) * k)) -
                                                      (z.begin() + static_cast<std::ptrdiff_t>(i * k))));
    }
  }
  return f;
}

struct scores {
  double fd = std::numeric_limits<double>::quiet_NaN();
  double precision = std::numeric_limits<double>::quiet_NaN();
  double recall = std::numeric_limits<double>::quiet_NaN();
  double class_accuracy = std::numeric_limits<double>::quiet_NaN();
};

/// The reference the samples are judged against: features of real (test-split) images.
struct reference {
  feature_set all;     ///< the FD reference (every test image used)
  feature_set subset;  ///< at most as many rows as a generated set: the precision / recall reference
};

/// The fraction of rows whose predicted class is `labels[i]`.
inline double class_accuracy(const feature_set& f, const std::vector<std::int64_t>& labels) {
  std::size_t hits = 0;
  for (std::size_t i = 0; i < f.rows; ++i) hits += f.predicted[i] == labels[i] ? 1 : 0;
  return static_cast<double>(hits) / static_cast<double>(f.rows);
}

/// FD to reference.all, precision / recall (k = 3) against reference.subset, and the fraction of
/// rows whose predicted class is `labels[i]` (when labels are given).
inline scores score(const feature_set& generated, const reference& ref, const std::vector<std::int64_t>& labels) {
  scores s;
  s.fd = ayf::frechet_distance(generated.samples(), ref.all.samples());
  const auto pr = ayf::precision_recall(ref.subset.samples(), generated.samples());
  s.precision = pr.precision;
  s.recall = pr.recall;
  if (!labels.empty()) s.class_accuracy = class_accuracy(generated, labels);
  return s;
}

/// The first `rows` rows of `f`.
inline feature_set head(const feature_set& f, std::size_t rows) {
  feature_set out = f;
  out.rows = std::min(rows, f.rows);
  out.values.resize(out.rows * f.cols);
  out.predicted.resize(out.rows);
  return out;
}

/// Image geometry of the samples.
struct geometry {
  std::size_t height = 28, width = 28, channels = 1;
  [[nodiscard]] std::size_t dims() const { return height * width * channels; }
};

/// A grid of `rows` x 10 cells from the first rows * 10 samples, whose label is i % rows (so row c
/// holds class c): cell (c, j) is sample j * rows + c. Channels-last samples are written as grey
/// (C = 1, or channel 0) or RGB (C = 3).
inline void write_grid(const std::filesystem::path& path, const std::vector<float>& samples, const geometry& g,
                       std::size_t rows) {
  const std::size_t cols = 10, cells = rows * cols, hw = g.height * g.width;
  const std::size_t out_channels = g.channels == 3 ? 3 : 1;
  std::vector<float> grid(cells * hw * out_channels);
  for (std::size_t c = 0; c < rows; ++c) {
    for (std::size_t j = 0; j < cols; ++j) {
      const std::size_t src = j * rows + c, dst = c * cols + j;
      for (std::size_t p = 0; p < hw; ++p) {
        for (std::size_t ch = 0; ch < out_channels; ++ch) {  // channels-last -> channel-major
          grid[dst * hw * out_channels + ch * hw + p] = samples[src * g.dims() + p * g.channels + ch];
        }
      }
    }
  }
  ayf::io::write_image_grid_png(path, grid, rows, cols, g.height, g.width, out_channels, {.low = -1, .high = 1});
}

/// Writes `samples` ([n, dims], clipped to [-1, 1]) as float32 [n, H, W] (C = 1) or [n, H, W, C], and
/// `labels` as int64 [n] (when given).
inline void write_samples(const std::filesystem::path& stem, const std::vector<float>& samples, const geometry& g,
                          const std::vector<std::int64_t>& labels) {
  const std::size_t n = samples.size() / g.dims();
  std::vector<float> clipped(samples);
  for (float& v : clipped) v = std::clamp(v, -1.0f, 1.0f);
  std::vector<std::size_t> shape{n, g.height, g.width};
  if (g.channels != 1) shape.push_back(g.channels);
  ayf::io::write_npy(std::filesystem::path(stem.string() + ".npy"), clipped, shape);
  if (!labels.empty()) ayf::io::write_npy(std::filesystem::path(stem.string() + "_labels.npy"), labels, {n});
}

}  // namespace image_distill
