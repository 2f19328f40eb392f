// Stand-in for the CUDA toolkit's cusolver_common.h, for tools/gpu/compile-check.sh only (see cusparse.h).
#pragma once
typedef int cusolverStatus_t;
