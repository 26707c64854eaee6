// tests/thrust/train_check.cpp: a short training run on the Thrust backend checked against the Eigen
// backend (train_check.hpp): the loss must fall, the double run must follow the Eigen double run step
// by step, and the float run must end at the same loss level. Prints the losses, the differences and
// ms per step, then "train_check: PASS" (exit 0) or "train_check: FAIL" (exit 1). Compiled by the
// host compiler for the TBB system (ayf_train_check) and by nvcc for CUDA (ayf_train_check_cuda,
// through train_check_cuda.cu), which exits 77 without a CUDA device.
//   ayf_train_check [--steps N] [--batch N] [--width N]
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "ayf/backends/thrust/backend.hpp"
#include "train_check.hpp"

#if THRUST_DEVICE_SYSTEM == THRUST_DEVICE_SYSTEM_CUDA
#include <cuda_runtime_api.h>
#endif

namespace {

using namespace ayf_train_check;

double mean(const std::vector<double>& v, std::size_t first, std::size_t last) {
  double sum = 0;
  for (std::size_t k = first; k < last; ++k) sum += v[k];
  return sum / static_cast<double>(last - first);
}

/// max_k |got_k - want_k| / |want_k|.
double max_relative(const std::vector<double>& got, const std::vector<double>& want) {
  double worst = 0;
  for (std::size_t k = 0; k < want.size(); ++k) worst = std::max(worst, std::abs(got[k] - want[k]) / std::abs(want[k]));
  return worst;
}

int failures = 0;

void check(bool ok, const std::string& what) {
  std::printf("train_check: %s %s\n", ok ? "ok  " : "FAIL", what.c_str());
  if (!ok) ++failures;
}

/// The mean loss of the first 2% and of the last 20% of the steps.
struct levels {
  double start, end;
};

levels loss_levels(const std::vector<double>& losses) {
  const std::size_t n = losses.size();
  return {mean(losses, 0, std::max<std::size_t>(1, n / 50)), mean(losses, n - std::max<std::size_t>(1, n / 5), n)};
}

std::string fmt(const char* format, double a, double b = 0, double c = 0) {
  char buffer[256];
  std::snprintf(buffer, sizeof buffer, format, a, b, c);
  return buffer;
}

std::size_t parse_count(const char* option, const char* text) {
  char* end = nullptr;
  const long long value = std::strtoll(text, &end, 10);
  if (end == text || *end != '\0' || value < 10) {
    std::fprintf(stderr, "train_check: %s expects an integer >= 10, got '%s'\n", option, text);
    std::exit(2);
  }
  return static_cast<std::size_t>(value);
}

}  // namespace

int main(int argc, char* argv[]) {
  run_config config;
  for (int k = 1; k < argc; ++k) {
    const bool has_value = k + 1 < argc;
    if (std::strcmp(argv[k], "--steps") == 0 && has_value) {
      config.steps = parse_count("--steps", argv[++k]);
    } else if (std::strcmp(argv[k], "--batch") == 0 && has_value) {
      config.batch = parse_count("--batch", argv[++k]);
    } else if (std::strcmp(argv[k], "--width") == 0 && has_value) {
      config.width = parse_count("--width", argv[++k]);
    } else {
      std::fprintf(stderr, "usage: %s [--steps N] [--batch N] [--width N] (unknown or incomplete '%s')\n", argv[0],
                   argv[k]);
      return 2;
    }
  }
#if THRUST_DEVICE_SYSTEM == THRUST_DEVICE_SYSTEM_CUDA
  const char* system = "cuda";
  int devices = 0;
  const cudaError_t status = cudaGetDeviceCount(&devices);
  if (status != cudaSuccess || devices == 0) {
    std::printf("train_check: no CUDA device (%s): skipping\n",
                status != cudaSuccess ? cudaGetErrorString(status) : "0 devices");
    return 77;
  }
  cudaDeviceProp properties{};
  cudaGetDeviceProperties(&properties, 0);
  std::printf("train_check: device %s (sm_%d%d)\n", properties.name, properties.major, properties.minor);
#elif THRUST_DEVICE_SYSTEM == THRUST_DEVICE_SYSTEM_TBB
  const char* system = "tbb";
#else
  const char* system = "cpp";
#endif
  std::printf("train_check: flow matching, MLP width %zu, eight Gaussians, %zu steps of batch %zu, Thrust on %s\n",
              config.width, config.steps, config.batch, system);

  const run_result reference = eigen_train(config, false);
  const run_result reference_float = eigen_train(config, true);
  const run_result got = train<ayf::thrust_backend<double>>(config);
  const run_result got_float = train<ayf::thrust_backend<float>>(config);

  const std::size_t n = config.steps;
  for (std::size_t k = 0; k < n; k += std::max<std::size_t>(1, n / 10)) {
    std::printf("train_check: step %4zu  eigen double %.6f  %s double %.6f  %s float %.6f\n", k, reference.losses[k],
                system, got.losses[k], system, got_float.losses[k]);
  }
  const auto per_step = [&](const run_result& r) { return 1e3 * r.seconds / static_cast<double>(n - r.timed_from); };
  std::printf("train_check: ms per step: eigen double %.3f, eigen float %.3f, %s double %.3f, %s float %.3f\n",
              per_step(reference), per_step(reference_float), system, per_step(got), system, per_step(got_float));

  const levels want = loss_levels(reference.losses);
  const levels mine = loss_levels(got.losses);
  const levels mine_float = loss_levels(got_float.losses);
  // Learning: the last fifth's loss is under 0.8x the first steps' and 0.75x that of the zero velocity.
  const double zero = reference.zero_velocity_loss;
  std::printf("train_check: loss of the zero velocity on these data (D + mean |x0|^2): %.4f\n", zero);
  const auto learns = [&](const std::string& name, const levels& l) {
    check(l.end < 0.8 * l.start && l.end < 0.75 * zero,
          name + fmt(": loss falls from %.4f to %.4f (need < 0.8x, and < 0.75x the zero velocity's %.4f)",
                                  l.start, l.end, zero));
  };
  learns("eigen double", want);
  learns(system + std::string(" double"), mine);
  learns(system + std::string(" float"), mine_float);
  const double step_difference = max_relative(got.losses, reference.losses);
  check(step_difference < 1e-6, system + fmt(" double: max relative difference from eigen double over all steps %.3e (need < 1e-6)",
                                    step_difference));
  const double end_difference = std::abs(mine_float.end - want.end) / want.end;
  check(end_difference < 0.03,
        system + fmt(" float: final loss level %.4f vs eigen double %.4f, relative %.3e (need < 0.03)", mine_float.end, want.end,
            end_difference));
  std::printf("train_check: %s float: max relative difference from eigen float over all steps %.3e (reported only)\n", system,
              max_relative(got_float.losses, reference_float.losses));
  std::printf("train_check: %s\n", failures == 0 ? "PASS" : "FAIL");
  return failures == 0 ? 0 : 1;
}
