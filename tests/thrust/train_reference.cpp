// tests/thrust/train_reference.cpp: the Eigen side of the training check, compiled by the host compiler.
#include "ayf/backends/eigen/backend.hpp"
#include "train_check.hpp"

namespace ayf_train_check {

run_result eigen_train(const run_config& config, bool single_precision) {
  return single_precision ? train<ayf::eigen_backend<float>>(config) : train<ayf::eigen_backend<double>>(config);
}

}  // namespace ayf_train_check
