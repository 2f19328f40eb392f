package io.anneal.api.data;

import io.anneal.api.Stable;
import java.util.List;

/**
 * An endless, deterministic stream of packed batches. Its position is state: a checkpoint stores
 * {@link #saveState()} and a resumed run continues the exact stream without replaying batches.
 */
@Stable(since = "1.0")
public interface TokenBatchStream extends AutoCloseable {

    /** Tokens per row. */
    int sequenceLength();

    /** The next {@code rows} rows. */
    PackedBatch next(int rows);

    /** Consumption per source so far (epochs per source, as the recipe reports them). */
    List<SourceProgress> progress();

    /**
     * Passes over the whole data so far, TRL's {@code epoch}: what the stream consumed over one pass
     * of every source once, in the unit {@code anneal data plan} counts (tokens for chat data: the
     * sum of its tokens/epoch column; pairs for preference data). Fractional (1.5 is one pass and a
     * half); empty where the stream cannot tell. Since API 1.2.
     */
    default java.util.OptionalDouble epoch() {
        return java.util.OptionalDouble.empty();
    }

    /** The stream's position: per-source permutation seeds, cursors, epochs, the mixer's random state. */
    byte[] saveState();

    /** Continues from a state returned by {@link #saveState()} of a stream built from the same config. */
    void restoreState(byte[] state);

    @Override
    void close();
}
