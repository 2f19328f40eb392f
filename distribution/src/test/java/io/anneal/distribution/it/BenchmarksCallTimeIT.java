package io.anneal.distribution.it;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.stream.Stream;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * {@code tools/gpu/benchmarks.sh} within the device call's time (CALL_SECONDS): a run that cannot
 * start with 15 s of the call left is skipped and named, and the script still packs what it has,
 * where a table call that ran past the device's 600 s lost most of its files
 * (docs/benchmarks/2026-12-04-h200-weight-recast). Run without a GPU: with 20 s of a call, less the
 * 10 s kept for packing, no run starts.
 */
class BenchmarksCallTimeIT {
    private static final Path ROOT = Path.of("").toAbsolutePath().getParent();

    @Test
    void runsThatDoNotFitTheCallAreSkippedNamedAndTheResultsStillPacked(@TempDir Path dir) throws Exception {
        Path out = dir.resolve("out");
        ProcessBuilder pb = new ProcessBuilder("bash", ROOT.resolve("tools/gpu/benchmarks.sh").toString(), "fused", "layers")
                .directory(dir.toFile()).redirectErrorStream(true);
        pb.environment().put("OUT", out.toString());
        pb.environment().put("CALL_SECONDS", "20");
        pb.environment().put("ROWS", "2 8");
        pb.environment().put("LAYER_ROWS", "8");
        Process p = pb.start();
        String log = new String(p.getInputStream().readAllBytes(), StandardCharsets.UTF_8);
        assertEquals(0, p.waitFor(), log);
        for (String rows : List.of("2", "8")) {
            assertTrue(log.matches("(?s).*skipped: Anneal fused " + rows + "x2048 \\(-?\\d+ s of CALL_SECONDS=20 left after \\d+ s\\).*"), log);
        }
        // the kernel profile too (the table call's last run, in what its runs leave)
        assertTrue(log.matches("(?s).*skipped: the profile at 8 x 2048 \\(-?\\d+ s of CALL_SECONDS=20 left after \\d+ s\\).*"), log);
        Path archive;
        try (Stream<Path> files = Files.list(out)) {
            archive = files.filter(f -> f.getFileName().toString().matches("bench-fused-layers-\\d{6}\\.tgz")).findFirst()
                    .orElseThrow(() -> new AssertionError("no archive in " + out + ":\n" + log));
        }
        Process tar = new ProcessBuilder("tar", "xzf", archive.toString(), "-O", "bench/skipped.txt")
                .redirectErrorStream(true).start();
        String skipped = new String(tar.getInputStream().readAllBytes(), StandardCharsets.UTF_8);
        assertEquals(0, tar.waitFor(), skipped);
        assertEquals(2, skipped.lines().filter(l -> l.startsWith("skipped: Anneal fused ")).count(), skipped);
        assertEquals(1, skipped.lines().filter(l -> l.startsWith("skipped: the profile at 8 x 2048 ")).count(), skipped);
    }
}
