package io.anneal.runtime.train;

/**
 * A run that failed for a reason its message tells in full: what happened and what is safe on disk
 * (the last checkpoint that exists, or that none does). The CLI prints the message as it is, with no
 * Java class name, and exits with {@link #exitCode()}: 1 for faults such as a full disk.
 */
public class RunFailedException extends RuntimeException {
    private static final long serialVersionUID = 1L;
    private final int exitCode;

    public RunFailedException(String message, int exitCode, Throwable cause) {
        super(message, cause);
        this.exitCode = exitCode;
    }

    public RunFailedException(String message, Throwable cause) {
        this(message, 1, cause);
    }

    public int exitCode() {
        return exitCode;
    }

    /** An exception's own words for a user: its message, without the class name that toString() adds. */
    public static String reason(Throwable e) {
        if (e instanceof java.nio.file.FileSystemException f && f.getReason() != null) {
            return f.getReason() + (f.getFile() == null ? "" : " (" + f.getFile() + ")");
        }
        if (e instanceof java.nio.file.NoSuchFileException || e instanceof java.nio.file.FileSystemException) {
            return "cannot access " + e.getMessage();
        }
        return e.getMessage() != null && !e.getMessage().isBlank() ? e.getMessage()
                : "an unexpected " + e.getClass().getSimpleName();
    }
}
