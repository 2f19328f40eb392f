package io.anneal.datamix;

import io.anneal.api.InputException;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.AtomicMoveNotSupportedException;
import java.nio.file.FileAlreadyExistsException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.security.MessageDigest;
import java.security.NoSuchAlgorithmException;
import java.util.HexFormat;
import java.util.concurrent.ThreadLocalRandom;

/**
 * Where a source file's index and token cache live ({@code cache} and {@code cache-dir} of the data
 * block): next to the file by default ({@code <file>.anneal-index}, {@code <file>.anneal-tokens}), or
 * in {@code cache-dir} when it is set, as {@code <file name>-<16 hex digits of the SHA-256 of the
 * file's absolute path>.anneal-...} so that shards of the same name in different folders never
 * share a cache. {@code enabled = false}: no file is read or written.
 *
 * @param enabled the {@code cache} setting
 * @param dir     the {@code cache-dir} setting, resolved; null when unset (next to the file)
 */
record CacheFiles(boolean enabled, Path dir) {
    static final CacheFiles OFF = new CacheFiles(false, null);
    static final CacheFiles NEXT_TO_FILE = new CacheFiles(true, null);
    /** The end of the name of a writer's {@link #temporaryFor temporary file}. */
    static final String TEMPORARY_SUFFIX = ".tmp";

    /** The cache file of {@code file} with {@code suffix} ({@code .anneal-index} or {@code .anneal-tokens}). */
    Path locate(Path file, String suffix) {
        if (dir == null) {
            return file.resolveSibling(file.getFileName() + suffix);
        }
        return dir.resolve(file.getFileName() + "-" + pathHash(file) + suffix);
    }

    /**
     * Checks before an index pass that its caches can be written, so a read-only data folder fails
     * at once with the setting to change, not after the pass.
     */
    void checkWritable(Path cache) {
        Path folder = cache.toAbsolutePath().getParent();
        try {
            if (dir != null) {
                Files.createDirectories(folder);
            }
        } catch (IOException e) {
            throw new InputException(folder + ": cannot create the cache folder (data.cache-dir): " + e.getMessage(), e);
        }
        if (!Files.isWritable(folder)) {
            throw new InputException(cache + ": cannot write the token cache: the folder " + folder + " is not writable; "
                    + (dir == null ? "set data.cache-dir to a writable folder (caches then go there)"
                            : "set data.cache-dir to a writable folder")
                    + ", or data.cache = false to re-read and re-tokenise every record at every draw");
        }
    }

    /**
     * Creates an empty temporary file of its own for one writer of {@code target}, in the target's
     * folder (so the rename into place stays on one file system): {@code <target name>.<random>.tmp}.
     * Processes that build the same cache at the same time (several {@code anneal run} started
     * together on one data file) each write their own file and each rename a complete one into place;
     * the last rename wins, and a reader only ever sees a complete cache. The file is created with
     * the permissions of any new file (the umask's), not {@code Files.createTempFile}'s owner-only
     * ones, so the published cache stays as readable as before. The writer deletes it when it does
     * not commit. Since the names are unique, no later build overwrites a leftover: one that a killed
     * process (or a failed delete) leaves stays until deleted by hand; nothing reads it.
     */
    static Path temporaryFor(Path target) throws IOException {
        Path folder = target.toAbsolutePath().getParent();
        String prefix = target.getFileName() + ".";
        for (int attempt = 0;; attempt++) {
            Path tmp = folder.resolve(prefix + Long.toUnsignedString(ThreadLocalRandom.current().nextLong(), 36) + TEMPORARY_SUFFIX);
            try {
                return Files.createFile(tmp); // exclusive: fails when the name is taken
            } catch (FileAlreadyExistsException e) {
                if (attempt == 100) {
                    throw e;
                }
            }
        }
    }

    /**
     * Deletes a writer's temporary file that will not be committed. A failed delete is added to
     * {@code cause} (the failure that stopped the writer) when there is one, else dropped: the file
     * stays beside the cache under its own name, where nothing reads it and no other build writes.
     */
    static void deleteTemporary(Path tmp, Throwable cause) {
        try {
            Files.deleteIfExists(tmp);
        } catch (IOException e) {
            if (cause != null) {
                cause.addSuppressed(e);
            }
        }
    }

    /** Renames a finished temporary file over its target, atomically where the file system can. */
    static void moveIntoPlace(Path tmp, Path target) throws IOException {
        try {
            Files.move(tmp, target, StandardCopyOption.ATOMIC_MOVE, StandardCopyOption.REPLACE_EXISTING);
        } catch (AtomicMoveNotSupportedException e) {
            Files.move(tmp, target, StandardCopyOption.REPLACE_EXISTING);
        }
    }

    private static String pathHash(Path file) {
        try {
            byte[] digest = MessageDigest.getInstance("SHA-256")
                    .digest(file.toAbsolutePath().normalize().toString().getBytes(StandardCharsets.UTF_8));
            return HexFormat.of().formatHex(digest, 0, 8);
        } catch (NoSuchAlgorithmException e) {
            throw new IllegalStateException("SHA-256 is required of every JVM", e);
        }
    }
}
