package io.anneal.datamix;

import io.anneal.api.InputException;
import io.anneal.toolkit.chat.ChatRecord;
import java.io.IOException;
import java.nio.channels.FileChannel;
import java.nio.file.StandardOpenOption;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.stream.Stream;

/**
 * A named, weighted data source: one file, or a folder of shards ({@code *.jsonl},
 * {@code *.jsonl.gz}, {@code *.parquet}, in name order). It knows its records and tokens per epoch
 * (from the indexes) and yields one rendered document at a time: from the token cache, or (with
 * {@code cache = false}) by re-reading the record for the caller to render.
 */
final class ChatSource {
    final String name;
    final double weight;
    final Path path;
    final List<SourceFile> files;
    private final RecordParser parser = new RecordParser();
    private final FileChannel[] channels;
    /** One reusable read buffer for token cache records (a reader serves one thread at a time). */
    private final java.nio.ByteBuffer[] scratch = new java.nio.ByteBuffer[1];
    private int loadedFile = -1;
    private byte[] loadedBytes;
    private ChatRecord[] loadedRecords;
    /** Every file has its token cache (fixed when the files are indexed). */
    private final boolean cached;

    private ChatSource(String name, double weight, Path path, List<SourceFile> files) {
        this.name = name;
        this.weight = weight;
        this.path = path;
        this.files = files;
        this.channels = new FileChannel[files.size()];
        this.cached = files.stream().allMatch(f -> f.tokenCache != null);
    }

    /** Indexes (or loads the cached index of) every file of the source; an empty source is an error. */
    static ChatSource open(String name, double weight, Path path, ChatTemplate template, HfTokenizer tokenizer,
                           OnError onError, CacheFiles cache) {
        List<Path> shards = shardsOf(path);
        List<SourceFile> files = new ArrayList<>();
        for (Path p : shards) {
            files.add(SourceFile.open(p, template, tokenizer, onError, cache));
        }
        ChatSource s = new ChatSource(name, weight, path, files);
        if (s.records() == 0) {
            throw new InputException(path + ": source '" + name + "': expected at least one usable chat record, found none"
                    + (s.skipped() > 0 ? " (" + s.skipped() + " skipped: " + String.join("; ", s.problems()) + ")" : " (the source is empty)"));
        }
        return s;
    }

    /** The same source (same indexes) with its own file handles, for another stream. */
    ChatSource newReader() {
        return new ChatSource(name, weight, path, files);
    }

    static List<Path> shardsOf(Path path) {
        if (Files.isRegularFile(path)) {
            return List.of(path);
        }
        if (!Files.isDirectory(path)) {
            throw new InputException(path + ": expected a JSONL or Parquet file or a folder of .jsonl / .jsonl.gz / .parquet shards, "
                    + "found no such file");
        }
        try (Stream<Path> list = Files.list(path)) {
            List<Path> shards = list.filter(p -> {
                String f = p.getFileName().toString();
                return Files.isRegularFile(p) && (f.endsWith(".jsonl") || f.endsWith(".jsonl.gz") || f.endsWith(".parquet"));
            }).sorted().toList();
            if (shards.isEmpty()) {
                throw new InputException(path + ": expected .jsonl, .jsonl.gz or .parquet shards in the folder, found none");
            }
            return shards;
        } catch (IOException e) {
            throw new InputException(path + ": cannot list the folder: " + e.getMessage(), e);
        }
    }

    long records() {
        long n = 0;
        for (SourceFile f : files) {
            n += f.records();
        }
        return n;
    }

    /** Tokens of one epoch (every usable record rendered by the template once). */
    long epochTokens() {
        long n = 0;
        for (SourceFile f : files) {
            n += f.tokens;
        }
        return n;
    }

    long skippedBad() {
        long n = 0;
        for (SourceFile f : files) {
            n += f.skippedBad;
        }
        return n;
    }

    long skipped() {
        long n = 0;
        for (SourceFile f : files) {
            n += f.skippedBad + f.skippedUnsupervised;
        }
        return n;
    }

    List<String> problems() {
        List<String> out = new ArrayList<>();
        for (SourceFile f : files) {
            out.addAll(f.problems);
        }
        return out;
    }

    /** True when every file of the source has its token cache (the stream then never renders). */
    boolean cached() {
        return cached;
    }

    /** The rendered document {@code index} of file {@code file}, from its token cache (one positional read). */
    Document document(int file, int index) {
        SourceFile f = files.get(file);
        return f.tokenCache.read(index, channel(file, f.tokenCache.file), scratch);
    }

    /**
     * Record {@code index} of file {@code file}, re-read for rendering (no token cache): a gzip shard
     * or a Parquet file stays loaded while it is being sampled.
     */
    ChatRecord read(int file, int index) {
        SourceFile f = files.get(file);
        switch (f.format) {
            case JSONL_GZIP -> {
                if (loadedFile != file) {
                    loadedRecords = null;
                    loadedBytes = f.loadIfCompressed();
                    loadedFile = file;
                }
                return f.read(index, loadedBytes, null, parser);
            }
            case PARQUET -> {
                if (loadedFile != file) {
                    loadedBytes = null;
                    loadedRecords = f.loadParquet();
                    loadedFile = file;
                }
                return loadedRecords[index];
            }
            default -> {
                return f.read(index, null, channel(file, f.path), parser);
            }
        }
    }

    private FileChannel channel(int file, Path path) {
        if (channels[file] == null) {
            try {
                channels[file] = FileChannel.open(path, StandardOpenOption.READ);
            } catch (IOException e) {
                throw new InputException(path + ": cannot open: " + e.getMessage(), e);
            }
        }
        return channels[file];
    }

    /** Closes the open files and forgets a decompressed shard. */
    void close() {
        for (int i = 0; i < channels.length; i++) {
            if (channels[i] != null) {
                try {
                    channels[i].close();
                } catch (IOException ignored) {
                    // closing a read-only channel loses nothing
                }
                channels[i] = null;
            }
        }
        loadedBytes = null;
        loadedRecords = null;
        loadedFile = -1;
    }

    /** One line of the load report: records, tokens, and every count of the mask checks. */
    String loadReport() {
        long bad = 0;
        long unsupervised = 0;
        long all = 0;
        long turns = 0;
        long eos = 0;
        long targets = 0;
        for (SourceFile f : files) {
            bad += f.skippedBad;
            unsupervised += f.skippedUnsupervised;
            all += f.allSupervised;
            turns += f.assistantTurns;
            eos += f.eosMasked;
            targets += f.supervisedTargets;
        }
        StringBuilder b = new StringBuilder();
        b.append(String.format(java.util.Locale.ROOT, "source %s (%s): %d records, %d tokens per epoch, %d supervised (%.1f%%)",
                name, path, records(), epochTokens(), targets, 100.0 * targets / Math.max(1, epochTokens())));
        if (bad > 0) {
            b.append("; skipped ").append(bad).append(" bad records");
        }
        if (unsupervised > 0) {
            b.append("; skipped ").append(unsupervised).append(" records that supervise nothing");
        }
        if (all > 0) {
            b.append("; WARNING ").append(all).append(" records supervise every token in an assistant-only setting");
        }
        if (eos > 0) {
            b.append("; WARNING the template masks the <|im_end|> of ").append(eos).append(" of ").append(turns)
                    .append(" assistant turns: the model will not learn to stop");
        }
        return b.toString();
    }
}
