// ayf/core/backend_checks.hpp: the argument checks every backend (design.md §3) runs before an
// operation, written once so that all backends raise the same ayf::error for the same mistake.
#pragma once

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

}  // namespace ayf::detail
