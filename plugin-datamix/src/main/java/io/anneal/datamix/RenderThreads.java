package io.anneal.datamix;

import java.util.concurrent.ExecutionException;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Future;
import java.util.concurrent.LinkedBlockingQueue;
import java.util.concurrent.ThreadPoolExecutor;
import java.util.concurrent.TimeUnit;

/**
 * The threads that tokenise and render batches of records, for the index pass and for a stream
 * without token cache. Tokenising is ~90% of rendering (ThroughputBenchmark's stage split) and the
 * native tokenizer runs one batch on one core, so batches in flight are what use the other cores;
 * results are always consumed in submission order, so the output never depends on the threads.
 */
final class RenderThreads {
    /** -Danneal.datamix.render-threads=N overrides every other choice (the benchmark's A/B runs). */
    private static final Integer OVERRIDE = Integer.getInteger("anneal.datamix.render-threads");
    /** min(4, cores) when the pipeline leaves threads to each library ({@code pipeline.threads = 0}). */
    private static final int DEFAULT = Math.max(1, Math.min(4, Runtime.getRuntime().availableProcessors()));
    private static volatile int pipelineThreads;

    /**
     * The rendering threads: {@code pipeline.threads} (by default the CPUs this process may use) when
     * the pipeline sets it, so rendering and libtorch share one budget of threads; else {@link #DEFAULT}.
     */
    static int count() {
        return OVERRIDE != null ? Math.max(1, OVERRIDE) : pipelineThreads > 0 ? pipelineThreads : DEFAULT;
    }

    /** Follows {@code pipeline.threads} ({@link io.anneal.api.extension.ExtensionContext#threads()}; 0: the default). */
    static void usePipelineThreads(int threads) {
        pipelineThreads = Math.max(0, threads);
    }

    private RenderThreads() {
    }

    /** A pool of {@link #count()} daemon threads that end when idle (an unclosed stream leaves no threads). */
    static ExecutorService newPool() {
        int count = count();
        ThreadPoolExecutor pool = new ThreadPoolExecutor(count, count, 10, TimeUnit.SECONDS, new LinkedBlockingQueue<>(), r -> {
            Thread t = new Thread(r, "datamix-render");
            t.setDaemon(true); // an unclosed stream must not keep the JVM alive
            return t;
        });
        pool.allowCoreThreadTimeOut(true);
        return pool;
    }

    /** The result of a rendering task; its failure (bad input) is rethrown here as it was thrown. */
    static <T> T await(Future<T> f) {
        try {
            return f.get();
        } catch (ExecutionException e) {
            if (e.getCause() instanceof RuntimeException r) {
                throw r;
            }
            if (e.getCause() instanceof Error err) {
                throw err;
            }
            throw new IllegalStateException(e.getCause());
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            throw new IllegalStateException("interrupted while waiting for rendered records", e);
        }
    }
}
