package io.anneal.distribution.it;

import java.io.BufferedReader;
import java.io.IOException;
import java.io.InputStreamReader;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;

/**
 * A real full disk for the end-to-end tests: a tmpfs of a fixed size mounted over a folder in a
 * mount namespace of its own, so a write past its size fails in the kernel with ENOSPC ("No space
 * left on device"), as on a full disk. unshare(1) makes the namespace inside a user namespace
 * (--map-root-user), so it needs no root where the kernel lets users create namespaces; a sleeping
 * process holds it. bin/anneal runs inside it through nsenter(1) ({@link #enter}, a
 * {@link Distribution.Command#within} wrapper like the file-size limit); this JVM, outside, reads and
 * changes its files through the holder's {@code /proc/PID/root} ({@link #outside}).
 */
final class SizeCappedFileSystem implements AutoCloseable {
    /** The folder the tmpfs is mounted over; the same path inside the namespace. */
    final Path mountPoint;
    private final Process holder;

    private SizeCappedFileSystem(Path mountPoint, Process holder) {
        this.mountPoint = mountPoint;
        this.holder = holder;
    }

    /**
     * Mounts a tmpfs of {@code bytes} over {@code mountPoint} (created if missing). Where the machine
     * cannot (no unshare, user namespaces disabled, a container that forbids mounts), the calling test
     * is skipped with the reason, never failed: it tests anneal, not the machine.
     */
    static SizeCappedFileSystem mount(Path mountPoint, long bytes) throws Exception {
        Files.createDirectories(mountPoint);
        String script = "mount -t tmpfs -o size=" + bytes + " anneal-test \"$0\" && echo mounted && exec sleep 3600";
        Process holder;
        try {
            holder = new ProcessBuilder("unshare", "--user", "--map-root-user", "--mount", "sh", "-c", script, mountPoint.toString())
                    .redirectErrorStream(true).start();
        } catch (IOException e) {
            throw skip("unshare(1) (util-linux) cannot run: " + e.getMessage());
        }
        BufferedReader out = new BufferedReader(new InputStreamReader(holder.getInputStream(), StandardCharsets.UTF_8));
        CompletableFuture<String> first = CompletableFuture.supplyAsync(() -> {
            try {
                String line = out.readLine();
                return line == null ? "" : line;
            } catch (IOException e) {
                return e.getMessage();
            }
        });
        String said = first.get(60, TimeUnit.SECONDS);
        if (!"mounted".equals(said)) {
            String rest = holder.waitFor(10, TimeUnit.SECONDS) ? out.lines().collect(java.util.stream.Collectors.joining("\n")) : "";
            holder.destroyForcibly();
            throw skip((said + "\n" + rest).strip());
        }
        return new SizeCappedFileSystem(mountPoint, holder);
    }

    /** Skips the calling test, saying why in the build's log too (it shows only a count of skipped tests). */
    private static org.opentest4j.TestAbortedException skip(String why) {
        String reason = "this machine cannot mount a size-capped file system for a test (unshare --user --map-root-user --mount, "
                + "then mount -t tmpfs): " + why + "; the real full disk is not tested here, only the injected one (FaultInjectionIT)";
        System.out.println("SKIPPED: " + reason);
        return new org.opentest4j.TestAbortedException(reason);
    }

    /** The wrapper that runs a command inside the namespace (nsenter execs it there). */
    String[] enter() {
        return new String[] {"nsenter", "--target", Long.toString(holder.pid()), "--user", "--mount", "--"};
    }

    /** {@code inside} (a path as the commands inside see it) as this JVM reaches it. */
    Path outside(Path inside) {
        return Path.of("/proc/" + holder.pid() + "/root").resolve(Path.of("/").relativize(inside.toAbsolutePath()).toString());
    }

    /** Fills the file system with one file of {@code bytes} (written in the kernel's pages, like any file). */
    Path fill(String name, long bytes) throws IOException {
        Path filler = outside(mountPoint.resolve(name));
        byte[] chunk = new byte[1 << 20];
        try (var out = Files.newOutputStream(filler)) {
            for (long left = bytes; left > 0; left -= chunk.length) {
                out.write(chunk, 0, (int) Math.min(chunk.length, left));
            }
        }
        return filler;
    }

    /** The bytes still free, as statvfs(3) reports them (df's "Available"). */
    long free() {
        return outside(mountPoint).toFile().getUsableSpace();
    }

    /** Ends the holder: the namespace, the mount and everything on it go. */
    @Override
    public void close() throws Exception {
        holder.destroyForcibly().waitFor(30, TimeUnit.SECONDS);
    }
}
