package io.anneal.runtime.pipeline;

import io.anneal.api.InputException;
import io.anneal.runtime.train.RunFailedException;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.channels.FileChannel;
import java.nio.channels.FileLock;
import java.nio.channels.OverlappingFileLockException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;

/**
 * One run at a time in a run folder: an OS lock on {@code <run-dir>/anneal.lock} (released by the
 * OS when the process dies, so a crash never leaves a stale lock), which holds the holder's pid. A
 * second run into the folder is refused (exit 2) naming that pid. The file itself stays.
 */
public final class RunDirLock implements AutoCloseable {
    static final String FILE = "anneal.lock";
    private final FileChannel channel;
    private final FileLock lock;

    private RunDirLock(FileChannel channel, FileLock lock) {
        this.channel = channel;
        this.lock = lock;
    }

    public static RunDirLock acquire(Path runDir) {
        Path file = runDir.resolve(FILE);
        FileChannel channel = null;
        try {
            Files.createDirectories(runDir);
            channel = FileChannel.open(file, StandardOpenOption.CREATE, StandardOpenOption.READ, StandardOpenOption.WRITE);
            FileLock lock;
            try {
                lock = channel.tryLock();
            } catch (OverlappingFileLockException e) {
                lock = null; // held by this very process
            }
            if (lock == null) {
                String holder = Files.readString(file, StandardCharsets.UTF_8).trim();
                throw new InputException(runDir + " is in use by another anneal run (pid " + (holder.isEmpty() ? "unknown" : holder)
                        + ", lock " + file + "); wait for it to end, or set pipeline.run-dir to another folder");
            }
            channel.truncate(0);
            channel.write(ByteBuffer.wrap((ProcessHandle.current().pid() + "\n").getBytes(StandardCharsets.UTF_8)), 0);
            channel.force(false);
            return new RunDirLock(channel, lock);
        } catch (IOException e) {
            closeQuietly(channel);
            // a full disk, say: before any step, so nothing of this run is lost
            throw new RunFailedException("cannot lock the run folder " + runDir + " (" + file + ": " + RunFailedException.reason(e)
                    + "); the run has not started: free space (or fix the error) and run again", e);
        } catch (RuntimeException e) {
            closeQuietly(channel);
            throw e;
        }
    }

    private static void closeQuietly(FileChannel channel) {
        if (channel != null) {
            try {
                channel.close();
            } catch (IOException ignored) {
                // the original problem is the one to report
            }
        }
    }

    @Override
    public void close() throws IOException {
        try {
            lock.release();
        } finally {
            channel.close();
        }
    }
}
