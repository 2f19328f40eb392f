package io.anneal.onnx;

import io.anneal.api.InputException;
import io.anneal.toolkit.cli.CommandArguments;
import io.anneal.api.cli.CommandContext;
import io.anneal.api.config.ConfigException;
import io.anneal.api.data.ChatTokenizer;
import java.nio.file.Path;
import java.util.Map;

/**
 * What {@code anneal generate} and {@code anneal chat} share: the options, the model opened in ONNX
 * Runtime, and the folder's tokenizer and chat template (the {@code hf} {@link ChatTokenizer} of
 * whichever plugin offers it).
 */
final class GenerationSetup implements AutoCloseable {
    /** The options both commands take, besides their own. */
    static final String[] OPTIONS = {"checkpoint", "system", "max-new-tokens", "temperature", "top-p", "seed", "provider",
        "threads"};
    static final String OPTIONS_HELP = """
              --checkpoint DIR      a Falcon-H1 checkpoint folder with its tokenizer files (as Anneal writes
                                    final/), or a folder written by anneal export onnx
              --system TEXT         a system message first
              --max-new-tokens N    at most N new tokens per answer (default 256)
              --temperature T       0 (default): greedy; > 0: sample from softmax(logits / T)
              --top-p P             sample from the smallest set of tokens holding P of the probability (default 1)
              --seed S              the sampler's seed (default 0): a seed repeats its text
              --provider cpu|cuda   ONNX Runtime's execution provider (default cpu)
              --threads N           ONNX Runtime's threads (default: one per core)""";

    final Generator.Sampling sampling;
    final int maxNew;
    final String system;
    final OnnxInferenceEngine.Opened opened;
    final ChatTokenizer tokenizer;
    final Generator generator;

    private GenerationSetup(Generator.Sampling sampling, int maxNew, String system, OnnxInferenceEngine.Opened opened,
            ChatTokenizer tokenizer) {
        this.sampling = sampling;
        this.maxNew = maxNew;
        this.system = system;
        this.opened = opened;
        this.tokenizer = tokenizer;
        this.generator = new Generator(opened.model());
    }

    static GenerationSetup open(CommandArguments a, CommandContext context) {
        Generator.Sampling sampling = sampling(a);
        int maxNew = a.positiveInt("max-new-tokens", 256);
        OrtModel.Provider provider = OnnxInferenceEngine.provider(a.choice("provider", "cpu", "cpu", "cuda"), "--provider");
        int threads = a.has("threads") ? a.positiveInt("threads", 1) : 0;
        Path directory = context.workingDirectory().resolve(a.required("checkpoint"));
        OnnxInferenceEngine.Opened opened = OnnxInferenceEngine.openModel(context.extensions(), directory, provider, threads,
                context.out());
        try {
            ChatTokenizer tokenizer;
            try {
                tokenizer = context.extensions().build(ChatTokenizer.class, "hf",
                        Map.of("folder", directory.toAbsolutePath().toString()), "--checkpoint " + directory);
            } catch (ConfigException e) {
                throw new InputException("no plugin offers the hf chat tokenizer (" + e.getMessage().strip()
                        + "); the datamix plugin does: is plugins/datamix/ in place?", e);
            }
            return new GenerationSetup(sampling, maxNew, a.value("system").orElse(null), opened, tokenizer);
        } catch (RuntimeException e) {
            opened.close();
            throw e;
        }
    }

    private static Generator.Sampling sampling(CommandArguments a) {
        double temperature = number(a, "temperature", 0, 0, Double.MAX_VALUE);
        double topP = number(a, "top-p", 1, Double.MIN_VALUE, 1);
        long seed;
        try {
            seed = Long.parseLong(a.value("seed", "0").trim());
        } catch (NumberFormatException e) {
            throw a.error("--seed: expected an integer, found '" + a.value("seed", "") + "'");
        }
        return new Generator.Sampling(temperature, topP, seed);
    }

    private static double number(CommandArguments a, String option, double otherwise, double low, double high) {
        String v = a.value(option, null);
        if (v == null) {
            return otherwise;
        }
        try {
            double d = Double.parseDouble(v.trim());
            if (d >= low && d <= high) {
                return d;
            }
        } catch (NumberFormatException e) {
            // reported below
        }
        throw a.error("--" + option + ": expected a number in [" + (low == Double.MIN_VALUE ? "0 (exclusive)" : low) + ", "
                + (high == Double.MAX_VALUE ? "inf" : high) + "], found '" + v + "'");
    }

    /** A prompt the model's context cannot hold is bad input, named with both lengths. */
    void checkFits(long[] prompt) {
        int context = opened.model().folder().spec().maxPositions();
        if (prompt.length >= context) {
            throw new InputException("the prompt is " + prompt.length + " tokens, the model's context (max_position_embeddings"
                    + " of config.json) is " + context + ": shorten it");
        }
    }

    @Override
    public void close() {
        try {
            tokenizer.close();
        } finally {
            opened.close();
        }
    }
}
