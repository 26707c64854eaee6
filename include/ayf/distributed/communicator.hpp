// ayf/distributed/communicator.hpp: the communicator concept (data-parallel training, docs/distributed.md)
// and the single-process communicator, the default when a program runs as one process.
#pragma once

#include <concepts>
#include <cstdint>
#include <string_view>

#include "ayf/core/backend.hpp"
#include "ayf/core/error.hpp"

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
