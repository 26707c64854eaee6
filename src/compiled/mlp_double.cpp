// The explicit instantiations of ayf/backends/eigen/compiled.hpp for the mlp on eigen_backend<double>.
#include "ayf/backends/eigen/compiled.hpp"

AYF_EIGEN_COMPILED_COMMON(template, double)
AYF_EIGEN_COMPILED_MODEL(template, double, mlp)
