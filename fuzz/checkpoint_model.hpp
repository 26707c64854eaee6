// fuzz/checkpoint_model.hpp: the small MLP training state that fuzz_checkpoint loads into and
// make_corpus writes its checkpoint seeds from, so the seeds are valid for the harness.
#pragma once

#include <string>

#include "ayf/nn/mlp.hpp"

namespace ayf_fuzz {

/// 2-D data, width 4, one block, two frequencies: a few hundred parameters.
inline ayf::nn::mlp_config checkpoint_config() {
  return {.dims = 2, .width = 4, .blocks = 1, .frequencies = 2, .seed = 1};
}

/// The objective names of the float state (with Adam and EMA) and of the double state (parameters only).
inline const std::string checkpoint_objective_f32 = "flow_matching";
inline const std::string checkpoint_objective_f64 = "ayf_emd";

}  // namespace ayf_fuzz
