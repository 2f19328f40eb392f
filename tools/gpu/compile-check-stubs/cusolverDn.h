// Stand-in for the CUDA toolkit's cusolverDn.h, for tools/gpu/compile-check.sh only (see cusparse.h).
#pragma once
#include "cusolver_common.h"
typedef struct cusolverDnContext* cusolverDnHandle_t;
