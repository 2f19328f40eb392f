package io.anneal.datamix;

import io.anneal.api.InputException;
import io.anneal.toolkit.chat.ChatRecord;
import java.io.BufferedInputStream;
import java.io.BufferedOutputStream;
import java.io.DataInputStream;
import java.io.DataOutputStream;
import java.io.IOException;
import java.io.InputStream;
import java.nio.ByteBuffer;
import java.nio.channels.FileChannel;
import java.nio.file.Files;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;
import java.util.ArrayDeque;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Future;
import java.util.zip.GZIPInputStream;

/**
 * One file of chat records (JSONL, gzip JSONL or Parquet) with its index: where every usable record
 * is, its token count and the mask checks. The index pass parses, tokenises and renders every record
 * once (batches tokenised on the rendering threads while the next lines are parsed, consumed in file
 * order) and, with {@code cache = true}, keeps what it made: the index ({@code .anneal-index}) and
 * the rendered documents ({@link TokenCache}, {@code .anneal-tokens}), both keyed by the file's size
 * and modification time, the tokenizer's SHA-256, the template and the on-error policy.
 *
 * <p>With the token cache the training stream reads documents with one positional read each.
 * Without it ({@code cache = false}) records are re-read and re-rendered at every draw: plain JSONL
 * with positional reads; a gzip shard or a Parquet file cannot be read at an offset, so it is
 * decompressed whole while it is the shard being sampled (shards are meant to be small then).
 */
final class SourceFile {
    private static final int MAGIC = 0x414e4958; // "ANIX"
    private static final int VERSION = 2;
    private static final int RENDER_BATCH = 256;
    static final int MAX_REPORTED_PROBLEMS = 5;

    /** How the file is stored, from its name. */
    enum Format {
        JSONL, JSONL_GZIP, PARQUET;

        static Format of(Path file) {
            String name = file.getFileName().toString();
            return name.endsWith(".parquet") ? PARQUET : name.endsWith(".gz") ? JSONL_GZIP : JSONL;
        }
    }

    final Path path;
    final Format format;
    /** Byte offset of each usable record (JSONL, in the decompressed stream) or its row in the file (Parquet). */
    long[] positions;
    /** Byte length of each usable record (JSONL; 0 for Parquet). */
    int[] lengths;
    /** Line of each usable record (JSONL) or {@link ParquetChatRows#location packed row group and row} (Parquet), for messages. */
    long[] lines;
    long tokens;
    long supervisedTargets;
    long skippedBad;
    long skippedUnsupervised;
    long allSupervised;
    long assistantTurns;
    long eosMasked;
    final List<String> problems = new ArrayList<>();
    boolean fromCache;
    /** The rendered documents, or null with cache = false. */
    TokenCache.Reader tokenCache;

    private SourceFile(Path path) {
        this.path = path;
        this.format = Format.of(path);
    }

    int records() {
        return positions.length;
    }

    /** Loads the cached index and token cache when their keys match, otherwise runs the index pass and writes both. */
    static SourceFile open(Path path, ChatTemplate template, HfTokenizer tokenizer, OnError onError, CacheFiles cache) {
        SourceFile f = new SourceFile(path);
        String key;
        try {
            key = Files.size(path) + "/" + Files.getLastModifiedTime(path).toMillis() + "/" + tokenizer.fingerprint()
                    + "/" + template.cacheKey() + "/" + onError;
        } catch (NoSuchFileException e) {
            throw new InputException(path + ": expected a file of chat records (JSONL or Parquet), found no such file");
        } catch (IOException e) {
            throw new InputException(path + ": cannot read: " + e.getMessage(), e);
        }
        if (!cache.enabled()) {
            f.scan(template, onError, null);
            return f;
        }
        Path index = cache.locate(path, ".anneal-index");
        Path tokens = cache.locate(path, TokenCache.SUFFIX);
        if (Files.isRegularFile(index) && f.readIndex(index, key)) {
            f.tokenCache = TokenCache.open(tokens, key, f.records(), tokenizer.vocabularySize());
            if (f.tokenCache != null) {
                f.fromCache = true;
                return f;
            }
            f = new SourceFile(path); // the documents are missing or damaged: the pass that makes them also remakes the index
        }
        cache.checkWritable(tokens);
        try (TokenCache.Writer writer = new TokenCache.Writer(tokens, key, tokenizer.vocabularySize())) {
            f.scan(template, onError, writer);
            writer.commit();
            f.writeIndex(index, key);
        } catch (IOException e) {
            throw new InputException(tokens + ": cannot write the token cache: " + e.getMessage()
                    + " (set data.cache-dir to a writable folder, or data.cache = false)", e);
        }
        f.tokenCache = TokenCache.open(tokens, key, f.records(), tokenizer.vocabularySize());
        if (f.tokenCache == null) {
            throw new InputException(tokens + ": the token cache just written does not read back; is the disk full?");
        }
        return f;
    }

    /** Where record {@code i} is, for messages: {@code file:line} or {@code file: row group g, row r}. */
    String where(int i) {
        return whereAt(lines[i]);
    }

    private String whereAt(long location) {
        return format == Format.PARQUET ? path + ": " + ParquetChatRows.describe(location) : path + ":" + location;
    }

    /**
     * The record at index i of this file's usable records, re-read from the file (no token cache):
     * from {@code wholeFile} for a gzip shard, otherwise with a positional read on {@code channel}.
     */
    ChatRecord read(int i, byte[] wholeFile, FileChannel channel, RecordParser parser) {
        byte[] buf;
        int off;
        if (wholeFile != null) {
            buf = wholeFile;
            off = (int) positions[i];
        } else {
            buf = new byte[lengths[i]];
            off = 0;
            try {
                ByteBuffer bb = ByteBuffer.wrap(buf);
                long pos = positions[i];
                while (bb.hasRemaining()) {
                    if (channel.read(bb, pos + bb.position()) < 0) {
                        throw new InputException(where(i) + ": the file is shorter than when it was indexed; "
                                + "delete its .anneal-index or restore the file");
                    }
                }
            } catch (IOException e) {
                throw new InputException(where(i) + ": cannot read: " + e.getMessage(), e);
            }
        }
        try {
            return parser.parseChat(buf, off, lengths[i]);
        } catch (RecordParser.BadRecordException e) {
            throw new InputException(where(i) + ": the file changed since it was indexed: expected " + e.getMessage());
        }
    }

    /** The whole decompressed content of a gzip shard (plain files return null: they are read in place). */
    byte[] loadIfCompressed() {
        if (format != Format.JSONL_GZIP) {
            return null;
        }
        try (InputStream in = new GZIPInputStream(Files.newInputStream(path), 1 << 16)) {
            return in.readAllBytes();
        } catch (IOException e) {
            throw new InputException(path + ": cannot decompress: " + e.getMessage(), e);
        }
    }

    /** Every usable record of a Parquet file, in index order (no token cache: the file is read whole while sampled). */
    ChatRecord[] loadParquet() {
        ChatRecord[] out = new ChatRecord[records()];
        int[] next = {0};
        ParquetChatRows.scan(path, (position, length, location, record, problem) -> {
            if (next[0] < out.length && positions[next[0]] == position) {
                if (record == null) {
                    throw new InputException(whereAt(location) + ": the file changed since it was indexed: expected " + problem);
                }
                out[next[0]++] = record;
            }
        });
        if (next[0] != out.length) {
            throw new InputException(path + ": the file changed since it was indexed (" + next[0] + " of " + out.length
                    + " records found); delete its .anneal-index or restore the file");
        }
        return out;
    }

    /** What an index pass sees of each row of a file, in file order. */
    interface RowSink {
        /**
         * @param position where the record is (byte offset, or row of a Parquet file)
         * @param length   its byte length (JSONL)
         * @param location its line, or packed row group and row, for messages
         * @param record   the parsed record, or null when it is bad
         * @param problem  what was expected and found, when the record is bad
         */
        void accept(long position, int length, long location, ChatRecord record, String problem);
    }

    private void scan(ChatTemplate template, OnError onError, TokenCache.Writer tokens) {
        IndexPass pass = new IndexPass(template, onError, tokens);
        try {
            if (format == Format.PARQUET) {
                ParquetChatRows.scan(path, pass);
            } else {
                scanJsonl(pass);
            }
            pass.finish();
        } finally {
            pass.pool.shutdownNow();
        }
        positions = Arrays.copyOf(positions, pass.n);
        lengths = Arrays.copyOf(lengths, pass.n);
        lines = Arrays.copyOf(lines, pass.n);
    }

    /** Reads the lines of a JSONL file (decompressing a .gz) and hands each to {@code sink}. */
    private void scanJsonl(RowSink sink) {
        RecordParser parser = new RecordParser();
        try (InputStream in = new BufferedInputStream(format == Format.JSONL_GZIP
                ? new GZIPInputStream(Files.newInputStream(path), 1 << 16) : Files.newInputStream(path), 1 << 16)) {
            byte[] line = new byte[1 << 12];
            long offset = 0;
            long lineNo = 0;
            boolean eof = false;
            while (!eof) {
                int len = 0;
                long start = offset;
                int b;
                while ((b = in.read()) >= 0 && b != '\n') {
                    if (len == line.length) {
                        line = Arrays.copyOf(line, len * 2);
                    }
                    line[len++] = (byte) b;
                }
                eof = b < 0;
                offset += len + (eof ? 0 : 1);
                if (eof && len == 0) {
                    break;
                }
                lineNo++;
                if (isBlank(line, len)) {
                    continue;
                }
                try {
                    sink.accept(start, len, lineNo, parser.parseChat(line, 0, len), null);
                } catch (RecordParser.BadRecordException e) {
                    sink.accept(start, len, lineNo, null, e.getMessage());
                }
            }
        } catch (IOException e) {
            throw new InputException(path + ": cannot read: " + e.getMessage(), e);
        }
    }

    /**
     * One index pass: rows are batched, each batch tokenised and rendered on a rendering thread
     * while the next rows are parsed here, and the batches are consumed in file order (so the index,
     * the token cache and the reported problems do not depend on the threads).
     */
    private final class IndexPass implements RowSink {
        private final ChatTemplate template;
        private final OnError onError;
        private final TokenCache.Writer cacheWriter;
        final ExecutorService pool = RenderThreads.newPool();
        private final int renderThreads = RenderThreads.count();
        private final ArrayDeque<Batch> inFlight = new ArrayDeque<>();
        private Batch current = new Batch();
        int n;

        IndexPass(ChatTemplate template, OnError onError, TokenCache.Writer tokens) {
            this.template = template;
            this.onError = onError;
            this.cacheWriter = tokens;
            positions = new long[1024];
            lengths = new int[1024];
            lines = new long[1024];
        }

        /** Parsed rows and, once submitted, their rendering. */
        private final class Batch {
            final List<ChatRecord> records = new ArrayList<>(RENDER_BATCH);
            final long[] positions = new long[RENDER_BATCH];
            final int[] lengths = new int[RENDER_BATCH];
            final long[] locations = new long[RENDER_BATCH];
            Future<Document[]> rendered;
        }

        @Override
        public void accept(long position, int length, long location, ChatRecord record, String problem) {
            if (record == null) {
                bad(location, problem);
                return;
            }
            int k = current.records.size();
            current.records.add(record);
            current.positions[k] = position;
            current.lengths[k] = length;
            current.locations[k] = location;
            if (k + 1 == RENDER_BATCH) {
                submit();
            }
        }

        /** A record that cannot be used: fails the load, or is counted and skipped, under on-error. */
        private void bad(long location, String problem) {
            String message = whereAt(location) + ": expected " + problem;
            if (onError == OnError.FAIL) {
                throw new InputException(message + " (set on-error = skip on the source to skip and count such records)");
            }
            skippedBad++;
            if (problems.size() < MAX_REPORTED_PROBLEMS) {
                problems.add(message);
            }
        }

        private void submit() {
            Batch b = current;
            current = new Batch();
            b.rendered = pool.submit(() -> template.renderAll(b.records));
            inFlight.add(b);
            while (inFlight.size() > renderThreads) {
                consume(inFlight.poll());
            }
        }

        void finish() {
            if (!current.records.isEmpty()) {
                submit();
            }
            while (!inFlight.isEmpty()) {
                consume(inFlight.poll());
            }
        }

        /** Checks the masks of a rendered batch and appends its usable records to the index and the token cache. */
        private void consume(Batch b) {
            Document[] docs = RenderThreads.await(b.rendered);
            if (positions.length < n + docs.length) {
                int cap = Math.max(n + docs.length, positions.length * 2);
                positions = Arrays.copyOf(positions, cap);
                lengths = Arrays.copyOf(lengths, cap);
                lines = Arrays.copyOf(lines, cap);
            }
            for (int i = 0; i < docs.length; i++) {
                Document d = docs[i];
                if (d.problem() != null) { // the chat template could not render it
                    bad(b.locations[i], d.problem());
                    continue;
                }
                assistantTurns += d.assistantTurns();
                eosMasked += d.eosMasked();
                int targets = d.supervisedTargets();
                if (targets == 0) {
                    // Nothing to learn from it: it stays out of sampling, and the load report counts it.
                    skippedUnsupervised++;
                    if (problems.size() < MAX_REPORTED_PROBLEMS) {
                        problems.add(whereAt(b.locations[i]) + ": supervises no token under loss-on = "
                                + template.lossOn().configName() + " (no assistant turn?)");
                    }
                    continue;
                }
                if (template.lossOn() != LossOn.ALL && targets == d.length() - 1) {
                    allSupervised++;
                }
                if (cacheWriter != null) {
                    try {
                        cacheWriter.append(d);
                    } catch (IOException e) {
                        throw new InputException(path + ": cannot write its token cache: " + e.getMessage(), e);
                    }
                }
                positions[n] = b.positions[i];
                lengths[n] = b.lengths[i];
                lines[n] = b.locations[i];
                tokens += d.length();
                supervisedTargets += targets;
                n++;
            }
        }
    }

    private static boolean isBlank(byte[] line, int len) {
        for (int i = 0; i < len; i++) {
            byte c = line[i];
            if (c != ' ' && c != '\t' && c != '\r') {
                return false;
            }
        }
        return true;
    }

    private boolean readIndex(Path cache, String key) {
        try (DataInputStream in = new DataInputStream(new BufferedInputStream(Files.newInputStream(cache), 1 << 16))) {
            if (in.readInt() != MAGIC || in.readInt() != VERSION || !in.readUTF().equals(key)) {
                return false;
            }
            tokens = in.readLong();
            supervisedTargets = in.readLong();
            skippedBad = in.readLong();
            skippedUnsupervised = in.readLong();
            allSupervised = in.readLong();
            assistantTurns = in.readLong();
            eosMasked = in.readLong();
            int p = in.readInt();
            for (int i = 0; i < p; i++) {
                problems.add(in.readUTF());
            }
            int n = in.readInt();
            positions = new long[n];
            lengths = new int[n];
            lines = new long[n];
            for (int i = 0; i < n; i++) {
                positions[i] = in.readLong();
                lengths[i] = in.readInt();
                lines[i] = in.readLong();
            }
            return true;
        } catch (IOException e) {
            problems.clear();
            return false; // a damaged index is rebuilt, not trusted
        }
    }

    private void writeIndex(Path cache, String key) throws IOException {
        Path tmp = CacheFiles.temporaryFor(cache); // this writer's own: others may be building the same index
        try {
            try (DataOutputStream out = new DataOutputStream(new BufferedOutputStream(Files.newOutputStream(tmp), 1 << 16))) {
                out.writeInt(MAGIC);
                out.writeInt(VERSION);
                out.writeUTF(key);
                out.writeLong(tokens);
                out.writeLong(supervisedTargets);
                out.writeLong(skippedBad);
                out.writeLong(skippedUnsupervised);
                out.writeLong(allSupervised);
                out.writeLong(assistantTurns);
                out.writeLong(eosMasked);
                out.writeInt(problems.size());
                for (String p : problems) {
                    out.writeUTF(p.length() > 16000 ? p.substring(0, 16000) : p);
                }
                out.writeInt(positions.length);
                for (int i = 0; i < positions.length; i++) {
                    out.writeLong(positions[i]);
                    out.writeInt(lengths[i]);
                    out.writeLong(lines[i]);
                }
            }
            CacheFiles.moveIntoPlace(tmp, cache);
        } catch (IOException | RuntimeException e) {
            CacheFiles.deleteTemporary(tmp, e);
            throw e;
        }
    }
}
