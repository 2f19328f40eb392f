package io.anneal.runtime.train;

import java.io.IOException;
import java.util.Optional;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

/**
 * Named points of the checkpoint protocol where the fault-injection tests stop a run: set
 * {@value #ENVIRONMENT} to {@code POINT@STEP=ACTION}, e.g. {@code checkpoint.renamed@4=pause}. At the
 * point of that step's checkpoint, {@code pause} prints {@code anneal-fault: paused at POINT@STEP} and
 * waits for the test's SIGKILL; {@code fail} throws the IOException of a full disk. Unset (every real
 * run), each point is one comparison. Points, in the order a checkpoint passes them:
 * {@link #POINTS}; {@code rotation} is reached for each checkpoint deleted, with that checkpoint's step,
 * after its COMPLETE marker is gone and before its files are.
 */
final class FaultPoints {
    static final String ENVIRONMENT = "ANNEAL_TEST_FAULT";
    static final String[] POINTS = {"checkpoint.temp-created", "checkpoint.model-written", "checkpoint.optimizer-written",
        "checkpoint.data-stream-written", "checkpoint.trainer-state-written", "checkpoint.manifest-written",
        "checkpoint.fsynced", "checkpoint.renamed", "checkpoint.complete", "checkpoint.rotation", "final.written"};
    private static final Pattern FORMAT = Pattern.compile("([a-z.-]+)@(\\d+)=(pause|fail)");
    private static final Optional<Armed> ARMED = parse(System.getenv(ENVIRONMENT));

    private record Armed(String point, long step, boolean pause) {
    }

    private FaultPoints() {
    }

    private static Optional<Armed> parse(String value) {
        if (value == null || value.isEmpty()) {
            return Optional.empty();
        }
        Matcher m = FORMAT.matcher(value);
        if (!m.matches() || !java.util.Arrays.asList(POINTS).contains(m.group(1))) {
            throw new IllegalStateException(ENVIRONMENT + "=" + value + ": expected POINT@STEP=pause|fail with POINT one of "
                    + String.join(", ", POINTS));
        }
        return Optional.of(new Armed(m.group(1), Long.parseLong(m.group(2)), m.group(3).equals("pause")));
    }

    static void reached(String point, long step) throws IOException {
        if (ARMED.isEmpty() || !ARMED.get().point().equals(point) || ARMED.get().step() != step) {
            return;
        }
        if (!ARMED.get().pause()) {
            throw new IOException("No space left on device (injected by " + ENVIRONMENT + " at " + point + "@" + step + ")");
        }
        System.out.println("anneal-fault: paused at " + point + "@" + step);
        System.out.flush();
        while (true) {
            try {
                Thread.sleep(60_000);
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
                throw new IOException("interrupted while paused at fault point " + point, e);
            }
        }
    }
}
