// Launchers of the CUDA kernels in anneal_kernels.cu (see there for the arithmetic).
#pragma once
#include <cstdint>
#include <initializer_list>
#include <cuda_runtime.h>

namespace anneal {

/** x's rows (b, t) are x_row elements apart (a slice of the input projection); out, dout and dx are contiguous. */
template <typename T>
void conv1d_silu_forward(const T* x, int64_t x_row, const float* w, const float* bias, const int64_t* seq, T* out,
                         int batch, int time, int channels, int kernel, cudaStream_t stream);
/** Rows of the [column_sums_splits(rows, width), width] float32 scratch that column_sums needs (1: none). */
int column_sums_splits(int64_t rows, int width);
/** out[j] = sum over i of in[i, j], in a contiguous [rows, width] float32 (weight-gradient partials), in an order
 * fixed by the shapes; added to out[j] when `accumulate` (a float32 .grad), else written over it. */
void column_sums(const float* in, int64_t rows, int width, float* scratch, float* out, bool accumulate,
                 cudaStream_t stream);

/** Rows of the weight- and bias-gradient partials the backward kernel writes. */
int conv1d_silu_partials(int batch, int time);
/** The output gradient of conv1d_silu_backward in up to three column pieces (the x, B and C that the SSD scan reads,
 * whose gradients arrive apart): piece p holds channels end[p-1] .. end[p] (from 0 for the first), each piece
 * [batch, time, its channels] contiguous at dout[p]. One piece: end = {channels, channels, channels}. */
template <typename T>
struct ConvGradPieces {
  const T* dout[3];
  int end[3];
};

template <typename T>
void conv1d_silu_backward(const T* x, int64_t x_row, const float* w, const float* bias, const int64_t* seq,
                          const ConvGradPieces<T>& dout, T* dx, float* dw_partial, float* db_partial, int batch,
                          int time, int channels, int kernel, cudaStream_t stream);

template <typename TY, typename TZ>
void gated_rms_norm_forward(const TY* y, const TZ* z, const float* w, TZ* out, float* rstd, int64_t rows, int width,
                            int groups, float eps, bool norm_before_gate, cudaStream_t stream);
/** Rows of the weight-gradient partials the backward kernel writes. */
int gated_rms_norm_partials(int64_t rows);
int gated_rms_norm_max_group_width();
template <typename TY, typename TZ>
void gated_rms_norm_backward(const TY* y, const TZ* z, const float* w, const float* rstd, const TZ* dout, TY* dy,
                             TZ* dz, float* dw_partial, int64_t rows, int width, int groups, bool norm_before_gate,
                             cudaStream_t stream);

/** The SSD intra-chunk mixing matrix [b, c, h, q, q] from C.B scores [b, c, g, q, q] and cumulative decays [b, c, h, q]. */
template <typename T>
void ssd_mixing_forward(const float* scores, const float* cum, const int64_t* seq, T* mixing, int batch, int chunks,
                        int heads, int groups, int q, cudaStream_t stream);
/** Its gradients: dscores written; dlogd [b, c, h, q], the gradient with respect to the per-token log decays
 * whose within-chunk cumulative sum cum is, accumulated (zero it first). */
template <typename T>
void ssd_mixing_backward(const float* scores, const float* cum, const int64_t* seq, const T* dmixing, float* dscores,
                         float* dlogd, int batch, int chunks, int heads, int groups, int q, cudaStream_t stream);
int ssd_mixing_max_chunk();

/** The SSD's decays of each chunk (anneal_kernels.cu, ssd_decays_*): from dt [b, time, h] float32 (contiguous) and A
 * [h], with the padded document ids seq [b, chunks * q] or null: logd, cum and from_start [b, chunks, h, q],
 * to_end [b, chunks, q, h] (the tokens' layout), last [b, chunks, h], keep [b, chunks] (with seq). Whether a chunk
 * of q and h heads fits the kernels' shared memory: */
bool ssd_decays_supported(int q, int h);
void ssd_decays_forward(const float* dt, const float* a, const int64_t* seq, float* logd, float* cum,
                        float* to_end_tok, float* from_start, float* last, float* keep, int batch, int time,
                        int chunks, int q, int h, cudaStream_t stream);
/** Its backward from the outputs' gradients (each may be null: zero): ddt [b, time, h] written, da [h] accumulated
 * (zero it first). */
void ssd_decays_backward(const float* dt, const float* a, const int64_t* seq, const float* cum, const float* g_logd,
                         const float* g_to_end_tok, const float* g_from_start, const float* g_last, float* ddt,
                         float* da, int batch, int time, int chunks, int q, int h, cudaStream_t stream);

/** The SSD's intra-chunk output y_diag [b, c, h, q, p] (contiguous) = M X without M in memory, M as
 * ssd_mixing_forward makes it; x's [q, p] block of chunk (b, c) and head h starts at
 * (b * chunks + c) * x_chunk + h * x_head, its rows x_row apart. Half types only (tensor cores); chunks a
 * multiple of 16 up to 128, p 16, 32, 64 or 128. */
bool ssd_diagonal_supported(int q, int p, int64_t x_chunk, int64_t x_head, int64_t x_row,
                            std::initializer_list<const void*> pointers);
template <typename T>
void ssd_diagonal_forward(const float* scores, const float* cum, const int64_t* seq, const T* x, int64_t x_chunk,
                          int64_t x_head, int64_t x_row, T* y, int batch, int chunks, int heads, int groups, int q,
                          int p, cudaStream_t stream);
/** Its backward from dy [b, c, h, q, p] (contiguous): dx in the same layout (written), dscores [b, c, g, q, q]
 * accumulated (zero it first: the group's heads add into it), dlogd [b, c, h, q] written (as ssd_mixing_backward's,
 * the gradient with respect to the log decays whose within-chunk cumulative sum cum is). */
template <typename T>
void ssd_diagonal_backward(const float* scores, const float* cum, const int64_t* seq, const T* x, int64_t x_chunk,
                           int64_t x_head, int64_t x_row, const T* dy, float* dscores, float* dlogd, T* dx, int batch,
                           int chunks, int heads, int groups, int q, int p, cudaStream_t stream);

/** SSD state passing across chunks: entering [b, c, h, E] from chunk-end states [b, c, h, E], chunk log decays
 * [b, c, h] and optional document-continuation flags keep [b, c] (float 0/1). With inner > 0 both are laid
 * out [b, c, g, n, r * inner] instead (E = n * inner, heads = g * r, r = heads_per_group). */
template <typename T>
void ssd_state_passing_forward(const T* states, const float* decay, const float* keep, T* entering, int batch,
                               int chunks, int heads, int64_t elements, int inner, int heads_per_group,
                               cudaStream_t stream);

/** Its gradients: dstates written, ddecay accumulated (zero it first). */
template <typename T>
void ssd_state_passing_backward(const T* entering, const float* decay, const float* keep, const T* dentering,
                                T* dstates, float* ddecay, int batch, int chunks, int heads, int64_t elements,
                                int inner, int heads_per_group, cudaStream_t stream);

/** The SSD output y [b, t, h, p] = y_off [b, c, g, q, r, p] * from_start [b, c, h, q] + y_diag [b, c, g, r, q, p]
 * + x * D[h] (D may be null), x with `x_row` elements between tokens; needs p / 8 a power of two up to 32 and
 * 16-byte aligned arrays (ssd_combine_supported). */
template <typename T>
void ssd_combine_forward(const T* y_off, const float* from_start, const T* y_diag, const T* x, int64_t x_row,
                         const float* d, T* out, int batch, int chunks, int q, int groups, int heads_per_group,
                         int p, int time, cudaStream_t stream);
/** Its gradients: dy_off, dfrom_start and dy_diag over the padded chunks (zeros on the padding), and with D,
 * dd_partial [b, c q, h] (dD = its sum over the first two axes) and, unless dx is null, dx [b, t, h, p]. */
template <typename T>
void ssd_combine_backward(const T* y_off, const float* from_start, const T* x, int64_t x_row, const float* d,
                          const T* grad, T* dy_off, float* dfrom_start, T* dy_diag, T* dx, float* dd_partial,
                          int batch, int chunks, int q, int groups, int heads_per_group, int p, int time,
                          cudaStream_t stream);
bool ssd_combine_supported(int p, std::initializer_list<const void*> pointers);

/** ANNEAL_SSD_WEIGHTED (on by default since its H100 run: -0.9 ms a step at 8 x 2048,
 *  docs/benchmarks/2026-12-05-h100-experiments-one-by-one; -DANNEAL_SSD_WEIGHTED=0 turns it off): the SSD's
 *  weighted tokens made in scale_two_layouts' pass (anneal_ops.cpp, ScaleTwoLayouts). */
#ifndef ANNEAL_SSD_WEIGHTED
#define ANNEAL_SSD_WEIGHTED 1
#endif
/** The SSD's weighted tokens beside x dt (ANNEAL_SSD_WEIGHTED): out [b, t, h, p] = (x dt, rounded to T as
 * the tokens' layout holds it) * to_end [b, t, h] (float32), the chunk-end states' operand. The backward takes
 * its gradient g_out into dx and ddt and writes dto_end [b, t, h] = sum_p g_out (x dt). Null pointers: none. */
template <typename T>
struct WeightedTokens {
  const float* to_end;
  T* out;           // forward
  const T* g_out;   // backward
  float* dto_end;   // backward
};

/** x dt from x [b, t, h, p] (x_row elements between tokens) and dt [b, t, h] into the tokens' layout [b, t, h, p]
 * and the heads' [b, t / q, h, q, p] (heads_layout null: the tokens' alone), and the weighted tokens where
 * weighted.out is given; t a multiple of q, the same conditions as ssd_combine_supported. */
template <typename T>
void scale_two_layouts_forward(const T* x, int64_t x_row, const float* dt, T* tokens, T* heads_layout,
                               const WeightedTokens<T>& weighted, int batch, int time, int heads, int p, int q,
                               cudaStream_t stream);
/** Its gradients from either layout's gradient (null when absent): dx [b, t, h, p] contiguous, ddt [b, t, h]. With
 * g_skip (the gradient [b, t, h, p] of a result y + x D, contiguous) and d_skip (D [h], float32), dx also takes
 * g_skip D: the skip connection's x-gradient, which ssd_combine_backward then leaves out (its dx null). With
 * weighted.g_out, the weighted tokens' gradient too (into dx and ddt, and dto_end written). */
template <typename T>
void scale_two_layouts_backward(const T* x, int64_t x_row, const float* dt, const T* g_tokens, const T* g_heads,
                                const T* g_skip, const float* d_skip, const WeightedTokens<T>& weighted, T* dx,
                                float* ddt, int batch, int time, int heads, int p, int q, cudaStream_t stream);

/** The three parts of a fused q, k, v projection for qkv_rope_apply: part p has heads[p] heads of the head
 * dimension side by side in each (b, t) row, read from src[p] (rows src_row[p] elements apart) and written to dst[p]
 * (rows dst_row[p] apart); q and k (parts 0 and 1) are rotated and multiplied by scale[p], v (part 2) copied. */
template <typename T>
struct QkvParts {
  const T* src[3];
  T* dst[3];
  int64_t src_row[3], dst_row[3];
  int heads[3];
  float scale[3];
};

/** RoPE (rotate_half) of q and k times their scales, and v copied, in one launch, with cos, sin [cos_rows, 1, t, dim]
 * float32 (cos_rows 1 or b); with `backward` q's and k's gradients from their outputs' (v's copied likewise). Rows
 * multiples of 8 elements, dim a multiple of 16, every part 16-byte aligned. */
template <typename T>
void qkv_rope_apply(const QkvParts<T>& parts, const float* cos, const float* sin, int batch, int time, int dim,
                    int cos_rows, bool backward, cudaStream_t stream);

/** The residual stream's RMSNorm: out [rows, width] (T) = s r w with s = x (+ a + b when a is given, then written to
 * `sum`), r = rsqrt(mean(s^2) + eps) written to rstd [rows]; x, sum, w float32. Needs residual_norm_supported.
 * With q8 (builds where residual_norm_rows_e4m3(), the half types) also out's rows in float8 e4m3, q8 [rows, width]
 * and q8_scale [rows], as quantize_rows_e4m3 makes them from out. */
template <typename T>
void residual_norm_forward(const float* x, const T* a, const T* b, const float* w, float* sum, T* out, float* rstd,
                           int64_t rows, int width, float eps, cudaStream_t stream, uint8_t* q8 = nullptr,
                           float* q8_scale = nullptr);
/** Whether this build's norm writes float8 rows (ANNEAL_NORM_FP8, the default; -DANNEAL_NORM_FP8=0 turns it off). */
bool residual_norm_rows_e4m3();
/** Its gradients: ds = dsum (or 0 when null) + the norm's, also into da and db (T) when given; weight-gradient
 * partials dw_partial [residual_norm_partials(rows), width] for the caller to sum. */
template <typename T>
void residual_norm_backward(const float* s, const float* w, const float* rstd, const T* dout, const float* dsum,
                            float* ds, T* da, T* db, float* dw_partial, int64_t rows, int width, cudaStream_t stream);
int residual_norm_partials(int64_t rows);
/** out [n] (float32) = x [n] (float32) + a [n] (T); needs residual_add_supported (n a multiple of 8, 16-byte aligned). */
template <typename T>
void residual_add(const float* x, const T* a, float* out, int64_t n, cudaStream_t stream);
bool residual_add_supported(int64_t n, std::initializer_list<const void*> pointers);
bool residual_norm_supported(int width, std::initializer_list<const void*> pointers);

/** out [rows, width] = silu(gate) * up, gate and up rows `gate_row` / `up_row` elements apart; needs
 * silu_mul_supported (width a multiple of 8, 16-byte aligned rows). */
template <typename T>
void silu_mul_forward(const T* gate, int64_t gate_row, const T* up, int64_t up_row, T* out, int64_t rows, int width,
                      cudaStream_t stream);
/** Its gradients dgate and dup [rows, width] from grad [rows, width]; with `product` not null, also
 * silu(gate) * up [rows, width] again, as the forward computes it. */
template <typename T>
void silu_mul_backward(const T* gate, int64_t gate_row, const T* up, int64_t up_row, const T* grad, T* dgate, T* dup,
                       T* product, int64_t rows, int width, cudaStream_t stream);
bool silu_mul_supported(int width, int64_t gate_row, int64_t up_row, int element_size,
                        std::initializer_list<const void*> pointers);

/** out[i, j] = x[i, j] * s[i] over rows of `width` elements (float32 products). */
template <typename TX, typename TO>
void row_scale_forward(const TX* x, const float* s, TO* out, int64_t rows, int width, cudaStream_t stream);
/** Its gradients: dx[i, j] = grad[i, j] * s[i], ds[i] = sum_j grad[i, j] * x[i, j]. */
template <typename TX, typename TO>
void row_scale_backward(const TX* x, const float* s, const TO* grad, TX* dx, float* ds, int64_t rows, int width,
                        cudaStream_t stream);

/** Per row of logits [rows, vocab]: log p(label), arg-max == label; with `dlogits` the logits are then
 *  overwritten with d log p(label) / d logits (0 rows where label = -100). */
template <typename T>
void cross_entropy_forward(T* logits, const int64_t* labels, float scale, int64_t rows, int64_t vocab,
                           float* log_prob, float* correct, bool dlogits, cudaStream_t stream);

/** The linear layers' forward GEMMs in float8 e4m3 (anneal_ops.cpp, fp8_linear): on by default since
 *  the 291M model's 300-step loss stayed within the reference path's seed spread
 *  (docs/benchmarks/2026-12-05-h200-float8-default); -DANNEAL_FP8_FORWARD=0 builds bfloat16 GEMMs. */
#ifndef ANNEAL_FP8_FORWARD
#define ANNEAL_FP8_FORWARD 1
#endif
/** -DANNEAL_PDL=1 or 2: every kernel launched with programmatic dependent launch (anneal_kernels.cu,
 *  launch()); named in build_info. */
#ifndef ANNEAL_PDL
#define ANNEAL_PDL 0
#endif
/** -DANNEAL_FP8_BACKWARD=1 or 2 (an experiment for tools/gpu/try-variants.sh, off by default): the
 *  linear layers' x-gradient GEMMs in float8 e4m3 as well, 2 with fast accumulation (anneal_ops.cpp,
 *  fp8_x_gradient); named in build_info. */
#ifndef ANNEAL_FP8_BACKWARD
#define ANNEAL_FP8_BACKWARD 0
#endif
#define ANNEAL_FP8 (ANNEAL_FP8_FORWARD || ANNEAL_FP8_BACKWARD)
#if ANNEAL_FP8
/** Multipliers a linear layer folds into its weight's rows (cast_weight in anneal_ops.cpp), folded here into
 *  their row-wise float8 scales instead: row r's scale times rows[r] * all (rows null: times all), computed
 *  in float32 in that order, as ATen computed s * (columns * scale) before. */
struct RowMultipliers {
  const float* rows = nullptr;
  float all = 1.f;
};
/** Row-wise float8 e4m3 (ANNEAL_FP8_FORWARD): q [rows, cols] (e4m3 bytes) and scale [rows] with
 *  x[i, :] ~ q[i, :] * scale[i], scale[i] = max_j |x[i, j]| / 448 (1 for a row of zeros; at least
 *  float32's smallest normal); x's rows `row_stride` elements apart, q's `cols`; the scales times
 *  `multipliers`. */
template <typename T>
void quantize_rows_e4m3(const T* x, int64_t rows, int64_t row_stride, int cols, uint8_t* q, float* scale,
                        cudaStream_t stream, RowMultipliers multipliers = {});
/** quantize_rows_e4m3 of silu(gate) * up, never written in T (gate's and up's rows gate_row and up_row
 *  elements apart). */
template <typename T>
void silu_mul_quantize_rows_e4m3(const T* gate, int64_t gate_row, const T* up, int64_t up_row, int64_t rows, int cols,
                                 uint8_t* q, float* scale, cudaStream_t stream);
/** Up to four column pieces of one [rows, ...] matrix, side by side in this order (the output gradients
 *  of a linear layer pair: Mamba's input projection in its pieces and q, k, v; the MLP's gate and up):
 *  piece p has cols[p] columns, its rows row[p] elements apart from x[p]. */
template <typename T>
struct RowPieces {
  static constexpr int kMax = 4;
  const T* x[kMax];
  int64_t row[kMax];
  int cols[kMax];
  int count;
};
/** quantize_rows_e4m3 of the pieces side by side, one scale a row over all of them: q [rows, width],
 *  width at least their columns' total, the columns after it zeros (a GEMM's K padded to a multiple
 *  of 16, float8's alignment). */
template <typename T>
void quantize_pieces_e4m3(const RowPieces<T>& pieces, int64_t rows, int width, uint8_t* q, float* scale,
                          cudaStream_t stream);
/** Up to four row blocks of float32 weights [rows[p], cols] (rows cols elements apart), stacked in this
 *  order: block p's row r stands for w[p][r, :] * factor[p][r] * scale[p] (factor null: 1), the
 *  multipliers a linear layer folds into its weight (cast_weight in anneal_ops.cpp). */
struct WeightBlocks {
  static constexpr int kMax = 4;
  const float* w[kMax];
  const float* factor[kMax];
  float scale[kMax];
  int rows[kMax];
  int count;
};
/** The stacked weights' transpose in row-wise float8: q [cols, width] and scale [cols] as
 *  quantize_rows_e4m3 makes them from the [cols, width] transpose (the stacked rows' total at most
 *  width, zeros after), without writing it: the columns' largest magnitudes over ranges of rows first
 *  (into `partial`, quantize_columns_scratch(cols) floats, unwritten before), then the transposed write. */
int quantize_columns_scratch(int cols);
void quantize_columns_e4m3(const WeightBlocks& blocks, int cols, int width, float* partial, uint8_t* q, float* scale,
                           cudaStream_t stream);
#endif

}  // namespace anneal
