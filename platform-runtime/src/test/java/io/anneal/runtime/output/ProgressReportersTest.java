package io.anneal.runtime.output;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.anneal.api.train.ProgressReporter;
import java.io.ByteArrayOutputStream;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.Test;

/** The progress line fits the terminal's width with the loss always in it; wider terminals show more. */
class ProgressReportersTest {
    final ByteArrayOutputStream bytes = new ByteArrayOutputStream();
    final PrintStream out = new PrintStream(bytes, true, StandardCharsets.UTF_8);
    long now = 0;

    private List<String> lines(boolean terminal, int width) {
        now = 0;
        ProgressReporters reporters = new ProgressReporters(terminal, out, Duration.ofSeconds(30), () -> now, width);
        try (ProgressReporter p = reporters.open("sft", 600_000, "tokens")) {
            now = 83_000;
            p.update(270_336, "step 66/147  loss 1.2345  eval 1.3012  lr 3.00e-03  grad_norm 0.4123");
            now = 100_000; // 17 s later: no plain line until the end
            p.update(393_216, "step 96/147  loss 1.1111  eval 1.3012  lr 2.10e-03  grad_norm 0.3999");
        }
        String text = bytes.toString(StandardCharsets.UTF_8);
        return List.of(text.split("[\r\n]+")).stream().map(l -> l.replace("\u001b[K", "")).filter(l -> !l.isEmpty()).toList();
    }

    @Test
    void plainLinesFitEightyColumnsWithTheLossInThem() {
        List<String> lines = lines(false, 80);
        assertEquals(2, lines.size(), "one line per 30 s and one at the end: " + lines);
        for (String l : lines) {
            assertTrue(l.length() <= 80, l.length() + ": " + l);
            assertTrue(l.contains("loss 1."), l);
            assertTrue(l.startsWith("sft "), l);
        }
        assertTrue(lines.get(1).contains("65%") && lines.get(1).contains("eval 1.3012"), lines.get(1));
    }

    @Test
    void widerTerminalsShowMore() {
        List<String> narrow = lines(false, 80);
        bytes.reset();
        List<String> wide = lines(false, 200);
        assertTrue(wide.get(1).length() > narrow.get(1).length(), narrow + " / " + wide);
        assertTrue(wide.get(1).contains("tokens/s") && wide.get(1).contains("393,216/600,000 tokens"), wide.get(1));
    }

    @Test
    void aTerminalLineIsRedrawnInPlaceWithinItsWidth() {
        List<String> lines = lines(true, 80);
        assertTrue(bytes.toString(StandardCharsets.UTF_8).contains("\r"), "redrawn with a carriage return");
        for (String l : lines) {
            assertTrue(l.length() <= 80, l.length() + ": " + l);
            assertTrue(l.contains("loss 1."), l);
        }
    }

    @Test
    void theWidthComesFromColumnsOrIsEighty() {
        assertEquals(80, ProgressReporters.width(Map.of()));
        assertEquals(132, ProgressReporters.width(Map.of("COLUMNS", "132")));
        assertEquals(80, ProgressReporters.width(Map.of("COLUMNS", "wide")));
        assertEquals(80, ProgressReporters.width(Map.of("COLUMNS", "5")));
    }
}
