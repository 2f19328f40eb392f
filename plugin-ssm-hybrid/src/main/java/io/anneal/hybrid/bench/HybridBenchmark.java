package io.anneal.hybrid.bench;

import ai.djl.Device;
import ai.djl.engine.Engine;
import ai.djl.ndarray.NDArray;
import ai.djl.ndarray.NDManager;
import ai.djl.ndarray.types.DataType;
import ai.djl.ndarray.types.Shape;
import ai.djl.training.GradientCollector;
import ai.djl.util.cuda.CudaUtils;
import io.anneal.api.model.ModelInput;
import io.anneal.api.model.ModelOptions;
import io.anneal.api.model.MupMultipliers;
import io.anneal.toolkit.autograd.DeviceScalars;
import io.anneal.toolkit.autograd.DifferentiableCasts;
import io.anneal.hybrid.model.FalconH1Checkpoints;
import io.anneal.hybrid.model.FalconH1Config;
import io.anneal.hybrid.model.FalconH1Model;
import java.io.IOException;
import java.lang.management.MemoryUsage;
import java.nio.file.Path;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Random;

/**
 * Forward + backward throughput of the Falcon-H1 benchmark model (issue 4 item 6: hidden 1024,
 * 12 layers, vocab 32768, intermediate 3072, 16 heads / 4 KV heads, Mamba2 d_ssm 2048 in 32 heads
 * of 64, d_state 128, 1 group, chunk 128; 2 x 2048 tokens) in float16 compute with float32 master
 * weights. Not a unit test: run it on the GPU machine as
 * {@code java -cp 'lib/*:plugins/ssm-hybrid/*' io.anneal.hybrid.bench.HybridBenchmark --out FILE}.
 *
 * <p>The loss is the mean token cross-entropy (float32 log-softmax of the logits), multiplied by a
 * static loss scale of 1024 for float16. Gradients accumulate across steps (nothing here zeroes or
 * applies them): the same kernels as an accumulating step, no optimizer. Timing covers whole steps
 * after {@code --warmup}, ending each with a host read of the loss (a device sync). Peak memory is
 * the device's used memory (cudaMemGetInfo) sampled after each backward, the maximum kept: it
 * includes PyTorch's cached blocks, so it is an upper bound on torch's max_memory_allocated.
 */
public final class HybridBenchmark {
    private HybridBenchmark() {
    }

    public static void main(String[] args) throws IOException {
        Map<String, String> options = new LinkedHashMap<>(Map.of("--steps", "10", "--warmup", "3", "--batch", "2",
                "--seq", "2048", "--dtype", "float16", "--model", "benchmark", "--out", "hybrid-bench.json"));
        for (int i = 0; i + 1 < args.length; i += 2) {
            if (!options.containsKey(args[i])) {
                // thrown, not System.exit: this class ships in the plugin jar, and a plugin jar that calls exit is refused
                throw new IllegalArgumentException("unknown option " + args[i] + "; options: " + options.keySet());
            }
            options.put(args[i], args[i + 1]);
        }
        Map<String, Object> result = run(options);
        Path out = Path.of(options.get("--out"));
        FalconH1Checkpoints.JSON.writeValue(out.toFile(), result);
        System.out.println(FalconH1Checkpoints.JSON.writeValueAsString(result));
    }

    /** Runs the benchmark; the result map is what main writes as JSON. */
    public static Map<String, Object> run(Map<String, String> options) {
        int steps = Integer.parseInt(options.get("--steps"));
        int warmup = Integer.parseInt(options.get("--warmup"));
        int batch = Integer.parseInt(options.get("--batch"));
        int seq = Integer.parseInt(options.get("--seq"));
        DataType compute = options.get("--dtype").equals("float16") ? DataType.FLOAT16 : DataType.FLOAT32;
        FalconH1Config config = options.get("--model").equals("tiny") ? tinyConfig() : benchmarkConfig();
        Device device = Engine.getInstance().getGpuCount() > 0 ? Device.gpu() : Device.cpu();
        long peak = 0;
        double seconds = 0;
        double forwardSeconds = 0;
        float lastLoss = Float.NaN;
        try (FalconH1Model model = FalconH1Checkpoints.initialize(config, new UnitMultipliers(),
                new ModelOptions(device, compute, 0)); NDManager root = NDManager.newBaseManager(device)) {
            Random random = new Random(0);
            long[] ids = new long[batch * (seq + 1)];
            for (int i = 0; i < ids.length; i++) {
                ids[i] = random.nextInt(config.vocabSize());
            }
            float lossScale = compute == DataType.FLOAT16 ? 1024f : 1f;
            for (int step = 0; step < warmup + steps; step++) {
                long start = System.nanoTime();
                try (NDManager m = root.newSubManager(); GradientCollector collector =
                        Engine.getInstance().newGradientCollector()) {
                    NDArray all = m.create(ids, new Shape(batch, seq + 1));
                    NDArray inputs = all.get(":, 0:" + seq);
                    NDArray targets = all.get(":, 1:").expandDims(-1);
                    NDArray logits = model.forward(m, ModelInput.unpacked(inputs), true);
                    NDArray logp = DifferentiableCasts.toFloat32(logits).logSoftmax(-1);
                    NDArray loss = logp.gather(targets, 2).mean().neg();
                    lastLoss = loss.getFloat(); // a device sync: the forward is done
                    if (step >= warmup) {
                        forwardSeconds += (System.nanoTime() - start) / 1e9;
                    }
                    collector.backward(loss.mul(DeviceScalars.of(m, lossScale)));
                    model.parameters().get(0).parameter().getArray().getGradient().getFloat(0, 0); // sync
                }
                long elapsed = System.nanoTime() - start;
                if (step >= warmup) {
                    seconds += elapsed / 1e9;
                }
                if (device.isGpu()) {
                    MemoryUsage usage = CudaUtils.getGpuMemory(device);
                    peak = Math.max(peak, usage.getUsed());
                }
                System.err.printf("step %d: %.3f s, loss %.4f%n", step, elapsed / 1e9, lastLoss);
            }
            Map<String, Object> r = new LinkedHashMap<>();
            r.put("implementation", "anneal-djl");
            r.put("device", device.toString());
            r.put("compute_dtype", compute.toString().toLowerCase());
            r.put("model", options.get("--model"));
            r.put("parameters", model.parameterCount());
            r.put("batch", batch);
            r.put("seq", seq);
            r.put("steps_timed", steps);
            r.put("fwd_bwd_seconds_per_step", seconds / steps);
            r.put("forward_seconds_per_step", forwardSeconds / steps);
            r.put("fwd_bwd_tokens_per_second", batch * (double) seq * steps / seconds);
            r.put("peak_device_memory_used_gib", device.isGpu() ? peak / (double) (1L << 30) : null);
            r.put("final_loss", lastLoss);
            return r;
        }
    }

    /** The benchmark model of issue 4 (the same as tools/bench/transformers_falcon_h1_step.py). */
    public static FalconH1Config benchmarkConfig() {
        Map<String, Object> json = new LinkedHashMap<>();
        json.put("vocab_size", 32768);
        json.put("hidden_size", 1024);
        json.put("intermediate_size", 3072);
        json.put("num_hidden_layers", 12);
        json.put("num_attention_heads", 16);
        json.put("num_key_value_heads", 4);
        json.put("head_dim", 64);
        json.put("mamba_d_ssm", 2048);
        json.put("mamba_n_heads", 32);
        json.put("mamba_d_head", 64);
        json.put("mamba_d_state", 128);
        json.put("mamba_n_groups", 1);
        json.put("mamba_chunk_size", 128);
        json.put("mamba_d_conv", 4);
        json.put("tie_word_embeddings", false);
        json.put("max_position_embeddings", 8192);
        return FalconH1Config.fromConfigJson(json, "benchmark config");
    }

    /** A small config for a CPU smoke run. */
    public static FalconH1Config tinyConfig() {
        Map<String, Object> json = new LinkedHashMap<>();
        json.put("vocab_size", 128);
        json.put("hidden_size", 32);
        json.put("intermediate_size", 64);
        json.put("num_hidden_layers", 2);
        json.put("num_attention_heads", 4);
        json.put("num_key_value_heads", 2);
        json.put("mamba_d_ssm", 32);
        json.put("mamba_n_heads", 4);
        json.put("mamba_d_state", 8);
        json.put("mamba_chunk_size", 16);
        return FalconH1Config.fromConfigJson(json, "tiny benchmark config");
    }

    /** transformers' FalconH1Config defaults: every multiplier 1 (the benchmark needs no plugin-mup). */
    private record UnitMultipliers() implements MupMultipliers {
        @Override
        public double embedding() {
            return 1;
        }

        @Override
        public double lmHead() {
            return 1;
        }

        @Override
        public double attentionIn() {
            return 1;
        }

        @Override
        public double attentionOut() {
            return 1;
        }

        @Override
        public double key() {
            return 1;
        }

        @Override
        public double ssmIn() {
            return 1;
        }

        @Override
        public double ssmOut() {
            return 1;
        }

        @Override
        public double[] ssmMultipliers() {
            return new double[] {1, 1, 1, 1, 1};
        }

        @Override
        public double[] mlpMultipliers() {
            return new double[] {1, 1};
        }

        @Override
        public Map<String, Object> asConfigJson() {
            return Map.of("embedding_multiplier", 1.0, "lm_head_multiplier", 1.0, "attention_in_multiplier", 1.0,
                    "attention_out_multiplier", 1.0, "key_multiplier", 1.0, "ssm_in_multiplier", 1.0,
                    "ssm_out_multiplier", 1.0, "ssm_multipliers", List.of(1.0, 1.0, 1.0, 1.0, 1.0),
                    "mlp_multipliers", List.of(1.0, 1.0));
        }
    }
}
