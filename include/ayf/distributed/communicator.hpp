// ayf/distributed/communicator.hpp: the communicator concept (data-parallel training, docs/distributed.md)
// and the single-process communicator, the default when a program runs as one process.
#pragma once

#include <concepts>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>

#include "ayf/core/backend.hpp"
#include "ayf/core/error.hpp"
#include "ayf/core/hash.hpp"

namespace ayf {

/// A communicator `C` joins `size()` processes, each with its `rank()` in [0, size()), and moves
/// backend-`B` tensors between them. Every operation is collective: all ranks call it in the same
/// order with tensors of the same shape.
///   rank(), size()
///   all_reduce_sum(ctx, t)        t <- sum over ranks of t (on every rank)
///   all_reduce_mean(ctx, t)       t <- (sum over ranks of t) / size()
///   broadcast(ctx, t, root)       t <- root's t
///   barrier()
///   require_agreement(what, v)    raises ayf::error unless every rank passed the same v
template <class C, class B>
concept communicator =
    backend<B> &&
    requires(C& c, const C& cc, context_t<B>& ctx, tensor_t<B>& t, int root, std::string_view what,
             std::uint64_t value) {
      { cc.rank() } -> std::convertible_to<int>;
      { cc.size() } -> std::convertible_to<int>;
      c.all_reduce_sum(ctx, t);
      c.all_reduce_mean(ctx, t);
      c.broadcast(ctx, t, root);
      c.barrier();
      c.require_agreement(what, value);
    };

namespace detail {

/// A configuration's entries as "key=value\n" lines in key order: what ranks compare.
inline std::string entries_text(const std::map<std::string, std::string>& entries) {
  std::string text;
  for (const auto& [key, value] : entries) text += key + "=" + value + "\n";
  return text;
}

/// The first key (in key order) whose value differs between two entries_text texts; a key that one
/// text lacks has the value "(none)" there.
struct entry_difference {
  std::string key, a, b;
};
inline std::optional<entry_difference> first_difference(std::string_view a, std::string_view b) {
  auto parse = [](std::string_view text) {
    std::map<std::string, std::string> out;
    while (!text.empty()) {
      const std::size_t end = text.find('\n');
      const std::string_view line = text.substr(0, end);
      const std::size_t eq = line.find('=');
      out[std::string(line.substr(0, eq))] = eq == std::string_view::npos ? "" : std::string(line.substr(eq + 1));
      if (end == std::string_view::npos) break;
      text.remove_prefix(end + 1);
    }
    return out;
  };
  const auto ea = parse(a), eb = parse(b);
  std::map<std::string, std::pair<std::string, std::string>> both;
  for (const auto& [key, value] : ea) both[key] = {value, "(none)"};
  for (const auto& [key, value] : eb) {
    auto [it, added] = both.try_emplace(key, "(none)", value);
    if (!added) it->second.second = value;
  }
  for (const auto& [key, values] : both) {
    if (values.first != values.second) return entry_difference{key, values.first, values.second};
  }
  return std::nullopt;
}

}  // namespace detail

/// Raises ayf::error on every rank unless all ranks of `comm` passed the same `entries` (a model config,
/// training settings). A communicator with require_same_entries(what, entries) names the first
/// differing key and both values; any other compares a hash: require_agreement("<what> (hash)", ...).
template <class C>
void require_same_entries(C& comm, std::string_view what, const std::map<std::string, std::string>& entries) {
  if constexpr (requires { comm.require_same_entries(what, entries); }) {
    comm.require_same_entries(what, entries);
  } else {
    comm.require_agreement(detail::concat(what, " (hash)"), fnv1a64(detail::entries_text(entries)));
  }
}

/// One process: rank 0 of 1. Reductions are the identity; broadcast accepts only root 0.
struct single_process_communicator {
  [[nodiscard]] int rank() const { return 0; }
  [[nodiscard]] int size() const { return 1; }

  template <class Context, class Tensor>
  void all_reduce_sum(Context& /*ctx*/, Tensor& /*t*/) const {}
  template <class Context, class Tensor>
  void all_reduce_mean(Context& /*ctx*/, Tensor& /*t*/) const {}
  template <class Context, class Tensor>
  void broadcast(Context& /*ctx*/, Tensor& /*t*/, int root) const {
    require(root == 0, "single_process_communicator::broadcast", "root", "0 (the only rank)", root);
  }
  void barrier() const {}
  void require_agreement(std::string_view /*what*/, std::uint64_t /*value*/) const {}
};

}  // namespace ayf
