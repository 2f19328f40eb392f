package io.anneal.runtime.train;

import java.io.IOException;
import java.nio.channels.FileChannel;
import java.nio.file.AtomicMoveNotSupportedException;
import java.nio.file.DirectoryStream;
import java.nio.file.FileVisitResult;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.SimpleFileVisitor;
import java.nio.file.StandardCopyOption;
import java.nio.file.StandardOpenOption;
import java.nio.file.attribute.BasicFileAttributes;
import java.security.SecureRandom;
import java.util.ArrayList;
import java.util.Comparator;
import java.util.HexFormat;
import java.util.List;
import java.util.Optional;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

/**
 * The checkpoints of one stage, {@code <stage dir>/checkpoints/step-000123/}, committed atomically:
 * written into {@code step-000123.tmp-<random>}, every file and folder fsynced, renamed, and only then
 * marked by a {@code COMPLETE} file (fsynced). A crash or a full disk at any point leaves either no
 * folder, a temp folder, or a folder without {@code COMPLETE}: none of them is ever loaded, and the
 * previous checkpoint is untouched. Resume takes the newest folder with {@code COMPLETE}; rotation
 * keeps the newest N and never deletes the one a run resumed from.
 */
final class CheckpointStore {
    static final String COMPLETE_MARKER = "COMPLETE";
    /** SHA-256 of every file of the checkpoint, in sha256sum's format, written before the rename. */
    static final String MANIFEST = "MANIFEST.sha256";
    private static final Pattern COMMITTED = Pattern.compile("step-(\\d{6,})");
    private static final String TEMP_INFIX = ".tmp-";
    private static final SecureRandom RANDOM = new SecureRandom();

    /** Writes the content of one checkpoint into a fresh folder. */
    @FunctionalInterface
    interface Writer {
        void writeInto(Path directory) throws IOException;
    }

    /** A committed checkpoint. */
    record Checkpoint(long step, Path directory) {
    }

    private final Path root;
    private final int keepLast;

    CheckpointStore(Path root, int keepLast) {
        if (keepLast < 1) {
            throw new IllegalArgumentException("keep-last must be at least 1, got " + keepLast);
        }
        this.root = root;
        this.keepLast = keepLast;
    }

    Path root() {
        return root;
    }

    static String folderName(long step) {
        return String.format("step-%06d", step);
    }

    /** Committed checkpoints (with {@code COMPLETE}), oldest first. */
    List<Checkpoint> complete() throws IOException {
        List<Checkpoint> found = new ArrayList<>();
        if (!Files.isDirectory(root)) {
            return found;
        }
        try (DirectoryStream<Path> entries = Files.newDirectoryStream(root)) {
            for (Path entry : entries) {
                Matcher m = COMMITTED.matcher(entry.getFileName().toString());
                if (m.matches() && Files.isRegularFile(entry.resolve(COMPLETE_MARKER))) {
                    found.add(new Checkpoint(Long.parseLong(m.group(1)), entry));
                }
            }
        }
        found.sort(Comparator.comparingLong(Checkpoint::step));
        return found;
    }

    Optional<Checkpoint> latestComplete() throws IOException {
        List<Checkpoint> all = complete();
        return all.isEmpty() ? Optional.empty() : Optional.of(all.get(all.size() - 1));
    }

    /**
     * Writes and commits the checkpoint of {@code step}. On any failure the partial folder is
     * deleted, earlier checkpoints are untouched, and the exception is rethrown.
     */
    Checkpoint write(long step, Writer writer) throws IOException {
        Files.createDirectories(root);
        Path target = root.resolve(folderName(step));
        Path temp = root.resolve(folderName(step) + TEMP_INFIX + HexFormat.of().formatHex(randomBytes()));
        boolean renamed = false;
        try {
            Files.createDirectory(temp);
            FaultPoints.reached("checkpoint.temp-created", step);
            writer.writeInto(temp);
            writeManifest(temp);
            FaultPoints.reached("checkpoint.manifest-written", step);
            syncTree(temp);
            FaultPoints.reached("checkpoint.fsynced", step);
            if (Files.exists(target)) {
                // a folder of this step without COMPLETE: an earlier attempt that died after its rename
                if (Files.isRegularFile(target.resolve(COMPLETE_MARKER))) {
                    throw new IOException("checkpoint " + target + " already exists and is complete; refusing to overwrite it");
                }
                deleteTree(target);
            }
            moveAtomically(temp, target);
            renamed = true;
            syncDirectory(root);
            FaultPoints.reached("checkpoint.renamed", step);
            Path marker = target.resolve(COMPLETE_MARKER);
            try (FileChannel channel = FileChannel.open(marker, StandardOpenOption.CREATE_NEW, StandardOpenOption.WRITE)) {
                channel.write(java.nio.ByteBuffer.wrap(("step " + step + "\n").getBytes(java.nio.charset.StandardCharsets.UTF_8)));
                channel.force(true);
            }
            syncDirectory(target);
            FaultPoints.reached("checkpoint.complete", step);
            return new Checkpoint(step, target);
        } catch (IOException | RuntimeException e) {
            deleteQuietly(temp, e);
            if (renamed) {
                deleteQuietly(target, e);
            }
            throw e;
        }
    }

    /**
     * Deletes committed checkpoints beyond the newest {@code keepLast}, except {@code protectedStep}
     * (the checkpoint the run resumed from, kept until the run has committed past it for good).
     */
    List<Path> rotate(Optional<Long> protectedStep) throws IOException {
        return rotate(protectedStep.map(List::of).orElse(List.of()));
    }

    /** Deletes committed checkpoints beyond the newest {@code keepLast}, except those of {@code protectedSteps}. */
    List<Path> rotate(java.util.Collection<Long> protectedSteps) throws IOException {
        List<Checkpoint> all = complete();
        List<Path> deleted = new ArrayList<>();
        for (int i = 0; i < all.size() - keepLast; i++) {
            Checkpoint c = all.get(i);
            if (protectedSteps.contains(c.step())) {
                continue;
            }
            // remove the marker first: a crash halfway through leaves an incomplete folder, never a damaged "complete" one
            Files.deleteIfExists(c.directory().resolve(COMPLETE_MARKER));
            FaultPoints.reached("checkpoint.rotation", c.step());
            deleteTree(c.directory());
            deleted.add(c.directory());
        }
        return deleted;
    }

    /**
     * Moves the committed checkpoints after {@code step} out of the way of a run resumed from it,
     * renamed {@code superseded-step-NNNNNN-<UTC time>} (never deleted: they are another line of
     * training the user may still want). Returns each old path with its new one.
     */
    java.util.Map<Path, Path> setAsideAfter(long step) throws IOException {
        java.util.Map<Path, Path> moved = new java.util.LinkedHashMap<>();
        String stamp = java.time.format.DateTimeFormatter.ofPattern("yyyyMMdd'T'HHmmss'Z'")
                .format(java.time.ZonedDateTime.now(java.time.ZoneOffset.UTC));
        for (Checkpoint c : complete()) {
            if (c.step() > step) {
                Path target = root.resolve("superseded-" + c.directory().getFileName() + "-" + stamp);
                moveAtomically(c.directory(), target);
                moved.put(c.directory(), target);
            }
        }
        if (!moved.isEmpty()) {
            syncDirectory(root);
        }
        return moved;
    }

    /**
     * The newest committed checkpoint whose files match its manifest and pass {@code contentCheck} (what
     * the stage needs to find in it). Each newer one that does not is renamed {@code damaged-step-NNNNNN}
     * (kept for inspection, never loaded) and {@code onDamaged} hears what is wrong. A checkpoint from
     * before manifests existed is checked by {@code contentCheck} alone.
     */
    Optional<Checkpoint> latestIntact(java.util.function.Function<Checkpoint, Optional<String>> contentCheck,
                                      java.util.function.BiConsumer<Checkpoint, String> onDamaged) throws IOException {
        List<Checkpoint> all = complete();
        for (int i = all.size() - 1; i >= 0; i--) {
            Checkpoint c = all.get(i);
            Optional<String> problem = verify(c);
            if (problem.isEmpty()) {
                problem = contentCheck.apply(c);
            }
            if (problem.isEmpty()) {
                return Optional.of(c);
            }
            onDamaged.accept(c, problem.get());
            setAsideDamaged(c);
        }
        return Optional.empty();
    }

    /** Renames a committed checkpoint found unusable to {@code damaged-step-NNNNNN}: never loaded again, never deleted. */
    Path setAsideDamaged(Checkpoint checkpoint) throws IOException {
        Path target = root.resolve(damagedName(checkpoint));
        if (Files.exists(target)) {
            // an earlier damaged copy of the same step: keep both
            target = root.resolve(damagedName(checkpoint) + "-" + HexFormat.of().formatHex(randomBytes()));
        }
        moveAtomically(checkpoint.directory(), target);
        syncDirectory(root);
        return target;
    }

    static String damagedName(Checkpoint checkpoint) {
        return "damaged-" + checkpoint.directory().getFileName();
    }

    /** What is wrong with a committed checkpoint's files against its manifest; empty when nothing is. */
    static Optional<String> verify(Checkpoint checkpoint) throws IOException {
        Path manifest = checkpoint.directory().resolve(MANIFEST);
        if (!Files.exists(manifest)) {
            return Optional.empty();
        }
        for (String line : Files.readAllLines(manifest, java.nio.charset.StandardCharsets.UTF_8)) {
            int split = line.indexOf("  ");
            if (line.isBlank()) {
                continue;
            }
            if (split != 64) {
                return Optional.of(manifest + ": a line that is not 'SHA-256  path': '" + line + "'");
            }
            Path file = checkpoint.directory().resolve(line.substring(split + 2));
            if (!Files.isRegularFile(file)) {
                return Optional.of(file + " is missing (listed in " + MANIFEST + ")");
            }
            String actual = sha256(file);
            if (!actual.equals(line.substring(0, 64))) {
                return Optional.of(file + " does not match its SHA-256 in " + MANIFEST + " (expected "
                        + line.substring(0, 64) + ", found " + actual + ")");
            }
        }
        return Optional.empty();
    }

    private static void writeManifest(Path directory) throws IOException {
        List<Path> files = new ArrayList<>();
        try (var walk = Files.walk(directory)) {
            walk.filter(Files::isRegularFile).forEach(files::add);
        }
        files.sort(Comparator.comparing(f -> directory.relativize(f).toString()));
        StringBuilder manifest = new StringBuilder();
        for (Path f : files) {
            manifest.append(sha256(f)).append("  ").append(directory.relativize(f).toString().replace('\\', '/')).append('\n');
        }
        Files.writeString(directory.resolve(MANIFEST), manifest, java.nio.charset.StandardCharsets.UTF_8);
    }

    private static String sha256(Path file) throws IOException {
        try {
            java.security.MessageDigest digest = java.security.MessageDigest.getInstance("SHA-256");
            try (var in = Files.newInputStream(file)) {
                byte[] buffer = new byte[1 << 20];
                for (int n; (n = in.read(buffer)) > 0; ) {
                    digest.update(buffer, 0, n);
                }
            }
            return HexFormat.of().formatHex(digest.digest());
        } catch (java.security.NoSuchAlgorithmException e) {
            throw new IllegalStateException("SHA-256 is part of every Java runtime", e);
        }
    }

    /** Deletes temp folders and uncommitted step folders left by a crash; returns what it deleted. */
    List<Path> removeIncomplete() throws IOException {
        List<Path> deleted = new ArrayList<>();
        if (!Files.isDirectory(root)) {
            return deleted;
        }
        try (DirectoryStream<Path> entries = Files.newDirectoryStream(root)) {
            for (Path entry : entries) {
                String name = entry.getFileName().toString();
                boolean temp = name.startsWith("step-") && name.contains(TEMP_INFIX);
                boolean uncommitted = COMMITTED.matcher(name).matches() && !Files.exists(entry.resolve(COMPLETE_MARKER));
                if (Files.isDirectory(entry) && (temp || uncommitted)) {
                    deleteTree(entry);
                    deleted.add(entry);
                }
            }
        }
        return deleted;
    }

    private static byte[] randomBytes() {
        byte[] b = new byte[6];
        RANDOM.nextBytes(b);
        return b;
    }

    private static void moveAtomically(Path from, Path to) throws IOException {
        try {
            Files.move(from, to, StandardCopyOption.ATOMIC_MOVE);
        } catch (AtomicMoveNotSupportedException e) {
            throw new IOException("the file system of " + from.getParent() + " cannot rename atomically; checkpoints need it", e);
        }
    }

    /** fsync of every file, then of every folder bottom-up, so the rename publishes durable content. */
    static void syncTree(Path top) throws IOException {
        Files.walkFileTree(top, new SimpleFileVisitor<>() {
            @Override
            public FileVisitResult visitFile(Path file, BasicFileAttributes attrs) throws IOException {
                if (attrs.isRegularFile()) {
                    try (FileChannel channel = FileChannel.open(file, StandardOpenOption.WRITE)) {
                        channel.force(true);
                    }
                }
                return FileVisitResult.CONTINUE;
            }

            @Override
            public FileVisitResult postVisitDirectory(Path dir, IOException exc) throws IOException {
                if (exc != null) {
                    throw exc;
                }
                syncDirectory(dir);
                return FileVisitResult.CONTINUE;
            }
        });
    }

    static void syncDirectory(Path dir) throws IOException {
        // Linux allows fsync on a directory opened read-only; it makes renames and new entries durable
        try (FileChannel channel = FileChannel.open(dir, StandardOpenOption.READ)) {
            channel.force(true);
        }
    }

    static void deleteTree(Path top) throws IOException {
        if (!Files.exists(top)) {
            return;
        }
        Files.walkFileTree(top, new SimpleFileVisitor<>() {
            @Override
            public FileVisitResult visitFile(Path file, BasicFileAttributes attrs) throws IOException {
                Files.delete(file);
                return FileVisitResult.CONTINUE;
            }

            @Override
            public FileVisitResult postVisitDirectory(Path dir, IOException exc) throws IOException {
                if (exc != null) {
                    throw exc;
                }
                Files.delete(dir);
                return FileVisitResult.CONTINUE;
            }
        });
    }

    private static void deleteQuietly(Path top, Exception primary) {
        try {
            deleteTree(top);
        } catch (IOException cleanup) {
            primary.addSuppressed(cleanup);
        }
    }
}
