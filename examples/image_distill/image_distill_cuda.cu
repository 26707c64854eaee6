// image_distill_cuda: image_distill compiled by nvcc, so that --backend cuda runs the Thrust backend on
// the CUDA system (gemm through cuBLAS); --backend eigen runs on the host as in image_distill.
#include "main.cpp"
