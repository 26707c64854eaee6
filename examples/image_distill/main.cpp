// image_distill: image distillation end to end (docs/image-distill.md). On Fashion-MNIST (or a user's
// .npy images) trains a class-conditional U-Net teacher by flow matching (10% null labels, EMA), a
// smaller weak teacher for autoguidance, flow-map students from the teacher (AYF-EMD and AYF-LMD from
// the autoguided teacher with lambda as an input, the sCD baseline, AYF-EMD from the CFG teacher) and
// a classifier for the metrics; samples every model over step counts and scores the samples by the
// classifier's features (Frechet distance, precision / recall, class accuracy). Writes
// image_distill.csv, 10 x 10 grids, the samples as .npy and a checkpoint per stage (--resume).
// Built with ayf::mpi it runs unchanged under `mpirun -np N` (docs/distributed.md): every stage trains
// data-parallel (trainer::run_data_parallel, --shards blocks of the global batch), rank 0 alone prints,
// samples, scores and writes the outputs, and an error on one rank ends the job naming that rank.
// SIGINT or SIGTERM (Ctrl-C) stops it after the current training step with that step's checkpoint, or
// between sampling chunks, and it exits with 128 + the signal; a second signal ends it at once.
#include <sys/resource.h>

#include <algorithm>
#include <charconv>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <iostream>
#include <map>
#include <set>
#include <sstream>
#include <string>
#include <string_view>
#include <vector>

#include "ayf/backends/eigen/backend.hpp"
#if AYF_IMAGE_DISTILL_THRUST || AYF_IMAGE_DISTILL_CUDA
#include "ayf/backends/thrust/backend.hpp"
#endif
#if AYF_IMAGE_DISTILL_CUDA
#include <cuda_runtime_api.h>
#endif
#include "ayf/backends/zlib/fashion_mnist.hpp"
#include "ayf/core/hash.hpp"
#include "ayf/data/batch_sampler.hpp"
#include "ayf/data/images.hpp"
#include "ayf/flow_map/parametrization.hpp"
#include "ayf/guidance/guidance.hpp"
#include "ayf/io/atomic_write.hpp"
#include "ayf/nn/classifier.hpp"
#include "ayf/nn/unet.hpp"
#include "ayf/objectives/ayf_emd.hpp"
#include "ayf/objectives/ayf_lmd.hpp"
#include "ayf/objectives/cross_entropy.hpp"
#include "ayf/objectives/flow_matching.hpp"
#include "ayf/paths/time_grid.hpp"
#include "ayf/samplers/consistency.hpp"
#include "ayf/samplers/flow_map.hpp"
#include "ayf/samplers/ode.hpp"
#include "ayf/train/stop_signal.hpp"
#include "ayf/train/trainer.hpp"
#include "ayf_cli/processes.hpp"
#include "evaluation.hpp"
#include "options.hpp"

namespace {

using ayf::shape;
using ayf::detail::concat;
using ayf_cli::option_error;
using ayf_cli::process_group;
using image_distill::options;
namespace fs = std::filesystem;

std::uint64_t name_hash(const std::string& s) {
  std::uint64_t h = 1469598103934665603ull;
  for (char c : s) h = (h ^ static_cast<unsigned char>(c)) * 1099511628211ull;
  return h;
}

std::string number(double x) {
  std::ostringstream os;
  os << x;
  return os.str();
}

double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

/// The data: a training split, a test split (reference of the metrics) and the image geometry.
struct dataset {
  ayf::data::images train, test;
  std::size_t classes = 0;
  std::string name;
};

ayf::data::images take(const ayf::data::images& d, const std::vector<std::size_t>& rows) {
  ayf::data::images out;
  out.height = d.height;
  out.width = d.width;
  out.channels = d.channels;
  out.count = rows.size();
  out.values.reserve(rows.size() * d.dims());
  for (std::size_t r : rows) {
    out.values.insert(out.values.end(), d.image(r), d.image(r) + d.dims());
    if (d.has_labels()) out.labels.push_back(d.labels[r]);
  }
  return out;
}

/// The first `n` images (n = 0 or n >= count: all).
ayf::data::images first(const ayf::data::images& d, std::size_t n) {
  if (n == 0 || n >= d.count) return d;
  std::vector<std::size_t> rows(n);
  for (std::size_t i = 0; i < n; ++i) rows[i] = i;
  return take(d, rows);
}

dataset load_data(const options& o) {
  dataset d;
  if (!o.labels.empty() && o.images.empty()) throw option_error(concat("--labels '", o.labels, "' needs --images"));
  if (!o.images.empty()) {
    ayf::data::images all;
    try {
      all = ayf::data::read_images_npy(o.images, o.labels);
    } catch (const ayf::error& e) {
      throw ayf::error(concat(o.labels.empty() ? "--images: " : "--images / --labels: ", e.what()));
    }
    if (all.count < 60) throw ayf::error(concat("--images '", o.images, "': expected at least 60 images, received ", all.count));
    if (all.height % 4 != 0 || all.width % 4 != 0) {
      throw ayf::error(concat("--images '", o.images, "': expected a height and width divisible by 4, received ",
                              all.height, " x ", all.width));
    }
    // Shuffled; min(10000, N / 6) images held out as the test split.
    const std::vector<std::size_t> order = ayf::data::shuffled_indices(all.count, o.seed ^ 0x5eed);
    const std::size_t h = std::min<std::size_t>(10000, all.count / 6);
    d.test = take(all, {order.begin(), order.begin() + static_cast<std::ptrdiff_t>(h)});
    d.train = take(all, {order.begin() + static_cast<std::ptrdiff_t>(h), order.end()});
    d.name = fs::path(o.images).stem().string();
    if (all.has_labels()) {
      d.classes = static_cast<std::size_t>(*std::max_element(all.labels.begin(), all.labels.end())) + 1;
      if (d.classes > 1000) {
        throw ayf::error(concat("--labels '", o.labels, "': expected labels below 1000, received ", d.classes - 1));
      }
    }
  } else {
    try {
      d.train = ayf::data::load_fashion_mnist(ayf::data::fashion_mnist_split::train, o.data_dir);
      d.test = ayf::data::load_fashion_mnist(ayf::data::fashion_mnist_split::test, o.data_dir);
    } catch (const ayf::error& e) {
      throw ayf::error(concat("--data-dir '", o.data_dir, "': ", e.what()));
    }
    d.classes = 10;
    d.name = "fashion-mnist";
  }
  if (o.train_images > 0 && o.train_images < d.train.count) {
    // A class-balanced-in-expectation subset: a Philox shuffle of the training split.
    const std::vector<std::size_t> order = ayf::data::shuffled_indices(d.train.count, o.seed ^ 0x7a1d);
    d.train = take(d.train, {order.begin(), order.begin() + static_cast<std::ptrdiff_t>(o.train_images)});
  }
  d.test = first(d.test, o.test_images);
  return d;
}

/// One row of image_distill.csv.
struct result_row {
  std::string method, guidance;
  double lambda = 1;
  std::size_t steps = 0;
  double gamma = 0;
  std::size_t nfe = 0;
  image_distill::scores s;
};

std::string format_metric(double v) {
  if (!std::isfinite(v)) return "nan";
  char buffer[64];
  std::snprintf(buffer, sizeof buffer, "%.6g", v);
  return buffer;
}

/// The trainer settings of one stage.
ayf::train::trainer_config stage_config(const options& o, const std::string& name, const std::string& label,
                                        const std::string& hint, std::uint64_t steps, double lr, double ema) {
  ayf::train::trainer_config tc;
  tc.steps = steps;
  tc.adam.learning_rate = lr;
  tc.adam.warmup_steps = static_cast<std::uint64_t>(o.lr_warmup);
  tc.adam.clip_norm = 1.0;
  tc.ema_decay = ema;
  tc.checkpoint = fs::path(o.out) / "checkpoints" / (name + ".safetensors");
  tc.checkpoint_every = o.checkpoint_every;
  tc.resume = o.resume;
  tc.progress_every = o.progress_every;
  tc.stage = name;
  tc.label = label;
  tc.hint = hint;
  tc.seed = o.seed ^ name_hash(name);
  tc.shards = o.shards;
  tc.settings["steps"] = std::to_string(steps);
  tc.settings["lr"] = number(lr);
  return tc;
}

/// Trains `model` with `step` under the trainer (atomic checkpoints, resume) on every rank of `comm`
/// (data-parallel, --batch the global batch), then keeps the EMA weights. A stop request (SIGINT,
/// SIGTERM) ends the stage after the step it came in, with that step's checkpoint: ayf_cli::stopped.
template <class B, class Comm, class Model, class Step>
void train_stage(const options& o, Comm& comm, const ayf::data::images& data, ayf::train::trainer_config tc,
                 double dropout, Model& model, Step&& step) {
  const std::string label = tc.label.empty() ? tc.stage : tc.label;
  ayf::data::batch_sampler<B> sampler(data, {o.batch, dropout, o.seed ^ name_hash(tc.stage + ".data")});
  typename B::context ctx(tc.seed);
  tc.stop = ayf::train::stop_request_flag();
  ayf::train::trainer<B, Model> trainer(ctx, model, tc);
  ayf_cli::run_stoppable_stage(trainer, ctx, sampler, comm, step, label);
  trainer.use_ema_weights(ctx);
}

std::size_t peak_memory_mib() {
  rusage usage{};
  getrusage(RUSAGE_SELF, &usage);
  return static_cast<std::size_t>(usage.ru_maxrss) / 1024;  // ru_maxrss is in KiB on Linux
}

}  // namespace

#if AYF_IMAGE_DISTILL_CUDA
namespace image_distill {
/// Empty when a CUDA device is usable, else why not.
std::string cuda_device_problem() {
  int devices = 0;
  const cudaError_t status = cudaGetDeviceCount(&devices);
  if (status != cudaSuccess) return concat("no usable CUDA device (", cudaGetErrorString(status), ")");
  if (devices == 0) return "no CUDA device found";
  return {};
}
}  // namespace image_distill
#endif

template <class B>
int run(options o, process_group group);

int main(int argc, char** argv) {
  const auto processes = ayf_cli::start_processes(argc, argv, "image_distill");
  if (!processes) return 1;
  const process_group group = processes->group();
  options o;
  const std::string preset = image_distill::preset_of(argc, argv);
  if (preset == "smoke" || preset == "quick" || preset == "full") image_distill::apply_preset(o, preset);
  CLI::App app{"image_distill: image distillation on Fashion-MNIST (or your .npy images): a class-conditional U-Net "
               "teacher, a weak teacher for autoguidance, AYF-EMD / AYF-LMD / sCD students, sampled at 1..64 steps "
               "and scored by an independent classifier's features (FD, precision / recall, class accuracy)"};
  image_distill::add_options(app, o);
  if (const auto rc = ayf_cli::parse(app, argc, argv, group)) return *rc;
  if (o.backend == "thrust") {
#if AYF_IMAGE_DISTILL_THRUST
    return run<ayf::thrust_backend<float>>(o, group);
#elif AYF_IMAGE_DISTILL_CUDA
    std::cerr << "image_distill: error: --backend thrust: this program (image_distill_cuda) runs Thrust on CUDA; use "
                 "--backend cuda, or image_distill for Thrust on the host, received 'thrust'\n";
    return 1;
#else
    if (group.root()) {
      std::cerr << "image_distill: error: --backend thrust: this build has no Thrust backend (configure with "
                   "Thrust found, e.g. -DAYF_REQUIRE_THRUST=ON), received 'thrust'\n";
    }
    return 1;
#endif
  }
  if (o.backend == "cuda") {
#if AYF_IMAGE_DISTILL_CUDA
    if (const std::string problem = image_distill::cuda_device_problem(); !problem.empty()) {
      std::cerr << "image_distill: error: --backend cuda: " << problem << "\n";
      return 1;
    }
    return run<ayf::thrust_backend<float>>(o, group);  // compiled by nvcc: Thrust's CUDA system, cuBLAS
#else
    if (group.root()) {
      std::cerr << "image_distill: error: --backend cuda: this program was compiled without CUDA; use "
                   "image_distill_cuda (built with -DAYF_ENABLE_CUDA=ON on a machine with nvcc), received 'cuda'\n";
    }
    return 1;
#endif
  }
  return run<ayf::eigen_backend<float>>(o, group);
}

/// Everything after option parsing, on backend B, as rank `group.rank` of the job.
template <class B>
int run(options o, process_group group) {
  using unet = ayf::nn::unet_flow_model<B>;
  using classifier = ayf::nn::image_classifier<B>;
  using tensor = typename B::tensor;
  using S = typename B::scalar;
  try {
    const auto t_start = std::chrono::steady_clock::now();
    ayf::train::stop_on_signals();  // SIGINT / SIGTERM: checkpoint, then stop (a second one ends the process)
    if (!(o.lambda_range[0] <= o.lambda_range[1])) {
      throw option_error(concat("--lambda-range expected MIN <= MAX, received ", o.lambda_range[0], " ", o.lambda_range[1]));
    }
    for (const auto& [name, value] : {std::pair{"--base", o.base}, {"--weak-base", o.weak_base}, {"--classifier-base", o.classifier_base}}) {
      if (value % o.groups != 0) {
        throw option_error(concat(name, " expected a multiple of --groups = ", o.groups, ", received ", value));
      }
    }
    o.shards = ayf_cli::resolve_shards(o.shards, o.batch, group);
    ayf_cli::job_communicator<B> comm;
    // The output directory first: a bad --out fails before any work. Rank 0 alone writes.
    const fs::path out(o.out);
    if (group.root()) {
      ayf_cli::prepare_output_directory("--out", out);
      for (const char* sub : {"checkpoints", "grids", "samples"}) ayf_cli::prepare_output_directory("--out", out / sub);
    }

    const dataset d = load_data(o);
    const bool labelled = d.classes > 0;
    const image_distill::geometry geo{d.train.height, d.train.width, d.train.channels};
    std::ostream silent(nullptr);
    std::ostream& log = group.root() ? std::cerr : silent;
    log << "image_distill: " << d.name << ", " << d.train.count << " training and " << d.test.count
              << " test images of " << geo.height << " x " << geo.width << " x " << geo.channels << ", "
              << (labelled ? concat(d.classes, " classes") : std::string("unlabelled (no classifier, no CFG)"))
              << "; preset " << o.preset << ", backend " << o.backend << "\n";

    typename B::context ctx(o.seed);
    // ---- teachers ----------------------------------------------------------------------------
    ayf::nn::unet_config tc;
    tc.height = geo.height;
    tc.width = geo.width;
    tc.channels = geo.channels;
    tc.base_channels = o.base;
    tc.channel_multipliers = {1, 2};
    tc.blocks_per_level = o.blocks;
    tc.groups = o.groups;
    tc.classes = d.classes;
    tc.seed = o.seed + 1;
    ayf::nn::unet_config wc = tc;
    wc.base_channels = o.weak_base;
    wc.seed = o.seed + 2;
    unet teacher(ctx, tc), weak(ctx, wc);
    log << "image_distill: teacher U-Net " << teacher.size() << " parameters, weak teacher " << weak.size() << "\n";
    const double dropout = labelled ? o.label_dropout : 0.0;
    const std::string teacher_hint = concat("--lr (now ", number(o.lr), ") and --batch");
    {
      ayf::flow_matching<B, unet> fm;
      train_stage<B>(o, comm, d.train, stage_config(o, "teacher", "teacher", teacher_hint, o.teacher_steps, o.lr, o.teacher_ema),
                     dropout, teacher, [&](auto& c, const tensor& x, const tensor* y, auto) { return fm.step(c, teacher, x, y); });
      train_stage<B>(o, comm, d.train, stage_config(o, "weak", "weak teacher", teacher_hint, o.weak_steps, o.lr, o.teacher_ema),
                     dropout, weak, [&](auto& c, const tensor& x, const tensor* y, auto) { return fm.step(c, weak, x, y); });
    }
    auto guided = ayf::make_autoguided_velocity<B>(teacher, weak, o.inference_lambda);
    auto cfg_guided = ayf::make_classifier_free_guided_velocity<B>(teacher, o.inference_lambda);

    // ---- students ----------------------------------------------------------------------------
    ayf::nn::unet_config sc = tc;
    sc.embed_s = true;
    sc.embed_lambda = true;
    ayf::ayf_emd_config ec;
    ec.warmup_iterations = o.tangent_warmup;
    ec.pairs.lambda_min = o.lambda_range[0];
    ec.pairs.lambda_max = o.lambda_range[1];
    ec.pairs.p_mean = o.pair_mean;
    ec.pairs.p_std = o.pair_std;
    ec.pairs.diagonal_fraction = o.pair_diagonal;
    ayf::ayf_emd_config scd_config = ec;
    scd_config.pairs.consistency = true;
    scd_config.pairs.diagonal_fraction = 0;  // s = 0 always
    const std::set<std::string> methods(o.methods.begin(), o.methods.end());
    const std::string student_hint = concat("--student-lr (now ", number(o.student_lr),
                                            "), --lambda-range, --tangent-warmup, --pair-mean, --pair-std, --pair-diagonal");
    std::map<std::string, unet> students;
    auto train_student = [&](const std::string& name, auto&& step) {
      unet& s = students.emplace(name, unet::from_teacher(ctx, teacher, sc)).first->second;
      ayf::train::trainer_config stage = stage_config(o, name, "student " + name, student_hint, o.student_steps, o.student_lr, o.student_ema);
      const ayf::pair_sampler_config& pairs = name == "scd" ? scd_config.pairs : ec.pairs;
      stage.settings["pair_mean"] = number(pairs.p_mean);
      stage.settings["pair_std"] = number(pairs.p_std);
      stage.settings["pair_diagonal"] = number(pairs.diagonal_fraction);
      stage.settings["lambda_range"] = concat(number(pairs.lambda_min), ",", number(pairs.lambda_max));
      stage.settings["tangent_warmup"] = number(ec.warmup_iterations);
      train_stage<B>(o, comm, d.train, stage, 0.0, s, [&](auto& c, const tensor& x, const tensor* y, auto it) { return step(c, s, x, y, static_cast<double>(it)); });
    };
    if (methods.contains("ayf_emd")) {
      ayf::ayf_emd<B, unet> obj(ec);
      train_student("ayf_emd", [&](auto& c, unet& s, const tensor& x, const tensor* y, double it) { return obj.step(c, s, guided, x, y, it); });
    }
    if (methods.contains("ayf_lmd")) {
      ayf::ayf_lmd<B, unet> obj(ec);
      train_student("ayf_lmd", [&](auto& c, unet& s, const tensor& x, const tensor* y, double it) { return obj.step(c, s, guided, x, y, it); });
    }
    if (methods.contains("scd")) {
      ayf::ayf_emd<B, unet> obj(scd_config);
      train_student("scd", [&](auto& c, unet& s, const tensor& x, const tensor* y, double it) { return obj.step(c, s, guided, x, y, it); });
    }
    if (labelled && methods.contains("ayf_emd_cfg")) {
      ayf::ayf_emd<B, unet> obj(ec);
      train_student("ayf_emd_cfg", [&](auto& c, unet& s, const tensor& x, const tensor* y, double it) { return obj.step(c, s, cfg_guided, x, y, it); });
    }

    // ---- the metric classifier (trained once, cached in --out) -------------------------------
    std::optional<classifier> net;
    image_distill::reference ref;
    const std::size_t n = o.eval_samples;
    if (labelled) {
      ayf::nn::classifier_config cc{.height = geo.height, .width = geo.width, .channels = geo.channels,
                                    .base_channels = o.classifier_base, .groups = o.groups,
                                    .features = o.classifier_features, .classes = d.classes, .seed = o.seed + 3};
      net.emplace(ctx, cc);
      auto ct = stage_config(o, "classifier", "classifier", concat("--lr (now ", number(o.lr), ")"), o.classifier_steps, o.lr, 0.0);
      ct.resume = true;  // a cached classifier is reused
      for (const auto& [k, v] : cc.entries()) ct.settings[k] = v;
      tensor logits, grad;
      typename classifier::activations saved;
      train_stage<B>(o, comm, d.train, ct, 0.0, *net, [&](auto& c, const tensor& x, const tensor* y, auto) {
        net->forward(c, x, logits, saved);
        const auto r = ayf::softmax_cross_entropy<B>(c, logits, *y, &grad);
        net->backward(c, saved, grad);
        return ayf::step_statistics{r.loss, 0.0};
      });
    }
    // The models are the same on every rank: rank 0 samples, scores and writes; the others are done.
    if (!group.root()) return 0;
    if (net) {
      ref.all = image_distill::extract_features<B>(ctx, *net, d.test.values, d.test.count, o.chunk);
      const double accuracy = image_distill::class_accuracy(ref.all, d.test.labels);
      std::printf("classifier: test accuracy %.4f on %zu images (%zu parameters)\n", accuracy, d.test.count, net->size());
      ref.subset = image_distill::head(ref.all, n);
      // The noise floor: real training images scored like a generated set of the same size.
      const ayf::data::images floor_images = first(d.train, n);
      const auto floor_features = image_distill::extract_features<B>(ctx, *net, floor_images.values, floor_images.count, o.chunk);
      const auto floor = image_distill::score(floor_features, ref, floor_images.labels);
      std::printf("noise floor (%zu training images vs the test split): fd %s precision %s recall %s class_accuracy %s\n",
                  floor_images.count, format_metric(floor.fd).c_str(), format_metric(floor.precision).c_str(),
                  format_metric(floor.recall).c_str(), format_metric(floor.class_accuracy).c_str());
      std::fflush(stdout);
    }
    const double train_seconds = seconds_since(t_start);

    // ---- sampling and scoring ----------------------------------------------------------------
    // Every evaluation starts from the same noise and labels (class i % classes for sample i).
    std::vector<std::int64_t> labels(n);
    for (std::size_t i = 0; i < n; ++i) labels[i] = labelled ? static_cast<std::int64_t>(i % d.classes) : 0;
    std::vector<S> noise;
    {
      typename B::context nctx(o.seed ^ 0xe7a1);
      tensor z = B::make(nctx, shape(n, geo.dims()));
      B::randn(nctx, z);
      noise = B::to_host(nctx, z);
    }
    const std::size_t grid_rows = labelled ? std::min<std::size_t>(d.classes, 10) : 10;
    std::vector<result_row> rows;
    using sampler_fn = std::function<void(typename B::context&, tensor&, const ayf::condition<B>&)>;
    struct job {
      std::string method, guidance;
      double lambda;
      std::size_t steps;
      double gamma;
      std::size_t nfe;
      sampler_fn sample;
      bool outputs;  // grid and .npy
    };
    std::vector<job> jobs;
    const std::vector<std::string> teacher_guidance = [&] {
      std::vector<std::string> g;
      for (const auto& x : o.teacher_guidance) {
        if (x != "cfg" || labelled) g.push_back(x);
      }
      return g;
    }();
    for (std::size_t k : o.teacher_sample_steps) {
      const auto grid = ayf::time_grid::uniform(k);
      for (const auto& g : teacher_guidance) {
        const std::size_t m = g == "none" ? 1 : 2;
        const double lambda = g == "none" ? 1.0 : o.inference_lambda;
        jobs.push_back({"teacher_euler", g, lambda, k, 0, k * m, [&, grid, g](auto& c, tensor& x, const auto& cond) {
                          if (g == "none") ayf::euler_sample<B>(c, teacher, x, grid, ayf::condition<B>{cond.labels, nullptr});
                          else if (g == "autoguidance") ayf::euler_sample<B>(c, guided, x, grid, cond);
                          else ayf::euler_sample<B>(c, cfg_guided, x, grid, cond);
                        }, true});
        jobs.push_back({"teacher_heun", g, lambda, k, 0, (2 * k - 1) * m, [&, grid, g](auto& c, tensor& x, const auto& cond) {
                          if (g == "none") ayf::heun_sample<B>(c, teacher, x, grid, ayf::condition<B>{cond.labels, nullptr});
                          else if (g == "autoguidance") ayf::heun_sample<B>(c, guided, x, grid, cond);
                          else ayf::heun_sample<B>(c, cfg_guided, x, grid, cond);
                        }, true});
      }
    }
    auto student_jobs = [&](const std::string& name, std::size_t k, double lambda, bool outputs, bool gammas) {
      const auto grid = ayf::time_grid::uniform(k);
      const std::string method = name == "ayf_emd_cfg" ? "ayf_emd" : name;
      const std::string guidance = name == "ayf_emd_cfg" ? "cfg" : "autoguidance";
      unet& s = students.at(name);
      if (name == "scd") {
        jobs.push_back({method, guidance, lambda, k, 1.0, k, [&s, grid](auto& c, tensor& x, const auto& cond) {
                          auto flow = ayf::make_euler_flow_map<B>(s);
                          auto cm = ayf::as_consistency_model<B>(flow);
                          ayf::consistency_multistep_sample<B>(c, cm, x, grid, cond);
                        }, outputs});
        return;
      }
      jobs.push_back({method, guidance, lambda, k, 0.0, k, [&s, grid](auto& c, tensor& x, const auto& cond) {
                        auto flow = ayf::make_euler_flow_map<B>(s);
                        ayf::flow_map_sample<B>(c, flow, x, grid, cond);
                      }, outputs});
      if (!gammas || k == 1) return;  // one step: gamma-sampling is the plain jump
      for (double gamma : o.gammas) {
        jobs.push_back({method, guidance, lambda, k, gamma, k, [&s, grid, gamma](auto& c, tensor& x, const auto& cond) {
                          auto flow = ayf::make_euler_flow_map<B>(s);
                          ayf::gamma_sample<B>(c, flow, x, grid, gamma, cond);
                        }, outputs});
      }
    };
    for (std::size_t k : o.student_sample_steps) {
      for (const std::string name : {"ayf_emd", "ayf_lmd", "scd", "ayf_emd_cfg"}) {
        if (students.contains(name)) student_jobs(name, k, o.inference_lambda, true, name != "scd");
      }
    }

    // ---- finished evaluations (DIR/evaluations.csv) ------------------------------------------
    // Every finished evaluation is written there with a fingerprint of what its numbers depend on: the
    // sampled models' parameters, the classifier's and its reference features, the noise, N, --chunk and
    // the backend. With --resume an evaluation whose fingerprint matches, and whose grid and samples are
    // there, is taken from the file instead of being sampled again.
    const fs::path evaluations_path = out / "evaluations.csv";
    const std::string evaluations_header = "fingerprint,method,guidance,lambda,steps,gamma,nfe,fd,precision,recall,class_accuracy";
    auto parameters_hash = [&](const tensor& values, std::uint64_t hash) {
      const std::vector<S> v = B::to_host(ctx, values);
      return ayf::fnv1a64(v.data(), v.size() * sizeof(S), hash);
    };
    std::uint64_t evaluation_hash = ayf::fnv1a64(concat(o.backend, ' ', n, ' ', o.chunk, ' ', o.seed, ' ', labelled));
    evaluation_hash = ayf::fnv1a64(noise.data(), noise.size() * sizeof(S), evaluation_hash);
    if (net) {
      evaluation_hash = parameters_hash(net->parameters().values, evaluation_hash);
      evaluation_hash = ayf::fnv1a64(ref.all.values.data(), ref.all.values.size() * sizeof(double), evaluation_hash);
    }
    const std::uint64_t teacher_hash = parameters_hash(teacher.parameters().values, evaluation_hash);
    const std::uint64_t autoguided_hash = parameters_hash(weak.parameters().values, teacher_hash);
    std::map<std::string, std::uint64_t> student_hash;
    for (auto& [name, s] : students) student_hash[name] = parameters_hash(s.parameters().values, evaluation_hash);
    auto key_of = [&](const job& j) {
      return concat(j.method, ',', j.guidance, ',', number(j.lambda), ',', j.steps, ',', number(j.gamma));
    };
    auto fingerprint_of = [&](const job& j) {
      std::uint64_t models = 0;
      if (j.method == "teacher_euler" || j.method == "teacher_heun") {
        models = j.guidance == "autoguidance" ? autoguided_hash : teacher_hash;  // cfg: the teacher alone
      } else {
        models = student_hash.at(j.guidance == "cfg" ? std::string("ayf_emd_cfg") : j.method);
      }
      const std::string key = key_of(j);
      return ayf::fnv1a64(key.data(), key.size(), models);
    };
    auto stem_of = [&](const job& j) {
      std::string stem = concat(j.method, "_", j.guidance, "_", j.steps);
      if (j.gamma > 0 && j.method != "scd") stem += "_gamma" + number(j.gamma);
      if (j.guidance != "none" && j.lambda != o.inference_lambda) stem += "_lambda" + number(j.lambda);  // the sweep
      return stem;
    };
    struct cached_evaluation {
      std::uint64_t fingerprint = 0;
      image_distill::scores s;
      std::string line;  // as read: kept in the file until this run evaluates its key
    };
    std::map<std::string, cached_evaluation> cached;  // by key_of
    std::vector<std::string> cached_order;            // the keys in the file's order
    if (o.resume && fs::exists(evaluations_path)) {
      std::ifstream in(evaluations_path);
      std::string line;
      std::size_t line_number = 0;
      auto ignore = [&](const std::string& why) {
        std::fprintf(stderr, "image_distill: ignoring line %zu of %s: %s\n", line_number, evaluations_path.string().c_str(),
                     why.c_str());
      };
      while (std::getline(in, line)) {
        ++line_number;
        if (line_number == 1) {
          if (line != evaluations_header) {
            ignore("not the header '" + evaluations_header + "' (every evaluation runs again)");
            break;
          }
          continue;
        }
        std::vector<std::string> fields;
        for (std::size_t begin = 0;;) {
          const std::size_t comma = line.find(',', begin);
          fields.push_back(line.substr(begin, comma == std::string::npos ? std::string::npos : comma - begin));
          if (comma == std::string::npos) break;
          begin = comma + 1;
        }
        if (fields.size() != 11) {
          ignore(concat(fields.size(), " fields, expected 11"));
          continue;
        }
        cached_evaluation c;
        const auto [end, ec] = std::from_chars(fields[0].data(), fields[0].data() + fields[0].size(), c.fingerprint, 16);
        if (ec != std::errc() || end != fields[0].data() + fields[0].size()) {
          ignore("the fingerprint '" + fields[0] + "' is not hexadecimal");
          continue;
        }
        double* metric[] = {&c.s.fd, &c.s.precision, &c.s.recall, &c.s.class_accuracy};
        bool parsed = true;
        for (std::size_t k = 0; k < 4; ++k) {
          char* stop = nullptr;
          *metric[k] = std::strtod(fields[7 + k].c_str(), &stop);
          parsed = parsed && !fields[7 + k].empty() && *stop == '\0';
        }
        if (!parsed) {
          ignore("a metric is not a number");
          continue;
        }
        c.line = line;
        const std::string key = concat(fields[1], ',', fields[2], ',', fields[3], ',', fields[4], ',', fields[5]);
        if (!cached.contains(key)) cached_order.push_back(key);
        cached[key] = c;
      }
    }
    std::vector<std::pair<std::uint64_t, result_row>> finished;
    std::set<std::string> finished_keys;
    // The rows this run finished, then the file's rows of keys it has not reached yet (so that a run
    // stopped again does not lose them).
    auto write_evaluations = [&] {
      std::ostringstream text;
      text << evaluations_header << '\n';
      char buffer[64];
      for (const auto& [fingerprint, r] : finished) {
        std::snprintf(buffer, sizeof buffer, "%016llx", static_cast<unsigned long long>(fingerprint));
        text << buffer << ',' << r.method << ',' << r.guidance << ',' << number(r.lambda) << ',' << r.steps << ','
             << number(r.gamma) << ',' << r.nfe;
        for (const double v : {r.s.fd, r.s.precision, r.s.recall, r.s.class_accuracy}) {
          std::snprintf(buffer, sizeof buffer, "%.17g", v);  // exact: a reused row prints as the original
          text << ',' << (std::isfinite(v) ? buffer : "nan");
        }
        text << '\n';
      }
      for (const std::string& key : cached_order) {
        if (!finished_keys.contains(key)) text << cached.at(key).line << '\n';
      }
      ayf::io::write_file_atomically(evaluations_path, text.str());
    };

    std::size_t total_nfe = 0, done_nfe = 0, reused = 0;
    for (const auto& j : jobs) total_nfe += j.nfe;
    const auto t_sampling = std::chrono::steady_clock::now();
    auto sample_and_score = [&](const job& j, const std::string& stem, result_row& r) {
      std::vector<S> samples;
      samples.reserve(n * geo.dims());
      typename B::context ectx(o.seed ^ 0x5a3b1e);  // the same stream (gamma / sCD noise) for every method
      tensor x, label_chunk, lambda_chunk;
      for (std::size_t first_row = 0; first_row < n; first_row += o.chunk) {
        if (ayf::train::stop_requested()) {
          throw ayf_cli::stopped(concat("while sampling, after ", rows.size(), " of ", jobs.size(),
                                        " evaluations (training is done: --resume loads the models, reuses the finished evaluations and samples the rest)"));
        }
        const std::size_t m = std::min(o.chunk, n - first_row);
        x = B::from_host(ectx, std::vector<S>(noise.begin() + static_cast<std::ptrdiff_t>(first_row * geo.dims()),
                                              noise.begin() + static_cast<std::ptrdiff_t>((first_row + m) * geo.dims())),
                         shape(m, geo.dims()));
        std::vector<S> lv(m), wv(m, static_cast<S>(j.lambda));
        for (std::size_t i = 0; i < m; ++i) lv[i] = static_cast<S>(labels[first_row + i]);
        label_chunk = B::from_host(ectx, lv, shape::vector(m));
        lambda_chunk = B::from_host(ectx, wv, shape::vector(m));
        j.sample(ectx, x, ayf::condition<B>{labelled ? &label_chunk : nullptr, &lambda_chunk});
        const std::vector<S> part = B::to_host(ectx, x);
        samples.insert(samples.end(), part.begin(), part.end());
      }
      const std::string what = concat(j.method, " (", j.guidance, ", lambda ", number(j.lambda), ") at ", j.steps,
                                      " steps", j.gamma > 0 ? concat(", gamma ", number(j.gamma)) : std::string());
      for (std::size_t i = 0; i < samples.size(); ++i) {
        if (!std::isfinite(samples[i])) {
          throw ayf::error(concat(what, ": sample ", i / geo.dims(), " is not finite (", samples[i],
                                  "); look at the training options of that model"));
        }
      }
      std::vector<float> clipped(samples.begin(), samples.end());
      for (float& v : clipped) v = std::clamp(v, -1.0f, 1.0f);
      if (net) {
        const auto features = image_distill::extract_features<B>(ectx, *net, clipped, n, o.chunk);
        r.s = image_distill::score(features, ref, labels);
      }
      if (j.outputs) {
        image_distill::write_grid(out / "grids" / (stem + ".png"), clipped, geo, grid_rows);
        image_distill::write_samples(out / "samples" / stem, clipped, geo, labelled ? labels : std::vector<std::int64_t>{});
      }
    };
    auto evaluate = [&](const job& j) {
      const std::string stem = stem_of(j);
      const std::uint64_t fingerprint = fingerprint_of(j);
      result_row r{j.method, j.guidance, j.lambda, j.steps, j.gamma, j.nfe, {}};
      const auto hit = cached.find(key_of(j));
      const bool outputs_there =
          !j.outputs || (fs::exists(out / "grids" / (stem + ".png")) && fs::exists(out / "samples" / (stem + ".npy")) &&
                         (!labelled || fs::exists(out / "samples" / (stem + "_labels.npy"))));
      const bool reuse = hit != cached.end() && hit->second.fingerprint == fingerprint && outputs_there;
      if (reuse) {
        r.s = hit->second.s;
        ++reused;
      } else {
        sample_and_score(j, stem, r);
      }
      rows.push_back(r);
      finished.emplace_back(fingerprint, r);
      finished_keys.insert(key_of(j));
      write_evaluations();
      done_nfe += j.nfe;
      const double elapsed = seconds_since(t_sampling);
      const double eta = done_nfe < total_nfe ? elapsed / static_cast<double>(done_nfe) * static_cast<double>(total_nfe - done_nfe) : 0.0;
      std::fprintf(stderr, "eval %zu/%zu %-13s %-12s lambda %-4s steps %3zu gamma %-4s nfe %4zu | fd %s precision %s recall %s class_acc %s | %.0f s, eta %.0f s%s\n",
                   rows.size(), jobs.size(), j.method.c_str(), j.guidance.c_str(), number(j.lambda).c_str(), j.steps,
                   number(j.gamma).c_str(), j.nfe, format_metric(r.s.fd).c_str(), format_metric(r.s.precision).c_str(),
                   format_metric(r.s.recall).c_str(), format_metric(r.s.class_accuracy).c_str(), elapsed, eta,
                   reuse ? " (reused: evaluations.csv)" : "");
    };

    for (const auto& j : jobs) evaluate(j);

    // The lambda sweep: the student with the lowest FD at 4 steps (gamma 0, autoguided).
    if (net && !o.lambda_sweep.empty()) {
      std::string best;
      double best_fd = std::numeric_limits<double>::infinity();
      for (const auto& r : rows) {
        if (r.steps == 4 && r.gamma == 0 && r.guidance == "autoguidance" && r.method != "teacher_euler" &&
            r.method != "teacher_heun" && r.s.fd < best_fd) {
          best_fd = r.s.fd;
          best = r.method;
        }
      }
      if (best.empty() && students.contains("ayf_emd")) best = "ayf_emd";
      if (!best.empty()) {
        std::fprintf(stderr, "image_distill: lambda sweep of %s at 4 steps\n", best.c_str());
        const std::size_t first_job = jobs.size();
        for (double lambda : o.lambda_sweep) {
          if (lambda == o.inference_lambda) continue;
          student_jobs(best, 4, lambda, true, false);
        }
        for (std::size_t i = first_job; i < jobs.size(); ++i) total_nfe += jobs[i].nfe;
        for (std::size_t i = first_job; i < jobs.size(); ++i) evaluate(jobs[i]);
      }
    }

    cached_order.clear();  // every evaluation of this run is done: the file holds exactly its rows
    write_evaluations();

    // ---- outputs -----------------------------------------------------------------------------
    std::ostringstream csv;
    csv << "method,guidance,lambda,steps,gamma,nfe,fd,precision,recall,class_accuracy\n";
    for (const auto& r : rows) {
      csv << r.method << ',' << r.guidance << ',' << number(r.lambda) << ',' << r.steps << ',' << number(r.gamma) << ','
          << r.nfe << ',' << format_metric(r.s.fd) << ',' << format_metric(r.s.precision) << ','
          << format_metric(r.s.recall) << ',' << format_metric(r.s.class_accuracy) << '\n';
    }
    ayf::io::write_file_atomically(out / "image_distill.csv", csv.str());
    std::printf("\n%-14s %-13s %6s %5s %5s %5s %10s %9s %7s %9s\n", "method", "guidance", "lambda", "steps", "gamma",
                "nfe", "fd", "precision", "recall", "class_acc");
    for (const auto& r : rows) {
      std::printf("%-14s %-13s %6s %5zu %5s %5zu %10s %9s %7s %9s\n", r.method.c_str(), r.guidance.c_str(),
                  number(r.lambda).c_str(), r.steps, number(r.gamma).c_str(), r.nfe, format_metric(r.s.fd).c_str(),
                  format_metric(r.s.precision).c_str(), format_metric(r.s.recall).c_str(),
                  format_metric(r.s.class_accuracy).c_str());
    }
    if (reused > 0) {
      std::printf("evaluations: %zu of %zu reused from %s (their fingerprints matched)\n", reused, rows.size(),
                  evaluations_path.string().c_str());
    }
    std::printf("time: training %.1f s, sampling and scoring %.1f s, total %.1f s; peak memory %zu MiB; wrote %s\n",
                train_seconds, seconds_since(t_sampling), seconds_since(t_start), peak_memory_mib(),
                (out / "image_distill.csv").string().c_str());
    return 0;
  } catch (const std::exception& e) {
    return ayf_cli::report_error("image_distill", e, group);
  }
}
