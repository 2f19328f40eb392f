package io.anneal.runtime.output;

import io.anneal.api.train.ProgressReporter;
import java.io.PrintStream;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.function.LongSupplier;

/**
 * Opens progress reporters. One line per report, made to fit the console's width ({@code COLUMNS},
 * else 80): the label and percentage, then the status fields in the order the stage gives them
 * (most important first, so the loss is always there), then the ETA, the amount done and the rate
 * while they fit. On a terminal ({@code System.console() != null}) the line is redrawn in place;
 * otherwise (logs, CI, pipes) a plain line is printed every interval and one at the end.
 */
public final class ProgressReporters {
    static final int DEFAULT_WIDTH = 80;
    /** Status fields are separated by two spaces: {@code "loss 1.2345  eval 1.3012  step 66"}. */
    static final String FIELD_SEPARATOR = "  ";
    private final boolean terminal;
    private final PrintStream out;
    private final Duration interval;
    private final LongSupplier clockMillis;
    private final int width;

    public ProgressReporters(boolean terminal, PrintStream out, Duration interval, LongSupplier clockMillis, int width) {
        this.terminal = terminal;
        this.out = out;
        this.interval = interval;
        this.clockMillis = clockMillis;
        this.width = width;
    }

    /** Detects the terminal and its width; plain lines every 30 seconds otherwise. */
    public static ProgressReporters forConsole(PrintStream out, Map<String, String> env) {
        return new ProgressReporters(System.console() != null, out, Duration.ofSeconds(30), System::currentTimeMillis, width(env));
    }

    /** {@code COLUMNS} when it is a usable width (20 or more), else 80. */
    static int width(Map<String, String> env) {
        try {
            int columns = Integer.parseInt(env.getOrDefault("COLUMNS", "").trim());
            return columns >= 20 ? columns : DEFAULT_WIDTH;
        } catch (NumberFormatException e) {
            return DEFAULT_WIDTH;
        }
    }

    public ProgressReporter open(String label, long total, String unit) {
        return new Reporter(label, total, unit);
    }

    private final class Reporter implements ProgressReporter {
        private final String label;
        private final long total;
        private final String unit;
        private final long start = clockMillis.getAsLong();
        private long lastPrint = start;
        private long done;
        private String status = "";

        Reporter(String label, long total, String unit) {
            this.label = label;
            this.total = total;
            this.unit = unit;
        }

        @Override
        public void update(long done, String status) {
            this.done = done;
            this.status = status == null ? "" : status;
            long now = clockMillis.getAsLong();
            long every = terminal ? 200 : interval.toMillis();
            if (now - lastPrint >= every) {
                lastPrint = now;
                show(now);
            }
        }

        private void show(long now) {
            String line = line(now);
            if (!terminal) {
                out.println(line);
            } else if (out instanceof RunConsole console) {
                console.transientLine(line);
            } else {
                out.print("\r" + line + "\u001b[K");
                out.flush();
            }
        }

        String line(long now) {
            double elapsed = (now - start) / 1000.0;
            List<String> fields = new ArrayList<>();
            fields.add(String.format(Locale.ROOT, "%s %3.0f%%", label, total > 0 ? Math.floor(100.0 * done / total) : 0));
            if (!status.isBlank()) {
                fields.addAll(List.of(status.trim().split(FIELD_SEPARATOR + "+")));
            }
            if (done > 0 && total > done) {
                fields.add("eta " + formatSeconds(elapsed * (total - done) / done));
            }
            fields.add(String.format(Locale.ROOT, "%,d/%,d %s", done, total, unit));
            if (elapsed > 0) {
                fields.add(String.format(Locale.ROOT, "%,.0f %s/s", done / elapsed, unit));
            }
            fields.add("elapsed " + formatSeconds(elapsed));
            // the first field always; then each in order while the line still fits
            int limit = terminal ? width - 1 : width; // a terminal wraps a line that fills its last column
            StringBuilder line = new StringBuilder(fields.get(0));
            for (String f : fields.subList(1, fields.size())) {
                if (line.length() + FIELD_SEPARATOR.length() + f.length() <= limit) {
                    line.append(FIELD_SEPARATOR).append(f);
                }
            }
            return line.length() > limit ? line.substring(0, limit) : line.toString();
        }

        @Override
        public void close() {
            // the last line stays (and a RunConsole logs it): the redrawn one is cleared first
            String line = line(clockMillis.getAsLong());
            out.println(terminal && !(out instanceof RunConsole) ? "\r" + line + "\u001b[K" : line);
        }
    }

    static String formatSeconds(double seconds) {
        long s = Math.round(seconds);
        return s >= 3600 ? String.format(Locale.ROOT, "%dh%02dm", s / 3600, (s % 3600) / 60)
                : s >= 60 ? String.format(Locale.ROOT, "%dm%02ds", s / 60, s % 60) : s + "s";
    }
}
