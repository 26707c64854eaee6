// cmake_consumer: builds against an installed ayf and checks that the Eigen and xtensor
// backends (and the Thrust backend, when installed) draw identical Philox normals for the same seed.
#include <cstdio>
#include <vector>

#include "ayf/backends/eigen/backend.hpp"
#include "ayf/backends/xtensor/backend.hpp"
#if AYF_CONSUMER_THRUST
#include "ayf/backends/thrust/backend.hpp"
#endif

template <class B>
std::vector<double> draw() {
  typename B::context ctx(7);
  auto x = B::make(ctx, ayf::shape{4, 3});
  B::randn(ctx, x);
  return B::to_host(ctx, x);
}

int main() {
  const std::vector<double> e = draw<ayf::eigen_backend<double>>();
  const std::vector<double> x = draw<ayf::xtensor_backend<double>>();
  if (e.size() != 12 || e != x) {
    std::fprintf(stderr, "cmake_consumer: eigen and xtensor draws differ (sizes %zu, %zu)\n", e.size(), x.size());
    return 1;
  }
#if AYF_CONSUMER_THRUST
  if (draw<ayf::thrust_backend<double>>() != e) {
    std::fprintf(stderr, "cmake_consumer: eigen and thrust draws differ\n");
    return 1;
  }
  std::printf("cmake_consumer: thrust backend found\n");
#endif
  std::printf("cmake_consumer: ok\n");
  return 0;
}
