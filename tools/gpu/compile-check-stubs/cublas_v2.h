// Stand-in for the CUDA toolkit's cublas_v2.h, for tools/gpu/compile-check.sh only: the torch headers
// name these types in declarations; Anneal's operators reach cuBLAS through ATen, not directly.
#pragma once
#include <cuda_runtime.h>
typedef struct cublasContext* cublasHandle_t;
typedef int cublasStatus_t;
