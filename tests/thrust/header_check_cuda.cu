// tests/thrust/header_check_cuda.cu: the Thrust backend header compiles on its own under nvcc
// (included twice: self-contained and guarded).
#include "ayf/backends/thrust/backend.hpp"
#include "ayf/backends/thrust/backend.hpp"
