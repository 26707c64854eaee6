// ayf_mpi_failure: a data-parallel run in which one rank fails at a given step, for the mpi_failure ctest
// (failure_test.cmake). Trains a tiny MLP with flow matching (double, global batch 12, 6 shards) to
// STEPS, checkpointing to DIR/fm.safetensors every EVERY steps and resuming from it when it exists.
// Rank FAIL_RANK, at step FAIL_STEP (between the gradient all-reduce and the optimizer step):
//   kill   raise(SIGKILL): the process dies as from the out-of-memory killer
//   throw  throws ayf::error, which main turns into ayf::mpi_abort_job (the whole job ends, naming the rank)
//   none   nothing
// On success rank 0 prints the step it resumed from and writes DIR/final.bin (the parameters); with
// REFERENCE (another run's final.bin) it fails unless the parameters equal it to 1e-12 relative.
//   mpirun -np 2 ayf_mpi_failure DIR STEPS EVERY FAIL_RANK FAIL_STEP kill|throw|none [REFERENCE]
#include <mpi.h>

#include <algorithm>
#include <cmath>
#include <csignal>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <iterator>
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

using B = ayf::eigen_backend<double>;
using mlp_t = ayf::nn::mlp_flow_model<B>;
namespace fs = std::filesystem;

ayf::data::points toy_points() {
  ayf::data::points p;
  p.rows = 300;
  p.cols = 2;
  for (std::size_t r = 0; r < p.rows; ++r) {
    p.values.push_back(((r % 2 == 0) ? 2.0 : -2.0) + 0.3 * ayf::philox_normal(5, 2 * r));
    p.values.push_back(((r % 4 < 2) ? 1.5 : -1.5) + 0.3 * ayf::philox_normal(5, 2 * r + 1));
  }
  return p;
}

std::uint64_t count_argument(const char* text, const char* name) {
  char* end = nullptr;
  const unsigned long long v = std::strtoull(text, &end, 10);
  if (end == text || *end != '\0') throw ayf::error(ayf::detail::concat(name, ": expected a count, received '", text, "'"));
  return v;
}

int run(int argc, char** argv) {
  if (argc != 7 && argc != 8) {
    throw ayf::error("usage: ayf_mpi_failure DIR STEPS EVERY FAIL_RANK FAIL_STEP kill|throw|none [REFERENCE]");
  }
  const fs::path dir = argv[1];
  const std::uint64_t steps = count_argument(argv[2], "STEPS"), every = count_argument(argv[3], "EVERY");
  const int fail_rank = std::stoi(argv[4]);
  const std::uint64_t fail_step = count_argument(argv[5], "FAIL_STEP");
  const std::string how = argv[6];
  if (how != "kill" && how != "throw" && how != "none") {
    throw ayf::error(ayf::detail::concat("expected kill, throw or none, received '", how, "'"));
  }
  ayf::mpi_communicator<B> comm;
  if (comm.rank() == 0) fs::create_directories(dir);
  comm.barrier();

  B::context ctx(1);
  ayf::nn::mlp_config mc;
  mc.dims = 2;
  mc.width = 16;
  mc.blocks = 1;
  mc.frequencies = 4;
  mc.seed = 3;
  mlp_t model(ctx, mc);
  ayf::train::trainer_config tc;
  tc.steps = steps;
  tc.adam.learning_rate = 3e-3;
  tc.ema_decay = 0.9;
  tc.seed = 21;
  tc.shards = 6;
  tc.stage = "fm";
  tc.checkpoint = dir / "fm.safetensors";
  tc.checkpoint_every = every;
  tc.resume = true;
  tc.log = nullptr;
  ayf::data::batch_sampler<B> sampler(toy_points(), {12, 0.0, 13});
  ayf::train::trainer<B, mlp_t> trainer(ctx, model, tc);
  ayf::flow_matching<B, mlp_t> fm;
  std::uint64_t trainer_step = 0;
  const auto fail = [&](B::context&, ayf::nn::parameter_set<B>&) {
    if (comm.rank() != fail_rank || trainer_step != fail_step) return;
    if (how == "kill") std::raise(SIGKILL);
    if (how == "throw") throw ayf::error(ayf::detail::concat("injected failure at step ", fail_step));
  };
  const auto result = trainer.run_data_parallel(
      ctx, sampler, comm,
      [&](auto& c, const B::tensor& x, const B::tensor* y, std::uint64_t it) {
        trainer_step = it;
        return fm.step(c, model, x, y);
      },
      fail);
  if (comm.rank() != 0) return 0;
  const std::vector<double> theta = B::to_host(ctx, model.parameters().values);
  std::printf("ayf_mpi_failure: %d rank(s), %s at step %llu, finished step %llu\n", comm.size(),
              result.resumed ? "resumed" : "started", static_cast<unsigned long long>(result.first_step - 1),
              static_cast<unsigned long long>(result.last_step));
  {
    std::ofstream out(dir / "final.bin", std::ios::binary | std::ios::trunc);
    out.write(reinterpret_cast<const char*>(theta.data()), static_cast<std::streamsize>(theta.size() * sizeof(double)));
    if (!out) throw ayf::error(ayf::detail::concat("cannot write '", (dir / "final.bin").string(), "'"));
  }
  if (argc == 8) {
    std::ifstream in(argv[7], std::ios::binary);
    const std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    if (bytes.size() != theta.size() * sizeof(double)) {
      throw ayf::error(ayf::detail::concat("REFERENCE '", argv[7], "': expected ", theta.size() * sizeof(double),
                                           " bytes, received ", bytes.size()));
    }
    std::vector<double> reference(theta.size());
    std::copy(bytes.begin(), bytes.end(), reinterpret_cast<char*>(reference.data()));
    double scale = 0, diff = 0;
    for (std::size_t i = 0; i < theta.size(); ++i) {
      scale = std::max(scale, std::abs(reference[i]));
      diff = std::max(diff, std::abs(theta[i] - reference[i]));
    }
    std::printf("ayf_mpi_failure: max relative difference to the reference %.3g\n", diff / scale);
    if (!(diff <= 1e-12 * scale)) {
      throw ayf::error(ayf::detail::concat("the parameters differ from REFERENCE '", argv[7], "' by ", diff / scale,
                                           " relative (at most 1e-12 expected)"));
    }
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  ayf::mpi_session session(argc, argv);
  try {
    return run(argc, argv);
  } catch (const std::exception& e) {
    if (ayf::mpi_world_of().size > 1) ayf::mpi_abort_job("ayf_mpi_failure", e.what());
    std::cerr << "ayf_mpi_failure: error: " << e.what() << "\n";
    return 1;
  }
}
