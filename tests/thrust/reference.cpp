// tests/thrust/reference.cpp: the reference side of the conformance suite, the Eigen backend.
#include "reference.hpp"

#include "ayf/backends/eigen/backend.hpp"
#include "cases.hpp"

namespace ayf_conformance {

std::vector<double> eigen_case(const std::string& name, bool single_precision) {
  return single_precision ? run_case<ayf::eigen_backend<float>>(name) : run_case<ayf::eigen_backend<double>>(name);
}

std::vector<std::string> eigen_error_messages(bool single_precision) {
  return single_precision ? error_messages<ayf::eigen_backend<float>>() : error_messages<ayf::eigen_backend<double>>();
}

}  // namespace ayf_conformance
