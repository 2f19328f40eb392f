package io.anneal.datamix;

import io.anneal.api.InputException;
import io.anneal.api.config.ConfigException;
import io.anneal.api.config.ConfigProblem;
import io.anneal.api.config.ConfigView;
import io.anneal.toolkit.chat.ChatRecord;
import io.anneal.api.data.Message;
import io.anneal.api.data.PackedBatch;
import io.anneal.toolkit.chat.PreferenceRecord;
import io.anneal.api.data.PreferenceRows;
import io.anneal.api.data.SourceProgress;
import io.anneal.api.data.TokenBatchStream;
import io.anneal.api.data.TrainingData;
import io.anneal.api.extension.ExtensionContext;
import io.anneal.api.extension.ExtensionFactory;

import java.io.ByteArrayInputStream;
import java.io.ByteArrayOutputStream;
import java.io.DataInputStream;
import java.io.DataOutputStream;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.function.Consumer;
import java.util.stream.Stream;

/**
 * {@code data { type = preferences, tokenizer = ..., sources = [{name, path}], ... }}: preference
 * pairs (both JSONL forms of {@link PreferenceRecord}) rendered by the ChatML template and packed as
 * {@link PreferenceRows} says: prompt+chosen and prompt+rejected are two documents of the same row,
 * only the response tokens (and their closing {@code <|im_end|>}) are supervised, one pair per row
 * (so that a stage counts its batch in pairs, seed 000's unit); the rest of the row is padding, so
 * a sequence length near the longest pair wastes least. The pairs of all sources are
 * shuffled together, a fresh permutation each epoch; the stream's position (epoch, cursor) is its
 * state, so a resumed run continues without replaying batches.
 *
 * <p>Bad input, per record ({@code on-error}): malformed JSON, an empty answer, a chosen answer
 * identical to the rejected one, or a pair longer than the sequence length fail naming the file and
 * line, or are skipped and counted in the load report.
 */
final class PreferenceTrainingData implements TrainingData {
    private final HfTokenizer tokenizer;
    private final List<MixTrainingData.SourceSpec> specs;
    private final long seed;
    private final Consumer<String> report;
    /** The pairs loaded for a sequence length; later opens (the trainer's evaluations) reuse them. Guarded by this. */
    private List<Pair> loaded;
    private int loadedLength = -1;

    /** One rendered pair: its source, where it came from, and the two documents. */
    record Pair(int source, String where, int promptLength, int[] chosenIds, boolean[] chosenSupervised, int[] rejectedIds,
                boolean[] rejectedSupervised) {
        int length() {
            return chosenIds.length + rejectedIds.length;
        }
    }

    PreferenceTrainingData(HfTokenizer tokenizer, List<MixTrainingData.SourceSpec> specs, long seed, Consumer<String> report) {
        this.tokenizer = tokenizer;
        this.specs = List.copyOf(specs);
        this.seed = seed;
        this.report = report;
    }

    @Override
    public boolean preferencePairs() {
        return true;
    }

    @Override
    public int vocabularySize() {
        return tokenizer.vocabularySize();
    }

    /** The tokenizer's files, with the ChatML template (no BOS) that {@link #load} renders. */
    @Override
    public java.util.Map<String, byte[]> modelFolderFiles() {
        return ModelFolderFiles.of(tokenizer, ModelFolderFiles.chatMl(false));
    }

    @Override
    public String describe() {
        return "preferences(" + specs.size() + " source" + (specs.size() == 1 ? "" : "s") + ")";
    }

    @Override
    public TokenBatchStream open(int sequenceLength) {
        List<Pair> pairs;
        synchronized (this) {
            if (loadedLength != sequenceLength) {
                loaded = load(sequenceLength);
                loadedLength = sequenceLength;
            }
            pairs = loaded;
        }
        int pad = tokenizer.hasSpecialToken("<|pad|>") ? tokenizer.specialTokenId("<|pad|>") : tokenizer.specialTokenId("<|endoftext|>");
        return new Stream_(pairs, sequenceLength, pad);
    }

    /** Reads, renders and checks every record of every source. */
    List<Pair> load(int sequenceLength) {
        ChatMlTemplate template = new ChatMlTemplate(tokenizer, LossOn.ASSISTANT, true);
        RecordParser parser = new RecordParser();
        List<Pair> pairs = new ArrayList<>();
        for (int s = 0; s < specs.size(); s++) {
            MixTrainingData.SourceSpec spec = specs.get(s);
            int skipped = 0;
            String firstSkip = null;
            for (Path file : files(spec.path())) {
                List<String> lines;
                try {
                    lines = Files.readAllLines(file, StandardCharsets.UTF_8);
                } catch (IOException e) {
                    throw new InputException(file + ": cannot be read (" + e.getMessage() + ")", e);
                }
                for (int i = 0; i < lines.size(); i++) {
                    String line = lines.get(i);
                    if (line.isBlank()) {
                        continue;
                    }
                    String where = file + ":" + (i + 1);
                    try {
                        byte[] bytes = line.getBytes(StandardCharsets.UTF_8);
                        PreferenceRecord record = parser.parsePreference(bytes, 0, bytes.length);
                        if (blank(record.chosen()) || blank(record.rejected())) {
                            throw new RecordParser.BadRecordException("non-empty \"chosen\" and \"rejected\" answers, found an empty "
                                    + (blank(record.chosen()) ? "chosen" : "rejected") + " answer");
                        }
                        if (record.chosen().equals(record.rejected())) {
                            throw new RecordParser.BadRecordException("a chosen answer that differs from the rejected one, found two identical answers");
                        }
                        Pair pair = render(template, s, where, record);
                        if (pair.promptLength() >= sequenceLength) {
                            throw new RecordParser.BadRecordException("a prompt shorter than the sequence length (" + sequenceLength
                                    + " tokens), found a prompt of " + pair.promptLength() + " tokens");
                        }
                        if (pair.length() > sequenceLength) {
                            throw new RecordParser.BadRecordException("a pair that fits in one row of " + sequenceLength
                                    + " tokens (prompt+chosen and prompt+rejected together), found " + pair.length() + " tokens");
                        }
                        pairs.add(pair);
                    } catch (RecordParser.BadRecordException e) {
                        if (spec.onError() == OnError.FAIL) {
                            throw new InputException(where + ": expected " + e.getMessage()
                                    + " (set on-error = skip to skip and count such records)");
                        }
                        skipped++;
                        if (firstSkip == null) {
                            firstSkip = where + ": " + e.getMessage();
                        }
                    }
                }
            }
            final int source = s;
            long count = pairs.stream().filter(p -> p.source() == source).count();
            MixTrainingData.refuseTooManySkipped(spec, "pairs", skipped, skipped + count, firstSkip);
            report.accept("preference source " + spec.name() + " (" + spec.path() + "): " + count + " pairs"
                    + (skipped > 0 ? ", " + skipped + " skipped (first: " + firstSkip + ")" : ""));
            if (count == 0) {
                throw new InputException(spec.path() + ": no usable preference pair (source " + spec.name() + ")");
            }
        }
        return pairs;
    }

    /** An answer with no text: no turn, or only turns whose content is blank ("" or spaces). */
    private static boolean blank(List<Message> answer) {
        return answer.stream().allMatch(m -> m.content() == null || m.content().isBlank());
    }

    private static List<Path> files(Path path) {
        if (!Files.isDirectory(path)) {
            return List.of(path);
        }
        try (Stream<Path> s = Files.list(path)) {
            return s.filter(p -> p.getFileName().toString().endsWith(".jsonl")).sorted().toList();
        } catch (IOException e) {
            throw new InputException(path + ": cannot be listed (" + e.getMessage() + ")", e);
        }
    }

    /** prompt+answer rendered whole; the prompt's tokens (its rendering is a prefix) are never supervised. */
    private static Pair render(ChatMlTemplate template, int source, String where, PreferenceRecord record)
            throws RecordParser.BadRecordException {
        List<Message> chosenTurns = new ArrayList<>(record.prompt());
        chosenTurns.addAll(record.chosen());
        List<Message> rejectedTurns = new ArrayList<>(record.prompt());
        rejectedTurns.addAll(record.rejected());
        List<ChatRecord> records = new ArrayList<>();
        records.add(new ChatRecord(chosenTurns));
        records.add(new ChatRecord(rejectedTurns));
        boolean hasPrompt = !record.prompt().isEmpty();
        if (hasPrompt) {
            records.add(new ChatRecord(record.prompt()));
        }
        Document[] docs = template.renderAll(records);
        for (Document d : docs) {
            if (d.problem() != null) {
                throw new RecordParser.BadRecordException(d.problem());
            }
        }
        int promptLength = hasPrompt ? docs[2].length() : 0;
        boolean[] chosenSup = answerOnly(docs[0], promptLength);
        boolean[] rejectedSup = answerOnly(docs[1], promptLength);
        if (count(chosenSup) == 0 || count(rejectedSup) == 0) {
            throw new RecordParser.BadRecordException("assistant answers with at least one supervised token, found none");
        }
        return new Pair(source, where, promptLength, docs[0].ids(), chosenSup, docs[1].ids(), rejectedSup);
    }

    private static boolean[] answerOnly(Document d, int promptLength) {
        boolean[] sup = d.supervised().clone();
        Arrays.fill(sup, 0, Math.min(promptLength, sup.length), false);
        return sup;
    }

    private static int count(boolean[] b) {
        int c = 0;
        for (int j = 1; j < b.length; j++) {
            c += b[j] ? 1 : 0;
        }
        return c;
    }

    /** The packed stream: one whole pair per row, a seeded permutation per epoch. */
    final class Stream_ implements TokenBatchStream {
        private final List<Pair> pairs;
        private final int length;
        private final int pad;
        private int epoch;
        private int cursor;
        private int[] order;
        private final long[] tokensTaken = new long[specs.size()];
        private final long[] pairsTaken = new long[specs.size()];
        private final long[] pairsPerSource = new long[specs.size()];

        Stream_(List<Pair> pairs, int length, int pad) {
            this.pairs = pairs;
            this.length = length;
            this.pad = pad;
            for (Pair p : pairs) {
                pairsPerSource[p.source()]++;
            }
            this.order = SplitMix64.permutation(pairs.size(), SplitMix64.derive(seed, 0));
        }

        @Override
        public int sequenceLength() {
            return length;
        }

        private Pair peek() {
            if (cursor == order.length) {
                epoch++;
                cursor = 0;
                order = SplitMix64.permutation(pairs.size(), SplitMix64.derive(seed, epoch));
            }
            return pairs.get(order[cursor]);
        }

        @Override
        public PackedBatch next(int rows) {
            int n = rows * length;
            int[] ids = new int[n];
            int[] labels = new int[n];
            int[] positions = new int[n];
            int[] documents = new int[n];
            for (int r = 0; r < rows; r++) {
                int base = r * length;
                // one pair per row (pair 0 of the row): a stage counts its batch in pairs, batch-pairs = rows per step
                Pair p = peek();
                cursor++;
                copy(p.chosenIds(), p.chosenSupervised(), base, PreferenceRows.chosenDocument(0), ids, labels, positions, documents);
                int pos = p.chosenIds().length;
                copy(p.rejectedIds(), p.rejectedSupervised(), base + pos, PreferenceRows.rejectedDocument(0), ids, labels, positions, documents);
                pos += p.rejectedIds().length;
                tokensTaken[p.source()] += p.length();
                pairsTaken[p.source()]++;
                // padding: its own document id after the pair, nothing supervised
                for (int t = pos; t < length; t++) {
                    ids[base + t] = pad;
                    labels[base + t] = PackedBatch.IGNORE;
                    positions[base + t] = t - pos;
                    documents[base + t] = PreferenceRows.chosenDocument(1);
                }
            }
            return new PackedBatch(rows, length, ids, labels, positions, documents);
        }

        private void copy(int[] src, boolean[] sup, int at, int document, int[] ids, int[] labels, int[] positions, int[] documents) {
            System.arraycopy(src, 0, ids, at, src.length);
            for (int t = 0; t < src.length; t++) {
                boolean target = t + 1 < src.length && sup[t + 1];
                labels[at + t] = target ? src[t + 1] : PackedBatch.IGNORE;
                positions[at + t] = t;
                documents[at + t] = document;
            }
        }

        @Override
        public java.util.OptionalDouble epoch() {
            long taken = 0;
            long pass = 0;
            for (int s = 0; s < specs.size(); s++) {
                taken += pairsTaken[s];
                pass += pairsPerSource[s]; // one pass: every pair of every source once
            }
            return pass == 0 ? java.util.OptionalDouble.empty() : java.util.OptionalDouble.of((double) taken / pass);
        }

        @Override
        public List<SourceProgress> progress() {
            List<SourceProgress> out = new ArrayList<>();
            for (int s = 0; s < specs.size(); s++) {
                out.add(new SourceProgress(specs.get(s).name(), tokensTaken[s],
                        pairsPerSource[s] == 0 ? 0 : (double) pairsTaken[s] / pairsPerSource[s]));
            }
            return out;
        }

        @Override
        public byte[] saveState() {
            ByteArrayOutputStream bytes = new ByteArrayOutputStream();
            try (DataOutputStream out = new DataOutputStream(bytes)) {
                out.writeInt(1); // format
                out.writeInt(pairs.size());
                out.writeInt(epoch);
                out.writeInt(cursor);
                for (int s = 0; s < specs.size(); s++) {
                    out.writeLong(tokensTaken[s]);
                    out.writeLong(pairsTaken[s]);
                }
            } catch (IOException e) {
                throw new IllegalStateException(e);
            }
            return bytes.toByteArray();
        }

        @Override
        public void restoreState(byte[] state) {
            try (DataInputStream in = new DataInputStream(new ByteArrayInputStream(state))) {
                if (in.readInt() != 1) {
                    throw new InputException("the preference stream state has an unknown format");
                }
                int size = in.readInt();
                if (size != pairs.size()) {
                    throw new InputException("the preference data changed since the checkpoint: " + pairs.size()
                            + " pairs now, " + size + " then; resume needs the same data");
                }
                epoch = in.readInt();
                cursor = in.readInt();
                order = SplitMix64.permutation(pairs.size(), SplitMix64.derive(seed, epoch));
                for (int s = 0; s < specs.size(); s++) {
                    tokensTaken[s] = in.readLong();
                    pairsTaken[s] = in.readLong();
                }
            } catch (IOException e) {
                throw new InputException("the preference stream state cannot be read: " + e.getMessage(), e);
            }
        }

        @Override
        public void close() {
        }
    }

    /** The factory: {@code anneal.training-data.preferences} in this plugin's reference.conf. */
    static final class Factory implements ExtensionFactory<TrainingData> {
        @Override
        public Class<TrainingData> extensionPoint() {
            return TrainingData.class;
        }

        @Override
        public String type() {
            return "preferences";
        }

        @Override
        public String description() {
            return "preference pairs (prompt, chosen, rejected), ChatML, chosen and rejected packed in one row (DPO)";
        }

        @Override
        public TrainingData create(ConfigView config, ExtensionContext context) {
            RenderThreads.usePipelineThreads(context.threads());
            if (!"chatml".equals(config.getString("template"))) {
                throw config.invalid("template", "chatml (the only template so far)");
            }
            OnError onError = config.getEnum("on-error", OnError.class);
            List<ConfigView> list = config.getConfigList("sources");
            if (list.isEmpty()) {
                throw config.invalid("sources", "at least one source { name = ..., path = ... }", "an empty list");
            }
            List<ConfigProblem> problems = new ArrayList<>();
            List<MixTrainingData.SourceSpec> specs = MixTrainingData.Factory.sources(list, onError,
                    MixTrainingData.maxSkippedFraction(config), context, problems);
            HfTokenizer tokenizer = null;
            try {
                tokenizer = HfTokenizer.load(MixTrainingData.Factory.existingTokenizer(config, context));
            } catch (ConfigException e) {
                problems.addAll(e.problems());
            } catch (InputException e) {
                problems.addAll(config.invalid("tokenizer", "a Hugging Face tokenizer.json", e.getMessage()).problems());
            }
            if (!problems.isEmpty()) {
                throw new ConfigException(problems);
            }
            return new PreferenceTrainingData(tokenizer, specs, config.getLong("seed"), System.err::println);
        }
    }
}
