// ayf_mpi_allreduce_timing: what data-parallel training of the U-Net student communicates per step.
// Prints the student's parameter count (unet_config defaults + embed_s + embed_lambda, float), the
// time of one gradient all-reduce of that size (deterministic and MPI_Allreduce modes, median of
// `repeats`) and of one flow-matching step (forward + backward) at `batch` rows on rank 0.
//   mpirun -np 2 ayf_mpi_allreduce_timing [batch=32] [repeats=50]
#include <mpi.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <vector>

#include "ayf/backends/eigen/backend.hpp"
#include "ayf/backends/mpi/communicator.hpp"
#include "ayf/data/batch_sampler.hpp"
#include "ayf/nn/unet.hpp"
#include "ayf/objectives/flow_matching.hpp"

namespace {

using B = ayf::eigen_backend<float>;
using unet_t = ayf::nn::unet_flow_model<B>;

template <class F>
double median_seconds(int repeats, F&& f) {
  std::vector<double> t;
  for (int k = 0; k < repeats; ++k) {
    MPI_Barrier(MPI_COMM_WORLD);
    const auto start = std::chrono::steady_clock::now();
    f();
    t.push_back(std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count());
  }
  std::sort(t.begin(), t.end());
  return t[t.size() / 2];
}

}  // namespace

int main(int argc, char** argv) {
  ayf::mpi_session session(argc, argv);
  const std::size_t batch = argc > 1 ? std::strtoul(argv[1], nullptr, 10) : 32;
  const int repeats = argc > 2 ? std::atoi(argv[2]) : 50;
  {
    ayf::mpi_communicator<B> comm;
    B::context ctx(1);
    ayf::nn::unet_config config;
    config.embed_s = true;
    config.embed_lambda = true;
    unet_t student(ctx, config);
    auto& params = student.parameters();
    const double bytes = static_cast<double>(params.size() * sizeof(float));
    const double deterministic = median_seconds(repeats, [&] { comm.all_reduce_sum(ctx, params.gradients); });
    comm.set_deterministic(false);
    const double fast = median_seconds(repeats, [&] { comm.all_reduce_sum(ctx, params.gradients); });
    double step = 0;
    if (comm.rank() == 0) {
      std::vector<float> images(batch * config.dims());
      for (std::size_t i = 0; i < images.size(); ++i) images[i] = static_cast<float>(ayf::philox_normal(1, i));
      ayf::data::batch_sampler<B> sampler(images, config.dims(), std::vector<int>{}, {batch, 0.0, 1});
      sampler.draw(ctx, 1);
      ayf::flow_matching<B, unet_t> fm;
      fm.step(ctx, student, sampler.x(), nullptr);  // warm-up (allocations)
      std::vector<double> t;
      for (int k = 0; k < 3; ++k) {
        const auto start = std::chrono::steady_clock::now();
        fm.step(ctx, student, sampler.x(), nullptr);
        t.push_back(std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count());
      }
      std::sort(t.begin(), t.end());
      step = t[1];
      std::printf("ranks %d\nparameters %zu\ngradient_bytes %.0f\nallreduce_deterministic_ms %.3f\n"
                  "allreduce_mpi_ms %.3f\nflow_matching_step_ms %.1f (batch %zu, forward + backward, rank 0)\n",
                  comm.size(), params.size(), bytes, 1e3 * deterministic, 1e3 * fast, 1e3 * step, batch);
    }
  }
  return 0;
}
