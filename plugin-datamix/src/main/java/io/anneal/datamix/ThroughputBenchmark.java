package io.anneal.datamix;

import io.anneal.api.data.PackedBatch;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Comparator;
import java.util.List;
import java.util.Locale;
import java.util.stream.Stream;

/**
 * Tokens per second of the data path, two figures. Not a unit test; run it by hand:
 * <pre>
 *   java -cp ... io.anneal.datamix.ThroughputBenchmark examples [stream tokens=20000000] [length=16384] [out.json]
 *        [first-pass tokens=10000000]
 * </pre>
 * <ol>
 *   <li><b>First pass</b> (index + token cache build): read, parse, tokenise, template, mask checks
 *   and write the caches, over a corpus of copies of the bundled files (each copy its own shard,
 *   tokenised anew) of at least the first-pass tokens, into a fresh temporary cache folder.</li>
 *   <li><b>Training stream</b> from the caches: read the drawn documents (one positional read each),
 *   mix, pack rows with labels, positions and document ids, over the bundled mix of
 *   {@code examples/data}.</li>
 * </ol>
 * Both are printed and written as JSON, with the stream's time per stage (reading runs on the
 * rendering threads, overlapped with packing, so stages can add up to more than the wall time).
 */
public final class ThroughputBenchmark {
    private ThroughputBenchmark() {
    }

    /** The bundled mix (examples/datamix-sft.conf). */
    static List<MixTrainingData.SourceSpec> bundledSources(Path data) {
        List<MixTrainingData.SourceSpec> specs = new ArrayList<>();
        specs.add(new MixTrainingData.SourceSpec("arithmetic", data.resolve("arithmetic.jsonl"), 0.3, OnError.FAIL));
        specs.add(new MixTrainingData.SourceSpec("units", data.resolve("units.jsonl"), 0.15, OnError.FAIL));
        specs.add(new MixTrainingData.SourceSpec("facts", data.resolve("facts.jsonl"), 0.05, OnError.FAIL));
        specs.add(new MixTrainingData.SourceSpec("dialog", data.resolve("dialog.jsonl"), 0.25, OnError.FAIL));
        specs.add(new MixTrainingData.SourceSpec("words", data.resolve("words"), 0.25, OnError.FAIL));
        return specs;
    }

    public static void main(String[] args) throws IOException {
        Path examples = Path.of(args.length > 0 ? args[0] : "examples").toAbsolutePath().normalize();
        long tokens = args.length > 1 ? Long.parseLong(args[1]) : 20_000_000L;
        int length = args.length > 2 ? Integer.parseInt(args[2]) : 16_384;
        Path out = Path.of(args.length > 3 ? args[3] : "datamix-throughput.json");
        long firstPassTarget = args.length > 4 ? Long.parseLong(args[4]) : 10_000_000L;
        int rowsPerBatch = Math.max(1, 65_536 / length);
        HfTokenizer tokenizer = HfTokenizer.load(examples.resolve("tokenizer/tokenizer.json"));
        Path work = Files.createTempDirectory("datamix-bench");
        try {
            FirstPass first = firstPass(tokenizer, examples.resolve("data"), work, firstPassTarget);
            String stream = stream(tokenizer, examples.resolve("data"), new CacheFiles(true, work.resolve("stream-caches")), tokens,
                    length, rowsPerBatch);
            String json = String.format(Locale.ROOT, "{\"benchmark\": \"datamix\", \"cpus\": %d, \"render_threads\": %d, "
                            + "\"first_pass\": {\"what\": \"read+parse+tokenise+template+write index and token cache\", \"files\": %d, "
                            + "\"records\": %d, \"tokens\": %d, \"seconds\": %.3f, \"tokens_per_second\": %.0f, \"input_bytes\": %d, "
                            + "\"cache_bytes\": %d}, \"stream\": %s}%n",
                    Runtime.getRuntime().availableProcessors(), RenderThreads.count(), first.files, first.records, first.tokens,
                    first.seconds, first.tokens / first.seconds, first.inputBytes, first.cacheBytes, stream);
            System.out.print(json);
            Files.writeString(out, json);
        } finally {
            deleteTree(work);
        }
    }

    private record FirstPass(int files, long records, long tokens, double seconds, long inputBytes, long cacheBytes) {
    }

    /** Indexes copies of the bundled files (as shards of one source) into a fresh cache folder and times it. */
    private static FirstPass firstPass(HfTokenizer tokenizer, Path data, Path work, long target) throws IOException {
        List<Path> originals = new ArrayList<>();
        for (MixTrainingData.SourceSpec s : bundledSources(data)) {
            originals.addAll(ChatSource.shardsOf(s.path()));
        }
        // Tokens of one copy of the bundled files, from a first (untimed) pass that also warms up the JIT.
        MixTrainingData warm = new MixTrainingData(tokenizer, bundledSources(data), LossOn.ASSISTANT, true, 1, 0, Leftover.SPLIT,
                new CacheFiles(true, work.resolve("warm-caches")), line -> { });
        long perCopy = 0;
        for (ChatSource s : warm.openSources(new ArrayList<>())) {
            perCopy += s.epochTokens();
        }
        int copies = (int) Math.max(1, (target + perCopy - 1) / perCopy);
        Path corpus = Files.createDirectories(work.resolve("corpus"));
        long inputBytes = 0;
        for (int c = 0; c < copies; c++) {
            for (Path p : originals) {
                String name = String.format(Locale.ROOT, "%04d-%s", c, p.getFileName());
                inputBytes += Files.size(Files.copy(p, corpus.resolve(name)));
            }
        }
        Path caches = work.resolve("first-pass-caches");
        MixTrainingData corpusData = new MixTrainingData(tokenizer, List.of(new MixTrainingData.SourceSpec("corpus", corpus, 1, OnError.FAIL)),
                LossOn.ASSISTANT, true, 1, 0, Leftover.SPLIT, new CacheFiles(true, caches), line -> { });
        long start = System.nanoTime();
        ChatSource[] sources = corpusData.openSources(new ArrayList<>());
        double seconds = (System.nanoTime() - start) / 1e9;
        long cacheBytes = 0;
        try (Stream<Path> files = Files.list(caches)) {
            for (Path p : files.toList()) {
                cacheBytes += Files.size(p);
            }
        }
        System.out.printf(Locale.ROOT, "first pass: %d files, %d records, %d tokens in %.2f s = %.0f tokens/s (%d input bytes -> %d cache bytes)%n",
                sources[0].files.size(), sources[0].records(), sources[0].epochTokens(), seconds, sources[0].epochTokens() / seconds,
                inputBytes, cacheBytes);
        return new FirstPass(sources[0].files.size(), sources[0].records(), sources[0].epochTokens(), seconds, inputBytes, cacheBytes);
    }

    /** The training stream over the bundled mix, from its token caches (built before the clock starts). */
    private static String stream(HfTokenizer tokenizer, Path data, CacheFiles cache, long tokens, int length, int rowsPerBatch) {
        MixTrainingData mix = new MixTrainingData(tokenizer, bundledSources(data), LossOn.ASSISTANT, true, 1, tokens, Leftover.SPLIT,
                cache, line -> { });
        try (MixStream warm = mix.open(length)) {
            for (int i = 0; i < 200; i++) {
                warm.next(rowsPerBatch); // caches built, JIT warmed up
            }
        }
        long checksum = 0;
        long start = System.nanoTime();
        MixStream stream = mix.open(length);
        while (stream.emittedTokens() < tokens) {
            PackedBatch b = stream.next(rowsPerBatch);
            checksum += b.inputIds()[b.inputIds().length - 1];
        }
        double seconds = (System.nanoTime() - start) / 1e9;
        double rate = stream.emittedTokens() / seconds;
        String report = stream.report();
        long[] stages = stream.stageNanos();
        stream.close();
        System.out.println(report);
        System.out.printf(Locale.ROOT, "stream from the token cache: %d tokens in %.2f s = %.0f tokens/s%n", stream.emittedTokens(), seconds, rate);
        return String.format(Locale.ROOT,
                "{\"what\": \"read cached documents+mix+pack\", \"tokens\": %d, \"seconds\": %.3f, \"tokens_per_second\": %.0f, "
                        + "\"sequence_length\": %d, \"rows_per_batch\": %d, \"padding_fraction\": %.6f, \"checksum\": %d, "
                        + "\"stage_seconds\": {\"read_cache\": %.3f, \"tokenise\": %.3f, \"template\": %.3f, \"pack\": %.3f}}",
                stream.emittedTokens(), seconds, rate, length, rowsPerBatch, stream.paddingFraction(), checksum,
                stages[0] / 1e9, stages[1] / 1e9, stages[2] / 1e9, stages[3] / 1e9);
    }

    private static void deleteTree(Path root) throws IOException {
        try (Stream<Path> all = Files.walk(root)) {
            for (Path p : all.sorted(Comparator.reverseOrder()).toList()) {
                Files.deleteIfExists(p);
            }
        }
    }
}
