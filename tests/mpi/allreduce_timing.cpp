// ayf_mpi_allreduce_timing: what data-parallel training of the U-Net student communicates per step.
// Prints the student's parameter count (unet_config defaults + embed_s + embed_lambda, float), the
// time of one gradient all-reduce of that size (deterministic and MPI_Allreduce modes, median of
// `repeats`) and of one flow-matching step (forward + backward) at `batch` rows on rank 0. With
// `steps` > 0 it also times `steps` data-parallel training steps (trainer::run_data_parallel, global
// batch `batch` in 2 shards, deterministic all-reduce) after one untimed step: the throughput at this
// rank count, to compare between `-np 1` and `-np 2`.
//   mpirun -np 2 ayf_mpi_allreduce_timing [batch=32] [repeats=50] [steps=0]
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
#include "ayf/train/trainer.hpp"

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
  const int train_steps = argc > 3 ? std::atoi(argv[3]) : 0;
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
    if (train_steps > 0) {
      comm.set_deterministic(true);
      unet_t model(ctx, config);
      std::vector<float> images(4 * batch * config.dims());
      for (std::size_t i = 0; i < images.size(); ++i) images[i] = static_cast<float>(ayf::philox_normal(2, i));
      ayf::data::batch_sampler<B> sampler(images, config.dims(), std::vector<int>{}, {batch, 0.0, 1});
      ayf::flow_matching<B, unet_t> fm;
      ayf::train::trainer_config tc;
      tc.steps = 1 + static_cast<std::uint64_t>(train_steps);
      tc.shards = 2;
      tc.log = nullptr;
      ayf::train::trainer<B, unet_t> trainer(ctx, model, tc);
      auto step = [&](auto& c, const B::tensor& x, const B::tensor* y, std::uint64_t) { return fm.step(c, model, x, y); };
      std::chrono::steady_clock::time_point start;
      bool timing = false;
      const auto result = trainer.run_data_parallel(ctx, sampler, comm, step, [&](B::context&, auto&) {
        if (!timing) {  // step 1's hook, after its all-reduce: the timed steps follow
          comm.barrier();
          start = std::chrono::steady_clock::now();
          timing = true;
        }
      });
      comm.barrier();
      const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
      if (comm.rank() == 0) {
        std::printf("data_parallel_steps %llu (global batch %zu, 2 shards, %d rank(s))\n"
                    "data_parallel_s_per_step %.3f\ndata_parallel_rows_per_s %.2f\n",
                    static_cast<unsigned long long>(result.last_step - 1), batch, comm.size(),
                    seconds / train_steps, static_cast<double>(batch) * train_steps / seconds);
      }
    }
  }
  return 0;
}
