package io.anneal.onnx;

import io.anneal.api.cli.CliCommand;
import io.anneal.toolkit.cli.CommandArguments;
import io.anneal.api.cli.CommandContext;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Instant;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.SplittableRandom;

/**
 * {@code anneal bench-onnx --checkpoint DIR --out R.json}: prefill and decode tokens/s of ONNX
 * Runtime on a seeded random prompt (batch 1, greedy, no stop token), the median of the repeats
 * after one warm-up, printed and written as JSON.
 */
final class BenchCommand implements CliCommand {
    static final String USAGE = "usage: anneal bench-onnx --checkpoint DIR --out R.json [--prompt-tokens N] [--new-tokens N]"
            + " [--repeats N] [--provider cpu|cuda] [--threads N]";

    @Override
    public String name() {
        return "bench-onnx";
    }

    @Override
    public String summary() {
        return "prefill and decode tokens/s of a checkpoint in ONNX Runtime (JSON report)";
    }

    @Override
    public int run(List<String> args, CommandContext context) throws IOException {
        CommandArguments a = CommandArguments.parse("anneal bench-onnx", USAGE, args, "checkpoint", "out", "prompt-tokens",
                "new-tokens", "repeats", "provider", "threads");
        if (a.help()) {
            context.out().println(USAGE);
            context.out().println("  --checkpoint DIR      a Falcon-H1 checkpoint folder or a folder written by anneal export onnx");
            context.out().println("  --out FILE            the JSON report");
            context.out().println("  --prompt-tokens N     prompt length (default 128)");
            context.out().println("  --new-tokens N        tokens decoded after it (default 64)");
            context.out().println("  --repeats N           timed runs after one warm-up; the median is reported (default 3)");
            return 0;
        }
        a.noPositionals();
        Path out = context.workingDirectory().resolve(a.required("out"));
        int promptTokens = a.positiveInt("prompt-tokens", 128);
        int newTokens = a.positiveInt("new-tokens", 64);
        int repeats = a.positiveInt("repeats", 3);
        OrtModel.Provider provider = OnnxInferenceEngine.provider(a.choice("provider", "cpu", "cpu", "cuda"), "--provider");
        int threads = a.has("threads") ? a.positiveInt("threads", 1) : 0;
        Path directory = context.workingDirectory().resolve(a.required("checkpoint"));
        try (OnnxInferenceEngine.Opened opened = OnnxInferenceEngine.openModel(context.extensions(), directory, provider,
                threads, context.out())) {
            OrtModel model = opened.model();
            FalconH1Spec spec = model.folder().spec();
            if (promptTokens + newTokens > spec.maxPositions()) {
                throw a.error("--prompt-tokens + --new-tokens (" + (promptTokens + newTokens)
                        + ") exceed the model's context, max_position_embeddings = " + spec.maxPositions());
            }
            SplittableRandom random = new SplittableRandom(0);
            long[] prompt = new long[promptTokens];
            for (int i = 0; i < prompt.length; i++) {
                prompt[i] = random.nextInt(spec.vocab());
            }
            Generator generator = new Generator(model);
            List<Double> prefill = new ArrayList<>();
            List<Double> decode = new ArrayList<>();
            for (int r = 0; r <= repeats; r++) {
                Generator.Output o = generator.generate(prompt, newTokens, Set.of(), Generator.Sampling.GREEDY, false, t -> { });
                if (r > 0) { // the first run warms up (allocations, kernels chosen)
                    prefill.add(o.prefillTokensPerSecond(promptTokens));
                    decode.add(o.decodeTokensPerSecond());
                }
            }
            double prefillMedian = median(prefill);
            double decodeMedian = median(decode);
            context.out().printf("prefill: %.1f tokens/s (%d-token prompt, batch 1)%n", prefillMedian, promptTokens);
            context.out().printf("decode:  %.1f tokens/s (%d tokens, batch 1, caches carried)%n", decodeMedian, newTokens);
            Map<String, Object> json = new LinkedHashMap<>();
            json.put("time", Instant.now().toString());
            json.put("checkpoint", directory.toAbsolutePath().toString());
            json.put("engine", "onnxruntime " + ai.onnxruntime.OrtEnvironment.getEnvironment().getVersion());
            json.put("provider", provider.name().toLowerCase());
            json.put("threads", threads == 0 ? "default" : threads);
            json.put("available_processors", Runtime.getRuntime().availableProcessors());
            json.put("model", Map.of("layers", spec.layers(), "hidden_size", spec.hidden(), "vocab_size", spec.vocab()));
            json.put("prompt_tokens", promptTokens);
            json.put("new_tokens", newTokens);
            json.put("repeats", repeats);
            json.put("prefill_tokens_per_second", prefillMedian);
            json.put("decode_tokens_per_second", decodeMedian);
            json.put("prefill_runs", prefill);
            json.put("decode_runs", decode);
            Files.createDirectories(out.toAbsolutePath().getParent());
            ExportedFolder.JSON.writeValue(out.toFile(), json);
            context.out().println("wrote " + out);
        }
        return 0;
    }

    private static double median(List<Double> values) {
        double[] v = values.stream().mapToDouble(Double::doubleValue).toArray();
        Arrays.sort(v);
        return v.length % 2 == 1 ? v[v.length / 2] : (v[v.length / 2 - 1] + v[v.length / 2]) / 2;
    }
}
