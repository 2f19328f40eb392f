package io.anneal.datamix;

import io.anneal.api.InputException;
import io.anneal.toolkit.chat.ChatRecord;
import io.anneal.api.data.PackedBatch;
import io.anneal.api.data.SourceProgress;
import io.anneal.api.data.TokenBatchStream;
import java.io.ByteArrayInputStream;
import java.io.ByteArrayOutputStream;
import java.io.DataInputStream;
import java.io.DataOutputStream;
import java.io.IOException;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Locale;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Future;

/**
 * Sources -> mixer -> template -> packer: rows of exactly L tokens with position ids and document
 * ids restarting per document, so neither attention nor the SSM state crosses documents (DESIGN.md,
 * "Packing respects documents in every layer").
 *
 * <p>Records are drawn and rendered a chunk at a time (one tokenizer call per chunk). The draw order
 * never depends on the chunking, so the stream is the same whatever the chunk size; the saved state
 * is the mixer's state at the start of the current chunk plus the cursor inside it, and a restore
 * redraws that chunk and continues at the same token.
 *
 * <p>While the current chunk is packed, the next ones are prepared on other threads: read from the
 * sources' token caches (one positional read per document), or, with {@code cache = false}, read,
 * parsed, tokenised and rendered. Its records are drawn here, in stream order, before it is handed
 * over; a document is a pure function of the drawn record (the cache holds exactly what rendering
 * makes), so the stream is the same with or without the cache and the other threads.
 */
final class MixStream implements TokenBatchStream {
    private static final int STATE_MAGIC = 0x414e5354; // "ANST"
    private static final int STATE_VERSION = 1;
    static final int CHUNK = 512;
    /** Chunks prepared at once ahead of the packer, each on a rendering thread. */

    private final ChatSource[] sources;
    private final ChatTemplate template;
    private final Mixer mixer;
    private final int length;
    private final Leftover leftover;
    private final int padId;
    private final long budget;
    private final long identity;

    /** A drawn and rendered chunk: mixer state before and after its draws, documents, their sources, stage times. */
    private record Chunk(long[] start, long[] end, Document[] docs, int[] source, long readNanos, long tokeniseNanos,
                         long templateNanos) {
    }

    /** Renders chunks ahead of the packer; created with the first chunk. */
    private ExecutorService renderer;
    /** Chunks rendered ahead: one per rendering thread (pipeline.threads). */
    private final int renderThreads = RenderThreads.count();
    /** Chunks drawn and being rendered, in stream order. */
    private final java.util.ArrayDeque<Future<Chunk>> ahead = new java.util.ArrayDeque<>();
    /** Nanoseconds spent per stage: read+parse, tokenise, template, pack (the first three on the rendering thread). */
    private final long[] stageNanos = new long[4];

    // The current chunk: rendered documents and where each came from.
    private long[] chunkStart;
    private long[] chunkEnd;
    private Document[] docs = new Document[0];
    private int[] docSource = new int[0];
    private int cursor;
    private int docOffset;

    // Accounting (part of the state, so progress after a resume is the same as without one).
    private final long[] tokensTaken;
    private final long[] docsTaken;
    private long emitted;
    private long padding;
    private long dropped;
    private long supervised;
    private long rows;

    MixStream(ChatSource[] sources, ChatTemplate template, long seed, int length, Leftover leftover, int padId, long budget) {
        if (length < 2) {
            throw new IllegalArgumentException("a packed row needs at least 2 tokens, got " + length);
        }
        this.sources = sources;
        this.template = template;
        this.mixer = new Mixer(sources, seed);
        this.length = length;
        this.leftover = leftover;
        this.padId = padId;
        this.budget = budget;
        this.tokensTaken = new long[sources.length];
        this.docsTaken = new long[sources.length];
        long id = SplitMix64.derive(seed, length, leftover.ordinal(), SplitMix64.hash(template.cacheKey()));
        for (ChatSource s : sources) {
            id = SplitMix64.derive(id, SplitMix64.hash(s.name), s.records(), Double.doubleToLongBits(s.weight));
        }
        this.identity = id;
    }

    @Override
    public int sequenceLength() {
        return length;
    }

    @Override
    public PackedBatch next(int rowCount) {
        if (rowCount <= 0) {
            throw new IllegalArgumentException("rows must be > 0, got " + rowCount);
        }
        long t0 = System.nanoTime();
        int n = Math.multiplyExact(rowCount, length);
        int[] ids = new int[n];
        int[] labels = new int[n];
        int[] positions = new int[n];
        int[] documents = new int[n];
        for (int r = 0; r < rowCount; r++) {
            fillRow(r * length, ids, labels, positions, documents);
        }
        rows += rowCount;
        stageNanos[3] += System.nanoTime() - t0;
        return new PackedBatch(rowCount, length, ids, labels, positions, documents);
    }

    private void fillRow(int base, int[] ids, int[] labels, int[] positions, int[] documents) {
        int pos = 0;
        int segment = 0;
        while (pos < length) {
            Document d = currentDocument();
            int remaining = d.length() - docOffset;
            int room = length - pos;
            if (remaining <= room) {
                copy(d, docOffset, d.length(), base + pos, segment, ids, labels, positions, documents);
                pos += remaining;
                advanceDocument();
            } else if (leftover == Leftover.SPLIT) {
                copy(d, docOffset, docOffset + room, base + pos, segment, ids, labels, positions, documents);
                docOffset += room;
                pos = length;
            } else if (leftover == Leftover.DROP || pos == 0) {
                // DROP, or PAD with a document longer than a whole row: keep what fits, count the rest.
                copy(d, docOffset, docOffset + room, base + pos, segment, ids, labels, positions, documents);
                dropped += remaining - room;
                pos = length;
                advanceDocument();
            } else {
                // PAD: the document waits for the next row; padding gets its own document id.
                Arrays.fill(ids, base + pos, base + length, padId);
                Arrays.fill(labels, base + pos, base + length, PackedBatch.IGNORE);
                Arrays.fill(documents, base + pos, base + length, segment);
                for (int i = pos; i < length; i++) {
                    positions[base + i] = i - pos;
                }
                padding += room;
                pos = length;
            }
            segment++;
        }
        emitted += length;
    }

    /** Copies tokens [from, to) of the current document to row offset at; the label of a token is the next token of the same segment if supervised. */
    private void copy(Document d, int from, int to, int at, int segment, int[] ids, int[] labels, int[] positions, int[] documents) {
        if (from == 0) {
            // A document counts for its source when its first token is emitted (once, whatever the leftover policy).
            int s = docSource[cursor];
            tokensTaken[s] += d.length();
            docsTaken[s]++;
        }
        int[] src = d.ids();
        boolean[] sup = d.supervised();
        System.arraycopy(src, from, ids, at, to - from);
        for (int t = from; t < to; t++) {
            int p = at + t - from;
            boolean target = t + 1 < to && sup[t + 1];
            labels[p] = target ? src[t + 1] : PackedBatch.IGNORE;
            if (target) {
                supervised++;
            }
            positions[p] = t - from;
            documents[p] = segment;
        }
    }

    private Document currentDocument() {
        if (cursor == docs.length) {
            while (ahead.size() < renderThreads) {
                ahead.add(drawChunk(CHUNK));
            }
            long waited = System.nanoTime();
            Chunk next = await(ahead.poll());
            stageNanos[3] -= System.nanoTime() - waited; // waiting is not packing: the stage that is waited for counts it
            ahead.add(drawChunk(CHUNK)); // rendered while this one is packed
            install(next);
        }
        return docs[cursor];
    }

    private void advanceDocument() {
        cursor++;
        docOffset = 0;
    }

    /** Draws the records of the next chunk (advancing the mixer) and renders them on the second thread. */
    private Future<Chunk> drawChunk(int size) {
        long[] start = mixer.snapshot();
        Mixer.Pick[] picks = new Mixer.Pick[size];
        for (int i = 0; i < size; i++) {
            picks[i] = mixer.next();
        }
        long[] end = mixer.snapshot();
        if (renderer == null) {
            renderer = RenderThreads.newPool();
        }
        return renderer.submit(() -> render(start, end, picks));
    }

    private Chunk render(long[] start, long[] end, Mixer.Pick[] picks) {
        long t0 = System.nanoTime();
        Document[] rendered = new Document[picks.length];
        int[] source = new int[picks.length];
        List<ChatRecord> records = new ArrayList<>();
        List<Integer> uncached = new ArrayList<>();
        synchronized (sources) { // a source reads through one parser, one buffer and one set of file handles
            for (int i = 0; i < picks.length; i++) {
                ChatSource s = sources[picks[i].source()];
                source[i] = picks[i].source();
                if (s.cached()) {
                    rendered[i] = s.document(picks[i].file(), picks[i].record());
                } else {
                    records.add(s.read(picks[i].file(), picks[i].record()));
                    uncached.add(i);
                }
            }
        }
        long t1 = System.nanoTime();
        if (records.isEmpty()) {
            return new Chunk(start, end, rendered, source, t1 - t0, 0, 0);
        }
        int[][] encoded = template.encodeContents(records);
        long t2 = System.nanoTime();
        Document[] fresh = template.assembleAll(records, encoded);
        for (int k = 0; k < fresh.length; k++) {
            if (fresh[k].problem() != null) { // it rendered when the source was indexed; a template is deterministic
                throw new InputException("a record that rendered when its source was indexed no longer does: expected " + fresh[k].problem());
            }
            rendered[uncached.get(k)] = fresh[k];
        }
        long t3 = System.nanoTime();
        return new Chunk(start, end, rendered, source, t1 - t0, t2 - t1, t3 - t2);
    }

    private void install(Chunk c) {
        chunkStart = c.start();
        chunkEnd = c.end();
        docs = c.docs();
        docSource = c.source();
        stageNanos[0] += c.readNanos();
        stageNanos[1] += c.tokeniseNanos();
        stageNanos[2] += c.templateNanos();
        cursor = 0;
        docOffset = 0;
    }

    private static Chunk await(Future<Chunk> f) {
        return RenderThreads.await(f);
    }

    /** Waits for the chunks being rendered ahead (they read the sources' files) and forgets them. */
    private void discardAhead() {
        for (Future<Chunk> f : ahead) {
            try {
                f.get();
            } catch (ExecutionException | InterruptedException e) {
                if (e instanceof InterruptedException) {
                    Thread.currentThread().interrupt();
                }
                // the chunk is dropped anyway; a real problem shows again when it is drawn
            }
        }
        ahead.clear();
    }

    /** Nanoseconds per stage so far: read+parse, tokenise, template, pack. */
    long[] stageNanos() {
        return stageNanos.clone();
    }

    @Override
    public java.util.OptionalDouble epoch() {
        long taken = 0;
        long pass = 0;
        for (int s = 0; s < sources.length; s++) {
            taken += tokensTaken[s];
            pass += sources[s].epochTokens(); // DataPlan's tokens/epoch of source s
        }
        return pass == 0 ? java.util.OptionalDouble.empty() : java.util.OptionalDouble.of((double) taken / pass);
    }

    @Override
    public List<SourceProgress> progress() {
        List<SourceProgress> out = new ArrayList<>(sources.length);
        for (int s = 0; s < sources.length; s++) {
            out.add(new SourceProgress(sources[s].name, tokensTaken[s], (double) tokensTaken[s] / sources[s].epochTokens()));
        }
        return out;
    }

    long emittedTokens() {
        return emitted;
    }

    long paddingTokens() {
        return padding;
    }

    long droppedTokens() {
        return dropped;
    }

    /** Padding tokens / emitted tokens. */
    double paddingFraction() {
        return emitted == 0 ? 0 : (double) padding / emitted;
    }

    /** A multi-line report: tokens and epochs per source, padding, dropped tokens, supervised share. */
    String report() {
        StringBuilder b = new StringBuilder();
        b.append(String.format(Locale.ROOT, "data: %d rows x %d = %d tokens%s; padding %.2f%%; dropped %d tokens; supervised %.1f%%",
                rows, length, emitted, budget > 0 ? String.format(Locale.ROOT, " (%.1f%% of the %d-token budget)", 100.0 * emitted / budget, budget) : "",
                100 * paddingFraction(), dropped, emitted == 0 ? 0.0 : 100.0 * supervised / emitted));
        for (int s = 0; s < sources.length; s++) {
            b.append(String.format(Locale.ROOT, "%n  %-16s weight %.3f  %12d tokens  %8d docs  %.3f epochs (epoch %d)",
                    sources[s].name, mixer.probability(s), tokensTaken[s], docsTaken[s],
                    (double) tokensTaken[s] / sources[s].epochTokens(),
                    chunkEnd == null ? mixer.epoch(s) : Mixer.epoch(chunkEnd, s)));
        }
        return b.toString();
    }

    @Override
    public byte[] saveState() {
        ByteArrayOutputStream bytes = new ByteArrayOutputStream();
        try (DataOutputStream out = new DataOutputStream(bytes)) {
            out.writeInt(STATE_MAGIC);
            out.writeInt(STATE_VERSION);
            out.writeLong(identity);
            long[] start = chunkStart == null ? mixer.snapshot() : chunkStart;
            out.writeInt(start.length);
            for (long v : start) {
                out.writeLong(v);
            }
            out.writeInt(docs.length);
            out.writeInt(cursor);
            out.writeInt(docOffset);
            for (int s = 0; s < sources.length; s++) {
                out.writeLong(tokensTaken[s]);
                out.writeLong(docsTaken[s]);
            }
            out.writeLong(emitted);
            out.writeLong(padding);
            out.writeLong(dropped);
            out.writeLong(supervised);
            out.writeLong(rows);
        } catch (IOException e) {
            throw new IllegalStateException("writing to memory cannot fail", e);
        }
        return bytes.toByteArray();
    }

    @Override
    public void restoreState(byte[] state) {
        try (DataInputStream in = new DataInputStream(new ByteArrayInputStream(state))) {
            if (in.readInt() != STATE_MAGIC || in.readInt() != STATE_VERSION) {
                throw new InputException("data state: expected a datamix stream state (version " + STATE_VERSION + "), found other bytes");
            }
            if (in.readLong() != identity) {
                throw new InputException("data state: expected the state of a stream with the same sources, weights, seed, "
                        + "template, leftover policy and sequence length " + length + ", found one from a different configuration");
            }
            long[] start = new long[in.readInt()];
            for (int i = 0; i < start.length; i++) {
                start[i] = in.readLong();
            }
            int chunkLength = in.readInt();
            int savedCursor = in.readInt();
            int savedOffset = in.readInt();
            for (int s = 0; s < sources.length; s++) {
                tokensTaken[s] = in.readLong();
                docsTaken[s] = in.readLong();
            }
            emitted = in.readLong();
            padding = in.readLong();
            dropped = in.readLong();
            supervised = in.readLong();
            rows = in.readLong();
            discardAhead();
            mixer.restore(start);
            if (chunkLength == 0) {
                chunkStart = null;
                chunkEnd = null;
                docs = new Document[0];
                docSource = new int[0];
                cursor = 0;
                docOffset = 0;
            } else {
                install(await(drawChunk(chunkLength)));
                cursor = savedCursor;
                docOffset = savedOffset;
            }
        } catch (IOException e) {
            throw new InputException("data state: expected a datamix stream state, found truncated bytes", e);
        }
    }

    @Override
    public void close() {
        discardAhead();
        if (renderer != null) {
            renderer.shutdown();
        }
        for (ChatSource s : sources) {
            s.close();
        }
    }
}
