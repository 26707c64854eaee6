// cmake_consumer_compiled: builds against an installed ayf::compiled (the explicit instantiations of
// ayf/backends/eigen/compiled.hpp) and runs a flow-matching and an AYF-EMD step through the library.
#include <cmath>
#include <cstdio>

#include "ayf/backends/eigen/compiled.hpp"

int main() {
  using B = ayf::eigen_backend<float>;
  using model = ayf::nn::mlp_flow_model<B>;
  B::context ctx(3);
  auto x0 = B::make(ctx, ayf::shape(8, 2));
  B::randn(ctx, x0);
  model teacher(ctx, {.dims = 2, .width = 8, .blocks = 1});
  model student = model::from_teacher(ctx, teacher, {.dims = 2, .width = 8, .blocks = 1, .embed_s = true});
  const double fm = ayf::flow_matching<B, model>().step(ctx, teacher, x0, nullptr).loss;
  const double emd = ayf::ayf_emd<B, model>().step(ctx, student, teacher, x0, nullptr, 0).tangent_norm;
  if (!std::isfinite(fm) || !(fm > 0) || !std::isfinite(emd)) {
    std::fprintf(stderr, "cmake_consumer_compiled: unexpected loss %g or tangent norm %g\n", fm, emd);
    return 1;
  }
  std::printf("cmake_consumer_compiled: ok\n");
  return 0;
}
