package io.anneal.runtime.train;

import io.anneal.api.data.PackedBatch;
import io.anneal.api.data.SourceProgress;
import io.anneal.api.data.TokenBatchStream;
import io.anneal.api.data.TrainingData;

import java.nio.ByteBuffer;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.SplittableRandom;

/**
 * Test data: a fixed list of rows served in order, cycling; the position is the row cursor. Rows
 * follow a noisy rule (next = 3 * current + 1 mod V, one time in five random), and each row masks
 * a different prefix, so rows have different supervised counts.
 */
final class ListTrainingData implements TrainingData {
    final List<int[]> rowIds = new ArrayList<>();
    final List<int[]> rowLabels = new ArrayList<>();
    private final int vocab;
    private final int length;

    ListTrainingData(int vocab, int length, int rows, long seed) {
        this.vocab = vocab;
        this.length = length;
        SplittableRandom random = new SplittableRandom(seed);
        for (int r = 0; r < rows; r++) {
            int[] tokens = new int[length + 1];
            tokens[0] = random.nextInt(vocab);
            for (int i = 1; i <= length; i++) {
                tokens[i] = random.nextInt(5) == 0 ? random.nextInt(vocab) : (3 * tokens[i - 1] + 1) % vocab;
            }
            int[] labels = Arrays.copyOfRange(tokens, 1, length + 1);
            int masked = r % length; // a prompt of r mod length tokens: supervised counts differ per row
            Arrays.fill(labels, 0, masked, PackedBatch.IGNORE);
            rowIds.add(Arrays.copyOf(tokens, length));
            rowLabels.add(labels);
        }
    }

    @Override
    public TokenBatchStream open(int sequenceLength) {
        if (sequenceLength != length) {
            throw new IllegalArgumentException("test data has rows of " + length);
        }
        return new Stream();
    }

    /** Stand-ins for a tokenizer's files, which the stage writes into every model folder. */
    @Override
    public java.util.Map<String, byte[]> modelFolderFiles() {
        return java.util.Map.of("tokenizer.json", "{\"model\": {}}".getBytes(java.nio.charset.StandardCharsets.UTF_8),
                "tokenizer_config.json", "{\"chat_template\": \"{{ messages }}\"}".getBytes(java.nio.charset.StandardCharsets.UTF_8));
    }

    @Override
    public int vocabularySize() {
        return vocab;
    }

    /** The rows [from, from + count) of the cycle as one batch. */
    PackedBatch rows(int from, int count) {
        int n = count * length;
        int[] ids = new int[n];
        int[] labels = new int[n];
        int[] positions = new int[n];
        int[] documents = new int[n];
        for (int r = 0; r < count; r++) {
            int row = (from + r) % rowIds.size();
            System.arraycopy(rowIds.get(row), 0, ids, r * length, length);
            System.arraycopy(rowLabels.get(row), 0, labels, r * length, length);
            for (int i = 0; i < length; i++) {
                positions[r * length + i] = i;
            }
        }
        return new PackedBatch(count, length, ids, labels, positions, documents);
    }

    private final class Stream implements TokenBatchStream {
        private long cursor;

        @Override
        public int sequenceLength() {
            return length;
        }

        @Override
        public PackedBatch next(int rows) {
            PackedBatch b = rows((int) (cursor % rowIds.size()), rows);
            cursor += rows;
            return b;
        }

        @Override
        public java.util.OptionalDouble epoch() {
            return java.util.OptionalDouble.of((double) cursor / rowIds.size()); // one source: rows taken over its rows
        }

        @Override
        public List<SourceProgress> progress() {
            return List.of(new SourceProgress("chat", cursor * length, (double) cursor / rowIds.size()));
        }

        @Override
        public byte[] saveState() {
            return ByteBuffer.allocate(Long.BYTES).putLong(cursor).array();
        }

        @Override
        public void restoreState(byte[] state) {
            cursor = ByteBuffer.wrap(state).getLong();
        }

        @Override
        public void close() {
        }
    }
}
