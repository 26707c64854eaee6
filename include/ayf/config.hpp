// ayf/config.hpp: portability macros shared by every header.
// AYF_HOST_DEVICE marks functions that run on the host and, under nvcc, on the device.
#pragma once

#if defined(__CUDACC__) || defined(__HIPCC__)
#define AYF_HOST_DEVICE __host__ __device__
#define AYF_DEVICE_COMPILE 1
#else
#define AYF_HOST_DEVICE
#define AYF_DEVICE_COMPILE 0
#endif

#define AYF_VERSION_MAJOR 0
#define AYF_VERSION_MINOR 1
#define AYF_VERSION_PATCH 0
