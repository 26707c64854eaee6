// minimal_distill: from your own 2-D data to a saved, reloaded and sampled flow-map student
// (docs/guide.md): a flow-matching teacher, an AYF-EMD student from it with EMA, an inference export
// reloaded without restating its config, 1/2/4-step samples to .npy and their sliced W2 to held-out data.
#include <CLI/CLI.hpp>
#include <cstdio>
#include <filesystem>
#include <iostream>

#include "ayf/analysis/metrics.hpp"
#include "ayf/backends/eigen/backend.hpp"
#include "ayf/data/toy2d.hpp"
#include "ayf/flow_map/parametrization.hpp"
#include "ayf/io/npy.hpp"
#include "ayf/nn/mlp.hpp"
#include "ayf/objectives/ayf_emd.hpp"
#include "ayf/objectives/flow_matching.hpp"
#include "ayf/samplers/flow_map.hpp"
#include "ayf/train/trainer.hpp"
#include "ayf_cli/options.hpp"

using B = ayf::eigen_backend<float>;
using mlp = ayf::nn::mlp_flow_model<B>;

int main(int argc, char** argv) try {
  std::filesystem::path out = "minimal_distill_out";
  std::uint64_t steps = 3000, seed = 0;
  CLI::App app("Distil a 4-step flow-map student from a flow-matching teacher on 2-D points");
  app.add_option("--out", out, "output directory");
  ayf_cli::add_count<std::uint64_t>(app, "--steps", steps, "training steps of the teacher and of the student", 1, 1000000);
  ayf_cli::add_count<std::uint64_t>(app, "--seed", seed, "seed of data, weights and training", 0, UINT64_MAX);
  CLI11_PARSE(app, argc, argv);
  ayf_cli::prepare_output_directory("--out", out);

  // Your data: any [rows, cols] points (here the checkerboard), one sampler for training, a held-out set for metrics.
  const ayf::data::points data = ayf::data::make_toy2d("checkerboard", 20000, seed);
  const ayf::data::points held_out = ayf::data::make_toy2d("checkerboard", 4000, seed, 20000);
  ayf::data::batch_sampler<B> sampler(data, {.batch = 512, .label_dropout = 0, .seed = seed});
  B::context ctx(seed);

  // 1. The teacher v(x, t): flow matching. Small-data defaults: lr 1e-3 with warmup, clipping.
  mlp teacher(ctx, {.dims = 2, .width = 256, .blocks = 3, .seed = seed});
  ayf::train::trainer_config tc{.steps = steps, .adam = {.learning_rate = 1e-3, .warmup_steps = 200, .clip_norm = 1},
                                .checkpoint = out / "teacher.safetensors", .progress_every = 500, .stage = "teacher"};
  ayf::flow_matching<B, mlp> fm;
  ayf::train::trainer<B, mlp>(ctx, teacher, tc).run(ctx, sampler, [&](auto& c, const auto& x, const auto* y, auto) {
    return fm.step(c, teacher, x, y);
  });

  // 2. The student F(x, t, s) starts as the teacher's Euler step; AYF-EMD with EMA. For small data:
  //    a short tangent warmup H and a wide interval sampler (the paper's ImageNet P_mean = -0.8 misses small steps).
  mlp student = mlp::from_teacher(ctx, teacher, {.dims = 2, .width = 256, .blocks = 3, .embed_s = true});
  ayf::ayf_emd_config ec{.pairs = {.p_mean = -1.5, .p_std = 1.5}, .warmup_iterations = 2000};
  ayf::ayf_emd<B, mlp> emd(ec);
  tc.adam.learning_rate = 2e-4;
  tc.ema_decay = 0.999;
  tc.checkpoint = out / "student_training.safetensors";
  tc.stage = "ayf_emd";
  ayf::train::trainer<B, mlp> distil(ctx, student, tc);
  distil.run(ctx, sampler, [&](auto& c, const auto& x, const auto* y, auto it) {
    return emd.step(c, student, teacher, x, y, static_cast<double>(it));
  });

  // 3. Export the EMA weights for inference; reload them without restating the config.
  ayf::train::export_inference(out / "student.safetensors", ctx, student, distil.ema());
  mlp reloaded = ayf::train::load_model<mlp>(out / "student.safetensors", ctx);

  // 4. Sample 1, 2 and 4 steps from noise; write .npy and report the sliced W2 to held-out data.
  auto flow = ayf::make_euler_flow_map<B>(reloaded);
  std::printf("steps,sliced_w2\n");
  for (std::size_t k : {1, 2, 4}) {
    B::tensor x = B::make(ctx, ayf::shape(4000, 2));
    B::randn(ctx, x);
    ayf::flow_map_sample<B>(ctx, flow, x, ayf::time_grid::uniform(k));
    const std::vector<float> v = B::to_host(ctx, x);
    ayf::io::write_npy(out / ("samples_" + std::to_string(k) + ".npy"), v, {4000, 2});
    const std::vector<double> vd(v.begin(), v.end());
    std::printf("%zu,%.4f\n", k, ayf::sliced_w2(ayf::host_samples(vd, 2), held_out));
  }
  return 0;
} catch (const std::exception& e) {
  std::cerr << "minimal_distill: " << e.what() << "\n";
  return 1;
}
