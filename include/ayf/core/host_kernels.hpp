// ayf/core/host_kernels.hpp: the element loops of the backend operations on host memory, shared by
// every host backend so that they sum in one fixed order and agree bit for bit (design.md §5).
#pragma once

#include <array>
#include <bit>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <tuple>
#include <type_traits>
#include <utility>

#include "ayf/core/philox.hpp"

namespace ayf::host_kernels {

/// Reductions sum fixed chunks of this many elements (each in reduce_lanes interleaved lanes, see
/// reduce_chunk_sum), then the chunk sums in order: the result does not depend on the number of threads.
inline constexpr std::size_t reduce_chunk = 8192;
inline constexpr std::size_t reduce_lanes = 16;

/// A per-row coefficient of `scale_sum_rows`: a [B] array or one scalar for every row.
template <class S>
struct row_coefficient {
  const S* values = nullptr;
  S constant = S(0);
  [[nodiscard]] S operator()(std::size_t row) const { return values ? values[row] : constant; }
};

/// out[k] = f(in_1[k], ...) for k in [begin, end).
template <class S, class F, class... In>
void transform(std::size_t begin, std::size_t end, S* out, const F& f, const In*... in) {
  for (std::size_t k = begin; k < end; ++k) out[k] = static_cast<S>(f(in[k]...));
}

/// {out1[k], out2[k]} = f(in_1[k], ...) for k in [begin, end) (f returns fn::value_pair).
template <class S, class F, class... In>
void transform_pair(std::size_t begin, std::size_t end, S* out1, S* out2, const F& f, const In*... in) {
  for (std::size_t k = begin; k < end; ++k) {
    const auto r = f(in[k]...);
    out1[k] = static_cast<S>(r.first);
    out2[k] = static_cast<S>(r.second);
  }
}

/// f(theta[k], m[k], v[k], g[k]) for k in [begin, end): a fused in-place optimizer update (fn::adam_update).
template <class S, class F>
void apply_adam(std::size_t begin, std::size_t end, const F& f, S* theta, S* m, S* v, const S* g) {
  for (std::size_t k = begin; k < end; ++k) f(theta[k], m[k], v[k], g[k]);
}

/// y[i, :] = sum_k c_k(i) x_k[i, :] for rows [row_begin, row_end); y may alias any x_k.
template <class S, std::size_t N>
void scale_sum_rows(std::size_t row_begin, std::size_t row_end, std::size_t cols, S* y,
                    const std::array<row_coefficient<S>, N>& c, const std::array<const S*, N>& x) {
  for (std::size_t i = row_begin; i < row_end; ++i) {
    S ci[N];
    for (std::size_t k = 0; k < N; ++k) ci[k] = c[k](i);
    const std::size_t base = i * cols;
    for (std::size_t j = 0; j < cols; ++j) {
      S acc = ci[0] * x[0][base + j];
      for (std::size_t k = 1; k < N; ++k) acc += ci[k] * x[k][base + j];
      y[base + j] = acc;
    }
  }
}

/// Blocks [begin, end) of `block` elements: out block i = in block map(i), or zeros where
/// map(i) < 0 (padding).
/// Host and device: the Thrust backend runs it per block.
template <class S, class Map>
AYF_HOST_DEVICE void gather(std::size_t begin, std::size_t end, S* out, const S* in, const Map& map, std::size_t block) {
  for (std::size_t i = begin; i < end; ++i) {
    const std::int64_t k = map(static_cast<std::int64_t>(i));
    S* o = out + i * block;
    if (k < 0) {
      for (std::size_t j = 0; j < block; ++j) o[j] = S(0);
    } else {
      const S* x = in + static_cast<std::size_t>(k) * block;
      for (std::size_t j = 0; j < block; ++j) o[j] = x[j];
    }
  }
}

/// Pixels [begin, end) of a channels-last concatenation: y pixel i = [a pixel i (ca values) | b pixel
/// i (cb values)].
template <class S>
void concat_channels(std::size_t begin, std::size_t end, S* y, const S* a, std::size_t ca, const S* b,
                     std::size_t cb) {
  for (std::size_t i = begin; i < end; ++i) {
    S* o = y + i * (ca + cb);
    const S* pa = a + i * ca;
    const S* pb = b + i * cb;
    for (std::size_t j = 0; j < ca; ++j) o[j] = pa[j];
    for (std::size_t j = 0; j < cb; ++j) o[ca + j] = pb[j];
  }
}
/// Its adjoint over pixels [begin, end): a pixel i = y's first ca values, b pixel i = the next cb.
template <class S>
void split_channels(std::size_t begin, std::size_t end, S* a, std::size_t ca, S* b, std::size_t cb, const S* y) {
  for (std::size_t i = begin; i < end; ++i) {
    const S* in = y + i * (ca + cb);
    S* pa = a + i * ca;
    S* pb = b + i * cb;
    for (std::size_t j = 0; j < ca; ++j) pa[j] = in[j];
    for (std::size_t j = 0; j < cb; ++j) pb[j] = in[ca + j];
  }
}

/// Blocks [begin, end): out block i = sum_{r < taps} in block map(i, r) (map < 0 skipped), r in order.
template <class S, class Map>
AYF_HOST_DEVICE void gather_sum(std::size_t begin, std::size_t end, S* out, const S* in, const Map& map,
                                std::int64_t taps, std::size_t block) {
  for (std::size_t i = begin; i < end; ++i) {
    S* o = out + i * block;
    for (std::size_t j = 0; j < block; ++j) o[j] = S(0);
    for (std::int64_t r = 0; r < taps; ++r) {
      const std::int64_t k = map(static_cast<std::int64_t>(i), r);
      if (k < 0) continue;
      const S* x = in + static_cast<std::size_t>(k) * block;
      for (std::size_t j = 0; j < block; ++j) o[j] += x[j];
    }
  }
}

/// The geometry of a k x k "same" stencil (stride 1, zero padding k / 2) on channels-last images
/// [R, H*W*C]: column row (b, y, x) of the [R*H*W, k*k*C] column matrix holds, tap-major
/// (tap = ky * k + kx), the C channels of pixel (y + ky - k/2, x + kx - k/2), zeros outside.
struct stencil_dims {
  std::size_t height, width, channels, kernel;
};
/// Bands of image rows of the tiled stencil products (host_backend::stencil_bands).
struct stencil_band_grid {
  std::size_t rows_per_band, bands_per_sample;
  struct band {
    std::size_t sample, y0, y1;
  };
  /// Task t's band: image rows [y0, y1) of sample t / bands_per_sample, of an image `height` rows high.
  [[nodiscard]] band at(std::size_t t, std::size_t height) const {
    const std::size_t y0 = (t % bands_per_sample) * rows_per_band;
    return {t / bands_per_sample, y0, y0 + rows_per_band < height ? y0 + rows_per_band : height};
  }
};

/// col2im, the adjoint of im2col, for image rows [row_begin, row_end) of x: each pixel sums the
/// column entries that read it (x = beta x + sum, beta 0 or 1), rows of taps ky in order.
template <class S>
void col2im(std::size_t row_begin, std::size_t row_end, const stencil_dims& d, S* x, const S* cols, bool accumulate) {
  const std::size_t h = d.height, w = d.width, c = d.channels, k = d.kernel, r = k / 2, kc = k * c;
  const std::size_t taps = k * kc;
  for (std::size_t row = row_begin; row < row_end; ++row) {
    const std::size_t b = row / h, ys = row - b * h;
    S* out = x + row * w * c;
    if (!accumulate)
      for (std::size_t j = 0; j < w * c; ++j) out[j] = S(0);
    for (std::size_t ky = 0; ky < k; ++ky) {
      // Output row y reads this input row through tap row ky when y + ky - r = ys.
      if (ys + r < ky || ys + r - ky >= h) continue;
      const std::size_t y = ys + r - ky;
      const S* col_row = cols + (b * h + y) * w * taps + ky * kc;
      for (std::size_t xo = 0; xo < w; ++xo) {
        const S* src = col_row + xo * taps;
        if (xo >= r && xo + k - r <= w) {  // the k taps land on k adjacent pixels
          S* o = out + (xo - r) * c;
          for (std::size_t j = 0; j < kc; ++j) o[j] += src[j];
        } else {
          for (std::size_t kx = 0; kx < k; ++kx) {
            if (xo + kx < r || xo + kx - r >= w) continue;
            S* o = out + (xo + kx - r) * c;
            const S* s = src + kx * c;
            for (std::size_t j = 0; j < c; ++j) o[j] += s[j];
          }
        }
      }
    }
  }
}

/// The geometry of GroupNorm on channels-last images [R, P*C]: G groups of C/G adjacent channels,
/// the statistics of group g of sample b over the P pixels' runs of channels [g C/G, (g + 1) C/G).
struct group_norm_dims {
  std::size_t pixels, channels, groups;
  double eps;
};

/// GroupNorm tasks are (sample b, block of groups): a block spans at most this many channels, or one
/// group when C/G is wider. Sums run per channel over the pixels in order (in double), then over the
/// channels of a group in order: they do not depend on how the tasks are spread over threads.
inline constexpr std::size_t group_norm_lanes = 64;

[[nodiscard]] constexpr std::size_t group_norm_groups_per_block(const group_norm_dims& d) {
  const std::size_t cg = d.channels / d.groups;
  return cg >= group_norm_lanes ? 1 : group_norm_lanes / cg;
}
/// Tasks per sample.
[[nodiscard]] constexpr std::size_t group_norm_blocks(const group_norm_dims& d) {
  const std::size_t per_block = group_norm_groups_per_block(d);
  return (d.groups + per_block - 1) / per_block;
}

/// The groups [g0, g1) of sample b in one task's block.
struct group_norm_block {
  std::size_t b, g0, g1;
};
[[nodiscard]] inline group_norm_block group_norm_task(const group_norm_dims& d, std::size_t task) {
  const std::size_t per_block = group_norm_groups_per_block(d), blocks = group_norm_blocks(d);
  const std::size_t b = task / blocks, g0 = (task - b * blocks) * per_block;
  return {b, g0, g0 + per_block < d.groups ? g0 + per_block : d.groups};
}

/// For each run [c0, c0 + width) of at most group_norm_lanes channels of groups [g0, g1):
/// run(c0, width).
template <class Run>
void for_group_norm_runs(const group_norm_dims& d, std::size_t g0, std::size_t g1, const Run& run) {
  const std::size_t cg = d.channels / d.groups, c_end = g1 * cg;
  for (std::size_t c0 = g0 * cg; c0 < c_end; c0 += group_norm_lanes)
    run(c0, c_end - c0 < group_norm_lanes ? c_end - c0 : group_norm_lanes);
}

/// The per-channel sums over one sample's pixels, in double, of v and of v xhat (both that sample's
/// row, image layout) for the runs of groups [g0, g1): done(c0, width, sum_v, sum_v_xhat). With
/// `slope` not null (that sample's row too), v is slope times the values given (in S).
template <class S, class Done>
void group_norm_channel_sums(const group_norm_dims& d, std::size_t g0, std::size_t g1, const S* v, const S* xhat,
                             const S* slope, const Done& done) {
  const std::size_t c = d.channels;
  for_group_norm_runs(d, g0, g1, [&](std::size_t c0, std::size_t width) {
    double acc1[group_norm_lanes] = {}, acc2[group_norm_lanes] = {};
    for (std::size_t p = 0; p < d.pixels; ++p) {
      const S* vp = v + p * c + c0;
      const S* hp = xhat + p * c + c0;
      if (slope == nullptr) {
        for (std::size_t j = 0; j < width; ++j) {
          const double value = static_cast<double>(vp[j]);
          acc1[j] += value;
          acc2[j] += value * static_cast<double>(hp[j]);
        }
      } else {
        const S* sp = slope + p * c + c0;
        for (std::size_t j = 0; j < width; ++j) {
          const double value = static_cast<double>(sp[j] * vp[j]);
          acc1[j] += value;
          acc2[j] += value * static_cast<double>(hp[j]);
        }
      }
    }
    done(c0, width, acc1, acc2);
  });
}

/// `condition ? if_true : if_false` on the bits, without a branch. GCC (12, default -ftrapping-math)
/// does not if-convert two such selects on float comparisons in one loop body for SSE2 or AVX2 ("control
/// flow in loop"), so a loop over exp_polynomial vectorized only for AVX-512; through the bits it does
/// for all three, and the values are the same.
inline float select_bits(bool condition, float if_true, float if_false) {
  const std::uint32_t mask = 0u - static_cast<std::uint32_t>(condition);
  return std::bit_cast<float>((mask & std::bit_cast<std::uint32_t>(if_true)) |
                              (~mask & std::bit_cast<std::uint32_t>(if_false)));
}

/// e^x in float without a library call, so that loops over it vectorize: x = k ln 2 + r with k =
/// round(x / ln 2) and |r| <= ln(2) / 2 (ln 2 split in two parts, Cody and Waite), e^r by Cephes'
/// degree-7 polynomial, 2^k written into the exponent bits. x is clamped to [-87.3, 88.3] first, so
/// 2^k stays a normal float (k in [-126, 127]): below, the result is e^-87.3 ~ 1.2e-38 instead of a
/// subnormal or 0, above, e^88.3 ~ 2.2e38 instead of overflowing to inf. NaN propagates. Within 2
/// ulp of e^x inside the clamp (tests/test_backend_ops.cpp).
inline float exp_polynomial(float x) {
  constexpr float lowest = -87.3f, highest = 88.3f;
  x = select_bits(x < lowest, lowest, x);  // comparisons, so that NaN passes through
  x = select_bits(x > highest, highest, x);
  constexpr float log2e = 1.44269504088896341f, round_magic = 12582912.0f;  // 1.5 * 2^23
  const float shifted = x * log2e + round_magic;  // round(x / ln 2) in the low mantissa bits
  const float k = shifted - round_magic;
  const float r = (x - k * 0.693359375f) - k * -2.12194440e-4f;  // ln 2 = 0.693359375 - 2.12194440e-4
  float p = 1.9875691500e-4f;
  p = p * r + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  const float er = p * (r * r) + r + 1.0f;
  const std::int32_t power = std::bit_cast<std::int32_t>(shifted) - std::bit_cast<std::int32_t>(round_magic);
  return er * std::bit_cast<float>(static_cast<std::uint32_t>(power + 127) << 23);
}

/// SiLU of z and its slope, with one exp: silu(z) = z / (1 + e^-z), silu'(z) = sigmoid(z) (1 + z (1 -
/// sigmoid(z))), the operations of the activation layer's functors; in float, e^-z by exp_polynomial
/// (so the fused GroupNorm + SiLU loop vectorizes), in double by std::exp.
template <class S>
inline S silu_with_slope(S z, S& slope) {
  S e;
  if constexpr (std::is_same_v<S, float>) {
    e = exp_polynomial(-z);
  } else {
    e = std::exp(-z);
  }
  const S denominator = S(1) + e, sg = S(1) / denominator;
  slope = sg * (S(1) + z * (S(1) - sg));
  return z / denominator;
}

/// GroupNorm forward for tasks [begin, end) (task = b * group_norm_blocks + block), one (sample,
/// block) at a time: mu = mean x, var = mean (x - mu)^2 per (b, g) in double, rstd[b G + g] =
/// 1 / sqrt(var + eps), xhat = (x - mu) rstd (row b of xhat, the image layout), y = gamma xhat + beta
/// (row b). With `tangent`, the tangent row n + b: dy = gamma rstd (dx - mean(dx) - xhat mean(xhat dx)).
/// With `slope` not null, SiLU follows in the same pass: y = silu(z) with z = gamma xhat + beta,
/// slope (row b, [n, P*C]) = silu'(z), and the tangent row is slope dz.
template <class S>
void group_norm_forward(std::size_t begin, std::size_t end, const group_norm_dims& d, std::size_t n, bool tangent,
                        S* y, S* xhat, S* rstd, S* slope, const S* x, const S* gamma, const S* beta) {
  constexpr std::size_t lanes = group_norm_lanes;
  const std::size_t c = d.channels, cg = c / d.groups, row = d.pixels * c;
  const double inv_m = 1.0 / static_cast<double>(d.pixels * cg);
  for (std::size_t task = begin; task < end; ++task) {
    const group_norm_block block = group_norm_task(d, task);
    const std::size_t b = block.b, g0 = block.g0, g1 = block.g1;
    const S* xb = x + b * row;
    S* hb = xhat + b * row;
    S* yb = y + b * row;
    // Per group: s1 = sum x, mean; then s1 = sum (x - mean)^2, r = rstd.
    double mean[lanes], r[lanes], s1[lanes], s2[lanes];
    auto group_of = [&](std::size_t ch) { return ch / cg - g0; };
    for (std::size_t k = 0; k < g1 - g0; ++k) s1[k] = 0;
    for_group_norm_runs(d, g0, g1, [&](std::size_t c0, std::size_t width) {
      double acc[lanes] = {};
      for (std::size_t p = 0; p < d.pixels; ++p) {
        const S* xp = xb + p * c + c0;
        for (std::size_t j = 0; j < width; ++j) acc[j] += static_cast<double>(xp[j]);
      }
      for (std::size_t j = 0; j < width; ++j) s1[group_of(c0 + j)] += acc[j];
    });
    for (std::size_t k = 0; k < g1 - g0; ++k) {
      mean[k] = s1[k] * inv_m;
      s1[k] = 0;
    }
    for_group_norm_runs(d, g0, g1, [&](std::size_t c0, std::size_t width) {
      double mu[lanes], acc[lanes] = {};
      for (std::size_t j = 0; j < width; ++j) mu[j] = mean[group_of(c0 + j)];
      for (std::size_t p = 0; p < d.pixels; ++p) {
        const S* xp = xb + p * c + c0;
        for (std::size_t j = 0; j < width; ++j) {
          const double t = static_cast<double>(xp[j]) - mu[j];
          acc[j] += t * t;
        }
      }
      for (std::size_t j = 0; j < width; ++j) s1[group_of(c0 + j)] += acc[j];
    });
    for (std::size_t k = 0; k < g1 - g0; ++k) {
      r[k] = 1.0 / std::sqrt(s1[k] * inv_m + d.eps);
      rstd[b * d.groups + g0 + k] = static_cast<S>(r[k]);
    }
    // xhat = (x - mu) rstd, y = gamma xhat + beta (or silu of it, and its slope).
    S* sb = slope != nullptr ? slope + b * row : nullptr;
    for_group_norm_runs(d, g0, g1, [&](std::size_t c0, std::size_t width) {
      S mu[lanes], rs[lanes], ga[lanes], be[lanes];
      for (std::size_t j = 0; j < width; ++j) {
        mu[j] = static_cast<S>(mean[group_of(c0 + j)]);
        rs[j] = static_cast<S>(r[group_of(c0 + j)]);
        ga[j] = gamma[c0 + j];
        be[j] = beta[c0 + j];
      }
      for (std::size_t p = 0; p < d.pixels; ++p) {
        const S* xp = xb + p * c + c0;
        S* hp = hb + p * c + c0;
        S* yp = yb + p * c + c0;
        if (sb == nullptr) {
          for (std::size_t j = 0; j < width; ++j) {
            const S h = (xp[j] - mu[j]) * rs[j];
            hp[j] = h;
            yp[j] = ga[j] * h + be[j];
          }
        } else {
          S* sp = sb + p * c + c0;
          for (std::size_t j = 0; j < width; ++j) {
            const S h = (xp[j] - mu[j]) * rs[j];
            hp[j] = h;
            yp[j] = silu_with_slope(ga[j] * h + be[j], sp[j]);
          }
        }
      }
    });
    if (!tangent) continue;
    // dy = gamma rstd (dx - mean(dx) - xhat mean(xhat dx)).
    const S* vb = x + (n + b) * row;
    S* tb = y + (n + b) * row;
    for (std::size_t k = 0; k < g1 - g0; ++k) s1[k] = s2[k] = 0;
    const S* no_slope = nullptr;
    group_norm_channel_sums(d, g0, g1, vb, hb, no_slope, [&](std::size_t c0, std::size_t width, const double* acc1,
                                                          const double* acc2) {
      for (std::size_t j = 0; j < width; ++j) {
        s1[group_of(c0 + j)] += acc1[j];
        s2[group_of(c0 + j)] += acc2[j];
      }
    });
    for_group_norm_runs(d, g0, g1, [&](std::size_t c0, std::size_t width) {
      S scale[lanes], mv[lanes], moment[lanes];
      for (std::size_t j = 0; j < width; ++j) {
        const std::size_t k = group_of(c0 + j);
        scale[j] = gamma[c0 + j] * static_cast<S>(r[k]);
        mv[j] = static_cast<S>(s1[k] * inv_m);
        moment[j] = static_cast<S>(s2[k] * inv_m);
      }
      for (std::size_t p = 0; p < d.pixels; ++p) {
        const S* vp = vb + p * c + c0;
        const S* hp = hb + p * c + c0;
        S* tp = tb + p * c + c0;
        if (sb == nullptr) {
          for (std::size_t j = 0; j < width; ++j) tp[j] = scale[j] * (vp[j] - mv[j] - hp[j] * moment[j]);
        } else {
          const S* sp = sb + p * c + c0;
          for (std::size_t j = 0; j < width; ++j) tp[j] = sp[j] * (scale[j] * (vp[j] - mv[j] - hp[j] * moment[j]));
        }
      }
    });
  }
}

/// GroupNorm backward for tasks [begin, end) as group_norm_forward's, given dy ([n, P*C]) and the
/// saved xhat (image layout) and rstd: per sample b and channel, sum_xhat[b, c] = sum_p dy xhat and
/// sum_dy[b, c] = sum_p dy ([n, C]; their column sums are dgamma and dbeta), and, when grad_x is not
/// null, grad_x = J (gamma dy) = rstd (v - mean(v) - xhat mean(xhat v)) with v = gamma dy. With
/// `slope` not null (the forward's silu'(z), [n, P*C]) the given values are dL/d silu(z) and dy is
/// slope times them (the SiLU backward in the same passes).
template <class S>
void group_norm_backward(std::size_t begin, std::size_t end, const group_norm_dims& d, S* grad_x, S* sum_xhat,
                         S* sum_dy, const S* xhat, const S* rstd, const S* slope, const S* dy, const S* gamma) {
  constexpr std::size_t lanes = group_norm_lanes;
  const std::size_t c = d.channels, cg = c / d.groups, row = d.pixels * c;
  const double inv_m = 1.0 / static_cast<double>(d.pixels * cg);
  for (std::size_t task = begin; task < end; ++task) {
    const group_norm_block block = group_norm_task(d, task);
    const std::size_t b = block.b, g0 = block.g0, g1 = block.g1;
    const S* hb = xhat + b * row;
    const S* db = dy + b * row;
    const S* sb = slope != nullptr ? slope + b * row : nullptr;
    auto group_of = [&](std::size_t ch) { return ch / cg - g0; };
    // s1 = sum v, s2 = sum xhat v per group, from the channel sums of dy and dy xhat times gamma.
    double s1[lanes], s2[lanes];
    for (std::size_t k = 0; k < g1 - g0; ++k) s1[k] = s2[k] = 0;
    group_norm_channel_sums(d, g0, g1, db, hb, sb, [&](std::size_t c0, std::size_t width, const double* acc1,
                                                    const double* acc2) {
      for (std::size_t j = 0; j < width; ++j) {
        const double ga = static_cast<double>(gamma[c0 + j]);
        s1[group_of(c0 + j)] += ga * acc1[j];
        s2[group_of(c0 + j)] += ga * acc2[j];
        sum_dy[b * c + c0 + j] = static_cast<S>(acc1[j]);
        sum_xhat[b * c + c0 + j] = static_cast<S>(acc2[j]);
      }
    });
    if (grad_x == nullptr) continue;
    S* gb = grad_x + b * row;
    for_group_norm_runs(d, g0, g1, [&](std::size_t c0, std::size_t width) {
      S ga[lanes], rs[lanes], mv[lanes], moment[lanes];
      for (std::size_t j = 0; j < width; ++j) {
        const std::size_t k = group_of(c0 + j);
        ga[j] = gamma[c0 + j];
        rs[j] = rstd[b * d.groups + g0 + k];
        mv[j] = static_cast<S>(s1[k] * inv_m);
        moment[j] = static_cast<S>(s2[k] * inv_m);
      }
      for (std::size_t p = 0; p < d.pixels; ++p) {
        const S* dp = db + p * c + c0;
        const S* hp = hb + p * c + c0;
        S* gp = gb + p * c + c0;
        if (sb == nullptr) {
          for (std::size_t j = 0; j < width; ++j) gp[j] = rs[j] * (ga[j] * dp[j] - mv[j] - hp[j] * moment[j]);
        } else {
          const S* sp = sb + p * c + c0;
          for (std::size_t j = 0; j < width; ++j) gp[j] = rs[j] * (ga[j] * (sp[j] * dp[j]) - mv[j] - hp[j] * moment[j]);
        }
      }
    });
  }
}

/// One kernel row of one pixel's columns: the k*C values of pixels xo - r .. xo + r (r = k / 2) of the
/// image row `src_row` (W pixels of C channels), zeros outside the row.
template <class S>
void im2col_tap_row(const S* src_row, std::size_t xo, const stencil_dims& d, S* o) {
  const std::size_t w = d.width, c = d.channels, k = d.kernel, r = k / 2, kc = k * c;
  if (xo >= r && xo + r < w) {  // all k taps in range: one contiguous run
    const S* s = src_row + (xo - r) * c;
    for (std::size_t j = 0; j < kc; ++j) o[j] = s[j];
    return;
  }
  for (std::size_t kx = 0; kx < k; ++kx) {
    S* ok = o + kx * c;
    if (xo + kx >= r && xo + kx - r < w) {
      const S* s = src_row + (xo + kx - r) * c;
      for (std::size_t j = 0; j < c; ++j) ok[j] = s[j];
    } else {
      for (std::size_t j = 0; j < c; ++j) ok[j] = S(0);
    }
  }
}

/// The kernel-row im2col of sample b's image rows [y0 - r, y1 + r) (r = k / 2): column row
/// (y - y0 + r) * W + x holds the k*C values x[b, y, x - r .. x + r] (zeros outside the image). The
/// stencil's rows [y0, y1) are then k products, tap row ky reading the column rows from ky * W on:
/// a third of im2col's writes for k = 3.
template <class S>
void im2col_band(std::size_t b, std::size_t y0, std::size_t y1, const stencil_dims& d, S* cols, const S* x) {
  const std::size_t h = d.height, w = d.width, c = d.channels, r = d.kernel / 2, kc = d.kernel * c;
  const S* image = x + b * h * w * c;
  for (std::size_t i = 0; i < y1 - y0 + 2 * r; ++i) {
    S* o = cols + i * w * kc;
    const std::size_t y = y0 + i;  // image row y - r
    if (y < r || y - r >= h) {
      for (std::size_t j = 0; j < w * kc; ++j) o[j] = S(0);
      continue;
    }
    for (std::size_t xo = 0; xo < w; ++xo) im2col_tap_row(image + (y - r) * w * c, xo, d, o + xo * kc);
  }
}

/// im2col for image rows [row_begin, row_end) (row = b * H + y): the column rows of their pixels,
/// k kernel rows of k*C values each (zeros outside the image).
template <class S>
void im2col(std::size_t row_begin, std::size_t row_end, const stencil_dims& d, S* cols, const S* x) {
  const std::size_t h = d.height, w = d.width, c = d.channels, k = d.kernel, r = k / 2, kc = k * c;
  for (std::size_t row = row_begin; row < row_end; ++row) {
    const std::size_t b = row / h, y = row - b * h;
    for (std::size_t xo = 0; xo < w; ++xo) {
      S* o = cols + (row * w + xo) * k * kc;
      for (std::size_t ky = 0; ky < k; ++ky, o += kc) {
        if (y + ky < r || y + ky - r >= h) {
          for (std::size_t j = 0; j < kc; ++j) o[j] = S(0);
        } else {
          im2col_tap_row(x + (b * h + y + ky - r) * w * c, xo, d, o);
        }
      }
    }
  }
}

/// The weights of the data gradient of a "same" stencil as a stencil of its own: with W [k*k*C_in,
/// C_out] (row = tap * C_in + c_in), W'[t * C_out + c_out, c_in] = W[(k*k - 1 - t) * C_in + c_in,
/// c_out], the taps flipped and each tap's block transposed, so that col2im(dy W^T) = cols(dy) W'
/// (stride 1, zero padding k / 2, k odd: tap t' = k*k - 1 - t reads the mirrored offset).
template <class S>
void stencil_flip_weights(std::size_t kernel, std::size_t c_in, std::size_t c_out, const S* w, S* flipped) {
  const std::size_t kk = kernel * kernel;
  for (std::size_t t = 0; t < kk; ++t) {
    const S* src = w + (kk - 1 - t) * c_in * c_out;
    S* dst = flipped + t * c_out * c_in;
    for (std::size_t co = 0; co < c_out; ++co)
      for (std::size_t ci = 0; ci < c_in; ++ci) dst[co * c_in + ci] = src[ci * c_out + co];
  }
}

/// Rows [row_begin, row_end) of y += alpha v: v[j mod period] for a row v, or v[i] when period is 0.
template <class S>
void broadcast_add(std::size_t row_begin, std::size_t row_end, std::size_t cols, S* y, S alpha, const S* v,
                   std::size_t period) {
  for (std::size_t i = row_begin; i < row_end; ++i) {
    S* row = y + i * cols;
    if (period == 0) {
      const S a = alpha * v[i];
      for (std::size_t j = 0; j < cols; ++j) row[j] += a;
    } else {
      for (std::size_t q = 0; q < cols; q += period)
        for (std::size_t c = 0; c < period; ++c) row[q + c] += alpha * v[c];
    }
  }
}

/// Rows per chunk of `sum_columns` on an [R, cols] input: chunks of about reduce_chunk values (at
/// least one row). Fixed by cols alone, so a device can sum the chunks in parallel and add them in
/// order with the same bits.
[[nodiscard]] AYF_HOST_DEVICE constexpr std::size_t sum_columns_chunk_rows(std::size_t cols) {
  return cols == 0 || cols >= reduce_chunk ? 1 : reduce_chunk / cols;
}

/// sum_columns' result for one column: beta old + total, in double; beta = 0 ignores old (which
/// may be uninitialised or NaN).
template <class S>
AYF_HOST_DEVICE S column_sum_with_beta(double beta, S old, double total) {
  return static_cast<S>(beta == 0 ? total : beta * static_cast<double>(old) + total);
}

/// Column c's sum over row chunk `chunk` of an [rows, cols] input folded over runs of `period`
/// columns: in double, rows then runs in order (one term of sum_columns).
template <class S>
AYF_HOST_DEVICE double sum_column_chunk(std::size_t chunk, std::size_t c, std::size_t rows, std::size_t cols,
                                        std::size_t period, const S* in) {
  const std::size_t step = sum_columns_chunk_rows(cols), begin = chunk * step;
  const std::size_t end = begin + step < rows ? begin + step : rows;
  double acc = 0;
  for (std::size_t i = begin; i < end; ++i)
    for (std::size_t q = c; q < cols; q += period) acc += static_cast<double>(in[i * cols + q]);
  return acc;
}

/// out[c] = beta out[c] + sum_{i, q} in[i, q period + c] for c in [begin, end): each row chunk
/// (sum_columns_chunk_rows) summed in double, rows then runs in order (sum_column_chunk), then the
/// chunks' sums in order; so the result does not depend on how the columns are split, and a device
/// may sum the chunks in parallel. beta = 0 ignores out.
template <class S>
void sum_columns(std::size_t begin, std::size_t end, std::size_t rows, std::size_t cols, std::size_t period, S* out,
                 double beta, const S* in) {
  const std::size_t step = sum_columns_chunk_rows(cols);
  // Blocks of a compile-time width keep their accumulators in vector registers (every column's
  // sum has the order above). Fixed: exactly Width columns; otherwise `width` <= Width of them.
  auto block = [&]<std::size_t Width, bool Fixed>(std::size_t c0, std::size_t width) {
    double total[Width] = {};
    for (std::size_t r0 = 0; r0 < rows; r0 += step) {
      const std::size_t r1 = r0 + step < rows ? r0 + step : rows;
      double acc[Width] = {};
      for (std::size_t i = r0; i < r1; ++i) {
        for (std::size_t q = 0; q < cols; q += period) {
          const S* x = in + i * cols + q + c0;
          for (std::size_t c = 0; c < (Fixed ? Width : width); ++c) acc[c] += static_cast<double>(x[c]);
        }
      }
      for (std::size_t c = 0; c < width; ++c) total[c] += acc[c];
    }
    for (std::size_t c = 0; c < width; ++c) out[c0 + c] = column_sum_with_beta(beta, out[c0 + c], total[c]);
  };
  constexpr std::size_t fixed = 16;
  for (; begin + fixed <= end; begin += fixed) block.template operator()<fixed, true>(begin, fixed);
  constexpr std::size_t lanes = 64;
  for (std::size_t c0 = begin; c0 < end; c0 += lanes)
    block.template operator()<lanes, false>(c0, end - c0 < lanes ? end - c0 : lanes);
}

/// out[i] = max_j in[i, j] for rows [row_begin, row_end) (cols >= 1); NaN when the row holds a NaN.
template <class S>
AYF_HOST_DEVICE void max_rows(std::size_t row_begin, std::size_t row_end, std::size_t cols, S* out, const S* in) {
  for (std::size_t i = row_begin; i < row_end; ++i) {
    const S* x = in + i * cols;
    S m = x[0];
    for (std::size_t j = 1; j < cols; ++j)
      if (x[j] > m || x[j] != x[j]) m = x[j];
    out[i] = m;
  }
}

/// Whether `label` names a row of a table of `rows` rows: an integer below `rows` (negative
/// integers name no row).
template <class S>
AYF_HOST_DEVICE bool valid_row_label(S label, std::size_t rows) {
  const double v = static_cast<double>(label);
  if (!(v > -9.0e18 && v < static_cast<double>(rows))) return false;  // also NaN and infinities
  return static_cast<double>(static_cast<std::int64_t>(v)) == v;
}

/// Rows [row_begin, row_end): out[i, :] = table[index[i], :], zeros where index[i] < 0.
template <class S>
void gather_rows(std::size_t row_begin, std::size_t row_end, std::size_t cols, S* out, const S* table,
                 const S* index) {
  for (std::size_t i = row_begin; i < row_end; ++i) {
    const auto k = static_cast<std::int64_t>(index[i]);
    S* o = out + i * cols;
    if (k < 0) {
      for (std::size_t j = 0; j < cols; ++j) o[j] = S(0);
    } else {
      const S* t = table + static_cast<std::size_t>(k) * cols;
      for (std::size_t j = 0; j < cols; ++j) o[j] = t[j];
    }
  }
}

/// Table rows [begin, end): table[k, :] += in[i, :] for every i with index[i] = k, i in order.
template <class S>
void scatter_add_rows(std::size_t begin, std::size_t end, std::size_t cols, std::size_t rows, S* table,
                      const S* index, const S* in) {
  for (std::size_t k = begin; k < end; ++k) {
    S* t = table + k * cols;
    for (std::size_t i = 0; i < rows; ++i) {
      if (static_cast<std::int64_t>(index[i]) != static_cast<std::int64_t>(k)) continue;
      const S* x = in + i * cols;
      for (std::size_t j = 0; j < cols; ++j) t[j] += x[j];
    }
  }
}

/// Sum of f over chunk `chunk` of a flat array of n elements, accumulated in double: element
/// begin + i goes to lane i mod reduce_lanes, each lane sums its elements in order, then the lanes
/// are added in order (independent chains, so the loop vectorizes instead of waiting on one add).
/// The Thrust backend's chunks run this function too.
template <class F, class... In>
AYF_HOST_DEVICE double reduce_chunk_sum(std::size_t chunk, std::size_t n, const F& f, const In*... in) {
  const std::size_t begin = chunk * reduce_chunk;
  const std::size_t end = begin + reduce_chunk < n ? begin + reduce_chunk : n;
  double lane[reduce_lanes] = {};
  std::size_t k = begin;
  for (; k + reduce_lanes <= end; k += reduce_lanes) {
    for (std::size_t j = 0; j < reduce_lanes; ++j) lane[j] += static_cast<double>(f(in[k + j]...));
  }
  for (std::size_t j = 0; k < end; ++k, ++j) lane[j] += static_cast<double>(f(in[k]...));
  double acc = 0;
  for (std::size_t j = 0; j < reduce_lanes; ++j) acc += lane[j];
  return acc;
}

[[nodiscard]] AYF_HOST_DEVICE constexpr std::size_t chunk_count(std::size_t n) {
  return (n + reduce_chunk - 1) / reduce_chunk;
}

/// Lane `lane` of chunk `chunk` of a flat array of n elements: the elements begin + lane,
/// begin + lane + reduce_lanes, ... summed in order in double, which is what reduce_chunk_sum
/// accumulates in that lane (so a device can run the lanes of a chunk in parallel).
template <class F, class... In>
AYF_HOST_DEVICE double reduce_lane_sum(std::size_t chunk, std::size_t lane, std::size_t n, const F& f,
                                       const In*... in) {
  const std::size_t begin = chunk * reduce_chunk;
  const std::size_t end = begin + reduce_chunk < n ? begin + reduce_chunk : n;
  double acc = 0;
  for (std::size_t k = begin + lane; k < end; k += reduce_lanes) acc += static_cast<double>(f(in[k]...));
  return acc;
}

/// The sum of f over a row of n elements in reduce_all's order: the chunks' reduce_chunk_sum, added
/// in order. Lanes make the row's loop vectorize; a device may split long rows into chunks and
/// lanes (reduce_lane_sum) and add those in the same order.
template <class F, class... In>
AYF_HOST_DEVICE double reduce_row_sum(std::size_t n, const F& f, const In*... row) {
  double total = 0;
  const std::size_t chunks = chunk_count(n);
  for (std::size_t k = 0; k < chunks; ++k) total += reduce_chunk_sum(k, n, f, row...);
  return total;
}

/// out[i] = sum_j f(in_1[i, j], ...) for rows [row_begin, row_end), each row in reduce_row_sum's order.
template <class S, class F, class... In>
void reduce_rows(std::size_t row_begin, std::size_t row_end, std::size_t cols, S* out, const F& f,
                 const In*... in) {
  for (std::size_t i = row_begin; i < row_end; ++i) out[i] = static_cast<S>(reduce_row_sum(cols, f, (in + i * cols)...));
}

/// Philox normal draws: out[k] = philox_normal(seed, first + k), one Philox block per pair.
template <class S>
void randn(std::size_t begin, std::size_t end, S* out, std::uint64_t seed, std::uint64_t first) {
  std::size_t k = begin;
  if (k < end && ((first + k) & 1)) {
    out[k] = static_cast<S>(philox_normal(seed, first + k));
    ++k;
  }
  for (; k + 1 < end; k += 2) {
    double a = 0, b = 0;
    philox_normal_pair(seed, (first + k) >> 1, a, b);
    out[k] = static_cast<S>(a);
    out[k + 1] = static_cast<S>(b);
  }
  if (k < end) out[k] = static_cast<S>(philox_normal(seed, first + k));
}

/// Philox uniform draws on [0, 1).
template <class S>
void rand_uniform(std::size_t begin, std::size_t end, S* out, std::uint64_t seed,
                  std::uint64_t first) {
  for (std::size_t k = begin; k < end; ++k) out[k] = uniform_as<S>(philox_uniform(seed, first + k));
}

/// C[m x n] = alpha op(A) op(B) + beta C, row-major, reference loops (accumulated in double).
template <class S>
void gemm(std::size_t m, std::size_t n, std::size_t k, bool trans_a, bool trans_b, S alpha,
          const S* a, std::size_t lda, const S* b, std::size_t ldb, S beta, S* c) {
  for (std::size_t i = 0; i < m; ++i) {
    for (std::size_t j = 0; j < n; ++j) {
      double acc = 0;
      for (std::size_t p = 0; p < k; ++p) {
        const S av = trans_a ? a[p * lda + i] : a[i * lda + p];
        const S bv = trans_b ? b[j * ldb + p] : b[p * ldb + j];
        acc += static_cast<double>(av) * static_cast<double>(bv);
      }
      const S prior = beta == S(0) ? S(0) : beta * c[i * n + j];
      c[i * n + j] = static_cast<S>(alpha * static_cast<S>(acc) + prior);
    }
  }
}

}  // namespace ayf::host_kernels
