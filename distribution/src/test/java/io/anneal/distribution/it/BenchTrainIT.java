package io.anneal.distribution.it;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import io.anneal.distribution.it.Distribution.Result;
import java.nio.file.Files;
import java.nio.file.Path;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * {@code anneal bench-train} through the assembled {@code bin/anneal} on the CPU (the GPU tables come
 * from the same command on the GPU machine, {@code tools/gpu/benchmarks.sh}): the tiny model's full
 * training steps are timed, and the result file's figures are checked against the model's size
 * counted by hand and the 6N FLOP rule (Kaplan et al. 2020: about 6 FLOPs per parameter per token
 * for forward and backward); asking for CUDA graphs where there are none, or for no rows, is exit 2.
 */
class BenchTrainIT {
    @TempDir
    static Path tmp;
    static Distribution dist;

    @BeforeAll
    static void assembled() {
        dist = Distribution.assembled();
    }

    /** examples/tiny-sft.conf's model (Falcon-H1, untied embeddings, no Mamba RMSNorm), counted by hand. */
    static long tinyModelParameters() {
        int vocab = 640, hidden = 128, layers = 2, intermediate = 384, heads = 4, kvHeads = 2, headDim = hidden / heads;
        int dSsm = 256, mambaHeads = 8, state = 16, groups = 1, convKernel = 4;
        int convDim = dSsm + 2 * groups * state;
        long norms = 2L * hidden;
        long attention = (long) hidden * heads * headDim * 2 + (long) hidden * kvHeads * headDim * 2;
        long mlp = 3L * hidden * intermediate;
        long mamba = (long) (dSsm + convDim + mambaHeads) * hidden        // in_proj: gate, x B C, dt
                + (long) convDim * convKernel + convDim                    // conv1d weight and bias
                + 3L * mambaHeads                                          // dt_bias, A_log, D
                + (long) hidden * dSsm;                                    // out_proj
        return layers * (norms + attention + mlp + mamba) + 2L * vocab * hidden + hidden;
    }

    @Test
    void timesTheTinyModelsStepsAndWritesFiguresThatAddUp() throws Exception {
        Path out = tmp.resolve("bench.json");
        Result r = dist.run("bench-train", "examples/tiny-sft.conf", "--rows", "2", "--sequence-length", "64", "--warmup", "1",
                "--steps", "2", "--matmul-size", "128", "--precision", "float32", "--out", out.toString());
        assertEquals(0, r.exit(), r.out());
        assertTrue(r.out().contains("bench-train: device cpu(), float32, micro-batch 2 x 64 (1 document(s) per row), "
                + "1 micro-batch(es) per step, 1 warm-up + 2 timed steps"), r.out());
        assertTrue(r.out().contains("bench-train: cuda graphs: off (the device is cpu(), not a GPU)"), r.out());
        assertTrue(r.out().contains("peak memory not measured (no nvidia-smi); written to " + out), r.out());

        JsonNode j = new ObjectMapper().readTree(out.toFile());
        assertEquals(tinyModelParameters(), j.get("parameters").asLong());
        assertEquals(767_472, tinyModelParameters());
        assertEquals(128, j.get("tokens_per_step").asLong());
        assertEquals(2, j.get("timed_steps").asInt());
        assertEquals("float32", j.get("precision").asText());
        double tokensPerSecond = j.get("tokens_per_second").asDouble();
        assertTrue(tokensPerSecond > 0 && Double.isFinite(j.get("last_loss").asDouble()), j.toString());
        assertEquals(128 / j.get("seconds_per_step").asDouble(), tokensPerSecond, 1e-9 * tokensPerSecond);
        assertEquals(6.0 * tinyModelParameters() * tokensPerSecond / 1e12, j.get("model_tflops").asDouble(),
                1e-9 * j.get("model_tflops").asDouble());
        assertEquals(j.get("model_tflops").asDouble() / j.get("float16_matmul_tflops").asDouble(),
                j.get("fraction_of_matmul").asDouble(), 1e-12);
        assertEquals(-1, j.get("peak_memory_mib").asLong());
    }

    /**
     * Only the model and optimizer blocks are read: with the data plugin removed (as in the GPU
     * benchmark kit), examples/tiny-sft.conf, whose data type no installed plugin then provides, is
     * timed as it is; a bad model block is still refused with its file, line and path.
     */
    @Test
    void readsOnlyTheModelAndOptimizer() throws Exception {
        Distribution noData = Distribution.copyOfAssembled(tmp.resolve("no-data"));
        Distribution.deleteTree(noData.resolve("plugins/datamix"));
        Path out = tmp.resolve("no-data.json");
        Result r = noData.run("bench-train", "examples/tiny-sft.conf", "--rows", "1", "--sequence-length", "32",
                "--warmup", "1", "--steps", "1", "--matmul-size", "64", "--precision", "float32", "--out", out.toString());
        assertEquals(0, r.exit(), r.out());
        assertEquals(tinyModelParameters(), new ObjectMapper().readTree(out.toFile()).get("parameters").asLong());

        Path bad = tmp.resolve("bad-model.conf");
        Files.writeString(bad, "include file(\"" + noData.resolve("examples/tiny-sft.conf") + "\")\nmodel.hidden-size = wide\n");
        Result refused = noData.run("bench-train", bad.toString(), "--rows", "1", "--out", tmp.resolve("bad.json").toString());
        assertEquals(2, refused.exit(), refused.out());
        assertTrue(refused.out().contains(bad + ":2") && refused.out().contains("model.hidden-size"), refused.out());
        assertFalse(Files.exists(tmp.resolve("bad.json")), "no result file for a refused benchmark");
    }

    /** The fused path's settings, set where the reference path runs (the CPU), are named as changing nothing. */
    @Test
    void fusedPathSettingsOnTheCpuAreSaidToChangeNothing() throws Exception {
        Path conf = tmp.resolve("branch.conf");
        Files.writeString(conf, "include file(\"" + dist.resolve("examples/tiny-sft.conf") + "\")\n"
                + "model.branch-stream = attention\nmodel.ssd-recompute = false\nmodel.keep-weight-casts = true\n");
        Path out = tmp.resolve("branch.json");
        Result r = dist.run("bench-train", conf.toString(), "--rows", "1", "--sequence-length", "32", "--warmup", "1",
                "--steps", "1", "--matmul-size", "64", "--precision", "float32", "--out", out.toString());
        assertEquals(0, r.exit(), r.out());
        assertTrue(r.out().contains("kernels: reference (the fused operators are CUDA kernels and the model is on the cpu()); "
                + "model.ssd-recompute = false, model.branch-stream = attention and model.keep-weight-casts = true"
                + " change nothing here (fused path only)"), r.out());
    }

    @Test
    void cudaGraphsOnWithoutAGpuAndNoRowsAreBadInput() throws Exception {
        Path out = tmp.resolve("refused.json");
        Result graphs = dist.run("bench-train", "examples/tiny-sft.conf", "--rows", "1", "--sequence-length", "32", "--warmup", "1",
                "--steps", "1", "--matmul-size", "64", "--cuda-graphs", "on", "--out", out.toString());
        assertEquals(2, graphs.exit(), graphs.out());
        assertTrue(graphs.out().contains("anneal bench-train: --cuda-graphs on, but cuda graphs: off (the device is cpu(), "
                + "not a GPU); use --cuda-graphs auto or off to time the eager step"), graphs.out());
        assertFalse(Files.exists(out), "no result file for a refused benchmark");
        Result rows = dist.run("bench-train", "examples/tiny-sft.conf", "--rows", "0", "--out", out.toString());
        assertEquals(2, rows.exit(), rows.out());
        assertTrue(rows.out().contains("anneal bench-train: --rows: expected a positive integer, found '0'"), rows.out());
    }
}
