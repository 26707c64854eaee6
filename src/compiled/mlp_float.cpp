// The explicit instantiations of ayf/backends/eigen/compiled.hpp for the mlp on eigen_backend<float>.
#include "ayf/backends/eigen/compiled.hpp"

AYF_EIGEN_COMPILED_COMMON(template, float)
AYF_EIGEN_COMPILED_MODEL(template, float, mlp)
