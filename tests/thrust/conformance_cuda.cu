// tests/thrust/conformance_cuda.cu: the conformance suite compiled by nvcc for the CUDA system.
#include "conformance.cpp"
