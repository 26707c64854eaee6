// The check of ayf::compiled (tests/compiled/CMakeLists.txt): one computation over the whole
// instantiation set -- flow matching with Adam and EMA, AYF-EMD and AYF-LMD from the model and from the
// autoguided pair, the flow-map, gamma, Euler and Heun samplers -- for the MLP (float and double) and
// a small U-Net (float). Built twice: with AYF_TEST_COMPILED the library's instantiations run (this
// translation unit only declares them), without it the header-only ones. Each prints every result as
// hexadecimal floating point; the two outputs must be identical.
#include <cstdio>
#include <vector>

#if AYF_TEST_COMPILED
#include "ayf/backends/eigen/compiled.hpp"
#else
#include "ayf/backends/eigen/backend.hpp"
#include "ayf/flow_map/parametrization.hpp"
#include "ayf/guidance/guidance.hpp"
#include "ayf/nn/mlp.hpp"
#include "ayf/nn/optimizer.hpp"
#include "ayf/nn/unet.hpp"
#include "ayf/objectives/ayf_emd.hpp"
#include "ayf/objectives/ayf_lmd.hpp"
#include "ayf/objectives/flow_matching.hpp"
#include "ayf/samplers/flow_map.hpp"
#include "ayf/samplers/ode.hpp"
#endif

namespace {

template <class B>
void print(const char* what, typename B::context& ctx, const typename B::tensor& x) {
  std::printf("%s", what);
  for (const auto v : B::to_host(ctx, x)) std::printf(" %a", static_cast<double>(v));
  std::printf("\n");
}

/// Trains a teacher and a weak teacher, distils two students, samples; prints the results.
template <class B, class Model, class Config>
void run(const char* name, const Config& teacher_config, const Config& weak_config, const Config& student_config,
         std::size_t dims, std::size_t batch) {
  using tensor = typename B::tensor;
  std::printf("%s\n", name);
  typename B::context ctx(11);
  tensor x0 = B::make(ctx, ayf::shape(batch, dims));
  B::randn(ctx, x0);

  Model teacher(ctx, teacher_config), weak(ctx, weak_config);
  for (Model* m : {&teacher, &weak}) {
    ayf::flow_matching<B, Model> fm;
    ayf::nn::adam<B> adam(ctx, m->parameters());
    ayf::nn::exponential_moving_average<B> ema(ctx, m->parameters(), 0.9);
    for (int k = 0; k < 3; ++k) {
      B::fill(ctx, m->parameters().gradients, typename B::scalar(0));
      std::printf("fm loss %a\n", fm.step(ctx, *m, x0, nullptr).loss);
      adam.step(ctx, m->parameters());
      ema.update(ctx, m->parameters());
    }
    print<B>("ema", ctx, ema.average());
  }
  auto guided = ayf::make_autoguided_velocity<B>(teacher, weak, 2.0);

  Model emd = Model::from_teacher(ctx, teacher, student_config);
  Model lmd = Model::from_teacher(ctx, teacher, student_config);
  ayf::ayf_emd<B, Model> emd_objective({.warmup_iterations = 4});
  ayf::ayf_lmd<B, Model> lmd_objective({.warmup_iterations = 4});
  for (int k = 0; k < 2; ++k) {
    std::printf("emd %a %a\n", emd_objective.step(ctx, emd, teacher, x0, nullptr, k).tangent_norm,
                emd_objective.step(ctx, emd, guided, x0, nullptr, k).tangent_norm);
    std::printf("lmd %a %a\n", lmd_objective.step(ctx, lmd, teacher, x0, nullptr, k).tangent_norm,
                lmd_objective.step(ctx, lmd, guided, x0, nullptr, k).tangent_norm);
  }
  print<B>("emd gradients", ctx, emd.parameters().gradients);
  print<B>("lmd gradients", ctx, lmd.parameters().gradients);

  const ayf::time_grid grid = ayf::time_grid::uniform(2);
  tensor x = B::make(ctx, ayf::shape(batch, dims));
  B::randn(ctx, x);
  auto flow = ayf::make_euler_flow_map<B>(emd);
  ayf::flow_map_sample<B>(ctx, flow, x, grid);
  print<B>("flow_map_sample", ctx, x);
  ayf::gamma_sample<B>(ctx, flow, x, grid, 0.5);
  print<B>("gamma_sample", ctx, x);
  ayf::euler_sample<B>(ctx, teacher, x, grid);
  print<B>("euler_sample", ctx, x);
  ayf::heun_sample<B>(ctx, guided, x, grid);
  print<B>("heun_sample", ctx, x);
}

}  // namespace

int main() {
  using ayf::nn::mlp_config, ayf::nn::unet_config;
  const mlp_config mlp{.dims = 3, .width = 16, .blocks = 2, .seed = 1};
  const mlp_config mlp_weak{.dims = 3, .width = 8, .blocks = 1, .seed = 2};
  const mlp_config mlp_student{.dims = 3, .width = 16, .blocks = 2, .embed_s = true, .embed_lambda = true};
  run<ayf::eigen_backend<float>, ayf::nn::mlp_flow_model<ayf::eigen_backend<float>>>("mlp float", mlp, mlp_weak,
                                                                                     mlp_student, 3, 32);
  run<ayf::eigen_backend<double>, ayf::nn::mlp_flow_model<ayf::eigen_backend<double>>>("mlp double", mlp, mlp_weak,
                                                                                       mlp_student, 3, 32);
  unet_config unet{.height = 4, .width = 4, .channels = 1, .base_channels = 4, .channel_multipliers = {1, 2},
                   .groups = 2, .seed = 3};
  unet_config unet_weak = unet;
  unet_weak.seed = 4;
  unet_config unet_student = unet;
  unet_student.embed_s = unet_student.embed_lambda = true;
  run<ayf::eigen_backend<float>, ayf::nn::unet_flow_model<ayf::eigen_backend<float>>>("unet float", unet, unet_weak,
                                                                                       unet_student, 16, 4);
  return 0;
}
