// ayf/backends/mpi/communicator.hpp: the communicator over MPI (docs/distributed.md) and an RAII
// MPI session for programs. Host backends are reduced in place; other backends are staged through
// to_host / from_host.
#pragma once

#include <mpi.h>

#include <climits>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <vector>

#include "ayf/core/backend.hpp"
#include "ayf/core/error.hpp"
#include "ayf/core/hash.hpp"
#include "ayf/core/host_backend.hpp"
#include "ayf/distributed/communicator.hpp"

namespace ayf {

namespace detail {

template <class B>
struct is_host_backend : std::false_type {};
template <class Storage, class Executor>
struct is_host_backend<host_backend<Storage, Executor>> : std::true_type {};

template <class S>
MPI_Datatype mpi_datatype() {
  static_assert(std::is_same_v<S, float> || std::is_same_v<S, double>, "MPI reductions of float or double");
  if constexpr (std::is_same_v<S, float>) {
    return MPI_FLOAT;
  } else {
    return MPI_DOUBLE;
  }
}

inline std::string mpi_error_text(int code) {
  char text[MPI_MAX_ERROR_STRING];
  int length = 0;
  if (MPI_Error_string(code, text, &length) != MPI_SUCCESS) return detail::concat("error code ", code);
  return std::string(text, static_cast<std::size_t>(length));
}

}  // namespace detail

/// Initializes MPI (MPI_Init_thread, MPI_THREAD_FUNNELED) for the program's lifetime and finalizes it
/// on destruction. When MPI is already initialized it does neither.
class mpi_session {
public:
  mpi_session(int& argc, char**& argv) {
    int initialized = 0;
    MPI_Initialized(&initialized);
    if (initialized) return;
    int provided = 0;
    const int rc = MPI_Init_thread(&argc, &argv, MPI_THREAD_FUNNELED, &provided);
    if (rc != MPI_SUCCESS) throw error(detail::concat("mpi_session: MPI_Init_thread failed: ", detail::mpi_error_text(rc)));
    owner_ = true;
  }
  mpi_session(const mpi_session&) = delete;
  mpi_session& operator=(const mpi_session&) = delete;
  ~mpi_session() {
    int finalized = 0;
    MPI_Finalized(&finalized);
    if (owner_ && !finalized) MPI_Finalize();
  }

private:
  bool owner_ = false;
};

/// Rank and size of MPI_COMM_WORLD: {0, 1} when MPI is not (or no longer) initialized.
struct mpi_world {
  int rank = 0;
  int size = 1;
};
inline mpi_world mpi_world_of() {
  int initialized = 0, finalized = 0;
  MPI_Initialized(&initialized);
  MPI_Finalized(&finalized);
  mpi_world w;
  if (!initialized || finalized) return w;
  MPI_Comm_rank(MPI_COMM_WORLD, &w.rank);
  MPI_Comm_size(MPI_COMM_WORLD, &w.size);
  return w;
}

/// Ends the whole job after an error on this rank, for a program's top-level handler: writes
/// "<program>: error on rank R of N: <what>" to stderr and calls MPI_Abort(MPI_COMM_WORLD, code), after
/// which the MPI launcher ends every rank and exits non-zero. A rank that returned from main instead
/// would leave the others waiting in their next collective. Without MPI running it writes the message
/// and calls std::abort. The library itself never calls this.
[[noreturn]] inline void mpi_abort_job(std::string_view program, std::string_view what, int code = 1) {
  const mpi_world w = mpi_world_of();
  const std::string line = detail::concat(program, ": error on rank ", w.rank, " of ", w.size, ": ", what, "\n");
  std::fputs(line.c_str(), stderr);
  std::fflush(stderr);
  int initialized = 0, finalized = 0;
  MPI_Initialized(&initialized);
  MPI_Finalized(&finalized);
  if (initialized && !finalized) MPI_Abort(MPI_COMM_WORLD, code);
  std::abort();
}

/// The communicator over an MPI communicator (MPI_COMM_WORLD by default) for tensors of backend B.
/// It works on its own duplicate of `comm`, whose errors return codes that are raised as ayf::error
/// naming the operation and the rank.
/// Deterministic mode (the default): a sum is gathered to rank 0, added in rank order 0, 1, ..., N-1
/// in the tensor's scalar type and broadcast, so it does not depend on message timing and is bitwise
/// identical on every rank. Fast mode: MPI_Allreduce.
template <backend B>
class mpi_communicator {
public:
  using scalar = typename B::scalar;
  using tensor = typename B::tensor;
  using context = typename B::context;

  explicit mpi_communicator(MPI_Comm comm = MPI_COMM_WORLD, bool deterministic = true)
      : deterministic_(deterministic) {
    check(MPI_Comm_dup(comm, &comm_), "MPI_Comm_dup");
    check(MPI_Comm_set_errhandler(comm_, MPI_ERRORS_RETURN), "MPI_Comm_set_errhandler");
    check(MPI_Comm_rank(comm_, &rank_), "MPI_Comm_rank");
    check(MPI_Comm_size(comm_, &size_), "MPI_Comm_size");
  }
  mpi_communicator(const mpi_communicator&) = delete;
  mpi_communicator& operator=(const mpi_communicator&) = delete;
  mpi_communicator(mpi_communicator&& other) noexcept
      : comm_(std::exchange(other.comm_, MPI_COMM_NULL)), rank_(other.rank_), size_(other.size_),
        deterministic_(other.deterministic_), gathered_(std::move(other.gathered_)),
        staged_(std::move(other.staged_)) {}
  mpi_communicator& operator=(mpi_communicator&&) = delete;
  ~mpi_communicator() {
    int finalized = 0;
    MPI_Finalized(&finalized);
    if (comm_ != MPI_COMM_NULL && !finalized) MPI_Comm_free(&comm_);
  }

  [[nodiscard]] int rank() const { return rank_; }
  [[nodiscard]] int size() const { return size_; }
  [[nodiscard]] bool deterministic() const { return deterministic_; }
  void set_deterministic(bool on) { deterministic_ = on; }
  [[nodiscard]] MPI_Comm comm() const { return comm_; }

  void all_reduce_sum(context& ctx, tensor& t) {
    apply(ctx, t, [&](scalar* x, std::size_t n) { sum(x, n); });
  }
  void all_reduce_mean(context& ctx, tensor& t) {
    apply(ctx, t, [&](scalar* x, std::size_t n) {
      sum(x, n);
      const scalar count = static_cast<scalar>(size_);
      for (std::size_t i = 0; i < n; ++i) x[i] /= count;
    });
  }
  void broadcast(context& ctx, tensor& t, int root) {
    require(root >= 0 && root < size_, "mpi_communicator::broadcast", "root",
            detail::message("a rank in [0, ", size_, ")"), root);
    apply(ctx, t, [&](scalar* x, std::size_t n) {
      check(MPI_Bcast(x, count_of(n, "MPI_Bcast"), detail::mpi_datatype<scalar>(), root, comm_), "MPI_Bcast");
    });
  }
  void barrier() { check(MPI_Barrier(comm_), "MPI_Barrier"); }

  /// Raises ayf::error on every rank unless all ranks passed the same `value` (a hash of the model
  /// configuration, a parameter count); the message names the first differing rank and both values.
  void require_agreement(std::string_view what, std::uint64_t value) {
    std::vector<std::uint64_t> all(static_cast<std::size_t>(size_));
    check(MPI_Allgather(&value, 1, MPI_UINT64_T, all.data(), 1, MPI_UINT64_T, comm_), "MPI_Allgather");
    for (int r = 1; r < size_; ++r) {
      if (all[static_cast<std::size_t>(r)] != all[0]) {
        throw error(detail::concat("mpi_communicator: ranks disagree on '", what, "': rank 0 has ", all[0],
                                   ", rank ", r, " has ", all[static_cast<std::size_t>(r)]));
      }
    }
  }

  /// Raises ayf::error on every rank unless all ranks passed the same `entries` (a configuration's
  /// key = value pairs): the message names the first rank that differs from rank 0, the first differing
  /// key and both values. Compares hashes; only when they differ do the two ranks' entries travel.
  void require_same_entries(std::string_view what, const std::map<std::string, std::string>& entries) {
    const std::string text = detail::entries_text(entries);
    const std::uint64_t hash = fnv1a64(text);
    std::vector<std::uint64_t> all(static_cast<std::size_t>(size_));
    check(MPI_Allgather(&hash, 1, MPI_UINT64_T, all.data(), 1, MPI_UINT64_T, comm_), "MPI_Allgather");
    int r = 1;
    while (r < size_ && all[static_cast<std::size_t>(r)] == all[0]) ++r;
    if (r == size_) return;
    const std::string on_0 = shared_text(text, 0), on_r = shared_text(text, r);
    const auto d = detail::first_difference(on_0, on_r);
    if (!d) {
      throw error(detail::concat("mpi_communicator: ranks disagree on '", what, "' (hash): rank 0 has ", all[0],
                                 ", rank ", r, " has ", all[static_cast<std::size_t>(r)]));
    }
    throw error(detail::concat("mpi_communicator: ranks disagree on '", what, "': '", d->key, "' is ", d->a,
                               " on rank 0, ", d->b, " on rank ", r));
  }

private:
  /// Rank `root`'s `text`, on every rank.
  std::string shared_text(const std::string& text, int root) {
    std::uint64_t length = text.size();
    check(MPI_Bcast(&length, 1, MPI_UINT64_T, root, comm_), "MPI_Bcast");
    std::string out = rank_ == root ? text : std::string(static_cast<std::size_t>(length), '\0');
    check(MPI_Bcast(out.data(), count_of(out.size(), "mpi_communicator::require_same_entries"), MPI_CHAR, root,
                    comm_),
          "MPI_Bcast");
    return out;
  }

  void check(int rc, std::string_view op) const {
    if (rc != MPI_SUCCESS) {
      throw error(detail::concat("mpi_communicator: ", op, " failed on rank ", rank_, ": ",
                                 detail::mpi_error_text(rc)));
    }
  }
  int count_of(std::size_t n, std::string_view op) const {
    require(n <= static_cast<std::size_t>(INT_MAX), op, "tensor size", detail::message("at most ", INT_MAX, " elements"),
            n);
    return static_cast<int>(n);
  }

  /// Runs `f(data, n)` on the tensor's elements: in place for host backends, else on a host copy.
  template <class F>
  void apply(context& ctx, tensor& t, F&& f) {
    if constexpr (detail::is_host_backend<B>::value) {
      auto v = B::as_view(t);
      f(v.data, B::shape_of(t).size());
    } else {
      staged_ = B::to_host(ctx, t);
      f(staged_.data(), staged_.size());
      B::from_host(ctx, staged_, B::shape_of(t), t);
    }
  }

  void sum(scalar* x, std::size_t n) {
    using S = scalar;
    const int count = count_of(n, "mpi_communicator::all_reduce_sum");
    if (!deterministic_) {
      check(MPI_Allreduce(MPI_IN_PLACE, x, count, detail::mpi_datatype<S>(), MPI_SUM, comm_), "MPI_Allreduce");
      return;
    }
    std::vector<S>& all = gathered_;  // reused between calls (rank 0)
    if (rank_ == 0) all.resize(n * static_cast<std::size_t>(size_));
    check(MPI_Gather(x, count, detail::mpi_datatype<S>(), rank_ == 0 ? all.data() : nullptr, count,
                     detail::mpi_datatype<S>(), 0, comm_),
          "MPI_Gather");
    if (rank_ == 0) {
      for (std::size_t i = 0; i < n; ++i) {
        S acc = all[i];
        for (std::size_t r = 1; r < static_cast<std::size_t>(size_); ++r) acc += all[r * n + i];
        x[i] = acc;
      }
    }
    check(MPI_Bcast(x, count, detail::mpi_datatype<S>(), 0, comm_), "MPI_Bcast");
  }

  MPI_Comm comm_ = MPI_COMM_NULL;
  int rank_ = 0;
  int size_ = 1;
  bool deterministic_ = true;
  std::vector<scalar> gathered_;  // rank 0: every rank's elements, rank-major
  std::vector<scalar> staged_;    // host copy of a non-host backend's tensor
};

}  // namespace ayf
