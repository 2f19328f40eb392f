package io.anneal.distribution.it;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.anneal.distribution.it.Distribution.Result;
import io.anneal.runtime.plugins.BrokenPlugins;
import io.anneal.runtime.plugins.BrokenPlugins.Fixture;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * The broken-plugin matrix of issue 15 through bin/anneal: every broken fixture of
 * {@link BrokenPlugins} (built from source by this build), the good companions, and a truncated copy
 * of the example plugin (a download cut short) dropped at once into plugins/ of a copy of the
 * assembled distribution. Then {@code plugins}, {@code validate} of a shipped example, a short
 * {@code run}, and the {@code run} of a pipeline whose plugin is the truncated one.
 *
 * <p>Every command pays the hanging fixture's 30 s initialisation limit (bin/anneal's, not a test
 * setting), so the four run at once.
 */
class BrokenPluginsIT {
    /** The loader's limit on one plugin's initialisation in bin/anneal (PluginLoader, README "Writing a plugin"). */
    static final long INIT_TIMEOUT_MILLIS = 30_000;

    @TempDir
    static Path tmp;
    static Distribution dist;
    static List<Fixture> matrix;
    /** The example plugin's jar, cut to its first 4 KiB: not a readable jar. */
    static Path truncated;
    static Result plugins;
    static Result validate;
    static Result run;
    static Result needsTheTruncated;
    static ExecutorService pool;

    @BeforeAll
    static void dropTheBrokenPluginsInAndRunEachCommand() throws Exception {
        dist = Distribution.copyOfAssembled(tmp);
        matrix = BrokenPlugins.buildFolder(dist.resolve("plugins"), INIT_TIMEOUT_MILLIS);
        byte[] example = Files.readAllBytes(Path.of(System.getProperty("anneal.example.jar")));
        truncated = dist.resolve("plugins/anneal-plugin-rsqrt-1.0.0.jar");
        Files.write(truncated, java.util.Arrays.copyOf(example, 4096));

        pool = Executors.newFixedThreadPool(4);
        Future<Result> p = pool.submit(() -> dist.run("plugins"));
        Future<Result> v = pool.submit(() -> dist.run("validate", "examples/tiny-sft.conf"));
        Future<Result> r = pool.submit(() -> dist.shortTinyRun(tmp.resolve("tiny-run"), "--quiet").timeout(java.time.Duration.ofMinutes(5))
                .run());
        Future<Result> n = pool.submit(() -> dist.run("run", "examples/rsqrt-schedule-table.conf"));
        plugins = p.get();
        validate = v.get();
        run = r.get();
        needsTheTruncated = n.get();
    }

    @AfterAll
    static void stopThePool() {
        if (pool != null) {
            pool.shutdownNow();
        }
    }

    /** The lines of {@code out} that name {@code file}, by its full path (no fixture's path is a part of another's). */
    static List<String> linesNaming(String out, Path file) {
        return out.lines().filter(l -> l.contains(file.toString())).toList();
    }

    @Test
    void pluginsNamesEachBrokenOneInOneLineWithItsVerdictAndListsTheGoodOnes() {
        assertEquals(0, plugins.exit(), plugins.out());
        String out = plugins.out();
        assertTrue(out.contains("\nRefused (" + (matrix.size() + 1) + "):\n"), out);
        for (Fixture f : matrix) {
            List<String> lines = linesNaming(out, dist.resolve("plugins").resolve(f.file()));
            assertEquals(1, lines.size(), f.file() + " is named in exactly one line:\n" + out);
            assertTrue(lines.get(0).startsWith("  ") && lines.get(0).contains(f.verdict()),
                    f.file() + ": expected its refusal to hold '" + f.verdict() + "', found " + lines.get(0));
        }
        List<String> cut = linesNaming(out, truncated);
        assertEquals(1, cut.size(), out);
        assertTrue(cut.get(0).contains("anneal-plugin-rsqrt-1.0.0.jar is not a readable jar (ZipException: "), cut.get(0));

        // the bundled plugins and the good companions load; the twin's first jar is the one kept
        for (String id : List.of("core", "schedules", "mup", "ssm-hybrid", "dpo", "datamix")) {
            assertTrue(out.lines().anyMatch(l -> l.startsWith(id + " ")), id + " missing in\n" + out);
        }
        for (String id : BrokenPlugins.LOADED) {
            assertTrue(out.lines().anyMatch(l -> l.startsWith(id + " 1.2.3  API [1.0,2.0)  " + dist.resolve("plugins"))), id + ":\n" + out);
        }
        assertTrue(out.contains("twin 1.2.3  API [1.0,2.0)  " + dist.resolve("plugins/a-twin.jar")), out);
        assertEquals(1, out.lines().filter(l -> l.contains(BrokenPlugins.THREAD_WARNING)).count(), out);
        assertNoTrace(out);
    }

    @Test
    void validateOfAShippedExampleSucceedsAndSaysThatPluginsWereRefused() {
        assertEquals(0, validate.exit(), validate.out());
        assertTrue(validate.out().contains("anneal: " + (matrix.size() + 1) + " plugin problem(s); 'anneal plugins' lists them"),
                validate.out());
        assertNoTrace(validate.out());
    }

    @Test
    void aRunThatNeedsNoneOfThemTrainsToTheEnd() throws Exception {
        assertEquals(0, run.exit(), run.tail());
        assertTrue(run.out().contains("sft: done: 6 steps"), run.out());
        assertTrue(Files.isRegularFile(tmp.resolve("tiny-run/1-sft/final/model.safetensors")), run.out());
        assertNoTrace(run.out());
    }

    @Test
    void aPipelineWhosePluginIsBrokenIsBadInputNamingTheKey() {
        assertEquals(2, needsTheTruncated.exit(), needsTheTruncated.out());
        assertTrue(needsTheTruncated.out().contains("anneal: " + (matrix.size() + 1) + " plugin problem(s); 'anneal plugins' lists them"),
                needsTheTruncated.out());
        assertTrue(needsTheTruncated.out().contains(dist.resolve("examples/rsqrt-schedule-table.conf")
                + ":14: stages[0].schedule.type: expected a lr-schedule type (known: "), needsTheTruncated.out());
        assertTrue(needsTheTruncated.out().contains("found unknown type 'inverse-sqrt'"), needsTheTruncated.out());
        assertFalse(Files.exists(dist.resolve("runs/rsqrt-table")), "nothing ran");
        assertNoTrace(needsTheTruncated.out());
    }

    /**
     * An exit the scan of a plugin's classes cannot see (System.exit through reflection) while the plugin
     * initialises ends bin/anneal with exit 2 and one line naming the plugin and its jar; the plugins
     * folder is named with --plugins, on the distribution as assembled.
     */
    @Test
    void aPluginThatEndsTheProcessWhileItStartsIsNamedWithExitTwo() throws Exception {
        Path folder = Files.createDirectories(tmp.resolve("exit-plugin"));
        Path jar = BrokenPlugins.exitThroughReflection(folder.resolve("reflective-exit.jar"));
        Result r = Distribution.assembled().command("--plugins", folder.toString(), "plugins").in(tmp).run();
        assertEquals(2, r.exit(), r.out());
        assertEquals(List.of("anneal: plugin reflexit.P (" + jar + ") ended the process (System.exit or Runtime.halt) while it "
                + "initialised; remove it from the plugin folder"), r.out().lines().toList(), r.out());
    }

    static void assertNoTrace(String out) {
        assertFalse(out.contains("\tat ") || out.contains("Exception in thread"), out);
    }
}
