package io.anneal.runtime.output;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.ByteArrayOutputStream;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** metrics.jsonl holds each step once: a resume cuts it back, a torn line is dropped, a fresh run starts it afresh. */
class JsonlMetricsSinkTest {
    @TempDir
    Path dir;
    final ByteArrayOutputStream console = new ByteArrayOutputStream();
    final PrintStream out = new PrintStream(console, true, StandardCharsets.UTF_8);

    private Path metrics(String... lines) throws Exception {
        Path f = dir.resolve("metrics.jsonl");
        Files.writeString(f, String.join("", lines));
        return f;
    }

    /** The rows without their wall-clock time. */
    private static List<String> rows(Path f) throws Exception {
        return Files.readAllLines(f).stream().map(l -> l.replaceFirst(",\"time\":\"[^\"]*\"", "")).toList();
    }

    private static final String ROWS = "{\"step\":1,\"loss\":3.0}\n{\"step\":2,\"loss\":2.5}\n{\"step\":3,\"loss\":2.0}\n";

    @Test
    void aResumeCutsTheFileBackToTheCheckpointsStep() throws Exception {
        Path f = metrics(ROWS);
        try (JsonlMetricsSink sink = new JsonlMetricsSink(f, true, out)) {
            sink.restartAt(1);
            sink.log(2, Map.of("loss", 2.4));
        }
        assertEquals(List.of("{\"step\":1,\"loss\":3.0}", "{\"step\":2,\"loss\":2.4}"), rows(f));
        assertTrue(console.toString(StandardCharsets.UTF_8).contains("2 rows after step 1"), console.toString());
    }

    @Test
    void aTornLastLineIsDroppedWithAWarningBeforeAppending() throws Exception {
        Path f = metrics(ROWS, "{\"step\":4,\"lo");
        try (JsonlMetricsSink sink = new JsonlMetricsSink(f, true, out)) {
            sink.log(4, Map.of("loss", 1.9));
        }
        assertEquals(List.of("{\"step\":1,\"loss\":3.0}", "{\"step\":2,\"loss\":2.5}", "{\"step\":3,\"loss\":2.0}",
                "{\"step\":4,\"loss\":1.9}"), rows(f));
        String warning = console.toString(StandardCharsets.UTF_8);
        assertTrue(warning.contains("warning") && warning.contains("torn last line") && warning.contains(f.toString()), warning);
    }

    @Test
    void aTornLastLineIsDroppedByARestartToo() throws Exception {
        Path f = metrics(ROWS, "{\"step\":4,\"lo");
        try (JsonlMetricsSink sink = new JsonlMetricsSink(f, true, out)) {
            sink.restartAt(3);
        }
        assertEquals(3, Files.readAllLines(f).size());
        assertTrue(console.toString(StandardCharsets.UTF_8).contains("torn last line"), console.toString());
    }

    @Test
    void aFreshRunStartsTheFileAfreshOnItsFirstRow() throws Exception {
        Path f = metrics(ROWS);
        try (JsonlMetricsSink sink = new JsonlMetricsSink(f, false, out)) {
            sink.log(1, Map.of("loss", 9.0));
        }
        assertEquals(List.of("{\"step\":1,\"loss\":9.0}"), rows(f));
    }

    @Test
    void aFreshRunThatLogsNothingLeavesTheFileAlone() throws Exception {
        // a run refused before training (say, checkpoints of an earlier run exist) must not wipe that run's metrics
        Path f = metrics(ROWS);
        new JsonlMetricsSink(f, false, out).close();
        assertEquals(ROWS, Files.readString(f));
    }

    @Test
    void everyRowCarriesItsWallClockTimeInUtc() throws Exception {
        Path f = dir.resolve("metrics.jsonl");
        java.time.Clock clock = java.time.Clock.fixed(java.time.Instant.parse("2026-12-02T03:04:05.678Z"), java.time.ZoneOffset.UTC);
        try (JsonlMetricsSink sink = new JsonlMetricsSink(f, false, out, clock)) {
            sink.log(1, Map.of("loss", 3.0));
        }
        assertEquals(List.of("{\"step\":1,\"time\":\"2026-12-02T03:04:05.678Z\",\"loss\":3.0}"), Files.readAllLines(f));
    }
}
