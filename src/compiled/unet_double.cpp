// The explicit instantiations of ayf/backends/eigen/compiled.hpp for the unet on eigen_backend<double>.
#include "ayf/backends/eigen/compiled.hpp"

AYF_EIGEN_COMPILED_MODEL(template, double, unet)
