// ayf/backends/zlib/fashion_mnist.hpp: the Fashion-MNIST data set (Xiao et al. 2017) from its four IDX
// files, gzip-compressed or not (Debian's dataset-fashion-mnist installs them in
// /usr/share/datasets/fashion-mnist): 28 x 28 grey images scaled to [-1, 1] as rows [N, 784] with int64
// labels in [0, 9]; 60000 training and 10000 test images.
#pragma once

#include <array>
#include <cstddef>
#include <filesystem>
#include <string>
#include <string_view>
#include <system_error>

#include "ayf/backends/zlib/gzip.hpp"
#include "ayf/core/error.hpp"
#include "ayf/data/images.hpp"
#include "ayf/io/idx.hpp"

namespace ayf::data {

/// Where Debian's dataset-fashion-mnist package installs the files.
inline constexpr std::string_view fashion_mnist_default_dir = "/usr/share/datasets/fashion-mnist";

/// The class names, by label.
inline constexpr std::array<std::string_view, 10> fashion_mnist_classes = {
    "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"};

enum class fashion_mnist_split { train, test };

/// The file `stem` ("train-images-idx3-ubyte", ...) in `dir`: `stem` itself when present, else
/// `stem.gz`; raises ayf::error naming both when neither exists.
inline std::filesystem::path fashion_mnist_file(const std::filesystem::path& dir, std::string_view stem) {
  std::error_code ec;
  const std::filesystem::path plain = dir / std::string(stem);
  if (std::filesystem::exists(plain, ec)) return plain;
  std::filesystem::path gz = plain;
  gz += ".gz";
  if (std::filesystem::exists(gz, ec)) return gz;
  throw error(ayf::detail::concat("load_fashion_mnist: neither '", plain.string(), "' nor '", gz.string(),
                                  "' exists (install Debian's dataset-fashion-mnist or pass the directory)"));
}

/// Reads an IDX file, gzip-compressed or not.
inline io::idx_array read_idx_maybe_gzip(const std::filesystem::path& path) {
  return io::parse_idx(io::read_maybe_gzip(path, "read_idx"), path.string());
}

/// One split of Fashion-MNIST from `dir`: images [N, 784] in [-1, 1] (28 x 28, one channel) and labels
/// in [0, 9]; N = 60000 (train) or 10000 (test) for the published files, though any N whose image and
/// label counts agree is accepted.
inline images load_fashion_mnist(fashion_mnist_split split,
                                 const std::filesystem::path& dir = std::filesystem::path(fashion_mnist_default_dir)) {
  const std::string_view prefix = split == fashion_mnist_split::train ? "train" : "t10k";
  const auto images_path = fashion_mnist_file(dir, std::string(prefix) + "-images-idx3-ubyte");
  const auto labels_path = fashion_mnist_file(dir, std::string(prefix) + "-labels-idx1-ubyte");
  const io::idx_array pixels = read_idx_maybe_gzip(images_path);
  const io::idx_array labels = read_idx_maybe_gzip(labels_path);
  return images_from_idx(pixels, images_path.string(), &labels, labels_path.string(), 10, 28, 28);
}

}  // namespace ayf::data
