package io.anneal.onnx;

import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Set;
import java.util.SplittableRandom;
import java.util.function.LongConsumer;

/**
 * Autoregressive generation over an {@link OrtModel}: the prompt through the prefill graph, then
 * one token at a time through the decode graph with the caches carried from step to step (or, with
 * {@code recompute}, the whole sequence through the prefill graph at every step: the reference the
 * cached path is tested against).
 */
final class Generator {

    /**
     * How the next token is picked: greedy (arg-max) at temperature 0, else sampled from
     * softmax(logits / T) restricted to the nucleus of probability {@code topP} (Holtzman et al.
     * 2020, "The Curious Case of Neural Text Degeneration"), with a seeded generator, so a seed
     * repeats its text.
     */
    record Sampling(double temperature, double topP, long seed) {
        static final Sampling GREEDY = new Sampling(0, 1, 0);

        boolean greedy() {
            return temperature == 0;
        }
    }

    /** Why generation stopped. */
    enum Stop {
        END_OF_TURN("end of turn"), MAX_NEW_TOKENS("max-new-tokens"), CONTEXT("the model's context is full");

        final String text;

        Stop(String text) {
            this.text = text;
        }
    }

    /** What a generation made, with its timings (nanoseconds). */
    record Output(long[] ids, Stop stop, long prefillNanos, long decodeNanos, int decodeSteps) {
        double prefillTokensPerSecond(int promptLength) {
            return promptLength / (prefillNanos / 1e9);
        }

        double decodeTokensPerSecond() {
            return decodeSteps == 0 ? 0 : decodeSteps / (decodeNanos / 1e9);
        }
    }

    private final OrtModel model;
    private final int context;

    Generator(OrtModel model) {
        this.model = model;
        this.context = model.folder().spec().maxPositions();
    }

    /**
     * Generates up to {@code maxNew} tokens after {@code prompt}; a token of {@code stop} ends the
     * turn (it is not part of the output). {@code onToken} sees each token as it comes.
     */
    Output generate(long[] prompt, int maxNew, Set<Long> stop, Sampling sampling, boolean recompute, LongConsumer onToken) {
        SplittableRandom random = new SplittableRandom(sampling.seed());
        List<Long> out = new ArrayList<>();
        int vocab = model.vocabSize();
        long start = System.nanoTime();
        OrtModel.Step step = model.prefill(new long[][] {prompt});
        long prefillNanos = System.nanoTime() - start;
        long decodeStart = System.nanoTime();
        int decodeSteps = 0;
        Stop why = Stop.MAX_NEW_TOKENS;
        try {
            long[] sequence = Arrays.copyOf(prompt, prompt.length + maxNew);
            int length = prompt.length;
            while (true) {
                long next = pick(step.lastLogits(0, vocab), sampling, random);
                if (stop.contains(next)) {
                    why = Stop.END_OF_TURN;
                    break;
                }
                out.add(next);
                onToken.accept(next);
                sequence[length++] = next;
                if (out.size() >= maxNew) {
                    break;
                }
                if (length >= context) {
                    why = Stop.CONTEXT;
                    break;
                }
                OrtModel.Step following = recompute ? model.prefill(new long[][] {Arrays.copyOf(sequence, length)})
                        : model.decode(new long[] {next}, step);
                decodeSteps++;
                step.close();
                step = following;
            }
        } finally {
            step.close();
        }
        long decodeNanos = System.nanoTime() - decodeStart;
        return new Output(out.stream().mapToLong(Long::longValue).toArray(), why, prefillNanos, decodeNanos, decodeSteps);
    }

    static long pick(float[] logits, Sampling sampling, SplittableRandom random) {
        if (sampling.greedy()) {
            int best = 0;
            for (int i = 1; i < logits.length; i++) {
                if (logits[i] > logits[best]) {
                    best = i;
                }
            }
            return best;
        }
        double max = Double.NEGATIVE_INFINITY;
        for (float l : logits) {
            max = Math.max(max, l);
        }
        double[] p = new double[logits.length];
        double sum = 0;
        for (int i = 0; i < p.length; i++) {
            p[i] = Math.exp((logits[i] - max) / sampling.temperature());
            sum += p[i];
        }
        Integer[] order = new Integer[p.length];
        for (int i = 0; i < order.length; i++) {
            order[i] = i;
            p[i] /= sum;
        }
        Arrays.sort(order, (a, b) -> Double.compare(p[b], p[a]));
        // the nucleus: the most probable tokens whose probabilities add up to top-p (at least one)
        int keep = 0;
        double mass = 0;
        while (keep < order.length && (keep == 0 || mass < sampling.topP())) {
            mass += p[order[keep++]];
        }
        double u = random.nextDouble() * mass;
        double acc = 0;
        for (int k = 0; k < keep; k++) {
            acc += p[order[k]];
            if (u < acc) {
                return order[k];
            }
        }
        return order[keep - 1];
    }
}
