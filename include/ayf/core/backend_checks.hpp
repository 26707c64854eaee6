// ayf/core/backend_checks.hpp: the argument checks every backend (design.md §3) runs before an
// operation, written once so that all backends raise the same ayf::error for the same mistake.
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <sstream>
#include <type_traits>

#include "ayf/core/error.hpp"
#include "ayf/core/shape.hpp"

namespace ayf::detail {

/// slice: elements [offset, offset + sh.size()) must lie inside a flat buffer of shape `flat`.
inline void check_slice(const shape& flat, std::size_t offset, const shape& sh) {
  if (offset > flat.size() || sh.size() > flat.size() - offset) {
    throw_argument_error("slice", "offset", concat(sh.size(), " elements from the offset inside ", flat.size()),
                         offset);
  }
}

/// gather / gather_sum: the number of runs of `block` elements in `out_shape` (block must divide it).
inline std::size_t block_count(const char* where, const shape& out_shape, std::int64_t block) {
  if (block < 1 || out_shape.size() % static_cast<std::size_t>(block) != 0) {
    throw_argument_error(where, "block", concat("a positive divisor of ", out_shape.size(), " elements"), block);
  }
  return out_shape.size() / static_cast<std::size_t>(block);
}

/// broadcast_add: the period C of a [1, C] row `v` (C a positive divisor of y's columns), or 0
/// for a per-row [R, 1] column `v`.
inline std::size_t broadcast_period(const shape& y, const shape& v) {
  if (v.rows == 1 && v.cols > 0 && y.cols % v.cols == 0) return v.cols;
  if (v.rows == y.rows && v.cols == 1) return 0;
  std::ostringstream received;
  received << v;
  throw_argument_error("broadcast_add", "v",
                       concat("shape [1, C] with C a positive divisor of ", y.cols, ", or shape [", y.rows, ", 1]"),
                       received.str());
}

/// sum_columns: the period C of `out` = [1, C] (C a positive divisor of in's columns).
inline std::size_t column_period(const shape& out, const shape& in) {
  if (out.rows == 1 && out.cols > 0 && in.cols % out.cols == 0) return out.cols;
  std::ostringstream received;
  received << out;
  throw_argument_error("sum_columns", "out", concat("shape [1, C] with C a positive divisor of ", in.cols),
                       received.str());
}

/// gather_rows / scatter_add_rows: `index` holds one label per row, [R, 1].
inline void check_index_shape(const char* where, const shape& index) {
  if (index.cols != 1) {
    std::ostringstream received;
    received << index;
    throw_argument_error(where, "index", concat("shape [", index.rows, ", 1]"), received.str());
  }
}

/// The label `value` at row `row` of `index` is not an integer below `table_rows`.
template <class S>
[[noreturn]] void throw_row_label_error(const char* where, std::size_t row, S value, std::size_t table_rows) {
  throw_argument_error(where, "index",
                       concat("an integer below ", table_rows, " (negative: no row) at row ", row),
                       static_cast<double>(value));
}

/// gemm_batched: the dimensions of one member, op(A_k) [m, k] times op(B_k) [k, n], where A_k and
/// B_k are `rows_a` and `rows_b` consecutive rows of A and B.
struct batched_gemm_dims {
  std::size_t m, n, k, rows_a, rows_b;
};
inline batched_gemm_dims batched_gemm_shape(bool ta, bool tb, const shape& sa, const shape& sb, std::size_t batch) {
  if (batch == 0 || sa.rows % batch != 0 || sb.rows % batch != 0) {
    throw_argument_error("gemm_batched", "batch",
                         concat("a positive divisor of the rows of A (", sa.rows, ") and B (", sb.rows, ")"), batch);
  }
  const std::size_t ra = sa.rows / batch, rb = sb.rows / batch;
  const std::size_t m = ta ? sa.cols : ra, k = ta ? ra : sa.cols;
  const std::size_t kb = tb ? sb.cols : rb, n = tb ? rb : sb.cols;
  if (k != kb) {
    throw_argument_error("gemm_batched", "B", concat(k, " rows of op(B_k) to match op(A_k)'s columns"), kb);
  }
  return {m, n, k, ra, rb};
}

/// An output tensor (of type Tensor, currently of shape `have`) that must be resized to `sh` cannot
/// also be an input: resizing would free or move the input's data. Views are never resized.
template <class Tensor, class Out, class... Args>
void require_no_resized_alias(const char* where, const Out& out, const shape& have, const shape& sh,
                              const Args&... args) {
  if constexpr (std::is_same_v<std::remove_cvref_t<Out>, Tensor>) {
    if (have.rows == sh.rows && have.cols == sh.cols) return;
    const bool aliased = ((static_cast<const void*>(&args) == static_cast<const void*>(&out)) || ...);
    if (aliased) {
      std::ostringstream received;
      received << "an input of shape " << have;
      throw_argument_error(where, "out", concat("a tensor distinct from the inputs, or of shape ", sh), received.str());
    }
  }
}

/// Buffers of n elements each that an operation writes in place must not overlap one another.
template <class... S>
void require_distinct_buffers(const char* where, std::size_t n, const S*... buffers) {
  if (n == 0) return;
  const std::uintptr_t begin[] = {reinterpret_cast<std::uintptr_t>(buffers)...};
  constexpr std::size_t count = sizeof...(S);
  const std::size_t bytes = n * sizeof(std::common_type_t<S...>);
  for (std::size_t i = 0; i < count; ++i) {
    for (std::size_t j = i + 1; j < count; ++j) {
      const std::uintptr_t lo = std::min(begin[i], begin[j]), hi = std::max(begin[i], begin[j]);
      if (hi - lo < bytes) {
        throw_argument_error(where, "buffers", concat(count, " distinct buffers of ", n, " elements"),
                             concat("buffers ", i, " and ", j, " overlapping"));
      }
    }
  }
}

/// apply_adam's operands (both backends): values and the two moments of the gradients' shape, in
/// four distinct buffers.
template <class S>
void require_adam_operands(const shape& gradients, const shape& values, const shape& first, const shape& second,
                           const S* theta, const S* m, const S* v, const S* g) {
  require_shape("apply_adam", "values", gradients, values);
  require_shape("apply_adam", "first", gradients, first);
  require_shape("apply_adam", "second", gradients, second);
  require_distinct_buffers("apply_adam", gradients.size(), theta, m, v, g);
}

}  // namespace ayf::detail
