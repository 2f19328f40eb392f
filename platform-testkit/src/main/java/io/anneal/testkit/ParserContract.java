package io.anneal.testkit;

import io.anneal.api.InputException;
import java.util.Arrays;
import java.util.List;
import java.util.concurrent.Callable;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.TimeoutException;
import java.util.concurrent.atomic.AtomicLong;

/**
 * The contract of a parser under fuzzing (issue 15): every input ends in success or in a refusal the
 * command line reports as bad input ({@link InputException}, exit 2, or a parser's own checked
 * refusal that its caller turns into one), never another throwable, never a hang (each input gets
 * {@link #timeLimitMillis}), and never an allocation beyond {@link #allocationCap} for its size.
 * Each parse runs on one worker thread, where its allocation is measured
 * ({@code com.sun.management.ThreadMXBean}); a parse that overruns leaves that thread behind and the
 * next check starts a fresh one.
 *
 * <pre>
 *   static final ParserContract CONTRACT = new ParserContract("safetensors header", 2_000, 64L << 20, 64);
 *   CONTRACT.check(bytes.length, () -> SafetensorsReader.open(file), () -> describe(bytes));
 * </pre>
 */
public final class ParserContract {
    private final String target;
    private final long timeLimitMillis;
    private final long fixedAllocationBytes;
    private final long allocationPerInputByte;
    private final List<Class<? extends Throwable>> refusals;
    private final AtomicLong executions = new AtomicLong();
    private final AtomicLong refused = new AtomicLong();
    private ExecutorService worker = newWorker();

    /**
     * @param target what is parsed, for messages and reports
     * @param timeLimitMillis the longest one input may take
     * @param fixedAllocationBytes the allocation any input may cause
     * @param allocationPerInputByte the allocation each byte of input may add
     * @param refusals the parser's own checked refusals besides {@link InputException}
     */
    @SafeVarargs
    public ParserContract(String target, long timeLimitMillis, long fixedAllocationBytes, long allocationPerInputByte,
                          Class<? extends Throwable>... refusals) {
        this.target = target;
        this.timeLimitMillis = timeLimitMillis;
        this.fixedAllocationBytes = fixedAllocationBytes;
        this.allocationPerInputByte = allocationPerInputByte;
        this.refusals = Arrays.asList(refusals);
    }

    /** The most an input of {@code inputBytes} may allocate. */
    public long allocationCap(long inputBytes) {
        return fixedAllocationBytes + allocationPerInputByte * inputBytes;
    }

    /** Inputs checked so far; how many of them were refused as bad input. */
    public long executions() {
        return executions.get();
    }

    public long refused() {
        return refused.get();
    }

    /**
     * Parses one input under the contract. Returns true when the parser accepted it, false when it
     * refused it as bad input; throws an {@link AssertionError} naming {@code input} otherwise.
     */
    public boolean check(long inputBytes, Callable<?> parse, java.util.function.Supplier<String> input) {
        executions.incrementAndGet();
        Future<long[]> result = worker.submit(() -> {
            com.sun.management.ThreadMXBean threads = (com.sun.management.ThreadMXBean) java.lang.management.ManagementFactory.getThreadMXBean();
            long before = threads.getCurrentThreadAllocatedBytes();
            long accepted = 1;
            try {
                parse.call();
            } catch (InputException e) {
                accepted = 0;
            } catch (Exception e) {
                if (refusals.stream().noneMatch(r -> r.isInstance(e))) {
                    throw e;
                }
                accepted = 0;
            }
            return new long[] {accepted, threads.getCurrentThreadAllocatedBytes() - before};
        });
        long[] outcome;
        try {
            outcome = result.get(timeLimitMillis, TimeUnit.MILLISECONDS);
        } catch (TimeoutException e) {
            result.cancel(true);
            worker.shutdownNow();
            worker = newWorker();
            throw new AssertionError(target + ": no answer within " + timeLimitMillis + " ms (a hang) for input " + input.get());
        } catch (ExecutionException e) {
            throw new AssertionError(target + ": " + e.getCause() + " is neither success nor a refusal as bad input, for input "
                    + input.get(), e.getCause());
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            throw new AssertionError(target + ": interrupted", e);
        }
        if (outcome[1] > allocationCap(inputBytes)) {
            throw new AssertionError(target + ": allocated " + outcome[1] + " bytes for " + inputBytes + " bytes of input, over the cap of "
                    + allocationCap(inputBytes) + ", for input " + input.get());
        }
        if (outcome[0] == 0) {
            refused.incrementAndGet();
        }
        return outcome[0] == 1;
    }

    /** One line for the fuzzing report: target, executions, how many were refused. */
    public String report() {
        return String.format(java.util.Locale.ROOT, "%s: %,d executions (%,d accepted, %,d refused as bad input)", target,
                executions(), executions() - refused(), refused());
    }

    private static ExecutorService newWorker() {
        return Executors.newSingleThreadExecutor(r -> {
            Thread t = new Thread(r, "parser-under-fuzzing");
            t.setDaemon(true);
            return t;
        });
    }

    /** A short printable form of an input for failure messages: its length and its first bytes, escaped. */
    public static String describe(byte[] input) {
        StringBuilder s = new StringBuilder(input.length + " bytes: \"");
        for (int i = 0; i < Math.min(input.length, 400); i++) {
            int b = input[i] & 0xff;
            if (b >= 0x20 && b < 0x7f && b != '"' && b != '\\') {
                s.append((char) b);
            } else {
                s.append(String.format(java.util.Locale.ROOT, "\\x%02x", b));
            }
        }
        return s.append(input.length > 400 ? "\"..." : "\"").toString();
    }
}
