package io.anneal.runtime.output;

import io.anneal.api.cli.Charts;
import io.anneal.runtime.train.PlotCommand;
import java.io.PrintStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;

/**
 * {@code <stage dir>/loss.png}, drawn when a stage ends: its loss and eval loss against tokens, as
 * {@code anneal plot} draws them. Drawing is a convenience: any failure (a JRE without fonts throws
 * {@code java.lang.Error: Probable fatal error: No fonts found} or an {@code AWTError} from inside
 * AWT) is one warning line, never a failed run; the metrics stay in {@code metrics.jsonl}.
 */
public final class StageChart {
    static final String FILE = "loss.png";
    /**
     * {@code -Danneal.plot.simulate-failure=true} (through {@code ANNEAL_JAVA_OPTS}) makes the drawing
     * fail as a fontless JRE does, to test that the run goes on.
     */
    static final String SIMULATE_FAILURE = "anneal.plot.simulate-failure";

    private StageChart() {
    }

    private static boolean hasLoss(Path metrics) throws java.io.IOException {
        try (java.util.stream.Stream<String> lines = Files.lines(metrics)) {
            return lines.anyMatch(l -> l.contains("\"loss\":") || l.contains("\"eval_loss\":"));
        }
    }

    /** Draws the chart of the stage in {@code stageDirectory} when it wrote metrics; returns the file drawn, if any. */
    public static java.util.Optional<Path> draw(Path stageDirectory, Charts charts, PrintStream out) {
        Path metrics = stageDirectory.resolve(JsonlMetricsSink.FILE_NAME);
        Path png = stageDirectory.resolve(FILE);
        try {
            if (!Files.isRegularFile(metrics) || !hasLoss(metrics)) {
                return java.util.Optional.empty(); // a stage that trains nothing (a schedule table) has no loss to draw
            }
            if (Boolean.getBoolean(SIMULATE_FAILURE)) {
                throw new Error("Probable fatal error: No fonts found. (simulated: -D" + SIMULATE_FAILURE + "=true)");
            }
            List<Charts.Series> series = new ArrayList<>(PlotCommand.read(metrics, List.of("loss", "eval_loss")).values());
            charts.linePlot(png, "loss", "tokens", Charts.Axis.TOKENS, "loss", Charts.Axis.LINEAR, series);
            out.println("chart: " + png);
            return java.util.Optional.of(png);
        } catch (VirtualMachineError e) {
            throw e; // out of memory is not a drawing problem
        } catch (Throwable e) {
            out.println("warning: could not draw " + png + " (" + e.getClass().getSimpleName() + ": " + e.getMessage()
                    + "); the run is not affected and its metrics are in " + metrics + " (anneal plot draws them "
                    + "on a machine with fonts)");
            return java.util.Optional.empty();
        }
    }
}
