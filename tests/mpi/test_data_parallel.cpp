// Data-parallel training (trainer::run_data_parallel over mpi_communicator): N ranks train the same
// model as one process with the same global batch and shards (to 1e-12 relative in double, 1e-5 in
// float), every rank ends with bitwise the same parameters, a checkpoint written by N ranks resumes on
// 1 and on N ranks as the uninterrupted run, and ranks with different models fail with an error naming
// the rank and what differed.
#include <catch2/catch.hpp>
#include <mpi.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <string>
#include <vector>

#include "ayf/backends/eigen/backend.hpp"
#include "ayf/backends/mpi/communicator.hpp"
#include "ayf/core/philox.hpp"
#include "ayf/data/batch_sampler.hpp"
#include "ayf/nn/mlp.hpp"
#include "ayf/objectives/flow_matching.hpp"
#include "ayf/train/trainer.hpp"

namespace {

namespace fs = std::filesystem;
using Catch::Matchers::Contains;

constexpr std::size_t global_batch = 12;
constexpr std::size_t shards = 6;  // divisible by 1, 2 and 3 ranks

/// 300 points in 2-D: Philox normals shifted to four centres.
ayf::data::points toy_points() {
  ayf::data::points p;
  p.rows = 300;
  p.cols = 2;
  for (std::size_t r = 0; r < p.rows; ++r) {
    const double cx = (r % 2 == 0) ? 2.0 : -2.0, cy = (r % 4 < 2) ? 1.5 : -1.5;
    p.values.push_back(cx + 0.3 * ayf::philox_normal(5, 2 * r));
    p.values.push_back(cy + 0.3 * ayf::philox_normal(5, 2 * r + 1));
  }
  return p;
}

ayf::nn::mlp_config tiny_mlp() {
  return {.dims = 2, .width = 16, .blocks = 1, .frequencies = 4, .seed = 3};
}

ayf::train::trainer_config tiny_training(std::uint64_t steps) {
  ayf::train::trainer_config tc;
  tc.steps = steps;
  tc.adam.learning_rate = 3e-3;
  tc.ema_decay = 0.9;
  tc.seed = 21;
  tc.shards = shards;
  tc.stage = "fm";
  tc.log = nullptr;
  return tc;
}

/// Trains a fresh tiny MLP with flow matching over `comm`; returns its parameters (host copy).
template <class B, class Comm>
std::vector<typename B::scalar> train(Comm& comm, ayf::train::trainer_config tc,
                                      const ayf::nn::mlp_config& mc = tiny_mlp()) {
  using mlp_t = ayf::nn::mlp_flow_model<B>;
  typename B::context ctx(1);
  mlp_t model(ctx, mc);
  ayf::data::batch_sampler<B> sampler(toy_points(), {global_batch, 0.0, 13});
  ayf::train::trainer<B, mlp_t> trainer(ctx, model, tc);
  ayf::flow_matching<B, mlp_t> fm;
  trainer.run_data_parallel(ctx, sampler, comm, [&](auto& c, const typename B::tensor& x, const typename B::tensor* y,
                                                    std::uint64_t) { return fm.step(c, model, x, y); });
  return B::to_host(ctx, model.parameters().values);
}

template <class S>
double max_relative_difference(const std::vector<S>& a, const std::vector<S>& b) {
  REQUIRE(a.size() == b.size());
  double scale = 0, diff = 0;
  for (std::size_t i = 0; i < a.size(); ++i) {
    scale = std::max(scale, std::abs(static_cast<double>(b[i])));
    diff = std::max(diff, std::abs(static_cast<double>(a[i]) - static_cast<double>(b[i])));
  }
  return diff / scale;
}

/// True when every rank holds the same bytes as rank 0.
template <class S>
bool same_on_all_ranks(const std::vector<S>& v) {
  std::vector<S> root = v;
  MPI_Bcast(root.data(), static_cast<int>(root.size() * sizeof(S)), MPI_BYTE, 0, MPI_COMM_WORLD);
  int same = std::memcmp(root.data(), v.data(), v.size() * sizeof(S)) == 0 ? 1 : 0, all = 0;
  MPI_Allreduce(&same, &all, 1, MPI_INT, MPI_MIN, MPI_COMM_WORLD);
  return all == 1;
}

/// A directory every rank names alike (rank 0's process id), removed at scope exit.
struct shared_dir {
  fs::path path;
  shared_dir() {
    long id = static_cast<long>(::getpid());
    MPI_Bcast(&id, 1, MPI_LONG, 0, MPI_COMM_WORLD);
    path = fs::temp_directory_path() / ("ayf_mpi_dp_" + std::to_string(id));
    int rank = 0;
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    if (rank == 0) fs::create_directories(path);
    MPI_Barrier(MPI_COMM_WORLD);
  }
  ~shared_dir() {
    MPI_Barrier(MPI_COMM_WORLD);
    int rank = 0;
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    std::error_code ec;
    if (rank == 0) fs::remove_all(path, ec);
  }
};

template <class B>
void check_equals_one_process(double tolerance) {
  using S = typename B::scalar;
  ayf::mpi_communicator<B> comm;
  ayf::single_process_communicator one;
  const auto distributed = train<B>(comm, tiny_training(50));
  const auto reference = train<B>(one, tiny_training(50));
  const auto initial = [] {
    typename B::context ctx(1);
    ayf::nn::mlp_flow_model<B> m(ctx, tiny_mlp());
    return B::to_host(ctx, m.parameters().values);
  }();
  CHECK(max_relative_difference(reference, initial) > 1e-3);  // training moved the parameters
  const double rel = max_relative_difference(distributed, reference);
  INFO("ranks " << comm.size() << ", max relative difference " << rel);
  CHECK(rel <= tolerance);
  CHECK(same_on_all_ranks<S>(distributed));
}

}  // namespace

TEST_CASE("data-parallel training of an MLP (double) equals the 1-process run with the same global batch",
          "[mpi][data_parallel]") {
  check_equals_one_process<ayf::eigen_backend<double>>(1e-12);
}

TEST_CASE("data-parallel training of an MLP (float) equals the 1-process run to 1e-5", "[mpi][data_parallel]") {
  check_equals_one_process<ayf::eigen_backend<float>>(1e-5);
}

TEST_CASE("the shards, not the rank count, define the run: other shards give another result", "[mpi][data_parallel]") {
  using B = ayf::eigen_backend<double>;
  ayf::single_process_communicator one;
  auto tc = tiny_training(10);
  const auto six = train<B>(one, tc);
  tc.shards = 1;
  const auto whole = train<B>(one, tc);
  CHECK(max_relative_difference(six, whole) > 1e-6);  // the noise streams differ
}

TEST_CASE("a data-parallel checkpoint resumes on 1 rank and on all ranks as the uninterrupted run",
          "[mpi][data_parallel]") {
  using B = ayf::eigen_backend<double>;
  ayf::mpi_communicator<B> comm;
  shared_dir dir;
  auto tc = tiny_training(30);
  tc.checkpoint = dir.path / "whole.ckpt";
  tc.checkpoint_every = 10;
  const auto uninterrupted = train<B>(comm, tc);

  tc.steps = 12;  // interrupted after step 12 (written at 10 and at the last step)
  tc.checkpoint = dir.path / "part.ckpt";
  train<B>(comm, tc);
  if (comm.rank() == 0) fs::copy_file(dir.path / "part.ckpt", dir.path / "part_one.ckpt");
  comm.barrier();

  tc.steps = 30;
  tc.resume = true;
  const auto resumed = train<B>(comm, tc);
  CHECK(std::memcmp(resumed.data(), uninterrupted.data(), resumed.size() * sizeof(double)) == 0);
  CHECK(same_on_all_ranks(resumed));

  if (comm.rank() == 0) {  // the same checkpoint, resumed by one process
    ayf::single_process_communicator one;
    tc.checkpoint = dir.path / "part_one.ckpt";
    const auto alone = train<B>(one, tc);
    INFO("max relative difference " << max_relative_difference(alone, uninterrupted));
    CHECK(max_relative_difference(alone, uninterrupted) <= 1e-12);
  }
  comm.barrier();
}

TEST_CASE("ranks with different models fail with an error naming the rank and what differed",
          "[mpi][data_parallel]") {
  using B = ayf::eigen_backend<double>;
  ayf::mpi_communicator<B> comm;
  if (comm.size() < 2) return;
  const int last = comm.size() - 1;
  auto mc = tiny_mlp();
  if (comm.rank() == last) mc.width = 17;
  CHECK_THROWS_WITH(train<B>(comm, tiny_training(3), mc),
                    Contains("parameter count") && Contains("rank " + std::to_string(last)));
  mc = tiny_mlp();
  if (comm.rank() == last) mc.frequency_scale = 2.0;  // same parameter count, another model
  CHECK_THROWS_WITH(train<B>(comm, tiny_training(3), mc),
                    Contains("model config") && Contains("rank " + std::to_string(last)));
  // The first differing entry is named with both values.
  CHECK_THROWS_WITH(train<B>(comm, tiny_training(3), mc),
                    Contains("ranks disagree on 'model config': 'frequency_scale' is 1 on rank 0, 2 on rank " +
                             std::to_string(last)));
  {
    auto tc = tiny_training(3);
    if (comm.rank() == last) tc.settings["data"] = "b.csv";
    CHECK_THROWS_WITH(train<B>(comm, tc),
                      Contains("ranks disagree on 'training settings': 'data' is (none) on rank 0, b.csv on rank " +
                               std::to_string(last)));
  }
  auto tc = tiny_training(3);
  if (comm.rank() == last) tc.seed = 22;
  CHECK_THROWS_WITH(train<B>(comm, tc), Contains("trainer seed") && Contains("rank " + std::to_string(last)));
}

TEST_CASE("data-parallel training rejects shards that the rank count does not divide", "[mpi][data_parallel]") {
  using B = ayf::eigen_backend<double>;
  ayf::mpi_communicator<B> comm;
  if (comm.size() < 2) return;
  auto tc = tiny_training(2);
  tc.shards = static_cast<std::size_t>(comm.size()) + 1;
  CHECK_THROWS_WITH(train<B>(comm, tc), Contains("shards") && Contains("multiple of the rank count"));
}
