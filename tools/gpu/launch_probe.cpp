// Linked against anneal_kernels.cu's object and run by tools/gpu/compile-check.sh on a machine without
// a GPU, where every kernel launch fails: the failure must reach the caller as an exception naming
// CUDA's error (anneal_kernels.cu, launch()), not pass in silence with the output left unwritten.
// Exit 0 and the exception's message when it does; 1 when a launch failed unreported.
#include <cstdio>
#include <stdexcept>
#include <string>

#include "anneal_kernels.h"

int main() {
  int devices = 0;
  if (cudaGetDeviceCount(&devices) == cudaSuccess && devices > 0) {
    std::printf("not run: this machine has a GPU, on which the launch would run\n");
    return 0;
  }
  (void) cudaGetLastError();   // the count's own error
  try {
    anneal::column_sums(nullptr, 1, 4, nullptr, nullptr, false, nullptr);
  } catch (const std::runtime_error& e) {
    std::printf("%s\n", e.what());
    return std::string(e.what()).rfind("anneal: launching a kernel", 0) == 0 ? 0 : 1;
  }
  std::printf("a kernel launch failed and nothing said so\n");
  return 1;
}
