package io.anneal.api.data;

import io.anneal.api.Experimental;

/**
 * How preference pairs travel in a {@link PackedBatch}, the contract between a preference data
 * source and a preference objective (DPO). Prompt+chosen and prompt+rejected are two documents of
 * the same row, so one forward pass scores both and the model keeps them apart as it keeps any
 * packed documents apart. Within a row, pair {@code k} (counted from 0) has document id
 * {@code 2k} for its chosen sequence and {@code 2k+1} for its rejected one; padding has an id of
 * its own after the pairs and no supervised label. Only response tokens are supervised, so a
 * supervised position with document id {@code d} belongs to pair {@code d / 2} of its row, and to
 * the chosen answer when {@code d} is even. A preference data source puts one pair per row (pair 0,
 * then padding), so a stage counts its batch in pairs: a micro-batch of R rows holds R pairs.
 *
 * @since API 1.2
 */
@Experimental(since = "1.2")
public final class PreferenceRows {
    private PreferenceRows() {
    }

    public static int chosenDocument(int pairInRow) {
        return 2 * pairInRow;
    }

    public static int rejectedDocument(int pairInRow) {
        return 2 * pairInRow + 1;
    }

    /**
     * The pairs of a batch, numbered row by row.
     *
     * @param pairs         number of pairs in the batch (those with a supervised token on both sides)
     * @param pairOfToken   per position: the pair index in the batch, or -1 where unsupervised
     * @param chosenToken   per position: true for a supervised token of a chosen answer
     * @param chosenTokens  per pair: supervised tokens of the chosen answer
     * @param rejectedTokens per pair: supervised tokens of the rejected answer
     */
    public record Layout(int pairs, int[] pairOfToken, boolean[] chosenToken, int[] chosenTokens, int[] rejectedTokens) {
    }

    /**
     * Decodes the pairs of {@code batch}.
     *
     * @throws IllegalArgumentException when a pair has supervised tokens on one side only (the batch
     *                                  was not laid out as this class says)
     */
    public static Layout of(PackedBatch batch) {
        int n = batch.rows() * batch.length();
        int[] pairOfToken = new int[n];
        boolean[] chosen = new boolean[n];
        java.util.Arrays.fill(pairOfToken, -1);
        int[] chosenCounts = new int[n];
        int[] rejectedCounts = new int[n];
        int pairs = 0;
        for (int r = 0; r < batch.rows(); r++) {
            int maxPair = -1;
            int base = pairs;
            for (int t = 0; t < batch.length(); t++) {
                int i = r * batch.length() + t;
                if (batch.labels()[i] == PackedBatch.IGNORE) {
                    continue;
                }
                int doc = batch.documentIds()[i];
                if (doc < 0) {
                    throw new IllegalArgumentException("row " + r + ": a supervised token with document id " + doc);
                }
                int pair = base + doc / 2;
                if (pair >= n) {
                    throw new IllegalArgumentException("row " + r + ": document id " + doc + " is beyond any pair of the row");
                }
                pairOfToken[i] = pair;
                chosen[i] = doc % 2 == 0;
                if (chosen[i]) {
                    chosenCounts[pair]++;
                } else {
                    rejectedCounts[pair]++;
                }
                maxPair = Math.max(maxPair, doc / 2);
            }
            pairs = base + maxPair + 1;
        }
        for (int p = 0; p < pairs; p++) {
            if (chosenCounts[p] == 0 || rejectedCounts[p] == 0) {
                throw new IllegalArgumentException("preference pair " + p + " of the batch has "
                        + chosenCounts[p] + " supervised chosen and " + rejectedCounts[p]
                        + " supervised rejected tokens; a pair needs both (PreferenceRows layout)");
            }
        }
        return new Layout(pairs, pairOfToken, chosen, java.util.Arrays.copyOf(chosenCounts, pairs),
                java.util.Arrays.copyOf(rejectedCounts, pairs));
    }
}
