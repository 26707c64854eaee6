// tests/thrust/train_check_cuda.cu: the training check compiled by nvcc for the CUDA system.
#include "train_check.cpp"
