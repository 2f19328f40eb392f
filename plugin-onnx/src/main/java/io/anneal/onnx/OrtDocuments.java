package io.anneal.onnx;

import io.anneal.api.data.PackedBatch;

/**
 * The documents of a packed batch run through the prefill graph one at a time. The exported graphs
 * take token ids only, with no document ids: they cannot keep the documents of a packed row apart
 * (anneal-onnx.json says {@code "packed_rows": false}), so each document (a run of one document id
 * in a row) is its own row of one sequence, starting at position 0, which is what packing gives it.
 */
final class OrtDocuments {
    private OrtDocuments() {
    }

    /** Receives one document's logits, [end - start, vocab] row-major, for positions start..end-1 of row {@code row}. */
    @FunctionalInterface
    interface DocumentLogits {
        void accept(int row, int start, int end, float[] logits);
    }

    /**
     * Runs every document of {@code batch} that has a supervised label, alone. With
     * {@code fromFirstToken}, a document that does not start at position 0 (the continuation of one
     * split across rows, whose beginning the graph never sees here) is refused, saying so.
     */
    static void forEachSupervisedDocument(OrtModel model, PackedBatch batch, boolean fromFirstToken, DocumentLogits visitor) {
        for (int r = 0; r < batch.rows(); r++) {
            int base = r * batch.length();
            int start = 0;
            while (start < batch.length()) {
                int end = start + 1;
                while (end < batch.length() && batch.documentIds()[base + end] == batch.documentIds()[base + start]) {
                    end++;
                }
                boolean supervised = false;
                for (int i = start; i < end; i++) {
                    supervised |= batch.labels()[base + i] != PackedBatch.IGNORE;
                }
                if (supervised) {
                    if (fromFirstToken && batch.positionIds()[base + start] != 0) {
                        throw new IllegalArgumentException("row " + r + ", document " + batch.documentIds()[base + start]
                                + ": it starts at position " + batch.positionIds()[base + start] + ", not 0 (it continues a "
                                + "document of an earlier row); ONNX Runtime scores each document from its first token, "
                                + "the exported graphs take no packed rows or positions");
                    }
                    long[] ids = new long[end - start];
                    for (int i = start; i < end; i++) {
                        ids[i - start] = batch.inputIds()[base + i];
                    }
                    try (OrtModel.Step step = model.prefill(new long[][] {ids})) {
                        visitor.accept(r, start, end, step.logits);
                    }
                }
                start = end;
            }
        }
    }

    /** log softmax(logits[at .. at+vocab))[label], in float64 (max-shifted). */
    static double logProbability(float[] logits, int at, int vocab, int label) {
        double max = Double.NEGATIVE_INFINITY;
        for (int v = 0; v < vocab; v++) {
            max = Math.max(max, logits[at + v]);
        }
        double sum = 0;
        for (int v = 0; v < vocab; v++) {
            sum += Math.exp(logits[at + v] - max);
        }
        return logits[at + label] - max - Math.log(sum);
    }
}
