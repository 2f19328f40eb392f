package io.anneal.runtime.output;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.anneal.api.cli.Charts;
import java.io.ByteArrayOutputStream;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Optional;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** The chart a stage leaves: drawn when it can be, one warning line when it cannot. */
class StageChartTest {
    @TempDir
    Path stage;

    private final ByteArrayOutputStream console = new ByteArrayOutputStream();
    private final PrintStream out = new PrintStream(console, true, StandardCharsets.UTF_8);

    private void metrics() throws Exception {
        Files.writeString(stage.resolve("metrics.jsonl"), "{\"step\":1,\"num_tokens\":1024,\"loss\":6.5}\n"
                + "{\"step\":2,\"num_tokens\":2048,\"loss\":6.1,\"eval_loss\":6.3}\n");
    }

    @Test
    void drawsLossAndEvalLossBesideTheMetrics() throws Exception {
        metrics();
        assertEquals(Optional.of(stage.resolve("loss.png")), StageChart.draw(stage, new XChartCharts(), out));
        byte[] png = Files.readAllBytes(stage.resolve("loss.png"));
        assertEquals((byte) 0x89, png[0]); // the PNG signature: 0x89 'P' 'N' 'G'
        assertEquals("PNG", new String(png, 1, 3, StandardCharsets.US_ASCII));
        assertTrue(console.toString().contains("chart: " + stage.resolve("loss.png")), console.toString());
    }

    @Test
    void aJreWithoutFontsIsAWarning() throws Exception {
        metrics();
        // what AWT throws when it finds no font (sun.font.FontManager), and the AWTError of a broken toolkit
        Charts noFonts = (png, title, x, xa, y, ya, series) -> {
            throw new Error("Probable fatal error: No fonts found.");
        };
        Charts noToolkit = (png, title, x, xa, y, ya, series) -> {
            throw new java.awt.AWTError("Assistive Technology not found");
        };
        for (Charts broken : new Charts[] {noFonts, noToolkit}) {
            assertEquals(Optional.empty(), StageChart.draw(stage, broken, out));
        }
        String text = console.toString();
        assertTrue(text.contains("warning: could not draw " + stage.resolve("loss.png") + " (Error: Probable fatal error: No fonts found.)"
                + "; the run is not affected"), text);
        assertTrue(text.contains("(AWTError: Assistive Technology not found)"), text);
        System.setProperty(StageChart.SIMULATE_FAILURE, "true");
        try {
            assertEquals(Optional.empty(), StageChart.draw(stage, new XChartCharts(), out));
        } finally {
            System.clearProperty(StageChart.SIMULATE_FAILURE);
        }
        assertTrue(console.toString().contains("simulated: -Danneal.plot.simulate-failure=true"), console.toString());
    }

    @Test
    void aStageWithoutMetricsOrWithoutALossDrawsNothingAndSaysNothing() throws Exception {
        assertEquals(Optional.empty(), StageChart.draw(stage, new XChartCharts(), out));
        Files.writeString(stage.resolve("metrics.jsonl"), "{\"step\":0,\"learning_rate\":1.5e-4}\n"); // a schedule table
        assertEquals(Optional.empty(), StageChart.draw(stage, new XChartCharts(), out));
        assertEquals("", console.toString());
    }
}
