// toy2d: the paper's 2-D experiments end to end (spec §4.4-§4.5, §7, §8, §9, §12). Trains a flow-matching
// teacher and a weak teacher, distils flow-map students from the autoguided teacher with AYF-EMD,
// AYF-LMD, sCD and Shortcut (and AYF-EMD from a CFG teacher on labelled data), samples every model at
// 1..64 steps, and scores the samples by sliced W2 and MMD against held-out data. Writes toy2d.csv,
// scatter PNGs and a checkpoint per model (so --resume skips finished stages).
// Built with ayf::mpi it runs unchanged under `mpirun -np N` (docs/distributed.md): every stage trains
// data-parallel (trainer::run_data_parallel, --shards blocks of the global batch), rank 0 alone prints
// and writes the outputs, and an error on one rank ends the job naming that rank. SIGINT or SIGTERM
// stops it after the current training step, with that step's checkpoint, or before the next evaluation
// (exit status 128 + the signal).
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <functional>
#include <iomanip>
#include <iostream>
#include <limits>
#include <map>
#include <optional>
#include <set>
#include <sstream>
#include <string>
#include <string_view>
#include <vector>

#include "ayf/analysis/metrics.hpp"
#include "ayf/backends/eigen/backend.hpp"
#if AYF_TOY2D_THRUST
#include "ayf/backends/thrust/backend.hpp"
#endif
#include "ayf/data/batch_sampler.hpp"
#include "ayf/data/toy2d.hpp"
#include "ayf/flow_map/parametrization.hpp"
#include "ayf/guidance/guidance.hpp"
#include "ayf/io/atomic_write.hpp"
#include "ayf/io/csv.hpp"
#include "ayf/io/npy.hpp"
#include "ayf/io/png.hpp"
#include "ayf/nn/mlp.hpp"
#include "ayf/nn/optimizer.hpp"
#include "ayf/objectives/ayf_emd.hpp"
#include "ayf/objectives/ayf_lmd.hpp"
#include "ayf/objectives/flow_matching.hpp"
#include "ayf/objectives/shortcut.hpp"
#include "ayf/paths/time_grid.hpp"
#include "ayf/samplers/consistency.hpp"
#include "ayf/samplers/flow_map.hpp"
#include "ayf/samplers/ode.hpp"
#include "ayf/train/stop_signal.hpp"
#include "ayf/train/trainer.hpp"
#include "ayf_cli/options.hpp"
#include "ayf_cli/processes.hpp"

namespace {

using ayf::shape;
using ayf::detail::concat;
namespace fs = std::filesystem;

/// Bounds of the options (also shown by --help, documented in docs/toy2d.md).
constexpr std::size_t max_width = 2048, max_blocks = 16, max_batch = 16384;
constexpr std::uint64_t max_training_steps = 10'000'000;
constexpr std::size_t max_eval_samples = 200'000, max_mmd_samples = 20'000;
constexpr std::size_t max_sample_steps = 4096, max_sample_step_list = 16;
/// Labels of --data must be integers in [0, max_classes).
constexpr std::size_t max_classes = 1000;

struct options {
  std::string data = "checkerboard";
  std::string out = "toy2d_out";
  std::string backend = "eigen";
  std::uint64_t seed = 0;
  std::size_t width = 256, blocks = 2, weak_width = 64, batch = 512;
  std::size_t shards = 0;  // 0: the number of processes
  std::uint64_t teacher_steps = 6000, weak_steps = 1500, student_steps = 3000;
  std::size_t eval_samples = 8000, mmd_samples = 2000;
  double lr = 1e-3, student_lr = 2e-4, warmup = 2000, lr_warmup = 200;
  double label_dropout = 0.1, inference_lambda = 2.0, ema = 0.999;
  std::vector<double> lambda_range{1.0, 3.0};
  double pair_mean = -1.5, pair_std = 1.5;  // wider than ImageNet's -0.8, 1.0: 64-step intervals are trained too
  std::vector<std::string> methods{"ayf_emd", "ayf_lmd", "scd", "shortcut"};
  std::uint64_t checkpoint_every = 1000, progress_every = 500;
  std::vector<std::size_t> sample_steps{1, 2, 4, 8, 16, 64};
  bool resume = false;
};

using ayf_cli::option_error;
using ayf_cli::process_group;

struct dataset {
  ayf::data::points train, held_a, held_b;
  std::size_t classes = 0;
  std::string name;
};

ayf::data::points take_rows(const ayf::data::points& p, const std::vector<std::size_t>& rows) {
  ayf::data::points out;
  out.cols = p.cols;
  out.rows = rows.size();
  for (auto r : rows) {
    for (std::size_t c = 0; c < p.cols; ++c) out.values.push_back(p.at(r, c));
    if (p.has_labels()) out.labels.push_back(p.labels[r]);
  }
  return out;
}

/// Where row `r` of the data came from, for messages ("line 12", "row 7").
using row_origin = std::function<std::string(std::size_t)>;

/// Reads a CSV of points: with a header column named `label`, that column holds the labels (an
/// integer per row, else an error naming the line); otherwise every column is a coordinate.
ayf::data::points read_csv_data(const fs::path& path, row_origin& origin) {
  const std::string text = ayf::io::read_file(path, "toy2d --data");
  std::vector<std::size_t> lines;  // 1-based numbers of the non-blank lines
  bool labelled = false;
  for (std::size_t start = 0, number = 1; start < text.size(); ++number) {
    std::size_t end = text.find('\n', start);
    if (end == std::string::npos) end = text.size();
    const std::string line = text.substr(start, end - start);
    if (line.find_first_not_of(" \t\r") != std::string::npos) {
      if (lines.empty()) {
        std::stringstream fields(line);
        for (std::string f; std::getline(fields, f, ',');) {
          f.erase(0, f.find_first_not_of(" \t\r"));
          f.erase(f.find_last_not_of(" \t\r") + 1);
          labelled = labelled || f == "label" || f == "\"label\"";
        }
      }
      lines.push_back(number);
    }
    start = end + 1;
  }
  const auto all = ayf::io::parse_points_csv(text, path.string(),
                                             labelled ? ayf::io::csv_read_options{"label", ','} : ayf::io::csv_read_options{});
  // With a label column the first non-blank line is the header; row r is non-blank line r + 1.
  if (labelled && lines.size() == all.rows + 1) {
    origin = [lines](std::size_t r) { return concat("line ", lines[r + 1]); };
  }
  return all;
}

/// Labels must be integers in [0, max_classes) on every row of the file (before the split, so the
/// outcome does not depend on --seed); values must be finite. Returns the number of classes.
std::size_t check_data(const ayf::data::points& all, const std::string& source, const row_origin& origin,
                       const std::string& labels_source = {}) {
  for (std::size_t i = 0; i < all.values.size(); ++i) {
    if (!std::isfinite(all.values[i])) {
      throw ayf::error(concat("toy2d: --data '", source, "' ", origin(i / all.cols), ", column ", i % all.cols + 1,
                              ": expected a finite number, received ", all.values[i]));
    }
  }
  if (!all.has_labels()) return 0;
  int top = -1;
  for (std::size_t r = 0; r < all.labels.size(); ++r) {
    const int l = all.labels[r];
    if (l < 0 || static_cast<std::size_t>(l) >= max_classes) {
      throw ayf::error(concat("toy2d: --data '", source, "'", labels_source, " ", origin(r), ": expected a label in [0, ",
                              max_classes - 1, "] (at most ", max_classes, " classes), received ", l));
    }
    top = std::max(top, l);
  }
  return static_cast<std::size_t>(top) + 1;
}

dataset load_dataset(options o) {
  dataset d;
  if (o.data == "two_class") o.data = "two_class_mixture";
  const auto& names = ayf::data::toy2d_names;
  if (std::find(names.begin(), names.end(), o.data) != names.end()) {
    d.name = o.data;
    d.train = ayf::data::make_toy2d(o.data, 200000, o.seed, 0);
    d.held_a = ayf::data::make_toy2d(o.data, o.eval_samples, o.seed, std::uint64_t{1} << 40);
    d.held_b = ayf::data::make_toy2d(o.data, o.eval_samples, o.seed, std::uint64_t{2} << 40);
    const row_origin origin = [](std::size_t r) { return concat("row ", r); };
    d.classes = std::max({check_data(d.train, o.data, origin), check_data(d.held_a, o.data, origin),
                          check_data(d.held_b, o.data, origin)});
    return d;
  }
  const fs::path path(o.data);
  d.name = path.stem().string();
  ayf::data::points all;
  row_origin origin = [](std::size_t r) { return concat("row ", r); };
  std::string labels_source;
  if (path.extension() == ".npy") {
    fs::path labels = path;
    labels.replace_filename(path.stem().string() + "_labels.npy");
    const bool labelled = fs::exists(labels);
    try {
      all = ayf::io::read_points_npy(path, labelled ? labels : fs::path{});
    } catch (const ayf::error& e) {
      throw ayf::error(concat("toy2d: --data: ", e.what()));
    }
    if (labelled) labels_source = " (labels '" + labels.string() + "')";
  } else if (path.extension() == ".csv") {
    try {
      all = read_csv_data(path, origin);
    } catch (const ayf::error& e) {
      throw ayf::error(concat("toy2d: --data: ", e.what()));
    }
  } else {
    throw ayf::error("toy2d: --data expected one of checkerboard, eight_gaussians, two_moons, two_class or a "
                     ".csv / .npy path, received '" + o.data + "'");
  }
  if (all.rows < 50) throw ayf::error("toy2d: --data '" + o.data + "' has fewer than 50 rows");
  d.classes = check_data(all, o.data, origin, labels_source);
  // Shuffle (Philox), then two held-out sets of min(eval_samples, rows / 5) and the rest for training.
  const std::vector<std::size_t> order = ayf::data::shuffled_indices(all.rows, o.seed ^ 0x5eed);
  const std::size_t h = std::min(o.eval_samples, all.rows / 5);
  d.held_a = take_rows(all, {order.begin(), order.begin() + static_cast<std::ptrdiff_t>(h)});
  d.held_b = take_rows(all, {order.begin() + static_cast<std::ptrdiff_t>(h), order.begin() + static_cast<std::ptrdiff_t>(2 * h)});
  d.train = take_rows(all, {order.begin() + static_cast<std::ptrdiff_t>(2 * h), order.end()});
  return d;
}

std::uint64_t name_hash(const std::string& s) {
  std::uint64_t h = 1469598103934665603ull;
  for (char c : s) h = (h ^ static_cast<unsigned char>(c)) * 1099511628211ull;
  return h;
}

/// How a stage is named in messages and which options steer it.
struct stage_info {
  std::string name;   ///< checkpoint stem: teacher, weak, ayf_emd, ...
  std::string label;  ///< "teacher", "weak teacher", "student ayf_emd", ...
  std::string hint;   ///< the options to look at when it diverges
};

/// Trains `model` for `steps` with `step(ctx, x, labels_or_null, iteration)` (ayf::train::trainer),
/// checkpointing to DIR/checkpoints/<name>.safetensors; with --resume a finished stage is loaded and
/// skipped. Batches come from a batch_sampler over the training rows. The model leaves with the EMA
/// weights when there is an average (they are what is sampled).
template <class B, class Comm, class Step>
void train_stage(const options& o, Comm& comm, const dataset& d, const stage_info& stage,
                 ayf::nn::mlp_flow_model<B>& model, double lr, double dropout, std::uint64_t steps, double ema_decay,
                 Step&& step) {
  const std::string& name = stage.name;
  ayf::train::trainer_config tc;
  tc.steps = steps;
  tc.adam.learning_rate = lr;
  tc.adam.warmup_steps = static_cast<std::uint64_t>(o.lr_warmup);
  tc.adam.clip_norm = 1.0;
  tc.ema_decay = ema_decay;
  tc.checkpoint = fs::path(o.out) / "checkpoints" / (name + ".safetensors");
  tc.checkpoint_every = o.checkpoint_every;
  tc.resume = o.resume;
  tc.progress_every = o.progress_every;
  tc.stage = name;
  tc.label = stage.label;
  tc.hint = stage.hint;
  tc.seed = o.seed ^ name_hash(name);
  tc.shards = o.shards;
  tc.settings["steps"] = std::to_string(steps);
  tc.stop = ayf::train::stop_request_flag();  // SIGINT, SIGTERM: that step's checkpoint, then ayf_cli::stopped
  ayf::data::batch_sampler<B> sampler(d.train, {o.batch, dropout, o.seed ^ name_hash(name + ".data")});
  typename B::context ctx(tc.seed);
  ayf::train::trainer<B, ayf::nn::mlp_flow_model<B>> trainer(ctx, model, tc);
  ayf_cli::run_stoppable_stage(trainer, ctx, sampler, comm, step, stage.label);
  trainer.use_ema_weights(ctx);
}

struct result_row {
  std::string method, guidance;
  std::size_t steps = 0;
  double gamma = 0, swd = 0, mmd = 0;
};

template <class B>
ayf::data::points to_points(typename B::context& ctx, const typename B::tensor& x, const std::vector<int>& labels) {
  ayf::data::points p;
  const auto host = B::to_host(ctx, x);
  p.values.assign(host.begin(), host.end());
  p.rows = B::shape_of(x).rows;
  p.cols = B::shape_of(x).cols;
  p.labels = labels;
  return p;
}

ayf::data::points head(const ayf::data::points& p, std::size_t n) {
  ayf::data::points out = p;
  n = std::min(n, p.rows);
  out.rows = n;
  out.values.resize(n * p.cols);
  if (out.has_labels()) out.labels.resize(n);
  return out;
}

std::string format_gamma(double g) {
  std::ostringstream os;
  os << g;
  return os.str();
}

}  // namespace

/// The backends compiled into this program.
std::vector<std::string> backend_names() {
#if AYF_TOY2D_THRUST
  return {"eigen", "thrust"};
#else
  return {"eigen"};
#endif
}

template <class B>
int run(options o, process_group group);

int main(int argc, char** argv) {
  const auto processes = ayf_cli::start_processes(argc, argv, "toy2d");
  if (!processes) return 1;
  const process_group group = processes->group();
  CLI::App app{"toy2d: Align Your Flow on 2-D data: teacher, weak teacher, AYF-EMD / AYF-LMD / sCD / Shortcut "
               "students, sampled at 1..64 steps and scored by sliced W2 and MMD"};
  options o;
  using ayf_cli::add_count, ayf_cli::add_number;
  using count = std::size_t;
  using steps = std::uint64_t;
  ayf_cli::add_text(app, "--data", o.data, "checkerboard | eight_gaussians | two_moons | two_class (= two_class_mixture), "
                    "or a .csv (x0,x1[,label]) / .npy (+ <stem>_labels.npy) path; labels are integers in [0, " +
                    std::to_string(max_classes - 1) + "]");
  ayf_cli::add_text(app, "--out", o.out, "output directory");
  add_count(app, "--seed", o.seed, "seed of data, initialisation, training and sampling", steps{0},
            std::numeric_limits<std::uint64_t>::max());
  ayf_cli::add_choice(app, "--backend", o.backend, "backend", backend_names());
  add_count(app, "--width", o.width, "teacher / student hidden width", count{1}, max_width);
  add_count(app, "--blocks", o.blocks, "residual blocks", count{0}, max_blocks);
  add_count(app, "--weak-width", o.weak_width, "weak teacher hidden width", count{1}, max_width);
  add_count(app, "--batch", o.batch, "batch size (the global batch when run as several processes)", count{1},
            max_batch);
  add_count(app, "--shards", o.shards, "the batch is trained as this many blocks with their own noise streams, "
            "split over the processes: a run depends on it, not on the process count (0: one per process)",
            count{0}, max_batch);
  add_count(app, "--teacher-steps", o.teacher_steps, "flow-matching steps of the teacher", steps{1}, max_training_steps);
  add_count(app, "--weak-steps", o.weak_steps, "flow-matching steps of the weak teacher", steps{1}, max_training_steps);
  add_count(app, "--student-steps", o.student_steps, "distillation steps per student", steps{1}, max_training_steps);
  add_count(app, "--eval-samples", o.eval_samples, "samples per evaluation (and per held-out set)", count{2},
            max_eval_samples);
  add_count(app, "--mmd-samples", o.mmd_samples, "samples used for MMD (O(n^2))", count{2}, max_mmd_samples);
  add_number(app, "--lr", o.lr, "teacher learning rate", {0.0, 1.0, true, false});
  add_number(app, "--student-lr", o.student_lr, "student learning rate", {0.0, 1.0, true, false});
  add_number(app, "--tangent-warmup", o.warmup, "H of r = min(0.99, it / H) (spec §8.2; 0: no warmup)", {0.0, 1e9});
  add_number(app, "--inference-lambda", o.inference_lambda, "guidance scale at sampling", {0.0, 100.0});
  ayf_cli::add_number_list(app, "--lambda-range", o.lambda_range,
                           "guidance scales lambda ~ U[min, max] seen by the students in training", {0.0, 100.0}, 2, 2);
  add_number(app, "--pair-mean", o.pair_mean, "P_mean of the logit-normal interval t - s (spec §8.3)", {-10.0, 10.0});
  add_number(app, "--pair-std", o.pair_std, "P_std of the logit-normal interval t - s", {0.0, 10.0, true, false});
  add_number(app, "--ema", o.ema, "EMA decay of the students' weights, which are sampled (0: off)",
             {0.0, 1.0, false, true});
  ayf_cli::add_choice_list(app, "--methods", o.methods, "students to distil", {"ayf_emd", "ayf_lmd", "scd", "shortcut"});
  ayf_cli::add_count_list(app, "--sample-steps", o.sample_steps, "sampling step counts", count{1}, max_sample_steps,
                          max_sample_step_list);
  add_count(app, "--checkpoint-every", o.checkpoint_every, "steps between checkpoints", steps{1}, max_training_steps);
  add_count(app, "--progress-every", o.progress_every, "steps between progress lines (0: none)", steps{0},
            max_training_steps);
  app.add_flag("--resume", o.resume, "load checkpoints in --out and skip finished stages");
  if (const auto rc = ayf_cli::parse(app, argc, argv, group)) return *rc;
#if AYF_TOY2D_THRUST
  if (o.backend == "thrust") return run<ayf::thrust_backend<float>>(o, group);
#endif
  return run<ayf::eigen_backend<float>>(o, group);
}

/// Everything after option parsing, on backend B.
template <class B>
int run(options o, process_group group) {
  using model_t = ayf::nn::mlp_flow_model<B>;
  try {
    const auto t_start = std::chrono::steady_clock::now();
    ayf::train::stop_on_signals();  // SIGINT / SIGTERM: checkpoint, then stop (a second one ends the process)
    if (!(o.lambda_range[0] <= o.lambda_range[1])) {
      throw option_error(concat("toy2d: --lambda-range expected MIN <= MAX, received ", o.lambda_range[0], " ",
                                o.lambda_range[1]));
    }
    o.shards = ayf_cli::resolve_shards(o.shards, o.batch, group);
    ayf_cli::job_communicator<B> comm;
    // The output directory first: a bad --out fails before any work. Rank 0 alone writes.
    if (group.root()) {
      ayf_cli::prepare_output_directory("--out", o.out);
      ayf_cli::prepare_output_directory("--out", fs::path(o.out) / "png");
      ayf_cli::prepare_output_directory("--out", fs::path(o.out) / "checkpoints");
    }
    const std::vector<std::size_t>& step_counts = o.sample_steps;
    const dataset d = load_dataset(o);
    const bool labelled = d.classes > 0;
    if (group.root()) std::cerr << "toy2d: " << d.name << ", " << d.train.rows << " training rows, " << d.train.cols << " dims, "
              << (labelled ? std::to_string(d.classes) + " classes (class-conditional, 10% label dropout)"
                           : std::string("unlabelled (unconditional; CFG rows skipped)"))
              << "\n";

    typename B::context ctx(o.seed);
    ayf::nn::mlp_config tc;
    tc.dims = d.train.cols;
    tc.width = o.width;
    tc.blocks = o.blocks;
    tc.classes = d.classes;
    tc.seed = o.seed + 1;
    ayf::nn::mlp_config wc = tc;
    wc.width = o.weak_width;
    wc.seed = o.seed + 2;
    model_t teacher(ctx, tc), weak(ctx, wc);
    const double dropout = labelled ? o.label_dropout : 0.0;
    {
      ayf::flow_matching<B, model_t> fm;
      train_stage(o, comm, d, {"teacher", "teacher", concat("--lr (now ", ayf_cli::number_text(o.lr), ") and the scale of --data")}, teacher, o.lr, dropout, o.teacher_steps, 0.0,
                  [&](auto& c, const B::tensor& x, const B::tensor* y, double) { return fm.step(c, teacher, x, y); });
    }
    {
      ayf::flow_matching<B, model_t> fm;
      train_stage(o, comm, d, {"weak", "weak teacher", concat("--lr (now ", ayf_cli::number_text(o.lr), ") and the scale of --data")}, weak, o.lr, dropout, o.weak_steps, 0.0,
                  [&](auto& c, const B::tensor& x, const B::tensor* y, double) { return fm.step(c, weak, x, y); });
    }
    auto guided = ayf::make_autoguided_velocity<B>(teacher, weak, o.inference_lambda);
    auto cfg_guided = ayf::make_classifier_free_guided_velocity<B>(teacher, o.inference_lambda);

    ayf::nn::mlp_config sc = tc;
    sc.embed_s = true;
    sc.embed_lambda = true;
    ayf::ayf_emd_config ec;
    ec.warmup_iterations = o.warmup;
    ec.pairs.lambda_min = o.lambda_range[0];
    ec.pairs.lambda_max = o.lambda_range[1];
    ec.pairs.p_mean = o.pair_mean;
    ec.pairs.p_std = o.pair_std;
    ayf::ayf_emd_config scd_config = ec;
    scd_config.pairs.consistency = true;

    const std::set<std::string> methods(o.methods.begin(), o.methods.end());
    auto student = [&](const std::string& name) {
      return stage_info{name, "student " + name,
                        concat("--student-lr (now ", ayf_cli::number_text(o.student_lr), "), --lambda-range, --tangent-warmup, --pair-mean, "
                               "--pair-std and the teachers")};
    };
    std::map<std::string, model_t> students;
    auto make_student = [&](const std::string& name) -> model_t& {
      return students.emplace(name, model_t::from_teacher(ctx, teacher, sc)).first->second;
    };
    if (methods.contains("ayf_emd")) {
      auto& s = make_student("ayf_emd");
      ayf::ayf_emd<B, model_t> obj(ec);
      train_stage(o, comm, d, student("ayf_emd"), s, o.student_lr, 0.0, o.student_steps, o.ema,
                  [&](auto& c, const B::tensor& x, const B::tensor* y, double it) { return obj.step(c, s, guided, x, y, it); });
    }
    if (methods.contains("ayf_lmd")) {
      auto& s = make_student("ayf_lmd");
      ayf::ayf_lmd<B, model_t> obj(ec);
      train_stage(o, comm, d, student("ayf_lmd"), s, o.student_lr, 0.0, o.student_steps, o.ema,
                  [&](auto& c, const B::tensor& x, const B::tensor* y, double it) { return obj.step(c, s, guided, x, y, it); });
    }
    if (methods.contains("scd")) {
      auto& s = make_student("scd");
      ayf::ayf_emd<B, model_t> obj(scd_config);
      train_stage(o, comm, d, student("scd"), s, o.student_lr, 0.0, o.student_steps, o.ema,
                  [&](auto& c, const B::tensor& x, const B::tensor* y, double it) { return obj.step(c, s, guided, x, y, it); });
    }
    if (methods.contains("shortcut")) {
      auto& s = make_student("shortcut");
      ayf::shortcut_config shc;
      shc.pairs = ec.pairs;
      ayf::shortcut<B, model_t> obj(shc);
      train_stage(o, comm, d, student("shortcut"), s, o.student_lr, 0.0, o.student_steps, o.ema,
                  [&](auto& c, const B::tensor& x, const B::tensor* y, double it) { return obj.step(c, s, guided, x, y, it); });
    }
    if (labelled && methods.contains("ayf_emd")) {
      auto& s = make_student("ayf_emd_cfg");
      ayf::ayf_emd<B, model_t> obj(ec);
      train_stage(o, comm, d, student("ayf_emd_cfg"), s, o.student_lr, 0.0, o.student_steps, o.ema,
                  [&](auto& c, const B::tensor& x, const B::tensor* y, double it) { return obj.step(c, s, cfg_guided, x, y, it); });
    }
    const double train_seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t_start).count();
    if (!group.root()) return 0;  // the models are the same on every rank: rank 0 evaluates and writes

    // ---- evaluation ------------------------------------------------------------------------
    const std::size_t n = d.held_a.rows;
    const auto& labels_host = d.held_a.labels;
    typename B::tensor labels_tensor, lambda_tensor;
    if (labelled) {
      std::vector<float> lv(labels_host.begin(), labels_host.end());
      labels_tensor = B::from_host(ctx, lv, shape::vector(n));
    }
    lambda_tensor = B::from_host(ctx, std::vector<float>(n, static_cast<float>(o.inference_lambda)), shape::vector(n));
    const ayf::condition<B> cond{labelled ? &labels_tensor : nullptr, &lambda_tensor};
    const ayf::data::points mmd_ref = head(d.held_a, o.mmd_samples);
    const double floor_swd = ayf::sliced_w2(d.held_a, d.held_b);
    const double floor_mmd = ayf::mmd_rbf(mmd_ref, head(d.held_b, o.mmd_samples));
    if (!std::isfinite(floor_swd) || !std::isfinite(floor_mmd)) {
      throw ayf::error(concat("toy2d: the noise floor of --data '", o.data, "' is not finite (sliced W2 ", floor_swd,
                              ", MMD ", floor_mmd, ")"));
    }
    std::vector<result_row> rows;
    ayf::io::scatter_options so;
    {
      double lo = 1e300, hi = -1e300;
      for (double v : d.held_a.values) lo = std::min(lo, v), hi = std::max(hi, v);
      const double m = 0.15 * (hi - lo);
      so.range = std::array<double, 4>{lo - m, hi + m, lo - m, hi + m};
    }
    const bool plot = d.train.cols == 2;
    if (plot) ayf::io::write_scatter_png(fs::path(o.out) / "png" / "data.png", head(d.held_a, 4000), so);

    auto evaluate = [&](const std::string& method, const std::string& guidance, std::size_t steps, double gamma,
                        const std::function<void(typename B::context&, typename B::tensor&)>& sample) {
      if (ayf::train::stop_requested()) {
        throw ayf_cli::stopped("while sampling (training is done: --resume loads the models and samples again)");
      }
      typename B::context ectx(o.seed ^ 0xe7a1);  // the same noise for every method (common random numbers)
      typename B::tensor x = B::make(ectx, shape(n, d.train.cols));
      B::randn(ectx, x);
      sample(ectx, x);
      const ayf::data::points p = to_points<B>(ectx, x, labels_host);
      const std::string what = concat("toy2d: ", method, " with guidance ", guidance, " at ", steps, " sampling steps",
                                      gamma > 0 ? " (gamma " + format_gamma(gamma) + ")" : std::string());
      const std::string advice = concat("; look at --inference-lambda (now ", ayf_cli::number_text(o.inference_lambda),
                                        ") and the training options of that model");
      for (std::size_t i = 0; i < p.values.size(); ++i) {
        if (!std::isfinite(p.values[i])) {
          throw ayf::error(concat(what, ": sample ", i / p.cols, " is not finite (", p.values[i], ")", advice));
        }
      }
      result_row r{method, guidance, steps, gamma, 0, 0};
      r.swd = ayf::sliced_w2(p, d.held_a);
      r.mmd = ayf::mmd_rbf(head(p, o.mmd_samples), mmd_ref);
      if (!std::isfinite(r.swd) || !std::isfinite(r.mmd)) {
        throw ayf::error(concat(what, ": a metric is not finite (sliced W2 ", r.swd, ", MMD ", r.mmd, ")", advice));
      }
      rows.push_back(r);
      std::fprintf(stderr, "eval %-14s %-13s steps %3zu gamma %-4s swd %.4f mmd %.5f\n", method.c_str(),
                   guidance.c_str(), steps, format_gamma(gamma).c_str(), r.swd, r.mmd);
      if (plot) {
        std::string file = method + "_" + guidance + "_" + std::to_string(steps);
        if (gamma > 0) {
          file += "_g";
          file += format_gamma(gamma);
        }
        ayf::io::write_scatter_png(fs::path(o.out) / "png" / (file + ".png"), head(p, 4000), so);
      }
    };

    for (std::size_t k : step_counts) {
      const auto grid = ayf::time_grid::uniform(k);
      const ayf::condition<B> plain{cond.labels, nullptr};
      evaluate("teacher_euler", "none", k, 0, [&](auto& c, B::tensor& x) { ayf::euler_sample<B>(c, teacher, x, grid, plain); });
      evaluate("teacher_heun", "none", k, 0, [&](auto& c, B::tensor& x) { ayf::heun_sample<B>(c, teacher, x, grid, plain); });
      evaluate("teacher_euler", "autoguidance", k, 0, [&](auto& c, B::tensor& x) { ayf::euler_sample<B>(c, guided, x, grid, cond); });
      evaluate("teacher_heun", "autoguidance", k, 0, [&](auto& c, B::tensor& x) { ayf::heun_sample<B>(c, guided, x, grid, cond); });
      if (labelled) {
        evaluate("teacher_euler", "cfg", k, 0, [&](auto& c, B::tensor& x) { ayf::euler_sample<B>(c, cfg_guided, x, grid, cond); });
        evaluate("teacher_heun", "cfg", k, 0, [&](auto& c, B::tensor& x) { ayf::heun_sample<B>(c, cfg_guided, x, grid, cond); });
      }
      for (const std::string name : {"ayf_emd", "ayf_lmd", "ayf_emd_cfg"}) {
        if (!students.contains(name)) continue;
        auto flow = ayf::make_euler_flow_map<B>(students.at(name));
        const std::string method = name == "ayf_emd_cfg" ? "ayf_emd" : name;
        const std::string guidance = name == "ayf_emd_cfg" ? "cfg" : "autoguidance";
        evaluate(method, guidance, k, 0, [&](auto& c, B::tensor& x) { ayf::flow_map_sample<B>(c, flow, x, grid, cond); });
        for (double g : {0.5, 1.0}) {
          evaluate(method, guidance, k, g, [&](auto& c, B::tensor& x) { ayf::gamma_sample<B>(c, flow, x, grid, g, cond); });
        }
      }
      if (students.contains("scd")) {
        auto flow = ayf::make_euler_flow_map<B>(students.at("scd"));
        auto cm = ayf::as_consistency_model<B>(flow);
        evaluate("scd", "autoguidance", k, 1.0, [&](auto& c, B::tensor& x) { ayf::consistency_multistep_sample<B>(c, cm, x, grid, cond); });
      }
      if (students.contains("shortcut")) {
        auto flow = ayf::make_euler_flow_map<B>(students.at("shortcut"));
        evaluate("shortcut", "autoguidance", k, 0, [&](auto& c, B::tensor& x) { ayf::flow_map_sample<B>(c, flow, x, grid, cond); });
      }
    }

    // ---- outputs ---------------------------------------------------------------------------
    if (rows.empty()) throw ayf::error("toy2d: no results to write (check --sample-steps and --methods)");
    std::ostringstream csv;
    csv << "dataset,method,guidance,steps,gamma,swd,mmd\n";
    csv.precision(6);
    for (const auto& r : rows) {
      csv << d.name << ',' << r.method << ',' << r.guidance << ',' << r.steps << ',' << format_gamma(r.gamma) << ','
          << r.swd << ',' << r.mmd << '\n';
    }
    ayf::io::write_file_atomically(fs::path(o.out) / "toy2d.csv", csv.str());

    std::map<std::string, std::map<std::size_t, double>> table;  // "method/guidance/gamma" -> steps -> swd
    std::vector<std::string> order;
    for (const auto& r : rows) {
      std::string key = r.method + " " + r.guidance;
      if (r.method != "scd") {
        key += " g=";
        key += format_gamma(r.gamma);
      }
      if (!table.contains(key)) order.push_back(key);
      table[key][r.steps] = r.swd;
    }
    std::printf("\ntoy2d %s: sliced W2 (noise floor %.4f; MMD floor %.5f)\n%-34s", d.name.c_str(), floor_swd, floor_mmd, "method guidance gamma");
    for (auto k : step_counts) std::printf("%9zu", k);
    std::printf("\n");
    for (const auto& key : order) {
      std::printf("%-34s", key.c_str());
      for (auto k : step_counts) {
        const auto it = table[key].find(k);
        if (it == table[key].end()) std::printf("%9s", "-");
        else std::printf("%9.4f", it->second);
      }
      std::printf("\n");
    }
    auto swd_of = [&](const std::string& key, std::size_t k) {
      const auto it = table.find(key);
      if (it == table.end()) return std::nan("");
      const auto jt = it->second.find(k);
      return jt == it->second.end() ? std::nan("") : jt->second;
    };
    const double emd4 = swd_of("ayf_emd autoguidance g=0", 4), heun64 = swd_of("teacher_heun autoguidance g=0", 64),
                 euler4 = swd_of("teacher_euler autoguidance g=0", 4);
    double best = 1e300;
    for (auto k : step_counts) best = std::min(best, swd_of("ayf_emd autoguidance g=0", k));
    // A check whose rows were not computed (--sample-steps, --methods) is printed as n/a.
    auto shown = [](double v, int digits) { return std::isfinite(v) ? concat(std::fixed, std::setprecision(digits), v) : std::string("n/a"); };
    std::printf("\nchecks: AYF-EMD 4 steps / teacher Heun 64 (autoguided) = %s (target <= 1.5); teacher Euler 4 = %s "
                "vs AYF-EMD 4 = %s; AYF-EMD 16 / best = %s, 64 / best = %s (target <= 1.15)\n",
                shown(emd4 / heun64, 3).c_str(), shown(euler4, 4).c_str(), shown(emd4, 4).c_str(),
                shown(swd_of("ayf_emd autoguidance g=0", 16) / best, 3).c_str(),
                shown(swd_of("ayf_emd autoguidance g=0", 64) / best, 3).c_str());
    const double total = std::chrono::duration<double>(std::chrono::steady_clock::now() - t_start).count();
    std::printf("time: training %.1f s, total %.1f s; wrote %s\n", train_seconds, total,
                (fs::path(o.out) / "toy2d.csv").string().c_str());
    return 0;
  } catch (const std::exception& e) {
    return ayf_cli::report_error("toy2d", e, group);
  }
}
