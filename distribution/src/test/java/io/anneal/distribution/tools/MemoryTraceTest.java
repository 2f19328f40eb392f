package io.anneal.distribution.tools;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import java.math.BigInteger;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import org.junit.jupiter.api.Assumptions;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * {@code tools/gpu/memory_trace.py}, behind {@code profile_layers.py --memory}: the allocated peak of a
 * step, its phase and what is alive there, from a hand-written allocator trace whose figures are
 * worked out here. The phases are marked in the trace by allocations of sizes no tensor has; a first
 * version's marker of 512 KiB matched a real tensor and moved most of each forward's blocks to a later
 * phase (docs/benchmarks/2026-12-04-h200-silu-mul-linear), which the trace below would show.
 */
class MemoryTraceTest {
    private static final ObjectMapper JSON = new ObjectMapper();
    private static final Path SCRIPT = Path.of("").toAbsolutePath().getParent().resolve("tools/gpu/memory_trace.py");
    private static final long MIB = 1 << 20;

    @Test
    void thePeakItsPhaseAndWhatIsAliveThereComeFromTheTrace(@TempDir Path dir) throws Exception {
        List<String> phases = new ArrayList<>();
        for (int i = 0; i < 30; i++) {   // as many as a 12-layer step marks: the old markers' 25th was 512 KiB
            phases.add(i == 0 ? "forward" : i == 1 ? "backward" : "unused " + i);
        }
        List<Long> markers = markerBytes(2);
        long marker0 = markers.get(0);
        long marker1 = markers.get(1);
        String trace = "[" + String.join(",",
                entry("alloc", 1, marker0), entry("free_completed", 1, marker0),
                entry("alloc", 2, 10 * MIB),
                entry("alloc", 3, 512 * 1024),             // a real 512 KiB tensor, not a marker
                entry("alloc", 4, marker1), entry("free_completed", 4, marker1),
                entry("alloc", 5, 20 * MIB),               // the peak: 10 + 0.5 + 20 MiB over the baseline
                entry("free_requested", 5, 20 * MIB),      // freed only once the free completes
                entry("alloc", 6, 1 * MIB),
                entry("free_completed", 5, 20 * MIB),
                entry("free_completed", 99, 100 * MIB),    // a block from before the recording: in the baseline
                entry("alloc", 7, 5 * MIB)) + "]";
        Path file = dir.resolve("trace.json");
        Files.writeString(file, trace);
        List<String> command = new ArrayList<>(List.of("python3", SCRIPT.toString(), file.toString(), Long.toString(100 * MIB)));
        command.addAll(phases);
        JsonNode report = JSON.readTree(run(command));

        assertEquals(131.5, report.get("peak_allocated_mib").asDouble(), "100 before the step + 10 + 0.5 + 20 + 1");
        assertEquals(31.5, report.get("step_peak_mib").asDouble());
        assertEquals("backward", report.get("peak_phase").asText());
        JsonNode byPhase = report.get("live_at_peak_by_phase");
        assertEquals(2, byPhase.size(), byPhase.toString());
        assertEquals("backward", byPhase.get(0).get("phase").asText());
        assertEquals(21.0, byPhase.get(0).get("mib").asDouble());
        assertEquals(2, byPhase.get(0).get("blocks").asInt());
        assertEquals("forward", byPhase.get(1).get("phase").asText(), "the 512 KiB tensor stays in the forward");
        assertEquals(10.5, byPhase.get(1).get("mib").asDouble());
        JsonNode largest = report.get("largest_live_at_peak");
        assertEquals(20.0, largest.get(0).get("mib").asDouble());
        assertEquals("backward", largest.get(0).get("phase").asText());
        assertEquals(10.0, largest.get(1).get("mib").asDouble());
    }

    /** Each marker is a prime number of 512-byte blocks over 1,000 and under 1 MiB in all. */
    @Test
    void theMarkersAreSizesNoTensorOfTheModelHas() throws Exception {
        List<Long> markers = markerBytes(64);
        for (int i = 0; i < markers.size(); i++) {
            long bytes = markers.get(i);
            long blocks = bytes / 512;
            assertEquals(0, bytes % 512);
            assertTrue(blocks > 1000 && bytes < MIB, "marker " + i + ": " + bytes + " bytes");
            assertTrue(BigInteger.valueOf(blocks).isProbablePrime(30), "marker " + i + ": " + blocks + " blocks");
            assertTrue(i == 0 || markers.get(i - 1) < bytes, "markers grow, so each is its own");
        }
    }

    private static String entry(String action, long addr, long size) {
        return String.format("{\"action\": \"%s\", \"addr\": %d, \"size\": %d}", action, addr, size);
    }

    /** The first {@code count} phases' marker sizes, as the script computes them. */
    private static List<Long> markerBytes(int count) throws Exception {
        String out = run(List.of("python3", "-c", "import sys; sys.path.insert(0, sys.argv[1]); import memory_trace;"
                + " print(*(memory_trace.marker_bytes(i) for i in range(int(sys.argv[2]))))",
                SCRIPT.getParent().toString(), Integer.toString(count)));
        List<Long> sizes = new ArrayList<>();
        for (String s : out.trim().split("\\s+")) {
            sizes.add(Long.parseLong(s));
        }
        return sizes;
    }

    private static String run(List<String> command) throws Exception {
        Process p;
        try {
            p = new ProcessBuilder(command).redirectErrorStream(true).start();
        } catch (java.io.IOException e) {
            Assumptions.abort("no python3 here: tools/gpu/memory_trace.py not run (" + e.getMessage() + ")");
            return null;
        }
        String out = new String(p.getInputStream().readAllBytes(), StandardCharsets.UTF_8);
        assertEquals(0, p.waitFor(), out);
        return out;
    }
}
