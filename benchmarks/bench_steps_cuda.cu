// bench_steps_cuda.cu: bench_steps.cpp on the Thrust backend's CUDA system (built with AYF_ENABLE_CUDA).
#define AYF_BENCH_CUDA 1
#include "bench_steps.cpp"
