// ayf/backends/eigen/compiled.hpp: the models, objectives, optimizers and samplers of the Eigen
// backend (float and double) as explicit instantiations compiled once into the library ayf::compiled
// (docs/compiled.md). Include this header instead of the ones it includes and link ayf::compiled: a
// translation unit that sees these `extern template` declarations does not instantiate the objectives'
// steps, the samplers and the flow map (the bulk of a training program's compile time) and calls the
// library's copies instead. Any other teacher type, model or backend still instantiates in place.
// Build ayf::compiled and the program with the same compiler, -std, -march and EIGEN_* / AYF_* macros.
#pragma once

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

namespace ayf::compiled {

/// The teachers the objectives are instantiated for: the model itself and the autoguided pair
/// (make_autoguided_velocity<B>(teacher, weak) with two lvalue models of the same type).
template <class M>
using autoguided = autoguided_velocity<eigen_backend<typename M::scalar>, M&, M&>;

}  // namespace ayf::compiled

/// The set for scalar S shared by every model: the optimizer and the EMA. AYF_KW is `extern template`
/// (declarations, below) or `template` (definitions, src/compiled/*.cpp).
#define AYF_EIGEN_COMPILED_COMMON(AYF_KW, S)                  \
  AYF_KW class ayf::nn::adam<ayf::eigen_backend<S>>;          \
  AYF_KW class ayf::nn::exponential_moving_average<ayf::eigen_backend<S>>;

/// The set for scalar S and model family MODEL (mlp or unet): the model and its flow_model base,
/// flow matching, AYF-EMD and AYF-LMD with the model and the autoguided pair as teachers, the Euler
/// flow map, the flow-map samplers on it and the teacher ODE samplers.
#define AYF_EIGEN_COMPILED_MODEL(AYF_KW, S, MODEL)                                                              \
  AYF_KW class ayf::nn::flow_model<ayf::nn::MODEL##_flow_model<ayf::eigen_backend<S>>, ayf::eigen_backend<S>,    \
                                   ayf::nn::MODEL##_config, ayf::nn::MODEL##_activations<ayf::eigen_backend<S>>>; \
  AYF_KW class ayf::nn::MODEL##_flow_model<ayf::eigen_backend<S>>;                                              \
  AYF_KW class ayf::flow_matching<ayf::eigen_backend<S>, ayf::nn::MODEL##_flow_model<ayf::eigen_backend<S>>>;    \
  AYF_EIGEN_COMPILED_DISTILLATION(AYF_KW, S, MODEL, ayf_emd)                                                    \
  AYF_EIGEN_COMPILED_DISTILLATION(AYF_KW, S, MODEL, ayf_lmd)                                                    \
  AYF_KW class ayf::autoguided_velocity<ayf::eigen_backend<S>, ayf::nn::MODEL##_flow_model<ayf::eigen_backend<S>>&, \
                                        ayf::nn::MODEL##_flow_model<ayf::eigen_backend<S>>&>;                  \
  AYF_KW class ayf::skip_out_flow_map<ayf::eigen_backend<S>, ayf::nn::MODEL##_flow_model<ayf::eigen_backend<S>>&, \
                                      ayf::euler_coefficients>;                                                 \
  AYF_KW void ayf::flow_map_sample<ayf::eigen_backend<S>,                                                       \
                                   ayf::euler_flow_map<ayf::eigen_backend<S>,                                   \
                                                       ayf::nn::MODEL##_flow_model<ayf::eigen_backend<S>>&>,    \
                                   ayf::no_observer>(                                                           \
      ayf::eigen_backend<S>::context&,                                                                          \
      ayf::euler_flow_map<ayf::eigen_backend<S>, ayf::nn::MODEL##_flow_model<ayf::eigen_backend<S>>&>&,         \
      ayf::eigen_backend<S>::tensor&, const ayf::time_grid&, const ayf::condition<ayf::eigen_backend<S>>&,      \
      ayf::no_observer&&);                                                                                      \
  AYF_KW void ayf::gamma_sample<ayf::eigen_backend<S>,                                                          \
                                ayf::euler_flow_map<ayf::eigen_backend<S>,                                      \
                                                    ayf::nn::MODEL##_flow_model<ayf::eigen_backend<S>>&>,       \
                                ayf::no_observer>(                                                              \
      ayf::eigen_backend<S>::context&,                                                                          \
      ayf::euler_flow_map<ayf::eigen_backend<S>, ayf::nn::MODEL##_flow_model<ayf::eigen_backend<S>>&>&,         \
      ayf::eigen_backend<S>::tensor&, const ayf::time_grid&, double, const ayf::condition<ayf::eigen_backend<S>>&, \
      ayf::no_observer&&);                                                                                      \
  AYF_EIGEN_COMPILED_ODE(AYF_KW, S, ayf::nn::MODEL##_flow_model<ayf::eigen_backend<S>>, euler_sample)           \
  AYF_EIGEN_COMPILED_ODE(AYF_KW, S, ayf::nn::MODEL##_flow_model<ayf::eigen_backend<S>>, heun_sample)            \
  AYF_EIGEN_COMPILED_ODE(AYF_KW, S, ayf::compiled::autoguided<ayf::nn::MODEL##_flow_model<ayf::eigen_backend<S>>>, \
                         euler_sample)                                                                          \
  AYF_EIGEN_COMPILED_ODE(AYF_KW, S, ayf::compiled::autoguided<ayf::nn::MODEL##_flow_model<ayf::eigen_backend<S>>>, \
                         heun_sample)

/// OBJECTIVE (ayf_emd or ayf_lmd) on MODEL: the class, and step / step_on_batch for both teachers.
#define AYF_EIGEN_COMPILED_DISTILLATION(AYF_KW, S, MODEL, OBJECTIVE)                                      \
  AYF_KW class ayf::OBJECTIVE<ayf::eigen_backend<S>, ayf::nn::MODEL##_flow_model<ayf::eigen_backend<S>>>;  \
  AYF_EIGEN_COMPILED_STEP(AYF_KW, S, ayf::nn::MODEL##_flow_model<ayf::eigen_backend<S>>, OBJECTIVE,        \
                          ayf::nn::MODEL##_flow_model<ayf::eigen_backend<S>>)                              \
  AYF_EIGEN_COMPILED_STEP(AYF_KW, S, ayf::nn::MODEL##_flow_model<ayf::eigen_backend<S>>, OBJECTIVE,        \
                          ayf::compiled::autoguided<ayf::nn::MODEL##_flow_model<ayf::eigen_backend<S>>>)

#define AYF_EIGEN_COMPILED_STEP(AYF_KW, S, M, OBJECTIVE, TEACHER)                                                 \
  AYF_KW ayf::step_statistics ayf::OBJECTIVE<ayf::eigen_backend<S>, M>::step<TEACHER>(                            \
      ayf::eigen_backend<S>::context&, M&, TEACHER&, const ayf::eigen_backend<S>::tensor&,                          \
      const ayf::eigen_backend<S>::tensor*, double);                                                              \
  AYF_KW ayf::step_statistics ayf::OBJECTIVE<ayf::eigen_backend<S>, M>::step_on_batch<TEACHER>(                   \
      ayf::eigen_backend<S>::context&, M&, TEACHER&, const ayf::training_batch<ayf::eigen_backend<S>>&,            \
      const ayf::eigen_backend<S>::tensor*, double);

/// The teacher ODE sampler SAMPLER (euler_sample or heun_sample) on the velocity field V.
#define AYF_EIGEN_COMPILED_ODE(AYF_KW, S, V, SAMPLER)                                                        \
  AYF_KW void ayf::SAMPLER<ayf::eigen_backend<S>, V, ayf::no_observer>(                                       \
      ayf::eigen_backend<S>::context&, V&, ayf::eigen_backend<S>::tensor&, const ayf::time_grid&,             \
      const ayf::condition<ayf::eigen_backend<S>>&, ayf::no_observer&&);

/// Everything ayf::compiled holds.
#define AYF_EIGEN_COMPILED_ALL(AYF_KW)        \
  AYF_EIGEN_COMPILED_COMMON(AYF_KW, float)    \
  AYF_EIGEN_COMPILED_COMMON(AYF_KW, double)   \
  AYF_EIGEN_COMPILED_MODEL(AYF_KW, float, mlp)  \
  AYF_EIGEN_COMPILED_MODEL(AYF_KW, double, mlp) \
  AYF_EIGEN_COMPILED_MODEL(AYF_KW, float, unet) \
  AYF_EIGEN_COMPILED_MODEL(AYF_KW, double, unet)

AYF_EIGEN_COMPILED_ALL(extern template)
