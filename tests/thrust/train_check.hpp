// tests/thrust/train_check.hpp: a short training run written once over the backend: flow matching of
// the MLP on the eight-Gaussians toy data with Adam, the same data, seeds and steps on every backend.
// train_check.cpp runs it on the Thrust backend (TBB: ayf_train_check; CUDA: ayf_train_check_cuda)
// and compares with the Eigen backend (train_reference.cpp, compiled by the host compiler).
#pragma once

#include <chrono>
#include <cstddef>
#include <vector>

#include "ayf/data/toy2d.hpp"
#include "ayf/nn/mlp.hpp"
#include "ayf/nn/optimizer.hpp"
#include "ayf/objectives/flow_matching.hpp"

namespace ayf_train_check {

struct run_config {
  std::size_t steps = 300;
  std::size_t batch = 1024;
  std::size_t width = 128;
};

struct run_result {
  std::vector<double> losses;  ///< the flow-matching loss of every step
  double seconds = 0;   ///< wall time of steps [timed_from, steps) (each loss reaches the host: waits for the device)
  std::size_t timed_from = 0;  ///< steps / 10: the first steps (allocations, cuBLAS set-up) are not timed
  double zero_velocity_loss = 0;  ///< the loss of F = 0 on these data: E|eps|^2 + E|x0|^2 = D + mean |x0|^2
};

/// Trains a velocity MLP (2 residual blocks) from seed 1 with lr 2e-3; step k sees toy points
/// [k * batch, (k + 1) * batch) of eight_gaussians(seed 11), drawn on the host before the clock starts.
template <class B>
run_result train(const run_config& config) {
  using scalar = typename B::scalar;
  using model_type = ayf::nn::mlp_flow_model<B>;
  typename B::context ctx(5);
  ayf::nn::mlp_config mc;
  mc.dims = 2;
  mc.width = config.width;
  mc.blocks = 2;
  mc.seed = 1;
  model_type model(ctx, mc);
  ayf::nn::adam_config ac;
  ac.learning_rate = 2e-3;
  ayf::nn::adam<B> optimizer(ctx, model.parameters(), ac);
  ayf::flow_matching<B, model_type> objective;

  const ayf::data::points data = ayf::data::eight_gaussians(config.steps * config.batch, 11);
  std::vector<typename B::tensor> batches;
  batches.reserve(config.steps);
  for (std::size_t k = 0; k < config.steps; ++k) {
    const auto first = data.values.begin() + static_cast<std::ptrdiff_t>(2 * k * config.batch);
    std::vector<scalar> values(first, first + static_cast<std::ptrdiff_t>(2 * config.batch));
    batches.push_back(B::from_host(ctx, values, ayf::shape(config.batch, 2)));
  }

  run_result result;
  result.losses.reserve(config.steps);
  double squares = 0;
  for (double v : data.values) squares += v * v;
  result.zero_velocity_loss = 2.0 + squares / static_cast<double>(data.rows);
  result.timed_from = config.steps / 10;
  auto start = std::chrono::steady_clock::now();
  for (std::size_t k = 0; k < config.steps; ++k) {
    if (k == result.timed_from) start = std::chrono::steady_clock::now();
    model.parameters().zero_gradients(ctx);
    result.losses.push_back(objective.step(ctx, model, batches[k], nullptr).loss);
    optimizer.step(ctx, model.parameters());
  }
  result.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  return result;
}

/// train<eigen_backend<float or double>>(config), compiled in train_reference.cpp.
run_result eigen_train(const run_config& config, bool single_precision);

}  // namespace ayf_train_check
