package io.anneal.runtime.pipeline;

import java.io.PrintStream;
import java.util.Optional;
import sun.misc.Signal;

/**
 * SIGINT and SIGTERM. The JVM's own handling runs shutdown hooks and exits while other threads may
 * be inside libtorch, which then crashes (SIGSEGV in torchBackward, an hs_err file). Here a signal
 * never tears the JVM down:
 * <ul>
 *   <li>while a pipeline runs ({@link #arm}), the first signal only raises a flag; the stage checks
 *       it between steps ({@code StageContext.stopRequested()}), writes a checkpoint and returns, and
 *       the run exits 130 (SIGINT) or 143 (SIGTERM);</li>
 *   <li>a second signal, or one when nothing is running that could be saved, ends the process at
 *       once by the signal's default action (SIG_DFL, and the signal sent to the process again): the kernel stops every thread where it is, no exit
 *       handler runs (so libtorch's static destructors never race a running thread), and the parent
 *       sees the usual 130 or 143.</li>
 * </ul>
 */
public final class StopSignals {
    private static volatile String requested;
    private static volatile boolean armed;
    private static volatile PrintStream console = System.err;

    private StopSignals() {
    }

    /** Installs the handlers; {@code bin/anneal} calls it first thing (never in tests that share a JVM). */
    public static void install(PrintStream err) {
        console = err;
        for (String name : new String[] {"INT", "TERM"}) {
            try {
                Signal.handle(new Signal(name), s -> onSignal(s.getName()));
            } catch (IllegalArgumentException e) {
                // the signal is reserved (java -Xrs) or ignored (nohup): the JVM's default stays
            }
        }
    }

    /** From here until {@link #disarm} a first signal asks the running stage to stop after its step. */
    public static void arm(PrintStream out) {
        console = out;
        armed = true;
    }

    public static void disarm() {
        armed = false;
    }

    static void onSignal(String name) {
        if (!armed || requested != null) {
            dieAtOnce(name);
            return;
        }
        requested = name;
        console.println();
        console.println("anneal: SIG" + name + ": stopping after the current step, with a checkpoint (send it again to stop at once)");
    }

    /** The signal that asked the run to stop, as {@code SIGINT}; empty while none did. */
    public static Optional<String> requested() {
        return Optional.ofNullable(requested).map(n -> "SIG" + n);
    }

    /** 128 + the signal's number, as a shell reports a process the signal ended: 130 for SIGINT, 143 for SIGTERM. */
    public static int exitCode(String signal) {
        return signal.endsWith("TERM") ? 143 : 130;
    }

    /**
     * The signal's default action for the whole process: its handler back to SIG_DFL, then the signal
     * sent again to the process by {@code kill} (Signal.raise refuses a signal without a Java handler,
     * and a thread-directed raise could meet a thread that blocks it). Exiting through the JVM instead
     * ({@code halt}) runs libtorch's static destructors under a thread still inside libtorch: the
     * very crash this class exists to avoid; it is only the last resort.
     */
    private static void dieAtOnce(String name) {
        try {
            Signal.handle(new Signal(name), sun.misc.SignalHandler.SIG_DFL);
            new ProcessBuilder("kill", "-s", name, Long.toString(ProcessHandle.current().pid())).inheritIO().start().waitFor();
            Thread.sleep(10_000); // the kernel ends the process before this returns
        } catch (IllegalArgumentException | java.io.IOException | InterruptedException e) {
            // the last resort below
        }
        Runtime.getRuntime().halt(exitCode(name));
    }
}
