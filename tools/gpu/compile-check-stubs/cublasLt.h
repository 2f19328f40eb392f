// Stand-in for the CUDA toolkit's cublasLt.h, for tools/gpu/compile-check.sh only (see cublas_v2.h).
#pragma once
typedef struct cublasLtContext* cublasLtHandle_t;
