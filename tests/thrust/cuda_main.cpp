// tests/thrust/cuda_main.cpp: Catch's main for ayf_tests_cuda. Without a CUDA device every test
// exits with 77, which ctest reports as skipped (SKIP_RETURN_CODE); listing works without one.
#define CATCH_CONFIG_RUNNER
#include <catch2/catch.hpp>
#include <cstdio>
#include <cstring>
#include <cuda_runtime_api.h>

int main(int argc, char* argv[]) {
  bool listing = false;
  for (int k = 1; k < argc; ++k) listing = listing || std::strncmp(argv[k], "--list", 6) == 0;
  int devices = 0;
  const cudaError_t status = cudaGetDeviceCount(&devices);
  if (!listing && (status != cudaSuccess || devices == 0)) {
    std::printf("ayf_tests_cuda: no CUDA device (%s): skipping\n",
                status != cudaSuccess ? cudaGetErrorString(status) : "0 devices");
    return 77;
  }
  return Catch::Session().run(argc, argv);
}
