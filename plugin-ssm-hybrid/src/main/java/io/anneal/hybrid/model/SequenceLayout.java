package io.anneal.hybrid.model;

import ai.djl.ndarray.NDArray;
import ai.djl.ndarray.NDManager;
import ai.djl.ndarray.types.DataType;
import ai.djl.ndarray.types.Shape;
import io.anneal.api.InputException;
import io.anneal.toolkit.autograd.DeviceScalars;

/**
 * Everything a forward pass derives once from the token positions and document ids and then
 * shares across layers: the attention mask, RoPE angles, the conv masks and the masks of the
 * chunked scan. One boundary description (per-token document ids) reaches every layer, so packed
 * documents never see each other (DESIGN.md, "Packing respects documents in every layer").
 */
final class SequenceLayout {
    final int batch;
    final int length;
    final int chunk;
    final int chunks;
    final int padded;
    final boolean packed;
    private final NDManager manager;
    private final NDArray documentIds;
    private NDArray attentionAllowed;
    private NDArray attentionMask;
    private NDArray attentionMaskHalf;
    /** RoPE cos and sin [B, 1, T, headDim] (float32, transformers computes them in float32). */
    final NDArray cos;
    final NDArray sin;
    /** Per conv offset s = 1..K-1 a [B, T, 1] mask: 1 where token t-s is in t's document; null when unpacked. */
    final NDArray[] convMasks;
    /** The conv masks stacked as [K, B, T, 1] (offset 0 all zero); null when unpacked. */
    final NDArray convMaskStack;
    /** Intra-chunk decay mask [B or 1, c, 1, Q, Q]: 1 where j <= i (and same document). */
    final NDArray intraMask;
    /** Strictly lower-triangular [Q, Q] 0/1 mask used to build the stable segment sum. */
    final NDArray strictLower;
    /** [B, c, 1, Q]: token l is in the document of its chunk's last token (its state survives to the chunk end). */
    final NDArray toChunkEndMask;
    /** [B, c, 1, Q]: token i is in the document of the previous chunk's last token (it sees the carried state). */
    final NDArray fromChunkStartMask;
    /** [B, 1, c+1, c+1]: chunk-to-chunk state carry allowed (same document at both chunk ends). */
    final NDArray interChunkMask;
    /** Strictly lower-triangular [c+1, c+1] 0/1 mask for the inter-chunk segment sum. */
    final NDArray interStrictLower;
    final NDArray interLower;

    /**
     * The layout of the reference layers: document ids read back once, and the masks built on the
     * host; {@code inverseFrequencies} from {@link #inverseFrequencies}, made once per model.
     */
    SequenceLayout(NDManager manager, NDArray positionIds, NDArray documentIds, int batch, int length, int chunk,
            int convKernel, NDArray inverseFrequencies) {
        this(manager, positionIds, documentIds, batch, length, chunk, convKernel, inverseFrequencies, true);
    }

    /**
     * The layout of the fused path, built on the device alone (nothing read back, nothing copied
     * from Java arrays, so a CUDA graph can capture it): packed exactly when document ids are given
     * (the trainer leaves them out for rows of one document each, {@code LabelLogProbabilities.input}),
     * the RoPE angles from {@code inverseFrequencies} made once per model, and none of the host-built
     * masks of the reference layers, which the fused operators replace by the document ids.
     */
    static SequenceLayout onDevice(NDManager manager, NDArray positionIds, NDArray documentIds, int batch, int length,
            int chunk, NDArray inverseFrequencies) {
        return new SequenceLayout(manager, positionIds, documentIds, batch, length, chunk, 0, inverseFrequencies, false);
    }

    /** RoPE (Su et al. 2021; transformers' default rope): inv_freq_i = theta^(-2i/d), [1, 1, d/2] float32. */
    static NDArray inverseFrequencies(NDManager manager, int headDim, double ropeTheta) {
        float[] invFreq = new float[headDim / 2];
        for (int i = 0; i < invFreq.length; i++) {
            invFreq[i] = (float) (1.0 / Math.pow(ropeTheta, (2.0 * i) / headDim));
        }
        return manager.create(invFreq).reshape(1, 1, invFreq.length);
    }

    private SequenceLayout(NDManager manager, NDArray positionIds, NDArray documentIds, int batch, int length, int chunk,
            int convKernel, NDArray inverseFrequencies, boolean hostMasks) {
        this.batch = batch;
        this.length = length;
        this.chunk = chunk;
        this.chunks = (length + chunk - 1) / chunk;
        this.padded = chunks * chunk;
        long[] docs = documentIds == null || !hostMasks ? null : documentIds.toType(DataType.INT64, false).toLongArray();
        if (docs != null) {
            checkContiguous(docs, batch, length);
        }
        // Rows of one document each need no document masks: plain causal attention (the flash
        // kernel on the TorchScript path), one conv1d call, an unmasked scan.
        this.packed = hostMasks ? docs != null && !oneDocumentPerRow(docs, batch, length) : documentIds != null;
        this.manager = manager;
        this.documentIds = packed ? documentIds : null;

        // angles = position * inv_freq
        NDArray positions = positionIds == null
                ? manager.arange(0f, (float) length).reshape(1, length)
                : positionIds.toType(DataType.FLOAT32, false);
        NDArray freqs = positions.expandDims(-1).mul(inverseFrequencies);
        NDArray emb = freqs.concat(freqs, -1).expandDims(1);
        cos = emb.cos();
        sin = emb.sin();
        if (!hostMasks) {
            convMasks = null;
            convMaskStack = null;
            strictLower = null;
            interStrictLower = null;
            interLower = null;
            intraMask = null;
            toChunkEndMask = null;
            fromChunkStartMask = null;
            interChunkMask = null;
            return;
        }

        if (packed) {
            int plane = batch * length;
            float[] m = new float[convKernel * plane];
            for (int s = 1; s < convKernel; s++) {
                for (int b = 0; b < batch; b++) {
                    for (int t = s; t < length; t++) {
                        m[s * plane + b * length + t] = docs[b * length + t] == docs[b * length + t - s] ? 1f : 0f;
                    }
                }
            }
            convMaskStack = manager.create(m, new Shape(convKernel, batch, length, 1));
            convMasks = new NDArray[convKernel];
            for (int s = 1; s < convKernel; s++) {
                convMasks[s] = convMaskStack.get(s);
            }
        } else {
            convMasks = null;
            convMaskStack = null;
        }

        strictLower = lowerMask(manager, chunk, -1);
        interStrictLower = lowerMask(manager, chunks + 1, -1);
        interLower = lowerMask(manager, chunks + 1, 0);
        if (!packed) {
            intraMask = lowerMask(manager, chunk, 0).reshape(1, 1, 1, chunk, chunk);
            toChunkEndMask = null;
            fromChunkStartMask = null;
            interChunkMask = null;
            return;
        }
        // Padded positions belong to the row's last document; their inputs are zero, so they add nothing.
        long[] pdocs = new long[batch * padded];
        for (int b = 0; b < batch; b++) {
            for (int t = 0; t < padded; t++) {
                pdocs[b * padded + t] = docs[b * length + Math.min(t, length - 1)];
            }
        }
        float[] intra = new float[batch * chunks * chunk * chunk];
        float[] toEnd = new float[batch * chunks * chunk];
        float[] fromStart = new float[batch * chunks * chunk];
        float[] inter = new float[batch * (chunks + 1) * (chunks + 1)];
        for (int b = 0; b < batch; b++) {
            long[] endDoc = new long[chunks + 1]; // endDoc[k] = document at the end of chunk k-1 (k >= 1)
            endDoc[0] = pdocs[b * padded];
            for (int c = 0; c < chunks; c++) {
                int base = b * padded + c * chunk;
                long last = pdocs[base + chunk - 1];
                endDoc[c + 1] = last;
                long previous = endDoc[c];
                for (int i = 0; i < chunk; i++) {
                    int row = (b * chunks + c) * chunk + i;
                    toEnd[row] = pdocs[base + i] == last ? 1f : 0f;
                    fromStart[row] = c > 0 && pdocs[base + i] == previous ? 1f : 0f;
                    for (int j = 0; j <= i; j++) {
                        intra[row * chunk + j] = pdocs[base + i] == pdocs[base + j] ? 1f : 0f;
                    }
                }
            }
            for (int i = 0; i <= chunks; i++) {
                for (int j = 0; j <= i; j++) {
                    inter[(b * (chunks + 1) + i) * (chunks + 1) + j] = endDoc[i] == endDoc[j] ? 1f : 0f;
                }
            }
        }
        intraMask = manager.create(intra, new Shape(batch, chunks, 1, chunk, chunk));
        toChunkEndMask = manager.create(toEnd, new Shape(batch, chunks, 1, chunk));
        fromChunkStartMask = manager.create(fromStart, new Shape(batch, chunks, 1, chunk));
        interChunkMask = manager.create(inter, new Shape(batch, 1, chunks + 1, chunks + 1));
    }

    /**
     * Boolean attention mask [B or 1, 1, T, T]: true where allowed (causal, and same document when
     * packed). Built on first use and on the device: T x T grows fast (a host loop at 16K tokens
     * would touch 268M entries per row), and unpacked rows on the TorchScript path never need it.
     */
    /** The per-token document ids [B, T] of packed rows (the fused operators' seq_idx); null when unpacked. */
    NDArray documentIds() {
        return documentIds;
    }

    NDArray attentionAllowed() {
        if (attentionAllowed == null) {
            NDArray index = manager.arange(0, length, 1, DataType.INT64);
            NDArray allowed = index.reshape(length, 1).gte(index.reshape(1, length)).reshape(1, 1, length, length);
            if (packed) {
                NDArray documents = documentIds.toType(DataType.INT64, false);
                if (documents != documentIds) { // a cast made a new array: it lives for this pass only
                    documents.attach(manager);
                }
                allowed = allowed.logicalAnd(documents.expandDims(2).eq(documents.expandDims(1)).expandDims(1));
            }
            attentionAllowed = allowed;
        }
        return attentionAllowed;
    }

    /** Additive float32 mask [B or 1, 1, T, T]: 0 where allowed, float32 min elsewhere (transformers' finfo.min mask). */
    NDArray attentionMask() {
        if (attentionMask == null) {
            attentionMask = attentionAllowed().toType(DataType.FLOAT32, false).sub(1f).mul(DeviceScalars.of(manager, Float.MAX_VALUE));
        }
        return attentionMask;
    }

    /** The same mask in float16 (0, or float16's minimum -65504), for float16 attention. */
    NDArray attentionMaskHalf() {
        if (attentionMaskHalf == null) {
            attentionMaskHalf = attentionAllowed().toType(DataType.FLOAT16, false).sub(1f).mul(DeviceScalars.of(manager, 65504));
        }
        return attentionMaskHalf;
    }

    /** A [n, n] 0/1 float mask of j <= i + diagonal. */
    static NDArray lowerMask(NDManager manager, int n, int diagonal) {
        float[] m = new float[n * n];
        for (int i = 0; i < n; i++) {
            for (int j = 0; j <= Math.min(n - 1, i + diagonal); j++) {
                m[i * n + j] = 1f;
            }
        }
        return manager.create(m, new Shape(n, n));
    }

    private static boolean oneDocumentPerRow(long[] docs, int batch, int length) {
        for (int b = 0; b < batch; b++) {
            for (int t = 1; t < length; t++) {
                if (docs[b * length + t] != docs[b * length]) {
                    return false;
                }
            }
        }
        return true;
    }

    /** Document ids must form contiguous runs per row (a packer's output); a document never resumes later. */
    private static void checkContiguous(long[] docs, int batch, int length) {
        for (int b = 0; b < batch; b++) {
            java.util.Set<Long> closed = new java.util.HashSet<>();
            for (int t = 1; t < length; t++) {
                long prev = docs[b * length + t - 1];
                long cur = docs[b * length + t];
                if (cur != prev) {
                    closed.add(prev);
                    if (closed.contains(cur)) {
                        throw new InputException("documentIds row " + b + ": document " + cur + " resumes at position " + t
                                + " after another document; packed documents must be contiguous runs");
                    }
                }
            }
        }
    }
}
