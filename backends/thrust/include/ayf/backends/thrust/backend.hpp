// ayf/backends/thrust/backend.hpp: the Thrust backend (design.md §1, §3). Tensors are
// thrust::device_vector data plus a shape on whichever system THRUST_DEVICE_SYSTEM selects (CUDA,
// TBB or CPP); elementwise work is Thrust for_each over indices calling the user's AYF_HOST_DEVICE
// functors; reductions sum in the host backend's fixed order; gemm is cuBLAS (CUDA) or Eigen (host).
#pragma once

#include <algorithm>
#include <atomic>
#include <concepts>
#include <cstddef>
#include <cstdint>
#include <sstream>
#include <tuple>
#include <type_traits>
#include <utility>
#include <vector>

#include <thrust/device_allocator.h>
#include <thrust/device_vector.h>
#include <thrust/execution_policy.h>
#include <thrust/for_each.h>
#include <thrust/iterator/counting_iterator.h>

#include "ayf/core/backend.hpp"
#include "ayf/core/backend_checks.hpp"
#include "ayf/core/error.hpp"
#include "ayf/core/functors.hpp"
#include "ayf/core/host_kernels.hpp"
#include "ayf/core/philox.hpp"

#if THRUST_DEVICE_SYSTEM == THRUST_DEVICE_SYSTEM_CUDA
#define AYF_THRUST_CUDA 1
#include <cublas_v2.h>
#include <cuda_runtime.h>
#include <thrust/system/cuda/execution_policy.h>
#else
#define AYF_THRUST_CUDA 0
#include "ayf/backends/eigen/backend.hpp"  // eigen_storage<S>::gemm, the host systems' GEMM
#endif

namespace ayf {

/// Counts of device allocations made by every thrust_backend tensor and workspace (all threads).
/// A warmed-up training step makes none (tests/thrust).
struct thrust_allocation_counter {
  static inline std::atomic<std::uint64_t> allocations{0};
  static inline std::atomic<std::uint64_t> bytes{0};
  [[nodiscard]] static std::uint64_t count() { return allocations.load(std::memory_order_relaxed); }
};

/// thrust::device_allocator that counts every allocation in thrust_allocation_counter.
template <class T>
class counting_device_allocator : public ::thrust::device_allocator<T> {
  using base = ::thrust::device_allocator<T>;

public:
  using typename base::pointer;
  using typename base::size_type;
  template <class U>
  struct rebind {
    using other = counting_device_allocator<U>;
  };
  counting_device_allocator() = default;
  counting_device_allocator(const counting_device_allocator&) = default;
  counting_device_allocator& operator=(const counting_device_allocator&) = default;
  template <class U>
  counting_device_allocator(const counting_device_allocator<U>& /*other*/) {}  // NOLINT: stateless
  ~counting_device_allocator() = default;

  pointer allocate(size_type n) {
    thrust_allocation_counter::allocations.fetch_add(1, std::memory_order_relaxed);
    thrust_allocation_counter::bytes.fetch_add(n * sizeof(T), std::memory_order_relaxed);
    return base::allocate(n);
  }
  friend bool operator==(const counting_device_allocator&, const counting_device_allocator&) { return true; }
  friend bool operator!=(const counting_device_allocator&, const counting_device_allocator&) { return false; }
};

template <class T>
using thrust_vector = ::thrust::device_vector<T, counting_device_allocator<T>>;

/// An owning tensor: row-major device data and its [rows, cols].
template <std::floating_point S>
struct thrust_tensor {
  thrust_vector<S> values;
  shape extent{};
};

/// A non-owning, trivially copyable window onto contiguous row-major device data. `S` may be const.
template <class S>
struct thrust_view {
  S* data = nullptr;
  shape extent{};
};

namespace thrust_kernels {

/// u * v (dot). Kernel functors live at namespace scope: nvcc names them in kernel stubs.
struct multiply {
  template <class T>
  AYF_HOST_DEVICE T operator()(T u, T v) const { return u * v; }
};

/// out[k] = value.
template <class S>
struct fill {
  S* out;
  S value;
  AYF_HOST_DEVICE void operator()(std::size_t k) const { out[k] = value; }
};
/// out[k] = in[k].
template <class S>
struct copy {
  const S* in;
  S* out;
  AYF_HOST_DEVICE void operator()(std::size_t k) const { out[k] = in[k]; }
};

/// out[k] = f(in_1[k], ..., in_N[k]).
template <class S, class F, std::size_t N>
struct transform {
  S* out;
  F f;
  const S* in[N];
  AYF_HOST_DEVICE void operator()(std::size_t k) const { apply(k, std::make_index_sequence<N>{}); }
  template <std::size_t... I>
  AYF_HOST_DEVICE void apply(std::size_t k, std::index_sequence<I...> /*unused*/) const {
    out[k] = static_cast<S>(f(in[I][k]...));
  }
};

/// {out1[k], out2[k]} = f(in_1[k], ...), f returning fn::value_pair (as host_kernels::transform_pair).
template <class S, class F, std::size_t N>
struct transform_pair {
  S* out1;
  S* out2;
  F f;
  const S* in[N];
  AYF_HOST_DEVICE void operator()(std::size_t k) const { apply(k, std::make_index_sequence<N>{}); }
  template <std::size_t... I>
  AYF_HOST_DEVICE void apply(std::size_t k, std::index_sequence<I...> /*unused*/) const {
    const auto r = f(in[I][k]...);
    out1[k] = static_cast<S>(r.first);
    out2[k] = static_cast<S>(r.second);
  }
};

/// f(theta[k], m[k], v[k], g[k]): the fused optimizer update (as host_kernels::apply_adam).
template <class S, class F>
struct apply_adam {
  F f;
  S* theta;
  S* m;
  S* v;
  const S* g;
  AYF_HOST_DEVICE void operator()(std::size_t k) const { f(theta[k], m[k], v[k], g[k]); }
};

/// y[i, j] = sum_k c_k(i) x_k[i, j], in k order (as host_kernels::scale_sum_rows).
template <class S, std::size_t N>
struct scale_sum_rows {
  S* y;
  std::size_t cols;
  const S* coefficient[N];  ///< a [B] array, or null for `constant`
  S constant[N];
  const S* x[N];
  AYF_HOST_DEVICE S c(std::size_t k, std::size_t row) const {
    return coefficient[k] != nullptr ? coefficient[k][row] : constant[k];
  }
  AYF_HOST_DEVICE void operator()(std::size_t e) const {
    const std::size_t row = e / cols;
    S acc = c(0, row) * x[0][e];
    for (std::size_t k = 1; k < N; ++k) acc += c(k, row) * x[k][e];
    y[e] = acc;
  }
};

/// out[i] = sum_j f(in_1[i, j], ...) in the host backends' order (host_kernels::reduce_row_sum),
/// one row per index: for many rows.
template <class S, class F, std::size_t N>
struct reduce_rows {
  S* out;
  std::size_t cols;
  F f;
  const S* in[N];
  AYF_HOST_DEVICE void operator()(std::size_t row) const { apply(row, std::make_index_sequence<N>{}); }
  template <std::size_t... I>
  AYF_HOST_DEVICE void apply(std::size_t row, std::index_sequence<I...> /*unused*/) const {
    out[row] = static_cast<S>(host_kernels::reduce_row_sum(cols, f, (in[I] + row * cols)...));
  }
};
/// The same for few long rows, first pass: partial[(row chunks + chunk) lanes + lane] = lane `lane`
/// of chunk `chunk` of row `row` (host_kernels::reduce_lane_sum), one index each.
template <class S, class F, std::size_t N>
struct reduce_row_lanes {
  double* partial;
  std::size_t cols, chunks, lanes;
  F f;
  const S* in[N];
  AYF_HOST_DEVICE void operator()(std::size_t item) const { apply(item, std::make_index_sequence<N>{}); }
  template <std::size_t... I>
  AYF_HOST_DEVICE void apply(std::size_t item, std::index_sequence<I...> /*unused*/) const {
    const std::size_t lane = item % lanes, chunk = (item / lanes) % chunks, row = item / lanes / chunks;
    partial[item] = host_kernels::reduce_lane_sum(chunk, lane, cols, f, (in[I] + row * cols)...);
  }
};
/// Second pass: out[row] = the chunks' sums in order, each chunk's lanes added in order (the order
/// of host_kernels::reduce_chunk_sum and reduce_row_sum, so the same bits); T: S, or double for
/// reduce_all's total.
template <class T>
struct merge_row_lanes {
  T* out;
  const double* partial;
  std::size_t chunks, lanes;
  AYF_HOST_DEVICE void operator()(std::size_t row) const {
    double total = 0;
    for (std::size_t c = 0; c < chunks; ++c) {
      const double* lane = partial + (row * chunks + c) * lanes;
      double chunk = 0;
      for (std::size_t l = 0; l < lanes; ++l) chunk += lane[l];
      total += chunk;
    }
    out[row] = static_cast<T>(total);
  }
};

/// range[2c], range[2c + 1] = min, max of chunk c.
template <class S>
struct extrema_chunks {
  double* range;
  std::size_t n;
  const S* in;
  AYF_HOST_DEVICE void operator()(std::size_t chunk) const {
    const std::size_t begin = chunk * host_kernels::reduce_chunk;
    const std::size_t end = begin + host_kernels::reduce_chunk < n ? begin + host_kernels::reduce_chunk : n;
    S lo = in[begin], hi = in[begin];
    for (std::size_t k = begin + 1; k < end; ++k) {
      if (in[k] < lo) lo = in[k];
      if (!(in[k] < hi)) hi = in[k];
    }
    range[2 * chunk] = static_cast<double>(lo);
    range[2 * chunk + 1] = static_cast<double>(hi);
  }
};
/// range[2 count], range[2 count + 1] = min, max over the chunks' ranges.
struct merge_extrema {
  double* range;
  std::size_t count;
  AYF_HOST_DEVICE void operator()(std::size_t /*unused*/) const {
    double lo = range[0], hi = range[1];
    for (std::size_t c = 1; c < count; ++c) {
      if (range[2 * c] < lo) lo = range[2 * c];
      if (!(range[2 * c + 1] < hi)) hi = range[2 * c + 1];
    }
    range[2 * count] = lo;
    range[2 * count + 1] = hi;
  }
};

/// out[i] = in[map(i)], 0 where map(i) < 0.
/// Block i of host_kernels::gather (out block i = in block map(i), zeros where map(i) < 0).
template <class S, class Map>
struct gather {
  S* out;
  const S* in;
  Map map;
  std::size_t block;
  AYF_HOST_DEVICE void operator()(std::size_t i) const { host_kernels::gather(i, i + 1, out, in, map, block); }
};
/// Block i of host_kernels::gather_sum (the sum over taps r of in block map(i, r), r in order).
template <class S, class Map>
struct gather_sum {
  S* out;
  const S* in;
  Map map;
  std::int64_t taps;
  std::size_t block;
  AYF_HOST_DEVICE void operator()(std::size_t i) const {
    host_kernels::gather_sum(i, i + 1, out, in, map, taps, block);
  }
};

/// y[e] += alpha v[j mod period] (a row v) or alpha v[i] (period 0) for element e = (i, j).
template <class S>
struct broadcast_add {
  S* y;
  const S* v;
  S alpha;
  std::size_t cols, period;
  AYF_HOST_DEVICE void operator()(std::size_t e) const {
    y[e] += period == 0 ? alpha * v[e / cols] : alpha * v[(e % cols) % period];
  }
};
/// Column c of host_kernels::sum_columns, one column per index (for wide outputs): the row
/// chunks' sums (host_kernels::sum_column_chunk) added in order.
template <class S>
struct sum_columns {
  S* out;
  const S* in;
  std::size_t rows, cols, period, chunks;
  double beta;
  AYF_HOST_DEVICE void operator()(std::size_t c) const {
    double total = 0;
    for (std::size_t k = 0; k < chunks; ++k) total += host_kernels::sum_column_chunk(k, c, rows, cols, period, in);
    out[c] = host_kernels::column_sum_with_beta(beta, out[c], total);
  }
};
/// The same for narrow outputs, first pass: partial[chunk period + c] = column c's sum over row
/// chunk `chunk`, one index each.
template <class S>
struct sum_column_chunks {
  double* partial;
  const S* in;
  std::size_t rows, cols, period;
  AYF_HOST_DEVICE void operator()(std::size_t item) const {
    partial[item] = host_kernels::sum_column_chunk(item / period, item % period, rows, cols, period, in);
  }
};
/// Second pass: out[c] = beta out[c] + the chunks' sums of column c in order.
template <class S>
struct merge_column_chunks {
  S* out;
  const double* partial;
  std::size_t period, chunks;
  double beta;
  AYF_HOST_DEVICE void operator()(std::size_t c) const {
    double total = 0;
    for (std::size_t k = 0; k < chunks; ++k) total += partial[k * period + c];
    out[c] = host_kernels::column_sum_with_beta(beta, out[c], total);
  }
};
/// Row i of host_kernels::max_rows.
template <class S>
struct max_rows {
  S* out;
  const S* in;
  std::size_t cols;
  AYF_HOST_DEVICE void operator()(std::size_t i) const { host_kernels::max_rows(i, i + 1, cols, out, in); }
};
/// first[c] = the first row of chunk c whose label is not valid for a table of `table_rows` rows,
/// or `rows` when there is none (as a double; rows < 2^53).
template <class S>
struct first_invalid_label {
  double* first;
  const S* index;
  std::size_t rows, table_rows;
  AYF_HOST_DEVICE void operator()(std::size_t chunk) const {
    const std::size_t begin = chunk * host_kernels::reduce_chunk;
    const std::size_t end = begin + host_kernels::reduce_chunk < rows ? begin + host_kernels::reduce_chunk : rows;
    std::size_t bad = rows;
    for (std::size_t i = begin; i < end && bad == rows; ++i)
      if (!host_kernels::valid_row_label(index[i], table_rows)) bad = i;
    first[chunk] = static_cast<double>(bad);
  }
};
/// first[count] = min over the chunks' first invalid rows.
struct merge_first {
  double* first;
  std::size_t count;
  AYF_HOST_DEVICE void operator()(std::size_t /*unused*/) const {
    double m = first[0];
    for (std::size_t c = 1; c < count; ++c) m = first[c] < m ? first[c] : m;
    first[count] = m;
  }
};
/// out[e] = table[index[i], j] for element e = (i, j), 0 where index[i] < 0.
template <class S>
struct gather_rows {
  S* out;
  const S* table;
  const S* index;
  std::size_t cols;
  AYF_HOST_DEVICE void operator()(std::size_t e) const {
    const auto k = static_cast<std::int64_t>(index[e / cols]);
    out[e] = k < 0 ? S(0) : table[static_cast<std::size_t>(k) * cols + e % cols];
  }
};
/// table[e] += in[i, j] for element e = (k, j) of the table and every row i labelled k, i in order.
template <class S>
struct scatter_add_rows {
  S* table;
  const S* index;
  const S* in;
  std::size_t cols, rows;
  AYF_HOST_DEVICE void operator()(std::size_t e) const {
    const auto k = static_cast<std::int64_t>(e / cols);
    const std::size_t j = e % cols;
    S t = table[e];
    for (std::size_t i = 0; i < rows; ++i)
      if (static_cast<std::int64_t>(index[i]) == k) t += in[i * cols + j];
    table[e] = t;
  }
};

/// out[k] = philox_normal(seed, first + k): the same numbers as host_kernels::randn.
template <class S>
struct randn {
  S* out;
  std::uint64_t seed, first;
  AYF_HOST_DEVICE void operator()(std::size_t k) const { out[k] = static_cast<S>(philox_normal(seed, first + k)); }
};
/// out[k] = philox_uniform(seed, first + k) in precision S.
template <class S>
struct rand_uniform {
  S* out;
  std::uint64_t seed, first;
  AYF_HOST_DEVICE void operator()(std::size_t k) const { out[k] = uniform_as<S>(philox_uniform(seed, first + k)); }
};

}  // namespace thrust_kernels

/// Execution context: the Philox stream, a reduction workspace that only grows (so a warmed-up
/// step does not allocate), and on CUDA the stream every kernel and GEMM runs on and a cuBLAS
/// handle (created on the first GEMM). Move-only.
class thrust_context {
public:
  philox_stream rng{};
  thrust_vector<double> workspace;
#if AYF_THRUST_CUDA
  /// The default stream unless the caller sets one, which must be a blocking stream: device_vector
  /// allocates and zero-fills on the legacy default stream.
  cudaStream_t stream = nullptr;
  /// When true, every gemm is bracketed by CUDA events and its time added to gemm_milliseconds
  /// (this synchronizes after each GEMM: for profiling only).
  bool time_gemm = false;
  double gemm_milliseconds = 0;
#endif
  std::uint64_t gemm_calls = 0;

  thrust_context() = default;
  explicit thrust_context(std::uint64_t seed) : rng{seed, 0} {}
  thrust_context(const thrust_context&) = delete;
  thrust_context& operator=(const thrust_context&) = delete;
  thrust_context(thrust_context&& other) noexcept
      : rng(other.rng), workspace(std::move(other.workspace))
#if AYF_THRUST_CUDA
        , stream(other.stream), time_gemm(other.time_gemm), gemm_milliseconds(other.gemm_milliseconds),
        m_blas(std::exchange(other.m_blas, nullptr))
#endif
        , gemm_calls(other.gemm_calls) {
  }
  thrust_context& operator=(thrust_context&& other) noexcept {
    if (this != &other) {
      release();
      rng = other.rng;
      workspace = std::move(other.workspace);
#if AYF_THRUST_CUDA
      stream = other.stream;
      time_gemm = other.time_gemm;
      gemm_milliseconds = other.gemm_milliseconds;
      m_blas = std::exchange(other.m_blas, nullptr);
#endif
      gemm_calls = other.gemm_calls;
    }
    return *this;
  }
  ~thrust_context() { release(); }

  /// The execution policy of every algorithm: the context's stream on CUDA.
  auto policy() const {
#if AYF_THRUST_CUDA
    return ::thrust::cuda::par_nosync.on(stream);
#else
    return ::thrust::device;
#endif
  }

  /// At least `n` doubles of workspace (grows, never shrinks).
  double* scratch(std::size_t n) {
    if (workspace.size() < n) workspace.resize(n);
    return ::thrust::raw_pointer_cast(workspace.data());
  }

#if AYF_THRUST_CUDA
  /// The cuBLAS handle, bound to `stream`.
  cublasHandle_t blas() {
    if (m_blas == nullptr) check(cublasCreate(&m_blas), "cublasCreate");
    check(cublasSetStream(m_blas, stream), "cublasSetStream");
    return m_blas;
  }
  static void check(cudaError_t status, const char* what) {
    if (status != cudaSuccess) throw error(detail::concat("thrust_backend: ", what, " failed: ", cudaGetErrorString(status)));
  }
  static void check(cublasStatus_t status, const char* what) {
    if (status != CUBLAS_STATUS_SUCCESS) throw error(detail::concat("thrust_backend: ", what, " failed with cuBLAS status ", static_cast<int>(status)));
  }
#endif

private:
  void release() noexcept {
#if AYF_THRUST_CUDA
    if (m_blas != nullptr) cublasDestroy(m_blas);
    m_blas = nullptr;
#endif
  }
#if AYF_THRUST_CUDA
  cublasHandle_t m_blas = nullptr;
#endif
};

template <std::floating_point S>
struct thrust_backend {
  using scalar = S;
  using tensor = thrust_tensor<S>;
  using view = thrust_view<S>;
  using const_view = thrust_view<const S>;
  using context = thrust_context;

  // ---- operands: a tensor, a view or a const view ----------------------------------------------
  static shape shape_of(const tensor& x) { return shape(x.extent.rows, x.extent.cols); }
  static shape shape_of(const view& x) { return x.extent; }
  static shape shape_of(const const_view& x) { return x.extent; }

  static view as_view(tensor& x) { return {data(x), shape_of(x)}; }
  static const_view as_view(const tensor& x) { return {data(x), shape_of(x)}; }

  /// Elements [offset, offset + sh.size()) of `flat`'s row-major data viewed as `sh`.
  static view slice(context& /*ctx*/, tensor& flat, std::size_t offset, const shape& sh) {
    detail::check_slice(shape_of(flat), offset, sh);
    return {data(flat) + offset, sh};
  }
  static const_view slice(context& /*ctx*/, const tensor& flat, std::size_t offset, const shape& sh) {
    detail::check_slice(shape_of(flat), offset, sh);
    return {data(flat) + offset, sh};
  }

  // ---- data movement -------------------------------------------------------------------------
  /// A zero-filled tensor of shape sh.
  static tensor make(context& /*ctx*/, const shape& sh) {
    tensor y;
    y.values.resize(sh.size(), S(0));
    y.extent = shape(sh.rows, sh.cols);
    return y;
  }
  /// Gives `y` the shape (a no-op when it has it; no allocation when the capacity suffices).
  static void resize(context& /*ctx*/, tensor& y, const shape& sh) {
    if (y.extent.rows != sh.rows || y.extent.cols != sh.cols) {
      y.values.resize(sh.size());
      y.extent = shape(sh.rows, sh.cols);
    }
  }
  static void resize(context& /*ctx*/, const view& y, const shape& sh) { require_shape("resize", "out", sh, y.extent); }

  template <class In, class Out>
  static void copy(context& ctx, const In& x, Out&& y) {
    resize(ctx, y, shape_of(x));
    launch(ctx, shape_of(x).size(), thrust_kernels::copy<S>{data(x), data(y)});
  }
  template <class Out>
  static void fill(context& ctx, Out&& y, scalar value) {
    launch(ctx, shape_of(y).size(), thrust_kernels::fill<S>{data(y), value});
  }
  template <class In>
  static std::vector<scalar> to_host(context& ctx, const In& x) {
    std::vector<scalar> out(shape_of(x).size());
    download(ctx, data(x), out.data(), out.size());
    return out;
  }
  static tensor from_host(context& ctx, const std::vector<scalar>& values, const shape& sh) {
    tensor y;
    from_host(ctx, values, sh, y);
    return y;
  }
  /// The same into y (resized to sh; no allocation when its capacity suffices).
  static void from_host(context& ctx, const std::vector<scalar>& values, const shape& sh, tensor& y) {
    require(values.size() == sh.size(), "from_host", "values", detail::message(sh.size(), " values for shape ", sh),
            values.size());
    resize(ctx, y, sh);
    upload(ctx, values.data(), data(y), values.size());
  }

  // ---- elementwise ---------------------------------------------------------------------------
  /// out[i,j] = f(in_1[i,j], ..., in_n[i,j]); every input has out's shape (out is resized to it).
  template <class Out, class F, class... In>
  static void transform(context& ctx, Out&& out, const F& f, const In&... in) {
    static_assert(sizeof...(In) >= 1, "transform needs at least one input");
    static_assert((is_operand<In> && ...), "transform inputs must be tensors or views");
    const shape sh = same_shape("transform", in...);
    require_no_resized_alias("transform", out, sh, in...);
    resize(ctx, out, sh);
    launch(ctx, sh.size(), thrust_kernels::transform<S, F, sizeof...(In)>{data(out), f, {data(in)...}});
  }

  /// {out1[i,j], out2[i,j]} = f(in_1[i,j], ...), f returning fn::value_pair; out1 and out2 resized to
  /// the inputs' shape, not overlapping; each may alias an input element for element.
  template <class Out1, class Out2, class F, class... In>
  static void transform_pair(context& ctx, Out1&& out1, Out2&& out2, const F& f, const In&... in) {
    static_assert(sizeof...(In) >= 1, "transform_pair needs at least one input");
    static_assert((is_operand<In> && ...), "transform_pair inputs must be tensors or views");
    const shape sh = same_shape("transform_pair", in...);
    require_no_resized_alias("transform_pair", out1, sh, in...);
    require_no_resized_alias("transform_pair", out2, sh, in...);
    resize(ctx, out1, sh);
    resize(ctx, out2, sh);
    detail::require_distinct_buffers("transform_pair", sh.size(), data(out1), data(out2));
    launch(ctx, sh.size(),
           thrust_kernels::transform_pair<S, F, sizeof...(In)>{data(out1), data(out2), f, {data(in)...}});
  }

  /// The fused Adam update (fn::adam_update) of every element, in place: values, first and second
  /// moments (never resized) from gradients, all of one shape and four distinct buffers.
  template <class Values, class First, class Second, class G>
  static void apply_adam(context& ctx, const fn::adam_update& f, Values&& values, First&& first, Second&& second,
                         const G& gradients) {
    static_assert(is_operand<G>, "apply_adam: gradients must be a tensor or view");
    const shape sh = shape_of(gradients);
    thrust_kernels::apply_adam<S, fn::adam_update> kernel{f, data(values), data(first), data(second), data(gradients)};
    detail::require_adam_operands(sh, shape_of(values), shape_of(first), shape_of(second), kernel.theta, kernel.m,
                                  kernel.v, kernel.g);
    launch(ctx, sh.size(), kernel);
  }

  /// y[i, :] = sum_k c_k[i] x_k[i, :]; arguments alternate coefficient (a scalar or a [B, 1] tensor
  /// or view) and tensor. y may alias any x_k.
  template <class Out, class... Args>
  static void scale_sum_rows(context& ctx, Out&& y, const Args&... args) {
    static_assert(sizeof...(Args) >= 2 && sizeof...(Args) % 2 == 0, "scale_sum_rows takes pairs (coefficient, tensor)");
    constexpr std::size_t n = sizeof...(Args) / 2;
    const auto refs = std::forward_as_tuple(args...);
    const shape sh = shape_of(std::get<1>(refs));
    thrust_kernels::scale_sum_rows<S, n> kernel{};
    kernel.cols = sh.cols;
    [&]<std::size_t... K>(std::index_sequence<K...>) {
      ((set_coefficient(kernel, K, std::get<2 * K>(refs), sh.rows),
        kernel.x[K] = checked_data("scale_sum_rows", std::get<2 * K + 1>(refs), sh)),
       ...);
    }(std::make_index_sequence<n>{});
    require_no_resized_alias("scale_sum_rows", y, sh, args...);
    resize(ctx, y, sh);
    kernel.y = data(y);
    launch(ctx, sh.size(), kernel);
  }

  /// y[i, j] += alpha v[0, j mod C] for a [1, C] row v (C divides y's columns), or alpha v[i, 0]
  /// for a [R, 1] column v. y: [R, N], never resized; alpha a scalar or double.
  template <class Out, class Alpha, class V>
  static void broadcast_add(context& ctx, Out&& y, Alpha alpha, const V& v) {
    static_assert(std::is_arithmetic_v<Alpha>, "broadcast_add: alpha is a number");
    static_assert(is_operand<V>, "broadcast_add: v must be a tensor or view");
    const shape sy = shape_of(y);
    const std::size_t period = detail::broadcast_period(sy, shape_of(v));
    launch(ctx, sy.size(), thrust_kernels::broadcast_add<S>{data(y), data(v), static_cast<S>(alpha), sy.cols, period});
  }

  // ---- index maps --------------------------------------------------------------------------
  /// out[i] = in[map(i)] (flat row-major indices; map(i) < 0 gives 0); out is resized to out_shape.
  template <class Out, class In, class Map>
  static void gather(context& ctx, Out&& out, const shape& out_shape, const In& in, const Map& map,
                     std::int64_t block = 1) {
    static_assert(is_operand<In>, "gather: the input must be a tensor or view");
    const std::size_t blocks = detail::block_count("gather", out_shape, block);
    require_no_resized_alias("gather", out, out_shape, in);
    resize(ctx, out, out_shape);
    launch(ctx, blocks, thrust_kernels::gather<S, Map>{data(out), data(in), map, static_cast<std::size_t>(block)});
  }

  /// out[i] = sum_{r < taps} in[map(i, r)] (map < 0 skipped), r in order.
  template <class Out, class In, class Map>
  static void gather_sum(context& ctx, Out&& out, const shape& out_shape, const In& in, const Map& map,
                         std::int64_t taps, std::int64_t block = 1) {
    static_assert(is_operand<In>, "gather_sum: the input must be a tensor or view");
    require(taps >= 0, "gather_sum", "taps", "a non-negative count", taps);
    const std::size_t blocks = detail::block_count("gather_sum", out_shape, block);
    require_no_resized_alias("gather_sum", out, out_shape, in);
    resize(ctx, out, out_shape);
    launch(ctx, blocks,
           thrust_kernels::gather_sum<S, Map>{data(out), data(in), map, taps, static_cast<std::size_t>(block)});
  }

  /// out[i, :] = table[index[i], :], zeros where index[i] < 0; index: [R, 1] integer labels, table:
  /// [K, C]; out is resized to [R, C]. The labels are checked on the device before the gather.
  template <class Out, class Table, class Index>
  static void gather_rows(context& ctx, Out&& out, const Table& table, const Index& index) {
    static_assert(is_operand<Table> && is_operand<Index>, "gather_rows: table and index must be tensors or views");
    const shape st = shape_of(table), si = shape_of(index);
    detail::check_index_shape("gather_rows", si);
    check_row_labels(ctx, "gather_rows", index, st.rows);
    const shape so(si.rows, st.cols);
    require_no_resized_alias("gather_rows", out, so, table, index);
    resize(ctx, out, so);
    launch(ctx, so.size(), thrust_kernels::gather_rows<S>{data(out), data(table), data(index), st.cols});
  }

  /// table[k, :] += sum of in[i, :] over the rows i with index[i] = k, i in order (negative labels
  /// skipped); one thread per table element, no atomics. table: [K, C], index: [R, 1], in: [R, C].
  template <class Table, class Index, class In>
  static void scatter_add_rows(context& ctx, Table&& table, const Index& index, const In& in) {
    static_assert(is_operand<Index> && is_operand<In>, "scatter_add_rows: index and in must be tensors or views");
    const shape st = shape_of(table), si = shape_of(index);
    detail::check_index_shape("scatter_add_rows", si);
    require_shape("scatter_add_rows", "in", shape(si.rows, st.cols), shape_of(in));
    check_row_labels(ctx, "scatter_add_rows", index, st.rows);
    launch(ctx, st.size(), thrust_kernels::scatter_add_rows<S>{data(table), data(index), data(in), st.cols, si.rows});
  }

  // ---- reductions ----------------------------------------------------------------------------
  /// Below this many rows reduce_rows splits each row into chunks and lanes, and below this many
  /// columns sum_columns splits the rows into chunks, one index per piece; a second pass adds the
  /// pieces in the host order. (The columns' pieces take period / 4096 of the input's bytes.)
  static constexpr std::size_t split_rows_below = 16384, split_columns_below = 1024;

  /// out[i] = sum_j f(in_1[i, j], ...); out: [B, 1]. Each row in the host backends' order
  /// (host_kernels::reduce_row_sum): one index per row when there are many; otherwise one per
  /// (row, chunk, lane) and a second pass that adds them in that order, so a few long rows (the
  /// group rows of GroupNorm's gather path) still fill a GPU. The same bits either way.
  template <class Out, class F, class... In>
  static void reduce_rows(context& ctx, Out&& out, const F& f, const In&... in) {
    const shape sh = same_shape("reduce_rows", in...);
    require_no_resized_alias("reduce_rows", out, shape::vector(sh.rows), in...);
    resize(ctx, out, shape::vector(sh.rows));
    const std::size_t chunks = host_kernels::chunk_count(sh.cols);
    const std::size_t lanes = std::min(sh.cols, host_kernels::reduce_lanes);
    if (sh.rows >= split_rows_below || chunks * lanes <= 1) {
      launch(ctx, sh.rows, thrust_kernels::reduce_rows<S, F, sizeof...(In)>{data(out), sh.cols, f, {data(in)...}});
      return;
    }
    const std::size_t pieces = sh.rows * chunks * lanes;
    double* partial = ctx.scratch(pieces);
    launch(ctx, pieces,
           thrust_kernels::reduce_row_lanes<S, F, sizeof...(In)>{partial, sh.cols, chunks, lanes, f, {data(in)...}});
    launch(ctx, sh.rows, thrust_kernels::merge_row_lanes<S>{data(out), partial, chunks, lanes});
  }

  /// out[0, c] = beta out[0, c] + sum_{i, q} in[i, q C + c], out: [1, C] (C divides in's columns;
  /// never resized; beta = 0 ignores its values). The host backends' order (row chunks of
  /// host_kernels::sum_columns_chunk_rows, then the chunks in order): one index per column for wide
  /// outputs; otherwise one per (chunk, column) and a second pass that adds the chunks in order
  /// (a conv bias gradient: 32 columns of 10^5 rows).
  template <class Out, class Beta, class In>
  static void sum_columns(context& ctx, Out&& out, Beta beta, const In& in) {
    static_assert(std::is_arithmetic_v<Beta>, "sum_columns: beta is a number");
    static_assert(is_operand<In>, "sum_columns: in must be a tensor or view");
    const shape si = shape_of(in);
    const std::size_t period = detail::column_period(shape_of(out), si);
    const std::size_t step = host_kernels::sum_columns_chunk_rows(si.cols);
    const std::size_t chunks = (si.rows + step - 1) / step;
    const auto b = static_cast<double>(beta);
    if (period >= split_columns_below || chunks <= 1) {
      launch(ctx, period, thrust_kernels::sum_columns<S>{data(out), data(in), si.rows, si.cols, period, chunks, b});
      return;
    }
    double* partial = ctx.scratch(chunks * period);
    launch(ctx, chunks * period, thrust_kernels::sum_column_chunks<S>{partial, data(in), si.rows, si.cols, period});
    launch(ctx, period, thrust_kernels::merge_column_chunks<S>{data(out), partial, period, chunks, b});
  }

  /// out[i, 0] = max_j in[i, j] (NaN when row i holds a NaN); out is resized to [R, 1].
  template <class Out, class In>
  static void max_rows(context& ctx, Out&& out, const In& in) {
    static_assert(is_operand<In>, "max_rows: in must be a tensor or view");
    const shape sh = shape_of(in);
    if (sh.cols == 0) {
      std::ostringstream received;
      received << sh;
      throw_argument_error("max_rows", "in", "at least one column", received.str());
    }
    require_no_resized_alias("max_rows", out, shape::vector(sh.rows), in);
    resize(ctx, out, shape::vector(sh.rows));
    launch(ctx, sh.rows, thrust_kernels::max_rows<S>{data(out), data(in), sh.cols});
  }

  /// sum over all elements of f(in_1, ...): chunk sums in double, then the chunks in order (the
  /// host backend's order, so the result is bitwise the Eigen backend's on host systems). One
  /// index per (chunk, lane) (reduce_rows' pieces of one row), then one that adds them in order.
  template <class F, class... In>
  static scalar reduce_all(context& ctx, const F& f, const In&... in) {
    const shape sh = same_shape("reduce_all", in...);
    const std::size_t n = sh.size(), chunks = host_kernels::chunk_count(n);
    const std::size_t lanes = std::min(n, host_kernels::reduce_lanes);
    if (chunks == 0) return scalar(0);
    double* partial = ctx.scratch(chunks * lanes + 1);
    launch(ctx, chunks * lanes,
           thrust_kernels::reduce_row_lanes<S, F, sizeof...(In)>{partial, n, chunks, lanes, f, {data(in)...}});
    launch(ctx, 1, thrust_kernels::merge_row_lanes<double>{partial + chunks * lanes, partial, chunks, lanes});
    double total = 0;
    download(ctx, partial + chunks * lanes, &total, 1);
    return static_cast<scalar>(total);
  }

  template <class A, class Bv>
  static scalar dot(context& ctx, const A& a, const Bv& b) {
    return reduce_all(ctx, thrust_kernels::multiply{}, a, b);
  }

  /// {min, max} over all elements; raises on an empty tensor.
  template <class In>
  static std::pair<scalar, scalar> extrema(context& ctx, const In& x) {
    const std::size_t n = shape_of(x).size();
    require(n > 0, "extrema", "x", "a non-empty tensor", shape_of(x));
    const std::size_t chunks = host_kernels::chunk_count(n);
    double* range = ctx.scratch(2 * chunks + 2);
    launch(ctx, chunks, thrust_kernels::extrema_chunks<S>{range, n, data(x)});
    launch(ctx, 1, thrust_kernels::merge_extrema{range, chunks});
    double result[2] = {0, 0};
    download(ctx, range + 2 * chunks, result, 2);
    return {static_cast<scalar>(result[0]), static_cast<scalar>(result[1])};
  }

  // ---- random numbers ------------------------------------------------------------------------
  /// Standard normal Philox draws; takes shape_of(out).size() indices from ctx.rng.
  template <class Out>
  static void randn(context& ctx, Out&& out) {
    const std::size_t n = shape_of(out).size();
    const std::uint64_t first = ctx.rng.take(n);
    launch(ctx, n, thrust_kernels::randn<S>{data(out), ctx.rng.seed, first});
  }
  /// Uniform [0, 1) Philox draws.
  template <class Out>
  static void rand_uniform(context& ctx, Out&& out) {
    const std::size_t n = shape_of(out).size();
    const std::uint64_t first = ctx.rng.take(n);
    launch(ctx, n, thrust_kernels::rand_uniform<S>{data(out), ctx.rng.seed, first});
  }

  // ---- GEMM ----------------------------------------------------------------------------------
  /// C = alpha op(A) op(B) + beta C (row-major). C must already have the result's shape when beta != 0.
  template <class A, class Bm, class C>
  static void gemm(context& ctx, transpose op_a, transpose op_b, scalar alpha, const A& a, const Bm& b, scalar beta,
                   C&& c) {
    const shape sa = shape_of(a), sb = shape_of(b);
    const bool ta = op_a == transpose::yes, tb = op_b == transpose::yes;
    const std::size_t m = ta ? sa.cols : sa.rows, k = ta ? sa.rows : sa.cols;
    const std::size_t kb = tb ? sb.cols : sb.rows, n = tb ? sb.rows : sb.cols;
    require(k == kb, "gemm", "B", detail::message(k, " rows of op(B) to match op(A)'s columns"), kb);
    if (beta != scalar(0)) require_shape("gemm", "C", shape(m, n), shape_of(c));
    resize(ctx, c, shape(m, n));
    ++ctx.gemm_calls;
    if (m == 0 || n == 0) return;
#if AYF_THRUST_CUDA
    gemm_cublas(ctx, m, n, k, ta, tb, alpha, data(a), sa.cols, data(b), sb.cols, beta, data(c));
#else
    // Host systems: the Eigen backend's GEMM on the same row-major memory (bitwise its results).
    eigen_storage<S>::gemm(m, n, k, ta, tb, alpha, data(a), sa.cols, data(b), sb.cols, beta, data(c));
#endif
  }

  /// C_k = alpha op(A_k) op(B_k) + beta C_k for k < batch over runs of rows/batch consecutive rows
  /// of A, B and C (gemm's rules per member; C resized when beta = 0). cuBLAS's strided-batched
  /// GEMM on CUDA; on the host systems the Eigen backend's GEMM per member.
  template <class A, class Bm, class C>
  static void gemm_batched(context& ctx, transpose op_a, transpose op_b, scalar alpha, const A& a, const Bm& b,
                           scalar beta, C&& c, std::size_t batch) {
    static_assert(is_operand<A> && is_operand<Bm>, "gemm_batched: A and B must be tensors or views");
    const shape sa = shape_of(a), sb = shape_of(b);
    const bool ta = op_a == transpose::yes, tb = op_b == transpose::yes;
    const detail::batched_gemm_dims g = detail::batched_gemm_shape(ta, tb, sa, sb, batch);
    const shape sc(batch * g.m, g.n);
    if (beta != scalar(0)) require_shape("gemm_batched", "C", sc, shape_of(c));
    require_no_resized_alias("gemm_batched", c, sc, a, b);
    resize(ctx, c, sc);
    ++ctx.gemm_calls;
    if (g.m == 0 || g.n == 0) return;
    const std::size_t stride_a = g.rows_a * sa.cols, stride_b = g.rows_b * sb.cols, stride_c = g.m * g.n;
#if AYF_THRUST_CUDA
    timed_gemm(ctx, [&](cublasHandle_t handle) {
      const cublasOperation_t oa = ta ? CUBLAS_OP_T : CUBLAS_OP_N, ob = tb ? CUBLAS_OP_T : CUBLAS_OP_N;
      const int mi = static_cast<int>(g.m), ni = static_cast<int>(g.n), ki = static_cast<int>(g.k);
      const int la = static_cast<int>(sa.cols > 0 ? sa.cols : 1), lb = static_cast<int>(sb.cols > 0 ? sb.cols : 1);
      const auto sta = static_cast<long long>(stride_a), stb = static_cast<long long>(stride_b),
                 stc = static_cast<long long>(stride_c);
      const int count = static_cast<int>(batch);
      if constexpr (std::is_same_v<S, float>) {
        context::check(cublasSgemmStridedBatched(handle, ob, oa, ni, mi, ki, &alpha, data(b), lb, stb, data(a), la, sta,
                                                 &beta, data(c), ni, stc, count),
                       "cublasSgemmStridedBatched");
      } else {
        context::check(cublasDgemmStridedBatched(handle, ob, oa, ni, mi, ki, &alpha, data(b), lb, stb, data(a), la, sta,
                                                 &beta, data(c), ni, stc, count),
                       "cublasDgemmStridedBatched");
      }
    });
#else
    for (std::size_t k = 0; k < batch; ++k) {
      eigen_storage<S>::gemm(g.m, g.n, g.k, ta, tb, alpha, data(a) + k * stride_a, sa.cols, data(b) + k * stride_b,
                             sb.cols, beta, data(c) + k * stride_c);
    }
#endif
  }

private:
  template <class X>
  static constexpr bool is_operand = std::is_same_v<X, tensor> || std::is_same_v<X, view> ||
                                     std::is_same_v<X, const_view>;

  static S* data(tensor& x) { return ::thrust::raw_pointer_cast(x.values.data()); }
  static const S* data(const tensor& x) { return ::thrust::raw_pointer_cast(x.values.data()); }
  static S* data(const view& x) { return x.data; }
  static const S* data(const const_view& x) { return x.data; }

  /// Runs kernel(i) for i in [0, n) as one Thrust for_each on the context's system (and stream).
  template <class Kernel>
  static void launch(context& ctx, std::size_t n, const Kernel& kernel) {
    if (n == 0) return;
    ::thrust::for_each_n(ctx.policy(), ::thrust::counting_iterator<std::size_t>(0), n, kernel);
  }

  /// Device -> host copies (synchronizing with the context's stream on CUDA).
  template <class T>
  static void download(context& ctx, const T* device, T* host, std::size_t n) {
    if (n == 0) return;
#if AYF_THRUST_CUDA
    context::check(cudaMemcpyAsync(host, device, n * sizeof(T), cudaMemcpyDeviceToHost, ctx.stream), "cudaMemcpyAsync");
    context::check(cudaStreamSynchronize(ctx.stream), "cudaStreamSynchronize");
#else
    (void)ctx;
    std::copy_n(device, n, host);
#endif
  }
  template <class T>
  static void upload(context& ctx, const T* host, T* device, std::size_t n) {
    if (n == 0) return;
#if AYF_THRUST_CUDA
    context::check(cudaMemcpyAsync(device, host, n * sizeof(T), cudaMemcpyHostToDevice, ctx.stream), "cudaMemcpyAsync");
    context::check(cudaStreamSynchronize(ctx.stream), "cudaStreamSynchronize");
#else
    (void)ctx;
    std::copy_n(host, n, device);
#endif
  }

#if AYF_THRUST_CUDA
  /// Row-major C = alpha op(A) op(B) + beta C as the column-major C^T = alpha op(B)^T op(A)^T + beta C^T:
  /// a row-major matrix read as column-major is its transpose, so only the operand order swaps.
  static void gemm_cublas(context& ctx, std::size_t m, std::size_t n, std::size_t k, bool ta, bool tb, S alpha,
                          const S* a, std::size_t lda, const S* b, std::size_t ldb, S beta, S* c) {
    timed_gemm(ctx, [&](cublasHandle_t handle) {
      const cublasOperation_t op_a = ta ? CUBLAS_OP_T : CUBLAS_OP_N, op_b = tb ? CUBLAS_OP_T : CUBLAS_OP_N;
      const int mi = static_cast<int>(m), ni = static_cast<int>(n), ki = static_cast<int>(k);
      // A zero-sized k still needs valid leading dimensions (>= 1).
      const int la = static_cast<int>(lda > 0 ? lda : 1), lb = static_cast<int>(ldb > 0 ? ldb : 1);
      if constexpr (std::is_same_v<S, float>) {
        context::check(cublasSgemm(handle, op_b, op_a, ni, mi, ki, &alpha, b, lb, a, la, &beta, c, ni), "cublasSgemm");
      } else {
        context::check(cublasDgemm(handle, op_b, op_a, ni, mi, ki, &alpha, b, lb, a, la, &beta, c, ni), "cublasDgemm");
      }
    });
  }

  /// Runs call(handle) on the context's cuBLAS handle, timed with CUDA events when ctx.time_gemm.
  template <class Call>
  static void timed_gemm(context& ctx, const Call& call) {
    cublasHandle_t handle = ctx.blas();
    cudaEvent_t start = nullptr, stop = nullptr;
    if (ctx.time_gemm) {
      context::check(cudaEventCreate(&start), "cudaEventCreate");
      context::check(cudaEventCreate(&stop), "cudaEventCreate");
      context::check(cudaEventRecord(start, ctx.stream), "cudaEventRecord");
    }
    call(handle);
    if (ctx.time_gemm) {
      context::check(cudaEventRecord(stop, ctx.stream), "cudaEventRecord");
      context::check(cudaEventSynchronize(stop), "cudaEventSynchronize");
      float ms = 0;
      context::check(cudaEventElapsedTime(&ms, start, stop), "cudaEventElapsedTime");
      ctx.gemm_milliseconds += ms;
      cudaEventDestroy(start);
      cudaEventDestroy(stop);
    }
  }
#endif

  /// Raises at the first label of index that is not an integer below table_rows: a chunked search
  /// on the device (kernels cannot throw), then one download of the first bad row and its label.
  template <class Index>
  static void check_row_labels(context& ctx, const char* where, const Index& index, std::size_t table_rows) {
    const std::size_t rows = shape_of(index).rows;
    if (rows == 0) return;
    const std::size_t chunks = host_kernels::chunk_count(rows);
    double* first = ctx.scratch(chunks + 1);
    launch(ctx, chunks, thrust_kernels::first_invalid_label<S>{first, data(index), rows, table_rows});
    launch(ctx, 1, thrust_kernels::merge_first{first, chunks});
    double bad = 0;
    download(ctx, first + chunks, &bad, 1);
    const auto row = static_cast<std::size_t>(bad);
    if (row >= rows) return;
    S label{};
    download(ctx, data(index) + row, &label, 1);
    detail::throw_row_label_error(where, row, label, table_rows);
  }

  template <class Out, class... Args>
  static void require_no_resized_alias(const char* where, const Out& out, const shape& sh, const Args&... args) {
    detail::require_no_resized_alias<tensor>(where, out, shape_of(out), sh, args...);
  }

  template <class First, class... In>
  static shape same_shape([[maybe_unused]] const char* where, const First& first, const In&... rest) {
    const shape sh = shape_of(first);
    (require_shape(where, "input", sh, shape_of(rest)), ...);
    return sh;
  }
  template <class X>
  static const S* checked_data(const char* where, const X& x, const shape& sh) {
    static_assert(is_operand<X>, "scale_sum_rows: every second argument must be a tensor or view");
    require_shape(where, "x", sh, shape_of(x));
    return data(x);
  }
  template <std::size_t N, class C>
  static void set_coefficient(thrust_kernels::scale_sum_rows<S, N>& kernel, std::size_t k, const C& c,
                              std::size_t rows) {
    if constexpr (std::is_arithmetic_v<C>) {
      kernel.coefficient[k] = nullptr;
      kernel.constant[k] = static_cast<S>(c);
    } else {
      static_assert(is_operand<C>, "a coefficient is a scalar or a [B, 1] tensor or view");
      require_vector("scale_sum_rows", "coefficient", rows, shape_of(c));
      kernel.coefficient[k] = data(c);
      kernel.constant[k] = S(0);
    }
  }
};

static_assert(backend<thrust_backend<double>>);
static_assert(backend<thrust_backend<float>>);

}  // namespace ayf
