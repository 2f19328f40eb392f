// Stand-in for the CUDA toolkit's cusparse.h, for tools/gpu/compile-check.sh only: the torch headers
// name these types in declarations; Anneal's operators call no cuSPARSE function.
#pragma once
typedef struct cusparseContext* cusparseHandle_t;
typedef int cusparseStatus_t;
