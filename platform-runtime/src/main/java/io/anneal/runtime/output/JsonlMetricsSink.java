package io.anneal.runtime.output;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import io.anneal.api.train.MetricsSink;
import java.io.BufferedWriter;
import java.io.IOException;
import java.io.PrintStream;
import java.io.UncheckedIOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.nio.file.StandardOpenOption;
import java.time.Clock;
import java.time.temporal.ChronoUnit;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * Metrics as JSON lines: one object per step, {@code step} first, then {@code time} (when the row
 * was written: ISO-8601 in UTC with milliseconds, {@code 2026-12-02T03:04:05.678Z}), then the
 * values; each line is flushed so a crash loses nothing already logged. The file holds one run's steps, each once:
 * <ul>
 *   <li>a fresh run (no {@code --resume}) starts the file afresh with its first row; a run that
 *       is refused before it logs anything leaves the file as it was;</li>
 *   <li>a resumed run continues it; {@link #restartAt} cuts it back to the checkpoint's step first,
 *       so the replayed steps are not written twice;</li>
 *   <li>a row that cannot be written whole (a full disk) is cut off again, so it leaves no torn line;</li>
 *   <li>a torn last line (a crash in the middle of a write) is dropped with a warning before anything
 *       is appended.</li>
 * </ul>
 */
public final class JsonlMetricsSink implements MetricsSink {
    /** The file's name in each stage's folder. */
    public static final String FILE_NAME = "metrics.jsonl";
    /** {@code pipeline.metrics = [jsonl]}: the type name (always written, listed or not). */
    public static final String TYPE = "jsonl";
    private static final ObjectMapper JSON = new ObjectMapper();
    private Path file;
    private boolean resume;
    private PrintStream out;
    private final Clock clock;
    private BufferedWriter writer;

    /** A sink that {@link #open} points at {@code <stage dir>/metrics.jsonl}. */
    public JsonlMetricsSink() {
        this.clock = Clock.systemUTC();
    }

    /** The factory of {@code pipeline.metrics} type {@code jsonl} (no keys besides {@code type}). */
    public static io.anneal.api.extension.ExtensionFactory<MetricsSink> factory() {
        return new io.anneal.api.extension.ExtensionFactory<>() {
            @Override
            public Class<MetricsSink> extensionPoint() {
                return MetricsSink.class;
            }

            @Override
            public String type() {
                return TYPE;
            }

            @Override
            public String description() {
                return "metrics.jsonl in each stage's folder: one JSON object per step (always written)";
            }

            @Override
            public String defaultsPath() {
                return "";
            }

            @Override
            public MetricsSink create(io.anneal.api.config.ConfigView config, io.anneal.api.extension.ExtensionContext context) {
                return new JsonlMetricsSink();
            }
        };
    }

    public JsonlMetricsSink(Path file, boolean resume, PrintStream out) {
        this(file, resume, out, Clock.systemUTC());
    }

    public JsonlMetricsSink(Path file, boolean resume, PrintStream out, Clock clock) {
        this.file = file;
        this.resume = resume;
        this.out = out;
        this.clock = clock;
    }

    public Path file() {
        return file;
    }

    @Override
    public synchronized void open(Path stageDirectory, boolean resume, PrintStream console) {
        closeWriter();
        this.file = stageDirectory.resolve(FILE_NAME);
        this.resume = resume;
        this.out = console;
    }

    @Override
    public synchronized void restartAt(long step) {
        closeWriter();
        try {
            List<String> kept = completeLines();
            int before = kept.size();
            kept.removeIf(line -> stepOf(line) > step);
            if (kept.size() < before) {
                out.println("metrics: dropped " + (before - kept.size()) + " rows after step " + step + " from " + file
                        + " (the resumed run writes those steps again)");
            }
            Path temp = file.resolveSibling(file.getFileName() + ".tmp");
            Files.write(temp, kept, StandardCharsets.UTF_8);
            Files.move(temp, file, StandardCopyOption.REPLACE_EXISTING, StandardCopyOption.ATOMIC_MOVE);
            open(true);
        } catch (IOException e) {
            throw new UncheckedIOException("cannot rewrite metrics file " + file, e);
        }
    }

    /** The lines of the file that end in a newline; a torn last line is reported and left out. */
    private List<String> completeLines() throws IOException {
        if (!Files.exists(file)) {
            return new ArrayList<>();
        }
        String text = Files.readString(file, StandardCharsets.UTF_8);
        int end = text.lastIndexOf('\n') + 1;
        if (end < text.length()) {
            out.println("metrics: warning: dropped a torn last line of " + file + " (" + (text.length() - end)
                    + " characters without a line end, left by an interrupted write)");
        }
        List<String> lines = new ArrayList<>(text.substring(0, end).lines().toList());
        lines.removeIf(String::isBlank);
        return lines;
    }

    private static long stepOf(String line) {
        try {
            JsonNode step = JSON.readTree(line).get("step");
            return step != null && step.canConvertToLong() ? step.asLong() : Long.MAX_VALUE;
        } catch (IOException e) {
            return Long.MAX_VALUE; // not a row this sink wrote: dropped with the replayed ones
        }
    }

    private void open(boolean append) throws IOException {
        Files.createDirectories(file.toAbsolutePath().getParent());
        if (append && Files.exists(file) && !Files.readString(file, StandardCharsets.UTF_8).matches("(?s)|.*\n")) {
            Path temp = file.resolveSibling(file.getFileName() + ".tmp");
            Files.write(temp, completeLines(), StandardCharsets.UTF_8);
            Files.move(temp, file, StandardCopyOption.REPLACE_EXISTING, StandardCopyOption.ATOMIC_MOVE);
        }
        writer = Files.newBufferedWriter(file, StandardCharsets.UTF_8, StandardOpenOption.CREATE, StandardOpenOption.WRITE,
                append ? StandardOpenOption.APPEND : StandardOpenOption.TRUNCATE_EXISTING);
    }

    @Override
    public synchronized void log(long step, Map<String, ?> metrics) {
        Map<String, Object> row = new LinkedHashMap<>();
        row.put("step", step);
        row.put("time", clock.instant().truncatedTo(ChronoUnit.MILLIS).toString());
        metrics.forEach((k, v) -> {
            if (!"step".equals(k) && !"time".equals(k)) {
                row.put(k, v);
            }
        });
        long whole = -1;
        try {
            if (writer == null) {
                open(resume);
            }
            whole = Files.size(file);
            writer.write(JSON.writeValueAsString(row));
            writer.newLine();
            writer.flush();
        } catch (IOException e) {
            cutBackTo(whole, e);
            throw new UncheckedIOException("cannot write metrics to " + file + " (" + e.getMessage() + ")", e);
        }
    }

    /**
     * After a failed write (a full disk takes the part of a row that fits): closes the file and cuts it
     * back to {@code length}, the rows written whole, so no torn line is left. Cutting needs no space.
     */
    private void cutBackTo(long length, IOException failure) {
        try {
            closeWriter();
        } catch (UncheckedIOException e) {
            failure.addSuppressed(e.getCause()); // the close flushes what the failed write left in its buffer, and fails again
        }
        if (length >= 0) {
            try (java.nio.channels.FileChannel channel = java.nio.channels.FileChannel.open(file, StandardOpenOption.WRITE)) {
                channel.truncate(length);
            } catch (IOException e) {
                failure.addSuppressed(e);
            }
        }
    }

    private void closeWriter() {
        if (writer != null) {
            try {
                writer.close();
            } catch (IOException e) {
                throw new UncheckedIOException("cannot close metrics file " + file, e);
            } finally {
                writer = null;
            }
        }
    }

    @Override
    public synchronized void close() {
        closeWriter();
    }
}
