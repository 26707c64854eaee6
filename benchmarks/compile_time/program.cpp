// A typical user program, the subject of the compile-time measurement (measure.sh, docs/compiled.md):
// trains an MLP teacher and a weak teacher by flow matching (Adam, EMA), distils AYF-EMD and AYF-LMD
// students from the autoguided teacher, samples them at 1, 2 and 4 steps and writes sliced W2 and MMD
// against held-out data to metrics.csv. With -DAYF_USE_COMPILED it includes the explicit
// instantiations' declarations (ayf/backends/eigen/compiled.hpp) and links ayf::compiled.
//   program [training steps (default 200)] [output directory (default .)]
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#if AYF_USE_COMPILED
#include "ayf/backends/eigen/compiled.hpp"
#else
#include "ayf/backends/eigen/backend.hpp"
#include "ayf/guidance/guidance.hpp"
#include "ayf/nn/mlp.hpp"
#include "ayf/nn/optimizer.hpp"
#include "ayf/objectives/ayf_emd.hpp"
#include "ayf/objectives/ayf_lmd.hpp"
#include "ayf/objectives/flow_matching.hpp"
#include "ayf/flow_map/parametrization.hpp"
#include "ayf/samplers/flow_map.hpp"
#endif
#include "ayf/analysis/metrics.hpp"
#include "ayf/data/toy2d.hpp"

using B = ayf::eigen_backend<float>;
using model = ayf::nn::mlp_flow_model<B>;

namespace {

B::tensor to_tensor(B::context& ctx, const ayf::data::points& p) {
  return B::from_host(ctx, std::vector<float>(p.values.begin(), p.values.end()), ayf::shape(p.rows, p.cols));
}

/// Flow matching with Adam; the EMA weights are copied into the model at the end.
void train_teacher(B::context& ctx, model& m, int steps, std::size_t batch) {
  ayf::flow_matching<B, model> objective;
  ayf::nn::adam<B> adam(ctx, m.parameters(), {.learning_rate = 1e-3, .warmup_steps = 50});
  ayf::nn::exponential_moving_average<B> ema(ctx, m.parameters(), 0.99);
  for (int k = 0; k < steps; ++k) {
    const auto x0 = to_tensor(ctx, ayf::data::checkerboard(batch, 1, static_cast<std::uint64_t>(k) * batch));
    B::fill(ctx, m.parameters().gradients, 0.0f);
    objective.step(ctx, m, x0, nullptr);
    adam.step(ctx, m.parameters());
    ema.update(ctx, m.parameters());
  }
  B::copy(ctx, ema.average(), m.parameters().values);
}

/// Distils a student with Objective (ayf_emd or ayf_lmd) from `teacher`.
template <class Objective, class Teacher>
void distil(B::context& ctx, model& student, Teacher& teacher, int steps, std::size_t batch) {
  Objective objective({.pairs = {.p_mean = -1.5, .p_std = 1.5}, .warmup_iterations = 100});
  ayf::nn::adam<B> adam(ctx, student.parameters(), {.learning_rate = 2e-4});
  for (int k = 0; k < steps; ++k) {
    const auto x0 = to_tensor(ctx, ayf::data::checkerboard(batch, 2, static_cast<std::uint64_t>(k) * batch));
    B::fill(ctx, student.parameters().gradients, 0.0f);
    objective.step(ctx, student, teacher, x0, nullptr, k);
    adam.step(ctx, student.parameters());
  }
}

/// Samples `n` points at `steps` flow-map steps.
ayf::data::points sample(B::context& ctx, model& m, std::size_t n, std::size_t steps) {
  auto x = B::make(ctx, ayf::shape(n, 2));
  B::randn(ctx, x);
  auto flow = ayf::make_euler_flow_map<B>(m);
  ayf::flow_map_sample<B>(ctx, flow, x, ayf::time_grid::uniform(steps));
  ayf::data::points p;
  const std::vector<float> values = B::to_host(ctx, x);
  p.values.assign(values.begin(), values.end());
  p.rows = n;
  p.cols = 2;
  return p;
}

}  // namespace

int main(int argc, char** argv) {
  const int steps = argc > 1 ? std::stoi(argv[1]) : 200;
  const std::filesystem::path out = argc > 2 ? argv[2] : ".";
  const std::size_t batch = 256, eval = 1000;
  B::context ctx(0);
  const ayf::data::points reference = ayf::data::checkerboard(eval, 99);

  model teacher(ctx, {.dims = 2, .width = 128, .blocks = 2, .seed = 1});
  model weak(ctx, {.dims = 2, .width = 32, .blocks = 2, .seed = 2});
  train_teacher(ctx, teacher, steps, batch);
  train_teacher(ctx, weak, steps / 4, batch);
  auto guided = ayf::make_autoguided_velocity<B>(teacher, weak, 2.0);

  const ayf::nn::mlp_config student_config{.dims = 2, .width = 128, .blocks = 2, .embed_s = true, .embed_lambda = true};
  model emd_student = model::from_teacher(ctx, teacher, student_config);
  model lmd_student = model::from_teacher(ctx, teacher, student_config);
  distil<ayf::ayf_emd<B, model>>(ctx, emd_student, guided, steps, batch);
  distil<ayf::ayf_lmd<B, model>>(ctx, lmd_student, teacher, steps, batch);

  std::ofstream csv(out / "metrics.csv");
  csv << "model,steps,sliced_w2,mmd\n";
  const std::vector<std::pair<const char*, model*>> models{{"ayf_emd", &emd_student}, {"ayf_lmd", &lmd_student}};
  for (const auto& [name, m] : models) {
    for (const std::size_t n : {1, 2, 4}) {
      const ayf::data::points x = sample(ctx, *m, eval, n);
      const double w2 = ayf::sliced_w2(x, reference), mmd = ayf::mmd_rbf(x, reference);
      csv << name << ',' << n << ',' << w2 << ',' << mmd << '\n';
      std::printf("%s %zu steps: sliced W2 %.4f, MMD %.5f\n", name, n, w2, mmd);
    }
  }
  return csv.good() ? 0 : 1;
}
