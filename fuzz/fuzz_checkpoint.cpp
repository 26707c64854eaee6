// fuzz/fuzz_checkpoint.cpp: ayf::train::load_checkpoint on arbitrary bytes, into a float MLP
// training state with Adam and EMA and into a double one with parameters only. The loader takes a
// path, so each input goes to a per-process file in the temporary directory. Corrupt or mismatched
// input must raise ayf::error and leave the state untouched; a successful load must restore the
// stored values.
#include <fcntl.h>
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <string>
#include <vector>

#include "ayf/backends/eigen/backend.hpp"
#include "ayf/core/error.hpp"
#include "ayf/nn/mlp.hpp"
#include "ayf/nn/optimizer.hpp"
#include "ayf/train/checkpoint.hpp"
#include "checkpoint_model.hpp"
#include "fuzz_support.hpp"

namespace {

namespace fs = std::filesystem;

/// The per-process input file, removed at exit.
struct input_file {
  fs::path path = fs::temp_directory_path() / ("ayf_fuzz_checkpoint_" + std::to_string(::getpid()) + ".safetensors");
  ~input_file() {
    std::error_code ec;
    fs::remove(path, ec);
  }
  // Overwrite, then cut to size: truncating to zero first would make ext4 flush the file on close.
  void write(const std::uint8_t* data, std::size_t size) const {
    const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
    ayf_fuzz::check(fd >= 0, "checkpoint: opening the input file");
    bool ok = ::pwrite(fd, data, size, 0) == static_cast<ssize_t>(size);
    ok = ::ftruncate(fd, static_cast<off_t>(size)) == 0 && ok;
    ok = ::close(fd) == 0 && ok;
    ayf_fuzz::check(ok, "checkpoint: writing the input file");
  }
};

template <class B>
struct trainee {
  typename B::context ctx{3};
  ayf::nn::mlp_flow_model<B> model;
  ayf::nn::adam<B> optimizer;
  ayf::nn::exponential_moving_average<B> ema;
  bool with_optimizer;
  ayf::train::training_state<B> state;

  trainee(bool with_optimizer_and_ema, const std::string& objective)
      : model(ctx, ayf_fuzz::checkpoint_config()),
        optimizer(ctx, model.parameters()),
        ema(ctx, model.parameters(), 0.9),
        with_optimizer(with_optimizer_and_ema),
        state(ayf::train::make_training_state<B>(model, with_optimizer ? &optimizer : nullptr,
                                                 with_optimizer ? &ema : nullptr, objective)) {}

  std::vector<typename B::scalar> snapshot() {
    std::vector<typename B::scalar> all = B::to_host(ctx, model.parameters().values);
    if (with_optimizer) {
      for (const auto& part : {B::to_host(ctx, optimizer.first_moment()), B::to_host(ctx, optimizer.second_moment()),
                               B::to_host(ctx, ema.average())}) {
        all.insert(all.end(), part.begin(), part.end());
      }
    }
    return all;
  }

  void load(const fs::path& path) {
    const auto before = snapshot();
    const auto rng_before = ctx.rng;
    const auto iteration_before = state.iteration;
    try {
      ayf::train::load_checkpoint<B>(path, ctx, state);
    } catch (const ayf::error&) {
      const auto after = snapshot();
      ayf_fuzz::check(after.size() == before.size() &&
                          std::memcmp(after.data(), before.data(), after.size() * sizeof(after[0])) == 0,
                      "checkpoint: a failed load leaves the parameters, moments and EMA untouched");
      ayf_fuzz::check(ctx.rng.seed == rng_before.seed && ctx.rng.offset == rng_before.offset,
                      "checkpoint: a failed load leaves the rng untouched");
      ayf_fuzz::check(state.iteration == iteration_before, "checkpoint: a failed load leaves the iteration untouched");
      return;
    }
    // Loaded: the stored parameters are now the model's.
    const auto stored = ayf::io::read_safetensors(path).get<typename B::scalar>("parameters");
    const auto loaded = B::to_host(ctx, model.parameters().values);
    ayf_fuzz::check(stored.size() == loaded.size() &&
                        std::memcmp(stored.data(), loaded.data(), stored.size() * sizeof(stored[0])) == 0,
                    "checkpoint: a successful load restores the stored parameters");
  }
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  static const input_file file;
  static trainee<ayf::eigen_backend<float>> f32(true, ayf_fuzz::checkpoint_objective_f32);
  static trainee<ayf::eigen_backend<double>> f64(false, ayf_fuzz::checkpoint_objective_f64);
  file.write(data, size);
  f32.load(file.path);
  // Input that is no safetensors file fails both loads at the same place: load the second state
  // only when the bytes parse, so the fuzzer spends its time on the checkpoint checks.
  try {
    (void)ayf::io::parse_safetensors(ayf_fuzz::bytes(data, size), "fuzz.safetensors");
  } catch (const ayf::error&) {
    return 0;
  }
  f64.load(file.path);
  return 0;
}
