package io.anneal.runtime.cli;

import static org.junit.jupiter.api.Assertions.assertEquals;

import io.anneal.runtime.plugins.FixtureJars;
import java.io.ByteArrayOutputStream;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * Issue 13 item 3, configuration built once: through {@link Main} (the plugin loader, the validator
 * and the pipeline engine, as {@code anneal run} uses them), each factory of a pipeline runs once per
 * command. A fixture plugin's factories append a line to a log file at every call; before this
 * change {@code anneal run} called the data block's factory three times (validation built the stage,
 * which built its data; validation's walk of the nested blocks built the data again; the engine built
 * the stage, and its data, a third time) and {@code anneal validate} twice.
 */
class BuildOnceTest {
    @TempDir
    Path tmp;
    final ByteArrayOutputStream out = new ByteArrayOutputStream();
    final ByteArrayOutputStream err = new ByteArrayOutputStream();
    Path plugins;

    /** Counting factories: a stage that builds its nested data block itself, the data, a schedule and an optimizer. */
    private static final String PLUGIN = """
            package counted;
            import io.anneal.api.plugin.*;
            import io.anneal.api.extension.*;
            import io.anneal.api.config.ConfigView;
            import io.anneal.api.data.*;
            import io.anneal.api.optim.*;
            import io.anneal.api.schedule.LrSchedule;
            import io.anneal.api.train.*;
            import java.nio.file.*;
            import java.util.*;
            public class P implements Plugin {
              public String id() { return "counted"; }
              public String version() { return "1.0"; }
              public VersionRange apiRange() { return VersionRange.parse("[1.0,2.0)"); }
              static void count(ConfigView c, ExtensionContext x, String what) {
                try {
                  Files.writeString(x.resolvePath(c, "log"), what + " " + c.path() + "\\n", StandardOpenOption.CREATE,
                      StandardOpenOption.APPEND);
                } catch (java.io.IOException e) { throw new java.io.UncheckedIOException(e); }
              }
              public List<ExtensionFactory<?>> extensions() {
                return List.of(
                  new ExtensionFactory<Stage>() {
                    public Class<Stage> extensionPoint() { return Stage.class; }
                    public String type() { return "counted"; }
                    public Map<String, Class<?>> nestedExtensions() { return Map.of("data", TrainingData.class); }
                    public Stage create(ConfigView c, ExtensionContext x) {
                      count(c, x, "stage");
                      TrainingData data = x.build(TrainingData.class, c.getConfig("data"));
                      return new Stage() { public void run(StageContext s) { count(c, x, "ran " + data.vocabularySize()); } };
                    }
                  },
                  new ExtensionFactory<TrainingData>() {
                    public Class<TrainingData> extensionPoint() { return TrainingData.class; }
                    public String type() { return "counted"; }
                    public TrainingData create(ConfigView c, ExtensionContext x) {
                      count(c, x, "data");
                      return new TrainingData() {
                        public TokenBatchStream open(int length) { throw new UnsupportedOperationException(); }
                        public int vocabularySize() { return 7; }
                      };
                    }
                  },
                  ExtensionFactory.of(LrSchedule.class, "counted", "", (c, x) -> { count(c, x, "schedule"); return new LrSchedule() {
                    public double lrAt(long t) { return 1e-3; } public double peakLr() { return 1e-3; }
                    public long horizonTokens() { return 1_000_000; } }; }),
                  ExtensionFactory.of(OptimizerFactory.class, "counted", "", (c, x) -> { count(c, x, "optimizer");
                    return p -> { throw new UnsupportedOperationException(); }; }));
              }
            }
            """;
    private static final String MODULE = """
            module fx.counted {
              requires io.anneal.api;
              provides io.anneal.api.plugin.Plugin with counted.P;
            }
            """;
    private static final String DEFAULTS = """
            anneal.stage.counted { log = "" }
            anneal.training-data.counted { log = "" }
            anneal.lr-schedule.counted { log = "" }
            anneal.optimizer-factory.counted { log = "" }
            """;

    @BeforeEach
    void plugin() throws Exception {
        plugins = Files.createDirectories(tmp.resolve("plugins"));
        FixtureJars.build(plugins.resolve("counted.jar"), Map.of("module-info.java", MODULE, "counted/P.java", PLUGIN),
                Map.of("reference.conf", DEFAULTS), null);
    }

    private int run(String... args) {
        String[] all = new String[args.length + 2];
        all[0] = "--plugins";
        all[1] = plugins.toString();
        System.arraycopy(args, 0, all, 2, args.length);
        Main main = new Main(new PrintStream(out, true, StandardCharsets.UTF_8), new PrintStream(err, true, StandardCharsets.UTF_8),
                Map.of(), tmp, null);
        return main.run(all);
    }

    private List<String> log() throws Exception {
        return Files.readAllLines(tmp.resolve("builds.log"));
    }

    @Test
    void aRunBuildsTheStageAndItsDataOnceAndRunsWhatValidationBuilt() throws Exception {
        Files.writeString(tmp.resolve("p.conf"), """
                pipeline { name = once, run-dir = runs }
                stages = [ { type = counted, log = builds.log, data { type = counted, log = builds.log } } ]
                """);
        assertEquals(0, run("run", "--quiet", "p.conf"), err.toString(StandardCharsets.UTF_8));
        assertEquals(List.of("stage stages[0]", "data stages[0].data", "ran 7 stages[0]"), log());
    }

    @Test
    void validatingAnSftStageBuildsEachNestedBlockOnce() throws Exception {
        Files.writeString(tmp.resolve("p.conf"), """
                pipeline { name = once, run-dir = runs }
                stages = [ {
                  type = sft
                  sequence-length = 16
                  batch-tokens = 64
                  token-budget = 640
                  schedule { type = counted, log = builds.log }
                  optimizer { type = counted, log = builds.log }
                  data { type = counted, log = builds.log }
                  eval-data { type = counted, log = builds.log }
                } ]
                """);
        assertEquals(0, run("validate", "p.conf"), err.toString(StandardCharsets.UTF_8));
        assertEquals(List.of("schedule stages[0].schedule", "optimizer stages[0].optimizer", "data stages[0].data",
                "data stages[0].eval-data"), log());
    }
}
