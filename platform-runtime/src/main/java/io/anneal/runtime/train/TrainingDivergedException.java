package io.anneal.runtime.train;

/**
 * The loss or the gradients stopped being finite and training cannot go on, or the run ended on
 * skipped steps: a failed run with its own exit code, {@link #EXIT_CODE}.
 */
public final class TrainingDivergedException extends RunFailedException {
    private static final long serialVersionUID = 1L;
    /** The exit code of a run stopped by non-finite loss or gradients. */
    public static final int EXIT_CODE = 3;

    public TrainingDivergedException(String message) {
        super(message, EXIT_CODE, null);
    }
}
