// Anneal's fused Falcon-H1 operators, registered inside libtorch as torch.ops.anneal.* with autograd,
// so the TorchScript layers (FalconH1FusedLayer.torchscript) call them like any aten operator and
// the JVM never sees their intermediates. Built by tools/gpu/build-kernels.sh against the libtorch
// DJL loads; loaded by the hybrid plugin with System.load (FusedKernels.java).
//
//   causal_conv1d_silu     Mamba-2's causal depthwise conv + SiLU, document resets (CUDA kernels); its
//                          output can come as column pieces whose gradients are never joined
//   gated_rms_norm         the gated RMSNorm of the Mamba-2 output (CUDA kernels)
//   ssd_scan               the chunked SSD scan of Mamba-2, state carried across chunks and reset at
//                          document starts; half-precision matmuls with float32 decay arithmetic;
//                          only its inputs are kept for backward (the pass is recomputed there),
//                          unless recompute=False: then its intermediates are kept (faster, more memory)
//   ssd_scan_skip          the same plus the skip connection x D, in x's type
//   lm_head_cross_entropy  the LM head and token log-likelihoods: no float32 logits; for a backward
//                          the forward leaves d log p / d logits in place of the logits (computed once),
//                          without one it runs in token chunks
//   silu_mul               silu(gate) * up (SwiGLU, the Mamba output gate), one pass each way
//   silu_mul_linear        the same into a linear layer (the down projection, out_proj): the product
//                          is not kept for backward but written again by silu_mul's backward pass
//   rms_norm, add_rms_norm the float32 residual stream's RMSNorm into the compute type, the second
//                          after adding the layer's two branches; one pass each way
//   qkv_rope               rotary position embedding (rotate_half) of q and k, the key multiplier and
//                          v, from the fused projection and back into its gradient, one pass each way
//   linear, linear_pair    x W^T + b with the float32 master weight cast inside, muP multipliers folded
//                          into that cast; the backward adds the weight gradient straight into the
//                          master's float32 .grad; the pair shares one x-gradient, and its first
//                          layer's output can come as column pieces whose gradients are never joined
//
//   graph_*                capture the calling thread's GPU work (a whole training step: forward,
//                          autograd backward, optimizer) as CUDA graphs and replay them
//   branch_*               run one of a layer's two mixers on a second stream beside the other
//   wgrad_fence            with -DANNEAL_WGRAD_STREAM=1, where the backward waits for the weight-gradient
//                          GEMMs that ran on a stream of their own (an experiment; else the identity)
//
// Nothing here synchronises with the host (no .item(), no data-dependent shapes), so a step that
// uses them can be captured as a CUDA graph.
#include <ATen/ATen.h>
#include <ATen/cuda/CUDAContext.h>
#include <ATen/cuda/CUDAEvent.h>
#include <ATen/cuda/CUDAGraph.h>
#include <ATen/core/dispatch/Dispatcher.h>
#include <c10/cuda/CUDACachingAllocator.h>
#include <c10/cuda/CUDAException.h>
#include <c10/cuda/CUDAGuard.h>
#include <torch/autograd.h>
#include <torch/csrc/autograd/graph_task.h>
#include <torch/library.h>
#include <torch/version.h>

#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <atomic>
#include <limits>
#include <map>
#include <memory>
#include <mutex>
#include <sstream>
#include <string>
#include <vector>

#include "anneal_kernels.h"

// ANNEAL_ARCH is the target GPU architecture as a bare token (-DANNEAL_ARCH=sm_90).
#define ANNEAL_STRING2(x) #x
#define ANNEAL_STRING(x) ANNEAL_STRING2(x)
#ifndef ANNEAL_ARCH
#define ANNEAL_ARCH unknown
#endif

using at::Tensor;
using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

namespace {

template <typename F>
void by_type(const Tensor& t, const char* op, F&& f) {
  switch (t.scalar_type()) {
    case at::kFloat: f(float{}); break;
    case at::kHalf: f(__half{}); break;
    case at::kBFloat16: f(__nv_bfloat16{}); break;
    default: TORCH_CHECK(false, "anneal::", op, ": expected float32, float16 or bfloat16, found ", t.scalar_type());
  }
}

template <typename T>
T* ptr(const Tensor& t) { return reinterpret_cast<T*>(t.data_ptr()); }

// Whether t's data starts on a 16-byte boundary, as the kernels' vector accesses need.
bool starts_aligned(const Tensor& t) { return reinterpret_cast<uintptr_t>(t.data_ptr()) % 16 == 0; }
// t itself when its data starts on a 16-byte boundary (the kernels' vector accesses), else a copy.
Tensor aligned(const Tensor& t) { return starts_aligned(t) ? t : t.clone(); }

const float* float_or_null(const Tensor& t) { return t.defined() ? t.data_ptr<float>() : nullptr; }
const int64_t* long_or_null(const Tensor& t) { return t.defined() ? t.data_ptr<int64_t>() : nullptr; }

// The column sums [width] of weight-gradient partials, a contiguous float32 [rows, width] on the GPU that a
// backward kernel wrote (anneal::column_sums: 0.57 ms for a step's 61 at 8 x 2048, against 0.88 for ATen's sum(0)
// and about 0.54 for cuBLAS's matrix-vector product with its vector of ones; docs/benchmarks/2026-12-03-h200-diag-dcum).
// -DANNEAL_PARTIAL_SUMS=0 takes ATen's sum(0), for tools/gpu/try-variants.sh.
#ifndef ANNEAL_PARTIAL_SUMS
#define ANNEAL_PARTIAL_SUMS 1
#endif
// `into` (a contiguous float32 tensor of `width` elements, a .grad): the sums are added to it in the
// same pass, and it is returned.
Tensor column_sums(const Tensor& partials, const Tensor& into = Tensor()) {
#if ANNEAL_PARTIAL_SUMS
  TORCH_CHECK(partials.dim() == 2 && partials.is_contiguous() && partials.scalar_type() == at::kFloat &&
                  partials.is_cuda() && starts_aligned(partials),
              "anneal: weight-gradient partials must be a contiguous, 16-byte aligned float32 [rows, width] on the GPU");
  int64_t rows = partials.size(0), width = partials.size(1);
  TORCH_CHECK(!into.defined() || (into.is_contiguous() && into.scalar_type() == at::kFloat && into.numel() == width &&
                                  into.device() == partials.device()),
              "anneal: column sums go into a contiguous float32 tensor of ", width, " elements on ", partials.device());
  Tensor out = into.defined() ? into : at::empty({width}, partials.options());
  int splits = anneal::column_sums_splits(rows, (int) width);
  Tensor scratch = at::empty({splits > 1 ? splits : 0, width}, partials.options());
  anneal::column_sums(partials.data_ptr<float>(), rows, (int) width, scratch.data_ptr<float>(), out.data_ptr<float>(),
                      into.defined(), at::cuda::getCurrentCUDAStream());
  return out;
#else
  return into.defined() ? into.add_(partials.sum(0).view(into.sizes())) : partials.sum(0);
#endif
}

// The elements between consecutive rows of x viewed as [rows, W], or -1 when its rows are not
// evenly spaced with contiguous elements.
int64_t row_stride(const Tensor& x) {
  int64_t n = x.dim();
  if (n < 1 || x.stride(n - 1) != 1) return -1;
  if (n == 1) return x.size(0);
  for (int64_t k = 0; k + 2 < n; k++) {
    if (x.size(k) != 1 && x.stride(k) != x.stride(k + 1) * x.size(k + 1)) return -1;
  }
  return x.stride(n - 2);
}

// An optional tensor kept in an autograd context's saved_data (None when undefined), and read back.
c10::IValue optional_value(const Tensor& t) { return t.defined() ? c10::IValue(t) : c10::IValue(); }
Tensor saved_optional(AutogradContext* ctx, const std::string& key) {
  const c10::IValue& value = ctx->saved_data[key];
  return value.isNone() ? Tensor() : value.toTensor();
}
Tensor optional_tensor(const c10::optional<Tensor>& value) { return value.has_value() ? *value : Tensor(); }

void check_cuda(const Tensor& t, const char* op, const char* name) {
  TORCH_CHECK(t.is_cuda(), "anneal::", op, ": ", name, " must be a CUDA tensor (the reference path serves the CPU)");
}

// ---------------------------------------------------------------------------------------------
// Weight gradients summed straight into the float32 master weights' .grad (the gradient-accumulation
// fusion of Megatron-LM, Narayanan et al. 2021: "main_grad" filled by the weight-gradient GEMM).
// Through autograd, a half-precision matmul's weight gradient costs three passes more than the GEMM:
// the GEMM writes it in half precision, the cast back to the float32 master reads it and writes it in
// float32, and autograd's accumulation reads that and the .grad and writes the sum (about 2 ms of a
// 96.5 ms step at 8 x 2048, docs/benchmarks/2026-12-02-h200-fused-elementwise). Here the GEMM reads
// the .grad as its C operand and writes the sum in float32, in one pass.
// ---------------------------------------------------------------------------------------------

// The float32 .grad of `weight` to add into in place, made as zeros when it has none yet (as autograd
// would at the first backward); undefined when the weight is no float32 leaf that wants a gradient,
// when the backward itself is differentiated (create_graph), or when this backward does not
// accumulate into every leaf: torch.autograd.grad (which returns gradients and leaves .grad alone, as
// SsdScan's recomputing backward calls it) or backward(inputs=...). Then the caller returns the
// gradient. Autograd's own accumulation would do the same addition; what this path skips is only the
// hooks registered on the weight's gradient (Anneal registers none).
Tensor in_place_grad(const Tensor& weight) {
  if (!weight.is_leaf() || !weight.requires_grad() || weight.scalar_type() != at::kFloat || at::GradMode::is_enabled()) {
    return Tensor();
  }
  // empty only for a backward() without inputs (torch/csrc/autograd/graph_task.h); null outside one
  const auto* selected = torch::autograd::get_current_graph_task_exec_info();
  if (selected == nullptr || !selected->empty()) return Tensor();
  Tensor& grad = weight.mutable_grad();
  if (!grad.defined()) grad = at::zeros(weight.sizes(), weight.options());
  bool usable = grad.scalar_type() == at::kFloat && grad.is_contiguous() && grad.sizes() == weight.sizes() &&
                grad.device() == weight.device();
  return usable ? grad : Tensor();
}

// The gradient of a small float32 parameter (a norm's or the conv's weights, the conv's bias, D) from
// the [rows, numel] partials its backward kernel wrote: summed straight into its .grad where
// in_place_grad allows, and undefined returned (autograd has nothing left to add: 61 of the 134 float32
// additions of a step on the benchmark model, a launch each); else returned in the parameter's type.
Tensor parameter_grad(const Tensor& partials, const Tensor& parameter) {
  Tensor grad = in_place_grad(parameter);
  if (grad.defined()) {
    column_sums(partials, grad);
    return Tensor();
  }
  return column_sums(partials).reshape(parameter.sizes()).to(parameter.scalar_type());
}

// -DANNEAL_WGRAD_FLOAT32_GEMM=0 builds with the half-precision product and one addition (the
// fallback below) from the first call, for tools/gpu/try-variants.sh: the step's weight-gradient
// GEMMs took 15.61 ms summing into a float32 C against 13.52 ms writing bfloat16
// (tools/gpu/probe_fp8_gemm.py, docs/benchmarks/2026-12-04-h200-head-once/side-by-side/probe-wgrad.log);
// the addition reads and writes the float32 .grad once more. Not measured in a step yet.
#ifndef ANNEAL_WGRAD_FLOAT32_GEMM
#define ANNEAL_WGRAD_FLOAT32_GEMM 1
#endif

// out (+)= alpha a^T b for a [N, M] and b [N, K] of one type, summed in float32 into out [M, K]
// (float32): added to out's values when `accumulate`, else written over them. Half-precision inputs go through
// the GEMM with a float32 output (aten::addmm.dtype_out; torch 2.11 has it); a torch without it (or
// with an older check on its operands) computes the half-precision product and adds it, found out
// once at the first call.
void transposed_product(Tensor out, const Tensor& a, const Tensor& b, bool accumulate, double alpha = 1.0) {
  Tensor a_t = a.t();
  int beta = accumulate ? 1 : 0;   // cuBLAS reads no C at beta 0
  if (a.scalar_type() == at::kFloat) {
    out.addmm_(a_t, b, beta, alpha);
    return;
  }
  static std::atomic<bool> mixed{ANNEAL_WGRAD_FLOAT32_GEMM != 0};
  if (mixed.load()) {
    static auto op = c10::Dispatcher::singleton().findSchema({"aten::addmm", "dtype_out"});
    try {
      TORCH_CHECK(op.has_value(), "aten::addmm.dtype_out is not registered");
      op->typed<Tensor&(const Tensor&, const Tensor&, const Tensor&, at::ScalarType, const at::Scalar&,
                        const at::Scalar&, Tensor&)>()
          .call(out, a_t, b, at::kFloat, beta, alpha, out);
      return;
    } catch (const c10::OutOfMemoryError&) {
      throw;  // says nothing about the operator
    } catch (const c10::Error& e) {
      mixed.store(false);
      TORCH_WARN_ONCE("anneal: no float32-output GEMM for half-precision weight gradients in this torch (",
                      e.what_without_backtrace(), "); adding a half-precision product instead");
    }
  }
  if (accumulate) {
    out.add_(at::mm(a_t, b), alpha);
  } else {
    out.copy_(at::mm(a_t, b));
    if (alpha != 1.0) out.mul_(alpha);
  }
}

// ---------------------------------------------------------------------------------------------
// Streams of the operators' own, created once per device and role, so they are never the caller's
// (a pool stream could be) and stay the same across steps (the warm-up's autograd nodes and a graph
// capture's must see one stream). The branch stream runs one of a layer's mixers beside the other
// (branch_*, below) at the device's highest priority, so its blocks are scheduled first; the
// weight-gradient stream runs the weight-gradient GEMMs, which nothing in the backward waits for, at
// the lowest (the caller's own, from c10's low-priority pool, has it too).
// ---------------------------------------------------------------------------------------------
enum class StreamRole { kBranch, kWeightGradients };

// `waiter` runs what is queued on it from now on only after what `queued_on` has queued so far (an
// event recorded there and waited for: under graph capture, the fork that takes `waiter` into it).
void wait_for_queued(const c10::cuda::CUDAStream& waiter, const c10::cuda::CUDAStream& queued_on) {
  at::cuda::CUDAEvent queued;
  queued.record(queued_on);
  queued.block(waiter);
}

c10::cuda::CUDAStream dedicated_stream(c10::DeviceIndex device, StreamRole role) {
  static std::mutex guard;
  static std::map<std::pair<c10::DeviceIndex, StreamRole>, c10::cuda::CUDAStream> streams;
  std::lock_guard<std::mutex> lock(guard);
  auto key = std::make_pair(device, role);
  auto found = streams.find(key);
  if (found == streams.end()) {
    c10::cuda::CUDAGuard on_device(device);
    int least = 0, greatest = 0;
    C10_CUDA_CHECK(cudaDeviceGetStreamPriorityRange(&least, &greatest));
    cudaStream_t raw = nullptr;   // never destroyed: it lives as long as the process, as c10's pool streams
    C10_CUDA_CHECK(cudaStreamCreateWithPriority(&raw, cudaStreamNonBlocking,
                                                role == StreamRole::kBranch ? greatest : least));
    found = streams.emplace(key, c10::cuda::getStreamFromExternal(raw, device)).first;
  }
  return found->second;
}

// -DANNEAL_WGRAD_STREAM=1 (an experiment for tools/gpu/try-variants.sh, off by default): the GEMMs
// that add a weight gradient into a float32 master's .grad run on the weight-gradient stream, beside
// the rest of the backward, since only the optimizer reads them. Each waits for what the caller's
// stream queued before it (its inputs) and keeps its inputs alive until the caller's stream has
// waited for it: wgrad_fence's backward, at the start of every fused layer (so after each layer's
// backward), makes the caller's stream wait for all of them and lets the inputs go. The caller's
// stream then reuses their memory only after the GEMMs that read it.
#ifndef ANNEAL_WGRAD_STREAM
#define ANNEAL_WGRAD_STREAM 0
#endif

struct PendingWeightGradients {
  std::mutex guard;
  std::shared_ptr<at::cuda::CUDAEvent> last;   // recorded after the latest GEMM (one stream: it covers all)
  std::vector<Tensor> inputs;                  // what those GEMMs read, alive until they are joined
};
PendingWeightGradients pending_weight_gradients;  // the autograd engine's device thread adds to it

// The calling thread's current stream on `device` waits for every weight-gradient GEMM queued so far;
// their inputs are released.
void join_weight_gradients(c10::DeviceIndex device) {
  std::shared_ptr<at::cuda::CUDAEvent> last;
  std::vector<Tensor> inputs;
  {
    std::lock_guard<std::mutex> lock(pending_weight_gradients.guard);
    last.swap(pending_weight_gradients.last);
    inputs.swap(pending_weight_gradients.inputs);
  }
  if (last) last->block(c10::cuda::getCurrentCUDAStream(device));
}   // inputs freed here, after the wait is queued

// grad += alpha a^T b (grad: a master weight's float32 .grad), on the weight-gradient stream with
// -DANNEAL_WGRAD_STREAM=1, else in place on the caller's.
void add_weight_gradient(Tensor grad, const Tensor& a, const Tensor& b, double alpha = 1.0) {
  if (!ANNEAL_WGRAD_STREAM || !grad.is_cuda()) {
    transposed_product(grad, a, b, true, alpha);
    return;
  }
  auto device = grad.device().index();
  auto caller = c10::cuda::getCurrentCUDAStream(device);
  auto side = dedicated_stream(device, StreamRole::kWeightGradients);
  wait_for_queued(side, caller);   // a, b and the .grad (made as zeros at the first backward) are written
  {
    c10::cuda::CUDAStreamGuard on_side(side);
    transposed_product(grad, a, b, true, alpha);
  }
  auto done = std::make_shared<at::cuda::CUDAEvent>();
  done->record(side);
  std::lock_guard<std::mutex> lock(pending_weight_gradients.guard);
  pending_weight_gradients.last = done;
  pending_weight_gradients.inputs.push_back(a);
  pending_weight_gradients.inputs.push_back(b);
}

// wgrad_fence(x) -> x: its backward joins the weight-gradient GEMMs queued so far (join_weight_gradients)
// on its own stream, the caller's. Without -DANNEAL_WGRAD_STREAM=1, or without gradients, x itself
// (no autograd node).
struct WeightGradientFence : torch::autograd::Function<WeightGradientFence> {
  static Tensor forward(AutogradContext*, const Tensor& x) {
    // a backward that reached no fence (none of its layers needed one) left GEMMs unjoined: they
    // finish before this step's work
    join_weight_gradients(x.device().index());
    return x;
  }
  static variable_list backward(AutogradContext*, variable_list grads) {
    if (grads[0].defined()) join_weight_gradients(grads[0].device().index());
    return {grads[0]};
  }
};

// The calling thread's current stream waits for the weight-gradient GEMMs queued so far: for a
// caller that reads .grad after an operator's backward outside the layers (tools/gpu/test_kernels.py).
int64_t wgrad_join(const Tensor& anchor) {
  TORCH_CHECK(anchor.is_cuda(), "anneal::wgrad_join: expected a CUDA tensor, found ", anchor.device());
  join_weight_gradients(anchor.device().index());
  return ANNEAL_WGRAD_STREAM;
}

Tensor wgrad_fence(const Tensor& x) {
  if (ANNEAL_WGRAD_STREAM && x.is_cuda() && at::GradMode::is_enabled() && x.requires_grad()) {
    return WeightGradientFence::apply(x);
  }
  return x;
}

// Column pieces: an operator's output handed back as views of its one result, each piece's gradient
// read where it arrives (causal_conv1d_silu's x, B and C; linear_pair's in_proj gate, conv input and dt).
// `name` of op's argument: positive widths summing to the output's `columns` (`what` they are), or none.
void check_pieces(const char* op, const char* name, c10::IntArrayRef pieces, int64_t columns, const char* what) {
  int64_t covered = 0;
  for (int64_t width : pieces) {
    TORCH_CHECK(width > 0, op, ": expected ", name, " of positive widths, found ", pieces);
    covered += width;
  }
  TORCH_CHECK(pieces.empty() || covered == columns, op, ": expected ", name, " summing to the ", columns, " ", what,
              ", found ", pieces, " (", covered, ")");
}

// out's column pieces of these widths (views), or out itself for one piece or none.
variable_list column_pieces(const Tensor& out, const std::vector<int64_t>& widths) {
  if (widths.size() <= 1) return {out};
  variable_list pieces;
  int64_t at = 0;
  for (int64_t width : widths) {
    pieces.push_back(out.narrow(-1, at, width));
    at += width;
  }
  return pieces;
}

// ---------------------------------------------------------------------------------------------
// causal_conv1d_silu(x [B,T,C], weight [C,K] or [C,1,K], bias [C]?, seq_idx [B,T]?, pieces []) -> [[B,T,C]]
// With pieces (channel counts summing to C) the output comes as those column pieces, views of one
// result (Mamba's x, B and C for the SSD scan): their gradients arrive apart and the backward kernel
// reads each where it is, where a split's backward would concatenate them first (a pass over the
// whole [B,T,C] gradient, about 50 us a layer at 8 x 2048).
// ---------------------------------------------------------------------------------------------
struct CausalConv1dSilu : torch::autograd::Function<CausalConv1dSilu> {
  // bias is a tensor (zeros when the conv has none) and seq_idx an optional: C++ autograd
  // functions take no undefined tensors as inputs.
  static variable_list forward(AutogradContext* ctx, const Tensor& x, const Tensor& weight, const Tensor& bias,
                               bool has_bias, const c10::optional<Tensor>& seq_idx, std::vector<int64_t> pieces) {
    check_cuda(x, "causal_conv1d_silu", "x");
    TORCH_CHECK(x.dim() == 3, "anneal::causal_conv1d_silu: x must be [batch, time, channels], found ", x.sizes());
    int64_t channels = x.size(2);
    // x is a slice of the input projection: read in place when its rows are evenly spaced
    Tensor xc = row_stride(x) >= 0 ? x : x.contiguous();
    Tensor w = weight.reshape({channels, -1}).to(at::kFloat).contiguous();
    TORCH_CHECK(w.size(1) <= 8, "anneal::causal_conv1d_silu: kernel width at most 8, found ", w.size(1));
    Tensor b = has_bias ? bias.to(at::kFloat).contiguous() : Tensor();
    Tensor s = seq_idx.has_value() ? seq_idx->to(at::kLong).contiguous() : Tensor();
    if (s.defined()) {
      TORCH_CHECK(s.sizes() == x.sizes().slice(0, 2), "anneal::causal_conv1d_silu: seq_idx must be [batch, time]");
    }
    Tensor out = at::empty(xc.sizes(), xc.options());
    c10::cuda::CUDAGuard guard(x.device());
    auto stream = at::cuda::getCurrentCUDAStream();
    by_type(xc, "causal_conv1d_silu", [&](auto tag) {
      using T = decltype(tag);
      anneal::conv1d_silu_forward<T>(ptr<T>(xc), row_stride(xc), w.data_ptr<float>(), float_or_null(b),
                                     long_or_null(s), ptr<T>(out), (int) x.size(0), (int) x.size(1), (int) channels,
                                     (int) w.size(1), stream);
    });
    ctx->save_for_backward({xc, weight, bias});
    ctx->saved_data["has_bias"] = has_bias;
    ctx->saved_data["seq"] = optional_value(s);
    if (pieces.empty()) pieces.push_back(channels);
    ctx->saved_data["pieces"] = pieces;
    return column_pieces(out, pieces);
  }

  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    auto saved = ctx->get_saved_variables();
    Tensor xc = saved[0], weight = saved[1], bias = saved[2];
    bool has_bias = ctx->saved_data["has_bias"].toBool();
    Tensor s = saved_optional(ctx, "seq");
    int64_t batch = xc.size(0), time = xc.size(1), channels = xc.size(2);
    Tensor w = weight.reshape({channels, -1}).to(at::kFloat).contiguous();
    int64_t kernel = w.size(1);
    Tensor b = has_bias ? bias.to(at::kFloat).contiguous() : Tensor();
    // each piece's gradient where it is (contiguous; zeros for a piece without one: grads are materialised)
    std::vector<int64_t> pieces = ctx->saved_data["pieces"].toIntVector();
    TORCH_CHECK(pieces.size() <= 3, "anneal::causal_conv1d_silu: at most 3 pieces, found ", pieces.size());
    std::vector<Tensor> douts;
    for (size_t p = 0; p < pieces.size(); p++) {
      douts.push_back(aligned(grads[p].to(xc.scalar_type()).contiguous()));
    }
    Tensor dx = at::empty(xc.sizes(), xc.options());
    int partials = anneal::conv1d_silu_partials((int) batch, (int) time);
    Tensor dw = at::empty({partials, channels, kernel}, xc.options().dtype(at::kFloat));
    Tensor db = at::empty({partials, channels}, xc.options().dtype(at::kFloat));
    c10::cuda::CUDAGuard guard(xc.device());
    auto stream = at::cuda::getCurrentCUDAStream();
    by_type(xc, "causal_conv1d_silu", [&](auto tag) {
      using T = decltype(tag);
      anneal::ConvGradPieces<T> dout;
      int64_t end = 0;
      for (int p = 0; p < 3; p++) {
        size_t q = std::min<size_t>(p, pieces.size() - 1);   // past the last piece: the last again (never read)
        if ((size_t) p < pieces.size()) end += pieces[p];
        dout.dout[p] = ptr<T>(douts[q]);
        dout.end[p] = (int) end;
      }
      anneal::conv1d_silu_backward<T>(ptr<T>(xc), row_stride(xc), w.data_ptr<float>(), float_or_null(b),
                                      long_or_null(s), dout, ptr<T>(dx), dw.data_ptr<float>(), db.data_ptr<float>(),
                                      (int) batch, (int) time, (int) channels, (int) kernel, stream);
    });
    Tensor dweight = parameter_grad(dw.view({partials, -1}), weight);
    Tensor dbias = has_bias ? parameter_grad(db, bias) : Tensor();
    return {dx, dweight, dbias, Tensor(), Tensor(), Tensor()};
  }
};

std::vector<Tensor> causal_conv1d_silu(const Tensor& x, const Tensor& weight, const c10::optional<Tensor>& bias,
                                       const c10::optional<Tensor>& seq_idx, c10::IntArrayRef pieces) {
  check_pieces("anneal::causal_conv1d_silu", "pieces", pieces, x.size(-1), "channels");
  TORCH_CHECK(pieces.size() <= 3, "anneal::causal_conv1d_silu: expected at most 3 pieces, found ", pieces);
  Tensor b = bias.has_value() ? *bias : at::zeros({x.size(-1)}, x.options().dtype(at::kFloat));
  return CausalConv1dSilu::apply(x, weight, b, bias.has_value(), seq_idx, pieces.vec());
}

// ---------------------------------------------------------------------------------------------
// gated_rms_norm(y [..., D], z [..., D], weight [D], groups, eps, norm_before_gate) -> [..., D] in z's type
// ---------------------------------------------------------------------------------------------
struct GatedRmsNorm : torch::autograd::Function<GatedRmsNorm> {
  static Tensor forward(AutogradContext* ctx, const Tensor& y, const Tensor& z, const Tensor& weight, int64_t groups,
                        double eps, bool norm_before_gate) {
    check_cuda(y, "gated_rms_norm", "y");
    TORCH_CHECK(y.sizes() == z.sizes(), "anneal::gated_rms_norm: y and z differ in shape: ", y.sizes(), " ",
                z.sizes());
    int64_t width = y.size(-1);
    TORCH_CHECK(groups > 0 && width % groups == 0, "anneal::gated_rms_norm: ", width, " channels in ", groups,
                " groups");
    TORCH_CHECK(width / groups <= anneal::gated_rms_norm_max_group_width(),
                "anneal::gated_rms_norm: group width at most ", anneal::gated_rms_norm_max_group_width());
    int64_t rows = y.numel() / width;
    Tensor yc = y.to(at::kFloat).reshape({rows, width}).contiguous();
    Tensor zc = z.reshape({rows, width}).contiguous();
    Tensor w = weight.to(at::kFloat).contiguous();
    Tensor out = at::empty_like(zc);
    Tensor rstd = at::empty({rows, groups}, yc.options());
    c10::cuda::CUDAGuard guard(y.device());
    auto stream = at::cuda::getCurrentCUDAStream();
    by_type(zc, "gated_rms_norm", [&](auto tag) {
      using TZ = decltype(tag);
      anneal::gated_rms_norm_forward<float, TZ>(yc.data_ptr<float>(), ptr<TZ>(zc), w.data_ptr<float>(), ptr<TZ>(out),
                                                rstd.data_ptr<float>(), rows, (int) width, (int) groups, (float) eps,
                                                norm_before_gate, stream);
    });
    ctx->save_for_backward({yc, zc, weight, rstd});
    ctx->saved_data["groups"] = groups;
    ctx->saved_data["norm_before_gate"] = norm_before_gate;
    ctx->saved_data["y_type"] = (int64_t) y.scalar_type();
    return out.reshape(z.sizes());
  }

  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    auto saved = ctx->get_saved_variables();
    Tensor yc = saved[0], zc = saved[1], weight = saved[2], rstd = saved[3];
    int64_t groups = ctx->saved_data["groups"].toInt();
    bool norm_before_gate = ctx->saved_data["norm_before_gate"].toBool();
    auto y_type = (at::ScalarType) ctx->saved_data["y_type"].toInt();
    int64_t rows = yc.size(0), width = yc.size(1);
    Tensor w = weight.to(at::kFloat).contiguous();
    Tensor dout = grads[0].defined() ? grads[0].to(zc.scalar_type()).reshape({rows, width}).contiguous()
                                     : at::zeros_like(zc);
    Tensor dy = at::empty_like(yc);
    Tensor dz = at::empty_like(zc);
    Tensor dw = at::empty({anneal::gated_rms_norm_partials(rows), width}, yc.options());
    c10::cuda::CUDAGuard guard(yc.device());
    auto stream = at::cuda::getCurrentCUDAStream();
    by_type(zc, "gated_rms_norm", [&](auto tag) {
      using TZ = decltype(tag);
      anneal::gated_rms_norm_backward<float, TZ>(yc.data_ptr<float>(), ptr<TZ>(zc), w.data_ptr<float>(),
                                                 rstd.data_ptr<float>(), ptr<TZ>(dout), dy.data_ptr<float>(),
                                                 ptr<TZ>(dz), dw.data_ptr<float>(), rows, (int) width, (int) groups,
                                                 norm_before_gate, stream);
    });
    auto shape = grads[0].defined() ? grads[0].sizes().vec() : std::vector<int64_t>{rows, width};
    return {dy.to(y_type).reshape(shape), dz.reshape(shape), parameter_grad(dw, weight), Tensor(), Tensor(), Tensor()};
  }
};

Tensor gated_rms_norm(const Tensor& y, const Tensor& z, const Tensor& weight, int64_t groups, double eps,
                      bool norm_before_gate) {
  return GatedRmsNorm::apply(y, z, weight, groups, eps, norm_before_gate);
}

// ---------------------------------------------------------------------------------------------
// ssd_scan(x [B,T,H,P], dt [B,T,H], A [H], B [B,T,G,N], C [B,T,G,N], seq_idx [B,T]?, chunk) -> y [B,T,H,P] float32
//
// The chunked SSD algorithm of Mamba-2 (Dao & Gu 2024, "Transformers are SSMs", section 6 and its
// "SSD minimal" listing): y_t = C_t . h_t with h_t = exp(dt_t A) h_{t-1} + dt_t x_t B_t^T, in four
// parts per chunk of Q tokens: the intra-chunk quadratic form, chunk-end states, the inter-chunk
// state recurrence, and the states' contribution to each token. With seq_idx the state is reset
// at every document start: a token mixes only with earlier tokens of its document, a chunk-end
// state holds only the chunk's last document, and a state crosses chunks only within a document.
// Matmuls run in x's type (bf16 on the fused path, float32 accumulation inside cuBLAS); decay
// sums and exponentials stay float32 (the Mamba authors keep them float32 too).
// ---------------------------------------------------------------------------------------------
// The intra-chunk mixing matrix M = S * exp(cum_i - cum_j) (masked) in one kernel each way; see
// anneal_kernels.cu. scores [b,c,g,q,q] float32, logd [b,c,h,q] float32 the per-token log decays and
// cum their within-chunk cumulative sum (passed in: the scan computes it once for all its uses)
// -> [b,c,h,q,q] in `type`. The decay gradient goes to logd, not to cum: the kernel sums it without
// the cancellation the gradient through cum carries (anneal_kernels.cu, ssd_mixing_backward_vec_kernel).
struct SsdMixing : torch::autograd::Function<SsdMixing> {
  static Tensor forward(AutogradContext* ctx, const Tensor& scores, const Tensor& logd, const Tensor& cum,
                        const c10::optional<Tensor>& seq, int64_t type) {
    Tensor sc = aligned(scores.contiguous()), cc = cum.contiguous();
    Tensor sq = seq.has_value() ? seq->contiguous() : Tensor();
    int64_t b = cc.size(0), c = cc.size(1), h = cc.size(2), q = cc.size(3), g = sc.size(2);
    Tensor mixing = at::empty({b, c, h, q, q}, cc.options().dtype((at::ScalarType) type));
    c10::cuda::CUDAGuard guard(cc.device());
    auto stream = at::cuda::getCurrentCUDAStream();
    by_type(mixing, "ssd_scan", [&](auto tag) {
      using T = decltype(tag);
      anneal::ssd_mixing_forward<T>(sc.data_ptr<float>(), cc.data_ptr<float>(), long_or_null(sq), ptr<T>(mixing),
                                    (int) b, (int) c, (int) h, (int) g, (int) q, stream);
    });
    ctx->save_for_backward({sc, cc});
    ctx->saved_data["seq"] = optional_value(sq);
    return mixing;
  }

  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    auto saved = ctx->get_saved_variables();
    Tensor sc = saved[0], cc = saved[1];
    Tensor sq = saved_optional(ctx, "seq");
    int64_t b = cc.size(0), c = cc.size(1), h = cc.size(2), q = cc.size(3), g = sc.size(2);
    Tensor dm = grads[0].contiguous();
    Tensor dscores = at::empty_like(sc);
    Tensor dlogd = at::zeros_like(cc);
    c10::cuda::CUDAGuard guard(cc.device());
    auto stream = at::cuda::getCurrentCUDAStream();
    by_type(dm, "ssd_scan", [&](auto tag) {
      using T = decltype(tag);
      anneal::ssd_mixing_backward<T>(sc.data_ptr<float>(), cc.data_ptr<float>(), long_or_null(sq), ptr<T>(dm),
                                     dscores.data_ptr<float>(), dlogd.data_ptr<float>(), (int) b, (int) c, (int) h,
                                     (int) g, (int) q, stream);
    });
    return {dscores, dlogd, Tensor(), Tensor(), Tensor()};
  }
};

// ---------------------------------------------------------------------------------------------
// State passing across chunks on one kernel each way (see anneal_kernels.cu): states [b,c,h,E] in
// the matmuls' type, decay [b,c,h] float32 (each chunk's summed log decay), keep [b,c] float 0/1
// or undefined -> the state entering each chunk [b,c,h,E] in the states' type. Replaces the
// [c, c] carry matrix and its float32 GEMM, with the transposes, pads and casts around them.
// ---------------------------------------------------------------------------------------------
// `states` is [b,c,h,E] (inner = 0) or the transposed [b,c,g,n,r*inner] of the GPU path (inner the
// head dimension p): decay [b,c,h] gives the heads either way.
struct SsdStatePassing : torch::autograd::Function<SsdStatePassing> {
  static Tensor forward(AutogradContext* ctx, const Tensor& states, const Tensor& decay,
                        const c10::optional<Tensor>& keep, int64_t inner) {
    Tensor st = states.contiguous(), dc = decay.contiguous();
    Tensor kp = keep.has_value() ? keep->contiguous() : Tensor();
    int64_t b = st.size(0), c = st.size(1), h = dc.size(2), e = st.numel() / (b * c * h);
    int64_t per_group = inner == 0 ? 1 : h / st.size(2);
    Tensor entering = at::empty_like(st);
    c10::cuda::CUDAGuard guard(st.device());
    auto stream = at::cuda::getCurrentCUDAStream();
    by_type(st, "ssd_scan", [&](auto tag) {
      using T = decltype(tag);
      anneal::ssd_state_passing_forward<T>(ptr<T>(st), dc.data_ptr<float>(), float_or_null(kp), ptr<T>(entering),
                                           (int) b, (int) c, (int) h, e, (int) inner, (int) per_group, stream);
    });
    ctx->save_for_backward({entering, dc});
    ctx->saved_data["keep"] = optional_value(kp);
    ctx->saved_data["inner"] = inner;
    return entering;
  }

  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    auto saved = ctx->get_saved_variables();
    Tensor entering = saved[0], dc = saved[1];
    Tensor kp = saved_optional(ctx, "keep");
    int64_t inner = ctx->saved_data["inner"].toInt();
    if (!grads[0].defined()) return {Tensor(), Tensor(), Tensor(), Tensor()};
    Tensor g = grads[0].to(entering.scalar_type()).contiguous();
    int64_t b = entering.size(0), c = entering.size(1), h = dc.size(2), e = entering.numel() / (b * c * h);
    int64_t per_group = inner == 0 ? 1 : h / entering.size(2);
    Tensor dstates = at::empty_like(entering);
    Tensor ddecay = at::zeros_like(dc);
    c10::cuda::CUDAGuard guard(entering.device());
    auto stream = at::cuda::getCurrentCUDAStream();
    by_type(entering, "ssd_scan", [&](auto tag) {
      using T = decltype(tag);
      anneal::ssd_state_passing_backward<T>(ptr<T>(entering), dc.data_ptr<float>(), float_or_null(kp), ptr<T>(g),
                                            ptr<T>(dstates), ddecay.data_ptr<float>(), (int) b, (int) c, (int) h, e,
                                            (int) inner, (int) per_group, stream);
    });
    return {dstates, ddecay, Tensor(), Tensor()};
  }
};

// ---------------------------------------------------------------------------------------------
// Row scaling inside the SSD scan: x [..., W] times s [...] (float32) broadcast along the last
// dimension, written in `type`, with its gradients, on the CUDA kernels of anneal_kernels.cu (one
// pass each way; ATen's broadcast ran unvectorised and reduced ds in a second pass).
// ---------------------------------------------------------------------------------------------
template <typename F>
void by_scale_types(const Tensor& x, const Tensor& out, F&& f) {
  if (out.scalar_type() == x.scalar_type()) {
    by_type(x, "row_scale", [&](auto tag) { f(tag, tag); });
    return;
  }
  TORCH_CHECK(out.scalar_type() == at::kFloat, "anneal::row_scale: a ", x.scalar_type(), " input scales into its own type "
              "or float32, not ", out.scalar_type());
  switch (x.scalar_type()) {
    case at::kHalf: f(__half{}, float{}); break;
    case at::kBFloat16: f(__nv_bfloat16{}, float{}); break;
    default: TORCH_CHECK(false, "anneal::row_scale: expected float16 or bfloat16 into float32, found ", x.scalar_type());
  }
}

// x [..., W] with each row i times s[i] (float32), written in `type` (x's own, or float32 from a half
// type), one vectorised pass; no autograd (RowScale's forward, and the LM head's backward).
Tensor rows_scaled(const Tensor& x, const Tensor& s, at::ScalarType type) {
  Tensor xc = x.contiguous(), sc = s.contiguous();
  int64_t width = xc.size(-1), rows = width == 0 ? 0 : xc.numel() / width;
  TORCH_CHECK(sc.scalar_type() == at::kFloat && sc.numel() == rows, "anneal::row_scale: expected ", rows,
              " float32 row scales, found ", sc.numel(), " ", sc.scalar_type());
  Tensor out = at::empty(xc.sizes(), xc.options().dtype(type));
  c10::cuda::CUDAGuard guard(xc.device());
  auto stream = at::cuda::getCurrentCUDAStream();
  by_scale_types(xc, out, [&](auto tx, auto to) {
    using TX = decltype(tx);
    using TO = decltype(to);
    anneal::row_scale_forward<TX, TO>(ptr<TX>(xc), sc.data_ptr<float>(), ptr<TO>(out), rows, (int) width, stream);
  });
  return out;
}

struct RowScale : torch::autograd::Function<RowScale> {
  static Tensor forward(AutogradContext* ctx, const Tensor& x, const Tensor& s, int64_t type) {
    Tensor xc = x.contiguous(), sc = s.contiguous();
    ctx->save_for_backward({xc, sc});
    return rows_scaled(xc, sc, (at::ScalarType) type);
  }

  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    auto saved = ctx->get_saved_variables();
    Tensor xc = saved[0], sc = saved[1];
    if (!grads[0].defined()) return {Tensor(), Tensor(), Tensor()};
    Tensor g = grads[0].contiguous();
    int64_t width = xc.size(-1), rows = width == 0 ? 0 : xc.numel() / width;
    Tensor dx = at::empty_like(xc), ds = at::empty_like(sc);
    c10::cuda::CUDAGuard guard(xc.device());
    auto stream = at::cuda::getCurrentCUDAStream();
    by_scale_types(xc, g, [&](auto tx, auto to) {
      using TX = decltype(tx);
      using TO = decltype(to);
      anneal::row_scale_backward<TX, TO>(ptr<TX>(xc), sc.data_ptr<float>(), ptr<TO>(g), ptr<TX>(dx),
                                         ds.data_ptr<float>(), rows, (int) width, stream);
    });
    return {dx, ds, Tensor()};
  }
};

// x [..., W] * s[..., None] in `type`: the kernels on a GPU, ATen elsewhere.
Tensor scale_rows(const Tensor& x, const Tensor& s, at::ScalarType type) {
  if (!x.is_cuda()) return (x * s.unsqueeze(-1)).to(type);
  return RowScale::apply(x, s, (int64_t) type);
}

// ---------------------------------------------------------------------------------------------
// The SSD output assembled in one pass each way (anneal_kernels.cu, ssd_combine_*): y [b,t,h,p] in
// the matmuls' type = y_off [b,c,g,q,r*p] * from_start [b,c,h,q] + y_diag [b,c,g,r,q,p] + x D.
// ---------------------------------------------------------------------------------------------
struct SsdCombine : torch::autograd::Function<SsdCombine> {
  // value_needed false: only the backward is wanted (SsdScan::backward's recomputation), the
  // result's memory is left unwritten. skip_edge (ScaleTwoLayouts' third output, no values; x then
  // comes detached): the skip's x-gradient leaves through it as y's own gradient, for
  // ScaleTwoLayouts to multiply by D as it writes dx.
  static Tensor forward(AutogradContext* ctx, const Tensor& y_off, const Tensor& from_start, const Tensor& y_diag,
                        const Tensor& x, const c10::optional<Tensor>& d, int64_t q, bool value_needed,
                        const c10::optional<Tensor>& skip_edge) {
    Tensor yo = y_off.contiguous(), fs = from_start.contiguous();
    Tensor dd = d.has_value() ? d->contiguous() : Tensor();
    int64_t b = x.size(0), t = x.size(1), h = x.size(2), p = x.size(3), g = yo.size(2), c = yo.size(1);
    Tensor out = at::empty({b, t, h, p}, x.options());
    if (value_needed) {
      Tensor yd = y_diag.contiguous();
      c10::cuda::CUDAGuard guard(x.device());
      auto stream = at::cuda::getCurrentCUDAStream();
      by_type(x, "ssd_scan", [&](auto tag) {
        using T = decltype(tag);
        anneal::ssd_combine_forward<T>(ptr<T>(yo), fs.data_ptr<float>(), ptr<T>(yd), ptr<T>(x), x.stride(1),
                                       float_or_null(dd), ptr<T>(out), (int) b, (int) c, (int) q, (int) g,
                                       (int) (h / g), (int) p, (int) t, stream);
      });
    }
    ctx->save_for_backward({yo, fs, x});
    ctx->saved_data["d"] = optional_value(dd);
    ctx->saved_data["q"] = q;
    // (a flag, not needs_input_grad: edge indices count only the tensors given, and D may be absent)
    ctx->saved_data["skip_edge"] = skip_edge.has_value();
    return out;
  }

  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    auto saved = ctx->get_saved_variables();
    Tensor yo = saved[0], fs = saved[1], x = saved[2];
    Tensor dd = saved_optional(ctx, "d");
    int64_t q = ctx->saved_data["q"].toInt();
    if (!grads[0].defined()) return {Tensor(), Tensor(), Tensor(), Tensor(), Tensor(), Tensor(), Tensor(), Tensor()};
    Tensor gy = grads[0].to(x.scalar_type()).contiguous();
    int64_t b = x.size(0), t = x.size(1), h = x.size(2), p = x.size(3), g = yo.size(2), c = yo.size(1), r = h / g;
    Tensor dy_off = at::empty_like(yo), dfs = at::empty_like(fs);
    Tensor dy_diag = at::empty({b, c, g, r, q, p}, yo.options());
    // x's gradient only when x is differentiated here: SsdScan::backward's recomputation hands the
    // skip's x-gradient to ScaleTwoLayouts instead (no second dx and no addition of the two)
    Tensor dx = dd.defined() && ctx->needs_input_grad(3) ? at::empty({b, t, h, p}, x.options()) : Tensor();
    Tensor dd_partial = dd.defined() ? at::empty({b * c * q, h}, fs.options()) : Tensor();
    c10::cuda::CUDAGuard guard(x.device());
    auto stream = at::cuda::getCurrentCUDAStream();
    by_type(x, "ssd_scan", [&](auto tag) {
      using T = decltype(tag);
      anneal::ssd_combine_backward<T>(ptr<T>(yo), fs.data_ptr<float>(), ptr<T>(x), x.stride(1), float_or_null(dd),
                                      ptr<T>(gy), ptr<T>(dy_off), dfs.data_ptr<float>(), ptr<T>(dy_diag),
                                      dx.defined() ? ptr<T>(dx) : nullptr,
                                      dd_partial.defined() ? dd_partial.data_ptr<float>() : nullptr, (int) b, (int) c,
                                      (int) q, (int) g, (int) r, (int) p, (int) t, stream);
    });
    Tensor dD = dd.defined() ? parameter_grad(dd_partial, dd) : Tensor();
    return {dy_off, dfs, dy_diag, dx, dD, Tensor(), Tensor(), ctx->saved_data["skip_edge"].toBool() ? gy : Tensor()};
  }
};

// Whether the one-pass assembly applies: a GPU, a head dimension of 8 to 256 in a power of two,
// x's (h, p) block contiguous per token and 16-byte aligned (a view of the conv output is).
bool ssd_combine_applies(const Tensor& x) {
  if (!x.is_cuda() || x.stride(3) != 1 || x.stride(2) != x.size(3) || x.stride(0) != x.size(1) * x.stride(1)) {
    return false;
  }
  return anneal::ssd_combine_supported((int) x.size(3), {x.data_ptr()}) &&
         (x.stride(1) * x.element_size()) % 16 == 0;
}

// x dt in the tokens' layout [b,t,h,p] and the heads' [b,c,h,q,p] (anneal_kernels.cu,
// scale_two_layouts_*): the intra-chunk product reads the second without a permuted copy, and the
// two layouts' gradients are summed as backward reads them. With skip_grad (the gradient of y + x D,
// known before SsdScan::backward recomputes) and D, the backward's dx also holds the skip's share,
// skip_grad D: one pass instead of a second [b,t,h,p] gradient and a bfloat16 addition of the two
// (about 48 us a layer at 8 x 2048).
// With heads_values false the heads' layout is not written: the second output then holds no values
// (one element, every stride 0), only the gradient edge through which the intra-chunk kernels'
// x-gradient, in the heads' layout, reaches this backward, which sums it with the tokens' as it reads
// them. The diagonal kernels read x dt from the tokens' layout instead (SsdDiagonal's xs_values).
// With `skip_edge` (the kept scan: no recomputation knows skip_grad in advance) and D, a third output
// is returned, again without values: SsdCombine takes it in place of x's gradient and hands it y's
// gradient, which this backward folds in as skip_grad. The skip's x-gradient is then again no second
// [b,t,h,p] tensor and no addition.
// With `to_end` (ANNEAL_SSD_WEIGHTED, the default: the decays to each chunk's end [b,c,q,h], float32) a last output
// holds the weighted tokens (x dt) to_end [b,t,h,p], the chunk-end states' operand, written in the same
// pass (scale_rows over the tokens' layout read it again, and its backward wrote a [b,t,h,p] gradient
// of its own that autograd then added to the layouts' in the compute type); to_end takes its gradient.
struct ScaleTwoLayouts : torch::autograd::Function<ScaleTwoLayouts> {
  static variable_list forward(AutogradContext* ctx, const Tensor& x, const Tensor& dt, int64_t q,
                               const c10::optional<Tensor>& skip_grad, const c10::optional<Tensor>& skip,
                               bool heads_values, bool skip_edge, const c10::optional<Tensor>& to_end) {
    TORCH_CHECK(!skip_edge || skip.has_value(), "anneal::ssd_scan: a skip edge needs D");
    // an output that no later node uses gets no gradient (not zeros: the edge would then be read)
    ctx->set_materialize_grads(false);
    Tensor dtc = dt.contiguous();
    int64_t b = x.size(0), t = x.size(1), h = x.size(2), p = x.size(3);
    Tensor tokens = at::empty({b, t, h, p}, x.options());
    Tensor heads = heads_values ? at::empty({b, t / q, h, q, p}, x.options())
                                : at::empty_strided({b, t / q, h, q, p}, {0, 0, 0, 0, 0}, x.options());
    Tensor end = to_end.has_value() ? to_end->to(at::kFloat).contiguous() : Tensor();
    Tensor weighted = end.defined() ? at::empty({b, t, h, p}, x.options()) : Tensor();
    c10::cuda::CUDAGuard guard(x.device());
    auto stream = at::cuda::getCurrentCUDAStream();
    by_type(x, "ssd_scan", [&](auto tag) {
      using T = decltype(tag);
      anneal::WeightedTokens<T> w{float_or_null(end), weighted.defined() ? ptr<T>(weighted) : nullptr, nullptr,
                                  nullptr};
      anneal::scale_two_layouts_forward<T>(ptr<T>(x), x.stride(1), dtc.data_ptr<float>(), ptr<T>(tokens),
                                           heads_values ? ptr<T>(heads) : nullptr, w, (int) b, (int) t, (int) h,
                                           (int) p, (int) q, stream);
    });
    ctx->save_for_backward({x, dtc});
    ctx->saved_data["q"] = q;
    bool fold = skip_grad.has_value() && skip.has_value();
    ctx->saved_data["skip_grad"] = optional_value(fold ? skip_grad->to(x.scalar_type()).contiguous() : Tensor());
    ctx->saved_data["skip"] = optional_value(fold || skip_edge ? skip->to(at::kFloat).contiguous() : Tensor());
    ctx->saved_data["to_end"] = optional_value(end);
    variable_list out = {tokens, heads};
    if (skip_edge) out.push_back(at::empty_strided({b, t, h, p}, {0, 0, 0, 0}, x.options()));
    ctx->saved_data["weighted_at"] = (int64_t) out.size();   // the weighted tokens' output, when made
    if (weighted.defined()) out.push_back(weighted);
    return out;
  }

  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    auto saved = ctx->get_saved_variables();
    Tensor x = saved[0], dtc = saved[1];
    int64_t q = ctx->saved_data["q"].toInt();
    Tensor end = saved_optional(ctx, "to_end");
    size_t weighted_at = (size_t) ctx->saved_data["weighted_at"].toInt();
    Tensor g_weighted = end.defined() && grads[weighted_at].defined()
                            ? grads[weighted_at].to(x.scalar_type()).contiguous() : Tensor();
    Tensor g_skip = saved_optional(ctx, "skip_grad");
    if (weighted_at > 2 && grads[2].defined()) g_skip = grads[2].to(x.scalar_type()).contiguous();  // the edge's
    Tensor d_skip = saved_optional(ctx, "skip");
    if (!grads[0].defined() && !grads[1].defined() && !g_skip.defined() && !g_weighted.defined()) {
      return {Tensor(), Tensor(), Tensor(), Tensor(), Tensor(), Tensor(), Tensor(), Tensor()};
    }
    Tensor g_tokens = grads[0].defined() ? grads[0].to(x.scalar_type()).contiguous() : Tensor();
    Tensor g_heads = grads[1].defined() ? grads[1].to(x.scalar_type()).contiguous() : Tensor();
    int64_t b = x.size(0), t = x.size(1), h = x.size(2), p = x.size(3);
    Tensor dx = at::empty({b, t, h, p}, x.options()), ddt = at::empty_like(dtc);
    Tensor dend = g_weighted.defined() ? at::empty_like(end) : Tensor();
    c10::cuda::CUDAGuard guard(x.device());
    auto stream = at::cuda::getCurrentCUDAStream();
    by_type(x, "ssd_scan", [&](auto tag) {
      using T = decltype(tag);
      anneal::WeightedTokens<T> w{float_or_null(end), nullptr,
                                  g_weighted.defined() ? ptr<T>(g_weighted) : nullptr,
                                  dend.defined() ? dend.data_ptr<float>() : nullptr};
      anneal::scale_two_layouts_backward<T>(ptr<T>(x), x.stride(1), dtc.data_ptr<float>(),
                                            g_tokens.defined() ? ptr<T>(g_tokens) : nullptr,
                                            g_heads.defined() ? ptr<T>(g_heads) : nullptr,
                                            g_skip.defined() ? ptr<T>(g_skip) : nullptr, float_or_null(d_skip), w,
                                            ptr<T>(dx), ddt.data_ptr<float>(), (int) b, (int) t, (int) h, (int) p,
                                            (int) q, stream);
    });
    return {dx, ddt, Tensor(), Tensor(), Tensor(), Tensor(), Tensor(), dend};
  }
};

// a [..., m, k] b [..., k, n] for a recomputation that differentiates through the product but never
// reads it: the forward launches nothing (its result is uninitialised memory of the product's shape),
// the backward gives torch.matmul's gradients. In SsdScan::backward the intra-chunk product y_diag
// is such a value: SsdCombine keeps y_off, from_start and x for its backward, not y_diag.
struct GradientOnlyProduct : torch::autograd::Function<GradientOnlyProduct> {
  static Tensor forward(AutogradContext* ctx, const Tensor& a, const Tensor& b) {
    TORCH_CHECK(a.dim() == b.dim() && a.dim() >= 2 && a.size(-1) == b.size(-2) &&
                a.sizes().slice(0, a.dim() - 2) == b.sizes().slice(0, b.dim() - 2),
                "anneal: a product of [..., m, k] and [..., k, n] with the same batch dimensions expected, found ",
                a.sizes(), " and ", b.sizes());
    ctx->save_for_backward({a, b});
    std::vector<int64_t> sizes = a.sizes().vec();
    sizes.back() = b.size(-1);
    return at::empty(sizes, a.options());
  }

  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    if (!grads[0].defined()) return {Tensor(), Tensor()};
    auto saved = ctx->get_saved_variables();
    Tensor g = grads[0].to(saved[0].scalar_type());
    Tensor da = ctx->needs_input_grad(0) ? at::matmul(g, saved[1].transpose(-1, -2)) : Tensor();
    Tensor db = ctx->needs_input_grad(1) ? at::matmul(saved[0].transpose(-1, -2), g) : Tensor();
    return {da, db};
  }
};

// The SSD's decays of each chunk in one kernel each way (anneal_kernels.cu, ssd_decays_*), on a GPU:
// dt [b,t,h] and A [h] float32, the padded document ids [b, c*q] (or none) -> logd and from_start
// [b,c,h,q], cum [b,c,h,q] (its values only: the mixing reads it detached), to_end in the tokens'
// layout [b,c,q,h], last [b,c,h], keep [b,c] (0 elements without documents). In place of about 25
// launches a layer of the composed form (ssd_forward's CPU path gives the same values).
struct SsdDecays : torch::autograd::Function<SsdDecays> {
  static variable_list forward(AutogradContext* ctx, const Tensor& dt, const Tensor& a,
                               const c10::optional<Tensor>& seq, int64_t q) {
    Tensor dtc = dt.contiguous(), ac = a.contiguous();
    Tensor sq = seq.has_value() ? seq->contiguous() : Tensor();
    int64_t b = dtc.size(0), t = dtc.size(1), h = dtc.size(2), c = (t + q - 1) / q;
    auto f32 = dtc.options();
    Tensor logd = at::empty({b, c, h, q}, f32), cum = at::empty({b, c, h, q}, f32);
    Tensor to_end = at::empty({b, c, q, h}, f32), from_start = at::empty({b, c, h, q}, f32);
    Tensor last = at::empty({b, c, h}, f32), keep = at::empty({sq.defined() ? b : 0, c}, f32);
    c10::cuda::CUDAGuard guard(dtc.device());
    anneal::ssd_decays_forward(dtc.data_ptr<float>(), ac.data_ptr<float>(), long_or_null(sq), logd.data_ptr<float>(),
                               cum.data_ptr<float>(), to_end.data_ptr<float>(), from_start.data_ptr<float>(),
                               last.data_ptr<float>(), sq.defined() ? keep.data_ptr<float>() : nullptr, (int) b, (int) t,
                               (int) c, (int) q, (int) h, at::cuda::getCurrentCUDAStream());
    ctx->mark_non_differentiable({cum, keep});
    ctx->save_for_backward({dtc, ac, cum});
    ctx->saved_data["seq"] = optional_value(sq);
    ctx->saved_data["q"] = q;
    return {logd, cum, to_end, from_start, last, keep};
  }

  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    auto saved = ctx->get_saved_variables();
    Tensor dtc = saved[0], ac = saved[1], cum = saved[2];
    Tensor sq = saved_optional(ctx, "seq");
    int64_t q = ctx->saved_data["q"].toInt();
    int64_t b = dtc.size(0), t = dtc.size(1), h = dtc.size(2), c = cum.size(1);
    auto grad = [&](int i) { return grads[i].defined() ? grads[i].to(at::kFloat).contiguous() : Tensor(); };
    Tensor g_logd = grad(0), g_to_end = grad(2), g_from_start = grad(3), g_last = grad(4);
    Tensor ddt = at::empty_like(dtc), da = at::zeros_like(ac);
    c10::cuda::CUDAGuard guard(dtc.device());
    anneal::ssd_decays_backward(dtc.data_ptr<float>(), ac.data_ptr<float>(), long_or_null(sq), cum.data_ptr<float>(),
                                float_or_null(g_logd), float_or_null(g_to_end), float_or_null(g_from_start),
                                float_or_null(g_last), ddt.data_ptr<float>(), da.data_ptr<float>(), (int) b, (int) t,
                                (int) c, (int) q, (int) h, at::cuda::getCurrentCUDAStream());
    return {ddt, da, Tensor(), Tensor()};
  }
};

// The SSD's intra-chunk output M X in one kernel each way (anneal_kernels.cu, ssd_diagonal_*), M = S * L
// as SsdMixing makes it, never in memory, nor its gradient: no batched GEMMs either. For a GPU in a
// half type, chunks a multiple of 16 up to 128 and head dimensions of 16, 32, 64 or 128, with x as
// [b,c,g,r,q,p] whose (b, c) and (g, r) each flatten to one stride (the heads' layout, or the token
// layout's permuted view); elsewhere the caller takes the mixing matrix and the GEMM.
bool ssd_diagonal_applies(const Tensor& xs) {
  auto mm = xs.scalar_type();
  if (!xs.is_cuda() || (mm != at::kHalf && mm != at::kBFloat16)) return false;
  if (xs.stride(5) != 1 || xs.stride(0) != xs.size(1) * xs.stride(1) || xs.stride(2) != xs.size(3) * xs.stride(3)) {
    return false;
  }
  return anneal::ssd_diagonal_supported((int) xs.size(4), (int) xs.size(5), xs.stride(1), xs.stride(3), xs.stride(4),
                                        {xs.data_ptr()});
}

// Whether the diagonal kernels can read x dt where ScaleTwoLayouts writes the tokens' layout (a
// contiguous [b, t, h, p], viewed as [b,c,g,r,q,p]): the half types on a GPU, a chunk and head size
// they take. Then the heads' layout is not written (about 16 us a layer each way at 8 x 2048: the
// forward and the backward's recomputation; the graphed step at 8 x 2048 took 80.9 against 81.7 ms,
// docs/benchmarks/2026-12-03-h200-diag-dcum). -DANNEAL_SSD_TOKEN_LAYOUT=0 writes it, for
// tools/gpu/try-variants.sh.
#ifndef ANNEAL_SSD_TOKEN_LAYOUT
#define ANNEAL_SSD_TOKEN_LAYOUT 1
#endif
bool ssd_diagonal_reads_tokens(const Tensor& x, int64_t q, int64_t h, int64_t p) {
  auto mm = x.scalar_type();
  return ANNEAL_SSD_TOKEN_LAYOUT && x.is_cuda() && (mm == at::kHalf || mm == at::kBFloat16) &&
         anneal::ssd_diagonal_supported((int) q, (int) p, q * h * p, p, h * p, {});
}

template <typename F>
void by_half_type(const Tensor& t, F&& f) {
  if (t.scalar_type() == at::kBFloat16) {
    f(__nv_bfloat16{});
  } else {
    f(__half{});
  }
}

// Inputs as SsdMixing's (the scores, the log decays for their gradient, cum's values, the document
// ids) and x; `value_needed` false (the combine path's recomputation, which only differentiates)
// returns uninitialised memory of the product's shape, as GradientOnlyProduct does.
// xs_values (not differentiated here): where x dt is read, when xs is only the gradient's edge (the
// tokens' layout [b,c,q,h,p] viewed as [b,c,g,r,q,p], under ScaleTwoLayouts without heads_values).
struct SsdDiagonal : torch::autograd::Function<SsdDiagonal> {
  static Tensor forward(AutogradContext* ctx, const Tensor& scores, const Tensor& logd, const Tensor& cum,
                        const c10::optional<Tensor>& seq, const Tensor& xs_edge, bool value_needed,
                        const c10::optional<Tensor>& xs_values) {
    Tensor sc = aligned(scores.contiguous()), cc = cum.contiguous();
    Tensor sq = seq.has_value() ? seq->contiguous() : Tensor();
    const Tensor& xs = xs_values.has_value() ? *xs_values : xs_edge;
    ctx->save_for_backward({sc, cc, xs});
    ctx->saved_data["seq"] = optional_value(sq);
    Tensor y = at::empty(xs.sizes(), xs.options());  // [b,c,g,r,q,p]
    if (!value_needed) return y;
    int64_t b = xs.size(0), c = xs.size(1), g = xs.size(2), r = xs.size(3), q = xs.size(4), p = xs.size(5);
    c10::cuda::CUDAGuard guard(xs.device());
    auto stream = at::cuda::getCurrentCUDAStream();
    by_half_type(xs, [&](auto tag) {
      using T = decltype(tag);
      anneal::ssd_diagonal_forward<T>(sc.data_ptr<float>(), cc.data_ptr<float>(), long_or_null(sq), ptr<T>(xs),
                                      xs.stride(1), xs.stride(3), xs.stride(4), ptr<T>(y), (int) b, (int) c,
                                      (int) (g * r), (int) g, (int) q, (int) p, stream);
    });
    return y;
  }

  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    if (!grads[0].defined()) return {Tensor(), Tensor(), Tensor(), Tensor(), Tensor(), Tensor(), Tensor()};
    auto saved = ctx->get_saved_variables();
    Tensor sc = saved[0], cc = saved[1], xs = saved[2];
    Tensor sq = saved_optional(ctx, "seq");
    Tensor dy = grads[0].to(xs.scalar_type()).contiguous();
    int64_t b = xs.size(0), c = xs.size(1), g = xs.size(2), r = xs.size(3), q = xs.size(4), p = xs.size(5);
    Tensor dscores = at::zeros_like(sc), dlogd = at::empty_like(cc), dxs = at::empty(xs.sizes(), xs.options());
    c10::cuda::CUDAGuard guard(xs.device());
    auto stream = at::cuda::getCurrentCUDAStream();
    by_half_type(xs, [&](auto tag) {
      using T = decltype(tag);
      anneal::ssd_diagonal_backward<T>(sc.data_ptr<float>(), cc.data_ptr<float>(), long_or_null(sq), ptr<T>(xs),
                                       xs.stride(1), xs.stride(3), xs.stride(4), ptr<T>(dy), dscores.data_ptr<float>(),
                                       dlogd.data_ptr<float>(), ptr<T>(dxs), (int) b, (int) c, (int) (g * r), (int) g,
                                       (int) q, (int) p, stream);
    });
    return {dscores, dlogd, Tensor(), Tensor(), dxs, Tensor(), Tensor()};
  }
};

// The SSD scan; with `skip` (D [h], Mamba-2's skip connection) defined, y + x D in x's type, else y
// in float32. `recompute`: SsdScan::backward's pass, which only differentiates the result; on the
// combine kernel's path neither the result nor y_diag is computed (GradientOnlyProduct, SsdCombine's
// value_needed): 95.6 -> 93.9 ms a step at 8 x 2048 (docs/benchmarks/2026-12-03-h200-conv-ssd-recompute).
// `skip_grad` (recompute only): the gradient the result will receive, for ScaleTwoLayouts to take the
// skip connection's x-gradient (SsdCombine then gets x detached).
Tensor ssd_forward(const Tensor& x, const Tensor& dt, const Tensor& a, const Tensor& bm, const Tensor& cm,
                   const Tensor& seq, int64_t chunk, const Tensor& skip = Tensor(), bool recompute = false,
                   const Tensor& skip_grad = Tensor()) {
  const auto mm = x.scalar_type();
  const auto f32 = at::kFloat;
  int64_t b = x.size(0), t = x.size(1), h = x.size(2), p = x.size(3), g = bm.size(2), n = bm.size(3);
  int64_t r = h / g, q = chunk, c = (t + q - 1) / q, pad = c * q - t;
  const double neg_inf = -std::numeric_limits<double>::infinity();
  Tensor dtf = dt.to(f32);
  // x dt in the matmul type: one pass over the largest input instead of a float32 copy and product;
  // on a GPU in both layouts it is read in (rows a whole number of chunks)
  bool two_layouts = pad == 0 && ssd_combine_applies(x);
  // the heads' layout only for the batched GEMM: the diagonal kernels read the tokens'
  bool tokens_only = two_layouts && ssd_diagonal_reads_tokens(x, q, h, p);
  bool fold_skip = two_layouts && recompute && skip.defined() && skip_grad.defined();
  // the kept scan (recompute=False, differentiated by autograd with no second pass): the skip's
  // x-gradient through ScaleTwoLayouts' edge instead of a second dx and an addition
  bool skip_edge = two_layouts && !recompute && skip.defined() && at::GradMode::is_enabled();
  // the padded tokens' document ids: the last one's, carried on
  Tensor sp = seq;
  if (pad > 0 && seq.defined()) sp = at::cat({seq, seq.narrow(1, t - 1, 1).expand({b, pad})}, 1);

  // The decays: logd = dt A per token, cum its cumulative sum within the chunk, last = cum's last,
  // to_end = exp(last - cum) in the chunk's last document ([b,c,q,h]), from_start = exp(cum) in the
  // document the chunk before ended with; keep_flags: whether a state crosses into each chunk.
  c10::optional<Tensor> docs = sp.defined() ? c10::optional<Tensor>(sp) : c10::nullopt;  // the padded ids
  Tensor logd_heads, cum, last, to_end_tok, from_start, keep_flags, same_last_doc;    // [b,c,h,q] / [b,c,h,1]
  if (x.is_cuda() && anneal::ssd_decays_supported((int) q, (int) h)) {
    variable_list d = SsdDecays::apply(dtf, a.to(f32), docs, q);
    logd_heads = d[0];
    cum = d[1];
    to_end_tok = d[2];
    from_start = d[3];
    last = d[4].unsqueeze(-1);
    if (sp.defined()) keep_flags = d[5];
  } else {
    Tensor logd = dtf * a.to(f32);
    if (pad > 0) logd = at::constant_pad_nd(logd, {0, 0, 0, pad});
    logd_heads = logd.view({b, c, q, h}).permute({0, 1, 3, 2});
    cum = logd_heads.cumsum(-1);
    last = cum.narrow(-1, q - 1, 1);
    Tensor to_end = (last - cum).exp();
    from_start = cum.exp();
    if (sp.defined()) {
      Tensor sc = sp.view({b, c, q});
      Tensor last_doc = sc.select(-1, q - 1);                                         // [b,c]
      Tensor previous_last = at::cat({last_doc.narrow(1, 0, 1), last_doc.narrow(1, 0, c - 1)}, 1);
      to_end = to_end * (sc == last_doc.unsqueeze(-1)).to(f32).unsqueeze(2);
      from_start = from_start * (sc == previous_last.unsqueeze(-1)).to(f32).unsqueeze(2);
      same_last_doc = (last_doc.unsqueeze(-1) == last_doc.unsqueeze(-2)).unsqueeze(1);  // [b,1,c,c], the CPU's carry
      // a state crosses from chunk j-1 into j only when j's last document is j-1's (ids never decrease)
      keep_flags = (last_doc == previous_last).to(f32);                               // [b,c]
    }
    to_end_tok = to_end.transpose(-1, -2);                                            // [b,c,q,h]
  }

  Tensor xdt, x_heads, edge, weighted;
  if (two_layouts) {
    c10::optional<Tensor> fold_grad, fold_d;
    if (fold_skip) fold_grad = skip_grad;
    if (fold_skip || skip_edge) fold_d = skip.detach();
    // ANNEAL_SSD_WEIGHTED (the default): the chunk-end states' weighted tokens (step 2 below) in the same pass
    c10::optional<Tensor> fused_end;
    if (ANNEAL_SSD_WEIGHTED) fused_end = to_end_tok;
    variable_list both = ScaleTwoLayouts::apply(x, dtf, q, fold_grad, fold_d, !tokens_only, skip_edge, fused_end);
    xdt = both[0];
    x_heads = both[1];
    if (skip_edge) edge = both[2];
    if (ANNEAL_SSD_WEIGHTED) weighted = both.back();
  } else {
    xdt = scale_rows(x.to(mm), dtf, mm);
  }
  Tensor bp = bm, cp = cm;
  if (pad > 0) {
    // zero input and zero decay: padded tokens neither feed nor decay the state
    xdt = at::constant_pad_nd(xdt, {0, 0, 0, 0, 0, pad});
    bp = at::constant_pad_nd(bm, {0, 0, 0, 0, 0, pad});
    cp = at::constant_pad_nd(cm, {0, 0, 0, 0, 0, pad});
  }
  // Two layouts: the heads' [b,c,g,r,q,p] for the intra-chunk product (one copy of x), and the
  // tokens' own [b,c,q,h,p] for everything element-wise, so that those kernels run over contiguous
  // memory with the per-token decays broadcast along p (over [b,c,g,r,q,p] views they ran at a
  // third of the bandwidth, half the scan's time). With one group the state GEMMs read the token
  // layout directly (a transposed operand, no copy).
  Tensor xtok = xdt.view({b, c, q, h, p});                                             // [b,c,q,h,p] mm
  Tensor xs_tokens = xtok.view({b, c, q, g, r, p}).permute({0, 1, 3, 4, 2, 5});        // [b,c,g,r,q,p] view
  Tensor xs = two_layouts ? x_heads.view({b, c, g, r, q, p}) : xs_tokens;              // [b,c,g,r,q,p] mm
  // (tokens_only: xs holds no values, it is the heads' gradient edge; the values are xs_tokens)
  Tensor bc = bp.to(mm).view({b, c, q, g, n}).permute({0, 1, 3, 2, 4});               // [b,c,g,q,n]
  Tensor cc = cp.to(mm).view({b, c, q, g, n}).permute({0, 1, 3, 2, 4});

  // 1. intra-chunk: y_i = sum_{j<=i} (C_i . B_j) exp(cum_i - cum_j) x_j dt_j
  Tensor scores = at::matmul(cc, bc.transpose(-1, -2)).to(f32);                        // [b,c,g,q,q]
  bool combine = skip.defined() && ssd_combine_applies(x);
  bool graph_only = recompute && combine;
  Tensor y_diag;                                                                      // [b,c,g,r,q,p] mm
  if (tokens_only || ssd_diagonal_applies(xs)) {   // (tokens_only first: xs is then an edge without values)
    y_diag = SsdDiagonal::apply(scores, logd_heads, cum.detach(), docs, xs, !graph_only,
                                tokens_only ? c10::optional<Tensor>(xs_tokens.detach()) : c10::nullopt);
  } else {
    Tensor mixing;
    if (x.is_cuda() && q % 32 == 0 && q <= anneal::ssd_mixing_max_chunk()) {
      mixing = SsdMixing::apply(scores, logd_heads, cum.detach(), docs, (int64_t) mm).view({b, c, g, r, q, q});
    } else {  // the composed form (chunks that are not a multiple of 32)
      Tensor intra = at::ones({q, q}, x.options().dtype(at::kBool)).tril();  // [q,q], or [b,c,1,q,q] with documents
      if (sp.defined()) {
        Tensor sc = sp.view({b, c, q});
        intra = (sc.unsqueeze(-1) == sc.unsqueeze(-2)).logical_and(intra).unsqueeze(2);
      }
      // SsdDecays' cum carries values only: differentiated here, the sum is taken again through autograd
      Tensor cum_d = !cum.requires_grad() && logd_heads.requires_grad() ? logd_heads.cumsum(-1) : cum;
      Tensor decay = (cum_d.unsqueeze(-1) - cum_d.unsqueeze(-2)).masked_fill(intra.logical_not(), neg_inf).exp();
      mixing = (scores.unsqueeze(3) * decay.view({b, c, g, r, q, q})).to(mm);
    }
    y_diag = graph_only ? GradientOnlyProduct::apply(mixing, xs) : at::matmul(mixing, xs);
  }

  // 2. the state at each chunk's end: sum_j exp(cum_last - cum_j) x_j dt_j B_j^T, the decay applied
  // in the token layout ([b,c,q,h,1] against [b,c,q,h,p])
  if (!weighted.defined()) weighted = scale_rows(xtok, to_end_tok, mm);              // [b,c,q,h,p] mm
  weighted = weighted.view({b, c, q, h, p});

  // 3. across chunks: S_j = sum_{k<=j} exp(cs_j - cs_k) states_k, cs the cumulative chunk decays;
  // the state entering chunk j is S_{j-1} (zero for the first)
  Tensor y_off;                                                                       // [b,c,g,q,r*p] mm
  if (x.is_cuda()) {
    // the states transposed, [b,c,g,n,r*p]: with one group every product's operands and gradients
    // are then plain or transposed matrices (in [b,c,g,r*p,n] the entering state's gradient and the
    // weighted tokens' were copied into place, 4.5 ms of a 151 ms step at 8 x 2048)
    Tensor states_t = at::matmul(bc.transpose(-1, -2), weighted.view({b, c, q, g, r * p}).permute({0, 1, 3, 2, 4}));
    c10::optional<Tensor> keep = c10::nullopt;
    if (sp.defined()) keep = keep_flags;
    Tensor entering_t = SsdStatePassing::apply(states_t, last.squeeze(-1), keep, p);   // [b,c,g,n,r*p]
    y_off = at::matmul(cc, entering_t);
  } else {  // the composed form: the [c, c] carry matrix
    Tensor weighted_g = weighted.view({b, c, q, g, r * p}).permute({0, 1, 3, 4, 2});  // [b,c,g,r*p,q]
    Tensor states = at::matmul(weighted_g, bc);                                       // [b,c,g,r*p,n] mm
    Tensor cs = last.squeeze(-1).transpose(1, 2).cumsum(-1);                          // [b,h,c]
    Tensor inter = at::ones({c, c}, x.options().dtype(at::kBool)).tril();
    if (same_last_doc.defined()) inter = same_last_doc.logical_and(inter);
    Tensor carry = (cs.unsqueeze(-1) - cs.unsqueeze(-2)).masked_fill(inter.logical_not(), neg_inf).exp();
    Tensor carried = at::matmul(carry, states.to(f32).reshape({b, c, h, p * n}).transpose(1, 2));  // [b,h,c,p*n]
    Tensor entering = at::constant_pad_nd(carried.narrow(2, 0, c - 1), {0, 0, 1, 0});  // chunk 0 starts at zero
    entering = entering.transpose(1, 2).reshape({b, c, g, r * p, n}).to(mm);
    y_off = at::matmul(cc, entering.transpose(-1, -2));
  }

  // 4. the entering state's contribution: C_i . S exp(cum_i) (y_off above, computed straight into
  // the token layout), scaled by the decay from the chunk's start
  if (combine) {
    return SsdCombine::apply(y_off, from_start, y_diag, fold_skip || skip_edge ? x.detach() : x,
                             c10::optional<Tensor>(skip.to(f32)), q, !graph_only,
                             skip_edge ? c10::optional<Tensor>(edge) : c10::nullopt);
  }
  Tensor y_off_tok = y_off.permute({0, 1, 3, 2, 4}).reshape({b, c, q, h, p});         // a view with one group
  // the sum in float32, in [b,t,h,p] order; the heads' layout of the intra-chunk part is read
  // through a view, not copied
  Tensor y = scale_rows(y_off_tok, from_start.transpose(-1, -2), f32);                // [b,c,q,h,p] f32
  y = (y.view({b, c, q, g, r, p}) + y_diag.permute({0, 1, 4, 2, 3, 5})).reshape({b, c * q, h, p});
  if (pad > 0) y = y.narrow(1, 0, t);
  if (!skip.defined()) return y;
  return (y + x.to(f32) * skip.to(f32).view({h, 1})).to(mm);
}

void check_ssd_inputs(const Tensor& x, const Tensor& dt, const Tensor& bm, const Tensor& cm, int64_t chunk,
                      const c10::optional<Tensor>& skip) {
  TORCH_CHECK(x.dim() == 4 && dt.dim() == 3 && bm.dim() == 4 && cm.dim() == 4,
              "anneal::ssd_scan: expected x [B,T,H,P], dt [B,T,H], B and C [B,T,G,N]");
  TORCH_CHECK(x.size(2) % bm.size(2) == 0, "anneal::ssd_scan: ", x.size(2), " heads in ", bm.size(2), " groups");
  TORCH_CHECK(chunk > 0, "anneal::ssd_scan: chunk must be positive");
  TORCH_CHECK(!skip.has_value() || skip->numel() == x.size(2), "anneal::ssd_scan_skip: expected D of ", x.size(2),
              " heads, found ", skip.has_value() ? skip->numel() : 0);
}

// The scan's inputs checked, and the two conversions both forms of it make: (the document ids as
// int64, D as one dimension), each undefined when absent. A D of one dimension is passed on as it is,
// no view: so the model's parameter itself reaches SsdCombine, whose backward sums its gradient into
// its .grad (parameter_grad).
std::pair<Tensor, Tensor> ssd_checked(const Tensor& x, const Tensor& dt, const Tensor& bm, const Tensor& cm,
                                      int64_t chunk, const c10::optional<Tensor>& seq_idx,
                                      const c10::optional<Tensor>& skip) {
  check_ssd_inputs(x, dt, bm, cm, chunk, skip);
  Tensor seq = seq_idx.has_value() ? seq_idx->to(at::kLong) : Tensor();
  if (!skip.has_value()) return {seq, Tensor()};
  return {seq, skip->dim() == 1 ? *skip : skip->reshape({-1})};
}

// Keeps only the inputs; its backward recomputes the forward (the default: the least memory).
struct SsdScan : torch::autograd::Function<SsdScan> {
  static Tensor forward(AutogradContext* ctx, const Tensor& x, const Tensor& dt, const Tensor& a, const Tensor& bm,
                        const Tensor& cm, const c10::optional<Tensor>& seq_idx, int64_t chunk,
                        const c10::optional<Tensor>& skip) {
    auto [seq, d] = ssd_checked(x, dt, bm, cm, chunk, seq_idx, skip);
    ctx->save_for_backward({x, dt, a, bm, cm, d});
    ctx->saved_data["chunk"] = chunk;
    ctx->saved_data["seq"] = optional_value(seq);
    return ssd_forward(x, dt, a, bm, cm, seq, chunk, d);
  }

  // Recompute the forward pass with autograd on and differentiate it: the [b,c,h,q,q] decay and
  // mixing tensors live only inside this call, never across the whole model's backward pass.
  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    auto saved = ctx->get_saved_variables();
    int64_t chunk = ctx->saved_data["chunk"].toInt();
    Tensor seq = saved_optional(ctx, "seq");
    bool with_skip = saved[5].defined();
    variable_list inputs;
    for (int i = 0; i < (with_skip ? 6 : 5); i++) inputs.push_back(saved[i].detach().requires_grad_(true));
    Tensor y;
    {
      at::AutoGradMode enable(true);
      y = ssd_forward(inputs[0], inputs[1], inputs[2], inputs[3], inputs[4], seq, chunk,
                      with_skip ? inputs[5] : Tensor(), /*recompute=*/true,
                      with_skip && grads[0].defined() ? grads[0].contiguous() : Tensor());
    }
    Tensor gy = grads[0].defined() ? grads[0] : at::zeros_like(y);
    variable_list d = torch::autograd::grad({y}, inputs, {gy.to(y.scalar_type())}, false, false, true);
    Tensor dskip = with_skip && d[5].defined() ? d[5].to(saved[5].scalar_type()) : Tensor();
    return {d[0], d[1], d[2], d[3], d[4], Tensor(), Tensor(), dskip};
  }
};

// recompute false: the scan's own nodes keep their intermediates for the backward (x dt, the
// weighted tokens, the entering states, y_off: about 4 x 67 MB a layer at 8 x 2048 on the benchmark
// model) and autograd differentiates them directly, without SsdScan::backward's second forward pass.
Tensor ssd_scan_any(const Tensor& x, const Tensor& dt, const Tensor& a, const Tensor& bm, const Tensor& cm,
                    const c10::optional<Tensor>& seq_idx, int64_t chunk, const c10::optional<Tensor>& skip,
                    bool recompute) {
  if (recompute) return SsdScan::apply(x, dt, a, bm, cm, seq_idx, chunk, skip);
  auto [seq, d] = ssd_checked(x, dt, bm, cm, chunk, seq_idx, skip);
  return ssd_forward(x, dt, a, bm, cm, seq, chunk, d);
}

Tensor ssd_scan(const Tensor& x, const Tensor& dt, const Tensor& a, const Tensor& bm, const Tensor& cm,
                const c10::optional<Tensor>& seq_idx, int64_t chunk, bool recompute) {
  return ssd_scan_any(x, dt, a, bm, cm, seq_idx, chunk, c10::nullopt, recompute);
}

// ssd_scan plus Mamba-2's skip connection, y + x D[h], returned in x's type (bfloat16 on the fused
// path): one pass assembles it on a GPU, so no float32 y, no float32 copy of x and no cast follow.
Tensor ssd_scan_skip(const Tensor& x, const Tensor& dt, const Tensor& a, const Tensor& bm, const Tensor& cm,
                     const Tensor& d, const c10::optional<Tensor>& seq_idx, int64_t chunk, bool recompute) {
  return ssd_scan_any(x, dt, a, bm, cm, seq_idx, chunk, c10::optional<Tensor>(d), recompute);
}

// ---------------------------------------------------------------------------------------------
// The residual stream's RMSNorm (anneal_kernels.cu, residual_norm_*), one pass each way:
//   rms_norm(x [..., D] float32, weight [D], eps, dtype) -> the norm in dtype (the compute type);
//   add_rms_norm(x, a, b, weight, eps) -> (s = x + a + b float32, the norm of s in a's type), a and b
//   the layer's two branch outputs. Widths over 4096 or unaligned rows take the composed form.
// ---------------------------------------------------------------------------------------------

struct ResidualShape {
  int64_t rows, width;
  explicit ResidualShape(const Tensor& x) : rows(x.size(-1) == 0 ? 0 : x.numel() / x.size(-1)), width(x.size(-1)) {}
};

// The backward both forms share: ds (float32) = dsum + the norm's gradient, da = db = ds in the compute type when
// `branches`, and the weight's gradient.
variable_list residual_norm_grads(const Tensor& s, const Tensor& weight, const Tensor& rstd, const Tensor& dout_in,
                                  const Tensor& dsum_in, at::ScalarType type, bool branches) {
  ResidualShape shape(s);
  Tensor w = weight.to(at::kFloat).contiguous();
  Tensor dout = dout_in.defined() ? aligned(dout_in.to(type).contiguous())
                                  : at::zeros(s.sizes(), s.options().dtype(type));
  Tensor dsum = dsum_in.defined() ? aligned(dsum_in.to(at::kFloat).contiguous()) : Tensor();
  Tensor ds = at::empty_like(s);
  Tensor da = branches ? at::empty(s.sizes(), s.options().dtype(type)) : Tensor();
  Tensor db = branches ? at::empty(s.sizes(), s.options().dtype(type)) : Tensor();
  Tensor dw = at::empty({anneal::residual_norm_partials(shape.rows), shape.width}, s.options());
  c10::cuda::CUDAGuard guard(s.device());
  auto stream = at::cuda::getCurrentCUDAStream();
  by_type(dout, "rms_norm", [&](auto tag) {
    using T = decltype(tag);
    anneal::residual_norm_backward<T>(s.data_ptr<float>(), w.data_ptr<float>(), rstd.data_ptr<float>(), ptr<T>(dout),
                                      dsum.defined() ? dsum.data_ptr<float>() : nullptr, ds.data_ptr<float>(),
                                      branches ? ptr<T>(da) : nullptr, branches ? ptr<T>(db) : nullptr,
                                      dw.data_ptr<float>(), shape.rows, (int) shape.width, stream);
  });
  return {ds, da, db, parameter_grad(dw, weight)};
}

// float8 GEMMs need compute capability 8.9 (Ada) or later; an older GPU runs the bfloat16 GEMMs (the
// one place that decides it: the forward's choice and build_info's line both ask here)
bool fp8_capable(c10::DeviceIndex device) {
  const auto* properties = at::cuda::getDeviceProperties(device);
  return properties->major * 10 + properties->minor >= 89;
}

// Whether x's rows in `type` can be a row-wise float8 GEMM operand (a norm's rows, the forward's x,
// the x-gradients' output gradients): bfloat16, K a multiple of float8's 16, on a GPU that has them.
bool fp8_operand(const Tensor& x, at::ScalarType type) {
  return x.is_cuda() && type == at::kBFloat16 && x.size(-1) % 16 == 0 && fp8_capable(x.get_device());
}

// Row-wise float8 operands (the forward's GEMMs, ANNEAL_FP8_BACKWARD's, and the norms' rows for them):
// (q [rows, cols] e4m3, s [rows, 1] float32), unwritten, on `like`'s device.
std::pair<Tensor, Tensor> empty_rows_e4m3(int64_t rows, int64_t cols, const Tensor& like) {
  return {at::empty({rows, cols}, like.options().dtype(at::kFloat8_e4m3fn)),
          at::empty({rows, 1}, like.options().dtype(at::kFloat))};
}

// Whether the norm of x in `type` also comes as float8 rows (ANNEAL_NORM_FP8, the default): for the float8 forward
// GEMMs of the layer pair that reads it (linear_pair's x8), so bfloat16 and K a multiple of 16 as theirs.
bool norm_rows_e4m3(const Tensor& x, at::ScalarType type) {
  return ANNEAL_FP8_FORWARD && anneal::residual_norm_rows_e4m3() && fp8_operand(x, type);
}

// The forward both forms share: the norm of x (+ a + b, then written to sum) in `type`, rstd per row;
// with `rows8`, also its float8 rows (q [rows, width] e4m3, s [rows, 1] float32) into it.
Tensor residual_norm_run(const Tensor& x, const Tensor& a, const Tensor& b, const Tensor& weight, double eps,
                         at::ScalarType type, const Tensor& sum, const Tensor& rstd,
                         std::vector<Tensor>* rows8 = nullptr) {
  ResidualShape shape(x);
  Tensor w = weight.to(at::kFloat).contiguous();
  Tensor out = at::empty(x.sizes(), x.options().dtype(type));
  Tensor q, s;
  if (rows8 != nullptr) {
    std::tie(q, s) = empty_rows_e4m3(shape.rows, shape.width, x);
    *rows8 = {q, s};
  }
  c10::cuda::CUDAGuard guard(x.device());
  auto stream = at::cuda::getCurrentCUDAStream();
  by_type(out, "rms_norm", [&](auto tag) {
    using T = decltype(tag);
    anneal::residual_norm_forward<T>(x.data_ptr<float>(), a.defined() ? ptr<T>(a) : nullptr,
                                     b.defined() ? ptr<T>(b) : nullptr, w.data_ptr<float>(),
                                     sum.defined() ? sum.data_ptr<float>() : nullptr, ptr<T>(out),
                                     rstd.data_ptr<float>(), shape.rows, (int) shape.width, (float) eps, stream,
                                     q.defined() ? reinterpret_cast<uint8_t*>(q.data_ptr()) : nullptr,
                                     s.defined() ? s.data_ptr<float>() : nullptr);
  });
  return out;
}

// Whether the kernels serve x (float32, contiguous) and the branches: contiguous, x's shape, 16-byte aligned.
bool residual_norm_kernel(const Tensor& x, std::initializer_list<const Tensor*> branches) {
  int width = x.dim() < 1 ? 0 : (int) x.size(-1);
  if (!x.is_cuda() || x.scalar_type() != at::kFloat || !x.is_contiguous() || width == 0 ||
      !anneal::residual_norm_supported(width, {x.data_ptr()})) {
    return false;
  }
  for (const Tensor* t : branches) {
    if (!t->is_contiguous() || t->sizes() != x.sizes() || !anneal::residual_norm_supported(width, {t->data_ptr()})) {
      return false;
    }
  }
  return true;
}

// With `keep` the input comes back too, as a second output (autograd makes it a view of x whose
// gradient edge is this node): a later consumer of x that reads that output (the layer's
// add_rms_norm) sends its x-gradient here, where the norm's backward kernel adds it as `dsum`
// instead of autograd adding the two float32 [rows, width] gradients (about 40 us a layer at 8 x 2048).
// With `keep`, float8 rows of the norm follow as further outputs where norm_rows_e4m3 (no gradient).
struct RmsNorm : torch::autograd::Function<RmsNorm> {
  static variable_list forward(AutogradContext* ctx, const Tensor& x, const Tensor& weight, double eps, int64_t type,
                               bool keep) {
    Tensor rstd = at::empty({ResidualShape(x).rows}, x.options());
    std::vector<Tensor> rows8;
    bool with_rows8 = keep && norm_rows_e4m3(x, (at::ScalarType) type);
    Tensor out = residual_norm_run(x, Tensor(), Tensor(), weight, eps, (at::ScalarType) type, Tensor(), rstd,
                                   with_rows8 ? &rows8 : nullptr);
    ctx->save_for_backward({x, weight, rstd});
    ctx->saved_data["type"] = type;
    ctx->set_materialize_grads(false);   // an output without gradient stays undefined (no zeros to read)
    if (!keep) return {out};
    if (rows8.empty()) return {out, x};
    ctx->mark_non_differentiable(rows8);
    return {out, x, rows8[0], rows8[1]};
  }

  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    auto saved = ctx->get_saved_variables();
    auto type = (at::ScalarType) ctx->saved_data["type"].toInt();
    Tensor kept = grads.size() > 1 ? grads[1] : Tensor();   // (grads 2 and 3: the float8 rows, none)
    variable_list g = residual_norm_grads(saved[0], saved[1], saved[2], grads[0], kept, type, false);
    return {g[0], g[3], Tensor(), Tensor(), Tensor()};
  }
};

struct AddRmsNorm : torch::autograd::Function<AddRmsNorm> {
  static variable_list forward(AutogradContext* ctx, const Tensor& x, const Tensor& a, const Tensor& b,
                               const Tensor& weight, double eps) {
    Tensor sum = at::empty_like(x);
    Tensor rstd = at::empty({ResidualShape(x).rows}, x.options());
    std::vector<Tensor> rows8;
    Tensor out = residual_norm_run(x, a, b, weight, eps, a.scalar_type(), sum, rstd,
                                   norm_rows_e4m3(x, a.scalar_type()) ? &rows8 : nullptr);
    ctx->save_for_backward({sum, weight, rstd});
    ctx->saved_data["type"] = (int64_t) a.scalar_type();
    ctx->set_materialize_grads(false);   // residual_norm_grads takes undefined gradients (and the rows get none)
    if (rows8.empty()) return {sum, out};
    ctx->mark_non_differentiable(rows8);
    return {sum, out, rows8[0], rows8[1]};
  }

  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    auto saved = ctx->get_saved_variables();
    auto type = (at::ScalarType) ctx->saved_data["type"].toInt();
    variable_list g = residual_norm_grads(saved[0], saved[1], saved[2], grads[1], grads[0], type, true);
    return {g[0], g[1], g[2], g[3], Tensor()};
  }
};

// The weight's check, and whether the kernels serve x and `type`; else the composed form below.
bool rms_norm_on_kernel(const char* op, const Tensor& x, const Tensor& weight, at::ScalarType type) {
  TORCH_CHECK(weight.dim() == 1 && weight.size(0) == x.size(-1), "anneal::", op, ": expected a weight of ",
              x.size(-1), " channels, found ", weight.sizes());
  return residual_norm_kernel(x, {}) && (type == at::kFloat || type == at::kHalf || type == at::kBFloat16);
}

Tensor rms_norm_composed(const Tensor& x, const Tensor& weight, double eps, at::ScalarType type) {
  return at::rms_norm(x, {x.size(-1)}, weight, eps).to(type);
}

Tensor rms_norm(const Tensor& x, const Tensor& weight, double eps, int64_t dtype) {
  auto type = (at::ScalarType) dtype;
  if (!rms_norm_on_kernel("rms_norm", x, weight, type)) return rms_norm_composed(x, weight, eps, type);
  return RmsNorm::apply(x, weight, eps, dtype, false)[0];
}

// The outputs after the first `n` as a list: the norm's float8 rows [q, s] where it made them, else none.
std::vector<Tensor> after(const variable_list& out, size_t n) { return {out.begin() + n, out.end()}; }

// rms_norm plus x itself, for a later consumer of x whose gradient the norm's backward then sums
// in its own pass (RmsNorm's `keep`); the composed form returns x as it is. Third: the norm's float8
// rows [q, s] for linear_pair's x8 where this build makes them (ANNEAL_NORM_FP8, the default), else [].
std::tuple<Tensor, Tensor, std::vector<Tensor>> rms_norm_keep(const Tensor& x, const Tensor& weight, double eps,
                                                              int64_t dtype) {
  auto type = (at::ScalarType) dtype;
  if (!rms_norm_on_kernel("rms_norm_keep", x, weight, type)) return {rms_norm_composed(x, weight, eps, type), x, {}};
  variable_list out = RmsNorm::apply(x, weight, eps, dtype, true);
  return {out[0], out[1], after(out, 2)};
}

// (x + a + b, its norm, the norm's float8 rows as rms_norm_keep's)
std::tuple<Tensor, Tensor, std::vector<Tensor>> add_rms_norm(const Tensor& x, const Tensor& a, const Tensor& b,
                                                             const Tensor& weight, double eps) {
  TORCH_CHECK(a.sizes() == x.sizes() && b.sizes() == x.sizes() && a.scalar_type() == b.scalar_type(),
              "anneal::add_rms_norm: expected branches of the residual's shape ", x.sizes(), " and one type, found ",
              a.sizes(), " ", a.scalar_type(), " and ", b.sizes(), " ", b.scalar_type());
  TORCH_CHECK(weight.dim() == 1 && weight.size(0) == x.size(-1), "anneal::add_rms_norm: expected a weight of ",
              x.size(-1), " channels, found ", weight.sizes());
  if (!residual_norm_kernel(x, {&a, &b})) {
    Tensor sum = x + a + b;
    return {sum, rms_norm_composed(sum, weight, eps, a.scalar_type()), {}};
  }
  variable_list out = AddRmsNorm::apply(x, a, b, weight, eps);
  return {out[0], out[1], after(out, 2)};
}

// residual_add(x [...] float32, a [...] in the compute type) -> x + a in float32: the MLP branch's
// addition to the residual stream in one vectorised pass (ATen's mixed-type addition runs its
// unvectorised kernel). Backward: x's gradient as it is, a's cast to a's type.
struct ResidualAdd : torch::autograd::Function<ResidualAdd> {
  static Tensor forward(AutogradContext* ctx, const Tensor& x, const Tensor& a) {
    Tensor out = at::empty_like(x);
    c10::cuda::CUDAGuard guard(x.device());
    auto stream = at::cuda::getCurrentCUDAStream();
    by_type(a, "residual_add", [&](auto tag) {
      using T = decltype(tag);
      anneal::residual_add<T>(x.data_ptr<float>(), ptr<T>(a), out.data_ptr<float>(), x.numel(), stream);
    });
    ctx->saved_data["type"] = (int64_t) a.scalar_type();
    return out;
  }

  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    auto type = (at::ScalarType) ctx->saved_data["type"].toInt();
    if (!grads[0].defined()) return {Tensor(), Tensor()};
    return {grads[0], grads[0].to(type)};
  }
};

Tensor residual_add(const Tensor& x, const Tensor& a) {
  TORCH_CHECK(a.sizes() == x.sizes(), "anneal::residual_add: expected a branch of the residual's shape ", x.sizes(),
              ", found ", a.sizes());
  bool kernel = x.is_cuda() && a.is_cuda() && x.scalar_type() == at::kFloat && x.is_contiguous() &&
                a.is_contiguous() && x.numel() > 0 &&
                anneal::residual_add_supported(x.numel(), {x.data_ptr(), a.data_ptr()});
  if (!kernel) return x + a;
  return ResidualAdd::apply(x, a);
}

// ---------------------------------------------------------------------------------------------
// silu_mul(gate [..., W], up [..., W]) -> silu(gate) * up [..., W] in their type: the SwiGLU of the
// MLP and the Mamba output gate, one pass each way (anneal_kernels.cu). Either input may be a view
// whose rows are evenly spaced (the Mamba gate is a slice of the input projection): no copy.
// ---------------------------------------------------------------------------------------------

// silu(g) * u [..., W] in their type (one kernel). Here and below, g and u are as silu_mul_on_kernel
// accepted them: rows evenly spaced (a view of a wider tensor as it is), aligned.
Tensor silu_mul_product(const Tensor& g, const Tensor& u) {
  int64_t width = g.size(-1), rows = width == 0 ? 0 : g.numel() / width;
  Tensor out = at::empty(g.sizes(), g.options());
  c10::cuda::CUDAGuard guard(g.device());
  auto stream = at::cuda::getCurrentCUDAStream();
  by_type(g, "silu_mul", [&](auto tag) {
    using T = decltype(tag);
    anneal::silu_mul_forward<T>(ptr<T>(g), row_stride(g), ptr<T>(u), row_stride(u), ptr<T>(out), rows, (int) width,
                                stream);
  });
  return out;
}

// (dgate, dup) from the product's gradient d (contiguous, g's type) in one kernel, which also writes
// the product again into `product` when it is defined
std::pair<Tensor, Tensor> silu_mul_grads(const Tensor& g, const Tensor& u, const Tensor& d, const Tensor& product) {
  int64_t width = g.size(-1), rows = width == 0 ? 0 : g.numel() / width;
  Tensor dgate = at::empty(g.sizes(), g.options()), dup = at::empty(u.sizes(), u.options());
  c10::cuda::CUDAGuard guard(g.device());
  auto stream = at::cuda::getCurrentCUDAStream();
  by_type(g, "silu_mul", [&](auto tag) {
    using T = decltype(tag);
    anneal::silu_mul_backward<T>(ptr<T>(g), row_stride(g), ptr<T>(u), row_stride(u), ptr<T>(d), ptr<T>(dgate),
                                 ptr<T>(dup), product.defined() ? ptr<T>(product) : nullptr, rows, (int) width, stream);
  });
  return {dgate, dup};
}

struct SiluMul : torch::autograd::Function<SiluMul> {
  static Tensor forward(AutogradContext* ctx, const Tensor& gate, const Tensor& up) {
    ctx->save_for_backward({gate, up});
    return silu_mul_product(gate, up);
  }

  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    auto saved = ctx->get_saved_variables();
    if (!grads[0].defined()) return {Tensor(), Tensor()};
    auto [dgate, dup] = silu_mul_grads(saved[0], saved[1], grads[0].to(saved[0].scalar_type()).contiguous(), Tensor());
    return {dgate, dup};
  }
};

// whether silu_mul's kernels take gate and up (else the composed form)
bool silu_mul_on_kernel(const Tensor& gate, const Tensor& up) {
  return gate.is_cuda() && gate.dim() >= 1 && row_stride(gate) >= 0 && row_stride(up) >= 0 &&
         anneal::silu_mul_supported((int) gate.size(-1), row_stride(gate), row_stride(up), (int) gate.element_size(),
                                    {gate.data_ptr(), up.data_ptr()});
}

void check_silu_mul(const char* op, const Tensor& gate, const Tensor& up) {
  TORCH_CHECK(gate.sizes() == up.sizes() && gate.scalar_type() == up.scalar_type(), "anneal::", op, ": expected gate "
              "and up of one shape and type, found ", gate.sizes(), " ", gate.scalar_type(), " and ", up.sizes(), " ",
              up.scalar_type());
}

Tensor silu_mul(const Tensor& gate, const Tensor& up) {
  check_silu_mul("silu_mul", gate, up);
  if (!silu_mul_on_kernel(gate, up)) return at::silu(gate) * up;
  return SiluMul::apply(gate, up);
}

// ---------------------------------------------------------------------------------------------
// qkv_rope(qkv [b,t,(heads + 2 kv_heads) d], cos [B,1,t,d], sin [B,1,t,d], heads, kv_heads, key_scale)
//   -> (q [b,t,heads,d], k [b,t,kv_heads,d], v [b,t,kv_heads,d]) in qkv's type, contiguous:
// q and k rotated (RoPE, rotate_half form: transformers' apply_rotary_pos_emb), k times Falcon-H1's
// key multiplier, v as it is. B = 1 or b; cos and sin are float32 constants (no gradient). One kernel
// each way (anneal_kernels.cu, qkv_rope_apply): the forward reads the fused projection in place, and
// the backward writes the three gradients in place into the projection's gradient. So no cat of q,
// k and v gradients and no pass for the key multiplier are left. The caller transposes q, k and v
// for attention.
// ---------------------------------------------------------------------------------------------
struct QkvRope : torch::autograd::Function<QkvRope> {
  static variable_list forward(AutogradContext* ctx, const Tensor& qkv, const Tensor& cos, const Tensor& sin,
                               int64_t heads, int64_t kv_heads, double key_scale) {
    Tensor cc = cos.contiguous(), sc = sin.contiguous();
    int64_t b = qkv.size(0), t = qkv.size(1), d = qkv.size(2) / (heads + 2 * kv_heads);
    Tensor q = at::empty({b, t, heads, d}, qkv.options());
    Tensor k = at::empty({b, t, kv_heads, d}, qkv.options());
    Tensor v = at::empty({b, t, kv_heads, d}, qkv.options());
    run(qkv, q, k, v, cc, sc, heads, kv_heads, key_scale, false);
    ctx->save_for_backward({cc, sc});
    ctx->saved_data["heads"] = heads;
    ctx->saved_data["kv_heads"] = kv_heads;
    ctx->saved_data["key_scale"] = key_scale;
    return {q, k, v};
  }

  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    auto saved = ctx->get_saved_variables();
    int64_t heads = ctx->saved_data["heads"].toInt(), kv_heads = ctx->saved_data["kv_heads"].toInt();
    // (an output without gradient comes as zeros: grads are materialised)
    Tensor dq = aligned(grads[0].contiguous()), dk = aligned(grads[1].contiguous()), dv = aligned(grads[2].contiguous());
    Tensor dqkv = at::empty({dq.size(0), dq.size(1), (heads + 2 * kv_heads) * dq.size(3)}, dq.options());
    run(dqkv, dq, dk, dv, saved[0], saved[1], heads, kv_heads, ctx->saved_data["key_scale"].toDouble(), true);
    return {dqkv, Tensor(), Tensor(), Tensor(), Tensor(), Tensor()};
  }

  // Forward: the projection read, q, k and v written. Backward: their gradients read, the projection's
  // written. One launch either way (anneal_kernels.cu, qkv_rope_apply).
  static void run(const Tensor& projection, const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& cos,
                  const Tensor& sin, int64_t heads, int64_t kv_heads, double key_scale, bool backward) {
    int64_t b = q.size(0), t = q.size(1), d = q.size(3), width = projection.size(2);
    c10::cuda::CUDAGuard guard(projection.device());
    auto stream = at::cuda::getCurrentCUDAStream();
    by_type(projection, "qkv_rope", [&](auto tag) {
      using T = decltype(tag);
      T* fused = ptr<T>(projection);
      const Tensor* separate[3] = {&q, &k, &v};
      int64_t part_heads[3] = {heads, kv_heads, kv_heads};
      anneal::QkvParts<T> parts;
      int64_t offset = 0;
      for (int p = 0; p < 3; p++) {
        T* own = ptr<T>(*separate[p]);
        parts.src[p] = backward ? own : fused + offset;
        parts.dst[p] = backward ? fused + offset : own;
        parts.src_row[p] = backward ? part_heads[p] * d : width;
        parts.dst_row[p] = backward ? width : part_heads[p] * d;
        parts.heads[p] = (int) part_heads[p];
        parts.scale[p] = p == 1 ? (float) key_scale : 1.0f;
        offset += part_heads[p] * d;
      }
      anneal::qkv_rope_apply<T>(parts, cos.data_ptr<float>(), sin.data_ptr<float>(), (int) b, (int) t, (int) d,
                                (int) cos.size(0), backward, stream);
    });
  }
};

std::tuple<Tensor, Tensor, Tensor> qkv_rope(const Tensor& qkv, const Tensor& cos, const Tensor& sin, int64_t heads,
                                            int64_t kv_heads, double key_scale) {
  TORCH_CHECK(qkv.dim() == 3 && heads > 0 && kv_heads > 0 && qkv.size(2) % (heads + 2 * kv_heads) == 0,
              "anneal::qkv_rope: expected qkv [b, t, (heads + 2 kv_heads) d] for ", heads, " heads and ", kv_heads,
              " key-value heads, found ", qkv.sizes());
  int64_t b = qkv.size(0), t = qkv.size(1), d = qkv.size(2) / (heads + 2 * kv_heads);
  TORCH_CHECK(cos.dim() == 4 && sin.sizes() == cos.sizes() && cos.size(1) == 1 && cos.size(2) == t &&
              cos.size(3) == d && (cos.size(0) == 1 || cos.size(0) == b),
              "anneal::qkv_rope: expected cos and sin [1 or ", b, ", 1, ", t, ", ", d, "], found ", cos.sizes(),
              " and ", sin.sizes());
  bool kernel = qkv.is_cuda() && qkv.is_contiguous() && d % 16 == 0 && cos.scalar_type() == at::kFloat &&
                sin.scalar_type() == at::kFloat && starts_aligned(qkv);
  if (!kernel) {  // transformers' rotate_half, in qkv's type, with the angles broadcast over the heads
    Tensor c = cos.transpose(1, 2).to(qkv.scalar_type()), s = sin.transpose(1, 2).to(qkv.scalar_type());
    auto rotate = [&](const Tensor& x) {
      return x * c + at::cat({x.narrow(3, d / 2, d / 2).neg(), x.narrow(3, 0, d / 2)}, 3) * s;
    };
    auto parts = at::split_with_sizes(qkv, {heads * d, kv_heads * d, kv_heads * d}, 2);
    Tensor k = rotate(parts[1].reshape({b, t, kv_heads, d}));
    return {rotate(parts[0].reshape({b, t, heads, d})), key_scale == 1.0 ? k : k * key_scale,
            parts[2].reshape({b, t, kv_heads, d}).contiguous()};
  }
  variable_list out = QkvRope::apply(qkv, cos, sin, heads, kv_heads, key_scale);
  return {out[0], out[1], out[2]};
}

// ---------------------------------------------------------------------------------------------
// linear(x [..., in], weight [out, in], bias [out]?, scale, columns [out]?) -> (scale x W^T + b) * columns
// in x's type. The master weight (and bias) is cast to x's type inside, so the backward can add the
// weight gradient into the float32 .grad (in_place_grad, transposed_product).
// The muP multipliers of Falcon-H1's forward pass (seeds/000: "scaling multipliers directly in the
// forward pass") ride on that cast, which is made each step anyway, so they cost no pass over the
// activations: `scale` is an input multiplier (ssm_in, attention_in), or an output one of a layer
// without bias, as (x W^T) m = (m x) W^T; `columns` is a constant multiplier per output (transformers'
// mup_vector over Mamba's in_proj, applied after the bias). Both fold into the cast weight,
// x (scale diag(columns) W)^T + b * columns, so x's gradient is g times that cast weight as before; the
// weight's gradient takes `scale` as its GEMM's alpha and `columns` as a row scaling of the
// [out, in] product (no pass over the [rows, out] gradient).
// ---------------------------------------------------------------------------------------------
// The weight's gradient scale diag(columns) g2^T x2 (added into its float32 .grad when it has one:
// then undefined) and the bias's, columns * sum(g2) (bias_type < 0: none), from g2 [rows, out] and
// x2 [rows, in], both in the compute type.
// With row0, g2 holds the gradient of the outputs row0 .. row0 + g2.size(1) only (one piece of a
// layer's output): the .grad's rows of that range take it, and what comes back covers that range.
std::pair<Tensor, Tensor> linear_parameter_grads(const Tensor& weight, const Tensor& g2, const Tensor& x2,
                                                 int64_t bias_type, bool weight_needed, bool bias_needed,
                                                 double scale, const Tensor& columns, int64_t row0 = 0) {
  int64_t n = g2.size(1);
  Tensor rows = columns.defined() ? columns.narrow(0, row0, n).to(at::kFloat).unsqueeze(1) : Tensor();
  Tensor dweight;
  if (weight_needed) {
    Tensor sum = in_place_grad(weight);
    if (sum.defined()) sum = sum.narrow(0, row0, n);   // whole rows of a contiguous [out, in]: contiguous
    if (sum.defined() && !rows.defined()) {
      add_weight_gradient(sum, g2, x2, scale);  // dweight stays undefined: nothing left for autograd to add
    } else {
      // float32 from the GEMM: for the row scaling, a float32 weight that is no leaf (q, k, v weights
      // concatenated) or a half-precision one (cast once, after the float32 sum)
      Tensor product = at::empty({n, weight.size(1)}, weight.options().dtype(at::kFloat));
      transposed_product(product, g2, x2, false, scale);
      if (sum.defined()) {
        sum.addcmul_(product, rows);
      } else {
        dweight = (rows.defined() ? product.mul_(rows) : product).to(weight.scalar_type());
      }
    }
  }
  Tensor dbias;
  if (bias_type >= 0 && bias_needed) {
    dbias = g2.sum(0, false, at::kFloat);
    if (rows.defined()) dbias.mul_(rows.squeeze(1));
    dbias = dbias.to((at::ScalarType) bias_type);
  }
  return {dweight, dbias};
}

// The master weight cast to `type` with the multipliers folded in: scale diag(columns) W, in one pass.
Tensor cast_weight(const Tensor& weight, at::ScalarType type, double scale, const Tensor& columns) {
  if (scale == 1.0 && !columns.defined()) return weight.to(type);
  Tensor cast = at::empty(weight.sizes(), weight.options().dtype(type));
  Tensor factor = columns.defined() ? columns.to(weight.scalar_type()).unsqueeze(1) * scale
                                    : at::scalar_tensor(scale, at::TensorOptions().dtype(at::kDouble));
  at::mul_out(cast, weight, factor);   // computed in the weight's type, rounded once into `type`
  return cast;
}

#if ANNEAL_FP8
// ANNEAL_FP8_FORWARD (on by default; -DANNEAL_FP8_FORWARD=0 builds bfloat16 GEMMs): a linear
// layer's forward GEMM in float8 e4m3, one scale per row of x and of the cast weight (cuBLASLt through
// aten::_scaled_mm, with its fast accumulation as Transformer Engine's forward GEMMs), where x is
// bfloat16, the layer has no bias, and K and N are multiples of 16 (cuBLASLt's float8 alignment).
// The backward's GEMMs stay bfloat16, on the unquantised x and weight. tools/gpu/probe_fp8_gemm.py put
// the step's forward GEMMs at 12.2 ms in bfloat16 against 7.8 ms so at 8 x 2048
// (docs/benchmarks/2026-12-04-h200-fp8-probe); here each x costs one more pass (read in bfloat16,
// written in e4m3 with its scales), but silu_mul_linear's product, made straight in e4m3; each weight
// is quantised from the float32 master, in place of the bfloat16 cast the other path makes.
// (The row-wise float8 operands below serve the forward's GEMMs and ANNEAL_FP8_BACKWARD's alike.)

// (q [rows, cols] e4m3, s [rows, 1] float32) with m's rows ~ q's rows times s (quantize_rows_e4m3); for
// a weight, its multipliers scale diag(columns) (cast_weight's) folded into s (columns undefined: none).
std::pair<Tensor, Tensor> rows_e4m3(const Tensor& m, double scale = 1.0, const Tensor& columns = Tensor()) {
  Tensor mc = m.stride(-1) == 1 && m.stride(0) >= m.size(1) ? m : m.contiguous();
  int64_t rows = mc.size(0), cols = mc.size(1);
  auto [q, s] = empty_rows_e4m3(rows, cols, mc);
  Tensor factor = columns.defined() ? columns.to(at::kFloat).contiguous() : Tensor();
  anneal::RowMultipliers multipliers{factor.defined() ? factor.data_ptr<float>() : nullptr, (float) scale};
  auto stream = at::cuda::getCurrentCUDAStream();
  by_type(mc, "linear (float8 rows)", [&](auto tag) {
    using T = decltype(tag);
    anneal::quantize_rows_e4m3<T>(ptr<T>(mc), rows, mc.stride(0), (int) cols, reinterpret_cast<uint8_t*>(q.data_ptr()),
                                  s.data_ptr<float>(), stream, multipliers);
  });
  return {q, s};
}

#endif

// A linear layer's weight rows that one piece of its output comes from: rows row0 .. row0 + rows of
// `weight` (a float32 master, or a weight in x's type), times cast_weight's multipliers scale
// diag(columns) (columns undefined: none).
struct WeightRows {
  Tensor weight;
  int64_t row0, rows;
  double scale;
  Tensor columns;
};

#if ANNEAL_FP8_BACKWARD
// ANNEAL_FP8_BACKWARD (an experiment for tools/gpu/try-variants.sh, off by default): the x-gradient
// GEMMs of linear, linear_pair and silu_mul_linear in float8 e4m3 as well, one scale per row of the
// output gradient (over all of a pair's pieces) and per row of the weight's transpose (a column of
// the weight with its multipliers), as the forward's. The output gradient's rows are quantised in
// one pass over its pieces (never concatenated in the compute type); W^T's straight from the float32
// masters with their multipliers (quantize_columns_e4m3, two launches: no bfloat16 cast of the
// weight). With 1, unlike the forward, no fast accumulation: Transformer Engine's recipe keeps the
// gradients' GEMMs on split accumulators (Micikevicius et al. 2022, "FP8 Formats for Deep
// Learning"); 2 accumulates fast, as the forward (what the split costs is what the two variants
// measure). The weight-gradient GEMMs stay bfloat16.
// Why: tools/gpu/probe_fp8_gemm.py timed the step's x-gradient GEMMs at 11.92 ms in bfloat16
// against 8.27 ms on row-wise float8 operands with split accumulation
// (docs/benchmarks/2026-12-04-h200-fp8-probe), one GEMM a layer pair; the step runs four for
// Mamba's in_proj pieces and q, k, v (three adding into the first's result) and two for the MLP's
// gate and up, where this path runs one each. Against it, about 2.97 G elements a step of output
// gradients to quantise (3 bytes each: about 2 ms).
bool fp8_gradient_applies(const Tensor& x, size_t pieces) {
  return pieces >= 1 && pieces <= (size_t) anneal::RowPieces<float>::kMax && fp8_operand(x, x.scalar_type());
}

// sum_i g_i W_i (g_i [rows, n_i]; W_i [n_i, K], weights[i]'s rows with their multipliers), as x's
// gradient of shape `shape` in g's type: g's pieces side by side as one float8 operand ([rows, N], N
// their total rounded up to 16, zero columns after), W's transpose as the other ([K, N], zeros
// likewise) quantised straight from the float32 masters (no cast of the weight, no stacked copy),
// one GEMM.
Tensor fp8_x_gradient(const std::vector<Tensor>& grads, const std::vector<WeightRows>& weights, at::IntArrayRef shape) {
  int64_t rows = grads[0].numel() / std::max<int64_t>(grads[0].size(-1), 1);
  int64_t total = 0;
  std::vector<Tensor> kept;   // the pieces as [rows, n_i] with evenly spaced rows
  for (const Tensor& g : grads) {
    Tensor g2 = g.reshape({rows, g.size(-1)});
    kept.push_back(row_stride(g2) >= 0 ? g2 : g2.contiguous());
    total += g.size(-1);
  }
  int64_t width = (total + 15) / 16 * 16, k_cols = shape.back();
  auto [gq, gs] = empty_rows_e4m3(rows, width, kept[0]);
  auto [wq, ws] = empty_rows_e4m3(k_cols, width, kept[0]);
  Tensor partial = at::empty({anneal::quantize_columns_scratch((int) k_cols)}, kept[0].options().dtype(at::kFloat));
  c10::cuda::CUDAGuard guard(kept[0].device());
  auto stream = at::cuda::getCurrentCUDAStream();
  by_type(kept[0], "linear (float8 x-gradient)", [&](auto tag) {
    using T = decltype(tag);
    anneal::RowPieces<T> pieces{};
    pieces.count = (int) kept.size();
    for (size_t p = 0; p < kept.size(); p++) {
      pieces.x[p] = ptr<T>(kept[p]);
      pieces.row[p] = row_stride(kept[p]);
      pieces.cols[p] = (int) kept[p].size(1);
    }
    anneal::quantize_pieces_e4m3<T>(pieces, rows, (int) width, reinterpret_cast<uint8_t*>(gq.data_ptr()),
                                    gs.data_ptr<float>(), stream);
  });
  anneal::WeightBlocks blocks{};
  std::vector<Tensor> alive;   // float32 forms of the weights and multipliers, alive until the launch
  blocks.count = (int) weights.size();
  for (size_t p = 0; p < weights.size(); p++) {
    const WeightRows& w = weights[p];
    Tensor master = w.weight.to(at::kFloat).contiguous();
    alive.push_back(master);
    blocks.w[p] = master.data_ptr<float>() + w.row0 * k_cols;
    if (w.columns.defined()) {
      Tensor factor = w.columns.to(at::kFloat).contiguous();
      alive.push_back(factor);
      blocks.factor[p] = factor.data_ptr<float>() + w.row0;
    }
    blocks.scale[p] = (float) w.scale;
    blocks.rows[p] = (int) w.rows;
  }
  anneal::quantize_columns_e4m3(blocks, (int) k_cols, (int) width, partial.data_ptr<float>(),
                                reinterpret_cast<uint8_t*>(wq.data_ptr()), ws.data_ptr<float>(), stream);
  Tensor dx = at::_scaled_mm(gq, wq.t(), gs, ws.view({1, -1}), c10::nullopt, c10::nullopt, kept[0].scalar_type(),
                             /*use_fast_accum=*/ANNEAL_FP8_BACKWARD == 2);
  return dx.view(shape);
}
#endif
#if !ANNEAL_FP8_BACKWARD
// Without the experiment the x-gradients stay bfloat16 GEMMs (fp8_x_gradient is then never called).
bool fp8_gradient_applies(const Tensor&, size_t) { return false; }
Tensor fp8_x_gradient(const std::vector<Tensor>&, const std::vector<WeightRows>&, at::IntArrayRef) {
  TORCH_CHECK(false, "anneal: float8 x-gradients are not in this build (-DANNEAL_FP8_BACKWARD=1)");
  return Tensor();
}
#endif

#if ANNEAL_FP8_FORWARD
// rows_e4m3 of silu(gate) * up, made in one pass from gate and up (silu_mul_quantize_rows_e4m3): the
// product itself is never written in the compute type.
std::pair<Tensor, Tensor> silu_mul_rows_e4m3(const Tensor& gate, const Tensor& up) {
  int64_t width = gate.size(-1), rows = width == 0 ? 0 : gate.numel() / width;
  auto [q, s] = empty_rows_e4m3(rows, width, gate);
  c10::cuda::CUDAGuard guard(gate.device());
  auto stream = at::cuda::getCurrentCUDAStream();
  by_type(gate, "silu_mul_linear (float8 forward)", [&](auto tag) {
    using T = decltype(tag);
    anneal::silu_mul_quantize_rows_e4m3<T>(ptr<T>(gate), row_stride(gate), ptr<T>(up), row_stride(up), rows,
                                           (int) width, reinterpret_cast<uint8_t*>(q.data_ptr()), s.data_ptr<float>(),
                                           stream);
  });
  return {q, s};
}

bool fp8_forward(const Tensor& x, const Tensor& weight, bool has_bias) {
  return !has_bias && weight.size(0) % 16 == 0 && fp8_operand(x, x.scalar_type());
}

// x (scale diag(columns) W)^T in bfloat16 through e4m3 operands. W is quantised as it is (the float32
// master: no bfloat16 cast first), its rows' multipliers scale diag(columns) folded into its row scales
// (each row of W is quantised alone, so scaling a row scales its s). x's are made once into `x8` and
// kept there for a second layer on the same x (linear_pair).
Tensor fp8_linear(const Tensor& x, const Tensor& weight, double scale, const Tensor& columns,
                  std::pair<Tensor, Tensor>& x8) {
  if (!x8.first.defined()) x8 = rows_e4m3(x.reshape({-1, x.size(-1)}));
  auto& [xq, xs] = x8;
  auto [wq, ws] = rows_e4m3(weight, scale, columns);   // the multipliers in the kernel's scales: no launch of their own
  Tensor y = at::_scaled_mm(xq, wq.t(), xs, ws.view({1, -1}), c10::nullopt, c10::nullopt, at::kBFloat16,
                            /*use_fast_accum=*/true);
  std::vector<int64_t> shape = x.sizes().vec();
  shape.back() = weight.size(0);
  return y.view(shape);
}
#endif

// x (scale diag(columns) W)^T + b * columns in x's type; the cast weight is freed on return, or
// handed back in `kept` when given (model.keep-weight-casts: the backward's x-gradient reads it).
// `x8`: x in float8 (ANNEAL_FP8_FORWARD), made by the first layer that needs it.
Tensor cast_linear(const Tensor& x, const Tensor& weight, const Tensor& bias, bool has_bias, double scale,
                   const Tensor& columns, std::pair<Tensor, Tensor>& x8, Tensor* kept = nullptr) {
#if ANNEAL_FP8_FORWARD
  if (fp8_forward(x, weight, has_bias)) {   // the GEMM needs no cast: one only for a backward that keeps it
    if (kept != nullptr) *kept = cast_weight(weight, x.scalar_type(), scale, columns);
    return fp8_linear(x, weight, scale, columns, x8);
  }
#endif
  Tensor cast = cast_weight(weight, x.scalar_type(), scale, columns);
  if (kept != nullptr) *kept = cast;
  if (!has_bias) return at::linear(x, cast);
  Tensor b = columns.defined() ? bias.to(at::kFloat) * columns.to(at::kFloat) : bias;
  return at::linear(x, cast, b.to(x.scalar_type()));
}

// One linear layer on x, or two (the MLP's gate and up projections; Mamba's input projection and
// q, k, v). A pair costs two GEMMs each way, as two single layers do, but x's gradient is one
// tensor: the second product is added into the first's by the GEMM (C = the first, beta 1), where
// autograd would add two half-precision [rows, in] gradients (about 24 us a pair at 8 x 2048). No
// weights are stacked, so no memory is added. Each layer takes its own multipliers. C++ autograd
// functions take no undefined tensors as inputs: a layer without bias passes an empty one
// (has_bias false), a single layer an empty weight2.
// `pieces1` (sizes summing to weight1's outputs; empty: one) returns the first layer's output as
// column pieces, views of its one GEMM's result (Mamba's in_proj: the gate, the conv's input and
// dt). Their gradients arrive apart, and each piece's goes into x's gradient by a GEMM of its own
// (beta 1) and into its rows of the weight's .grad: a split's backward would first concatenate them,
// a pass over the whole [rows, out] gradient (about 96 us a layer at 8 x 2048).
struct LinearLayers : torch::autograd::Function<LinearLayers> {
  static variable_list forward(AutogradContext* ctx, const Tensor& x, const Tensor& weight1, const Tensor& bias1,
                               bool has_bias1, const Tensor& weight2, const Tensor& bias2, bool has_bias2,
                               double scale1, double scale2, const c10::optional<Tensor>& columns1,
                               const c10::optional<Tensor>& columns2, std::vector<int64_t> pieces1, bool keep_casts,
                               const Tensor& x8_q, const Tensor& x8_s) {
    int64_t layers = weight2.numel() > 0 ? 2 : 1;
    // x in float8, shared by the two layers (ANNEAL_FP8_FORWARD): as the caller made it (the norm that
    // wrote x, ANNEAL_NORM_FP8), else made by the first layer that needs it
    std::pair<Tensor, Tensor> x8;
    if (x8_q.numel() > 0) x8 = {x8_q, x8_s};
    // The half-precision casts are by default not kept for the backward, which makes them again for
    // x's gradient, one layer at a time: kept, every layer's stay alive from its forward to its
    // backward. The 291M model's allocated peak at 2 x 2048 fell by 426 MiB, for 0.44 ms of casts a
    // step at any micro-batch (docs/benchmarks/2026-12-04-h200-weight-recast). `keep_casts`
    // (model.keep-weight-casts) keeps them: a large micro-batch's choice, where memory is left.
    Tensor casts[2];
    Tensor out1 = cast_linear(x, weight1, bias1, has_bias1, scale1, optional_tensor(columns1), x8,
                              keep_casts ? &casts[0] : nullptr);
    variable_list out = column_pieces(out1, pieces1);
    if (layers == 2) {
      out.push_back(cast_linear(x, weight2, bias2, has_bias2, scale2, optional_tensor(columns2), x8,
                                keep_casts ? &casts[1] : nullptr));
    }
    for (int k = 0; k < 2; k++) ctx->saved_data["cast" + std::to_string(k + 1)] = optional_value(casts[k]);
    ctx->save_for_backward({x});
    ctx->saved_data["layers"] = layers;
    ctx->saved_data["pieces1"] = pieces1;
    ctx->saved_data["weight1"] = weight1;  // the leaves themselves, whose .grad the backward adds into
    ctx->saved_data["weight2"] = weight2;
    ctx->saved_data["bias_type1"] = has_bias1 ? (int64_t) bias1.scalar_type() : (int64_t) -1;
    ctx->saved_data["bias_type2"] = has_bias2 ? (int64_t) bias2.scalar_type() : (int64_t) -1;
    ctx->saved_data["scale1"] = scale1;
    ctx->saved_data["scale2"] = scale2;
    ctx->saved_data["columns1"] = optional_value(optional_tensor(columns1));
    ctx->saved_data["columns2"] = optional_value(optional_tensor(columns2));
    ctx->set_materialize_grads(false);   // an output without gradient stays undefined: its GEMMs are skipped
    return out;
  }

  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    auto saved = ctx->get_saved_variables();
    Tensor x = saved[0];
    Tensor x2 = x.reshape({-1, x.size(-1)});
    // the outputs in order: the first layer's pieces (or its one output), then the second layer's;
    // each as (layer, its first row of the layer's weight)
    std::vector<std::pair<int, int64_t>> outputs;
    std::vector<int64_t> pieces1 = ctx->saved_data["pieces1"].toIntVector();
    if (pieces1.empty()) pieces1.push_back(ctx->saved_data["weight1"].toTensor().size(0));
    int64_t row = 0;
    for (int64_t width : pieces1) {
      outputs.emplace_back(0, row);
      row += width;
    }
    if (ctx->saved_data["layers"].toInt() == 2) outputs.emplace_back(1, 0);
    Tensor dx;
    Tensor param_grads[2][2];
    // each layer's cast weight: kept by the forward (keep_casts), else made again at its first
    // piece's gradient; freed once this backward is done either way
    Tensor casts[2] = {saved_optional(ctx, "cast1"), saved_optional(ctx, "cast2")};
    ctx->saved_data["cast1"] = c10::IValue();
    ctx->saved_data["cast2"] = c10::IValue();
    // ANNEAL_FP8_BACKWARD: x's gradient as one float8 GEMM over every piece that has a gradient,
    // after the loop (the pieces and their weight rows gathered in it)
    size_t with_grad = 0;
    for (size_t i = 0; i < outputs.size(); i++) with_grad += grads[i].defined() ? 1 : 0;
    bool fp8 = ctx->needs_input_grad(0) && fp8_gradient_applies(x, with_grad);
    std::vector<Tensor> fp8_grads;
    std::vector<WeightRows> fp8_rows;
    for (size_t i = 0; i < outputs.size(); i++) {
      if (!grads[i].defined()) continue;
      auto [k, row0] = outputs[i];
      std::string n = std::to_string(k + 1);
      Tensor weight = ctx->saved_data["weight" + n].toTensor();
      double scale = ctx->saved_data["scale" + n].toDouble();
      Tensor columns = saved_optional(ctx, "columns" + n);
      Tensor g = grads[i].to(x.scalar_type());
      Tensor g2 = g.reshape({-1, g.size(-1)});
      if (ctx->needs_input_grad(0) && fp8) {
        fp8_grads.push_back(g2);
        fp8_rows.push_back({weight, row0, g.size(-1), scale, columns});
      } else if (ctx->needs_input_grad(0)) {
        if (!casts[k].defined()) casts[k] = cast_weight(weight, x.scalar_type(), scale, columns);
        Tensor w = casts[k].narrow(0, row0, g.size(-1));   // the piece's rows: contiguous
        if (dx.defined()) {
          dx.view({-1, w.size(1)}).addmm_(g2, w);   // dx is this backward's own tensor
        } else {
          dx = at::matmul(g, w);
        }
      }
      // needs_input_grad counts the tensor inputs only: x, weight1, bias1, weight2, bias2
      auto [dweight, dbias] = linear_parameter_grads(
          weight, g2, x2, ctx->saved_data["bias_type" + n].toInt(), ctx->needs_input_grad(1 + 2 * k),
          ctx->needs_input_grad(2 + 2 * k), scale, columns, row0);
      param_grads[k][0] = into_rows(param_grads[k][0], dweight, weight.size(0), row0);
      param_grads[k][1] = into_rows(param_grads[k][1], dbias, weight.size(0), row0);
    }
    if (fp8) dx = fp8_x_gradient(fp8_grads, fp8_rows, x.sizes());
    return {dx, param_grads[0][0], param_grads[0][1], Tensor(), param_grads[1][0], param_grads[1][1], Tensor(),
            Tensor(), Tensor(), Tensor(), Tensor(), Tensor(), Tensor(), Tensor(), Tensor()};
  }

  // A piece's gradient (rows row0 .. of a parameter with `rows` rows) placed into the parameter's
  // whole gradient `total` (zeros where no piece's gradient came); a piece of all rows is the whole.
  static Tensor into_rows(Tensor total, const Tensor& piece, int64_t rows, int64_t row0) {
    if (!piece.defined()) return total;
    if (!total.defined() && row0 == 0 && piece.size(0) == rows) return piece;
    if (!total.defined()) {
      std::vector<int64_t> shape = piece.sizes().vec();
      shape[0] = rows;
      total = at::zeros(shape, piece.options());
    }
    total.narrow(0, row0, piece.size(0)).copy_(piece);
    return total;
  }
};

void check_linear(const Tensor& x, const Tensor& weight, const c10::optional<Tensor>& bias,
                  const c10::optional<Tensor>& columns) {
  TORCH_CHECK(weight.dim() == 2 && x.dim() >= 1 && x.size(-1) == weight.size(1), "anneal::linear: expected x [..., ",
              weight.dim() == 2 ? weight.size(1) : -1, "] and weight [out, in], found ", x.sizes(), " and ",
              weight.sizes());
  TORCH_CHECK(!bias.has_value() || (bias->dim() == 1 && bias->size(0) == weight.size(0)),
              "anneal::linear: expected bias [", weight.size(0), "], found ", bias.has_value() ? bias->sizes() : x.sizes());
  TORCH_CHECK(!columns.has_value() || (columns->dim() == 1 && columns->size(0) == weight.size(0)),
              "anneal::linear: expected columns [", weight.size(0), "] (one multiplier per output), found ",
              columns.has_value() ? columns->sizes() : x.sizes());
  TORCH_CHECK(!columns.has_value() || !columns->requires_grad(),
              "anneal::linear: columns is a constant multiplier and gets no gradient, but it requires one");
}

// the tensor, or an empty one of like's options in its place (LinearLayers takes no undefined inputs:
// an absent bias, or the second weight of a single layer)
Tensor or_empty(const c10::optional<Tensor>& value, const Tensor& like) {
  return value.has_value() ? *value : at::empty({0}, like.options());
}

Tensor linear(const Tensor& x, const Tensor& weight, const c10::optional<Tensor>& bias, double scale,
              const c10::optional<Tensor>& columns, bool keep_cast) {
  check_linear(x, weight, bias, columns);
  Tensor none = or_empty(c10::nullopt, weight);
  return LinearLayers::apply(x, weight, or_empty(bias, weight), bias.has_value(), none, none, false, scale, 1.0,
                             columns, c10::nullopt, std::vector<int64_t>(), keep_cast, none, none)[0];
}

// "[sizes] type", for messages
std::string describe(const Tensor& t) {
  std::ostringstream text;
  text << t.sizes() << " " << t.scalar_type();
  return text.str();
}

std::vector<Tensor> linear_pair(const Tensor& x, const Tensor& weight1, const c10::optional<Tensor>& bias1,
                                const Tensor& weight2, const c10::optional<Tensor>& bias2, double scale1, double scale2,
                                const c10::optional<Tensor>& columns1, const c10::optional<Tensor>& columns2,
                                c10::IntArrayRef pieces1, bool keep_cast,
                                c10::optional<at::TensorList> x8_given) {
  check_linear(x, weight1, bias1, columns1);
  check_linear(x, weight2, bias2, columns2);
  check_pieces("anneal::linear_pair", "pieces1", pieces1, weight1.size(0), "outputs of weight1");
  // x8: x's float8 rows as rms_norm_keep and add_rms_norm give them ([q, s], or [] for none); an
  // optional list (Tensor[]?) because a schema takes no list default but of numbers
  at::TensorList x8 = x8_given.value_or(at::TensorList());
  int64_t width = x.size(-1), rows = width == 0 ? 0 : x.numel() / width;
  TORCH_CHECK(x8.empty() || (x8.size() == 2 && x8[0].scalar_type() == at::kFloat8_e4m3fn &&
                             x8[0].sizes() == at::IntArrayRef({rows, width}) && x8[1].scalar_type() == at::kFloat &&
                             x8[1].numel() == rows),
              "anneal::linear_pair: expected x8 = None, [] or x's float8 rows [q [", rows, ", ", width, "] float8_e4m3fn, s [",
              rows, ", 1] float32] (rms_norm_keep's or add_rms_norm's third output), found ", x8.size(), " tensors",
              x8.size() == 2 ? ": " + describe(x8[0]) + " and " + describe(x8[1]) : std::string());
  Tensor none = or_empty(c10::nullopt, weight1);
  return LinearLayers::apply(x, weight1, or_empty(bias1, weight1), bias1.has_value(), weight2,
                             or_empty(bias2, weight2), bias2.has_value(), scale1, scale2, columns1, columns2,
                             pieces1.vec(), keep_cast, x8.empty() ? none : x8[0], x8.empty() ? none : x8[1]);
}

// ---------------------------------------------------------------------------------------------
// silu_mul_linear(gate [..., W], up [..., W], weight [out, W], bias?, scale) -> linear(silu(gate) * up,
// weight, bias, scale): the MLP's SwiGLU with its down projection, and the Mamba output gate with
// out_proj. silu_mul keeps gate and up for its backward anyway; the linear layer kept the product as
// well, a third [tokens, W] tensor a layer (24 MiB for the MLP and 16 for out_proj a layer at
// 2 x 2048 on the 291M model). Here the product is not kept: its gradient dh = g W comes first, then
// silu_mul's backward kernel writes the product again beside gate's and up's gradients (one more
// write of [tokens, W] in a pass that reads gate and up anyway), and the weight's gradient reads it.
// (Recomputing a cheap elementwise function rather than keeping its output: Chen et al. 2016,
// "Training Deep Nets with Sublinear Memory Cost"; as Megatron-LM's recomputation of activations.)
// ---------------------------------------------------------------------------------------------
struct SiluMulLinear : torch::autograd::Function<SiluMulLinear> {
  static Tensor forward(AutogradContext* ctx, const Tensor& gate, const Tensor& up, const Tensor& weight,
                        const Tensor& bias, bool has_bias, double scale, bool keep_cast) {
    std::pair<Tensor, Tensor> x8;
    Tensor cast;   // kept for the backward with keep_cast (model.keep-weight-casts), as LinearLayers
#if ANNEAL_FP8_FORWARD
    // float8: the product straight from gate and up into e4m3 (its bfloat16 form is never needed: the
    // backward makes it again); with x8 made, cast_linear reads only gate's shape and type
    bool fp8 = fp8_forward(gate, weight, has_bias);
    if (fp8) x8 = silu_mul_rows_e4m3(gate, up);
    Tensor x = fp8 ? gate : silu_mul_product(gate, up);
#else
    Tensor x = silu_mul_product(gate, up);
#endif
    Tensor out = cast_linear(x, weight, bias, has_bias, scale, Tensor(), x8, keep_cast ? &cast : nullptr);
    ctx->saved_data["cast"] = optional_value(cast);
    ctx->save_for_backward({gate, up});
    ctx->saved_data["weight"] = weight;  // the leaf itself, whose .grad the backward adds into
    ctx->saved_data["bias_type"] = has_bias ? (int64_t) bias.scalar_type() : (int64_t) -1;
    ctx->saved_data["scale"] = scale;
    return out;
  }

  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    auto saved = ctx->get_saved_variables();
    Tensor g = saved[0], u = saved[1];
    Tensor cast = saved_optional(ctx, "cast");
    ctx->saved_data["cast"] = c10::IValue();   // freed once this backward is done
    if (!grads[0].defined()) return {Tensor(), Tensor(), Tensor(), Tensor(), Tensor(), Tensor(), Tensor()};
    Tensor weight = ctx->saved_data["weight"].toTensor();
    double scale = ctx->saved_data["scale"].toDouble();
    Tensor d = grads[0].to(g.scalar_type());
    Tensor dh;
    if (fp8_gradient_applies(g, 1)) {
      dh = fp8_x_gradient({d}, {{weight, 0, weight.size(0), scale, Tensor()}}, g.sizes());
    } else {
      if (!cast.defined()) cast = cast_weight(weight, g.scalar_type(), scale, Tensor());
      dh = at::matmul(d, cast).contiguous();
    }
    cast.reset();
    Tensor product = at::empty(g.sizes(), g.options());
    auto [dgate, dup] = silu_mul_grads(g, u, dh, product);
    dh.reset();
    // needs_input_grad counts the tensor inputs only: gate, up, weight, bias
    auto [dweight, dbias] = linear_parameter_grads(
        weight, d.reshape({-1, d.size(-1)}), product.reshape({-1, product.size(-1)}),
        ctx->saved_data["bias_type"].toInt(), ctx->needs_input_grad(2), ctx->needs_input_grad(3), scale, Tensor());
    return {dgate, dup, dweight, dbias, Tensor(), Tensor(), Tensor()};
  }
};

Tensor silu_mul_linear(const Tensor& gate, const Tensor& up, const Tensor& weight, const c10::optional<Tensor>& bias,
                       double scale, bool keep_cast) {
  check_silu_mul("silu_mul_linear", gate, up);
  check_linear(gate, weight, bias, c10::nullopt);
  if (!silu_mul_on_kernel(gate, up)) return linear(silu_mul(gate, up), weight, bias, scale, c10::nullopt, keep_cast);
  return SiluMulLinear::apply(gate, up, weight, or_empty(bias, weight), bias.has_value(), scale, keep_cast);
}

// ---------------------------------------------------------------------------------------------
// lm_head_cross_entropy(hidden [N,D], weight [V,D], labels [N], scale, chunk) -> (log_prob [N], correct [N])
//
// log_prob_i = log softmax(scale * hidden_i W^T)[label_i] (0 where label_i = -100), correct_i = 1
// where the arg-max logit is the label. No float32 logits exist: the logits are in hidden's type.
// - With a backward to come, the logits of all tokens are made at once, and the forward's kernel
//   turns them in place into G = d log_prob / d logits = scale (onehot - softmax), the gradient for
//   an incoming 1 (the chunked loss of Liger-Kernel / Cut Cross-Entropy, without its second GEMM).
//   G is all the backward needs: for incoming gradients g, dlogits = diag(g) G, so
//   dhidden = diag(g) (G W) and dW = G^T (diag(g) hidden), g scaling [N, D] rows, not [N, V] ones.
//   The logits are computed once a step instead of twice, for [N, V] kept from the head's forward
//   to its backward (the first node of the backward pass, so nothing of the layers' backward is
//   alive beside it).
// - Without one (evaluation, a frozen model), chunks of `chunk` tokens: [chunk, V] logits at most.
// ---------------------------------------------------------------------------------------------

struct LmHeadCrossEntropy : torch::autograd::Function<LmHeadCrossEntropy> {
  static variable_list forward(AutogradContext* ctx, const Tensor& hidden, const Tensor& weight, const Tensor& labels,
                               double scale, int64_t chunk, bool for_backward) {
    TORCH_CHECK(hidden.dim() == 2 && weight.dim() == 2 && hidden.size(1) == weight.size(1),
                "anneal::lm_head_cross_entropy: hidden [N,D] and weight [V,D] expected, found ", hidden.sizes(), " ",
                weight.sizes());
    TORCH_CHECK(labels.dim() == 1 && labels.size(0) == hidden.size(0),
                "anneal::lm_head_cross_entropy: labels [N] expected, found ", labels.sizes());
    int64_t tokens = hidden.size(0);
    Tensor w = weight.to(hidden.scalar_type());
    check_cuda(hidden, "lm_head_cross_entropy", "hidden");
    Tensor lab = labels.to(at::kLong).contiguous();
    Tensor log_prob = at::empty({tokens}, hidden.options().dtype(at::kFloat));
    Tensor correct = at::empty({tokens}, hidden.options().dtype(at::kFloat));
    int64_t vocab = w.size(0);
    Tensor dlogits = for_backward ? at::empty({tokens, vocab}, hidden.options()) : Tensor();
    int64_t step = for_backward ? std::max<int64_t>(tokens, 1) : chunk;
    c10::cuda::CUDAGuard guard(hidden.device());
    auto stream = at::cuda::getCurrentCUDAStream();
    for (int64_t start = 0; start < tokens; start += step) {
      int64_t len = std::min(step, tokens - start);
      Tensor logits = for_backward ? dlogits.narrow(0, start, len) : at::empty({len, vocab}, hidden.options());
      at::matmul_out(logits, hidden.narrow(0, start, len), w.t());
      // one kernel reads the logits once for both results (and, for a backward, rewrites them as G)
      by_type(logits, "lm_head_cross_entropy", [&](auto tag) {
        using T = decltype(tag);
        anneal::cross_entropy_forward<T>(ptr<T>(logits), lab.data_ptr<int64_t>() + start, (float) scale, len, vocab,
                                         log_prob.data_ptr<float>() + start, correct.data_ptr<float>() + start,
                                         for_backward, stream);
      });
    }
    ctx->save_for_backward({hidden, weight, dlogits});
    ctx->saved_data["weight"] = weight;  // the leaf itself, whose .grad the backward adds into
    ctx->mark_non_differentiable({correct});
    return {log_prob, correct};
  }

  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    auto saved = ctx->get_saved_variables();
    Tensor hidden = saved[0], weight = saved[1], dlogits = saved[2];
    TORCH_CHECK(dlogits.defined(), "anneal::lm_head_cross_entropy: a backward through a forward that ran without "
                "gradients (no input required one, or grad mode was off)");
    variable_list none(6);
    if (!grads[0].defined()) return none;
    Tensor g = grads[0].to(at::kFloat).contiguous();
    bool want_hidden = ctx->needs_input_grad(0), want_weight = ctx->needs_input_grad(1);
    Tensor dhidden = want_hidden
                         ? rows_scaled(at::matmul(dlogits, weight.to(hidden.scalar_type())), g, hidden.scalar_type())
                         : Tensor();
    Tensor dweight;
    if (want_weight) {
      // a float32 master head weight takes its gradient into its own .grad
      Tensor master_grad = in_place_grad(ctx->saved_data["weight"].toTensor());
      Tensor scaled = rows_scaled(hidden, g, hidden.scalar_type());
      if (master_grad.defined()) {
        add_weight_gradient(master_grad, dlogits, scaled);
      } else {
        dweight = at::empty(weight.sizes(), weight.options().dtype(at::kFloat));
        transposed_product(dweight, dlogits, scaled, false);
      }
    }
    // dweight undefined: the sum is already in the master's .grad
    return {dhidden, dweight.defined() ? dweight.to(weight.scalar_type()) : Tensor(), Tensor(), Tensor(), Tensor(),
            Tensor()};
  }
};

std::tuple<Tensor, Tensor> lm_head_cross_entropy(const Tensor& hidden, const Tensor& weight, const Tensor& labels,
                                                 double scale, int64_t chunk) {
  TORCH_CHECK(chunk > 0, "anneal::lm_head_cross_entropy: chunk must be positive");
  // decided here, where grad mode is still the caller's (it is off inside forward)
  bool for_backward = at::GradMode::is_enabled() && (hidden.requires_grad() || weight.requires_grad());
  auto out = LmHeadCrossEntropy::apply(hidden, weight, labels, scale, chunk, for_backward);
  return {out[0], out[1]};
}

// What the library was built against, for the loader's version check (FusedKernels.java), and the
// builds' variants; "float8 forward GEMMs" (and "float8 x-gradient GEMMs") where this build runs them
// on the current GPU (build_kernels.py records it for the run's status line, test_kernels.py takes
// its bounds from it).
std::string build_info(const Tensor&) {
  bool capable = fp8_capable(c10::cuda::current_device());
  bool fp8 = ANNEAL_FP8_FORWARD && capable;
  return std::string("torch ") + TORCH_VERSION + "; cuda " + std::to_string(CUDART_VERSION / 1000) + "." +
         std::to_string((CUDART_VERSION % 1000) / 10) + "; arch " + ANNEAL_STRING(ANNEAL_ARCH) +
         (fp8 ? "; float8 forward GEMMs" : "") + (fp8 && anneal::residual_norm_rows_e4m3() ? "; float8 rows from the norms" : "") +
         (ANNEAL_FP8_BACKWARD && capable ? "; float8 x-gradient GEMMs " + std::to_string(ANNEAL_FP8_BACKWARD) : "") +
         (ANNEAL_WGRAD_STREAM ? "; weight-gradient stream" : "") +
         (ANNEAL_PDL ? "; programmatic dependent launch " + std::to_string(ANNEAL_PDL) : "");
}


// ---------------------------------------------------------------------------------------------
// CUDA graphs of whole training steps (issue 12, "no host in the loop"), driven from the JVM
// through GraphControl.torchscript. A graph must be captured on a stream other than the default
// one, and c10's current stream is per thread: graph_side_stream moves the calling thread (DJL
// runs every call on the calling Java thread; the autograd engine follows the forward's stream)
// onto one side stream for good, so warm-up, capture and replay all run there. Each graph keeps
// its own memory pool: its intermediates live at fixed addresses between replays.
// Every operator takes a tensor (the anchor): one without a tensor argument did not take effect
// when called from TorchScript (../shared/device/spikes/libtorch-ops-cuda-graph).
// ---------------------------------------------------------------------------------------------
std::vector<std::unique_ptr<at::cuda::CUDAGraph>> step_graphs;
c10::optional<c10::cuda::CUDAStream> side_stream;

int64_t graph_side_stream(const Tensor& anchor) {
  TORCH_CHECK(anchor.is_cuda(), "anneal::graph_side_stream: expected a CUDA tensor, found ", anchor.device());
  if (!side_stream.has_value()) {
    side_stream = c10::cuda::getStreamFromPool(false, anchor.device().index());
  }
  auto current = c10::cuda::getCurrentCUDAStream(anchor.device().index());
  if (current != *side_stream) {
    wait_for_queued(*side_stream, current);  // the side stream starts after what the thread queued so far
    c10::cuda::setCurrentCUDAStream(*side_stream);
    // The caching allocator reuses a freed block only on the stream it was allocated on: what the
    // model's initialisation freed on the old stream (the parameters' first arrays, which the
    // optimizer's flat buffer replaced, and the initialisers' temporaries) could never serve the
    // steps again, yet stayed reserved under them. Back to the driver now.
    c10::cuda::CUDACachingAllocator::emptyCache();
  }
  return (int64_t) side_stream->id();
}

int64_t graph_begin(const Tensor& anchor) {
  graph_side_stream(anchor);
  // weight-gradient GEMMs left unjoined by an eager step (-DANNEAL_WGRAD_STREAM=1) are joined before
  // the capture: a capturing stream may not wait on work recorded outside it
  join_weight_gradients(anchor.device().index());
  // the eager steps' cached blocks back to the driver: the graph's own pool holds its memory from now on
  c10::cuda::CUDACachingAllocator::emptyCache();
  step_graphs.push_back(std::make_unique<at::cuda::CUDAGraph>());
  // thread-local: another JVM thread's CUDA calls (a checkpoint writer, a GC-driven free) must not
  // invalidate the capture
  step_graphs.back()->capture_begin({0, 0}, cudaStreamCaptureModeThreadLocal);
  return (int64_t) step_graphs.size() - 1;
}

int64_t graph_end(const Tensor& anchor) {
  TORCH_CHECK(!step_graphs.empty(), "anneal::graph_end: no capture was begun");
  // every stream the capture forked must be joined back before it ends: the weight-gradient stream
  // too, whatever the layers' fences have joined already
  join_weight_gradients(anchor.device().index());
  step_graphs.back()->capture_end();
  return (int64_t) step_graphs.size() - 1;
}

int64_t graph_replay(const Tensor& anchor, int64_t id) {
  TORCH_CHECK(id >= 0 && id < (int64_t) step_graphs.size() && step_graphs[id], "anneal::graph_replay: no graph ", id);
  step_graphs[id]->replay();
  return id;
}

// Frees a graph and its memory pool (its static tensors must be dropped by the caller first).
int64_t graph_release(const Tensor& anchor, int64_t id) {
  TORCH_CHECK(id >= 0 && id < (int64_t) step_graphs.size(), "anneal::graph_release: no graph ", id);
  step_graphs[id].reset();
  return id;
}

// The caching allocator's figures on the anchor's device, for bench-train (DJL exposes none):
// [allocated, peak allocated, reserved, peak reserved, device used (cudaMemGetInfo: every process's
// memory and the CUDA context, as nvidia-smi shows)], in bytes, as int64 on the host. With
// reset_peaks the peaks start again from the current figures once read, as
// torch.cuda.reset_peak_memory_stats does. Reserved counts the graphs' private pools; allocated
// counts what a capture left allocated, not what a replay uses of its pool.
Tensor memory_stats(const Tensor& anchor, bool reset_peaks) {
  TORCH_CHECK(anchor.is_cuda(), "anneal::memory_stats: expected a CUDA tensor, found ", anchor.device());
  auto device = anchor.device().index();
  auto stats = c10::cuda::CUDACachingAllocator::getDeviceStats(device);
  size_t free_bytes = 0;
  size_t total_bytes = 0;
  {
    c10::cuda::CUDAGuard guard(anchor.device());
    C10_CUDA_CHECK(cudaMemGetInfo(&free_bytes, &total_bytes));
  }
  Tensor out = at::empty({5}, at::TensorOptions().dtype(at::kLong));
  int64_t* v = out.data_ptr<int64_t>();
  constexpr auto all_pools = static_cast<size_t>(c10::CachingDeviceAllocator::StatType::AGGREGATE);  // small + large
  v[0] = stats.allocated_bytes[all_pools].current;
  v[1] = stats.allocated_bytes[all_pools].peak;
  v[2] = stats.reserved_bytes[all_pools].current;
  v[3] = stats.reserved_bytes[all_pools].peak;
  v[4] = (int64_t) (total_bytes - free_bytes);
  if (reset_peaks) {
    c10::cuda::CUDACachingAllocator::resetPeakStats(device);
  }
  return out;
}

// Reads back to the host that wait for nothing queued after them (issue 12: "metrics come back to
// the host asynchronously"). host_read_begin copies a CUDA tensor into pinned host memory on the
// current stream and records an event right after the copy; host_read_end waits for that event
// alone, so the host can enqueue the next step first and read this one's results while it runs.
// (A plain read, DJL's toFloatArray, waits for everything the stream holds.)
struct HostRead {
  Tensor host;
  std::unique_ptr<at::cuda::CUDAEvent> copied;
};
std::vector<HostRead> host_reads;  // by id; an ended read's slot is reused

int64_t host_read_begin(const Tensor& source) {
  TORCH_CHECK(source.is_cuda(), "anneal::host_read_begin: expected a CUDA tensor, found ", source.device());
  Tensor host = at::empty(source.sizes(), source.options().device(at::kCPU).pinned_memory(true));
  host.copy_(source, /*non_blocking=*/true);
  auto copied = std::make_unique<at::cuda::CUDAEvent>();
  copied->record(c10::cuda::getCurrentCUDAStream(source.device().index()));
  for (size_t id = 0; id < host_reads.size(); id++) {
    if (!host_reads[id].host.defined()) {
      host_reads[id] = HostRead{host, std::move(copied)};
      return (int64_t) id;
    }
  }
  host_reads.push_back(HostRead{host, std::move(copied)});
  return (int64_t) host_reads.size() - 1;
}

Tensor host_read_end(const Tensor& anchor, int64_t id) {
  TORCH_CHECK(id >= 0 && id < (int64_t) host_reads.size() && host_reads[id].host.defined(),
              "anneal::host_read_end: no read ", id, " in flight");
  host_reads[id].copied->synchronize();
  Tensor host = host_reads[id].host;
  host_reads[id] = HostRead{};
  return host;
}

// ---------------------------------------------------------------------------------------------
// Falcon-H1's two mixers side by side (model.branch-stream). Attention and Mamba-2 read the same
// normed input and meet again only at the next norm, so the layer (FalconH1FusedLayer.torchscript,
// mixers) runs one of them on a second stream while the other runs on the caller's:
//
//   xs = branch_begin(xs)   the branch stream waits for what the caller's stream has queued, then
//                           becomes the thread's current stream (the first mixer runs there)
//   xs = branch_end(xs)     the branch's end is recorded; the caller's stream is current again (the other)
//   xs = branch_join(xs)    the caller's stream waits for the branch's end (both mixers' outputs ready)
//
// Each passes its tensors through unchanged: the layer routes the branches' inputs and outputs
// through them, so TorchScript cannot move an operator across a switch. They are registered
// CONSERVATIVE (side effects) for the same reason, and are no autograd nodes: the autograd engine
// runs each backward on the stream its forward ran on and synchronises (and records) the gradients
// that cross (PyTorch's "stream semantics of backward passes"), so the backward overlaps the same way.
// Under CUDA graph capture the event record and wait are the fork and join that take the branch
// stream into the capture, and its allocations into the graph's pool.
// The branch stream is a dedicated one of the highest priority (dedicated_stream), the same in every
// step: the warm-up's autograd nodes and the capture's see one stream.
// Memory: the caching allocator hands a freed block back to the stream that allocated it at once, so
// a tensor made on the caller's stream and read on the branch stream (the q, k, v projection that
// attention reads there; the in_proj pieces a saved conv input keeps, read again by Mamba's backward
// there) could be written over by the caller's next allocation before the branch's kernels have read
// it. branch_begin marks its tensors as used by the branch stream (the allocator's recordStream, as
// Tensor.record_stream): their blocks are reused only after what the branch stream queued before they
// were freed (under capture: not before the capture ends, unless torch 2.9+'s
// graph_capture_record_stream_reuse lets the allocator prove them free). The other way needs no mark:
// a block the branch stream made and the caller's read goes back to the branch stream, whose next
// work waits for the caller's queue first (the next branch_begin; in the backward, the autograd
// engine's wait for a gradient the caller's stream made).
// ---------------------------------------------------------------------------------------------
struct OpenBranch {
  c10::optional<c10::cuda::CUDAStream> caller;   // the stream current at branch_begin
  std::shared_ptr<at::cuda::CUDAEvent> end;      // recorded on the branch stream at branch_end
};
thread_local OpenBranch open_branch;  // c10's current stream is per thread, and so is a branch

const Tensor& branch_anchor(at::TensorList xs, const char* op) {
  TORCH_CHECK(!xs.empty() && xs[0].is_cuda(), "anneal::", op, ": expected CUDA tensors, found ",
              xs.empty() ? std::string("none") : xs[0].device().str());
  return xs[0];
}

// xs's memory is not reused before what `reader` has queued by the time each is freed
void used_on(at::TensorList xs, const c10::cuda::CUDAStream& reader) {
  for (const auto& x : xs) {
    if (x.defined() && x.is_cuda() && x.has_storage()) {
      c10::cuda::CUDACachingAllocator::recordStream(x.storage().data_ptr(), reader);
    }
  }
}

std::vector<Tensor> branch_begin(at::TensorList xs) {
  auto device = branch_anchor(xs, "branch_begin").device().index();
  if (open_branch.caller.has_value()) {
    // a step that failed inside a branch (an exception between begin and join) left it open: the
    // caller's stream back first, so the next step starts where the failed one did
    c10::cuda::setCurrentCUDAStream(*open_branch.caller);
    open_branch = OpenBranch{};
  }
  auto caller = c10::cuda::getCurrentCUDAStream(device);
  auto branch = dedicated_stream(device, StreamRole::kBranch);
  wait_for_queued(branch, caller);
  used_on(xs, branch);
  open_branch.caller = caller;
  c10::cuda::setCurrentCUDAStream(branch);
  return xs.vec();
}

std::vector<Tensor> branch_end(at::TensorList xs) {
  auto device = branch_anchor(xs, "branch_end").device().index();
  TORCH_CHECK(open_branch.caller.has_value() && !open_branch.end,
              "anneal::branch_end: no branch open (branch_begin first)");
  open_branch.end = std::make_shared<at::cuda::CUDAEvent>();
  open_branch.end->record(c10::cuda::getCurrentCUDAStream(device));
  c10::cuda::setCurrentCUDAStream(*open_branch.caller);
  return xs.vec();
}

std::vector<Tensor> branch_join(at::TensorList xs) {
  branch_anchor(xs, "branch_join");
  TORCH_CHECK(open_branch.end, "anneal::branch_join: no branch ended (branch_begin, branch_end first)");
  open_branch.end->block(*open_branch.caller);
  open_branch = OpenBranch{};
  return xs.vec();
}

}  // namespace

TORCH_LIBRARY(anneal, m) {
  m.def("causal_conv1d_silu(Tensor x, Tensor weight, Tensor? bias, Tensor? seq_idx, int[] pieces=[]) -> Tensor[]");
  m.def("gated_rms_norm(Tensor y, Tensor z, Tensor weight, int groups, float eps, bool norm_before_gate) -> Tensor");
  m.def("ssd_scan(Tensor x, Tensor dt, Tensor A, Tensor B, Tensor C, Tensor? seq_idx, int chunk, "
        "bool recompute=True) -> Tensor");
  m.def("ssd_scan_skip(Tensor x, Tensor dt, Tensor A, Tensor B, Tensor C, Tensor D, Tensor? seq_idx, int chunk, "
        "bool recompute=True) -> Tensor");
  m.def("lm_head_cross_entropy(Tensor hidden, Tensor weight, Tensor labels, float scale, int chunk) -> (Tensor, Tensor)");
  m.def("silu_mul(Tensor gate, Tensor up) -> Tensor");
  m.def("silu_mul_linear(Tensor gate, Tensor up, Tensor weight, Tensor? bias, float scale=1.0, bool keep_cast=False) "
        "-> Tensor");
  m.def("rms_norm(Tensor x, Tensor weight, float eps, int dtype) -> Tensor");
  m.def("rms_norm_keep(Tensor(a) x, Tensor weight, float eps, int dtype) -> (Tensor, Tensor(a), Tensor[])");
  m.def("add_rms_norm(Tensor x, Tensor a, Tensor b, Tensor weight, float eps) -> (Tensor, Tensor, Tensor[])");
  m.def("residual_add(Tensor x, Tensor a) -> Tensor");
  m.def("qkv_rope(Tensor qkv, Tensor cos, Tensor sin, int heads, int kv_heads, float key_scale) -> (Tensor, Tensor, Tensor)");
  m.def("linear(Tensor x, Tensor weight, Tensor? bias, float scale=1.0, Tensor? columns=None, bool keep_cast=False) "
        "-> Tensor");
  m.def("linear_pair(Tensor x, Tensor weight1, Tensor? bias1, Tensor weight2, Tensor? bias2, float scale1=1.0, "
        "float scale2=1.0, Tensor? columns1=None, Tensor? columns2=None, int[] pieces1=[], bool keep_cast=False, "
        "Tensor[]? x8=None) -> Tensor[]");
  m.def("wgrad_fence(Tensor(a) x) -> Tensor(a)");
  m.def("build_info(Tensor any) -> str", &build_info);
  m.def("graph_side_stream(Tensor anchor) -> int", &graph_side_stream);
  m.def("graph_begin(Tensor anchor) -> int", &graph_begin);
  m.def("graph_end(Tensor anchor) -> int", &graph_end);
  m.def("graph_replay(Tensor anchor, int id) -> int", &graph_replay);
  m.def("graph_release(Tensor anchor, int id) -> int", &graph_release);
  m.def("host_read_begin(Tensor source) -> int", &host_read_begin);
  m.def("host_read_end(Tensor anchor, int id) -> Tensor", &host_read_end);
  m.def("memory_stats(Tensor anchor, bool reset_peaks) -> Tensor", &memory_stats);
  m.def("wgrad_join(Tensor anchor) -> int", &wgrad_join);
  // side effects: TorchScript keeps them, in order, and moves no operator across them
  m.def(torch::schema("branch_begin(Tensor[] xs) -> Tensor[]", c10::AliasAnalysisKind::CONSERVATIVE), &branch_begin);
  m.def(torch::schema("branch_end(Tensor[] xs) -> Tensor[]", c10::AliasAnalysisKind::CONSERVATIVE), &branch_end);
  m.def(torch::schema("branch_join(Tensor[] xs) -> Tensor[]", c10::AliasAnalysisKind::CONSERVATIVE), &branch_join);
}

// CompositeImplicitAutograd: the dispatcher calls these for every backend and under autograd; each
// records its own autograd node (torch::autograd::Function) with the hand-written backward.
TORCH_LIBRARY_IMPL(anneal, CompositeImplicitAutograd, m) {
  m.impl("causal_conv1d_silu", &causal_conv1d_silu);
  m.impl("gated_rms_norm", &gated_rms_norm);
  m.impl("ssd_scan", &ssd_scan);
  m.impl("ssd_scan_skip", &ssd_scan_skip);
  m.impl("lm_head_cross_entropy", &lm_head_cross_entropy);
  m.impl("silu_mul", &silu_mul);
  m.impl("silu_mul_linear", &silu_mul_linear);
  m.impl("rms_norm", &rms_norm);
  m.impl("rms_norm_keep", &rms_norm_keep);
  m.impl("add_rms_norm", &add_rms_norm);
  m.impl("residual_add", &residual_add);
  m.impl("qkv_rope", &qkv_rope);
  m.impl("linear", &linear);
  m.impl("linear_pair", &linear_pair);
  m.impl("wgrad_fence", &wgrad_fence);
}
