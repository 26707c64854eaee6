// tests/thrust/reference.hpp: the Eigen backend's results of the conformance cases, compiled in
// reference.cpp by the host compiler (so the CUDA flavour's nvcc translation unit needs no Eigen).
#pragma once

#include <string>
#include <vector>

namespace ayf_conformance {

/// run_case<eigen_backend<float or double>>(name).
std::vector<double> eigen_case(const std::string& name, bool single_precision);
/// error_messages<eigen_backend<float or double>>().
std::vector<std::string> eigen_error_messages(bool single_precision);

}  // namespace ayf_conformance
