// image_distill/options.hpp: the program's options, its presets (smoke, quick, full) and their
// registration with CLI11. A preset sets every size and step count; an option given on the command
// line overrides the preset's value.
#pragma once

#include <CLI/CLI.hpp>

#include <cstddef>
#include <cstdint>
#include <limits>
#include <string>
#include <vector>

#include "ayf/core/error.hpp"
#include "ayf_cli/options.hpp"

namespace image_distill {

constexpr std::size_t max_channels = 1024, max_batch = 65536, max_samples = 1'000'000, max_grid_steps = 4096;
constexpr std::uint64_t max_training_steps = 100'000'000;

struct options {
  std::string out = "image_distill_out";
  std::string data_dir = "/usr/share/datasets/fashion-mnist";
  std::string images, labels;  ///< a user's .npy images (and labels) instead of Fashion-MNIST
  std::string backend = "eigen";
  std::string preset = "quick";
  std::uint64_t seed = 0;
  bool resume = false;

  // data
  std::size_t train_images = 0;  ///< 0: all
  std::size_t test_images = 0;   ///< 0: all
  // U-Nets (quick: sized so the whole run fits about 30 minutes of 2 CPU cores). The weak teacher of
  // autoguidance: the same width trained a quarter as long (a 4-channel one guided the students off course).
  std::size_t base = 8, weak_base = 8, groups = 4, blocks = 1;
  // training
  std::size_t batch = 64;  ///< the global batch when run as several processes
  std::size_t shards = 0;  ///< blocks of the batch with their own noise streams; 0: one per process
  std::uint64_t teacher_steps = 6000, weak_steps = 1500, student_steps = 600, classifier_steps = 800;
  double lr = 1e-3, student_lr = 3e-4, label_dropout = 0.1, teacher_ema = 0.999, student_ema = 0.999;
  // P_mean -1.8 (median interval 0.14) keeps the short jumps of 8- and 16-step sampling trained.
  double tangent_warmup = 150, lr_warmup = 100, pair_mean = -1.8, pair_std = 1.4, pair_diagonal = 0;
  std::vector<double> lambda_range{1.0, 2.0};
  std::size_t classifier_base = 16, classifier_features = 128;
  std::uint64_t checkpoint_every = 500, progress_every = 100;
  // sampling and metrics
  std::size_t eval_samples = 2000, chunk = 250;
  double inference_lambda = 1.5;
  std::vector<std::size_t> student_sample_steps{1, 2, 4, 8, 16}, teacher_sample_steps{4, 8, 16};
  std::vector<std::string> teacher_guidance{"autoguidance"};
  std::vector<std::string> methods{"ayf_emd", "ayf_lmd", "scd", "ayf_emd_cfg"};
  std::vector<double> gammas{0.5}, lambda_sweep{1.0, 1.25, 1.75, 2.0};
};

/// The preset's values (everything but the paths, seed, backend, resume, shards and preset).
inline void apply_preset(options& o, const std::string& preset) {
  options p;  // quick: the defaults above
  if (preset == "smoke") {
    p.train_images = 256;
    p.test_images = 200;
    p.base = 8;
    p.weak_base = 4;
    p.groups = 4;
    p.batch = 16;
    p.teacher_steps = 20;
    p.weak_steps = 10;
    p.student_steps = 6;
    p.classifier_steps = 20;
    p.classifier_base = 4;
    p.classifier_features = 16;
    p.teacher_ema = 0.9;
    p.student_ema = 0.9;
    p.tangent_warmup = 4;
    p.lr_warmup = 2;
    p.checkpoint_every = 5;
    p.progress_every = 10;
    p.eval_samples = 100;
    p.chunk = 50;
    p.student_sample_steps = {1, 2};
    p.teacher_sample_steps = {2};
    p.teacher_guidance = {"none", "autoguidance", "cfg"};
    p.gammas = {0.5};
    p.lambda_sweep = {1.0, 3.0};
  } else if (preset == "full") {
    p.base = 32;
    p.weak_base = 16;
    p.groups = 8;
    p.batch = 128;
    p.lr = 5e-4;
    p.teacher_steps = 30000;
    p.weak_steps = 6000;
    p.student_steps = 10000;
    p.classifier_steps = 6000;
    p.classifier_base = 32;
    p.tangent_warmup = 2000;
    p.lr_warmup = 500;
    p.checkpoint_every = 1000;
    p.progress_every = 500;
    p.eval_samples = 10000;
    p.chunk = 500;
    p.teacher_sample_steps = {4, 8, 16, 32, 64};
    p.teacher_guidance = {"none", "autoguidance", "cfg"};
    p.gammas = {0.5, 1.0};
    p.lambda_sweep = {1.0, 1.25, 1.75, 2.0, 2.5};
  }
  p.out = o.out;
  p.data_dir = o.data_dir;
  p.images = o.images;
  p.labels = o.labels;
  p.backend = o.backend;
  p.preset = preset;
  p.seed = o.seed;
  p.resume = o.resume;
  p.shards = o.shards;
  o = p;
}

/// The backends this build can run.
inline std::vector<std::string> backend_choices() { return {"eigen", "thrust", "cuda"}; }

/// Registers every option on `app`; the preset is applied first (a pre-parse of --preset), so the
/// values given on the command line override it. Returns the preset named on the command line.
inline std::string preset_of(int argc, char** argv) {
  std::string preset = "quick";
  for (int i = 1; i + 1 < argc; ++i) {
    if (std::string(argv[i]) == "--preset") preset = argv[i + 1];
  }
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (a.rfind("--preset=", 0) == 0) preset = a.substr(9);
  }
  return preset;
}

inline void add_options(CLI::App& app, options& o) {
  using ayf_cli::add_count, ayf_cli::add_number, ayf_cli::add_count_list, ayf_cli::add_number_list;
  using count = std::size_t;
  using steps = std::uint64_t;
  ayf_cli::add_choice(app, "--preset", o.preset,
                      "sizes and step counts: smoke (ctest, seconds), quick (<= 30 min on 2 cores), full (quality)",
                      {"smoke", "quick", "full"});
  ayf_cli::add_text(app, "--out", o.out, "output directory (checkpoints, CSV, grids, samples)");
  ayf_cli::add_text(app, "--data-dir", o.data_dir,
                    "directory of the Fashion-MNIST IDX files (gzip-compressed or not)");
  ayf_cli::add_text(app, "--images", o.images,
                    "a .npy of your own images [N, H, W] or [N, H, W, C] (uint8 in [0, 255] or floats in [-1, 1]) "
                    "instead of Fashion-MNIST");
  ayf_cli::add_text(app, "--labels", o.labels, "a .npy of int32 / int64 labels [N] for --images (class-conditional)");
  add_count(app, "--seed", o.seed, "seed of data order, initialisation, training and sampling", steps{0},
            std::numeric_limits<std::uint64_t>::max());
  ayf_cli::add_choice(app, "--backend", o.backend, "backend (thrust: Thrust on the host; cuda: needs a CUDA build)",
                      backend_choices());
  app.add_flag("--resume", o.resume, "load the checkpoints in --out: skip finished stages, continue unfinished ones");
  add_count(app, "--train-images", o.train_images, "training images used (0: all)", count{0}, max_samples);
  add_count(app, "--test-images", o.test_images, "test images used for accuracy and reference features (0: all)",
            count{0}, max_samples);
  add_count(app, "--base", o.base, "U-Net channels at full resolution (teacher and students)", count{1}, max_channels);
  add_count(app, "--weak-base", o.weak_base, "weak teacher's U-Net channels", count{1}, max_channels);
  add_count(app, "--groups", o.groups, "GroupNorm groups (divides --base, --weak-base and --classifier-base)",
            count{1}, max_channels);
  add_count(app, "--blocks", o.blocks, "residual blocks per U-Net level", count{1}, count{8});
  add_count(app, "--batch", o.batch, "batch size of every stage (the global batch when run as several processes)",
            count{1}, max_batch);
  add_count(app, "--shards", o.shards,
            "the batch is trained as this many blocks with their own noise streams, split over the processes: a "
            "run depends on it, not on the process count (0: one per process)",
            count{0}, max_batch);
  add_count(app, "--teacher-steps", o.teacher_steps, "flow-matching steps of the teacher", steps{1},
            max_training_steps);
  add_count(app, "--weak-steps", o.weak_steps, "flow-matching steps of the weak teacher", steps{1},
            max_training_steps);
  add_count(app, "--student-steps", o.student_steps, "distillation steps per student", steps{1}, max_training_steps);
  add_count(app, "--classifier-steps", o.classifier_steps, "training steps of the metric classifier", steps{1},
            max_training_steps);
  add_count(app, "--classifier-base", o.classifier_base, "classifier channels at full resolution", count{1},
            max_channels);
  add_count(app, "--classifier-features", o.classifier_features, "classifier feature width (the metrics' space)",
            count{2}, max_channels);
  add_number(app, "--lr", o.lr, "learning rate of the teachers and the classifier", {0.0, 1.0, true, false});
  add_number(app, "--student-lr", o.student_lr, "learning rate of the students", {0.0, 1.0, true, false});
  add_number(app, "--label-dropout", o.label_dropout, "probability a teacher's label is the null class (CFG)",
             {0.0, 1.0});
  add_number(app, "--teacher-ema", o.teacher_ema, "EMA decay of the teachers' weights (0: off)",
             {0.0, 1.0, false, true});
  add_number(app, "--student-ema", o.student_ema, "EMA decay of the students' weights (0: off)",
             {0.0, 1.0, false, true});
  add_number(app, "--tangent-warmup", o.tangent_warmup, "H of r = min(0.99, it / H) (0: no warmup)", {0.0, 1e9});
  add_number(app, "--lr-warmup", o.lr_warmup, "learning-rate warmup steps", {0.0, 1e9});
  add_number(app, "--pair-mean", o.pair_mean, "P_mean of the logit-normal interval t - s", {-10.0, 10.0});
  add_number(app, "--pair-std", o.pair_std, "P_std of the logit-normal interval t - s", {0.0, 10.0, true, false});
  add_number(app, "--pair-diagonal", o.pair_diagonal,
             "share of the students' pairs with s = t (flow matching toward the guided teacher)", {0.0, 1.0, false, true});
  add_number_list(app, "--lambda-range", o.lambda_range, "guidance scales lambda ~ U[min, max] seen by the students",
                  {0.0, 100.0}, 2, 2);
  add_number(app, "--inference-lambda", o.inference_lambda, "guidance scale at sampling", {0.0, 100.0});
  add_count(app, "--checkpoint-every", o.checkpoint_every, "steps between checkpoints", steps{1}, max_training_steps);
  add_count(app, "--progress-every", o.progress_every, "steps between progress lines (0: last only)", steps{0},
            max_training_steps);
  add_count(app, "--eval-samples", o.eval_samples, "generated samples per evaluation (>= 100: the 10 x 10 grid)",
            count{100}, max_samples);
  add_count(app, "--chunk", o.chunk, "samples per sampling batch (memory)", count{1}, max_batch);
  add_count_list(app, "--student-sample-steps", o.student_sample_steps, "students' sampling step counts", count{1},
                 max_grid_steps, 16);
  add_count_list(app, "--teacher-sample-steps", o.teacher_sample_steps, "teacher's Euler / Heun step counts",
                 count{1}, max_grid_steps, 16);
  ayf_cli::add_choice_list(app, "--teacher-guidance", o.teacher_guidance, "guidance of the teacher's rows",
                           {"none", "autoguidance", "cfg"});
  ayf_cli::add_choice_list(app, "--methods", o.methods, "students to distil (ayf_emd_cfg: AYF-EMD from the CFG teacher)",
                           {"ayf_emd", "ayf_lmd", "scd", "ayf_emd_cfg"});
  add_number_list(app, "--gammas", o.gammas, "gamma-sampling values for the AYF students (besides gamma = 0)",
                  {0.0, 1.0, true, false}, 1, 8);
  add_number_list(app, "--lambda-sweep", o.lambda_sweep, "guidance scales for the best student at 4 steps",
                  {0.0, 100.0}, 1, 16);
}

}  // namespace image_distill
