// ayf/io/png.hpp: PNG figures (design.md §7): a 2-D scatter plot of points coloured by label, and a
// grid of images ([count, C*H*W] in CHW order). Encoded in memory with stb_image_write (compiled
// static into each translation unit that includes this header, so a translation unit that includes
// it must not compile stb_image_write's implementation itself) and written atomically.
#pragma once

#include <algorithm>
#include <array>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <limits>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "ayf/core/error.hpp"
#include "ayf/data/toy2d.hpp"
#include "ayf/io/atomic_write.hpp"

#if defined(INCLUDE_STB_IMAGE_WRITE_H)
#error "ayf/io/png.hpp compiles its own static copy of stb_image_write: include it before (or instead of) <stb/stb_image_write.h> in this translation unit"
#endif
#define STB_IMAGE_WRITE_STATIC
#define STB_IMAGE_WRITE_IMPLEMENTATION
#define STBI_WRITE_NO_STDIO
#if defined(__GNUC__)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wunused-function"
#pragma GCC diagnostic ignored "-Wmissing-field-initializers"
#pragma GCC diagnostic ignored "-Wsign-compare"
#endif
#include <stb/stb_image_write.h>
#if defined(__GNUC__)
#pragma GCC diagnostic pop
#endif
#undef STB_IMAGE_WRITE_IMPLEMENTATION
#undef STB_IMAGE_WRITE_STATIC
#undef STBI_WRITE_NO_STDIO

namespace ayf::io {

/// An 8-bit RGB colour.
struct rgb {
  std::uint8_t r = 0, g = 0, b = 0;
};

struct scatter_options {
  int width = 512;
  int height = 512;
  /// {x_min, x_max, y_min, y_max}; by default the data's bounding box plus a 5% margin. Points
  /// outside the range are clipped.
  std::optional<std::array<double, 4>> range;
  double point_radius = 1.5;  // pixels
  double opacity = 0.6;       // each point is blended over what lies below it
  bool axes = true;           // light grey lines x = 0 and y = 0, and a frame
};

/// The colour of label `label` (Matplotlib's "tab10" cycle; unlabelled points use label 0's).
inline rgb label_colour(int label) {
  static constexpr std::array<rgb, 10> palette{{{31, 119, 180},
                                                {255, 127, 14},
                                                {44, 160, 44},
                                                {214, 39, 40},
                                                {148, 103, 189},
                                                {140, 86, 75},
                                                {227, 119, 194},
                                                {127, 127, 127},
                                                {188, 189, 34},
                                                {23, 190, 207}}};
  const auto n = static_cast<int>(palette.size());
  return palette[static_cast<std::size_t>(((label % n) + n) % n)];
}

namespace png_detail {

inline void append_bytes(void* context, void* data, int size) {
  static_cast<std::string*>(context)->append(static_cast<const char*>(data), static_cast<std::size_t>(size));
}

/// PNG bytes of `pixels`: [height, width, channels] 8-bit, channels 1 (grey), 3 (RGB) or 4 (RGBA).
inline std::string encode_png(const std::vector<std::uint8_t>& pixels, int width, int height, int channels,
                              std::string_view where) {
  std::string out;
  const int ok = stbi_write_png_to_func(&append_bytes, &out, width, height, channels, pixels.data(), width * channels);
  if (!ok) {
    throw error(ayf::detail::concat(where, ": PNG encoding of a ", width, " x ", height, " x ", channels,
                                    " image failed"));
  }
  return out;
}

inline void check_size(std::string_view where, std::string_view argument, std::size_t value) {
  constexpr std::size_t limit = 1 << 15;
  require(value >= 1 && value <= limit, where, argument, ayf::detail::message("1 to ", limit, " pixels"), value);
}

}  // namespace png_detail

/// Renders points: [n, 2] (labels, when present, pick the colours) as a scatter plot on a white
/// background and writes it to `path` as PNG, atomically.
inline void write_scatter_png(const std::filesystem::path& path, const data::points& points,
                              const scatter_options& options = {}) {
  constexpr std::string_view where = "write_scatter_png";
  points.check(where);
  require(points.cols == 2, where, "points.cols", "2 (x, y)", points.cols);
  png_detail::check_size(where, "options.width", static_cast<std::size_t>(std::max(options.width, 0)));
  png_detail::check_size(where, "options.height", static_cast<std::size_t>(std::max(options.height, 0)));
  require(options.opacity > 0 && options.opacity <= 1, where, "options.opacity", "a value in (0, 1]", options.opacity);
  require(options.point_radius > 0 && options.point_radius < 1000, where, "options.point_radius",
          "a positive radius below 1000 pixels", options.point_radius);

  std::array<double, 4> range{-1, 1, -1, 1};
  if (options.range) {
    range = *options.range;
  } else if (points.rows > 0) {
    range = {std::numeric_limits<double>::infinity(), -std::numeric_limits<double>::infinity(),
             std::numeric_limits<double>::infinity(), -std::numeric_limits<double>::infinity()};
    for (std::size_t i = 0; i < points.rows; ++i) {
      const double x = points.at(i, 0), y = points.at(i, 1);
      if (!std::isfinite(x) || !std::isfinite(y)) continue;
      range = {std::min(range[0], x), std::max(range[1], x), std::min(range[2], y), std::max(range[3], y)};
    }
    if (!(range[0] <= range[1])) range = {-1, 1, -1, 1};  // no finite point
    for (int axis = 0; axis < 2; ++axis) {
      double& lo = range[2 * axis];
      double& hi = range[2 * axis + 1];
      const double margin = hi > lo ? 0.05 * (hi - lo) : 1.0;
      lo -= margin;
      hi += margin;
    }
  }
  require(std::isfinite(range[0]) && std::isfinite(range[1]) && range[0] < range[1] && std::isfinite(range[2]) &&
              std::isfinite(range[3]) && range[2] < range[3],
          where, "options.range", "finite {x_min < x_max, y_min < y_max}",
          ayf::detail::message("{", range[0], ", ", range[1], ", ", range[2], ", ", range[3], "}"));

  const int w = options.width, h = options.height;
  std::vector<std::uint8_t> image(static_cast<std::size_t>(w) * static_cast<std::size_t>(h) * 3, 255);
  const auto blend = [&](int px, int py, rgb colour, double opacity) {
    if (px < 0 || py < 0 || px >= w || py >= h) return;
    std::uint8_t* p = &image[(static_cast<std::size_t>(py) * static_cast<std::size_t>(w) + static_cast<std::size_t>(px)) * 3];
    const std::uint8_t c[3] = {colour.r, colour.g, colour.b};
    for (int k = 0; k < 3; ++k) p[k] = static_cast<std::uint8_t>(std::lround((1 - opacity) * p[k] + opacity * c[k]));
  };
  // Pixel centres: x_min maps to column 0, x_max to column w - 1; y_max to row 0.
  const auto to_px = [&](double x) { return (x - range[0]) / (range[1] - range[0]) * (w - 1); };
  const auto to_py = [&](double y) { return (range[3] - y) / (range[3] - range[2]) * (h - 1); };
  if (options.axes) {
    const rgb axis_colour{200, 200, 200}, frame_colour{160, 160, 160};
    if (range[0] <= 0 && 0 <= range[1]) {
      const int px = static_cast<int>(std::lround(to_px(0)));
      for (int py = 0; py < h; ++py) blend(px, py, axis_colour, 1);
    }
    if (range[2] <= 0 && 0 <= range[3]) {
      const int py = static_cast<int>(std::lround(to_py(0)));
      for (int px = 0; px < w; ++px) blend(px, py, axis_colour, 1);
    }
    for (int px = 0; px < w; ++px) {
      blend(px, 0, frame_colour, 1);
      blend(px, h - 1, frame_colour, 1);
    }
    for (int py = 0; py < h; ++py) {
      blend(0, py, frame_colour, 1);
      blend(w - 1, py, frame_colour, 1);
    }
  }
  const double r = options.point_radius;
  const auto reach = static_cast<int>(std::ceil(r));
  for (std::size_t i = 0; i < points.rows; ++i) {
    const double x = points.at(i, 0), y = points.at(i, 1);
    if (!(x >= range[0] && x <= range[1] && y >= range[2] && y <= range[3])) continue;
    const rgb colour = label_colour(points.has_labels() ? points.labels[i] : 0);
    const double cx = to_px(x), cy = to_py(y);
    const auto ix = static_cast<int>(std::lround(cx)), iy = static_cast<int>(std::lround(cy));
    for (int py = iy - reach; py <= iy + reach; ++py) {
      for (int px = ix - reach; px <= ix + reach; ++px) {
        const double dx = px - cx, dy = py - cy;
        if (dx * dx + dy * dy <= r * r) blend(px, py, colour, options.opacity);
      }
    }
  }
  write_file_atomically(path, png_detail::encode_png(image, w, h, 3, where));
}

struct image_grid_options {
  double low = 0;            // the value drawn black
  double high = 1;           // the value drawn white (values outside [low, high] are clamped)
  int padding = 2;           // pixels between and around the cells
  std::uint8_t background = 255;
};

/// Writes `images`: [count, channels * height * width] (each image in CHW order, count <=
/// rows * cols, filled row by row) as one PNG grid of rows x cols cells to `path`, atomically.
/// channels: 1 (grey) or 3 (RGB).
template <class Scalar>
void write_image_grid_png(const std::filesystem::path& path, const std::vector<Scalar>& images, std::size_t rows,
                          std::size_t cols, std::size_t height, std::size_t width, std::size_t channels,
                          const image_grid_options& options = {}) {
  constexpr std::string_view where = "write_image_grid_png";
  require(channels == 1 || channels == 3, where, "channels", "1 or 3", channels);
  png_detail::check_size(where, "height", height);
  png_detail::check_size(where, "width", width);
  require(rows >= 1 && cols >= 1, where, "rows x cols", "at least 1 x 1",
          ayf::detail::message(rows, " x ", cols));
  require(options.padding >= 0 && options.padding <= 64, where, "options.padding", "0 to 64", options.padding);
  require(std::isfinite(options.low) && std::isfinite(options.high) && options.low < options.high, where,
          "options.low, options.high", "finite low < high", ayf::detail::message(options.low, ", ", options.high));
  const std::size_t image_size = channels * height * width;
  require(images.size() % image_size == 0, where, "images.size()",
          ayf::detail::message("a multiple of channels * height * width = ", image_size), images.size());
  const std::size_t count = images.size() / image_size;
  require(count <= rows * cols, where, "images", ayf::detail::message("at most rows * cols = ", rows * cols, " images"),
          count);
  const auto pad = static_cast<std::size_t>(options.padding);
  const std::size_t grid_w = cols * width + (cols + 1) * pad, grid_h = rows * height + (rows + 1) * pad;
  png_detail::check_size(where, "grid width", grid_w);
  png_detail::check_size(where, "grid height", grid_h);

  std::vector<std::uint8_t> grid(grid_w * grid_h * channels, options.background);
  const double scale = 255.0 / (options.high - options.low);
  for (std::size_t n = 0; n < count; ++n) {
    const std::size_t top = pad + (n / cols) * (height + pad), left = pad + (n % cols) * (width + pad);
    const Scalar* image = images.data() + n * image_size;
    for (std::size_t c = 0; c < channels; ++c) {
      for (std::size_t y = 0; y < height; ++y) {
        for (std::size_t x = 0; x < width; ++x) {
          const double v = static_cast<double>(image[(c * height + y) * width + x]);
          const double scaled = std::isnan(v) ? 0.0 : std::clamp((v - options.low) * scale, 0.0, 255.0);
          grid[((top + y) * grid_w + left + x) * channels + c] = static_cast<std::uint8_t>(std::lround(scaled));
        }
      }
    }
  }
  write_file_atomically(path, png_detail::encode_png(grid, static_cast<int>(grid_w), static_cast<int>(grid_h),
                                                     static_cast<int>(channels), where));
}

}  // namespace ayf::io
