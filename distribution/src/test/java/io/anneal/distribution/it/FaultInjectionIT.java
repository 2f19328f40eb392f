package io.anneal.distribution.it;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.anneal.distribution.it.Distribution.Result;
import java.io.BufferedReader;
import java.io.InputStreamReader;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.security.MessageDigest;
import java.util.ArrayList;
import java.util.HexFormat;
import java.util.List;
import java.util.Random;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;

/**
 * The fault-injection suite (issue 15): the short tiny example of {@link Distribution#shortTinyRun} (6 steps, a
 * checkpoint every 2, keep-last 2) is killed, stopped or starved at every stage of a checkpoint write
 * and at random moments, then resumed. After each fault the resume must start from the newest intact
 * checkpoint, leave no partial folder, log each step exactly once, and end with weights, optimizer
 * state and data position bit-identical (SHA-256) to an uninterrupted CPU run.
 *
 * <p>The kills at named points use the runtime's test-only fault points ({@code ANNEAL_TEST_FAULT}):
 * the run pauses there and this test sends it SIGKILL. The random kills are
 * {@code anneal.faults.random-kills} (4 in the normal build); the soak profile raises them to 50:
 * {@code mvn -B -pl distribution -Pfault-soak surefire:test@end-to-end -Dtest=FaultInjectionIT}
 * after {@code mvn -B install -DskipTests}.
 */
class FaultInjectionIT {
    static final int STEPS = 6;
    /** What an uninterrupted run ends with: the step-6 checkpoint's manifest (less dated lines) and the final weights. */
    static List<String> reference;
    static Distribution dist;
    /** The size of one checkpoint of the uninterrupted run (9.2 MB: the weights and AdamW's two moments). */
    static long checkpointBytes;

    @TempDir
    Path tmp;

    @BeforeAll
    static void uninterruptedRun(@TempDir Path referenceDir) throws Exception {
        dist = Distribution.assembled();
        Path runDir = referenceDir.resolve("reference");
        Result r = dist.shortTinyRun(runDir).run();
        assertEquals(0, r.exit(), r.tail());
        reference = fingerprint(runDir);
        checkpointBytes = bytes(runDir.resolve("1-sft/checkpoints/step-00000" + STEPS));
    }

    /** The bytes of the files under {@code root}. */
    static long bytes(Path root) throws Exception {
        try (java.util.stream.Stream<Path> files = Files.walk(root)) {
            return files.filter(Files::isRegularFile).mapToLong(f -> f.toFile().length()).sum();
        }
    }

    /**
     * The SHA-256 of every file of the last checkpoint (from its manifest) and of the final weights.
     * optimizer.properties is compared without its comment lines: java.util.Properties dates them.
     */
    static List<String> fingerprint(Path runDir) throws Exception {
        Path last = runDir.resolve("1-sft/checkpoints/step-00000" + STEPS);
        List<String> lines = new ArrayList<>();
        for (String line : Files.readAllLines(last.resolve("MANIFEST.sha256"))) {
            if (!line.endsWith("optimizer/optimizer.properties")) {
                lines.add(line);
            }
        }
        Files.readAllLines(last.resolve("optimizer/optimizer.properties")).stream().filter(l -> !l.startsWith("#"))
                .forEach(l -> lines.add("optimizer.properties: " + l));
        lines.add(sha256(runDir.resolve("1-sft/final/model.safetensors")) + "  final/model.safetensors");
        return lines;
    }

    static String sha256(Path file) throws Exception {
        return HexFormat.of().formatHex(MessageDigest.getInstance("SHA-256").digest(Files.readAllBytes(file)));
    }

    /** A launched run whose output is read as it comes, so a test can act when a line appears. */
    static final class Launched {
        final Process process;
        final StringBuffer out = new StringBuffer();
        final CountDownLatch paused = new CountDownLatch(1);
        final CountDownLatch training = new CountDownLatch(1);
        final Thread reader;

        Launched(ProcessBuilder builder) throws Exception {
            process = builder.start();
            reader = new Thread(() -> {
                try (BufferedReader in = new BufferedReader(new InputStreamReader(process.getInputStream(), StandardCharsets.UTF_8))) {
                    for (String line; (line = in.readLine()) != null; ) {
                        out.append(line).append('\n');
                        if (line.startsWith("anneal-fault: paused at")) {
                            paused.countDown();
                        }
                        if (line.startsWith("sft: batch")) {
                            training.countDown();
                        }
                    }
                } catch (java.io.IOException ignored) {
                    // the process was killed
                }
            });
            reader.start();
        }

        int kill() throws Exception {
            process.destroyForcibly(); // SIGKILL on Linux
            return finish();
        }

        int finish() throws Exception {
            assertTrue(process.waitFor(180, TimeUnit.SECONDS), "the run ended");
            reader.join(10_000);
            return process.exitValue();
        }
    }

    static Launched launch(Path runDir, String fault, String... extra) throws Exception {
        Distribution.Command command = dist.shortTinyRun(runDir, extra);
        if (fault != null) {
            command.env("ANNEAL_TEST_FAULT", fault);
        }
        return new Launched(command.processBuilder());
    }

    static List<String> committedCheckpoints(Path runDir) throws Exception {
        Path dir = runDir.resolve("1-sft/checkpoints");
        List<String> complete = new ArrayList<>();
        for (String name : ReliabilityIT.names(dir)) {
            if (name.matches("step-\\d{6}") && Files.exists(dir.resolve(name).resolve("COMPLETE"))) {
                complete.add(name);
            }
        }
        return complete;
    }

    /**
     * Resumes the faulted run to its end and checks every promise: it starts from {@code expected} (or
     * from the beginning when null), no partial folder is left, each step is in the metrics once, and
     * the end state is bit-identical to the uninterrupted run's.
     */
    static void resumeAndCheck(Path runDir, String expected) throws Exception {
        resumeAndCheck(runDir, runDir, expected);
    }

    /**
     * The same for a run whose folder this JVM sees as {@code onDisk} (another mount namespace's), resumed
     * inside {@code within}.
     */
    static void resumeAndCheck(Path runDir, Path onDisk, String expected, String... within) throws Exception {
        Result resumed = dist.shortTinyRun(runDir, "--resume").within(within).run();
        assertEquals(0, resumed.exit(), resumed.tail());
        Path checkpoints = runDir.resolve("1-sft/checkpoints");
        assertTrue(resumed.out().contains(expected == null
                ? "sft: --resume: no complete checkpoint under " + checkpoints + ", starting from the beginning"
                : "sft: resuming from " + checkpoints.resolve(expected)), resumed.out());
        assertEnd(onDisk, resumed.out());
    }

    static void assertEnd(Path runDir, String out) throws Exception {
        for (String name : ReliabilityIT.names(runDir.resolve("1-sft/checkpoints"))) {
            assertTrue(name.matches("step-\\d{6}"), "a partial or foreign folder is left: " + name + "\n" + out);
        }
        List<String> stage = ReliabilityIT.names(runDir.resolve("1-sft"));
        assertTrue(stage.containsAll(List.of("checkpoints", "final", "metrics.jsonl")), stage.toString());
        assertTrue(stage.stream().noneMatch(n -> n.contains(".tmp")), "no temporary final folder: " + stage);
        List<Long> steps = new ArrayList<>();
        for (String line : Files.readAllLines(runDir.resolve("1-sft/metrics.jsonl"))) {
            steps.add(Long.parseLong(line.replaceAll("^\\{\"step\":(\\d+),.*", "$1")));
        }
        assertEquals(java.util.stream.LongStream.rangeClosed(1, STEPS).boxed().toList(), steps, "each step once, in order");
        assertEquals(reference, fingerprint(runDir), "bit-identical to the uninterrupted run");
    }

    /**
     * SIGKILL at each stage of a checkpoint write (point@step), and where the resume must start: before
     * COMPLETE the checkpoint being written does not count; after it, it does; a kill in rotation (of
     * step 2, after step 6 committed) and in the final model's write resume from step 6.
     */
    @ParameterizedTest(name = "SIGKILL at {0}")
    @CsvSource({
        "checkpoint.temp-created@2, ",
        "checkpoint.model-written@4, step-000002",
        "checkpoint.optimizer-written@2, ",
        "checkpoint.data-stream-written@4, step-000002",
        "checkpoint.trainer-state-written@6, step-000004",
        "checkpoint.manifest-written@4, step-000002",
        "checkpoint.fsynced@2, ",
        "checkpoint.renamed@4, step-000002",
        "checkpoint.complete@4, step-000004",
        "checkpoint.rotation@2, step-000006",
        "final.written@6, step-000006",
    })
    void aKillAtEachCheckpointStageResumesFromTheNewestIntactCheckpoint(String point, String expected) throws Exception {
        Path runDir = tmp.resolve("run");
        Launched run = launch(runDir, point + "=pause");
        assertTrue(run.paused.await(180, TimeUnit.SECONDS), "the run reached " + point + ":\n" + run.out);
        assertEquals(137, run.kill(), "killed by SIGKILL");
        List<String> committed = committedCheckpoints(runDir);
        assertEquals(expected, committed.isEmpty() ? null : committed.get(committed.size() - 1), "the newest committed checkpoint");
        resumeAndCheck(runDir, expected);
    }

    @Test
    void sigkillsAtRandomMomentsNeverLoseCommittedWorkNorChangeTheResult() throws Exception {
        int kills = Integer.getInteger("anneal.faults.random-kills", 4);
        long seed = Long.getLong("anneal.faults.seed", System.nanoTime());
        Random random = new Random(seed);
        int done = 0;
        int campaigns = 0;
        StringBuilder log = new StringBuilder("seed " + seed + " (-Danneal.faults.seed to replay)\n");
        while (done < kills) {
            Path runDir = tmp.resolve("campaign-" + campaigns++);
            boolean first = true;
            while (true) {
                List<String> before = committedCheckpoints(runDir);
                Launched run = first ? launch(runDir, null) : launch(runDir, null, "--resume");
                first = false;
                // every fourth kill anywhere from the start (JVM start, loading, the resume's clean-up), the others
                // while training runs (after the stage's batch line: 6 steps take 3-8 s on 2 busy cores), so
                // that kills reach the steps and checkpoint writes however slow the machine is
                boolean fromStart = done % 4 == 0;
                long delayMillis = fromStart ? 500 + random.nextInt(4_000) : random.nextInt(6_000);
                if (!fromStart) {
                    run.training.await(120, TimeUnit.SECONDS);
                }
                if (run.process.waitFor(delayMillis, TimeUnit.MILLISECONDS) || done >= kills) {
                    int exit = run.finish();
                    assertEquals(0, exit, run.out.toString());
                    break;
                }
                run.kill();
                done++;
                List<String> after = committedCheckpoints(runDir);
                log.append("kill ").append(done).append(" ").append(delayMillis).append(" ms after ")
                        .append(fromStart ? "the start" : "training began").append(": committed ")
                        .append(before).append(" -> ").append(after).append('\n');
                // committed work is never lost: every checkpoint there before the kill is still there, or rotated
                // out by a newer one
                if (!before.isEmpty()) {
                    String newestBefore = before.get(before.size() - 1);
                    assertTrue(after.stream().anyMatch(a -> a.compareTo(newestBefore) >= 0), log.toString());
                }
            }
            assertEnd(runDir, log.toString());
        }
        System.out.println("FaultInjectionIT random kills: " + done + " in " + campaigns + " campaigns\n" + log);
    }

    @Test
    void aSigtermStopsAtAStepBoundaryAndTheResumeEndsBitIdentical() throws Exception {
        Path runDir = tmp.resolve("sigterm");
        Launched run = launch(runDir, null);
        assertTrue(run.training.await(180, TimeUnit.SECONDS), run.out.toString());
        Thread.sleep(1500);
        // kill(1), not Process.destroy(): destroy also closes the pipe this test reads the run's output from
        Distribution.signal("TERM", run.process.pid());
        int exit = run.finish();
        if (exit == 0) {
            assertEnd(runDir, run.out.toString()); // the run finished before the signal came
            return;
        }
        assertEquals(143, exit, run.out.toString());
        assertTrue(run.out.toString().contains("anneal: stopped by SIGTERM in stage 1 (sft); resume with: anneal run"), run.out.toString());
        List<String> committed = committedCheckpoints(runDir);
        resumeAndCheck(runDir, committed.isEmpty() ? null : committed.get(committed.size() - 1));
    }

    @Test
    void aFullDiskDuringACheckpointStopsTheRunAndTheResumeStartsFromTheOneBefore() throws Exception {
        // a Java-level ENOSPC injected after the optimizer files of step 4 are written: the same fault as the
        // real full disk below, on machines that cannot mount one
        Path runDir = tmp.resolve("full");
        Launched run = launch(runDir, "checkpoint.optimizer-written@4=fail");
        assertEquals(1, run.finish(), run.out.toString());
        assertTrue(run.out.toString().contains("anneal: sft: the checkpoint of step 4 could not be written to "
                + runDir.resolve("1-sft/checkpoints") + " (No space left on device"), run.out.toString());
        assertTrue(run.out.toString().contains("the last checkpoint on disk is " + runDir.resolve("1-sft/checkpoints/step-000002")),
                run.out.toString());
        assertEquals(List.of("step-000002"), ReliabilityIT.names(runDir.resolve("1-sft/checkpoints")), "no partial folder");
        resumeAndCheck(runDir, "step-000002");
    }

    /**
     * A real full disk: the run folder on a size-capped tmpfs ({@link SizeCappedFileSystem}) whose free
     * space, after a filler file, holds the checkpoint of step 2 but not that of step 4 too, so the
     * kernel refuses a write of step 4's checkpoint with ENOSPC. The run stops with the message of the
     * injected fault above, leaves no partial folder and no torn metrics line; after the filler is
     * deleted (space freed), --resume starts from step 2 and ends bit-identical to the uninterrupted run.
     */
    @Test
    void aRealFullDiskStopsTheRunAndTheResumeAfterFreeingSpaceEndsBitIdentical() throws Exception {
        // room for the resume's peak: checkpoints 2 and 4 and 6 being written, the final model, the logs
        long capacity = 4 * checkpointBytes + (8 << 20);
        try (SizeCappedFileSystem disk = SizeCappedFileSystem.mount(tmp.resolve("small-disk"), capacity)) {
            // what the run writes before step 4's checkpoint is one checkpoint and about 40 KB of logs and metrics;
            // half a checkpoint more leaves step 4's short by its optimizer state
            long room = checkpointBytes * 3 / 2;
            Path filler = disk.fill("filler", disk.free() - room);
            long free = disk.free();
            Path runDir = disk.mountPoint.resolve("run");
            Path onDisk = disk.outside(runDir);
            Result full = dist.shortTinyRun(runDir).within(disk.enter()).run();

            assertEquals(1, full.exit(), full.out());
            Path checkpoints = runDir.resolve("1-sft/checkpoints");
            assertTrue(full.out().contains("anneal: sft: the checkpoint of step 4 could not be written to " + checkpoints
                    + " (No space left on device"), full.out());
            assertTrue(full.out().contains("the last checkpoint on disk is " + checkpoints.resolve("step-000002")), full.out());
            assertFalse(full.out().contains("\tat "), full.out());
            assertEquals(List.of("step-000002"), ReliabilityIT.names(onDisk.resolve("1-sft/checkpoints")), "no partial folder");
            String metrics = Files.readString(onDisk.resolve("1-sft/metrics.jsonl"));
            assertTrue(metrics.endsWith("}\n"), "no torn last line: " + metrics);
            com.fasterxml.jackson.databind.ObjectMapper json = new com.fasterxml.jackson.databind.ObjectMapper();
            List<Long> steps = new ArrayList<>();
            for (String line : metrics.lines().toList()) {
                steps.add(json.readTree(line).get("step").asLong());
            }
            assertEquals(List.of(1L, 2L, 3L, 4L), steps, "each step up to the failed checkpoint once, each line whole");
            assertTrue(Files.readString(onDisk.resolve("1-sft/events.jsonl")).contains(
                    "{\"event\":\"checkpoint_failed\",\"step\":4,\"num_tokens\":4096,\"reason\":\"No space left on device\"}"));
            System.out.printf("FaultInjectionIT real full disk: tmpfs of %,d bytes, %,d free after the filler, %,d after the failed run%n",
                    capacity, free, disk.free());

            Files.delete(filler);
            resumeAndCheck(runDir, onDisk, "step-000002", disk.enter());
        }
    }

    /**
     * A real full disk in the middle of a metrics row: the stage's folder is a size-capped tmpfs left
     * with one page (4 KiB) free and the run writes no checkpoint before its end, so rows of about 490
     * bytes fill the page near step 8 and the kernel takes only the first part of the next one before
     * ENOSPC. The run stops (exit 1) naming the file, the step and that no checkpoint exists; the file
     * keeps whole rows only; after the filler is deleted, --resume starts over with no torn line to drop.
     */
    @Test
    void aRealFullDiskInTheMiddleOfAMetricsRowLeavesNoTornLine() throws Exception {
        Path runDir = tmp.resolve("metrics-full");
        Path stage = runDir.resolve("1-sft");
        String[] noCheckpoints = {"--set", "stages[0].checkpoint-every=\"0\"", "--set", "stages[0].token-budget=\"16384\""};
        try (SizeCappedFileSystem disk = SizeCappedFileSystem.mount(stage, 2 * checkpointBytes + (8 << 20))) {
            Path filler = disk.fill("filler", disk.free() - 4096);
            assertEquals(4096, disk.free(), "one page left");
            Path metrics = disk.outside(stage.resolve("metrics.jsonl"));
            Result full = dist.shortTinyRun(runDir, noCheckpoints).within(disk.enter()).run();

            assertEquals(1, full.exit(), full.out());
            java.util.regex.Matcher failed = java.util.regex.Pattern.compile("anneal: sft: cannot write metrics to "
                    + java.util.regex.Pattern.quote(stage.resolve("metrics.jsonl").toString())
                    + " \\(No space left on device\\) at step (\\d+); no checkpoint exists on disk, so the work of this run is not saved. "
                    + "The run stopped: free space \\(or fix the error\\) and run again with --resume").matcher(full.out());
            assertTrue(failed.find(), full.out());
            long failedStep = Long.parseLong(failed.group(1));
            assertFalse(full.out().contains("\tat ") || full.out().contains("Exception"), full.out());
            String rows = Files.readString(metrics);
            assertTrue(rows.endsWith("}\n"), "whole rows only, no torn line: " + rows);
            com.fasterxml.jackson.databind.ObjectMapper json = new com.fasterxml.jackson.databind.ObjectMapper();
            List<Long> steps = new ArrayList<>();
            for (String row : rows.lines().toList()) {
                steps.add(json.readTree(row).get("step").asLong());
            }
            assertEquals(java.util.stream.LongStream.range(1, failedStep).boxed().toList(), steps, rows);
            assertTrue(failedStep >= 5 && failedStep <= 12, "a page holds about 8 rows: " + failedStep);
            System.out.println("FaultInjectionIT real full disk in a metrics row: ENOSPC at step " + failedStep + ", "
                    + rows.length() + " bytes of whole rows kept");

            Files.delete(filler);
            List<String> resume = new ArrayList<>(List.of("--resume"));
            resume.addAll(List.of(noCheckpoints));
            Result resumed = dist.shortTinyRun(runDir, resume.toArray(String[]::new)).within(disk.enter()).run();
            assertEquals(0, resumed.exit(), resumed.tail());
            assertTrue(resumed.out().contains("sft: --resume: no complete checkpoint under " + stage.resolve("checkpoints")
                    + ", starting from the beginning"), resumed.out());
            assertFalse(resumed.out().contains("torn"), resumed.out());
            assertEquals(java.util.stream.LongStream.rangeClosed(1, 16).boxed().toList(), Files.readAllLines(metrics).stream()
                    .map(l -> Long.parseLong(l.replaceAll("^\\{\"step\":(\\d+),.*", "$1"))).toList(), "each step once");
        }
    }

    /**
     * A disk full before the first step, on a tmpfs of two pages (4 KiB each). With --quiet, the lock
     * file and the start of run.log take them, so the record of the pipeline (pipeline.json, 6 KB)
     * cannot be written; without it, run.log takes both with the resolved pipeline (over 10 KB), so the
     * lock cannot be written. Each is exit 1 naming the file, the kernel's reason and that the run has
     * not started; no temporary file is left; a console log that stops being written is named once.
     */
    @Test
    void aRealFullDiskBeforeTheFirstStepNamesTheFileItCouldNotWrite() throws Exception {
        try (SizeCappedFileSystem disk = SizeCappedFileSystem.mount(tmp.resolve("tiny-disk"), 2 * 4096)) {
            Path runDir = disk.mountPoint.resolve("run");
            Result full = dist.shortTinyRun(runDir, "--quiet").within(disk.enter()).run();
            assertEquals(1, full.exit(), full.out());
            assertTrue(full.out().contains("anneal: cannot write " + runDir.resolve("pipeline.json") + " (No space left on device); "
                    + "the run has not started: free space (or fix the error) and run again"), full.out());
            assertFalse(full.out().contains("\tat ") || full.out().contains("Exception"), full.out());
            assertEquals(List.of("anneal.lock", "run.log"), ReliabilityIT.names(disk.outside(runDir)), "no temporary file left");
        }
        try (SizeCappedFileSystem disk = SizeCappedFileSystem.mount(tmp.resolve("tiny-disk-2"), 2 * 4096)) {
            Path runDir = disk.mountPoint.resolve("run");
            Result full = dist.shortTinyRun(runDir).within(disk.enter()).run();
            assertEquals(1, full.exit(), full.out());
            assertTrue(full.out().contains("anneal: cannot lock the run folder " + runDir + " (" + runDir.resolve("anneal.lock")
                    + ": No space left on device); the run has not started: free space (or fix the error) and run again"), full.tail());
            assertFalse(full.out().contains("\tat ") || full.out().contains("Exception") || full.out().contains("error log"), full.tail());
            assertEquals(1, full.out().lines().filter(l -> l.startsWith("anneal: warning: cannot write the console log "
                    + runDir.resolve("run.log") + " any more (No space left on device); the run goes on, and only the terminal shows "
                    + "what follows")).count(), "the log that ends is named once: " + full.out());
        }
    }

    @Test
    void aFileSizeLimitStopsTheRunAndTheResumeStartsOver() throws Exception {
        Path runDir = tmp.resolve("ulimit");
        Result limited = dist.shortTinyRun(runDir).fileSizeLimit(1000).run();
        assertEquals(1, limited.exit(), limited.tail());
        assertFalse(limited.out().contains("\tat "), limited.out());
        resumeAndCheck(runDir, null);
    }
}
