// ayf/data/images.hpp: host image sets (`images`: [count, height * width * channels] floats in [-1, 1],
// channels-last, optional int64 labels) built from parsed IDX arrays (MNIST-format pixels + labels) or
// from a user's .npy files ([N, H, W] or [N, H, W, C]; uint8 is mapped from [0, 255], floats must
// already lie in [-1, 1]). Errors name the file and what was wrong.
#pragma once

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <limits>
#include <string>
#include <string_view>
#include <vector>

#include "ayf/core/error.hpp"
#include "ayf/io/idx.hpp"
#include "ayf/io/npy.hpp"

namespace ayf::data {

/// A host image set: `values` is [count, height * width * channels] row-major, each row one image in
/// channels-last order (pixel (y, x), channel c at (y * width + x) * channels + c), values in [-1, 1];
/// `labels` is empty or [count].
struct images {
  std::vector<float> values;
  std::vector<std::int64_t> labels;
  std::size_t count = 0;
  std::size_t height = 0;
  std::size_t width = 0;
  std::size_t channels = 1;

  /// Features per image: height * width * channels.
  [[nodiscard]] std::size_t dims() const { return height * width * channels; }
  [[nodiscard]] bool has_labels() const { return !labels.empty(); }
  /// Image i: a pointer to dims() values.
  [[nodiscard]] const float* image(std::size_t i) const { return values.data() + i * dims(); }

  /// Raises ayf::error (prefixed by `where`) unless values.size() == count * dims() and labels is
  /// empty or has `count` entries.
  void check(std::string_view where) const {
    require(values.size() == count * dims(), where, "images.values",
            ayf::detail::message("count * height * width * channels = ", count, " * ", height, " * ", width, " * ",
                                channels, " values"),
            values.size());
    require(labels.empty() || labels.size() == count, where, "images.labels",
            ayf::detail::message("0 or count = ", count, " labels"), labels.size());
  }
};

/// uint8 pixel p in [0, 255] -> p / 127.5 - 1 in [-1, 1].
inline float pixel_to_unit(std::uint8_t p) { return static_cast<float>(p) / 127.5f - 1.0f; }

/// Images from parsed IDX arrays: `pixels` u8 [N, H, W] (named `pixels_source` in messages) and,
/// when `labels` is not null, integer [N] labels in [0, num_classes) (named `labels_source`).
/// `expect_height` / `expect_width` (0: any) pin the image size.
inline images images_from_idx(const io::idx_array& pixels, std::string_view pixels_source,
                              const io::idx_array* labels = nullptr, std::string_view labels_source = {},
                              std::size_t num_classes = 10, std::size_t expect_height = 0,
                              std::size_t expect_width = 0) {
  const auto fail = [](std::string_view source, const auto&... what) {
    throw error(ayf::detail::concat("images_from_idx: '", source, "': ", what...));
  };
  if (pixels.dtype != io::idx_dtype::u8) {
    fail(pixels_source, "expected dtype u8 (0x08) pixels, received ", io::idx_detail::name(pixels.dtype));
  }
  if (pixels.shape.size() != 3) {
    fail(pixels_source, "expected 3 dimensions [count, rows, cols], received ", pixels.shape.size());
  }
  images out;
  out.count = pixels.shape[0];
  out.height = pixels.shape[1];
  out.width = pixels.shape[2];
  out.channels = 1;
  if ((expect_height != 0 && out.height != expect_height) || (expect_width != 0 && out.width != expect_width)) {
    fail(pixels_source, "expected ", expect_height, " x ", expect_width, " images, received ", out.height, " x ",
         out.width);
  }
  out.values.resize(pixels.payload.size());
  for (std::size_t i = 0; i < pixels.payload.size(); ++i) out.values[i] = pixel_to_unit(pixels.payload[i]);
  if (labels != nullptr) {
    if (labels->dtype == io::idx_dtype::f32 || labels->dtype == io::idx_dtype::f64) {
      fail(labels_source, "expected an integer dtype for labels, received ", io::idx_detail::name(labels->dtype));
    }
    if (labels->shape.size() != 1) {
      fail(labels_source, "expected 1 dimension [count] of labels, received ", labels->shape.size());
    }
    if (labels->shape[0] != out.count) {
      fail(labels_source, "expected ", out.count, " labels to match the ", out.count, " images of '", pixels_source,
           "', received ", labels->shape[0]);
    }
    out.labels = labels->to_int64();
    for (std::size_t i = 0; i < out.labels.size(); ++i) {
      if (out.labels[i] < 0 || static_cast<std::size_t>(out.labels[i]) >= num_classes) {
        fail(labels_source, "label ", i, " = ", out.labels[i], " is outside [0, ", num_classes - 1, "]");
      }
    }
  }
  return out;
}

/// Images from a parsed .npy array (named `source`): [N, H, W] (one channel) or [N, H, W, C],
/// channels-last. Rule: dtype '|u1' maps p in [0, 255] to p / 127.5 - 1; '<f4' / '<f8' values are
/// taken as they are and must be finite and in [-1, 1]; integer dtypes other than uint8 are rejected.
inline images images_from_npy(const io::npy_array& array, std::string_view source) {
  const auto fail = [&](const auto&... what) {
    throw error(ayf::detail::concat("images_from_npy: '", source, "': ", what...));
  };
  if (array.shape.size() != 3 && array.shape.size() != 4) {
    fail("field 'shape' expected 3 dimensions [N, H, W] or 4 [N, H, W, C], received ", array.shape.size());
  }
  images out;
  out.count = array.shape[0];
  out.height = array.shape[1];
  out.width = array.shape[2];
  out.channels = array.shape.size() == 4 ? array.shape[3] : 1;
  if (out.height == 0 || out.width == 0 || out.channels == 0) {
    fail("expected non-empty images, received H, W, C = ", out.height, ", ", out.width, ", ", out.channels);
  }
  const std::size_t n = array.size();
  out.values.resize(n);
  switch (array.dtype) {
    case io::npy_dtype::u1:
      for (std::size_t i = 0; i < n; ++i) out.values[i] = pixel_to_unit(array.data[i]);
      break;
    case io::npy_dtype::f4:
    case io::npy_dtype::f8: {
      const std::vector<double> values = array.to_doubles();
      for (std::size_t i = 0; i < n; ++i) {
        if (!(std::isfinite(values[i]) && values[i] >= -1.0 && values[i] <= 1.0)) {
          fail("float pixels must be finite and in [-1, 1] (uint8 pixels are mapped from [0, 255]): element ", i,
               " (image ", i / out.dims(), ") is ", values[i]);
        }
        out.values[i] = static_cast<float>(values[i]);
      }
      break;
    }
    case io::npy_dtype::i4:
    case io::npy_dtype::i8:
      fail("field 'descr' expected '|u1' (pixels in [0, 255]) or '<f4' / '<f8' (pixels in [-1, 1]), received '",
           io::npy_detail::descr(array.dtype), "'");
  }
  return out;
}

/// Labels from a parsed .npy array (named `source`): '<i4' or '<i8' [count], each >= 0.
inline std::vector<std::int64_t> labels_from_npy(const io::npy_array& array, std::string_view source,
                                                 std::size_t count) {
  const auto fail = [&](const auto&... what) {
    throw error(ayf::detail::concat("labels_from_npy: '", source, "': ", what...));
  };
  if (array.dtype != io::npy_dtype::i4 && array.dtype != io::npy_dtype::i8) {
    fail("field 'descr' expected '<i4' or '<i8' labels, received '", io::npy_detail::descr(array.dtype), "'");
  }
  if (array.shape.size() != 1 || array.shape[0] != count) {
    fail("field 'shape' expected (", count, ",) to match the images, received ", array.shape.size(),
         " dimensions of first extent ", array.shape.empty() ? 0 : array.shape[0]);
  }
  std::vector<std::int64_t> labels = array.to_int64();
  for (std::size_t i = 0; i < labels.size(); ++i) {
    if (labels[i] < 0) fail("label ", i, " = ", labels[i], " is negative");
  }
  return labels;
}

/// Reads a user's images from `images_path` (.npy, see images_from_npy) and, when `labels_path` is not
/// empty, their labels ('<i4' / '<i8' [N], non-negative).
inline images read_images_npy(const std::filesystem::path& images_path, const std::filesystem::path& labels_path = {}) {
  images out = images_from_npy(io::read_npy(images_path, 4), images_path.string());
  if (!labels_path.empty()) out.labels = labels_from_npy(io::read_npy(labels_path), labels_path.string(), out.count);
  return out;
}

}  // namespace ayf::data
