package io.anneal.hybrid.model;

import static org.junit.jupiter.api.Assertions.assertTrue;

import ai.djl.ndarray.NDArray;
import ai.djl.ndarray.NDManager;
import ai.djl.ndarray.types.Shape;
import java.util.Random;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;

/**
 * The chunked SSD scan against the plain recurrence it factorises (Dao & Gu 2024, eq. 1 of the
 * Mamba-2 paper): h_t = exp(dt_t A) h_{t-1} + dt_t B_t x_t, y_t = C_t . h_t, computed here in Java
 * doubles one token at a time, with h reset to 0 at every document start.
 */
class SsdScanTest {

    @ParameterizedTest(name = "T={0} chunk={1} groups={2} docs at {3}")
    @CsvSource({
        "16, 8, 1, ''",
        "21, 8, 2, ''",           // length not a multiple of the chunk
        "5, 8, 2, ''",            // shorter than one chunk
        "29, 8, 2, '3 8 16 17'",  // boundaries inside chunks, at a chunk start, and adjacent
        "24, 4, 4, '4 9 23'"})
    void chunkedScanMatchesSequentialRecurrence(int length, int chunk, int groups, String boundaries) {
        int batch = 2;
        int heads = 4;
        int headDim = 3;
        int state = 5;
        Random random = new Random(length * 31L + chunk);
        float[] x = gaussian(random, batch * length * heads * headDim, 1);
        float[] dt = new float[batch * length * heads];
        for (int i = 0; i < dt.length; i++) {
            dt[i] = 0.05f + random.nextFloat() * 0.5f;
        }
        float[] a = {-0.5f, -1f, -2f, -4f};
        float[] bm = gaussian(random, batch * length * groups * state, 1);
        float[] cm = gaussian(random, batch * length * groups * state, 1);
        long[] docs = new long[batch * length];
        boolean packed = !boundaries.isBlank();
        if (packed) {
            for (String s : boundaries.trim().split(" ")) {
                int at = Integer.parseInt(s);
                for (int b = 0; b < batch; b++) {
                    for (int t = at; t < length; t++) {
                        docs[b * length + t]++;
                    }
                }
            }
        }
        try (NDManager manager = NDManager.newBaseManager()) {
            NDArray docIds = packed ? manager.create(docs, new Shape(batch, length)) : null;
            SequenceLayout layout = new SequenceLayout(manager, null, docIds, batch, length, chunk, 4,
                    SequenceLayout.inverseFrequencies(manager, 2, 10000));
            NDArray y = SsdScan.scan(
                    manager.create(x, new Shape(batch, length, heads, headDim)),
                    manager.create(dt, new Shape(batch, length, heads)),
                    manager.create(a),
                    manager.create(bm, new Shape(batch, length, groups, state)),
                    manager.create(cm, new Shape(batch, length, groups, state)), layout);
            float[] actual = y.toFloatArray();
            double[] expected = sequential(x, dt, a, bm, cm, docs, batch, length, heads, headDim, groups, state);
            double maxDiff = 0;
            double maxRef = 0;
            for (int i = 0; i < expected.length; i++) {
                maxDiff = Math.max(maxDiff, Math.abs(actual[i] - expected[i]));
                maxRef = Math.max(maxRef, Math.abs(expected[i]));
            }
            assertTrue(maxDiff / maxRef < 1e-5, "max relative error " + maxDiff / maxRef);
        }
    }

    private static double[] sequential(float[] x, float[] dt, float[] a, float[] bm, float[] cm, long[] docs,
            int batch, int length, int heads, int headDim, int groups, int state) {
        double[] y = new double[batch * length * heads * headDim];
        int perGroup = heads / groups;
        for (int b = 0; b < batch; b++) {
            double[][][] h = new double[heads][headDim][state];
            for (int t = 0; t < length; t++) {
                boolean reset = t > 0 && docs[b * length + t] != docs[b * length + t - 1];
                for (int hd = 0; hd < heads; hd++) {
                    int g = hd / perGroup;
                    double step = dt[(b * length + t) * heads + hd];
                    double decay = reset ? 0 : Math.exp(step * a[hd]);
                    for (int p = 0; p < headDim; p++) {
                        double xv = x[((b * length + t) * heads + hd) * headDim + p];
                        double out = 0;
                        for (int n = 0; n < state; n++) {
                            int bi = ((b * length + t) * groups + g) * state + n;
                            h[hd][p][n] = decay * h[hd][p][n] + step * bm[bi] * xv;
                            out += cm[bi] * h[hd][p][n];
                        }
                        y[((b * length + t) * heads + hd) * headDim + p] = out;
                    }
                }
            }
        }
        return y;
    }

    static float[] gaussian(Random random, int n, double std) {
        float[] v = new float[n];
        for (int i = 0; i < n; i++) {
            v[i] = (float) (random.nextGaussian() * std);
        }
        return v;
    }
}
