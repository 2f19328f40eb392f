package io.anneal.runtime.cli;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.ByteArrayOutputStream;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Map;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** Exit codes of the CLI: 0 success, 1 failed run, 2 bad input; messages without stack traces. */
class MainTest {
    @TempDir
    Path tmp;
    final ByteArrayOutputStream out = new ByteArrayOutputStream();
    final ByteArrayOutputStream err = new ByteArrayOutputStream();

    private int run(String... args) {
        Main main = new Main(new PrintStream(out, true, StandardCharsets.UTF_8), new PrintStream(err, true, StandardCharsets.UTF_8),
                Map.of(), tmp, null);
        return main.run(args);
    }

    private String err() {
        return err.toString(StandardCharsets.UTF_8);
    }

    @Test
    void missingFileIsBadInput() {
        assertEquals(2, run("validate", "nope.conf"));
        assertEquals("anneal: " + tmp.resolve("nope.conf") + ": pipeline file not found\n", err());
    }

    @Test
    void syntaxErrorIsBadInputWithFileAndLineAndNoStackTrace() throws Exception {
        Files.writeString(tmp.resolve("bad.conf"), "pipeline {\n name = \n");
        assertEquals(2, run("validate", "bad.conf"));
        assertTrue(err().contains(tmp.resolve("bad.conf") + ": "), err());
        assertTrue(!err().contains("\tat "), err());
    }

    @Test
    void missingPluginsFolderOnTheCommandLineIsBadInput() {
        assertEquals(2, run("--plugins", tmp.resolve("none").toString(), "plugins"));
        assertTrue(err().contains("plugins folder does not exist"), err());
    }

    @Test
    void unknownCommandIsAUsageError() {
        assertEquals(2, run("frobnicate"));
    }

    @Test
    void pluginsListsTheCorePluginAndVersionAndHelpSucceed() {
        assertEquals(0, run("plugins"));
        assertTrue(out.toString(StandardCharsets.UTF_8).contains("core "), out.toString(StandardCharsets.UTF_8));
        assertTrue(out.toString(StandardCharsets.UTF_8).contains("  stage: schedule-table"));
        assertEquals(0, run("--version"));
        assertEquals(0, run("run", "--help"));
    }

    @Test
    void aPipelineNamingAnUnloadedScheduleTypeIsBadInput() throws Exception {
        // Core offers no LrSchedule, so validation (before anything runs) fails: exit 2.
        Files.writeString(tmp.resolve("p.conf"), "pipeline.name = t\nstages = [ { type = schedule-table, schedule { type = wsd } } ]\n");
        assertEquals(2, run("run", "p.conf"));
        assertTrue(err().contains("stages[0].schedule.type: expected a lr-schedule type (known: none are loaded)"), err());
    }

    @Test
    void bareOverridesAfterTheFileWorkLikeSet() throws Exception {
        Files.writeString(tmp.resolve("p.conf"), "pipeline.name = t\nstages = []\n");
        assertEquals(0, run("validate", "p.conf", "pipeline.name=other", "--set", "pipeline.seed=3"));
        assertTrue(out.toString(StandardCharsets.UTF_8).contains("valid (pipeline 'other', 0 stage(s)"), out.toString(StandardCharsets.UTF_8));
        assertEquals(2, run("validate", "p.conf", "other.conf"));
        assertEquals("anneal: 'other.conf' after p.conf: expected an override PATH=VALUE, such as "
                + "stages[0].schedule.peak-lr=1e-4 (one pipeline file per command)\n", err());
    }

    @Test
    void aFailureShowsItsMessageNotAJavaClassName() {
        assertEquals("sft: loss is NaN; training stopped",
                Main.describe(new io.anneal.runtime.train.TrainingDivergedException("sft: loss is NaN; training stopped")));
        assertEquals("an internal error with no message", Main.describe(new NullPointerException()));
    }

    @Test
    void configPrintsTheResolvedPipelineWithOriginsAndRunsNothing() throws Exception {
        Files.writeString(tmp.resolve("p.conf"), "pipeline { name = t, run-dir = out }\nstages = []\n");
        assertEquals(0, run("config", "p.conf", "pipeline.seed=3"));
        String printed = out.toString(StandardCharsets.UTF_8);
        assertTrue(printed.contains("pipeline.name = \"t\"  # " + tmp.resolve("p.conf") + ":1"), printed);
        assertTrue(printed.contains("pipeline.seed = 3  # --set pipeline.seed=3"), printed);
        assertTrue(printed.contains("pipeline.threads = \"auto\"  # default of plugin core"), printed);
        assertFalse(Files.exists(tmp.resolve("out")), "nothing ran");
    }

    @Test
    void aResumeCommandIsThisCommandLineAgainInShellWords() {
        assertEquals("stages[0].x=1", Main.shellWord("stages[0].x=1"));
        assertEquals("'pipeline.run-dir=\"/tmp/a b\"'", Main.shellWord("pipeline.run-dir=\"/tmp/a b\""));
        assertEquals("'it'\\''s'", Main.shellWord("it's"));
    }
}
