// CUDA kernels of Anneal's fused Falcon-H1 operators. Plain CUDA over raw pointers (no libtorch
// headers), so this file compiles alone with nvcc; anneal_ops.cpp wraps the launchers below as
// libtorch operators with autograd.
//
// Layouts: activations are row-major [rows, channels] with channels contiguous, the layout of a
// [batch, time, channels] tensor. Element type T is float, __half or __nv_bfloat16; arithmetic is
// float32. Weights and weight gradients are float32 (the master weights, no cast needed).
#include "anneal_kernels.h"

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_fp8.h>
#include <cuda_pipeline.h>
#include <mma.h>

#include <algorithm>
#include <cfloat>
#include <cstdint>
#include <initializer_list>
#include <stdexcept>
#include <string>
#include <type_traits>
#include <utility>

namespace anneal {
namespace {

__device__ __forceinline__ float load(const float* p, int64_t i) { return p[i]; }
__device__ __forceinline__ float load(const __half* p, int64_t i) { return __half2float(p[i]); }
__device__ __forceinline__ float load(const __nv_bfloat16* p, int64_t i) { return __bfloat162float(p[i]); }
__device__ __forceinline__ void store(float* p, int64_t i, float v) { p[i] = v; }
__device__ __forceinline__ void store(__half* p, int64_t i, float v) { p[i] = __float2half(v); }
__device__ __forceinline__ void store(__nv_bfloat16* p, int64_t i, float v) { p[i] = __float2bfloat16(v); }

__device__ __forceinline__ float sigmoid(float x) { return 1.f / (1.f + __expf(-x)); }

// Eight consecutive elements as float32: one 16-byte access for the half types, two for float
// (callers check 16-byte alignment: see vectorisable()).
__device__ __forceinline__ void load8(const float* p, float (&v)[8]) {
  float4 a = *reinterpret_cast<const float4*>(p), b = *reinterpret_cast<const float4*>(p + 4);
  v[0] = a.x; v[1] = a.y; v[2] = a.z; v[3] = a.w; v[4] = b.x; v[5] = b.y; v[6] = b.z; v[7] = b.w;
}
// The half types' pairs: two elements of T as one 4-byte value, converted to and from float2.
template <typename T>
struct HalfPair;
template <>
struct HalfPair<__half> {
  using type = __half2;
  __device__ __forceinline__ static float2 to_float2(__half2 h) { return __half22float2(h); }
  __device__ __forceinline__ static __half2 from_floats(float a, float b) { return __floats2half2_rn(a, b); }
};
template <>
struct HalfPair<__nv_bfloat16> {
  using type = __nv_bfloat162;
  __device__ __forceinline__ static float2 to_float2(__nv_bfloat162 h) { return __bfloat1622float2(h); }
  __device__ __forceinline__ static __nv_bfloat162 from_floats(float a, float b) { return __floats2bfloat162_rn(a, b); }
};

template <typename T>
__device__ __forceinline__ void load8(const T* p, float (&v)[8]) {
  using Pair = HalfPair<T>;
  uint4 raw = *reinterpret_cast<const uint4*>(p);
  const typename Pair::type* h = reinterpret_cast<const typename Pair::type*>(&raw);
#pragma unroll
  for (int k = 0; k < 4; k++) {
    float2 f = Pair::to_float2(h[k]);
    v[2 * k] = f.x;
    v[2 * k + 1] = f.y;
  }
}
__device__ __forceinline__ void store8(float* p, const float (&v)[8]) {
  *reinterpret_cast<float4*>(p) = make_float4(v[0], v[1], v[2], v[3]);
  *reinterpret_cast<float4*>(p + 4) = make_float4(v[4], v[5], v[6], v[7]);
}
template <typename T>
__device__ __forceinline__ void store8(T* p, const float (&v)[8]) {
  using Pair = HalfPair<T>;
  uint4 raw;
  typename Pair::type* h = reinterpret_cast<typename Pair::type*>(&raw);
#pragma unroll
  for (int k = 0; k < 4; k++) h[k] = Pair::from_floats(v[2 * k], v[2 * k + 1]);
  *reinterpret_cast<uint4*>(p) = raw;
}

// Sum over groups of `lanes` consecutive lanes (a power of two up to 32), every lane of the group
// receiving it.
__device__ __forceinline__ float group_sum(float v, int lanes) {
  for (int offset = lanes / 2; offset > 0; offset >>= 1) v += __shfl_xor_sync(0xffffffffu, v, offset);
  return v;
}

constexpr int kVectorThreads = 256;

inline unsigned vector_blocks(int64_t threads) {
  return (unsigned) ((threads + kVectorThreads - 1) / kVectorThreads);
}

// ---------------------------------------------------------------------------------------------
// Launches. Every kernel here goes through launch(), which reports a launch that failed (a bad
// configuration, too much shared memory) at once, naming CUDA's error: a kernel that never ran
// leaves its output unwritten and says nothing, where nothing checks the stream's last error.
//
// -DANNEAL_PDL=1 or 2 (an experiment for tools/gpu/try-variants.sh, off by default): Hopper's
// programmatic dependent launch (CUDA programming guide, "Programmatic Dependent Launch and
// Synchronization"). Each kernel is launched with programmatic stream serialisation, so the GPU may
// start it before the kernel ahead of it on the stream has finished, and its first statement,
// wait_for_predecessors(), holds every thread until that kernel has completed and its memory is
// visible: no thread reads or writes memory before, so the results are the same. What it saves is
// the gap between two kernels (2.32 us a launch in the graphed step at 8 x 2048, 3.7 ms of 81.6,
// docs/benchmarks/2026-12-04-h200-head-once/side-by-side/layers-1.log; 475 of its 1,605
// launches are these kernels'). With 1 a kernel is released when the one ahead of it ends (its
// launch is prepared during that kernel's tail); with 2 each kernel also releases the next once all
// its blocks have started, so the next one's blocks can be resident while this one's last wave runs
// (they wait, holding their SM slots: whether that costs more than it saves is what the variant
// measures). Both hold under CUDA graph capture (programmatic edges, CUDA 12.3 and later).
// (ANNEAL_PDL's default is in anneal_kernels.h, for build_info.)
// ---------------------------------------------------------------------------------------------
__device__ __forceinline__ void wait_for_predecessors() {
#if ANNEAL_PDL && defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  asm volatile("griddepcontrol.wait;" ::: "memory");
#if ANNEAL_PDL >= 2
  asm volatile("griddepcontrol.launch_dependents;" ::: "memory");
#endif
#endif
}

// kernel<<<grid, block, shared, stream>>>(args...), checked (see above).
template <typename... Params, typename... Args>
void launch(void (*kernel)(Params...), dim3 grid, dim3 block, size_t shared, cudaStream_t stream, Args&&... args) {
#if ANNEAL_PDL
  cudaLaunchAttribute attribute[1];
  attribute[0].id = cudaLaunchAttributeProgrammaticStreamSerialization;
  attribute[0].val.programmaticStreamSerializationAllowed = 1;
  cudaLaunchConfig_t config = {};
  config.gridDim = grid;
  config.blockDim = block;
  config.dynamicSmemBytes = shared;
  config.stream = stream;
  config.attrs = attribute;
  config.numAttrs = 1;
  cudaError_t status = cudaLaunchKernelEx(&config, kernel, std::forward<Args>(args)...);
#else
  kernel<<<grid, block, shared, stream>>>(std::forward<Args>(args)...);
  cudaError_t status = cudaGetLastError();
#endif
  if (status != cudaSuccess) {
    (void) cudaGetLastError();   // clears it: the error is this exception's
    // (an error of an earlier kernel on the device that nothing read yet is reported here too)
    throw std::runtime_error(std::string("anneal: launching a kernel (grid ") + std::to_string(grid.x) + " x " +
                             std::to_string(grid.y) + " x " + std::to_string(grid.z) + ", " +
                             std::to_string(block.x) + " threads, " + std::to_string(shared) +
                             " bytes of shared memory) failed: " + cudaGetErrorString(status));
  }
}

// Kernel's dynamic shared memory allowed up to `largest` bytes (over the default 48 KiB), once: the
// kernel is the template argument, so each kernel has its own flag (a refusal shows at its launch,
// which launch() reports).
template <auto Kernel>
void allow_shared(size_t largest) {
  static const bool allowed = [&] {
    cudaFuncSetAttribute(Kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, (int) largest);
    return true;
  }();
  (void) allowed;
}

// ---------------------------------------------------------------------------------------------
// Column sums of a [rows, width] float32 matrix: the weight-gradient partials that the backward
// kernels write a row a block (2,048 x 1,024 for a residual norm at 8 x 2048, 512 x 9,216 for the
// conv's taps). ATen's sum(0) read them at about 0.7 TB/s: 61 sums took 0.88 ms of a step at 8 x 2048
// (docs/benchmarks/2026-12-03-h200-diag-dcum). Here a block's 32 lanes take 4 columns each and its
// warps a share of one split's rows; splits x column tiles fill the GPU, and a second launch sums
// the splits. The order is fixed by the shapes: the same sums every step.
// ---------------------------------------------------------------------------------------------
constexpr int kSumWarps = 8;
constexpr int kSumColumns = 32 * 4;      // a block's columns
constexpr int kSumTargetBlocks = 1024;   // about 8 blocks an SM of an H100 or H200 in the first launch
constexpr int kSumMinRows = 32;          // a split's rows at least: 4 a warp
constexpr int kSumMaxSplits = 128;       // the second launch's rows at most: 16 a warp

__global__ void __launch_bounds__(kSumWarps * 32) column_sums_kernel(const float* __restrict__ in, int64_t rows,
                                                                     int width, int64_t split_rows,
                                                                     float* __restrict__ out, bool accumulate) {
  wait_for_predecessors();
  __shared__ float4 warp_sums[kSumWarps][32];
  int lane = threadIdx.x % 32, warp = threadIdx.x / 32;
  int col = blockIdx.x * kSumColumns + lane * 4;
  int64_t r0 = blockIdx.y * split_rows, r1 = min(rows, r0 + split_rows);
  bool vector = width % 4 == 0 && col < width;   // rows start 16-byte aligned: a float4 a row
  float4 acc = make_float4(0.f, 0.f, 0.f, 0.f);
#pragma unroll 4   // four rows' loads in flight a warp
  for (int64_t r = r0 + warp; r < r1; r += kSumWarps) {
    const float* row = in + r * width;
    if (vector) {
      float4 v = __ldg(reinterpret_cast<const float4*>(row + col));
      acc.x += v.x, acc.y += v.y, acc.z += v.z, acc.w += v.w;
    } else {
      if (col < width) acc.x += row[col];
      if (col + 1 < width) acc.y += row[col + 1];
      if (col + 2 < width) acc.z += row[col + 2];
      if (col + 3 < width) acc.w += row[col + 3];
    }
  }
  warp_sums[warp][lane] = acc;
  __syncthreads();
  if (warp > 0) return;
  float4 sum = warp_sums[0][lane];
#pragma unroll
  for (int w = 1; w < kSumWarps; w++) {
    float4 v = warp_sums[w][lane];
    sum.x += v.x, sum.y += v.y, sum.z += v.z, sum.w += v.w;
  }
  float* o = out + (int64_t) blockIdx.y * width;
  if (col < width) o[col] = accumulate ? o[col] + sum.x : sum.x;
  if (col + 1 < width) o[col + 1] = accumulate ? o[col + 1] + sum.y : sum.y;
  if (col + 2 < width) o[col + 2] = accumulate ? o[col + 2] + sum.z : sum.z;
  if (col + 3 < width) o[col + 3] = accumulate ? o[col + 3] + sum.w : sum.w;
}

// ---------------------------------------------------------------------------------------------
// Causal depthwise conv1d + SiLU with document resets (Mamba-2's conv over x, B, C).
// out[b,t,c] = silu(bias[c] + sum_k w[c,k] * x[b, t-(K-1)+k, c]), a tap counting only when its
// token exists and lies in t's document (seq[b, t-(K-1)+k] == seq[b, t]); so a packed document
// never sees the previous one, as transformers' causal_conv1d with seq_idx.
// ---------------------------------------------------------------------------------------------
// Time steps per thread. A longer tile reads a smaller share of halo steps (K - 1 of a tile) and
// writes half the weight-gradient partials that a reduction then reads, a shorter one gives more
// blocks to hide the time loop's load latency; 32 measured best: the backward took 2.20 ms a step
// at 8 x 2048, against 2.29 with 64 and 2.39 with 16 (tools/gpu/try-variants.sh with
// -DANNEAL_CONV_TILE=..., docs/benchmarks/2026-12-03-h200-pieces).
#ifndef ANNEAL_CONV_TILE
#define ANNEAL_CONV_TILE 32
#endif
constexpr int kConvTile = ANNEAL_CONV_TILE;
constexpr int kMaxKernel = 8;

// Each thread walks V adjacent channels through a tile of time steps with the last M inputs (and
// their document ids) in a shift register, so every input, output gradient and document id is read
// from global memory once per tile (plus a K-1 halo) instead of once per tap. Windows are
// right-aligned (the newest value at index M - 1) and the taps of a kernel narrower than M are
// padded with zeros, so every index is a compile-time constant after unrolling and the windows stay
// in registers. M is the launch's window (2, 4 or kMaxKernel, the smallest that holds the kernel):
// Mamba-2's width 4 on an 8-wide window spent half of the backward's instructions on padding.
//
// V channels a thread (kConvChannels where the channels, x's row stride and the pointers allow it,
// else 1): the per-step work that does not depend on the channel (the document ids and their
// comparisons, addresses, the loop) is shared by V channels, and their values move in one
// V-element access. With one channel a thread the backward ran at about a quarter of the memory
// bandwidth (2.98 ms a step at 8 x 2048) and loading more steps at once did not help (3.38 ms): its
// time went to instructions, not to waiting on memory.
//
// The forward's time loop runs in groups of kConvGroup steps: a group's inputs are loaded before any
// of them is used, so each thread has kConvGroup loads in flight instead of one, and the unrolled
// group turns the window's shifts into register renames: 1.05 -> 0.88 ms a step at 8 x 2048.
constexpr int kConvGroup = 4;
// Two channels a thread measured best at 8 x 2048 (backward 3.03 / 2.54 / 2.87 ms a step with 1, 2 or 4;
// registers 48 / 64 / 118; docs/benchmarks/2026-12-03-h200-conv-ssd-recompute).
constexpr int kConvChannels = 2;
constexpr int kConvThreads = 128;
constexpr int kNoDocument = -1;   // positions before the row's start
constexpr int kPastTheEnd = -2;   // positions after the row's end (the backward pass walks past it)

// V consecutive elements of T as one access: loadv's and storev's unit, the staged conv tile's element.
template <typename T, int V>
struct alignas(sizeof(T) * V) VecPack {
  T e[V];
};

// V consecutive elements from p[i] as floats, in one access (i a multiple of V, p V-element aligned).
template <int V, typename T>
__device__ __forceinline__ void loadv(const T* p, int64_t i, float (&v)[V]) {
  VecPack<T, V> pack = *reinterpret_cast<const VecPack<T, V>*>(p + i);
#pragma unroll
  for (int k = 0; k < V; k++) v[k] = load(pack.e, k);
}

template <int V, typename T>
__device__ __forceinline__ void storev(T* p, int64_t i, const float (&v)[V]) {
  VecPack<T, V> pack;
#pragma unroll
  for (int k = 0; k < V; k++) store(pack.e, k, v[k]);
  *reinterpret_cast<VecPack<T, V>*>(p + i) = pack;
}

template <int M, int V>
struct ConvWindow {
  float x[V][M];   // x[t - M + 1 .. t] of each channel, oldest first (0 outside the row)
  int doc[M];      // their document ids (a row's document index, small: int suffices)

  __device__ __forceinline__ void reset() {
#pragma unroll
    for (int m = 0; m < M; m++) {
#pragma unroll
      for (int v = 0; v < V; v++) x[v][m] = 0.f;
      doc[m] = kNoDocument;
    }
  }

  // slides the window one step: the oldest values out, (values, their document) in
  __device__ __forceinline__ void push(const float (&values)[V], int document) {
#pragma unroll
    for (int m = 0; m + 1 < M; m++) {
#pragma unroll
      for (int v = 0; v < V; v++) x[v][m] = x[v][m + 1];
      doc[m] = doc[m + 1];
    }
#pragma unroll
    for (int v = 0; v < V; v++) x[v][M - 1] = values[v];
    doc[M - 1] = document;
  }

  // the pre-activations of the outputs at the window's end (taps right-aligned): taps reading
  // another document count 0
  __device__ __forceinline__ void pre(const float (&taps)[V][M], const float (&b0)[V], float (&acc)[V]) const {
#pragma unroll
    for (int v = 0; v < V; v++) acc[v] = b0[v];
#pragma unroll
    for (int m = 0; m < M; m++) {
      if (doc[m] == doc[M - 1]) {
#pragma unroll
        for (int v = 0; v < V; v++) acc[v] += taps[v][m] * x[v][m];
      }
    }
  }
};

// Channel c0 + v's taps right-aligned to the window, right[v][M - K + k] = w[c0 + v, k], zeros
// before; its bias (0 without one).
template <int M, int V>
__device__ __forceinline__ void conv_taps(const float* w, const float* bias, int c0, int kernel, float (&right)[V][M],
                                          float (&b0)[V]) {
#pragma unroll
  for (int v = 0; v < V; v++) {
#pragma unroll
    for (int m = 0; m < M; m++) {
      int k = m - (M - kernel);
      right[v][m] = k >= 0 ? w[(c0 + v) * kernel + k] : 0.f;
    }
    b0[v] = bias ? bias[c0 + v] : 0.f;
  }
}

template <typename T, int M, int V>
__global__ void conv_forward_kernel(const T* __restrict__ x, int64_t x_row, const float* __restrict__ w,
                                    const float* __restrict__ bias, const int64_t* __restrict__ seq,
                                    T* __restrict__ out, int time, int channels, int kernel) {
  wait_for_predecessors();
  int c0 = (blockIdx.x * blockDim.x + threadIdx.x) * V;
  if (c0 >= channels) return;
  int b = blockIdx.z;
  int t0 = blockIdx.y * kConvTile;
  int t1 = min(t0 + kConvTile, time);
  float taps[V][M], b0[V];
  conv_taps<M, V>(w, bias, c0, kernel, taps, b0);
  int64_t row = (int64_t) b * time;
  ConvWindow<M, V> win;
  win.reset();
  for (int base = max(0, t0 - (kernel - 1)); base < t1; base += kConvGroup) {
    float xs[kConvGroup][V];
    int docs[kConvGroup];
#pragma unroll
    for (int i = 0; i < kConvGroup; i++) {
      int t = base + i;
      bool live = t < t1;  // t1 <= time
      if (live) {
        loadv<V>(x, (row + t) * x_row + c0, xs[i]);
      } else {
#pragma unroll
        for (int v = 0; v < V; v++) xs[i][v] = 0.f;
      }
      docs[i] = live && seq ? (int) seq[row + t] : 0;
    }
#pragma unroll
    for (int i = 0; i < kConvGroup; i++) {
      int t = base + i;
      if (t >= t1) break;
      win.push(xs[i], docs[i]);
      if (t >= t0) {
        float acc[V];
        win.pre(taps, b0, acc);
#pragma unroll
        for (int v = 0; v < V; v++) acc[v] *= sigmoid(acc[v]);
        storev<V>(out, (row + t) * channels + c0, acc);
      }
    }
  }
}

// With g[t] = dout[t] * silu'(pre[t]):
//   dx[s] = sum_k w[k] * g[s + (K-1) - k] over the outputs that read s (same document),
//   dw[k] = sum_t g[t] * x[t - (K-1) + k] (same document), db = sum_t g[t].
// The thread computes g in time order for t = t0 .. t1 + K - 2 (the outputs its inputs feed; 0 past
// the row's end) and keeps the last M of them; dx[s] is complete once g[s + K - 1] is known: output
// s + j, held at g[M - K + j], reads s through tap K - 1 - j = M - 1 - (M - K + j). Weight and bias
// gradients are summed per (batch, tile) into partials [B * tiles, C, K] and [B * tiles, C],
// reduced by the caller.
// The staged backward (the default; -DANNEAL_CONV_STAGED=0 builds the unstaged one alone): it first
// copies its tile into shared memory, then walks it: 2.21 -> 1.66 ms a step at 8 x 2048, the graphed
// step 81.0 -> 80.4 ms (docs/benchmarks/2026-12-05-h200-experiments, call 1; every conv case agrees
// with its float64 reference). The unstaged backward ran at 1.2 to 1.7 TB/s: each
// thread has one step's loads in flight, as the time loop consumes them in order (fetching two steps
// ahead or four at once cost registers and was slower, below). Here every thread first issues all
// its tile's copies at once (about 73 rows of 4 bytes for bfloat16 pairs at width 4), through
// cp.async, which takes no registers: memory sees the whole tile's requests together, as Little's
// law asks of a load-latency-bound loop. Each thread reads back only its own channels (no block-wide
// exchange but the rows' document ids); about 37.5 KiB of shared memory a block at width 4, 6 blocks
// an SM. Only where a thread's V channels are 4, 8 or 16 bytes (cp.async's sizes): bfloat16 and
// float16 pairs and float32 ones or singles.
#ifndef ANNEAL_CONV_STAGED
#define ANNEAL_CONV_STAGED 1
#endif

// The staged tile's rows for window M: x from t0 - (K - 1) to t1 + K - 2, the output gradient from t0
// (K <= M).
__host__ __device__ constexpr int conv_stage_x_rows(int m) { return kConvTile + 2 * (m - 1); }
__host__ __device__ constexpr int conv_stage_d_rows(int m) { return kConvTile + (m - 1); }
template <typename T, int M, int V>
constexpr size_t conv_stage_bytes() {
  return (size_t) (conv_stage_x_rows(M) + conv_stage_d_rows(M)) * kConvThreads * sizeof(VecPack<T, V>) +
         (size_t) conv_stage_x_rows(M) * sizeof(int);
}

// Step t's x, dout and document id, loaded while step t - 1 computes (2V + 1 registers more, held to
// 64 by the launch bounds: 2.51 -> 2.29 ms a step at 8 x 2048, docs/benchmarks/2026-12-03-h200-mup-linear;
// loading a group of 4 steps instead doubled the registers and was slower). Zeros and kPastTheEnd
// past the row's end; dout only for the outputs the thread differentiates (t >= t0). dout is the
// thread's piece of the output gradient, d_row channels a row, the thread's channels at d_c0.
// STAGED: from the staged tile instead (x_stage from row t_first, d_stage from t0, the thread's packs
// kConvThreads apart; doc_stage the x rows' document ids), which holds every row the loop consumes,
// t_first .. end - 1 (the last prefetch, one step past them, reads nothing).
template <typename T, int V, bool STAGED>
__device__ __forceinline__ void conv_backward_fetch(const T* __restrict__ x, int64_t x_row,
                                                    const int64_t* __restrict__ seq, const T* __restrict__ dout,
                                                    int d_row, int d_c0, int64_t row, int t, int time, int t0, int c0,
                                                    const VecPack<T, V>* x_stage, const VecPack<T, V>* d_stage,
                                                    const int* doc_stage, int t_first, int end, float (&xv)[V],
                                                    float (&dv)[V], int& doc) {
#pragma unroll
  for (int v = 0; v < V; v++) {
    xv[v] = 0.f;
    dv[v] = 0.f;
  }
  doc = kPastTheEnd;
  if constexpr (STAGED) {
    if (t < end) {
      const VecPack<T, V> xp = x_stage[(t - t_first) * kConvThreads + threadIdx.x];
#pragma unroll
      for (int v = 0; v < V; v++) xv[v] = load(xp.e, v);
      doc = doc_stage[t - t_first];
      if (t >= t0) {
        const VecPack<T, V> dp = d_stage[(t - t0) * kConvThreads + threadIdx.x];
#pragma unroll
        for (int v = 0; v < V; v++) dv[v] = load(dp.e, v);
      }
    }
  } else if (t < time) {
    loadv<V>(x, (row + t) * x_row + c0, xv);
    doc = seq ? (int) seq[row + t] : 0;
    if (t >= t0) loadv<V>(dout, (row + t) * d_row + d_c0, dv);
  }
}

// at most 64 registers (8 blocks of 128 threads an SM) with the prefetch, as the kernel had without it
// (the 8-step window of widths 5 to 8 spills 276 bytes under this bound: a bound of its own, which
// would let it take 128, is not yet measured)
template <typename T, int M, int V, bool STAGED>
__global__ void __launch_bounds__(kConvThreads, 8) conv_backward_kernel(const T* __restrict__ x, int64_t x_row, const float* __restrict__ w,
                                     const float* __restrict__ bias, const int64_t* __restrict__ seq,
                                     ConvGradPieces<T> pieces, T* __restrict__ dx,
                                     float* __restrict__ dw_partial, float* __restrict__ db_partial,
                                     int time, int channels, int kernel) {
  wait_for_predecessors();
  int c0 = (blockIdx.x * blockDim.x + threadIdx.x) * V;
  // (a staged block's threads past the channels stay for its one barrier, then leave)
  if (!STAGED && c0 >= channels) return;
  // the output gradient's piece that holds the thread's channels (V never straddles two: every
  // piece's width is a multiple of V), picked by constant indices so the pieces stay in parameters
  int piece = c0 < pieces.end[0] ? 0 : c0 < pieces.end[1] ? 1 : 2;
  int d_start = piece == 0 ? 0 : piece == 1 ? pieces.end[0] : pieces.end[1];
  int d_row = (piece == 0 ? pieces.end[0] : piece == 1 ? pieces.end[1] : pieces.end[2]) - d_start;
  const T* __restrict__ dout = piece == 0 ? pieces.dout[0] : piece == 1 ? pieces.dout[1] : pieces.dout[2];
  int d_c0 = c0 - d_start;
  int b = blockIdx.z;
  int tile = blockIdx.y;
  int t0 = tile * kConvTile;
  int t1 = min(t0 + kConvTile, time);
  int64_t row = (int64_t) b * time;
  int t_first = max(0, t0 - (kernel - 1));
  int end = min(time, t1 + kernel - 1);   // the rows the loop consumes: t_first .. end - 1
  VecPack<T, V>* x_stage = nullptr;
  VecPack<T, V>* d_stage = nullptr;
  int* doc_stage = nullptr;
  if constexpr (STAGED) {
    extern __shared__ __align__(16) unsigned char conv_stage[];
    x_stage = reinterpret_cast<VecPack<T, V>*>(conv_stage);
    d_stage = x_stage + conv_stage_x_rows(M) * kConvThreads;
    doc_stage = reinterpret_cast<int*>(d_stage + conv_stage_d_rows(M) * kConvThreads);
    if (c0 < channels) {
      for (int t = t_first; t < end; t++) {
        __pipeline_memcpy_async(&x_stage[(t - t_first) * kConvThreads + threadIdx.x],
                                reinterpret_cast<const VecPack<T, V>*>(x + (row + t) * x_row + c0),
                                sizeof(VecPack<T, V>));
      }
      for (int t = t0; t < end; t++) {
        __pipeline_memcpy_async(&d_stage[(t - t0) * kConvThreads + threadIdx.x],
                                reinterpret_cast<const VecPack<T, V>*>(dout + (row + t) * d_row + d_c0),
                                sizeof(VecPack<T, V>));
      }
      __pipeline_commit();
    }
    for (int r = threadIdx.x; r < end - t_first; r += blockDim.x) {
      doc_stage[r] = seq ? (int) seq[row + t_first + r] : 0;
    }
    if (c0 < channels) __pipeline_wait_prior(0);
    __syncthreads();   // the document ids, which every thread reads
    if (c0 >= channels) return;
  }
  float taps[V][M], b0[V];  // right-aligned, for the pre-activation
  conv_taps<M, V>(w, bias, c0, kernel, taps, b0);
  float left[V][M];  // left[v][k] = w[c0 + v, k], zeros after: dx reads g.x[m] through left[M - 1 - m]
#pragma unroll
  for (int v = 0; v < V; v++) {
#pragma unroll
    for (int k = 0; k < M; k++) left[v][k] = k < kernel ? w[(c0 + v) * kernel + k] : 0.f;
  }
  float dw[V][M];  // right-aligned like taps
  ConvWindow<M, V> g;   // g[t - M + 1 .. t] and their document ids, oldest first
  g.reset();
  float db[V];
#pragma unroll
  for (int m = 0; m < M; m++) {
#pragma unroll
    for (int v = 0; v < V; v++) dw[v][m] = 0.f;
  }
#pragma unroll
  for (int v = 0; v < V; v++) db[v] = 0.f;
  ConvWindow<M, V> win;
  win.reset();
  float x_next[V], d_next[V];
  int doc_next;
  conv_backward_fetch<T, V, STAGED>(x, x_row, seq, dout, d_row, d_c0, row, t_first, time, t0, c0, x_stage, d_stage,
                                    doc_stage, t_first, end, x_next, d_next, doc_next);
  for (int t = t_first; t < t1 + kernel - 1; t++) {
    // one step at a time: loading a group of steps first (as the forward does) made this kernel
    // slower, 2.98 -> 3.38 ms a step at 8 x 2048 (its registers doubled, halving occupancy); so did
    // fetching two steps ahead, 2.21 -> 2.30 ms (docs/benchmarks/2026-12-03-h200-diag-dcum)
    bool inside = t < time;
    float xt[V], gt[V], d[V];
    int doc_t = doc_next;
#pragma unroll
    for (int v = 0; v < V; v++) {
      xt[v] = x_next[v];
      d[v] = d_next[v];
      gt[v] = 0.f;
    }
    conv_backward_fetch<T, V, STAGED>(x, x_row, seq, dout, d_row, d_c0, row, t + 1, time, t0, c0, x_stage, d_stage,
                                      doc_stage, t_first, end, x_next, d_next, doc_next);
    win.push(xt, doc_t);
    // g is needed only for outputs t0 .. t1 + K - 2 that exist: those read this tile's inputs
    if (t >= t0 && inside) {
      float pre[V];
      win.pre(taps, b0, pre);
#pragma unroll
      for (int v = 0; v < V; v++) {
        float sg = sigmoid(pre[v]);
        gt[v] = d[v] * sg * (1.f + pre[v] * (1.f - sg));
      }
      if (t < t1) {  // this tile's own outputs: their weight and bias gradients
#pragma unroll
        for (int m = 0; m < M; m++) {
          if (win.doc[m] == win.doc[M - 1]) {
#pragma unroll
            for (int v = 0; v < V; v++) dw[v][m] += gt[v] * win.x[v][m];
          }
        }
#pragma unroll
        for (int v = 0; v < V; v++) db[v] += gt[v];
      }
    }
    g.push(gt, win.doc[M - 1]);
    int s = t - (kernel - 1);  // the input whose last reader is output t
    if (s >= t0) {
      // win.doc[M - kernel]. The staged kernel picks it by arithmetic: there the branches were merged
      // into one load at a computed index, which put the whole window in local memory (48 bytes at
      // width 4, ptxas -v); the unstaged one keeps the branches, with which it has 8 bytes of stack
      // where the arithmetic gives it 24 of spills.
      int sdoc = STAGED ? 0 : kNoDocument;
#pragma unroll
      for (int m = 0; m < M; m++) {
        if constexpr (STAGED) {
          sdoc += (m == M - kernel) * win.doc[m];
        } else if (m == M - kernel) {
          sdoc = win.doc[m];
        }
      }
      float acc[V];
#pragma unroll
      for (int v = 0; v < V; v++) acc[v] = 0.f;
#pragma unroll
      for (int m = 0; m < M; m++) {
        if (g.doc[m] == sdoc) {
#pragma unroll
          for (int v = 0; v < V; v++) acc[v] += left[v][M - 1 - m] * g.x[v][m];
        }
      }
      storev<V>(dx, (row + s) * channels + c0, acc);
    }
  }
  int64_t partial = (int64_t) b * gridDim.y + tile;
#pragma unroll
  for (int v = 0; v < V; v++) {
#pragma unroll
    for (int m = 0; m < M; m++) {
      int k = m - (M - kernel);
      if (k >= 0) dw_partial[(partial * channels + c0 + v) * kernel + k] = dw[v][m];
    }
    db_partial[partial * channels + c0 + v] = db[v];
  }
}

// ---------------------------------------------------------------------------------------------
// Gated RMSNorm of the Mamba-2 output (transformers' FalconH1RMSNormGated / mamba_ssm's
// RMSNormGated), per group of D/G channels:
//   gate first (norm_before_gate = false): u = y * silu(z); out = u * rsqrt(mean(u^2) + eps) * w
//   norm first (norm_before_gate = true):  u = y;           out = u * rsqrt(mean(u^2) + eps) * w * silu(z)
// One block per (row, group) forward; backward blocks take kNormRows rows of one group so the
// weight gradient is summed in registers and written once per block.
// ---------------------------------------------------------------------------------------------
constexpr int kNormThreads = 256;
constexpr int kNormRows = 16;

struct AddOp {
  __device__ __forceinline__ float operator()(float a, float b) const { return a + b; }
};
struct MaxOp {
  __device__ __forceinline__ float operator()(float a, float b) const { return fmaxf(a, b); }
};

// v combined by `op` over the block (every thread gets the result); `shared` holds a float a warp,
// and `identity` is op's neutral value
template <typename Op>
__device__ __forceinline__ float block_reduce(float v, float* shared, Op op, float identity) {
  for (int o = 16; o > 0; o >>= 1) v = op(v, __shfl_xor_sync(0xffffffff, v, o));
  int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  __syncthreads();
  if (lane == 0) shared[warp] = v;
  __syncthreads();
  float total = identity;
  for (int i = 0; i < (int) (blockDim.x >> 5); i++) total = op(total, shared[i]);
  return total;
}

__device__ __forceinline__ float block_sum(float v, float* shared) { return block_reduce(v, shared, AddOp{}, 0.f); }

template <typename TY, typename TZ>
__global__ void gated_norm_forward_kernel(const TY* __restrict__ y, const TZ* __restrict__ z,
                                          const float* __restrict__ w, TZ* __restrict__ out,
                                          float* __restrict__ rstd, int width, int groups, float eps,
                                          bool norm_before_gate) {
  wait_for_predecessors();
  __shared__ float shared[32];
  int64_t row = blockIdx.x;
  int group = blockIdx.y;
  int gw = width / groups;
  int64_t base = row * width + (int64_t) group * gw;
  float sum = 0.f;
  for (int i = threadIdx.x; i < gw; i += blockDim.x) {
    float u = load(y, base + i);
    if (!norm_before_gate) {
      float zz = load(z, base + i);
      u *= zz * sigmoid(zz);
    }
    sum += u * u;
  }
  float r = rsqrtf(block_sum(sum, shared) / gw + eps);
  if (threadIdx.x == 0) rstd[row * groups + group] = r;
  for (int i = threadIdx.x; i < gw; i += blockDim.x) {
    float zz = load(z, base + i);
    float silu = zz * sigmoid(zz);
    float u = load(y, base + i);
    float v = norm_before_gate ? u * r * w[group * gw + i] * silu : u * silu * r * w[group * gw + i];
    store(out, base + i, v);
  }
}

template <typename TY, typename TZ>
__global__ void gated_norm_backward_kernel(const TY* __restrict__ y, const TZ* __restrict__ z,
                                           const float* __restrict__ w, const float* __restrict__ rstd,
                                           const TZ* __restrict__ dout, TY* __restrict__ dy,
                                           TZ* __restrict__ dz, float* __restrict__ dw_partial, int64_t rows,
                                           int width, int groups, bool norm_before_gate) {
  wait_for_predecessors();
  __shared__ float shared[32];
  constexpr int kPerThread = 16;     // group widths up to 16 * 256 = 4096
  int group = blockIdx.y;
  int gw = width / groups;
  float dw[kPerThread];
  for (int j = 0; j < kPerThread; j++) dw[j] = 0.f;
  for (int64_t row = (int64_t) blockIdx.x * kNormRows; row < min(rows, (int64_t) (blockIdx.x + 1) * kNormRows); row++) {
    int64_t base = row * width + (int64_t) group * gw;
    float r = rstd[row * groups + group];
    // mean over the group of g * u, with g = dout * w * (norm first ? silu(z) : 1)
    float dot = 0.f;
    for (int i = threadIdx.x, j = 0; i < gw; i += blockDim.x, j++) {
      float zz = load(z, base + i);
      float silu = zz * sigmoid(zz);
      float u = norm_before_gate ? load(y, base + i) : load(y, base + i) * silu;
      float g = load(dout, base + i) * w[group * gw + i] * (norm_before_gate ? silu : 1.f);
      dot += g * u;
    }
    float mean_gu = block_sum(dot, shared) / gw;
    for (int i = threadIdx.x, j = 0; i < gw; i += blockDim.x, j++) {
      float zz = load(z, base + i);
      float sg = sigmoid(zz);
      float silu = zz * sg;
      float dsilu = sg * (1.f + zz * (1.f - sg));
      float yy = load(y, base + i);
      float u = norm_before_gate ? yy : yy * silu;
      float go = load(dout, base + i);
      float wi = w[group * gw + i];
      float g = go * wi * (norm_before_gate ? silu : 1.f);
      float du = r * g - u * r * r * r * mean_gu;
      if (norm_before_gate) {
        store(dy, base + i, du);
        store(dz, base + i, go * wi * u * r * dsilu);
        dw[j] += go * u * r * silu;
      } else {
        store(dy, base + i, du * silu);
        store(dz, base + i, du * yy * dsilu);
        dw[j] += go * u * r;
      }
    }
  }
  for (int i = threadIdx.x, j = 0; i < gw; i += blockDim.x, j++) {
    dw_partial[(int64_t) blockIdx.x * width + group * gw + i] = dw[j];
  }
}


// ---------------------------------------------------------------------------------------------
// SSD intra-chunk mixing matrix (Mamba-2, Dao & Gu 2024, section 6: the diagonal blocks):
//   M[b,c,h,i,j] = S[b,c,g(h),i,j] * exp(cum[b,c,h,i] - cum[b,c,h,j])   for j <= i, same document
//   M = 0 otherwise,
// with S = C_i . B_j and cum the within-chunk cumulative log decay. One pass writes M in the matmul
// type instead of the ~6 float32 passes (difference, mask, exp, product, cast) of the composed form.
// Blocks: one per (b, c, h) forward, one per (b, c, g, row tile) backward; a thread per column j.
// ---------------------------------------------------------------------------------------------
constexpr int kMixRows = 16;
constexpr int kMixForwardThreads = 256;

__device__ __forceinline__ bool mix_valid(const int64_t* doc, int i, int j) {
  return j <= i && (doc == nullptr || doc[i] == doc[j]);
}

// The (b, c, h) that block blockIdx.x ((b * chunks + c) * heads + h) works on, with head h's group;
// cum's row of the block's head and the chunk's document ids (with seq) go into shared memory (the
// caller's barrier makes them visible).
struct ChunkHead {
  int64_t bch, bc;  // the block's (b, c, h) and (b, c) rows
  int h, g;
};
__device__ __forceinline__ ChunkHead stage_chunk_head(const float* cum, const int64_t* seq, float* cum_s,
                                                      int64_t* doc_s, int heads, int groups, int q) {
  ChunkHead at;
  // blocks in (b, c, h) order. Ordering them heads outermost, so that the diagonal backward's dS
  // atomics running at once hit different chunks, gave a step no faster (81.3 against 80.9 ms graphed
  // at 8 x 2048, docs/benchmarks/2026-12-03-h200-diag-dcum)
  at.bch = blockIdx.x;
  at.h = (int) (at.bch % heads);
  at.bc = at.bch / heads;
  at.g = at.h / (heads / groups);
  for (int u = threadIdx.x; u < q; u += blockDim.x) {
    cum_s[u] = cum[at.bch * q + u];
    if (seq) doc_s[u] = seq[at.bc * q + u];
  }
  return at;
}

// Forward: each thread on 8 consecutive columns of a row (16-byte stores; one 2-byte element a
// thread took 1.48 ms a step at the 291M model's shape, this 1.27), blockDim / (q / 8) rows at a
// time. Columns wholly above the diagonal store zeros without reading the scores. The caller's
// chunks are multiples of 32 up to ssd_mixing_max_chunk(), its arrays 16-byte aligned.
template <typename T>
__global__ void ssd_mixing_forward_vec_kernel(const float* __restrict__ scores, const float* __restrict__ cum,
                                              const int64_t* __restrict__ seq, T* __restrict__ mixing, int heads,
                                              int groups, int q, int lanes) {
  wait_for_predecessors();
  extern __shared__ unsigned char smem[];
  float* cum_s = reinterpret_cast<float*>(smem);
  int64_t* doc_s = seq ? reinterpret_cast<int64_t*>(cum_s + q) : nullptr;  // q % 8 == 0: 8-byte aligned
  ChunkHead at = stage_chunk_head(cum, seq, cum_s, doc_s, heads, groups, q);
  int64_t bch = at.bch, bc = at.bc;
  int g = at.g;
  __syncthreads();
  const float* s = scores + (bc * groups + g) * (int64_t) q * q;
  T* out = mixing + bch * (int64_t) q * q;
  int lane = threadIdx.x % lanes, j0 = lane * 8, step = blockDim.x / lanes;
  float cj[8];
#pragma unroll
  for (int m = 0; m < 8; m++) cj[m] = cum_s[j0 + m];
  for (int i = threadIdx.x / lanes; i < q; i += step) {
    float v[8];
#pragma unroll
    for (int m = 0; m < 8; m++) v[m] = 0.f;
    if (j0 <= i) {
      float sv[8];
      load8(s + (int64_t) i * q + j0, sv);
      float ci = cum_s[i];
#pragma unroll
      for (int m = 0; m < 8; m++) {
        if (mix_valid(doc_s, i, j0 + m)) v[m] = sv[m] * __expf(ci - cj[m]);
      }
    }
    store8(out + (int64_t) i * q + j0, v);
  }
}

// dS[b,c,g,i,j] = sum_{h in g} dM * L;  with dseg = dM * M = dM * S * L:
// dcum[h,i] += sum_j dseg[i,j] and dcum[h,j] -= sum_i dseg[i,j] (accumulated with atomics: dcum zeroed).
// The gradient with respect to cum: the fallback for rows of more than 32 lanes or of lanes that are
// no power of two (chunks over 256; 96), whose launcher turns it into the log decays'
// (reverse_cumsum_rows_kernel below).
template <typename T>
__global__ void ssd_mixing_backward_kernel(const float* __restrict__ scores, const float* __restrict__ cum,
                                           const int64_t* __restrict__ seq, const T* __restrict__ dmixing,
                                           float* __restrict__ dscores, float* __restrict__ dcum, int heads,
                                           int groups, int q) {
  wait_for_predecessors();
  extern __shared__ unsigned char smem[];
  float* cum_s = reinterpret_cast<float*>(smem);
  float* row_s = cum_s + q;                   // kMixRows row sums of dseg
  int64_t* doc_s = seq ? reinterpret_cast<int64_t*>(row_s + kMixRows + ((q + kMixRows) & 1)) : nullptr;
  int64_t bcg = blockIdx.x;                   // (b * chunks + c) * groups + g
  int g = (int) (bcg % groups);
  int64_t bc = bcg / groups;
  int r = heads / groups;
  int i0 = blockIdx.y * kMixRows;
  int rows = min(kMixRows, q - i0);
  int j = threadIdx.x;
  int lane = j & 31, warp = j >> 5;
  if (seq) doc_s[j] = seq[bc * q + j];
  const float* s = scores + bcg * (int64_t) q * q;
  float sv[kMixRows], ds[kMixRows];
  __syncthreads();
  for (int k = 0; k < rows; k++) {
    sv[k] = s[(int64_t) (i0 + k) * q + j];
    ds[k] = 0.f;
  }
  for (int hh = 0; hh < r; hh++) {
    int64_t bch = bc * heads + (int64_t) g * r + hh;
    __syncthreads();                          // the previous head's sums are flushed
    cum_s[j] = cum[bch * q + j];
    if (j < kMixRows) row_s[j] = 0.f;
    __syncthreads();
    const T* dm = dmixing + bch * (int64_t) q * q;
    float cj = cum_s[j];
    float col = 0.f;
    for (int k = 0; k < rows; k++) {
      int i = i0 + k;
      float seg = 0.f;
      if (mix_valid(doc_s, i, j)) {
        float l = __expf(cum_s[i] - cj);
        float d = load(dm, (int64_t) i * q + j);
        ds[k] += d * l;
        seg = d * sv[k] * l;
      }
      col -= seg;
      for (int o = 16; o > 0; o >>= 1) seg += __shfl_xor_sync(0xffffffff, seg, o);
      if (lane == 0) atomicAdd(&row_s[k], seg);
    }
    atomicAdd(&dcum[bch * q + j], col);
    __syncthreads();
    if (j < rows) atomicAdd(&dcum[bch * q + i0 + j], row_s[j]);
  }
  float* out = dscores + bcg * (int64_t) q * q;
  for (int k = 0; k < rows; k++) out[(int64_t) (i0 + k) * q + j] = ds[k];
  (void) warp;
}

// The same gradients with each thread on 8 consecutive columns of one row (16-byte loads of dM),
// `lanes` = q / 8 threads a row (a power of two up to 32, so a row is one shuffle group) and
// kMixRows rows a block, the decay gradient taken with respect to the per-token log decays
// (cum = cumsum(logd)) rather than to cum. M depends on logd through cum_i - cum_j = sum of logd
// over (j, i], so
//   dlogd[t] = sum over pairs j < t <= i of dseg[i, j],
// each row i giving, for every t <= i, its prefix sum sum_{j<t} dseg[i, j] (a scan along the row),
// summed over rows. The cum form (row sums minus column sums, then the reverse cumulative sum that
// autograd's cumsum takes) sums terms whose total over a chunk is exactly zero: its float32 result
// for A's gradient wandered from 4.8e-6 to 1.1e-5 of the float64 reference with the atomics' order
// (chunk 256), against the 1e-5 bound. The row prefixes have no such cancellation.
// The next head's dM is loaded while this head's is used. The decays of a slice of kMixHeadSlice
// heads sit in shared memory at once, each head's column sums in a shared row of its own, so a warp
// runs through the slice without waiting for the block: two barriers a slice, not two a head
// (2.79 -> 2.64 ms a step at the 291M model's shape, 32 heads a block; docs/benchmarks/
// 2026-12-03-h200-head-slices). The column sums go out to global memory once a slice.
// 8-column groups wholly above the diagonal read nothing.
// At most 64 registers (2 blocks of 512 threads an SM; no spill): unbounded, the one-head
// version took 85 and ran at 4.78 ms a step against 2.92 (docs/benchmarks/2026-12-03-h200-mixing).
constexpr int kMixHeadSlice = 16;
// The column sums without shared atomics: a float atomicAdd on shared memory is a compare-and-swap
// loop on these GPUs (no native shared float add), and the block's warps all added into the same q
// columns, so they retried. Each warp stores its column sums in a shared row of its own (plain
// stores) and the block sums the warps' rows once a slice, in a fixed order. The rows take
// warps x slice x q floats, so the slice is as many heads as fit kMixWarpColumnBytes (8 at the
// 291M model's chunk of 128, 8 warps). 2.62 -> 1.56 ms a step at 8 x 2048, 64 registers and no
// spill (docs/benchmarks/2026-12-03-h200-qkv-rope, tools/gpu/try-variants.sh).
constexpr int kMixWarpColumnBytes = 32 * 1024;
static int mix_warp_slice(int warps, int q) {
  int fit = kMixWarpColumnBytes / (warps * q * (int) sizeof(float));
  return fit < 1 ? 1 : fit > kMixHeadSlice ? kMixHeadSlice : fit;
}

template <typename T>
__global__ void __launch_bounds__(512, 2) ssd_mixing_backward_vec_kernel(
    const float* __restrict__ scores, const float* __restrict__ cum, const int64_t* __restrict__ seq,
    const T* __restrict__ dmixing, float* __restrict__ dscores, float* __restrict__ dlogd, int heads, int groups,
    int q, int lanes, int head_slice) {
  wait_for_predecessors();
  extern __shared__ unsigned char smem[];
  float* cum_s = reinterpret_cast<float*>(smem);  // [head_slice][q]: the slice's decays
  int warps = (blockDim.x + 31) / 32;
  float* col_s = cum_s + head_slice * q;          // [warps][head_slice][q]: each warp's column sums over its rows
  int64_t* doc_s = seq ? reinterpret_cast<int64_t*>(col_s + warps * head_slice * q) : nullptr;
  int64_t bcg = blockIdx.x;                       // (b * chunks + c) * groups + g
  int g = (int) (bcg % groups);
  int64_t bc = bcg / groups;
  int r = heads / groups;
  int k = threadIdx.x / lanes, lane = threadIdx.x % lanes;
  int i = blockIdx.y * kMixRows + k, j0 = lane * 8;
  bool row_inside = i < q;
  bool any = row_inside && j0 <= i;               // some column of this thread's 8 is on or below the diagonal
  for (int u = threadIdx.x; u < q; u += blockDim.x) {
    if (seq) doc_s[u] = seq[bc * q + u];
  }
  float sv[8], ds[8], d_next[8];
#pragma unroll
  for (int m = 0; m < 8; m++) {
    sv[m] = 0.f;
    ds[m] = 0.f;
    d_next[m] = 0.f;
  }
  if (any) load8(scores + bcg * (int64_t) q * q + (int64_t) i * q + j0, sv);
  int64_t bch0 = bc * heads + (int64_t) g * r;  // the group's heads are consecutive in cum, dM and dlogd
  const T* dm_row = dmixing + bch0 * (int64_t) q * q + (int64_t) i * q + j0;
  if (any) load8(dm_row, d_next);
  for (int h0 = 0; h0 < r; h0 += head_slice) {
    int slice = min(head_slice, r - h0);
    __syncthreads();                              // the previous slice's sums are flushed
    for (int u = threadIdx.x; u < slice * q; u += blockDim.x) {
      cum_s[u] = cum[(bch0 + h0) * q + u];
    }
    __syncthreads();
    for (int s = 0; s < slice; s++) {
      int hh = h0 + s;
      float d[8];
#pragma unroll
      for (int m = 0; m < 8; m++) d[m] = d_next[m];
      if (any && hh + 1 < r) load8(dm_row + (int64_t) (hh + 1) * q * q, d_next);
      const float* cs = cum_s + s * q;
      float seg[8];
#pragma unroll
      for (int m = 0; m < 8; m++) seg[m] = 0.f;
      if (any) {
        float ci = cs[i];
#pragma unroll
        for (int m = 0; m < 8; m++) {
          if (mix_valid(doc_s, i, j0 + m)) {
            float l = __expf(ci - cs[j0 + m]);
            ds[m] += d[m] * l;
            seg[m] = d[m] * sv[m] * l;
          }
        }
      }
      // prefix[m] = sum of dseg[i, j] over j < j0 + m: within the thread, then across the row's lanes
      float prefix[8], run = 0.f;
#pragma unroll
      for (int m = 0; m < 8; m++) {
        prefix[m] = run;
        run += seg[m];
      }
      float inclusive = run;
      for (int o = 1; o < lanes; o <<= 1) {
        float v = __shfl_up_sync(0xffffffffu, inclusive, o, lanes);
        if (lane >= o) inclusive += v;
      }
      float before = inclusive - run;
#pragma unroll
      for (int m = 0; m < 8; m++) prefix[m] = any && j0 + m <= i ? before + prefix[m] : 0.f;
      // columns: sum over the warp's rows (lanes apart), then one shared atomic per warp and column
#pragma unroll
      for (int m = 0; m < 8; m++) {
        for (int o = lanes; o < 32; o <<= 1) prefix[m] += __shfl_xor_sync(0xffffffffu, prefix[m], o);
      }
      if ((threadIdx.x & 31) < lanes) {
        // the warp's own row: every column written (zeros too), so nothing needs clearing
        float* col = col_s + ((int64_t) (threadIdx.x >> 5) * head_slice + s) * q + j0;
#pragma unroll
        for (int m = 0; m < 8; m++) col[m] = prefix[m];
      }
    }
    __syncthreads();
    for (int u = threadIdx.x; u < slice * q; u += blockDim.x) {
      float sum = 0.f;
      for (int w = 0; w < warps; w++) sum += col_s[(int64_t) w * head_slice * q + u];
      if (sum != 0.f) atomicAdd(&dlogd[(bch0 + h0) * q + u], sum);
    }
  }
  if (row_inside) store8(dscores + bcg * (int64_t) q * q + (int64_t) i * q + j0, ds);
}

// ---------------------------------------------------------------------------------------------
// The SSD's per-token decays of one chunk, each way in one kernel (Mamba-2, Dao & Gu 2024, section 6):
//   logd[t] = dt[t] A[h] (0 past the row's end, so padded tokens neither feed nor decay the state),
//   cum = logd's inclusive cumulative sum within the chunk, last = cum[q - 1],
//   to_end[t] = exp(last - cum[t]) where t is in the chunk's last document (else 0),
//   from_start[t] = exp(cum[t]) where t is in the document that ends the chunk before (else 0),
//   keep[b, c] = whether the state crosses from chunk c - 1 into c (the same document).
// The composed form took about 25 launches a layer for these (the product, the cumulative sum, the
// differences, exps, masks and their casts, and autograd's flips, negations, reductions and
// additions each way), each a gap in the step's graph.
// One block per (b, c): the chunk's [q, h] decays staged in shared memory (rows padded by one float
// against bank conflicts), one warp per head at a time, each lane a run of consecutive tokens.
// to_end leaves in the tokens' layout [b, c, q, h], the one the row scaling of x dt reads. The sums
// and exps are taken in double (the file's fast math would make the exps __expf): the float32 path's
// bounds are 1e-5, and these few values (q h a chunk) cost nothing either way. With float sums (a
// run of q / 32 tokens a lane, then a scan over the lanes) cum came out less exact than
// torch.cumsum's: at a chunk of 512 the float32 scan's dx error rose from 3.2e-6 to 1.5e-5.
// ---------------------------------------------------------------------------------------------
// -DANNEAL_SSD_DECAYS=0 builds without these kernels (the composed form), for tools/gpu/try-variants.sh.
#ifndef ANNEAL_SSD_DECAYS
#define ANNEAL_SSD_DECAYS 1
#endif
constexpr int kDecayThreads = 256;
constexpr size_t kDecayMaxShared = 96 * 1024;

__device__ __forceinline__ bool decay_in(const int64_t* doc, int t, int64_t document) {
  return doc == nullptr || doc[t] == document;
}

// The chunk of block blockIdx.x (b * chunks + c) and its documents: doc its q ids (null without
// seq), last_doc the one it ends in, previous_last the one the chunk before ends in (chunk 0: its own,
// nothing enters it).
struct DecayChunk {
  int64_t bc;
  int b, c;
  const int64_t* doc;
  int64_t last_doc, previous_last;
};
__device__ __forceinline__ DecayChunk decay_chunk(const int64_t* seq, int chunks, int q) {
  DecayChunk at;
  at.bc = blockIdx.x;
  at.b = (int) (at.bc / chunks);
  at.c = (int) (at.bc % chunks);
  at.doc = seq ? seq + (int64_t) at.b * chunks * q + (int64_t) at.c * q : nullptr;
  at.last_doc = at.doc ? at.doc[q - 1] : 0;
  at.previous_last = at.doc ? (at.c == 0 ? at.last_doc : at.doc[-1]) : 0;
  return at;
}

// The warp's exclusive prefix of per-lane totals (a scan over the lanes' runs).
__device__ __forceinline__ double lanes_exclusive_prefix(double total, int lane) {
  double inclusive = total;
  for (int o = 1; o < 32; o <<= 1) {
    double w = __shfl_up_sync(0xffffffffu, inclusive, o);
    if (lane >= o) inclusive += w;
  }
  return inclusive - total;
}

// The warp's exclusive suffix of per-lane totals (the sum over the lanes after this one).
__device__ __forceinline__ double lanes_exclusive_suffix(double total, int lane) {
  double inclusive = total;
  for (int o = 1; o < 32; o <<= 1) {
    double w = __shfl_down_sync(0xffffffffu, inclusive, o);
    if (lane + o < 32) inclusive += w;
  }
  return inclusive - total;
}

__global__ void __launch_bounds__(kDecayThreads) ssd_decays_forward_kernel(
    const float* __restrict__ dt, const float* __restrict__ a, const int64_t* __restrict__ seq,
    float* __restrict__ logd_out, float* __restrict__ cum_out, float* __restrict__ to_end_tok,
    float* __restrict__ from_start, float* __restrict__ last_out, float* __restrict__ keep, int time, int chunks,
    int q, int h) {
  wait_for_predecessors();
  extern __shared__ __align__(16) unsigned char decay_smem[];
  int ld = h + 1;
  float* v = reinterpret_cast<float*>(decay_smem);   // [q][h + 1]: logd, then to_end
  DecayChunk at = decay_chunk(seq, chunks, q);
  int64_t bc = at.bc, last_doc = at.last_doc, previous_last = at.previous_last;
  int b = at.b, c = at.c;
  const int64_t* doc = at.doc;
  for (int u = threadIdx.x; u < q * h; u += blockDim.x) {
    int t = u / h, hh = u % h, tt = c * q + t;
    v[t * ld + hh] = tt < time ? dt[((int64_t) b * time + tt) * h + hh] * a[hh] : 0.f;
  }
  __syncthreads();
  int warp = threadIdx.x / 32, lane = threadIdx.x % 32, warps = blockDim.x / 32;
  int run = (q + 31) / 32, t0 = min(q, lane * run), t1 = min(q, t0 + run);
  for (int hh = warp; hh < h; hh += warps) {
    double total = 0.0;
    for (int t = t0; t < t1; t++) total += v[t * ld + hh];
    double acc = lanes_exclusive_prefix(total, lane);
    double last = __shfl_sync(0xffffffffu, acc + total, 31);  // the last lane's inclusive sum: cum[q - 1]
    int64_t row = (bc * h + hh) * (int64_t) q;
    for (int t = t0; t < t1; t++) {
      float logd = v[t * ld + hh];
      acc += logd;
      logd_out[row + t] = logd;
      cum_out[row + t] = (float) acc;
      from_start[row + t] = decay_in(doc, t, previous_last) ? (float) exp(acc) : 0.f;
      v[t * ld + hh] = decay_in(doc, t, last_doc) ? (float) exp(last - acc) : 0.f;  // this warp's cell alone
    }
    if (lane == 0) last_out[bc * h + hh] = (float) last;
  }
  __syncthreads();
  for (int u = threadIdx.x; u < q * h; u += blockDim.x) {
    int t = u / h, hh = u % h;
    to_end_tok[(bc * q + t) * h + hh] = v[t * ld + hh];
  }
  if (keep && threadIdx.x == 0) keep[bc] = last_doc == previous_last ? 1.f : 0.f;
}

// d cum[t] = g_from_start[t] from_start[t] - g_to_end[t] to_end[t], and at q - 1 also g_last plus
// sum_t g_to_end[t] to_end[t]; dlogd = g_logd + d cum's reverse cumulative sum; ddt = dlogd A (the
// tokens before the row's end), dA[h] += sum dlogd dt (one float atomic a block and head). The
// decays are recomputed from cum and the document ids.
__global__ void __launch_bounds__(kDecayThreads) ssd_decays_backward_kernel(
    const float* __restrict__ dt, const float* __restrict__ a, const int64_t* __restrict__ seq,
    const float* __restrict__ cum, const float* __restrict__ g_logd, const float* __restrict__ g_to_end_tok,
    const float* __restrict__ g_from_start, const float* __restrict__ g_last, float* __restrict__ ddt,
    float* __restrict__ da, int time, int chunks, int q, int h) {
  wait_for_predecessors();
  extern __shared__ __align__(16) unsigned char decay_smem[];
  int ld = h + 1;
  float* gv = reinterpret_cast<float*>(decay_smem);   // [q][h + 1]: g_to_end, then dlogd
  float* dts = gv + q * ld;                           // [q][h + 1]: dt
  DecayChunk at = decay_chunk(seq, chunks, q);
  int64_t bc = at.bc, last_doc = at.last_doc, previous_last = at.previous_last;
  int b = at.b, c = at.c;
  const int64_t* doc = at.doc;
  for (int u = threadIdx.x; u < q * h; u += blockDim.x) {
    int t = u / h, hh = u % h, tt = c * q + t;
    gv[t * ld + hh] = g_to_end_tok ? g_to_end_tok[(bc * q + t) * h + hh] : 0.f;
    dts[t * ld + hh] = tt < time ? dt[((int64_t) b * time + tt) * h + hh] : 0.f;
  }
  __syncthreads();
  int warp = threadIdx.x / 32, lane = threadIdx.x % 32, warps = blockDim.x / 32;
  int run = (q + 31) / 32, t0 = min(q, lane * run), t1 = min(q, t0 + run);
  for (int hh = warp; hh < h; hh += warps) {
    int64_t row = (bc * h + hh) * (int64_t) q;
    float last = cum[row + q - 1];
    float to_end_sum = 0.f;  // sum_t g_to_end[t] to_end[t], the share of cum[q - 1]
    for (int t = t0; t < t1; t++) {
      float te = decay_in(doc, t, last_doc) ? (float) exp((double) (last - cum[row + t])) : 0.f;
      float fs = decay_in(doc, t, previous_last) ? (float) exp((double) cum[row + t]) : 0.f;
      float gte = gv[t * ld + hh] * te;
      to_end_sum += gte;
      gv[t * ld + hh] = (g_from_start ? g_from_start[row + t] * fs : 0.f) - gte;  // d cum[t], less the last's share
    }
    for (int o = 16; o > 0; o >>= 1) to_end_sum += __shfl_xor_sync(0xffffffffu, to_end_sum, o);
    if (t0 <= q - 1 && q - 1 < t1) gv[(q - 1) * ld + hh] += to_end_sum + (g_last ? g_last[bc * h + hh] : 0.f);
    __syncwarp();
    double total = 0.0;
    for (int t = t0; t < t1; t++) total += gv[t * ld + hh];
    double acc = lanes_exclusive_suffix(total, lane);
    double dad = 0.0;
    for (int t = t1 - 1; t >= t0; t--) {
      acc += gv[t * ld + hh];
      float dl = (float) (acc + (g_logd ? g_logd[row + t] : 0.f));
      gv[t * ld + hh] = dl;
      dad += (double) dl * dts[t * ld + hh];
    }
    for (int o = 16; o > 0; o >>= 1) dad += __shfl_xor_sync(0xffffffffu, dad, o);
    if (lane == 0) atomicAdd(&da[hh], (float) dad);
  }
  __syncthreads();
  for (int u = threadIdx.x; u < q * h; u += blockDim.x) {
    int t = u / h, hh = u % h, tt = c * q + t;
    if (tt < time) ddt[((int64_t) b * time + tt) * h + hh] = gv[t * ld + hh] * a[hh];
  }
}

// ---------------------------------------------------------------------------------------------
// The SSD's intra-chunk output without the mixing matrix in memory (forward, the half types):
//   y_diag[b,c,h] = M[b,c,h] X[b,c,h],   M = S[b,c,g(h)] * exp(cum_i - cum_j) on j <= i in i's document
// (Mamba-2, Dao & Gu 2024, section 6, the diagonal blocks; M as ssd_mixing_forward_vec_kernel makes it).
// The first forward pass wrote M ([b,c,h,q,q], 134 MB at the 291M model's 8 x 2048) and read it back
// in a batched GEMM; the backward's recomputation keeps that form, whose M its matmul gradients read.
//
// One block per (b, c, h), kDiagWarps warps. X's [q, p] block is staged in shared memory once; then
// each warp runs on its own, without block barriers: it owns a 16-row strip of y (all p columns
// in tensor-core accumulators) and walks the strip's 16 x 16 tiles of M left of the diagonal,
// building each tile from the scores in registers (the next tile's scores loaded while this one's
// product runs), passing it through a small shared tile into the tensor cores (WMMA, float32
// accumulation). A warp takes strips s and n - 1 - s, so every warp does n + 1 tiles.
// The first version built the whole M in shared memory between two block barriers and then
// multiplied: 1.97 ms a step at 8 x 2048 (3.61 before its rows were padded against bank
// conflicts), against the 1.46 it replaces (docs/benchmarks/2026-12-03-h200-diagonal).
// Shared rows are padded by 16 bytes, so that the tensor cores' row loads fall on distinct banks.
// -DANNEAL_SSD_DIAGONAL=0 builds without this path (the mixing kernel and the GEMM), for
// tools/gpu/try-variants.sh.
// ---------------------------------------------------------------------------------------------
#ifndef ANNEAL_SSD_DIAGONAL
#define ANNEAL_SSD_DIAGONAL 1
#endif
constexpr int kDiagWarps = 4;
constexpr int kDiagTile = 16;
constexpr int kDiagTileRow = kDiagTile + 8;    // a warp's M tile, its row in elements (48 bytes)
constexpr int kDiagStageRow = kDiagTile + 4;   // a warp's float32 output tile, its row in floats
constexpr int kDiagPad = 8;                    // X's rows: p + 8 elements
constexpr int kDiagMaxChunk = 128;
constexpr int kDiagMaxHeadDim = 128;

// A diagonal kernel's shared memory: the warps' stages and tiles, then `staged` [q, p] blocks (X; the
// backward also dY) and as many float rows of q (cum; the backward also dcum), then the document ids.
size_t ssd_diagonal_shared_bytes(int q, int p, bool documents, int staged) {
  return (size_t) kDiagWarps * kDiagTile * (kDiagStageRow * sizeof(float) + kDiagTileRow * 2) +
         (size_t) staged * q * ((p + kDiagPad) * 2 + sizeof(float)) + (documents ? q * sizeof(int64_t) : 0);
}

// The lane's 8 values of one of M's 16 x 16 tiles, row i, columns j0..j0+7, from those columns'
// scores sv: l the decays exp(cum_i - cum_j) (0 off the causal, same-document mask), v = sv l.
__device__ __forceinline__ void diagonal_tile_values(const float (&sv)[8], const float* cum_s, const int64_t* doc_s,
                                                     int i, int j0, float (&v)[8], float (&l)[8]) {
  float ci = cum_s[i];
#pragma unroll
  for (int m = 0; m < 8; m++) {
    l[m] = mix_valid(doc_s, i, j0 + m) ? __expf(ci - cum_s[j0 + m]) : 0.f;
    v[m] = sv[m] * l[m];
  }
}

// A [q, p] block of T rows (src_row elements apart, 16-byte aligned) into shared rows ldx apart.
template <typename T>
__device__ __forceinline__ void diagonal_stage_rows(T* dst, int ldx, const T* src, int64_t src_row, int q, int p) {
  int row_vectors = p / 8;
  for (int u = threadIdx.x; u < q * row_vectors; u += blockDim.x) {
    int i = u / row_vectors, v = u % row_vectors;
    *reinterpret_cast<uint4*>(dst + i * ldx + v * 8) = *reinterpret_cast<const uint4*>(src + i * src_row + v * 8);
  }
}

// f(s) for each 16-row (or 16-column) strip s the calling warp owns: s and n - 1 - s for s = warp,
// warp + kDiagWarps, ...: a strip and its mirror take n + 1 tiles together.
template <typename F>
__device__ __forceinline__ void for_warp_strips(int strips, int warp, F&& f) {
  for (int pair = warp; pair < (strips + 1) / 2; pair += kDiagWarps) {
    f(pair);
    if (strips - 1 - pair != pair) f(strips - 1 - pair);
  }
}

// A warp's 16-row strip of float32 accumulators (COLS tiles) out as T rows of p elements starting at
// out, through the warp's stage: the lane writes 8 values of row r, columns c0.. of each tile.
template <typename T, int COLS>
__device__ __forceinline__ void diagonal_store_strip(
    nvcuda::wmma::fragment<nvcuda::wmma::accumulator, kDiagTile, kDiagTile, kDiagTile, float> (&acc)[COLS],
    float* stage, T* out, int p, int r, int c0) {
#pragma unroll
  for (int ct = 0; ct < COLS; ct++) {
    nvcuda::wmma::store_matrix_sync(stage, acc[ct], kDiagStageRow, nvcuda::wmma::mem_row_major);
    __syncwarp();
    float v[8];
#pragma unroll
    for (int m = 0; m < 8; m++) v[m] = stage[r * kDiagStageRow + c0 + m];
    store8(out + (int64_t) r * p + ct * kDiagTile + c0, v);
    __syncwarp();
  }
}

// acc[ct] += A B_ct for each of a strip's COLS column tiles: A one 16 x 16 tile (lda apart, in the
// layout ALayout: row_major, or col_major for its transpose), B_ct the tile at columns 16 ct of the
// 16 rows at b (ldb apart). The forward's y strip (A = M's tile) and the backward's dX strip (A = M's
// tile transposed) both take their products this way.
template <typename T, int COLS, typename ALayout>
__device__ __forceinline__ void diagonal_strip_mma(
    nvcuda::wmma::fragment<nvcuda::wmma::accumulator, kDiagTile, kDiagTile, kDiagTile, float> (&acc)[COLS],
    const T* a_tile, int lda, const T* b, int ldb) {
  namespace wmma = nvcuda::wmma;
  wmma::fragment<wmma::matrix_a, kDiagTile, kDiagTile, kDiagTile, T, ALayout> a;
  wmma::load_matrix_sync(a, a_tile, lda);
#pragma unroll
  for (int ct = 0; ct < COLS; ct++) {
    wmma::fragment<wmma::matrix_b, kDiagTile, kDiagTile, kDiagTile, T, wmma::row_major> bt;
    wmma::load_matrix_sync(bt, b + ct * kDiagTile, ldb);
    wmma::mma_sync(acc[ct], a, bt, acc[ct]);
  }
}

// COLS = p / 16 column tiles (1, 2, 4 or 8), a template parameter so that the accumulators take only
// the registers they need (with 8 for every p: 118 registers a thread).
// Up to p = 64 the forward is held to 80 registers a thread (no spill), 6 blocks an SM instead of
// the 5 its 102 registers allowed (its shared memory, 28 KB a block at q = 128 and p = 64, allows 8).
// Measured at 8 x 2048: 1.32 ms a step held, 1.56 unbounded (-DANNEAL_DIAG_FORWARD_MIN_BLOCKS=1, for
// tools/gpu/try-variants.sh; docs/benchmarks/2026-12-03-h200-diag-dcum).
#ifndef ANNEAL_DIAG_FORWARD_MIN_BLOCKS
#define ANNEAL_DIAG_FORWARD_MIN_BLOCKS 6
#endif
template <typename T, int COLS>
__global__ void __launch_bounds__(kDiagWarps * 32, COLS <= 4 ? ANNEAL_DIAG_FORWARD_MIN_BLOCKS : 1)
    ssd_diagonal_forward_kernel(
    const float* __restrict__ scores, const float* __restrict__ cum, const int64_t* __restrict__ seq,
    const T* __restrict__ x, int64_t x_chunk, int64_t x_head, int64_t x_row, T* __restrict__ y, int heads,
    int groups, int q, int p) {
  wait_for_predecessors();
  namespace wmma = nvcuda::wmma;
  extern __shared__ __align__(128) unsigned char diag_smem[];
  int ldx = p + kDiagPad;
  float* stage_all = reinterpret_cast<float*>(diag_smem);                          // [warps][16][kDiagStageRow]
  T* tile_all = reinterpret_cast<T*>(stage_all + kDiagWarps * kDiagTile * kDiagStageRow);  // [warps][16][kDiagTileRow]
  T* x_s = tile_all + kDiagWarps * kDiagTile * kDiagTileRow;                       // [q][ldx]
  float* cum_s = reinterpret_cast<float*>(x_s + q * ldx);
  int64_t* doc_s = seq ? reinterpret_cast<int64_t*>(cum_s + q) : nullptr;          // q % 16 == 0: 8-byte aligned
  ChunkHead at = stage_chunk_head(cum, seq, cum_s, doc_s, heads, groups, q);
  int64_t bch = at.bch, bc = at.bc;
  int h = at.h, g = at.g;
  diagonal_stage_rows(x_s, ldx, x + bc * x_chunk + h * x_head, x_row, q, p);
  __syncthreads();
  int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  float* stage = stage_all + warp * kDiagTile * kDiagStageRow;
  T* tile = tile_all + warp * kDiagTile * kDiagTileRow;
  const float* s = scores + (bc * groups + g) * (int64_t) q * q;
  T* yh = y + bch * (int64_t) q * p;
  int r = lane / 2, c0 = (lane % 2) * 8;  // the lane's 8 values of a 16 x 16 tile: row r, columns c0..c0+7
  for_warp_strips(q / kDiagTile, warp, [&](int rs) {
    wmma::fragment<wmma::accumulator, kDiagTile, kDiagTile, kDiagTile, float> acc[COLS];
#pragma unroll
    for (int ct = 0; ct < COLS; ct++) wmma::fill_fragment(acc[ct], 0.f);
    int i = rs * kDiagTile + r;
    float sv[8];
    load8(s + (int64_t) i * q + c0, sv);
    for (int kt = 0; kt <= rs; kt++) {  // M's tiles right of the diagonal are zero
      float v[8], l[8];
      diagonal_tile_values(sv, cum_s, doc_s, i, kt * kDiagTile + c0, v, l);
      if (kt < rs) load8(s + (int64_t) i * q + (kt + 1) * kDiagTile + c0, sv);  // the next tile's, in flight
      store8(tile + r * kDiagTileRow + c0, v);
      __syncwarp();
      diagonal_strip_mma<T, COLS, wmma::row_major>(acc, tile, kDiagTileRow, x_s + kt * kDiagTile * ldx, ldx);
      __syncwarp();  // the tile is read before the next one overwrites it
    }
    diagonal_store_strip<T, COLS>(acc, stage, yh + (int64_t) rs * kDiagTile * p, p, r, c0);
  });
}

// Its backward without M or M's gradient in memory (the recomputation's mixing kernel, the two
// batched GEMMs of M's product and the mixing backward, 3.8 ms a step at 8 x 2048, in one kernel):
//   dX = M^T dY,   dM = dY X^T,   dS[b,c,g] += dM * L over the group's heads,
//   dseg = dM * M:  dcum_i = sum_j dseg[i,j] - sum_k dseg[k,i],  dlogd = dcum's reverse cumulative sum
// within the chunk (the gradient with respect to the per-token log decays whose cumulative sum cum
// is, as ssd_mixing_backward gives it; the row-minus-column form cancels to zero over a chunk, which
// float32 would feel at its 1e-5 bound, the half types do not: this path is theirs only).
// One block per (b, c, h): X and dY staged in shared memory; each warp owns 16-column strips of M
// (strips s and n - 1 - s, n + 1 tiles a warp), walks their tiles down from the diagonal, and for
// each builds M's tile, takes dM's tile on the tensor cores, adds M's tile transposed times dY's
// rows into its dX strip, and spreads dM's tile into dS (float4 atomics: the group's heads share S),
// and into the block's dcum row (shared atomics).
// Up to p = 64 (COLS <= 4) the backward is held to 128 registers a thread, 4 blocks an SM: the
// column sums kept across the strip's tiles took it from 128 to 164 registers, 3 blocks an SM, for
// 8 bytes of spill when held (p = 128 would spill 276 bytes: left unbounded).
// Measured at 8 x 2048: 3.00 ms a step held, 3.37 unbounded (-DANNEAL_DIAG_BACKWARD_MIN_BLOCKS=1 leaves
// every p unbounded, for tools/gpu/try-variants.sh; docs/benchmarks/2026-12-03-h200-diag-dcum).
#ifndef ANNEAL_DIAG_BACKWARD_MIN_BLOCKS
#define ANNEAL_DIAG_BACKWARD_MIN_BLOCKS 4
#endif
template <typename T, int COLS>
__global__ void __launch_bounds__(kDiagWarps * 32, COLS <= 4 ? ANNEAL_DIAG_BACKWARD_MIN_BLOCKS : 1)
    ssd_diagonal_backward_kernel(
    const float* __restrict__ scores, const float* __restrict__ cum, const int64_t* __restrict__ seq,
    const T* __restrict__ x, int64_t x_chunk, int64_t x_head, int64_t x_row, const T* __restrict__ dy,
    float* __restrict__ dscores, float* __restrict__ dlogd, T* __restrict__ dx, int heads, int groups, int q, int p) {
  wait_for_predecessors();
  namespace wmma = nvcuda::wmma;
  extern __shared__ __align__(128) unsigned char diag_smem[];
  int ldx = p + kDiagPad;
  float* stage_all = reinterpret_cast<float*>(diag_smem);                          // [warps][16][kDiagStageRow]
  T* tile_all = reinterpret_cast<T*>(stage_all + kDiagWarps * kDiagTile * kDiagStageRow);  // [warps][16][kDiagTileRow]
  T* x_s = tile_all + kDiagWarps * kDiagTile * kDiagTileRow;                       // [q][ldx]
  T* dy_s = x_s + q * ldx;                                                         // [q][ldx]
  float* cum_s = reinterpret_cast<float*>(dy_s + q * ldx);
  float* dcum_s = cum_s + q;
  int64_t* doc_s = seq ? reinterpret_cast<int64_t*>(dcum_s + q) : nullptr;         // q % 16 == 0: 8-byte aligned
  ChunkHead at = stage_chunk_head(cum, seq, cum_s, doc_s, heads, groups, q);
  int64_t bch = at.bch, bc = at.bc;
  int h = at.h, g = at.g;
  for (int u = threadIdx.x; u < q; u += blockDim.x) dcum_s[u] = 0.f;
  diagonal_stage_rows(x_s, ldx, x + bc * x_chunk + h * x_head, x_row, q, p);
  diagonal_stage_rows(dy_s, ldx, dy + bch * (int64_t) q * p, p, q, p);
  __syncthreads();
  int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  float* stage = stage_all + warp * kDiagTile * kDiagStageRow;
  T* tile = tile_all + warp * kDiagTile * kDiagTileRow;
  const float* s = scores + (bc * groups + g) * (int64_t) q * q;
  float* ds_group = dscores + (bc * groups + g) * (int64_t) q * q;
  T* dxh = dx + bch * (int64_t) q * p;
  int strips = q / kDiagTile;
  int r = lane / 2, c0 = (lane % 2) * 8;  // the lane's 8 values of a 16 x 16 tile: row r, columns c0..c0+7
  for_warp_strips(strips, warp, [&](int cs) {
    wmma::fragment<wmma::accumulator, kDiagTile, kDiagTile, kDiagTile, float> acc_dx[COLS];
#pragma unroll
    for (int ct = 0; ct < COLS; ct++) wmma::fill_fragment(acc_dx[ct], 0.f);
    int j0 = cs * kDiagTile + c0;
    float sv[8];
    float column[8] = {0.f, 0.f, 0.f, 0.f, 0.f, 0.f, 0.f, 0.f};  // the lane's share of its columns' dseg sums
    load8(s + (int64_t) (cs * kDiagTile + r) * q + j0, sv);
    for (int rs = cs; rs < strips; rs++) {  // M's tiles of this column strip, on and below the diagonal
      int i = rs * kDiagTile + r;
      float v[8], l[8];
      diagonal_tile_values(sv, cum_s, doc_s, i, j0, v, l);
      if (rs + 1 < strips) load8(s + (int64_t) (i + kDiagTile) * q + j0, sv);  // the next tile's, in flight
      store8(tile + r * kDiagTileRow + c0, v);
      __syncwarp();
      // dM's tile: dY's rows of strip rs times X's rows of strip cs, transposed
      wmma::fragment<wmma::accumulator, kDiagTile, kDiagTile, kDiagTile, float> acc_dm;
      wmma::fill_fragment(acc_dm, 0.f);
#pragma unroll
      for (int kk = 0; kk < COLS; kk++) {
        wmma::fragment<wmma::matrix_a, kDiagTile, kDiagTile, kDiagTile, T, wmma::row_major> a;
        wmma::fragment<wmma::matrix_b, kDiagTile, kDiagTile, kDiagTile, T, wmma::col_major> bt;
        wmma::load_matrix_sync(a, dy_s + rs * kDiagTile * ldx + kk * kDiagTile, ldx);
        wmma::load_matrix_sync(bt, x_s + cs * kDiagTile * ldx + kk * kDiagTile, ldx);
        wmma::mma_sync(acc_dm, a, bt, acc_dm);
      }
      // dX's strip cs: M's tile transposed (read column-major) times dY's rows of strip rs
      diagonal_strip_mma<T, COLS, wmma::col_major>(acc_dx, tile, kDiagTileRow, dy_s + rs * kDiagTile * ldx, ldx);
      wmma::store_matrix_sync(stage, acc_dm, kDiagStageRow, wmma::mem_row_major);
      __syncwarp();
      float ds[8], seg[8], row = 0.f;
#pragma unroll
      for (int m = 0; m < 8; m++) {
        float dm = stage[r * kDiagStageRow + c0 + m];
        ds[m] = dm * l[m];
        seg[m] = dm * v[m];
        row += seg[m];
        column[m] += seg[m];
      }
      if (rs > cs || c0 <= r) {  // a tile's columns wholly above the diagonal add nothing
        float* d = ds_group + (int64_t) i * q + j0;
#if __CUDA_ARCH__ >= 900  // vector atomics on global memory: Hopper on
        atomicAdd(reinterpret_cast<float4*>(d), make_float4(ds[0], ds[1], ds[2], ds[3]));
        atomicAdd(reinterpret_cast<float4*>(d + 4), make_float4(ds[4], ds[5], ds[6], ds[7]));
#else
#pragma unroll
        for (int m = 0; m < 8; m++) atomicAdd(d + m, ds[m]);
#endif
      }
      // row i's share of dcum (its two lanes summed); the columns' come once the strip is done
      row += __shfl_xor_sync(0xffffffffu, row, 1);
      if (lane % 2 == 0) atomicAdd(&dcum_s[i], row);
      __syncwarp();  // the tile and the stage are read before the next tile overwrites them
    }
    // minus the strip's columns summed over all its rows: the warp owns these columns over every
    // tile, so the lanes' sums are reduced once a strip (reduced once a tile, 32 shuffles each, they
    // took about 0.85 ms of this kernel's 3.4 a step at 8 x 2048: docs/benchmarks/2026-12-03-h200-ssd-diagonal)
#pragma unroll
    for (int m = 0; m < 8; m++) {
      for (int o = 2; o < 32; o <<= 1) column[m] += __shfl_xor_sync(0xffffffffu, column[m], o);
    }
    if (lane < 2) {
#pragma unroll
      for (int m = 0; m < 8; m++) atomicAdd(&dcum_s[j0 + m], -column[m]);
    }
    diagonal_store_strip<T, COLS>(acc_dx, stage, dxh + (int64_t) cs * kDiagTile * p, p, r, c0);
  });
  __syncthreads();
  // dlogd = dcum's reverse cumulative sum: warp 0, each lane a run of consecutive positions
  if (warp == 0) {
    int run = (q + 31) / 32, t0 = min(q, lane * run), t1 = min(q, t0 + run);
    double total = 0.0;  // in double, as the decays' scans (ssd_decays_*)
    for (int t = t0; t < t1; t++) total += dcum_s[t];
    double sum = lanes_exclusive_suffix(total, lane);  // the positions after this lane's run
    for (int t = t1 - 1; t >= t0; t--) {
      sum += dcum_s[t];
      dlogd[bch * q + t] = (float) sum;
    }
  }
}

// dlogd[t] = sum_{s >= t} dcum[s] within each chunk (rows of q), in place: the fallback kernel above
// gives the gradient with respect to cum, this the one with respect to logd that SsdMixing returns.
__global__ void reverse_cumsum_rows_kernel(float* __restrict__ x, int64_t rows, int q) {
  wait_for_predecessors();
  int64_t row = (int64_t) blockIdx.x * blockDim.x + threadIdx.x;
  if (row >= rows) return;
  float* v = x + row * q;
  float sum = 0.f;
  for (int u = q - 1; u >= 0; u--) {
    sum += v[u];
    v[u] = sum;
  }
}

// ---------------------------------------------------------------------------------------------
// Cross-entropy rows over half-precision logits [L, V] (times `scale`, the LM-head multiplier):
// log p(label) (0 where label = -100) and whether the arg-max (first maximum, as torch.argmax)
// is the label; with `dlogits` the same pass then overwrites the logits with
// d log p(label) / d logits = scale * (onehot(label) - softmax), the gradient for an incoming 1 that
// the backward scales by each row's incoming gradient. One block per row; the online softmax of
// Milakov & Gimelshein (2018) in one read, the rewrite in a second (from L2).
// ---------------------------------------------------------------------------------------------
constexpr int kRowThreads = 512;
constexpr int64_t kIgnore = -100;

struct RowState {
  float max, sum, best;
  int64_t best_index;

  // one more logit x at index v (ascending per thread: the first maximum wins ties)
  __device__ __forceinline__ void add(float x, int64_t v) {
    if (x > max) {
      sum = (max == -INFINITY ? 0.f : sum * __expf(max - x)) + 1.f;
      max = x;
    } else {
      sum += __expf(x - max);
    }
    if (x > best) {
      best = x;
      best_index = v;
    }
  }
};

__device__ __forceinline__ RowState combine(RowState a, RowState b) {
  RowState o;
  o.max = fmaxf(a.max, b.max);
  o.sum = (a.max == -INFINITY ? 0.f : a.sum * __expf(a.max - o.max)) +
          (b.max == -INFINITY ? 0.f : b.sum * __expf(b.max - o.max));
  bool take_b = b.best > a.best || (b.best == a.best && b.best_index < a.best_index);
  o.best = take_b ? b.best : a.best;
  o.best_index = take_b ? b.best_index : a.best_index;
  return o;
}

template <typename T, bool Dlogits>
__global__ void ce_forward_kernel(T* __restrict__ logits, const int64_t* __restrict__ labels, float scale,
                                  int64_t vocab, float* __restrict__ log_prob, float* __restrict__ correct) {
  wait_for_predecessors();
  __shared__ RowState partial[kRowThreads / 32];
  __shared__ float row_lse;
  int64_t row = blockIdx.x;
  T* l = logits + row * vocab;
  bool vector = vocab % 8 == 0 && (reinterpret_cast<uintptr_t>(l) & 15) == 0;   // 16-byte accesses
  RowState st{-INFINITY, 0.f, -INFINITY, vocab};
  if (vector) {
    for (int64_t v = threadIdx.x * 8; v < vocab; v += (int64_t) blockDim.x * 8) {
      float x[8];
      load8(l + v, x);
#pragma unroll
      for (int m = 0; m < 8; m++) st.add(scale * x[m], v + m);
    }
  } else {
    for (int64_t v = threadIdx.x; v < vocab; v += blockDim.x) st.add(scale * load(l, v), v);
  }
  for (int o = 16; o > 0; o >>= 1) {
    RowState other{__shfl_xor_sync(0xffffffff, st.max, o), __shfl_xor_sync(0xffffffff, st.sum, o),
                   __shfl_xor_sync(0xffffffff, st.best, o), __shfl_xor_sync(0xffffffff, st.best_index, o)};
    st = combine(st, other);
  }
  if ((threadIdx.x & 31) == 0) partial[threadIdx.x >> 5] = st;
  __syncthreads();
  int64_t label = labels[row];
  if (threadIdx.x == 0) {
    RowState total = partial[0];
    for (int w = 1; w < (int) (blockDim.x >> 5); w++) total = combine(total, partial[w]);
    float z = total.max + logf(total.sum);
    row_lse = z;
    bool valid = label != kIgnore;
    log_prob[row] = valid ? scale * load(l, label) - z : 0.f;   // read before any thread overwrites the row
    correct[row] = valid && total.best_index == label ? 1.f : 0.f;
  }
  if (!Dlogits) return;
  __syncthreads();
  // the row again (from L2: the block read it just now), overwritten with
  // d log p(label) / d logits = scale * (onehot(label) - softmax), 0 for an ignored label
  float z = row_lse;
  float f = label == kIgnore ? 0.f : scale;
  if (vector) {
    for (int64_t v = threadIdx.x * 8; v < vocab; v += (int64_t) blockDim.x * 8) {
      float x[8];
      load8(l + v, x);
#pragma unroll
      for (int m = 0; m < 8; m++) x[m] = f * ((v + m == label ? 1.f : 0.f) - __expf(scale * x[m] - z));
      store8(l + v, x);
    }
    return;
  }
  for (int64_t v = threadIdx.x; v < vocab; v += blockDim.x) {
    float p = __expf(scale * load(l, v) - z);
    store(l, v, f * ((v == label ? 1.f : 0.f) - p));
  }
}

// ---------------------------------------------------------------------------------------------
// The SSD scan's state passing across chunks (Mamba-2's "state passing" step, Dao & Gu 2024,
// section 6): with a_c the chunk's summed log decay and S_c its chunk-end state,
//   entering_0 = 0,  entering_{c+1} = keep_c exp(a_c) entering_c + S_c,
// keep_c = 0 where chunk c's last document is not chunk c-1's (the state is reset at document
// starts; document ids never decrease along a row, so a state crossing several chunks needs every
// step's keep). One thread per (batch, head, state element), sequential over the chunks, products
// in float32; states and entering states [b, c, h, E] in the matmuls' type.
// Backward, with D_c = dL/d(entering_{c+1}) summed over every way it is read:
//   D_{C-1} = 0, D_c = dentering_{c+1} + keep_{c+1} exp(a_{c+1}) D_{c+1},  dS_c = D_c,
//   da_c = keep_c exp(a_c) sum_e D_c[e] entering_c[e]   (a block sum, then one atomicAdd per block).
// ---------------------------------------------------------------------------------------------
constexpr int kPassThreads = 256;
constexpr int kPassSegment = 256;  // chunks whose decay-gradient sums a backward block holds in shared memory

// Where element e of head h's state in chunk c of row b lives: [b, c, h, E] (inner = 0), or the
// transposed [b, c, g, n, r p] the GPU path keeps the states in (inner = p, the head dimension;
// heads_per_group = r), element e = (n, p) of head h = (g, r). In both layouts one chunk further is
// heads * E elements further, so a thread computes its start once and steps by that.
struct StateLayout {
  int chunks, heads, inner, heads_per_group;
  int64_t elements;
  __device__ __forceinline__ int64_t chunk_stride() const { return (int64_t) heads * elements; }
  // the address of (b, chunk 0, h, e)
  __device__ __forceinline__ int64_t start(int b, int h, int64_t e) const {
    int64_t row = (int64_t) b * chunks * chunk_stride();
    if (inner == 0) return row + h * elements + e;
    int r = heads_per_group;
    return row + (int64_t) (h / r) * elements * r + (int64_t) (h % r) * inner + (e / inner) * ((int64_t) inner * r) +
           e % inner;
  }
};

// Each thread carries V consecutive elements of a state (one 4- or 8-byte access of the half types
// instead of V 2-byte ones, and one warp sum of the decay gradient per V elements). At the 291M
// model's shape, a step's backward calls took 1.80 ms with one element a thread, 1.05 with 2 and
// under 0.73 with 4; the forward calls 1.12, 0.89 and 0.89 (docs/benchmarks/2026-12-03-h200-mixing).
template <typename T, int V>
__global__ void state_passing_forward_kernel(const T* __restrict__ states, const float* __restrict__ decay,
                                             const float* __restrict__ keep, T* __restrict__ entering,
                                             StateLayout lay) {
  wait_for_predecessors();
  int64_t e = ((int64_t) blockIdx.x * blockDim.x + threadIdx.x) * V;
  if (e >= lay.elements) return;
  int h = blockIdx.y, b = blockIdx.z;
  int64_t at = lay.start(b, h, e), stride = lay.chunk_stride();
  const float* decay_b = decay + (int64_t) b * lay.chunks * lay.heads + h;  // decay[b, c, h] at c * heads
  const float* keep_b = keep ? keep + (int64_t) b * lay.chunks : nullptr;
  float carried[V], state[V];
#pragma unroll
  for (int v = 0; v < V; v++) carried[v] = 0.f;
#pragma unroll 4
  for (int c = 0; c < lay.chunks; c++, at += stride) {
    storev<V>(entering, at, carried);
    float k = keep_b && c > 0 ? keep_b[c] : 1.f;
    float f = k * __expf(decay_b[(int64_t) c * lay.heads]);
    loadv<V>(states, at, state);
    // carried becomes the state at chunk c's end
#pragma unroll
    for (int v = 0; v < V; v++) carried[v] = f * carried[v] + state[v];
  }
}

// The decay gradients' block sums go through shared memory, a segment of kPassSegment chunks at a
// time (a warp sum, then one shared atomic per warp and chunk), so the chunk loop has no barrier.
template <typename T, int V>
__global__ void state_passing_backward_kernel(const T* __restrict__ entering, const float* __restrict__ decay,
                                              const float* __restrict__ keep, const T* __restrict__ dentering,
                                              T* __restrict__ dstates, float* __restrict__ ddecay, StateLayout lay) {
  wait_for_predecessors();
  __shared__ float sums[kPassSegment];
  int64_t e = ((int64_t) blockIdx.x * blockDim.x + threadIdx.x) * V;
  bool inside = e < lay.elements;
  int h = blockIdx.y, b = blockIdx.z;
  int64_t stride = lay.chunk_stride();
  int64_t at = lay.start(b, h, inside ? e : 0) + (int64_t) (lay.chunks - 1) * stride;
  const float* decay_b = decay + (int64_t) b * lay.chunks * lay.heads + h;
  float* ddecay_b = ddecay + (int64_t) b * lay.chunks * lay.heads + h;
  const float* keep_b = keep ? keep + (int64_t) b * lay.chunks : nullptr;
  float d[V], x[V];  // D_c
#pragma unroll
  for (int v = 0; v < V; v++) d[v] = x[v] = 0.f;
  for (int top = lay.chunks - 1; top >= 0; top -= kPassSegment) {
    int bottom = max(0, top - kPassSegment + 1);
    for (int i = threadIdx.x; i < kPassSegment; i += blockDim.x) sums[i] = 0.f;
    __syncthreads();
#pragma unroll 4
    for (int c = top; c >= bottom; c--, at -= stride) {
      if (c + 1 < lay.chunks) {
        float k = keep_b ? keep_b[c + 1] : 1.f;
        float f = k * __expf(decay_b[(int64_t) (c + 1) * lay.heads]);
        if (inside) loadv<V>(dentering, at + stride, x);
#pragma unroll
        for (int v = 0; v < V; v++) d[v] = x[v] + f * d[v];
      }
      if (inside) storev<V>(dstates, at, d);
      if (c > 0) {
        float part = 0.f;
        if (inside) {
          loadv<V>(entering, at, x);
#pragma unroll
          for (int v = 0; v < V; v++) part += d[v] * x[v];
        }
        for (int o = 16; o > 0; o >>= 1) part += __shfl_xor_sync(0xffffffff, part, o);
        if ((threadIdx.x & 31) == 0) atomicAdd(&sums[top - c], part);
      }
    }
    __syncthreads();
    for (int c = top - (int) threadIdx.x; c >= bottom && c > 0; c -= blockDim.x) {
      float k = keep_b ? keep_b[c] : 1.f;
      atomicAdd(ddecay_b + (int64_t) c * lay.heads, k * __expf(decay_b[(int64_t) c * lay.heads]) * sums[top - c]);
    }
    __syncthreads();  // the sums are read before the next segment zeroes them
  }
}

inline unsigned blocks(int64_t n, int per) { return (unsigned) ((n + per - 1) / per); }

// Calls f with std::integral_constant<int, C>, C the first of Small, Middle, Large that is at least
// n: a kernel compiled for the launch's size class (register arrays of compile-time length).
template <int Small, int Middle, int Large, typename F>
void by_size(int n, F&& f) {
  if (n <= Small) {
    f(std::integral_constant<int, Small>{});
  } else if (n <= Middle) {
    f(std::integral_constant<int, Middle>{});
  } else {
    f(std::integral_constant<int, Large>{});
  }
}

// The conv window M for a kernel of width `kernel`.
template <typename F>
void by_window(int kernel, F&& f) {
  by_size<2, 4, kMaxKernel>(kernel, f);
}

}  // namespace

// The channels a conv thread takes: kConvChannels when every access of V channels stays aligned
// (the channels, x's row stride and the pointers), else 1.
template <typename T, typename F>
void by_conv_channels(int channels, int64_t x_row, std::initializer_list<const void*> pointers, F&& f,
                      bool also = true) {
  bool vector = also && channels % kConvChannels == 0 && x_row % kConvChannels == 0;
  for (const void* p : pointers) vector = vector && reinterpret_cast<uintptr_t>(p) % (sizeof(T) * kConvChannels) == 0;
  if (vector) {
    f(std::integral_constant<int, kConvChannels>{});
  } else {
    f(std::integral_constant<int, 1>{});
  }
}

template <typename T>
void conv1d_silu_forward(const T* x, int64_t x_row, const float* w, const float* bias, const int64_t* seq, T* out,
                         int batch, int time, int channels, int kernel, cudaStream_t stream) {
  by_conv_channels<T>(channels, x_row, {x, out}, [&](auto per_thread) {
    constexpr int V = decltype(per_thread)::value;
    dim3 grid(blocks(channels, kConvThreads * V), blocks(time, kConvTile), batch);
    by_window(kernel, [&](auto window) {
      launch(conv_forward_kernel<T, decltype(window)::value, V>, grid, kConvThreads, 0, stream, x, x_row, w, bias, seq,
             out, time, channels, kernel);
    });
  });
}

int column_sums_splits(int64_t rows, int width) {
  int64_t by_blocks = blocks(kSumTargetBlocks, (int) blocks(width, kSumColumns));
  int64_t by_rows = blocks(rows, kSumMinRows);
  return (int) std::max<int64_t>(1, std::min({by_blocks, by_rows, (int64_t) kSumMaxSplits}));
}

void column_sums(const float* in, int64_t rows, int width, float* scratch, float* out, bool accumulate,
                 cudaStream_t stream) {
  if (width == 0) return;
  unsigned tiles = blocks(width, kSumColumns);
  int splits = column_sums_splits(rows, width);
  int64_t split_rows = (rows + splits - 1) / splits;
  if (splits == 1) {
    launch(column_sums_kernel, dim3(tiles, 1), kSumWarps * 32, 0, stream, in, rows, width, std::max<int64_t>(rows, 1),
           out, accumulate);
    return;
  }
  launch(column_sums_kernel, dim3(tiles, (unsigned) splits), kSumWarps * 32, 0, stream, in, rows, width, split_rows,
         scratch, false);
  launch(column_sums_kernel, dim3(tiles, 1), kSumWarps * 32, 0, stream, scratch, splits, width, splits, out, accumulate);
}

int conv1d_silu_partials(int batch, int time) { return batch * (int) blocks(time, kConvTile); }

template <typename T>
void conv1d_silu_backward(const T* x, int64_t x_row, const float* w, const float* bias, const int64_t* seq,
                          const ConvGradPieces<T>& dout, T* dx, float* dw_partial, float* db_partial, int batch,
                          int time, int channels, int kernel, cudaStream_t stream) {
  // V channels a thread only when no thread's V straddles two pieces: every piece's end a multiple of
  // kConvChannels (by_conv_channels checks the channels themselves)
  bool pieces_even = dout.end[0] % kConvChannels == 0 && dout.end[1] % kConvChannels == 0;
  by_conv_channels<T>(channels, x_row, {x, dout.dout[0], dout.dout[1], dout.dout[2], dx}, [&](auto per_thread) {
    constexpr int V = decltype(per_thread)::value;
    dim3 grid(blocks(channels, kConvThreads * V), blocks(time, kConvTile), batch);
    by_window(kernel, [&](auto window) {
      constexpr int M = decltype(window)::value;
      // staged (unless -DANNEAL_CONV_STAGED=0) where a thread's channels are one cp.async (4, 8 or 16 bytes)
      constexpr size_t pack = sizeof(VecPack<T, V>);
      if constexpr (ANNEAL_CONV_STAGED && (pack == 4 || pack == 8 || pack == 16)) {
        constexpr auto kernel_staged = conv_backward_kernel<T, M, V, true>;
        allow_shared<kernel_staged>(conv_stage_bytes<T, M, V>());
        launch(kernel_staged, grid, kConvThreads, conv_stage_bytes<T, M, V>(), stream, x, x_row, w, bias, seq, dout,
               dx, dw_partial, db_partial, time, channels, kernel);
      } else {
        launch(conv_backward_kernel<T, M, V, false>, grid, kConvThreads, 0, stream, x, x_row, w, bias, seq, dout, dx,
               dw_partial, db_partial, time, channels, kernel);
      }
    });
  }, pieces_even);
}

template <typename TY, typename TZ>
void gated_rms_norm_forward(const TY* y, const TZ* z, const float* w, TZ* out, float* rstd, int64_t rows, int width,
                            int groups, float eps, bool norm_before_gate, cudaStream_t stream) {
  dim3 grid((unsigned) rows, groups);
  launch(gated_norm_forward_kernel<TY, TZ>, grid, kNormThreads, 0, stream, y, z, w, out, rstd, width, groups, eps,
         norm_before_gate);
}

int gated_rms_norm_partials(int64_t rows) { return (int) blocks(rows, kNormRows); }

int gated_rms_norm_max_group_width() { return 16 * kNormThreads; }

template <typename TY, typename TZ>
void gated_rms_norm_backward(const TY* y, const TZ* z, const float* w, const float* rstd, const TZ* dout, TY* dy,
                             TZ* dz, float* dw_partial, int64_t rows, int width, int groups, bool norm_before_gate,
                             cudaStream_t stream) {
  dim3 grid(blocks(rows, kNormRows), groups);
  launch(gated_norm_backward_kernel<TY, TZ>, grid, kNormThreads, 0, stream, y, z, w, rstd, dout, dy, dz, dw_partial,
         rows, width, groups, norm_before_gate);
}


template <typename T>
void ssd_mixing_forward(const float* scores, const float* cum, const int64_t* seq, T* mixing, int batch, int chunks,
                        int heads, int groups, int q, cudaStream_t stream) {
  unsigned grid = (unsigned) ((int64_t) batch * chunks * heads);
  int lanes = q / 8;
  int threads = kMixForwardThreads / lanes * lanes;  // whole rows (q = 96: 12 lanes, 21 rows)
  size_t shared = q * sizeof(float) + (seq ? q * sizeof(int64_t) : 0);
  launch(ssd_mixing_forward_vec_kernel<T>, grid, threads, shared, stream, scores, cum, seq, mixing, heads, groups, q,
         lanes);
}

template <typename T>
void ssd_mixing_backward(const float* scores, const float* cum, const int64_t* seq, const T* dmixing, float* dscores,
                         float* dlogd, int batch, int chunks, int heads, int groups, int q, cudaStream_t stream) {
  dim3 grid((unsigned) ((int64_t) batch * chunks * groups), blocks(q, kMixRows));
  int lanes = q / 8;
  bool aligned = ((reinterpret_cast<uintptr_t>(scores) | reinterpret_cast<uintptr_t>(dmixing) |
                   reinterpret_cast<uintptr_t>(dscores)) & 15) == 0;
  if (q % 8 == 0 && lanes <= 32 && (lanes & (lanes - 1)) == 0 && aligned) {
    int threads = kMixRows * lanes;
    int warps = (threads + 31) / 32;
    int slice = mix_warp_slice(warps, q);
    size_t shared = (size_t) (1 + warps) * slice * q * sizeof(float) + (seq ? q * sizeof(int64_t) : 0);
    launch(ssd_mixing_backward_vec_kernel<T>, grid, threads, shared, stream, scores, cum, seq, dmixing, dscores, dlogd,
           heads, groups, q, lanes, slice);
    return;
  }
  size_t shared = (q + kMixRows + ((q + kMixRows) & 1)) * sizeof(float) + (seq ? q * sizeof(int64_t) : 0);
  launch(ssd_mixing_backward_kernel<T>, grid, q, shared, stream, scores, cum, seq, dmixing, dscores, dlogd, heads,
         groups, q);
  int64_t rows = (int64_t) batch * chunks * heads;
  launch(reverse_cumsum_rows_kernel, blocks(rows, kVectorThreads), kVectorThreads, 0, stream, dlogd, rows, q);
}

int ssd_mixing_max_chunk() { return 1024; }

static size_t ssd_decays_shared_bytes(int q, int h, bool backward) {
  return (size_t) (backward ? 2 : 1) * q * (h + 1) * sizeof(float);
}

bool ssd_decays_supported(int q, int h) {
  return ANNEAL_SSD_DECAYS && ssd_decays_shared_bytes(q, h, true) <= kDecayMaxShared;
}

void ssd_decays_forward(const float* dt, const float* a, const int64_t* seq, float* logd, float* cum,
                        float* to_end_tok, float* from_start, float* last, float* keep, int batch, int time,
                        int chunks, int q, int h, cudaStream_t stream) {
  allow_shared<ssd_decays_forward_kernel>(kDecayMaxShared);
  launch(ssd_decays_forward_kernel, (unsigned) ((int64_t) batch * chunks), kDecayThreads,
         ssd_decays_shared_bytes(q, h, false), stream, dt, a, seq, logd, cum, to_end_tok, from_start, last, keep, time,
         chunks, q, h);
}

void ssd_decays_backward(const float* dt, const float* a, const int64_t* seq, const float* cum, const float* g_logd,
                         const float* g_to_end_tok, const float* g_from_start, const float* g_last, float* ddt,
                         float* da, int batch, int time, int chunks, int q, int h, cudaStream_t stream) {
  allow_shared<ssd_decays_backward_kernel>(kDecayMaxShared);
  launch(ssd_decays_backward_kernel, (unsigned) ((int64_t) batch * chunks), kDecayThreads,
         ssd_decays_shared_bytes(q, h, true), stream, dt, a, seq, cum, g_logd, g_to_end_tok, g_from_start, g_last, ddt,
         da, time, chunks, q, h);
}


// The elements a thread carries: the widest V (4, 2, 1) that divides the state's elements and the
// inner run (so V elements are consecutive in memory) and to whose access size the arrays align.
template <typename T>
int pass_width(int64_t elements, int inner, std::initializer_list<const void*> arrays) {
  uintptr_t address = 0;
  for (const void* a : arrays) address |= reinterpret_cast<uintptr_t>(a);
  for (int v : {4, 2}) {
    if (elements % v == 0 && inner % v == 0 && address % (v * sizeof(T)) == 0) return v;
  }
  return 1;
}

// Calls f with std::integral_constant<int, V> for V = 1, 2 or 4.
template <typename F>
void by_width(int v, F&& f) {
  if (v == 4) {
    f(std::integral_constant<int, 4>{});
  } else if (v == 2) {
    f(std::integral_constant<int, 2>{});
  } else {
    f(std::integral_constant<int, 1>{});
  }
}

template <typename T>
void ssd_state_passing_forward(const T* states, const float* decay, const float* keep, T* entering, int batch,
                               int chunks, int heads, int64_t elements, int inner, int heads_per_group,
                               cudaStream_t stream) {
  StateLayout lay{chunks, heads, inner, heads_per_group, elements};
  by_width(pass_width<T>(elements, inner, {states, entering}), [&](auto width) {
    constexpr int V = decltype(width)::value;
    dim3 grid(blocks(elements / V, kPassThreads), heads, batch);
    launch(state_passing_forward_kernel<T, V>, grid, kPassThreads, 0, stream, states, decay, keep, entering, lay);
  });
}

template <typename T>
void ssd_state_passing_backward(const T* entering, const float* decay, const float* keep, const T* dentering,
                                T* dstates, float* ddecay, int batch, int chunks, int heads, int64_t elements,
                                int inner, int heads_per_group, cudaStream_t stream) {
  StateLayout lay{chunks, heads, inner, heads_per_group, elements};
  by_width(pass_width<T>(elements, inner, {entering, dentering, dstates}), [&](auto width) {
    constexpr int V = decltype(width)::value;
    dim3 grid(blocks(elements / V, kPassThreads), heads, batch);
    launch(state_passing_backward_kernel<T, V>, grid, kPassThreads, 0, stream, entering, decay, keep, dentering,
           dstates, ddecay, lay);
  });
}

template <typename T>
void cross_entropy_forward(T* logits, const int64_t* labels, float scale, int64_t rows, int64_t vocab,
                           float* log_prob, float* correct, bool dlogits, cudaStream_t stream) {
  if (rows == 0) return;
  if (dlogits) {
    launch(ce_forward_kernel<T, true>, (unsigned) rows, kRowThreads, 0, stream, logits, labels, scale, vocab, log_prob,
           correct);
  } else {
    launch(ce_forward_kernel<T, false>, (unsigned) rows, kRowThreads, 0, stream, logits, labels, scale, vocab, log_prob,
           correct);
  }
}

// ---------------------------------------------------------------------------------------------
// Row scaling of the SSD scan: out[i, j] = x[i, j] * s[i] for rows i of `width` elements (x dt, the
// decay to a chunk's end applied to x, the decay from its start applied to the entering state's
// term), and its gradients dx[i, j] = g[i, j] s[i], ds[i] = sum_j g[i, j] x[i, j]. ATen runs such a
// broadcast unvectorised at a third of the memory bandwidth and reduces ds in a second pass; here one
// warp owns a row (consecutive lanes, consecutive elements), products in float32.
// ---------------------------------------------------------------------------------------------
constexpr int kScaleRowsPerBlock = 8;

template <typename TX, typename TO>
__global__ void row_scale_forward_kernel(const TX* __restrict__ x, const float* __restrict__ s, TO* __restrict__ out,
                                         int64_t rows, int width) {
  wait_for_predecessors();
  int64_t row = (int64_t) blockIdx.x * kScaleRowsPerBlock + threadIdx.y;
  if (row >= rows) return;
  float scale = s[row];
  int64_t base = row * width;
  for (int j = threadIdx.x; j < width; j += 32) store(out, base + j, load(x, base + j) * scale);
}

template <typename TX, typename TO>
__global__ void row_scale_backward_kernel(const TX* __restrict__ x, const float* __restrict__ s,
                                          const TO* __restrict__ grad, TX* __restrict__ dx, float* __restrict__ ds,
                                          int64_t rows, int width) {
  wait_for_predecessors();
  int64_t row = (int64_t) blockIdx.x * kScaleRowsPerBlock + threadIdx.y;
  if (row >= rows) return;
  float scale = s[row], acc = 0.f;
  int64_t base = row * width;
  for (int j = threadIdx.x; j < width; j += 32) {
    float g = load(grad, base + j);
    acc += g * load(x, base + j);
    store(dx, base + j, g * scale);
  }
  for (int offset = 16; offset > 0; offset >>= 1) acc += __shfl_xor_sync(0xffffffffu, acc, offset);
  if (threadIdx.x == 0) ds[row] = acc;
}

// The vectorised form, for rows of 8 to 256 elements in a power of two (the SSD's head dimension):
// each thread owns 8 consecutive elements (16-byte accesses), width / 8 consecutive lanes a row, and
// ds is summed across those lanes with shuffles. With 2-byte loads from one warp per 64-element row
// the scalar kernels above ran at a fraction of the memory bandwidth (8.9 ms of a 151 ms step).
template <typename TX, typename TO>
__global__ void row_scale_forward_vec8_kernel(const TX* __restrict__ x, const float* __restrict__ s,
                                              TO* __restrict__ out, int64_t rows, int lanes) {
  wait_for_predecessors();
  int64_t i = (int64_t) blockIdx.x * kVectorThreads + threadIdx.x;
  if (i >= rows * lanes) return;
  float v[8];
  load8(x + i * 8, v);
  float scale = s[i / lanes];
#pragma unroll
  for (int k = 0; k < 8; k++) v[k] *= scale;
  store8(out + i * 8, v);
}

template <typename TX, typename TO>
__global__ void row_scale_backward_vec8_kernel(const TX* __restrict__ x, const float* __restrict__ s,
                                               const TO* __restrict__ grad, TX* __restrict__ dx,
                                               float* __restrict__ ds, int64_t rows, int lanes) {
  wait_for_predecessors();
  int64_t i = (int64_t) blockIdx.x * kVectorThreads + threadIdx.x;
  // rows * lanes is a multiple of lanes, and blocks of a multiple of 32 threads: a row's lanes are
  // all inside or all outside; the shuffles below need every lane of the warp, so none returns early
  bool inside = i < rows * lanes;
  float acc = 0.f;
  if (inside) {
    float g[8], xv[8], d[8];
    load8(grad + i * 8, g);
    load8(x + i * 8, xv);
    float scale = s[i / lanes];
#pragma unroll
    for (int k = 0; k < 8; k++) {
      acc += g[k] * xv[k];
      d[k] = g[k] * scale;
    }
    store8(dx + i * 8, d);
  }
  acc = group_sum(acc, lanes);
  if (inside && i % lanes == 0) ds[i / lanes] = acc;
}

static bool vectorisable(const void* p) { return (reinterpret_cast<uintptr_t>(p) & 15) == 0; }
// Every pointer 16-byte aligned (a null pointer, an absent array, counts as aligned).
static bool all_vectorisable(std::initializer_list<const void*> pointers) {
  for (const void* p : pointers) {
    if (!vectorisable(p)) return false;
  }
  return true;
}

// width / 8 lanes when the vectorised kernels apply, 0 otherwise
static int row_scale_lanes(int width, std::initializer_list<const void*> pointers) {
  int lanes = width / 8;
  if (width % 8 != 0 || lanes > 32 || (lanes & (lanes - 1)) != 0) return 0;
  return all_vectorisable(pointers) ? lanes : 0;
}

template <typename TX, typename TO>
void row_scale_forward(const TX* x, const float* s, TO* out, int64_t rows, int width, cudaStream_t stream) {
  if (rows == 0) return;
  if (int lanes = row_scale_lanes(width, {x, out})) {
    launch(row_scale_forward_vec8_kernel<TX, TO>, vector_blocks(rows * lanes), kVectorThreads, 0, stream, x, s, out,
           rows, lanes);
    return;
  }
  dim3 block(32, kScaleRowsPerBlock);
  unsigned grid = (unsigned) ((rows + kScaleRowsPerBlock - 1) / kScaleRowsPerBlock);
  launch(row_scale_forward_kernel<TX, TO>, grid, block, 0, stream, x, s, out, rows, width);
}

template <typename TX, typename TO>
void row_scale_backward(const TX* x, const float* s, const TO* grad, TX* dx, float* ds, int64_t rows, int width,
                        cudaStream_t stream) {
  if (rows == 0) return;
  if (int lanes = row_scale_lanes(width, {x, grad, dx})) {
    launch(row_scale_backward_vec8_kernel<TX, TO>, vector_blocks(rows * lanes), kVectorThreads, 0, stream, x, s, grad,
           dx, ds, rows, lanes);
    return;
  }
  dim3 block(32, kScaleRowsPerBlock);
  unsigned grid = (unsigned) ((rows + kScaleRowsPerBlock - 1) / kScaleRowsPerBlock);
  launch(row_scale_backward_kernel<TX, TO>, grid, block, 0, stream, x, s, grad, dx, ds, rows, width);
}

// ---------------------------------------------------------------------------------------------
// The SSD scan's output, assembled in one pass: y[b,t,h,p] = y_off[b,c,g,i,r,p] * from_start[b,c,h,i]
// + y_diag[b,c,g,r,i,p] + x[b,t,h,p] * D[h] (t = c q + i, h = g r + rr), written in the matmuls'
// type. The entering states' term, scaled by the decay from the chunk's start, plus the intra-chunk
// term read in its heads' layout, plus Mamba-2's skip connection D x. Composed in ATen it took a
// float32 scaled copy, a float32 sum over a permuted view, a float32 copy of x, its product with D,
// another sum and a cast back: six passes at float32 width. Backward writes every gradient in one
// pass: d y_off = g from_start, d y_diag = g (its layout), dx = g D, and per (token, head) the sums
// over p of g y_off (d from_start) and of g x (dD, summed over tokens by the caller).
// ---------------------------------------------------------------------------------------------
struct SsdCombineShape {
  int b, c, q, g, r, p, t;   // t: the output's tokens (c q less the padding)
  int64_t x_row;             // x's stride between tokens (a view of the conv output: not h p)
  __device__ __forceinline__ int h() const { return g * r; }
};

template <typename T>
__global__ void ssd_combine_forward_kernel(const T* __restrict__ y_off, const float* __restrict__ from_start,
                                           const T* __restrict__ y_diag, const T* __restrict__ x,
                                           const float* __restrict__ d, T* __restrict__ out, SsdCombineShape sh) {
  wait_for_predecessors();
  int lanes = sh.p / 8, h = sh.h();
  int64_t i = (int64_t) blockIdx.x * kVectorThreads + threadIdx.x;
  if (i >= (int64_t) sh.b * sh.t * h * lanes) return;
  int pp = (int) (i % lanes) * 8;
  int64_t rest = i / lanes;
  int hh = (int) (rest % h);
  rest /= h;
  int tt = (int) (rest % sh.t), bb = (int) (rest / sh.t);
  int cc = tt / sh.q, ii = tt % sh.q, gg = hh / sh.r, rr = hh % sh.r;
  int64_t chunk = (int64_t) bb * sh.c + cc;
  float off[8], diag[8], xv[8], yv[8];
  load8(y_off + (((chunk * sh.g + gg) * sh.q + ii) * sh.r + rr) * sh.p + pp, off);
  load8(y_diag + (((chunk * sh.g + gg) * sh.r + rr) * sh.q + ii) * sh.p + pp, diag);
  float fs = from_start[(chunk * h + hh) * sh.q + ii];
  float dd = d ? d[hh] : 0.f;
  if (d) load8(x + ((int64_t) bb * sh.t + tt) * sh.x_row + hh * sh.p + pp, xv);
#pragma unroll
  for (int k = 0; k < 8; k++) yv[k] = off[k] * fs + diag[k] + (d ? xv[k] * dd : 0.f);
  store8(out + (((int64_t) bb * sh.t + tt) * h + hh) * sh.p + pp, yv);
}

// over every token of the padded chunks (c q): the padding's gradients are zeros
template <typename T>
__global__ void ssd_combine_backward_kernel(const T* __restrict__ y_off, const float* __restrict__ from_start,
                                            const T* __restrict__ x, const float* __restrict__ d,
                                            const T* __restrict__ grad, T* __restrict__ dy_off,
                                            float* __restrict__ dfrom_start, T* __restrict__ dy_diag,
                                            T* __restrict__ dx, float* __restrict__ dd_partial, SsdCombineShape sh) {
  wait_for_predecessors();
  int lanes = sh.p / 8, h = sh.h(), padded = sh.c * sh.q;
  int64_t i = (int64_t) blockIdx.x * kVectorThreads + threadIdx.x;
  // the group sums need every lane: threads past the end compute zeros and store nothing
  bool inside = i < (int64_t) sh.b * padded * h * lanes;
  int pp = (int) (i % lanes) * 8;
  int64_t rest = i / lanes;
  int hh = (int) (rest % h);
  rest /= h;
  int tt = (int) (rest % padded), bb = (int) (rest / padded);
  bool token = inside && tt < sh.t;
  int cc = tt / sh.q, ii = tt % sh.q, gg = hh / sh.r, rr = hh % sh.r;
  int64_t chunk = (int64_t) bb * sh.c + cc;
  int64_t off_at = (((chunk * sh.g + gg) * sh.q + ii) * sh.r + rr) * sh.p + pp;
  int64_t diag_at = (((chunk * sh.g + gg) * sh.r + rr) * sh.q + ii) * sh.p + pp;
  int64_t tok_at = (((int64_t) bb * sh.t + tt) * h + hh) * sh.p + pp;
  float g[8] = {0.f, 0.f, 0.f, 0.f, 0.f, 0.f, 0.f, 0.f}, off[8], xv[8], tmp[8];
  float fs = inside ? from_start[(chunk * h + hh) * sh.q + ii] : 0.f;
  float dd = d && inside ? d[hh] : 0.f;
  float sum_off = 0.f, sum_x = 0.f;
  if (token) {
    load8(grad + tok_at, g);
    load8(y_off + off_at, off);
#pragma unroll
    for (int k = 0; k < 8; k++) sum_off += g[k] * off[k];
    if (d) {
      load8(x + ((int64_t) bb * sh.t + tt) * sh.x_row + hh * sh.p + pp, xv);
#pragma unroll
      for (int k = 0; k < 8; k++) {
        sum_x += g[k] * xv[k];
        tmp[k] = g[k] * dd;
      }
      if (dx) store8(dx + tok_at, tmp);   // null: scale_two_layouts_backward adds g D into its dx
    }
  }
  if (inside) {
#pragma unroll
    for (int k = 0; k < 8; k++) tmp[k] = g[k] * fs;
    store8(dy_off + off_at, tmp);
    store8(dy_diag + diag_at, g);
  }
  sum_off = group_sum(sum_off, lanes);
  sum_x = group_sum(sum_x, lanes);
  if (inside && pp == 0) {
    dfrom_start[(chunk * h + hh) * sh.q + ii] = sum_off;
    if (d) dd_partial[((int64_t) bb * padded + tt) * h + hh] = sum_x;
  }
}

template <typename T>
void ssd_combine_forward(const T* y_off, const float* from_start, const T* y_diag, const T* x, int64_t x_row,
                         const float* d, T* out, int batch, int chunks, int q, int groups, int heads_per_group,
                         int p, int time, cudaStream_t stream) {
  SsdCombineShape sh{batch, chunks, q, groups, heads_per_group, p, time, x_row};
  int64_t threads = (int64_t) batch * time * groups * heads_per_group * (p / 8);
  if (threads == 0) return;
  launch(ssd_combine_forward_kernel<T>, vector_blocks(threads), kVectorThreads, 0, stream, y_off, from_start, y_diag, x,
         d, out, sh);
}

template <typename T>
void ssd_combine_backward(const T* y_off, const float* from_start, const T* x, int64_t x_row, const float* d,
                          const T* grad, T* dy_off, float* dfrom_start, T* dy_diag, T* dx, float* dd_partial,
                          int batch, int chunks, int q, int groups, int heads_per_group, int p, int time,
                          cudaStream_t stream) {
  SsdCombineShape sh{batch, chunks, q, groups, heads_per_group, p, time, x_row};
  int64_t threads = (int64_t) batch * chunks * q * groups * heads_per_group * (p / 8);
  if (threads == 0) return;
  launch(ssd_combine_backward_kernel<T>, vector_blocks(threads), kVectorThreads, 0, stream, y_off, from_start, x, d,
         grad, dy_off, dfrom_start, dy_diag, dx, dd_partial, sh);
}

// ---------------------------------------------------------------------------------------------
// x dt for the SSD scan in both layouts it is read in: the tokens' [b,t,h,p] (element-wise work,
// the chunk-end states) and the heads' [b,c,h,q,p] (t = c q + i; the intra-chunk product's operand).
// Written once each from one read of x (itself a view of the conv output, `x_row` elements between
// tokens), instead of a contiguous copy of x, the product, and a permuted copy for the product's
// batched GEMM. Backward sums the two layouts' gradients as it reads them: dx = (g_tok + g_heads) dt
// and ddt = sum_p (g_tok + g_heads) x, either gradient possibly absent.
// ---------------------------------------------------------------------------------------------
// v as T holds it (the weighted tokens are made from the tokens' layout's rounded values, as a
// separate pass over that layout made them)
template <typename T>
__device__ __forceinline__ float rounded_to(float v) {
  T t;
  store(&t, 0, v);
  return load(&t, 0);
}

// WEIGHTED: weighted.out is written (a kernel of its own, so that the default keeps its registers).
template <typename T, bool WEIGHTED>
__global__ void scale_two_layouts_forward_kernel(const T* __restrict__ x, const float* __restrict__ dt,
                                                 T* __restrict__ tokens, T* __restrict__ heads_layout,
                                                 WeightedTokens<T> weighted, SsdCombineShape sh) {
  wait_for_predecessors();
  int lanes = sh.p / 8, h = sh.h();
  int64_t i = (int64_t) blockIdx.x * kVectorThreads + threadIdx.x;
  if (i >= (int64_t) sh.b * sh.t * h * lanes) return;
  int pp = (int) (i % lanes) * 8;
  int64_t row = i / lanes;   // (b, t, h)
  int hh = (int) (row % h);
  int64_t bt = row / h;
  int tt = (int) (bt % sh.t), bb = (int) (bt / sh.t);
  float v[8];
  load8(x + bt * sh.x_row + hh * sh.p + pp, v);
  float scale = dt[row];
#pragma unroll
  for (int k = 0; k < 8; k++) v[k] *= scale;
  store8(tokens + row * sh.p + pp, v);
  if constexpr (WEIGHTED) {
    float w[8], e = weighted.to_end[row];
#pragma unroll
    for (int k = 0; k < 8; k++) w[k] = rounded_to<T>(v[k]) * e;
    store8(weighted.out + row * sh.p + pp, w);
  }
  if (heads_layout == nullptr) return;   // the tokens' layout alone (the diagonal kernels read it)
  int cc = tt / sh.q, ii = tt % sh.q;
  store8(heads_layout + ((((int64_t) bb * sh.c + cc) * h + hh) * sh.q + ii) * sh.p + pp, v);
}

template <typename T, bool WEIGHTED>
__global__ void scale_two_layouts_backward_kernel(const T* __restrict__ x, const float* __restrict__ dt,
                                                  const T* __restrict__ g_tokens, const T* __restrict__ g_heads,
                                                  const T* __restrict__ g_skip, const float* __restrict__ d_skip,
                                                  WeightedTokens<T> weighted, T* __restrict__ dx,
                                                  float* __restrict__ ddt, SsdCombineShape sh) {
  wait_for_predecessors();
  int lanes = sh.p / 8, h = sh.h();
  int64_t i = (int64_t) blockIdx.x * kVectorThreads + threadIdx.x;
  bool inside = i < (int64_t) sh.b * sh.t * h * lanes;
  int pp = (int) (i % lanes) * 8;
  int64_t row = i / lanes;
  int hh = (int) (row % h);
  int64_t bt = row / h;
  int tt = (int) (bt % sh.t), bb = (int) (bt / sh.t);
  float acc = 0.f, acc_end = 0.f;
  if (inside) {
    float g[8] = {0.f, 0.f, 0.f, 0.f, 0.f, 0.f, 0.f, 0.f}, other[8], xv[8];
    if (g_tokens) load8(g_tokens + row * sh.p + pp, g);
    if (g_heads) {
      int cc = tt / sh.q, ii = tt % sh.q;
      load8(g_heads + ((((int64_t) bb * sh.c + cc) * h + hh) * sh.q + ii) * sh.p + pp, other);
#pragma unroll
      for (int k = 0; k < 8; k++) g[k] += other[k];
    }
    load8(x + bt * sh.x_row + hh * sh.p + pp, xv);
    float scale = dt[row];
    if constexpr (WEIGHTED) {   // out = (x dt) e: (x dt)'s gradient g_out e joins the layouts' (in float32)
      float e = weighted.to_end[row];
      load8(weighted.g_out + row * sh.p + pp, other);
#pragma unroll
      for (int k = 0; k < 8; k++) {
        acc_end += other[k] * rounded_to<T>(xv[k] * scale);
        g[k] += other[k] * e;
      }
    }
#pragma unroll
    for (int k = 0; k < 8; k++) {
      acc += g[k] * xv[k];
      other[k] = g[k] * scale;
    }
    if (g_skip) {   // the skip connection's y = ... + x D[h]: its x-gradient, summed here in float32
      float gs[8], dd = d_skip[hh];
      load8(g_skip + row * sh.p + pp, gs);
#pragma unroll
      for (int k = 0; k < 8; k++) other[k] += gs[k] * dd;
    }
    store8(dx + row * sh.p + pp, other);
  }
  acc = group_sum(acc, lanes);
  if constexpr (WEIGHTED) acc_end = group_sum(acc_end, lanes);
  if (inside && pp == 0) {
    ddt[row] = acc;
    if constexpr (WEIGHTED) weighted.dto_end[row] = acc_end;
  }
}

template <typename T>
void scale_two_layouts_forward(const T* x, int64_t x_row, const float* dt, T* tokens, T* heads_layout,
                               const WeightedTokens<T>& weighted, int batch, int time, int heads, int p, int q,
                               cudaStream_t stream) {
  SsdCombineShape sh{batch, time / q, q, 1, heads, p, time, x_row};
  int64_t threads = (int64_t) batch * time * heads * (p / 8);
  if (threads == 0) return;
  auto kernel = weighted.out ? scale_two_layouts_forward_kernel<T, true> : scale_two_layouts_forward_kernel<T, false>;
  launch(kernel, vector_blocks(threads), kVectorThreads, 0, stream, x, dt, tokens, heads_layout, weighted, sh);
}

template <typename T>
void scale_two_layouts_backward(const T* x, int64_t x_row, const float* dt, const T* g_tokens, const T* g_heads,
                                const T* g_skip, const float* d_skip, const WeightedTokens<T>& weighted, T* dx,
                                float* ddt, int batch, int time, int heads, int p, int q, cudaStream_t stream) {
  SsdCombineShape sh{batch, time / q, q, 1, heads, p, time, x_row};
  int64_t threads = (int64_t) batch * time * heads * (p / 8);
  if (threads == 0) return;
  auto kernel = weighted.g_out ? scale_two_layouts_backward_kernel<T, true>
                               : scale_two_layouts_backward_kernel<T, false>;
  launch(kernel, vector_blocks(threads), kVectorThreads, 0, stream, x, dt, g_tokens, g_heads, g_skip, d_skip, weighted,
         dx, ddt, sh);
}

// ---------------------------------------------------------------------------------------------
// silu(gate) * up, the SwiGLU of the MLP and the Mamba output gate, over rows of `width` elements
// (each input with its own row stride: the Mamba gate is a view of the input projection). Backward
// recomputes the sigmoid: d gate = g up s (1 + gate (1 - s)), d up = g gate s; given `product`, it also
// writes the forward's result again there (silu_mul_linear keeps no product). TorchScript's fuser
// made these kernels at about half the memory bandwidth (9.1 ms of a 124 ms step at 8 x 2048).
// ---------------------------------------------------------------------------------------------
template <typename T>
__global__ void silu_mul_forward_kernel(const T* __restrict__ gate, int64_t gate_row, const T* __restrict__ up,
                                        int64_t up_row, T* __restrict__ out, int64_t rows, int width) {
  wait_for_predecessors();
  int lanes = width / 8;
  int64_t i = (int64_t) blockIdx.x * kVectorThreads + threadIdx.x;
  if (i >= rows * lanes) return;
  int64_t row = i / lanes;
  int col = (int) (i % lanes) * 8;
  float g[8], u[8];
  load8(gate + row * gate_row + col, g);
  load8(up + row * up_row + col, u);
#pragma unroll
  for (int k = 0; k < 8; k++) g[k] = g[k] * sigmoid(g[k]) * u[k];
  store8(out + row * width + col, g);
}

template <typename T>
__global__ void silu_mul_backward_kernel(const T* __restrict__ gate, int64_t gate_row, const T* __restrict__ up,
                                         int64_t up_row, const T* __restrict__ grad, T* __restrict__ dgate,
                                         T* __restrict__ dup, T* __restrict__ product, int64_t rows, int width) {
  wait_for_predecessors();
  int lanes = width / 8;
  int64_t i = (int64_t) blockIdx.x * kVectorThreads + threadIdx.x;
  if (i >= rows * lanes) return;
  int64_t row = i / lanes;
  int col = (int) (i % lanes) * 8;
  float g[8], u[8], d[8], dg[8], du[8], out[8];
  load8(gate + row * gate_row + col, g);
  load8(up + row * up_row + col, u);
  load8(grad + row * width + col, d);
#pragma unroll
  for (int k = 0; k < 8; k++) {
    float s = sigmoid(g[k]);
    du[k] = d[k] * g[k] * s;
    dg[k] = d[k] * u[k] * s * (1.f + g[k] * (1.f - s));
    out[k] = g[k] * s * u[k];   // the forward's product, in its order of operations
  }
  store8(dgate + row * width + col, dg);
  store8(dup + row * width + col, du);
  if (product != nullptr) store8(product + row * width + col, out);
}

template <typename T>
void silu_mul_forward(const T* gate, int64_t gate_row, const T* up, int64_t up_row, T* out, int64_t rows, int width,
                      cudaStream_t stream) {
  int64_t threads = rows * (width / 8);
  if (threads == 0) return;
  launch(silu_mul_forward_kernel<T>, vector_blocks(threads), kVectorThreads, 0, stream, gate, gate_row, up, up_row, out,
         rows, width);
}

template <typename T>
void silu_mul_backward(const T* gate, int64_t gate_row, const T* up, int64_t up_row, const T* grad, T* dgate, T* dup,
                       T* product, int64_t rows, int width, cudaStream_t stream) {
  int64_t threads = rows * (width / 8);
  if (threads == 0) return;
  launch(silu_mul_backward_kernel<T>, vector_blocks(threads), kVectorThreads, 0, stream, gate, gate_row, up, up_row,
         grad, dgate, dup, product, rows, width);
}

// ---------------------------------------------------------------------------------------------
// Rotary position embedding, rotate_half form (transformers' apply_rotary_pos_emb), on the three
// parts of a fused q, k, v projection (qkv_rope, anneal_ops.cpp): for q and k [b, t, h, d] and cos,
// sin [B, 1, t, d] float32 (B = 1 or b; per-row positions restart in packed rows), with x1, x2 the
// two halves of d: out1 = x1 cos1 - x2 sin1, out2 = x2 cos2 + x1 sin2, times the part's scale
// (Falcon-H1's key multiplier for k). Backward: dx1 = (g1 cos1 + g2 sin2) scale,
// dx2 = (g2 cos2 - g1 sin1) scale. v is copied, either way. Each thread owns 8 elements of each half
// of one head. The forward reads the projection in place and writes q, k and v; the backward reads
// their gradients and writes the projection's, so one launch each way serves all three (v's row
// copies as cudaMemcpy2DAsync ran at about 1.3 TB/s, 0.29 ms a step at 8 x 2048:
// docs/benchmarks/2026-12-03-h200-qkv-rope). In TorchScript RoPE was a cat of the negated halves, two
// products and a sum each way (RoPE's cat alone 2.4 ms of a 124 ms step at 8 x 2048).
// ---------------------------------------------------------------------------------------------
template <typename T, bool kBackward>
__global__ void qkv_rope_kernel(QkvParts<T> parts, const float* __restrict__ cos, const float* __restrict__ sin,
                                int b, int t, int d, int cos_rows) {
  wait_for_predecessors();
  int half = d / 2, lanes = half / 8;
  int all_heads = parts.heads[0] + parts.heads[1] + parts.heads[2];
  int64_t i = (int64_t) blockIdx.x * kVectorThreads + threadIdx.x;
  if (i >= (int64_t) b * t * all_heads * lanes) return;
  int j = (int) (i % lanes) * 8;
  int64_t token_head = i / lanes;          // (b, t, head of the projection)
  int64_t bt = token_head / all_heads;
  int head = (int) (token_head % all_heads), part = 0;
  if (head >= parts.heads[0]) {
    head -= parts.heads[0];
    part = 1;
    if (head >= parts.heads[1]) {
      head -= parts.heads[1];
      part = 2;
    }
  }
  int64_t head_at = (int64_t) head * d + j;
  // the part's fields picked by constant indices (an index known only at run time put the whole
  // parameter struct on the stack)
  const T* x = (part == 0 ? parts.src[0] : part == 1 ? parts.src[1] : parts.src[2]) +
               bt * (part == 0 ? parts.src_row[0] : part == 1 ? parts.src_row[1] : parts.src_row[2]) + head_at;
  T* out = (part == 0 ? parts.dst[0] : part == 1 ? parts.dst[1] : parts.dst[2]) +
           bt * (part == 0 ? parts.dst_row[0] : part == 1 ? parts.dst_row[1] : parts.dst_row[2]) + head_at;
  float x1[8], x2[8], o1[8], o2[8];
  load8(x, x1);
  load8(x + half, x2);
  if (part == 2) {   // v: as it is
    store8(out, x1);
    store8(out + half, x2);
    return;
  }
  int tt = (int) (bt % t), bb = (int) (bt / t);
  int64_t angle = ((int64_t) (cos_rows == 1 ? 0 : bb) * t + tt) * d + j;
  float scale = part == 0 ? parts.scale[0] : parts.scale[1];
#pragma unroll
  for (int k = 0; k < 8; k++) {
    float c1 = cos[angle + k], s1 = sin[angle + k], c2 = cos[angle + half + k], s2 = sin[angle + half + k];
    if (kBackward) {  // x1, x2 hold the output gradient's halves
      o1[k] = (x1[k] * c1 + x2[k] * s2) * scale;
      o2[k] = (x2[k] * c2 - x1[k] * s1) * scale;
    } else {
      o1[k] = (x1[k] * c1 - x2[k] * s1) * scale;
      o2[k] = (x2[k] * c2 + x1[k] * s2) * scale;
    }
  }
  store8(out, o1);
  store8(out + half, o2);
}

template <typename T>
void qkv_rope_apply(const QkvParts<T>& parts, const float* cos, const float* sin, int batch, int time, int dim,
                    int cos_rows, bool backward, cudaStream_t stream) {
  int64_t threads = (int64_t) batch * time * (parts.heads[0] + parts.heads[1] + parts.heads[2]) * (dim / 16);
  if (threads == 0) return;
  if (backward) {
    launch(qkv_rope_kernel<T, true>, vector_blocks(threads), kVectorThreads, 0, stream, parts, cos, sin, batch, time,
           dim, cos_rows);
  } else {
    launch(qkv_rope_kernel<T, false>, vector_blocks(threads), kVectorThreads, 0, stream, parts, cos, sin, batch, time,
           dim, cos_rows);
  }
}

// ---------------------------------------------------------------------------------------------
// RMSNorm of the float32 residual stream into the compute type (FalconH1RMSNorm, Zhang & Sennrich
// 2019), optionally after adding the layer's two branch outputs (a, b in the compute type):
//   s = x + a + b (float32, written to `sum`),  out = s r w,  r = rsqrt(mean(s^2) + eps).
// Backward, with gy = dout w and dsum the gradient arriving at s from its other readers:
//   ds = dsum + r (gy - s r^2 mean(gy s)),  da = db = ds (in the compute type),  dw = sum_rows dout s r.
// One block of kResidualThreads a row, each thread on up to kResidualSlots groups of 8 channels
// (16-byte accesses). It replaces the norm, its two casts, the branch additions, the float32
// gradient accumulation and PyTorch's weight-gradient kernel (GammaBetaBackward): about 8 ms of
// element-wise work in a 104 ms step at 8 x 2048.
// ROWS8 (ANNEAL_NORM_FP8, on by default since its H100 run, -0.5 ms a step alone, -2.6 ms with QUANTIZE_VEC
// and SSD_WEIGHTED, docs/benchmarks/2026-12-05-h100-experiments-one-by-one; -DANNEAL_NORM_FP8=0 turns it off):
// the forward also writes out's rows in float8 e4m3 with one scale a row, as quantize_rows_e4m3 would
// make them from `out` (the same bits: the rounded values' row maximum, s = max / 448, q = e4m3(v / s)),
// for the float8 forward GEMMs of the linear layer pair that reads the norm (linear_pair's x8): one
// more block reduction here in place of a launch that reads the row again. The norms' outputs were
// 24 of the 36 x quantisations a step on the 291M model at 8 x 2048, about 0.80 of their 1.21 ms
// (docs/benchmarks/2026-12-05-h200-experiments/call-2/variants/layers-5.log).
// ---------------------------------------------------------------------------------------------
#ifndef ANNEAL_NORM_FP8
#define ANNEAL_NORM_FP8 1
#endif
constexpr int kResidualThreads = 128;
constexpr int kResidualSlots = 4;   // widths up to 128 * 8 * 4 = 4096; a launch holds the fewest slots its width needs
constexpr int kResidualRows = 8;    // rows per backward block: the weight-gradient partials
constexpr float kE4m3Max = 448.f;   // e4m3's largest finite value: the row-wise float8 scales' divisor

// The row-wise float8 scale of a row (or column) whose largest magnitude is amax: amax / 448, 1 for
// zeros, and at least float32's smallest normal. Under it (amax below about 5.3e-36) fast math
// flushed the scale to 0, so 1 / s was inf and every zero of the row became NaN (0 x inf): the one
// way these rows make a NaN from finite values, and the likely cause of stop 42's non-finite
// gradients with float8 x-gradients (-DANNEAL_FP8_BACKWARD=1; with it, test_kernels.py's
// test_linear_tiny_rows has every output and x-gradient finite: docs/benchmarks/2026-12-05-h100-experiments-one-by-one).
// Every kernel that makes float8 rows takes it here, so their rows are the same bits.
__device__ __forceinline__ float e4m3_scale(float amax) {
  return amax > 0.f ? fmaxf(amax / kE4m3Max, FLT_MIN) : 1.f;
}

// Eight values times `inverse` (1 / their scale) as e4m3, saturating, in one 8-byte store.
__device__ __forceinline__ void store8_e4m3(__nv_fp8_e4m3* p, const float (&v)[8], float inverse) {
  VecPack<__nv_fp8_e4m3, 8> pack;
#pragma unroll
  for (int m = 0; m < 8; m++) pack.e[m] = __nv_fp8_e4m3(v[m] * inverse);   // satfinite
  *reinterpret_cast<VecPack<__nv_fp8_e4m3, 8>*>(p) = pack;
}

// v's eight values rounded to T's and back, in place: what store8 writes, as a reader of it sees it.
template <typename T>
__device__ __forceinline__ void round8(float (&v)[8]) {
  using Pair = HalfPair<T>;
#pragma unroll
  for (int k = 0; k < 4; k++) {
    float2 f = Pair::to_float2(Pair::from_floats(v[2 * k], v[2 * k + 1]));
    v[2 * k] = f.x;
    v[2 * k + 1] = f.y;
  }
}

template <typename T, int Slots, bool ROWS8>
__global__ void residual_norm_forward_kernel(const float* __restrict__ x, const T* __restrict__ a,
                                             const T* __restrict__ b, const float* __restrict__ w,
                                             float* __restrict__ sum, T* __restrict__ out, float* __restrict__ rstd,
                                             int width, float eps, __nv_fp8_e4m3* __restrict__ q8,
                                             float* __restrict__ q8_scale) {
  wait_for_predecessors();
  __shared__ float shared[32];
  int64_t base = (int64_t) blockIdx.x * width;
  float v[Slots][8];
  float squares = 0.f;
#pragma unroll
  for (int k = 0; k < Slots; k++) {
    int j = (k * kResidualThreads + threadIdx.x) * 8;
    if (j >= width) continue;
    load8(x + base + j, v[k]);
    if (a != nullptr) {
      float t[8];
      load8(a + base + j, t);
#pragma unroll
      for (int m = 0; m < 8; m++) v[k][m] += t[m];
      load8(b + base + j, t);
#pragma unroll
      for (int m = 0; m < 8; m++) v[k][m] += t[m];
      store8(sum + base + j, v[k]);
    }
#pragma unroll
    for (int m = 0; m < 8; m++) squares += v[k][m] * v[k][m];
  }
  float r = rsqrtf(block_sum(squares, shared) / width + eps);
  if (threadIdx.x == 0) rstd[blockIdx.x] = r;
  float amax = 0.f;
#pragma unroll
  for (int k = 0; k < Slots; k++) {
    int j = (k * kResidualThreads + threadIdx.x) * 8;
    if (j >= width) continue;
    float wk[8];
    load8(w + j, wk);
#pragma unroll
    for (int m = 0; m < 8; m++) wk[m] *= v[k][m] * r;
    store8(out + base + j, wk);
    if constexpr (ROWS8) {
      round8<T>(wk);
#pragma unroll
      for (int m = 0; m < 8; m++) {
        v[k][m] = wk[m];   // s is written: v now holds out's values
        amax = fmaxf(amax, fabsf(wk[m]));
      }
    }
  }
  if constexpr (ROWS8) {
    // block_reduce syncs before it writes `shared`, so block_sum's reads of it are done
    amax = block_reduce(amax, shared, MaxOp{}, 0.f);
    float s8 = e4m3_scale(amax);
    float inverse = 1.f / s8;
#pragma unroll
    for (int k = 0; k < Slots; k++) {
      int j = (k * kResidualThreads + threadIdx.x) * 8;
      if (j < width) store8_e4m3(q8 + base + j, v[k], inverse);
    }
    if (threadIdx.x == 0) q8_scale[blockIdx.x] = s8;
  }
}

template <typename T, int Slots>
__global__ void residual_norm_backward_kernel(const float* __restrict__ s, const float* __restrict__ w,
                                              const float* __restrict__ rstd, const T* __restrict__ dout,
                                              const float* __restrict__ dsum, float* __restrict__ ds,
                                              T* __restrict__ da, T* __restrict__ db, float* __restrict__ dw_partial,
                                              int64_t rows, int width) {
  wait_for_predecessors();
  __shared__ float shared[32];
  float dw[Slots][8];
#pragma unroll
  for (int k = 0; k < Slots; k++) {
#pragma unroll
    for (int m = 0; m < 8; m++) dw[k][m] = 0.f;
  }
  int64_t first = (int64_t) blockIdx.x * kResidualRows;
  for (int64_t row = first; row < min(first + kResidualRows, rows); row++) {
    int64_t base = row * width;
    float r = rstd[row];
    float v[Slots][8], gy[Slots][8];
    float dot = 0.f;
#pragma unroll
    for (int k = 0; k < Slots; k++) {
      int j = (k * kResidualThreads + threadIdx.x) * 8;
      if (j >= width) continue;
      float d[8], wk[8];
      load8(s + base + j, v[k]);
      load8(dout + base + j, d);
      load8(w + j, wk);
#pragma unroll
      for (int m = 0; m < 8; m++) {
        gy[k][m] = d[m] * wk[m];
        dot += gy[k][m] * v[k][m];
        dw[k][m] += d[m] * v[k][m] * r;
      }
    }
    float mean = block_sum(dot, shared) / width;
#pragma unroll
    for (int k = 0; k < Slots; k++) {
      int j = (k * kResidualThreads + threadIdx.x) * 8;
      if (j >= width) continue;
      float g[8];
      if (dsum != nullptr) {
        load8(dsum + base + j, g);
      } else {
#pragma unroll
        for (int m = 0; m < 8; m++) g[m] = 0.f;
      }
#pragma unroll
      for (int m = 0; m < 8; m++) g[m] += r * (gy[k][m] - v[k][m] * r * r * mean);
      store8(ds + base + j, g);
      if (da != nullptr) {
        store8(da + base + j, g);
        store8(db + base + j, g);
      }
    }
  }
#pragma unroll
  for (int k = 0; k < Slots; k++) {
    int j = (k * kResidualThreads + threadIdx.x) * 8;
    if (j < width) store8(dw_partial + (int64_t) blockIdx.x * width + j, dw[k]);
  }
}

// Calls f with std::integral_constant<int, Slots>, the fewest 8-channel groups a thread holds for `width`.
template <typename F>
void by_slots(int width, F&& f) {
  by_size<1, 2, kResidualSlots>((width + kResidualThreads * 8 - 1) / (kResidualThreads * 8), f);
}

template <typename T>
void residual_norm_forward(const float* x, const T* a, const T* b, const float* w, float* sum, T* out, float* rstd,
                           int64_t rows, int width, float eps, cudaStream_t stream, uint8_t* q8, float* q8_scale) {
  if (rows == 0) return;
  auto* q = reinterpret_cast<__nv_fp8_e4m3*>(q8);
  by_slots(width, [&](auto slots) {
    constexpr int kSlots = decltype(slots)::value;
    if constexpr (ANNEAL_NORM_FP8 && !std::is_same_v<T, float>) {
      if (q != nullptr) {
        launch(residual_norm_forward_kernel<T, kSlots, true>, (unsigned) rows, kResidualThreads, 0, stream, x, a, b, w,
               sum, out, rstd, width, eps, q, q8_scale);
        return;
      }
    }
    if (q != nullptr) throw std::invalid_argument("residual_norm_forward: float8 rows asked of a build or type without them");
    launch(residual_norm_forward_kernel<T, kSlots, false>, (unsigned) rows, kResidualThreads, 0, stream, x, a, b, w,
           sum, out, rstd, width, eps, q, q8_scale);
  });
}

bool residual_norm_rows_e4m3() { return ANNEAL_NORM_FP8 != 0; }

int residual_norm_partials(int64_t rows) { return (int) ((rows + kResidualRows - 1) / kResidualRows); }

template <typename T>
void residual_norm_backward(const float* s, const float* w, const float* rstd, const T* dout, const float* dsum,
                            float* ds, T* da, T* db, float* dw_partial, int64_t rows, int width, cudaStream_t stream) {
  if (rows == 0) return;
  by_slots(width, [&](auto slots) {
    launch(residual_norm_backward_kernel<T, decltype(slots)::value>, (unsigned) residual_norm_partials(rows),
           kResidualThreads, 0, stream, s, w, rstd, dout, dsum, ds, da, db, dw_partial, rows, width);
  });
}

// out = x + a (x, out float32; a in the compute type), eight elements a thread: the MLP branch's
// addition to the residual stream. ATen's mixed-type addition takes its unvectorised kernel, 63 us
// for 16,384 x 1024 elements on an H200 (0.76 ms a step at 8 x 2048, docs/benchmarks/
// 2026-12-03-h200-head-slices). n a multiple of 8 and the three 16-byte aligned (residual_add_supported).
template <typename T>
__global__ void residual_add_kernel(const float* __restrict__ x, const T* __restrict__ a, float* __restrict__ out,
                                    int64_t groups) {
  wait_for_predecessors();
  int64_t i = (int64_t) blockIdx.x * kVectorThreads + threadIdx.x;
  if (i >= groups) return;
  float xv[8], av[8];
  load8(x + i * 8, xv);
  load8(a + i * 8, av);
#pragma unroll
  for (int k = 0; k < 8; k++) xv[k] += av[k];
  store8(out + i * 8, xv);
}

template <typename T>
void residual_add(const float* x, const T* a, float* out, int64_t n, cudaStream_t stream) {
  int64_t groups = n / 8;
  if (groups == 0) return;
  launch(residual_add_kernel<T>, vector_blocks(groups), kVectorThreads, 0, stream, x, a, out, groups);
}

bool residual_add_supported(int64_t n, std::initializer_list<const void*> pointers) {
  return n % 8 == 0 && all_vectorisable(pointers);
}

bool residual_norm_supported(int width, std::initializer_list<const void*> pointers) {
  return width % 8 == 0 && width <= kResidualThreads * 8 * kResidualSlots && all_vectorisable(pointers);
}

bool silu_mul_supported(int width, int64_t gate_row, int64_t up_row, int element_size,
                        std::initializer_list<const void*> pointers) {
  return width % 8 == 0 && (gate_row * element_size) % 16 == 0 && (up_row * element_size) % 16 == 0 &&
         all_vectorisable(pointers);
}

bool ssd_combine_supported(int p, std::initializer_list<const void*> pointers) {
  return row_scale_lanes(p, pointers) != 0;
}

bool ssd_diagonal_supported(int q, int p, int64_t x_chunk, int64_t x_head, int64_t x_row,
                            std::initializer_list<const void*> pointers) {
  return ANNEAL_SSD_DIAGONAL && q % kDiagTile == 0 && q <= kDiagMaxChunk && (p == 16 || p == 32 || p == 64 || p == 128) &&
         x_chunk % 8 == 0 && x_head % 8 == 0 && x_row % 8 == 0 && all_vectorisable(pointers);
}

// f(kernel-selector) with the column tiles p / 16 (1, 2, 4 or 8) as a compile-time constant.
template <typename F>
void by_column_tiles(int p, F&& f) {
  switch (p / kDiagTile) {
    case 1: f(std::integral_constant<int, 1>{}); break;
    case 2: f(std::integral_constant<int, 2>{}); break;
    case 4: f(std::integral_constant<int, 4>{}); break;
    default: f(std::integral_constant<int, 8>{});
  }
}

template <typename T>
void ssd_diagonal_forward(const float* scores, const float* cum, const int64_t* seq, const T* x, int64_t x_chunk,
                          int64_t x_head, int64_t x_row, T* y, int batch, int chunks, int heads, int groups, int q,
                          int p, cudaStream_t stream) {
  by_column_tiles(p, [&](auto cols) {
    constexpr auto kernel = ssd_diagonal_forward_kernel<T, decltype(cols)::value>;
    allow_shared<kernel>(ssd_diagonal_shared_bytes(kDiagMaxChunk, kDiagMaxHeadDim, true, 1));
    launch(kernel, (unsigned) ((int64_t) batch * chunks * heads), kDiagWarps * 32,
           ssd_diagonal_shared_bytes(q, p, seq != nullptr, 1), stream, scores, cum, seq, x, x_chunk, x_head, x_row, y,
           heads, groups, q, p);
  });
}

template <typename T>
void ssd_diagonal_backward(const float* scores, const float* cum, const int64_t* seq, const T* x, int64_t x_chunk,
                           int64_t x_head, int64_t x_row, const T* dy, float* dscores, float* dlogd, T* dx, int batch,
                           int chunks, int heads, int groups, int q, int p, cudaStream_t stream) {
  by_column_tiles(p, [&](auto cols) {
    constexpr auto kernel = ssd_diagonal_backward_kernel<T, decltype(cols)::value>;
    allow_shared<kernel>(ssd_diagonal_shared_bytes(kDiagMaxChunk, kDiagMaxHeadDim, true, 2));
    launch(kernel, (unsigned) ((int64_t) batch * chunks * heads), kDiagWarps * 32,
           ssd_diagonal_shared_bytes(q, p, seq != nullptr, 2), stream, scores, cum, seq, x, x_chunk, x_head, x_row, dy,
           dscores, dlogd, dx, heads, groups, q, p);
  });
}

#define ANNEAL_CONV(T)                                                                                              \
  template void conv1d_silu_forward<T>(const T*, int64_t, const float*, const float*, const int64_t*, T*, int, int, \
                                       int, int, cudaStream_t);                                                    \
  template void conv1d_silu_backward<T>(const T*, int64_t, const float*, const float*, const int64_t*,             \
                                        const ConvGradPieces<T>&, T*, float*, float*, int, int, int, int, cudaStream_t);
#define ANNEAL_ROWS(T)                                                                                             \
  template void ssd_mixing_forward<T>(const float*, const float*, const int64_t*, T*, int, int, int, int, int,       \
                                      cudaStream_t);                                                                \
  template void ssd_mixing_backward<T>(const float*, const float*, const int64_t*, const T*, float*, float*, int,    \
                                       int, int, int, int, cudaStream_t);                                          \
  template void cross_entropy_forward<T>(T*, const int64_t*, float, int64_t, int64_t, float*, float*, bool,         \
                                         cudaStream_t);                                                            \
  template void ssd_state_passing_forward<T>(const T*, const float*, const float*, T*, int, int, int, int64_t, int, \
                                             int, cudaStream_t);                                                   \
  template void ssd_state_passing_backward<T>(const T*, const float*, const float*, const T*, T*, float*, int, int, \
                                              int, int64_t, int, int, cudaStream_t);                                          \
  template void ssd_combine_forward<T>(const T*, const float*, const T*, const T*, int64_t, const float*, T*, int,    \
                                       int, int, int, int, int, int, cudaStream_t);                                 \
  template void ssd_combine_backward<T>(const T*, const float*, const T*, int64_t, const float*, const T*, T*,        \
                                        float*, T*, T*, float*, int, int, int, int, int, int, int, cudaStream_t);    \
  template void residual_norm_forward<T>(const float*, const T*, const T*, const float*, float*, T*, float*,        \
                                         int64_t, int, float, cudaStream_t, uint8_t*, float*);                      \
  template void residual_norm_backward<T>(const float*, const float*, const float*, const T*, const float*, float*,  \
                                          T*, T*, float*, int64_t, int, cudaStream_t);                              \
  template void qkv_rope_apply<T>(const QkvParts<T>&, const float*, const float*, int, int, int, int, bool,        \
                                  cudaStream_t);                                                                      \
  template void silu_mul_forward<T>(const T*, int64_t, const T*, int64_t, T*, int64_t, int, cudaStream_t);           \
  template void silu_mul_backward<T>(const T*, int64_t, const T*, int64_t, const T*, T*, T*, T*, int64_t, int,      \
                                     cudaStream_t);                                                                 \
  template void scale_two_layouts_forward<T>(const T*, int64_t, const float*, T*, T*, const WeightedTokens<T>&,  \
                                             int, int, int, int, int, cudaStream_t);                                \
  template void scale_two_layouts_backward<T>(const T*, int64_t, const float*, const T*, const T*, const T*,        \
                                              const float*, const WeightedTokens<T>&, T*, float*, int, int, int,    \
                                              int, int, cudaStream_t);                                              \
  template void residual_add<T>(const float*, const T*, float*, int64_t, cudaStream_t);
ANNEAL_ROWS(float)
ANNEAL_ROWS(__half)
ANNEAL_ROWS(__nv_bfloat16)

#define ANNEAL_DIAGONAL(T)                                                                                        \
  template void ssd_diagonal_forward<T>(const float*, const float*, const int64_t*, const T*, int64_t, int64_t,     \
                                        int64_t, T*, int, int, int, int, int, int, cudaStream_t);                         \
  template void ssd_diagonal_backward<T>(const float*, const float*, const int64_t*, const T*, int64_t, int64_t,    \
                                         int64_t, const T*, float*, float*, T*, int, int, int, int, int, int,       \
                                         cudaStream_t);
ANNEAL_DIAGONAL(__half)
ANNEAL_DIAGONAL(__nv_bfloat16)

ANNEAL_CONV(float)
ANNEAL_CONV(__half)
ANNEAL_CONV(__nv_bfloat16)

#if ANNEAL_FP8
// Row-wise float8 (e4m3) for the float8 GEMMs: q = x / s with s = max|x_row| / 448, e4m3's largest
// finite value, one s per row (torch._scaled_mm's row-wise scales, for the rows of x [M, K] and of
// W [N, K] alike); a row of zeros takes s = 1. A row may come in up to four column pieces
// (RowPieces), quantised side by side with one s over all of them, and q's row may be wider than
// their total: zeros after it (a GEMM's K padded to float8's multiple of 16). (kE4m3Max: with the norm's
// float8 rows above.)
constexpr int kQuantizeThreads = 256;

// A row's scale s with its weight row's multipliers (RowMultipliers): s (rows[r] * all), or s all.
__device__ __forceinline__ float multiplied_scale(float s, const RowMultipliers& multipliers, int64_t row) {
  return multipliers.rows != nullptr ? s * (multipliers.rows[row] * multipliers.all) : s * multipliers.all;
}

// A block a row, an element a thread at a time, two passes over the row (the second from L1/L2): any
// widths and strides. GATED (one piece): the rows quantised are silu(x) * up's (up's rows up_stride
// apart), computed in float32 in both passes and never written in the compute type: silu_mul_linear's
// product, which its backward makes again, so the forward needs it only in float8 (4 bytes an element
// less to move than silu_mul's product written, then read by a quantisation of its own).
template <typename T, bool GATED>
__global__ void __launch_bounds__(kQuantizeThreads) quantize_rows_e4m3_kernel(
    RowPieces<T> pieces, const T* __restrict__ up, int64_t up_stride, int width, __nv_fp8_e4m3* __restrict__ q,
    float* __restrict__ scale, RowMultipliers multipliers) {
  wait_for_predecessors();
  int64_t row = blockIdx.x;
  auto value = [&](const T* xr, int c) {
    float v = load(xr, c);
    if constexpr (GATED) v = v * sigmoid(v) * load(up + row * up_stride, c);
    return v;
  };
  float amax = 0.f;
#pragma unroll
  for (int p = 0; p < RowPieces<T>::kMax; p++) {   // unrolled: the parameters indexed by constants
    if (p >= pieces.count) break;
    const T* xr = pieces.x[p] + row * pieces.row[p];
    for (int c = threadIdx.x; c < pieces.cols[p]; c += kQuantizeThreads) amax = fmaxf(amax, fabsf(value(xr, c)));
  }
  __shared__ float warp_max[kQuantizeThreads / 32];
  amax = block_reduce(amax, warp_max, MaxOp{}, 0.f);
  float s = e4m3_scale(amax);
  float inverse = 1.f / s;
  __nv_fp8_e4m3* qr = q + row * width;
  int start = 0;
#pragma unroll
  for (int p = 0; p < RowPieces<T>::kMax; p++) {
    if (p >= pieces.count) break;
    const T* xr = pieces.x[p] + row * pieces.row[p];
    for (int c = threadIdx.x; c < pieces.cols[p]; c += kQuantizeThreads) {
      qr[start + c] = __nv_fp8_e4m3(value(xr, c) * inverse);   // satfinite
    }
    start += pieces.cols[p];
  }
  for (int c = start + threadIdx.x; c < width; c += kQuantizeThreads) qr[c] = __nv_fp8_e4m3(0.f);
  if (threadIdx.x == 0) scale[row] = multiplied_scale(s, multipliers, row);
}

// The same rows, vectorised: a block a row, each thread loading eight elements at a time (load8: 16
// bytes of a half type, two 16-byte loads of float) VECS times, the row kept in registers between the
// max and the write, and the quantised row written 8 bytes at a time. The block kernel above reads a
// row twice, an element (2 bytes) a thread at a time, and writes a byte a thread: its x rows ran at
// about 1.5 TB/s in the 291M model's step (1.21 ms a step at 8 x 2048, 36 launches of 16,384 rows of
// 1,024; docs/benchmarks/2026-12-05-h200-experiments/call-2/variants/layers-5.log). The arithmetic is
// the block kernel's (max is exact in any order): the results are the same bits. Needs every piece's
// columns, strides and q's width multiples of 8 and the arrays 16-byte aligned (quantize_vectorised).
// The float8 x-gradients (ANNEAL_FP8_BACKWARD) always take it where it applies; the forward's rows
// with ANNEAL_QUANTIZE_VEC (on by default since its H100 run: -1.0 ms a step at 8 x 2048,
// docs/benchmarks/2026-12-05-h100-experiments-one-by-one; -DANNEAL_QUANTIZE_VEC=0 keeps the block kernel).
#ifndef ANNEAL_QUANTIZE_VEC
#define ANNEAL_QUANTIZE_VEC 1
#endif
constexpr int kQuantizeMaxVectors = 4;   // eight elements each, a thread: rows up to 8,192 wide

template <typename T, bool GATED, int VECS>
__global__ void __launch_bounds__(kQuantizeThreads) quantize_rows_e4m3_vec_kernel(
    RowPieces<T> pieces, const T* __restrict__ up, int64_t up_stride, int width, __nv_fp8_e4m3* __restrict__ q,
    float* __restrict__ scale, RowMultipliers multipliers) {
  wait_for_predecessors();
  int64_t row = blockIdx.x;
  float v[VECS][8];
  float amax = 0.f;
#pragma unroll
  for (int k = 0; k < VECS; k++) {
    int c = (k * (int) blockDim.x + (int) threadIdx.x) * 8;   // the vector's first column in q's row
    bool loaded = false;
    int start = 0;
#pragma unroll
    for (int p = 0; p < RowPieces<T>::kMax; p++) {   // the piece that holds column c, if any
      if (p < pieces.count && !loaded && c >= start && c < start + pieces.cols[p]) {
        load8(pieces.x[p] + row * pieces.row[p] + (c - start), v[k]);
        if constexpr (GATED) {
          float u[8];
          load8(up + row * up_stride + c, u);
#pragma unroll
          for (int e = 0; e < 8; e++) v[k][e] = v[k][e] * sigmoid(v[k][e]) * u[e];
        }
        loaded = true;
      }
      start += p < pieces.count ? pieces.cols[p] : 0;
    }
#pragma unroll
    for (int e = 0; e < 8; e++) {
      if (!loaded) v[k][e] = 0.f;   // q's padding after the pieces, or past the row
      amax = fmaxf(amax, fabsf(v[k][e]));
    }
  }
  __shared__ float warp_max[kQuantizeThreads / 32];
  amax = block_reduce(amax, warp_max, MaxOp{}, 0.f);
  float s = e4m3_scale(amax);
  float inverse = 1.f / s;
  __nv_fp8_e4m3* qr = q + row * width;
#pragma unroll
  for (int k = 0; k < VECS; k++) {
    int c = (k * (int) blockDim.x + (int) threadIdx.x) * 8;
    if (c < width) store8_e4m3(qr + c, v[k], inverse);
  }
  if (threadIdx.x == 0) scale[row] = multiplied_scale(s, multipliers, row);
}

// Launches the vectorised kernel where it applies (every piece's columns and row stride, up's and
// q's width multiples of 8, width at most 8,192, the arrays 16-byte aligned): a block of up to 256
// threads a row, each with the fewest vectors that cover it. False where the caller launches the
// block kernel.
template <typename T, bool GATED>
bool quantize_vectorised(const RowPieces<T>& pieces, const T* up, int64_t up_stride, int64_t rows, int width,
                         __nv_fp8_e4m3* q, float* scale, RowMultipliers multipliers, cudaStream_t stream) {
  bool aligned = width % 8 == 0 && (!GATED || up_stride % 8 == 0) && all_vectorisable({up, q});
  for (int p = 0; p < pieces.count; p++) {
    aligned = aligned && pieces.cols[p] % 8 == 0 && pieces.row[p] % 8 == 0 && all_vectorisable({pieces.x[p]});
  }
  int vectors = width / 8;
  if (!aligned || vectors > kQuantizeThreads * kQuantizeMaxVectors) return false;
  int per_thread = (vectors + kQuantizeThreads - 1) / kQuantizeThreads;
  int threads = ((vectors + per_thread - 1) / per_thread + 31) / 32 * 32;
  auto go = [&](auto kernel) {
    launch(kernel, (unsigned) rows, threads, 0, stream, pieces, up, up_stride, width, q, scale, multipliers);
  };
  static_assert(kQuantizeMaxVectors == 4, "one launch below a vector count");
  if (per_thread == 1) {
    go(quantize_rows_e4m3_vec_kernel<T, GATED, 1>);
  } else if (per_thread == 2) {
    go(quantize_rows_e4m3_vec_kernel<T, GATED, 2>);
  } else if (per_thread == 3) {
    go(quantize_rows_e4m3_vec_kernel<T, GATED, 3>);
  } else {
    go(quantize_rows_e4m3_vec_kernel<T, GATED, 4>);
  }
  return true;
}

// Either kernel on the pieces (GATED: one piece and up), the vectorised one where `vectorise` and it
// applies; the scales times the weight rows' multipliers.
template <typename T, bool GATED>
void quantize_launch(const RowPieces<T>& pieces, const T* up, int64_t up_stride, int64_t rows, int width,
                     uint8_t* q, float* scale, bool vectorise, cudaStream_t stream, RowMultipliers multipliers = {}) {
  if (rows == 0) return;
  auto* q8 = reinterpret_cast<__nv_fp8_e4m3*>(q);
  if (vectorise &&
      quantize_vectorised<T, GATED>(pieces, up, up_stride, rows, width, q8, scale, multipliers, stream)) {
    return;
  }
  launch(quantize_rows_e4m3_kernel<T, GATED>, (unsigned) rows, kQuantizeThreads, 0, stream, pieces, up, up_stride,
         width, q8, scale, multipliers);
}

template <typename T>
RowPieces<T> one_piece(const T* x, int64_t row_stride, int cols) {
  RowPieces<T> pieces{};
  pieces.x[0] = x;
  pieces.row[0] = row_stride;
  pieces.cols[0] = cols;
  pieces.count = 1;
  return pieces;
}

template <typename T>
void quantize_rows_e4m3(const T* x, int64_t rows, int64_t row_stride, int cols, uint8_t* q, float* scale,
                        cudaStream_t stream, RowMultipliers multipliers) {
  quantize_launch<T, false>(one_piece(x, row_stride, cols), nullptr, 0, rows, cols, q, scale, ANNEAL_QUANTIZE_VEC,
                            stream, multipliers);
}

template <typename T>
void silu_mul_quantize_rows_e4m3(const T* gate, int64_t gate_row, const T* up, int64_t up_row, int64_t rows, int cols,
                                 uint8_t* q, float* scale, cudaStream_t stream) {
  quantize_launch<T, true>(one_piece(gate, gate_row, cols), up, up_row, rows, cols, q, scale, ANNEAL_QUANTIZE_VEC,
                           stream);
}

template <typename T>
void quantize_pieces_e4m3(const RowPieces<T>& pieces, int64_t rows, int width, uint8_t* q, float* scale,
                          cudaStream_t stream) {
  int total = 0;
  bool counted = pieces.count >= 1 && pieces.count <= RowPieces<T>::kMax;
  for (int p = 0; counted && p < pieces.count; p++) total += pieces.cols[p];
  if (!counted || width < total) {
    throw std::invalid_argument("quantize_pieces_e4m3: 1 to 4 pieces whose columns fit q's width " +
                                std::to_string(width) + " expected, found " + std::to_string(pieces.count) +
                                " pieces of " + std::to_string(total) + " columns");
  }
  quantize_launch<T, false>(pieces, nullptr, 0, rows, width, q, scale, true, stream);
}

// Row r of a block's multiplier: its columns' factor times its scale, or the scale alone (cast_weight's
// order: w (columns scale)).
__device__ __forceinline__ float block_row_factor(const float* factor, float scale, int r) {
  return factor != nullptr ? factor[r] * scale : scale;
}

// The stacked weights' value at (row n of the stack, column k), 0 past the stack's rows.
__device__ __forceinline__ float stacked_weight(const WeightBlocks& blocks, int n, int k, int cols) {
  int start = 0;
  float v = 0.f;
#pragma unroll
  for (int p = 0; p < WeightBlocks::kMax; p++) {   // unrolled: the parameters indexed by constants
    if (p < blocks.count && n >= start && n < start + blocks.rows[p]) {
      int r = n - start;
      v = blocks.w[p][(int64_t) r * cols + k] * block_row_factor(blocks.factor[p], blocks.scale[p], r);
    }
    start += p < blocks.count ? blocks.rows[p] : 0;
  }
  return v;
}

constexpr int kColumnSplits = 64;   // row ranges of the stack a column's maximum is taken over apart

// partial[split, k] = max over the split's rows of the stack of |value| (0 for a split of no rows):
// each block takes 256 columns over one range of rows. The range is walked block by block of the
// stack (the block's pointers read once, not searched for at every row as stacked_weight does) and
// four rows at a time, whose loads are independent: the first form, one row after the other through
// stacked_weight, ran at about a sixth of the memory's rate (1.59 ms a step on an H100,
// docs/benchmarks/2026-12-05-h100-experiments-together). The values are stacked_weight's, the same
// products in the same order, so the maxima are too.
__global__ void __launch_bounds__(kQuantizeThreads) column_amax_kernel(WeightBlocks blocks, int cols, int total,
                                                                        float* __restrict__ partial) {
  wait_for_predecessors();
  int k = blockIdx.x * kQuantizeThreads + threadIdx.x;
  if (k >= cols) return;
  int per_split = (total + kColumnSplits - 1) / kColumnSplits;
  int first = blockIdx.y * per_split, last = min(total, first + per_split);
  float m = 0.f;
  int start = 0;
#pragma unroll
  for (int p = 0; p < WeightBlocks::kMax; p++) {   // unrolled: the parameters indexed by constants
    if (p >= blocks.count) break;
    int from = max(first, start) - start, to = min(last, start + blocks.rows[p]) - start;
    const float* w = blocks.w[p] + k;
    const float* factor = blocks.factor[p];
    float scale = blocks.scale[p];
#pragma unroll 4
    for (int r = from; r < to; r++) m = fmaxf(m, fabsf(w[(int64_t) r * cols] * block_row_factor(factor, scale, r)));
    start += blocks.rows[p];
  }
  partial[(int64_t) blockIdx.y * cols + k] = m;
}

constexpr int kTransposeTile = 32;
constexpr int kTransposeRows = 8;    // the block's rows of threads (32 x 8)
constexpr int kTransposeTiles = 8;   // 32 x 32 tiles a block, down its strip of 32 columns

// q[k, n] = e4m3(value(n, k) / s[k]) with s[k] = max over the splits' partial maxima / 448 (1 for a
// column of zeros), through 32 x 32 tiles in shared memory: read along k (a warp 128 bytes of a
// row), written along n. Each block reduces its 32 columns' partials itself (64 floats a column,
// from L2, 8 a thread: its 8 rows of threads side by side, not one row of them 64 loads deep), once
// for its 8 tiles: no scratch to clear first, no third launch.
__global__ void __launch_bounds__(kTransposeTile * kTransposeRows) quantize_columns_kernel(
    WeightBlocks blocks, int cols, int total, int width, const float* __restrict__ partial,
    __nv_fp8_e4m3* __restrict__ q, float* __restrict__ scale) {
  wait_for_predecessors();
  __shared__ float tile[kTransposeTile][kTransposeTile + 1];
  __shared__ float split_max[kTransposeRows][kTransposeTile];
  __shared__ float column_scale[kTransposeTile];   // 1 / s of the block's columns
  int k0 = blockIdx.x * kTransposeTile;
  {
    int k = k0 + threadIdx.x;
    float m = 0.f;
    if (k < cols) {
      for (int split = threadIdx.y; split < kColumnSplits; split += kTransposeRows) {
        m = fmaxf(m, partial[(int64_t) split * cols + k]);
      }
    }
    split_max[threadIdx.y][threadIdx.x] = m;
  }
  __syncthreads();
  if (threadIdx.y == 0) {
    int k = k0 + threadIdx.x;
    float m = split_max[0][threadIdx.x];
#pragma unroll
    for (int y = 1; y < kTransposeRows; y++) m = fmaxf(m, split_max[y][threadIdx.x]);
    float s = e4m3_scale(m);   // a maximum: the same whatever order the partials are taken in
    if (k < cols && blockIdx.y == 0) scale[k] = s;
    column_scale[threadIdx.x] = 1.f / s;   // as quantize_rows_e4m3's inverse
  }
  for (int t = 0; t < kTransposeTiles; t++) {
    int n0 = (blockIdx.y * kTransposeTiles + t) * kTransposeTile;
    if (n0 >= width) break;   // the same for the whole block
    for (int i = threadIdx.y; i < kTransposeTile; i += kTransposeRows) {
      int n = n0 + i, k = k0 + threadIdx.x;
      tile[i][threadIdx.x] = n < total && k < cols ? stacked_weight(blocks, n, k, cols) : 0.f;
    }
    __syncthreads();   // the tile, and (the first time) the scales
    for (int i = threadIdx.y; i < kTransposeTile; i += kTransposeRows) {
      int k = k0 + i, n = n0 + threadIdx.x;
      if (k < cols && n < width) {
        q[(int64_t) k * width + n] = __nv_fp8_e4m3(tile[threadIdx.x][i] * column_scale[i]);   // satfinite
      }
    }
    __syncthreads();   // the tile read before the next one overwrites it
  }
}

int quantize_columns_scratch(int cols) { return kColumnSplits * cols; }

void quantize_columns_e4m3(const WeightBlocks& blocks, int cols, int width, float* partial, uint8_t* q, float* scale,
                           cudaStream_t stream) {
  int total = 0;
  bool counted = blocks.count >= 1 && blocks.count <= WeightBlocks::kMax;
  for (int p = 0; counted && p < blocks.count; p++) total += blocks.rows[p];
  if (!counted || width < total) {
    throw std::invalid_argument("quantize_columns_e4m3: 1 to 4 weight blocks whose rows fit q's width " +
                                std::to_string(width) + " expected, found " + std::to_string(blocks.count) +
                                " blocks of " + std::to_string(total) + " rows");
  }
  if (cols == 0 || width == 0) return;
  launch(column_amax_kernel, dim3((unsigned) ((cols + kQuantizeThreads - 1) / kQuantizeThreads), kColumnSplits),
         kQuantizeThreads, 0, stream, blocks, cols, total, partial);
  int strip = kTransposeTile * kTransposeTiles;
  launch(quantize_columns_kernel,
         dim3((unsigned) ((cols + kTransposeTile - 1) / kTransposeTile), (unsigned) ((width + strip - 1) / strip)),
         dim3(kTransposeTile, kTransposeRows), 0, stream, blocks, cols, total, width, (const float*) partial,
         reinterpret_cast<__nv_fp8_e4m3*>(q), scale);
}
#define ANNEAL_QUANTIZE(T)                                                                                     \
  template void quantize_rows_e4m3<T>(const T*, int64_t, int64_t, int, uint8_t*, float*, cudaStream_t,       \
                                      RowMultipliers);                                                         \
  template void silu_mul_quantize_rows_e4m3<T>(const T*, int64_t, const T*, int64_t, int64_t, int, uint8_t*, \
                                               float*, cudaStream_t);                                          \
  template void quantize_pieces_e4m3<T>(const RowPieces<T>&, int64_t, int, uint8_t*, float*, cudaStream_t);
ANNEAL_QUANTIZE(float)
ANNEAL_QUANTIZE(__half)
ANNEAL_QUANTIZE(__nv_bfloat16)
#endif

#define ANNEAL_NORM(TY, TZ)                                                                                      \
  template void gated_rms_norm_forward<TY, TZ>(const TY*, const TZ*, const float*, TZ*, float*, int64_t, int, int, \
                                               float, bool, cudaStream_t);                                        \
  template void gated_rms_norm_backward<TY, TZ>(const TY*, const TZ*, const float*, const float*, const TZ*, TY*,  \
                                                TZ*, float*, int64_t, int, int, bool, cudaStream_t);
#define ANNEAL_SCALE(TX, TO)                                                                               \
  template void row_scale_forward<TX, TO>(const TX*, const float*, TO*, int64_t, int, cudaStream_t);          \
  template void row_scale_backward<TX, TO>(const TX*, const float*, const TO*, TX*, float*, int64_t, int,     \
                                           cudaStream_t);
ANNEAL_SCALE(float, float)
ANNEAL_SCALE(__half, __half)
ANNEAL_SCALE(__nv_bfloat16, __nv_bfloat16)
ANNEAL_SCALE(__half, float)
ANNEAL_SCALE(__nv_bfloat16, float)

ANNEAL_NORM(float, float)
ANNEAL_NORM(float, __half)
ANNEAL_NORM(float, __nv_bfloat16)

}  // namespace anneal
