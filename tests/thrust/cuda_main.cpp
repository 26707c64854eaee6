// tests/thrust/cuda_main.cpp: Catch's main for ayf_tests_cuda. Without a CUDA device every test
// exits with 77, which ctest reports as skipped (SKIP_RETURN_CODE); listing works without one.
// `ayf_tests_cuda --device-info` prints the device, the driver and runtime versions and exits
// 0, or 77 without a device (scripts/gpu-check.sh's probe).
#define CATCH_CONFIG_RUNNER
#include <catch2/catch.hpp>
#include <cstdio>
#include <cstring>
#include <cuda_runtime_api.h>

namespace {

int device_info() {
  int driver = 0, runtime = 0;
  cudaDriverGetVersion(&driver);
  cudaRuntimeGetVersion(&runtime);
  std::printf("ayf_tests_cuda: CUDA driver API %d, runtime %d\n", driver, runtime);
  cudaDeviceProp p{};
  if (cudaGetDeviceProperties(&p, 0) != cudaSuccess) return 77;
  std::printf("ayf_tests_cuda: device 0: %s, sm_%d%d, %d multiprocessors, %.1f GiB\n", p.name, p.major, p.minor,
              p.multiProcessorCount, static_cast<double>(p.totalGlobalMem) / (1024.0 * 1024.0 * 1024.0));
  return 0;
}

}  // namespace

int main(int argc, char* argv[]) {
  bool listing = false, info = false;
  for (int k = 1; k < argc; ++k) {
    listing = listing || std::strncmp(argv[k], "--list", 6) == 0;
    info = info || std::strcmp(argv[k], "--device-info") == 0;
  }
  int devices = 0;
  const cudaError_t status = cudaGetDeviceCount(&devices);
  if (!listing && (status != cudaSuccess || devices == 0)) {
    std::printf("ayf_tests_cuda: no CUDA device (%s): skipping\n",
                status != cudaSuccess ? cudaGetErrorString(status) : "0 devices");
    return 77;
  }
  if (info) return device_info();
  return Catch::Session().run(argc, argv);
}
