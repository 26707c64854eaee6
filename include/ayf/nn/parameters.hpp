// ayf/nn/parameters.hpp: flat parameter and gradient buffers (design.md §4): every weight is a
// view into one [1, P] tensor, so optimizers, EMA and gradient norms are single passes.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

#include "ayf/core/backend.hpp"
#include "ayf/core/error.hpp"

namespace ayf::nn {

/// One named block of the flat buffer: elements [offset, offset + extent.size()) viewed as `extent`.
struct parameter_block {
  std::string name;
  std::size_t offset = 0;
  shape extent{};
};

/// The layout of a flat buffer: blocks are appended in order; the layout is fixed before allocation.
class parameter_layout {
public:
  /// Appends a block of shape [rows, cols] and returns its index.
  std::size_t add(std::string name, std::size_t rows, std::size_t cols) {
    m_blocks.push_back({std::move(name), m_size, shape(rows, cols)});
    m_size += rows * cols;
    return m_blocks.size() - 1;
  }
  [[nodiscard]] std::size_t size() const { return m_size; }
  [[nodiscard]] const std::vector<parameter_block>& blocks() const { return m_blocks; }
  [[nodiscard]] const parameter_block& operator[](std::size_t k) const { return m_blocks[k]; }
  /// The block named `name`, or null.
  [[nodiscard]] const parameter_block* find(std::string_view name) const {
    for (const auto& b : m_blocks)
      if (b.name == name) return &b;
    return nullptr;
  }

private:
  std::vector<parameter_block> m_blocks;
  std::size_t m_size = 0;
};

/// Parameters theta and their gradient, each one [1, P] tensor laid out by `layout`.
template <backend B>
struct parameter_set {
  parameter_layout layout;
  typename B::tensor values;
  typename B::tensor gradients;

  parameter_set(typename B::context& ctx, parameter_layout l)
      : layout(std::move(l)), values(B::make(ctx, shape(1, layout.size()))),
        gradients(B::make(ctx, shape(1, layout.size()))) {}

  typename B::view value(typename B::context& ctx, std::size_t block) {
    return B::slice(ctx, values, layout[block].offset, layout[block].extent);
  }
  typename B::view gradient(typename B::context& ctx, std::size_t block) {
    return B::slice(ctx, gradients, layout[block].offset, layout[block].extent);
  }
  void zero_gradients(typename B::context& ctx) { B::fill(ctx, gradients, typename B::scalar(0)); }
  [[nodiscard]] std::size_t size() const { return layout.size(); }
};

/// Copies every block of `from` into the block of `to` with the same name (and shape); blocks of
/// `to` that `from` lacks keep their values.
template <backend B>
void copy_blocks_by_name(typename B::context& ctx, const parameter_set<B>& from, parameter_set<B>& to) {
  for (const parameter_block& src : from.layout.blocks()) {
    const parameter_block* dst = to.layout.find(src.name);
    require(dst != nullptr, "copy_blocks_by_name", "to", ayf::detail::message("a block named '", src.name, "'"), "none");
    require_shape("copy_blocks_by_name", src.name.c_str(), src.extent, dst->extent);
    B::copy(ctx, B::slice(ctx, from.values, src.offset, src.extent), B::slice(ctx, to.values, dst->offset, dst->extent));
  }
}

}  // namespace ayf::nn
