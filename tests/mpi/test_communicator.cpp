// The communicator concept, single_process_communicator and mpi_communicator, checked against sums
// computed locally from every rank's known inputs.
#include <catch2/catch.hpp>
#include <mpi.h>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <vector>

#include "ayf/backends/eigen/backend.hpp"
#include "ayf/backends/mpi/communicator.hpp"
#include "ayf/distributed/communicator.hpp"

namespace {

static_assert(ayf::communicator<ayf::single_process_communicator, ayf::eigen_backend<double>>);
static_assert(ayf::communicator<ayf::single_process_communicator, ayf::eigen_backend<float>>);
static_assert(ayf::communicator<ayf::mpi_communicator<ayf::eigen_backend<double>>, ayf::eigen_backend<double>>);
static_assert(ayf::communicator<ayf::mpi_communicator<ayf::eigen_backend<float>>, ayf::eigen_backend<float>>);

// The Eigen backend under another name: not a host_backend specialization, so mpi_communicator
// stages its tensors through to_host / from_host.
struct staged_backend : ayf::eigen_backend<double> {};
static_assert(ayf::backend<staged_backend>);
static_assert(!ayf::detail::is_host_backend<staged_backend>::value);

const ayf::shape extent(3, 5);

// Rank r's input: magnitudes spanning several decades, so the order of a sum changes its rounding.
template <class S>
S input(int r, std::size_t i) {
  const double v = std::sin(1.0 + 7.3 * r + 0.37 * static_cast<double>(i)) * std::pow(10.0, static_cast<double>(i % 5) - 2.0);
  return static_cast<S>(v);
}

template <class B>
typename B::tensor rank_tensor(typename B::context& ctx, int r) {
  using S = typename B::scalar;
  std::vector<S> v(extent.size());
  for (std::size_t i = 0; i < v.size(); ++i) v[i] = input<S>(r, i);
  return B::from_host(ctx, v, extent);
}

// The sum over ranks 0, 1, ..., N-1 in that order, in S.
template <class S>
std::vector<S> sum_in_rank_order(int n) {
  std::vector<S> out(extent.size());
  for (std::size_t i = 0; i < out.size(); ++i) {
    S acc = input<S>(0, i);
    for (int r = 1; r < n; ++r) acc += input<S>(r, i);
    out[i] = acc;
  }
  return out;
}

// Every rank's copy of `values`, gathered with plain MPI; true when all are bitwise equal to rank 0's.
template <class S>
bool bitwise_identical_on_all_ranks(const std::vector<S>& values, int size) {
  const int bytes = static_cast<int>(values.size() * sizeof(S));
  std::vector<unsigned char> all(static_cast<std::size_t>(bytes) * static_cast<std::size_t>(size));
  MPI_Allgather(values.data(), bytes, MPI_BYTE, all.data(), bytes, MPI_BYTE, MPI_COMM_WORLD);
  for (int r = 1; r < size; ++r) {
    if (std::memcmp(all.data(), all.data() + static_cast<std::size_t>(r) * static_cast<std::size_t>(bytes),
                    static_cast<std::size_t>(bytes)) != 0) {
      return false;
    }
  }
  return true;
}

int world_size() {
  int n = 0;
  MPI_Comm_size(MPI_COMM_WORLD, &n);
  return n;
}
int world_rank() {
  int r = 0;
  MPI_Comm_rank(MPI_COMM_WORLD, &r);
  return r;
}

}  // namespace

TEST_CASE("mpi_communicator: rank and size are the world's", "[mpi]") {
  ayf::mpi_communicator<ayf::eigen_backend<double>> comm;
  CHECK(comm.rank() == world_rank());
  CHECK(comm.size() == world_size());
  CHECK(comm.deterministic());
  comm.barrier();
}

TEMPLATE_TEST_CASE("mpi_communicator: deterministic all_reduce_sum is the sum in rank order", "[mpi]",
                   ayf::eigen_backend<double>, ayf::eigen_backend<float>, staged_backend) {
  using B = TestType;
  using S = typename B::scalar;
  typename B::context ctx;
  ayf::mpi_communicator<B> comm;
  auto t = rank_tensor<B>(ctx, comm.rank());
  comm.all_reduce_sum(ctx, t);
  const std::vector<S> got = B::to_host(ctx, t);
  const std::vector<S> want = sum_in_rank_order<S>(comm.size());
  CHECK(B::shape_of(t) == extent);
  for (std::size_t i = 0; i < want.size(); ++i) CHECK(got[i] == want[i]);  // exact
  CHECK(bitwise_identical_on_all_ranks(got, comm.size()));

  // The same again (the gather buffer is reused).
  auto u = rank_tensor<B>(ctx, comm.rank());
  comm.all_reduce_sum(ctx, u);
  CHECK(B::to_host(ctx, u) == want);
}

TEMPLATE_TEST_CASE("mpi_communicator: all_reduce_mean divides the rank-order sum by size", "[mpi]",
                   ayf::eigen_backend<double>, ayf::eigen_backend<float>) {
  using B = TestType;
  using S = typename B::scalar;
  typename B::context ctx;
  ayf::mpi_communicator<B> comm;
  auto t = rank_tensor<B>(ctx, comm.rank());
  comm.all_reduce_mean(ctx, t);
  const std::vector<S> got = B::to_host(ctx, t);
  const std::vector<S> sum = sum_in_rank_order<S>(comm.size());
  for (std::size_t i = 0; i < sum.size(); ++i) CHECK(got[i] == sum[i] / static_cast<S>(comm.size()));
  CHECK(bitwise_identical_on_all_ranks(got, comm.size()));
}

TEMPLATE_TEST_CASE("mpi_communicator: fast all_reduce_sum agrees with the sum to rounding", "[mpi]",
                   ayf::eigen_backend<double>, ayf::eigen_backend<float>) {
  using B = TestType;
  using S = typename B::scalar;
  typename B::context ctx;
  ayf::mpi_communicator<B> comm(MPI_COMM_WORLD, /*deterministic=*/false);
  CHECK_FALSE(comm.deterministic());
  auto t = rank_tensor<B>(ctx, comm.rank());
  comm.all_reduce_sum(ctx, t);
  const std::vector<S> got = B::to_host(ctx, t);
  // Reference in double, whatever the order; the float result may differ by a few ulps of the terms.
  for (std::size_t i = 0; i < got.size(); ++i) {
    double want = 0.0, scale = 0.0;
    for (int r = 0; r < comm.size(); ++r) {
      want += static_cast<double>(input<S>(r, i));
      scale += std::abs(static_cast<double>(input<S>(r, i)));
    }
    CHECK(std::abs(static_cast<double>(got[i]) - want) <= 4.0 * comm.size() * std::numeric_limits<S>::epsilon() * scale);
  }
}

TEMPLATE_TEST_CASE("mpi_communicator: broadcast from the first and the last rank", "[mpi]",
                   ayf::eigen_backend<double>, staged_backend) {
  using B = TestType;
  typename B::context ctx;
  ayf::mpi_communicator<B> comm;
  for (const int root : {0, comm.size() - 1}) {
    auto t = rank_tensor<B>(ctx, comm.rank());
    comm.broadcast(ctx, t, root);
    const auto want = B::to_host(ctx, rank_tensor<B>(ctx, root));
    CHECK(B::to_host(ctx, t) == want);
  }
  auto t = rank_tensor<B>(ctx, comm.rank());
  CHECK_THROWS_WITH(comm.broadcast(ctx, t, comm.size()), Catch::Contains("root") && Catch::Contains("received"));
}

TEST_CASE("mpi_communicator: require_agreement names the disagreeing rank and both values", "[mpi]") {
  ayf::mpi_communicator<ayf::eigen_backend<double>> comm;
  CHECK_NOTHROW(comm.require_agreement("parameter count", 1234));
  const std::uint64_t mine = 42 + static_cast<std::uint64_t>(comm.rank());
  if (comm.size() == 1) {
    CHECK_NOTHROW(comm.require_agreement("parameter count", mine));
  } else {
    CHECK_THROWS_WITH(comm.require_agreement("parameter count", mine),
                      Catch::Contains("'parameter count'") && Catch::Contains("rank 0 has 42") &&
                          Catch::Contains("rank 1 has 43"));
  }
}

TEST_CASE("single_process_communicator is the identity", "[mpi]") {
  using B = ayf::eigen_backend<double>;
  B::context ctx;
  ayf::single_process_communicator comm;
  CHECK(comm.rank() == 0);
  CHECK(comm.size() == 1);
  auto t = rank_tensor<B>(ctx, 3);
  const auto want = B::to_host(ctx, t);
  comm.all_reduce_sum(ctx, t);
  CHECK(B::to_host(ctx, t) == want);
  comm.all_reduce_mean(ctx, t);
  CHECK(B::to_host(ctx, t) == want);
  comm.broadcast(ctx, t, 0);
  CHECK(B::to_host(ctx, t) == want);
  CHECK_THROWS_WITH(comm.broadcast(ctx, t, 1), Catch::Contains("root"));
  comm.barrier();
  CHECK_NOTHROW(comm.require_agreement("anything", 7));
}
