package io.anneal.runtime.train.bench;

import ai.djl.Device;
import ai.djl.engine.Engine;
import ai.djl.ndarray.NDArray;
import ai.djl.ndarray.NDManager;
import ai.djl.ndarray.types.DataType;
import ai.djl.ndarray.types.Shape;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.SerializationFeature;
import com.fasterxml.jackson.databind.node.ObjectNode;
import io.anneal.api.InputException;
import io.anneal.api.cli.CliCommand;
import io.anneal.toolkit.cli.CommandArguments;
import io.anneal.api.cli.CommandContext;
import io.anneal.api.config.ConfigView;
import io.anneal.api.data.PackedBatch;
import io.anneal.api.model.CausalLanguageModel;
import io.anneal.api.model.ModelArchitecture;
import io.anneal.api.model.ModelOptions;
import io.anneal.api.model.StepGraphs;
import io.anneal.api.model.StepGraphs.DeviceMemory;
import io.anneal.api.optim.OptimizerFactory;
import io.anneal.api.optim.ParameterOptimizer;
import io.anneal.api.optim.StepResult;
import io.anneal.toolkit.device.DeviceChoice;
import io.anneal.runtime.train.SftObjective;
import io.anneal.runtime.train.DynamicLossScale;
import io.anneal.runtime.train.TrainStep;

import java.io.BufferedReader;
import java.io.InputStreamReader;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.Optional;
import java.util.SplittableRandom;
import java.util.concurrent.atomic.AtomicLong;

/**
 * {@code anneal bench-train PIPELINE.conf --out RESULT.json}: full training steps (forward, backward,
 * optimizer) of the pipeline's {@code model} with its {@code optimizer} (top level, or the first
 * stage's), through the same {@link TrainStep} the sft stage uses, on micro-batches of 4096 tokens in
 * float16 mixed precision. It prints tokens/s, model TFLOP/s (6 x parameters x tokens/s, the usual
 * dense-transformer estimate of forward plus backward), the float16 8192^3 matmul rate measured in
 * the same process through DJL, the fraction of it reached, and the peak device memory sampled from
 * {@code nvidia-smi --query-gpu=memory.used} while the steps run, not while the matmul rate is
 * measured. Where the model's step graphs can read the CUDA caching allocator's statistics (DJL
 * exposes none; {@link StepGraphs#memory}), it also prints and writes those: the allocated and
 * reserved peaks, as PyTorch's max_memory_allocated and max_memory_reserved give them.
 *
 * <p>Only the model and optimizer blocks are read, each checked as it is built: the steps run on
 * random tokens, so the pipeline's data (its plugins, tokenizer and files) need not be present, as
 * on a GPU machine given only the model's plugin (issue 12: the benchmark kit and the peer's in
 * one transfer).
 */
public final class TrainStepBenchmark implements CliCommand {
    private static final String USAGE = "usage: anneal bench-train PIPELINE.conf --out RESULT.json [--rows 1] "
            + "[--sequence-length 4096] [--micro-batches 1] [--documents-per-row 1] [--warmup 3] [--steps 10] "
            + "[--precision float16|float32] [--matmul-size 8192] [--cuda-graphs auto|on|off] [--profile TRACE.json]";

    @Override
    public String name() {
        return "bench-train";
    }

    @Override
    public String summary() {
        return "time full training steps of a pipeline's model on the GPU (tokens/s, TFLOP/s, fraction of the float16 matmul rate)";
    }

    @Override
    public int run(List<String> args, CommandContext context) throws Exception {
        CommandArguments a = CommandArguments.parse("anneal bench-train", USAGE, args, "out", "rows", "sequence-length",
                "micro-batches", "documents-per-row", "warmup", "steps", "precision", "matmul-size", "cuda-graphs", "profile");
        if (a.help()) {
            context.out().println(USAGE);
            return 0;
        }
        Path config = context.workingDirectory().resolve(a.onePositional("the pipeline file (PIPELINE.conf)"));
        Path out = context.workingDirectory().resolve(a.required("out"));
        int rows = a.positiveInt("rows", 1);
        int sequenceLength = a.positiveInt("sequence-length", 4096);
        int microBatches = a.positiveInt("micro-batches", 1);
        int documentsPerRow = a.positiveInt("documents-per-row", 1);
        int warmup = a.positiveInt("warmup", 3);
        int steps = a.positiveInt("steps", 10);
        int matmulSize = a.positiveInt("matmul-size", 8192);
        DataType precision = a.choice("precision", "float16", "float16", "float32").equals("float16")
                ? DataType.FLOAT16 : DataType.FLOAT32;
        // auto: replay when the model and optimizer can; on: a benchmark of the replayed step or none
        String cudaGraphs = a.choice("cuda-graphs", "auto", "auto", "on", "off");
        Path profile = a.value("profile").map(context.workingDirectory()::resolve).orElse(null);
        ConfigView root = context.readConfig(config);   // the model and optimizer only (see above)
        ModelArchitecture architecture = context.extensions().build(ModelArchitecture.class, root.getConfig("model"));
        ConfigView optimizerBlock = root.has("optimizer") ? root.getConfig("optimizer")
                : root.getConfigList("stages").get(0).getConfig("optimizer");
        OptimizerFactory optimizerFactory = context.extensions().build(OptimizerFactory.class, optimizerBlock);
        DeviceChoice choice = DeviceChoice.choose("auto", "the device");
        context.out().println(choice.line());
        Device device = choice.device();
        context.out().println("bench-train: device " + device + ", " + precision + ", micro-batch " + rows + " x "
                + sequenceLength + " (" + documentsPerRow + " document(s) per row), " + microBatches + " micro-batch(es) per step, " + warmup + " warm-up + " + steps + " timed steps");

        MemorySampler memory = new MemorySampler();
        memory.start();
        ObjectNode result = new ObjectMapper().createObjectNode();
        try (CausalLanguageModel model = architecture.initialize(new ModelOptions(device, precision, 1234));
             ParameterOptimizer optimizer = optimizerFactory.bind(model.parameters());
             TrainStep step = new TrainStep(model, optimizer, device, "--rows (now " + rows + ")",
                     new SftObjective(), !cudaGraphs.equals("off"))) {
            context.out().println("bench-train: " + step.graphsLine());
            if (cudaGraphs.equals("on") && !step.replaysAsGraphs()) {
                throw new InputException("anneal bench-train: --cuda-graphs on, but " + step.graphsLine()
                        + "; use --cuda-graphs auto or off to time the eager step");
            }
            // the allocator's own figures where the model's graphs can read them: after setup (the
            // model and the optimizer's state), then the peaks of the warm-up (eager steps and the
            // captures) and of the timed steps, each phase's peaks started afresh
            Optional<StepGraphs> graphs = device.isGpu() ? model.stepGraphs() : Optional.empty();
            Optional<DeviceMemory> afterSetup = graphs.flatMap(g -> g.memory(true));
            long parameters = model.parameterCount();
            List<PackedBatch> batches = randomBatches(microBatches, rows, sequenceLength, documentsPerRow, model.vocabSize());
            long tokensPerStep = (long) microBatches * rows * sequenceLength;
            DynamicLossScale lossScale = DynamicLossScale.constant(precision == DataType.FLOAT16 ? 1024 : 1);
            double lastLoss = Double.NaN;
            for (int i = 0; i < warmup; i++) {
                lastLoss = begin(step, batches, lossScale).take().loss();
            }
            Optional<DeviceMemory> warmUp = graphs.flatMap(g -> g.memory(true));
            // as the trainer runs them: a replayed step's numbers are taken after the next step is enqueued
            long start = System.nanoTime();
            int skipped = 0;
            int replayed = 0;
            long gradientNanos = 0;
            Begun previous = null;
            for (int i = 0; i <= steps; i++) {
                Begun current = i < steps ? begin(step, batches, lossScale) : null;
                if (previous != null) {
                    StepOutcome o = previous.take();
                    lastLoss = o.loss();
                    skipped += o.skipped() ? 1 : 0;
                    replayed += o.replayed() ? 1 : 0;
                    gradientNanos += o.gradientNanos();
                }
                previous = current;
            }
            double seconds = (System.nanoTime() - start) / 1e9; // the last step's read-back waits for the device
            if (replayed == steps) { // one replayed step: forward, backward and optimizer are not told apart
                gradientNanos = (long) (seconds * 1e9);
            }
            Optional<DeviceMemory> timed = graphs.flatMap(g -> g.memory(false));
            if (profile != null) {
                profileSteps(step, batches, lossScale, profile, context);
            }
            // the peak is the steps': the matmul probe below holds about 0.9 GiB of its own (float32
            // and float16 8192^2 operands, a product) on top of the step's, and the peer's figures
            // are read before its own probe too (tools/bench/transformers_falcon_h1_step.py)
            memory.stop();
            double tokensPerSecond = tokensPerStep * steps / seconds;
            double modelTflops = 6.0 * parameters * tokensPerSecond / 1e12;
            double matmulTflops = matmulRate(device, matmulSize);
            result.put("device", device.toString());
            result.put("precision", precision.toString());
            result.put("parameters", parameters);
            result.put("micro_batch_rows", rows);
            result.put("sequence_length", sequenceLength);
            result.put("tokens_per_step", tokensPerStep);
            result.put("timed_steps", steps);
            result.put("skipped_steps", skipped);
            result.put("documents_per_row", documentsPerRow);
            result.put("seconds_per_step", seconds / steps);
            // forward+backward ends with the loss read-back, the optimizer step with its gradient-norm read-back
            result.put("seconds_forward_backward_per_step", gradientNanos / 1e9 / steps);
            result.put("seconds_optimizer_per_step", seconds / steps - gradientNanos / 1e9 / steps);
            result.put("tokens_per_second", tokensPerSecond);
            result.put("model_tflops", modelTflops);
            result.put("float16_matmul_tflops", matmulTflops);
            result.put("matmul_size", matmulSize);
            result.put("fraction_of_matmul", modelTflops / matmulTflops);
            result.put("last_loss", lastLoss);
            result.put("cuda_graphs", step.graphsLine());
            if (afterSetup.isPresent() && warmUp.isPresent() && timed.isPresent()) {
                allocatorFigures(result, afterSetup.get(), warmUp.get(), timed.get());
                context.out().println("bench-train: " + allocatorLine(afterSetup.get(), warmUp.get(), timed.get()));
            }
        } finally {
            memory.stop();
        }
        result.put("peak_memory_mib", memory.peakMib());
        result.put("peak_memory_source", memory.peakMib() < 0 ? "nvidia-smi unavailable"
                : "nvidia-smi memory.used, sampled every 100 ms while the steps ran (not during the matmul-rate probe)");
        String json = new ObjectMapper().enable(SerializationFeature.INDENT_OUTPUT).writeValueAsString(result);
        Files.writeString(out, json);
        context.out().printf(Locale.ROOT, "bench-train: %.0f tokens/s, model %.1f TFLOP/s = %.1f%% of the float16 matmul rate "
                        + "(%.1f TFLOP/s), peak memory %s; written to %s%n",
                result.get("tokens_per_second").asDouble(), result.get("model_tflops").asDouble(),
                100 * result.get("fraction_of_matmul").asDouble(), result.get("float16_matmul_tflops").asDouble(),
                memory.peakMib() < 0 ? "not measured (no nvidia-smi)" : memory.peakMib() + " MiB", out);
        return 0;
    }

    private static long mib(long bytes) {
        return Math.round(bytes / (1024.0 * 1024.0));
    }

    /**
     * The allocator's figures in MiB: peak_allocated_mib and peak_reserved_mib (over the warm-up and
     * the timed steps: a replay allocates nothing, so a graphed step's live arrays peak during its
     * capture, and its pool shows in reserved), comparable to PyTorch's max_memory_allocated and
     * max_memory_reserved; and each phase's figures under "allocator".
     */
    static void allocatorFigures(ObjectNode result, DeviceMemory setup, DeviceMemory warmUp, DeviceMemory timed) {
        result.put("peak_allocated_mib", mib(Math.max(warmUp.peakAllocated(), timed.peakAllocated())));
        result.put("peak_reserved_mib", mib(Math.max(warmUp.peakReserved(), timed.peakReserved())));
        ObjectNode phases = result.putObject("allocator");
        phases.put("source", "the CUDA caching allocator's statistics and cudaMemGetInfo, read through the model's "
                + "step graphs; each phase's peaks start at its beginning, setup's at the start of the process");
        ObjectNode s = phases.putObject("after_setup");
        s.put("allocated_mib", mib(setup.allocated()));
        s.put("reserved_mib", mib(setup.reserved()));
        s.put("peak_allocated_mib", mib(setup.peakAllocated()));
        s.put("peak_reserved_mib", mib(setup.peakReserved()));
        s.put("device_used_mib", mib(setup.deviceUsed()));
        for (Map.Entry<String, DeviceMemory> phase : List.of(Map.entry("warm_up_and_capture", warmUp),
                Map.entry("timed_steps", timed))) {
            ObjectNode p = phases.putObject(phase.getKey());
            p.put("peak_allocated_mib", mib(phase.getValue().peakAllocated()));
            p.put("peak_reserved_mib", mib(phase.getValue().peakReserved()));
            p.put("device_used_mib", mib(phase.getValue().deviceUsed()));
        }
    }

    static String allocatorLine(DeviceMemory setup, DeviceMemory warmUp, DeviceMemory timed) {
        return String.format(Locale.ROOT, "allocator: after setup %,d MiB allocated (the model and the optimizer's state), "
                        + "%,d reserved, %,d device used; warm-up and capture: peak %,d allocated, %,d reserved; "
                        + "timed steps: peak %,d reserved, %,d device used",
                mib(setup.allocated()), mib(setup.reserved()), mib(setup.deviceUsed()), mib(warmUp.peakAllocated()),
                mib(warmUp.peakReserved()), mib(timed.peakReserved()), mib(timed.deviceUsed()));
    }

    private record StepOutcome(double loss, boolean skipped, boolean replayed, long gradientNanos) {
    }

    /** A step begun: a replayed one still running on the device, or an eager one already done. */
    private record Begun(TrainStep.PendingStep pending, StepOutcome eager) {
        StepOutcome take() {
            if (eager != null) {
                return eager;
            }
            TrainStep.Outcome o = pending.outcome();
            return new StepOutcome(o.loss().loss(), o.result().skipped(), true, 0);
        }
    }

    private static Begun begin(TrainStep step, List<PackedBatch> batches, DynamicLossScale lossScale) {
        long start = System.nanoTime();
        Optional<TrainStep.PendingStep> replayed = step.replayStep(batches, 1e-5, lossScale, 1.0);
        if (replayed.isPresent()) {
            return new Begun(replayed.get(), null);
        }
        TrainStep.BatchLoss loss = step.accumulateGradients(batches, lossScale.scale());
        long gradients = System.nanoTime() - start;
        StepResult r = step.applyGradients(1e-5, lossScale.scale(), 1.0);
        return new Begun(null, new StepOutcome(loss.loss(), r.skipped(), false, gradients));
    }

    /**
     * Two more steps under libtorch's profiler, written as a Chrome trace (chrome://tracing,
     * Perfetto). The profiler is the PyTorch engine's own, reached reflectively because the runtime
     * names no engine class; with another engine the option says so and the benchmark goes on.
     */
    private static void profileSteps(TrainStep step, List<PackedBatch> batches, DynamicLossScale lossScale, Path trace,
            CommandContext context) {
        try {
            Class<?> jni = Class.forName("ai.djl.pytorch.jni.JniUtils");
            jni.getMethod("startProfile", boolean.class, boolean.class, boolean.class).invoke(null, true, true, false);
            try {
                for (int i = 0; i < 2; i++) {
                    begin(step, batches, lossScale).take();
                }
            } finally {
                jni.getMethod("stopProfile", String.class).invoke(null, trace.toString());
            }
            context.out().println("bench-train: profile of 2 steps written to " + trace);
        } catch (ReflectiveOperationException | RuntimeException e) {
            context.out().println("bench-train: --profile needs DJL's PyTorch engine (" + e + "); no trace written");
        }
    }

    /**
     * Random tokens, every position supervised with the next token; each row split into
     * {@code documentsPerRow} documents of (nearly) equal length with positions restarting.
     */
    static List<PackedBatch> randomBatches(int count, int rows, int length, int documentsPerRow, int vocab) {
        SplittableRandom random = new SplittableRandom(42);
        List<PackedBatch> batches = new ArrayList<>();
        for (int b = 0; b < count; b++) {
            int n = rows * length;
            int[] ids = new int[n];
            int[] labels = new int[n];
            int[] positions = new int[n];
            int[] documents = new int[n];
            int documentLength = Math.max(1, length / documentsPerRow);
            for (int i = 0; i < n; i++) {
                ids[i] = random.nextInt(vocab);
                int column = i % length;
                int document = Math.min(column / documentLength, documentsPerRow - 1);
                documents[i] = document;
                positions[i] = column - document * documentLength;
            }
            for (int i = 0; i < n; i++) {
                labels[i] = (i + 1) % length == 0 ? PackedBatch.IGNORE : ids[i + 1];
            }
            batches.add(new PackedBatch(rows, length, ids, labels, positions, documents));
        }
        return batches;
    }

    /** float16 [n x n] x [n x n] through DJL (n = 8192 by default): 2 n^3 FLOP per product. */
    static double matmulRate(Device device, int n) {
        try (NDManager manager = NDManager.newBaseManager(device)) {
            Shape shape = new Shape(n, n);
            NDArray a;
            NDArray b;
            try (NDArray a32 = manager.randomNormal(shape); NDArray b32 = manager.randomNormal(shape)) {
                a = a32.toType(DataType.FLOAT16, false);
                b = b32.toType(DataType.FLOAT16, false);
            }
            int repeats = device.isGpu() ? 50 : 1;
            for (int i = 0; i < 3; i++) {
                try (NDArray c = a.matMul(b)) {
                    sync(c);
                }
            }
            long start = System.nanoTime();
            for (int i = 0; i < repeats; i++) {
                // the products queue on the device stream; closing a handle early is safe, the last one syncs
                try (NDArray c = a.matMul(b)) {
                    if (i == repeats - 1) {
                        sync(c);
                    }
                }
            }
            double seconds = (System.nanoTime() - start) / 1e9;
            return 2.0 * Math.pow(n, 3) * repeats / seconds / 1e12;
        }
    }

    private static void sync(NDArray c) {
        try (NDArray corner = c.get(0, 0); NDArray value = corner.toType(DataType.FLOAT32, false)) {
            value.getFloat();
        }
    }

    /** Peak of {@code nvidia-smi --query-gpu=memory.used} (MiB, first GPU), sampled on a daemon thread. */
    private static final class MemorySampler {
        private final AtomicLong peak = new AtomicLong(-1);
        private volatile boolean running = true;
        private Thread thread;

        void start() {
            thread = new Thread(() -> {
                while (running) {
                    long used = sample();
                    if (used < 0) {
                        return;
                    }
                    peak.accumulateAndGet(used, Math::max);
                    try {
                        Thread.sleep(100);
                    } catch (InterruptedException e) {
                        return;
                    }
                }
            }, "nvidia-smi-sampler");
            thread.setDaemon(true);
            thread.start();
        }

        private volatile long stoppedPeak = Long.MIN_VALUE;

        /**
         * Ends the sampling (a sample under way gets 2 s to finish) and freezes the peak: a sample that
         * lands later, or a second stop, changes nothing.
         */
        void stop() throws InterruptedException {
            if (stoppedPeak != Long.MIN_VALUE) {
                return;
            }
            running = false;
            thread.join(2000);
            stoppedPeak = peak.get();
        }

        long peakMib() {
            return stoppedPeak != Long.MIN_VALUE ? stoppedPeak : peak.get();
        }

        private static long sample() {
            try {
                Process p = new ProcessBuilder("nvidia-smi", "--query-gpu=memory.used", "--format=csv,noheader,nounits")
                        .redirectErrorStream(true).start();
                try (BufferedReader r = new BufferedReader(new InputStreamReader(p.getInputStream(), StandardCharsets.UTF_8))) {
                    String line = r.readLine();
                    p.waitFor();
                    return line == null ? -1 : Long.parseLong(line.trim());
                }
            } catch (Exception e) {
                return -1;
            }
        }
    }
}
