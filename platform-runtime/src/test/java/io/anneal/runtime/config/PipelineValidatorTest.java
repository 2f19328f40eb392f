package io.anneal.runtime.config;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.typesafe.config.ConfigFactory;
import com.typesafe.config.ConfigParseOptions;
import io.anneal.api.InputException;
import io.anneal.api.config.ConfigException;
import io.anneal.api.config.ConfigProblem;
import io.anneal.api.config.ConfigView;
import io.anneal.api.extension.ExtensionContext;
import io.anneal.api.extension.ExtensionFactory;
import io.anneal.api.plugin.Plugin;
import io.anneal.api.plugin.VersionRange;
import io.anneal.api.schedule.LrSchedule;
import io.anneal.runtime.builtin.CorePlugin;
import io.anneal.runtime.plugins.LoadedPlugin;
import io.anneal.runtime.plugins.PluginLoader;
import io.anneal.runtime.plugins.PluginRegistry;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** Validation of whole pipelines over an in-process registry: core plus a test schedule plugin. */
class PipelineValidatorTest {
    @TempDir
    Path tmp;

    /** {@code linear}: lr = peak-lr * min(1, t / warmup); rejects peak-lr <= 0 in create. */
    static final class Linear implements ExtensionFactory<LrSchedule> {
        public Class<LrSchedule> extensionPoint() {
            return LrSchedule.class;
        }

        public String type() {
            return "linear";
        }

        public LrSchedule create(ConfigView c, ExtensionContext x) {
            double peak = c.getDouble("peak-lr");
            long warmup = c.getTokens("warmup").tokens();
            if (peak <= 0) {
                throw c.invalid("peak-lr", "a learning rate > 0");
            }
            return new LrSchedule() {
                public double lrAt(long t) {
                    return peak * Math.min(1.0, (double) t / warmup);
                }

                public double peakLr() {
                    return peak;
                }

                public long horizonTokens() {
                    return Long.MAX_VALUE;
                }
            };
        }
    }

    private ConfiguredExtensions extensions() {
        PluginRegistry registry = new PluginRegistry();
        new PluginLoader(registry).registerBuiltin(new CorePlugin(), CorePlugin.class.getResource("reference.conf"));
        Plugin test = new Plugin() {
            public String id() {
                return "testplug";
            }

            public String version() {
                return "0";
            }

            public VersionRange apiRange() {
                return VersionRange.parse("1.0");
            }
        };
        var defaults = ConfigFactory.parseString("anneal.lr-schedule.linear {\n  peak-lr = 1e-3\n  warmup = 50M\n}\n",
                ConfigParseOptions.defaults().setOriginDescription("default of plugin testplug"));
        registry.register(new LoadedPlugin(test, "testplug", "0", test.apiRange(), null, defaults), List.of(new Linear()), List.of());
        return new ConfiguredExtensions(registry, tmp);
    }

    private ValidatedPipeline validate(String text, List<String> overrides) throws Exception {
        Path file = tmp.resolve("p.conf");
        Files.writeString(file, text);
        return new PipelineValidator(extensions(), tmp).validate(new PipelineLoader(null).load(file, overrides));
    }

    private List<String> problems(String text) {
        ConfigException e = assertThrows(ConfigException.class, () -> validate(text, List.of()));
        return e.problems().stream().map(ConfigProblem::toString).toList();
    }

    @Test
    void reportsEveryProblemAtOnceWithFileLineAndDidYouMean() {
        String text = String.join("\n",
                "pipeline { name = t, device = gpx, seed = abc }",      // 1
                "stages = [",                                            // 2
                "  { type = schedule-tabel }",                           // 3
                "  { type = schedule-table",                             // 4
                "    schedule { type = linear, peek-lr = 1e-4, warmup = lots }", // 5
                "    at = [25M, 5X] }",                                  // 6
                "]",                                                     // 7
                "modle { type = x }");                                   // 8
        List<String> p = problems(text);
        String f = tmp.resolve("p.conf").toString();
        assertTrue(p.contains(f + ":8: modle: expected a top-level key: model, pipeline, stages, found unknown key 'modle'; did you mean 'model'?"), p.toString());
        assertTrue(p.contains(f + ":1: pipeline.seed: expected a number, found \"abc\" (a string)"), p.toString());
        assertTrue(p.contains(f + ":1: pipeline.device: expected one of auto, cpu, gpu, found 'gpx'; did you mean 'gpu'?"), p.toString());
        assertTrue(p.contains(f + ":3: stages[0].type: expected a stage type (known: schedule-table, sft), found unknown type 'schedule-tabel'; did you mean 'schedule-table'?"), p.toString());
        assertTrue(p.contains(f + ":5: stages[1].schedule.peek-lr: expected a key of lr-schedule type 'linear' (plugin testplug): peak-lr, type, warmup, found unknown key 'peek-lr'; did you mean 'peak-lr'?"), p.toString());
        assertTrue(p.contains(f + ":5: stages[1].schedule.warmup: expected a token count such as 50M, 1.5G or 256K, found \"lots\" (a string)"), p.toString());
        assertTrue(p.contains(f + ":6: stages[1].at[1]: expected a token count such as 50M, 1.5G or 256K, found \"5X\" (a string)"), p.toString());
        assertEquals(7, p.size(), p.toString());
    }

    @Test
    void runsEachFactoryInAValidationPassAndCollectsItsProblems() {
        List<String> p = problems("pipeline.name = t\nstages = [ { type = schedule-table\n schedule { type = linear, peak-lr = -1 } } ]");
        assertEquals(List.of(tmp.resolve("p.conf") + ":3: stages[0].schedule.peak-lr: expected a learning rate > 0, found -1 (a number)"), p);
    }

    @Test
    void includesOverridesAndDefaultsKeepTheirOrigins() throws Exception {
        Files.writeString(tmp.resolve("sched.conf"), "peak-lr = 2e-4\n");
        ValidatedPipeline v = validate("pipeline { name = t }\nstages = [ { type = schedule-table\n  schedule { type = linear\n"
                + "  include \"sched.conf\"\n } } ]\n", List.of("stages[0].at=[1M]", "pipeline.seed=9"));
        List<String> lines = ResolvedPipelinePrinter.lines(v);
        assertTrue(lines.contains("stages[0].schedule.peak-lr = 2.0E-4  # " + tmp.resolve("sched.conf") + ":1"), lines.toString());
        assertTrue(lines.contains("stages[0].schedule.warmup = \"50M\"  # default of plugin testplug (reference.conf:3)"), lines.toString());
        assertTrue(lines.contains("stages[0].at = [\"1M\"]  # --set stages[0].at=[1M]"), lines.toString());
        assertTrue(lines.contains("pipeline.seed = 9  # --set pipeline.seed=9"), lines.toString());
        assertTrue(lines.contains("pipeline.device = \"auto\"  # default of plugin core (reference.conf:9)"), lines.toString());
        assertEquals(9, v.seed());
        assertEquals(tmp.resolve("runs"), v.runDir()); // the default resolves against the working directory
    }

    @Test
    void syntaxErrorsAndMissingFilesAreBadInputWithFileAndLine() throws Exception {
        Path file = tmp.resolve("bad.conf");
        Files.writeString(file, "pipeline {\n  name = t\n  seed = [1,\n");
        InputException e = assertThrows(InputException.class, () -> new PipelineLoader(null).load(file, List.of()));
        assertTrue(e.getMessage().startsWith(file + ": 4:") || e.getMessage().startsWith(file + ": 3:"), e.getMessage());
        InputException missing = assertThrows(InputException.class,
                () -> new PipelineLoader(null).load(tmp.resolve("none.conf"), List.of()));
        assertEquals(tmp.resolve("none.conf") + ": pipeline file not found", missing.getMessage());
    }

    @Test
    void threadsDefaultToTheCpusThisProcessMayUseAndRefuseAnythingButAutoOrACount() throws Exception {
        String stages = "\nstages = [ { type = schedule-table, schedule { type = linear } } ]";
        assertEquals(Runtime.getRuntime().availableProcessors(), validate("pipeline.name = t" + stages, List.of()).threads());
        assertEquals(3, validate("pipeline { name = t, threads = 3 }" + stages, List.of()).threads());
        assertEquals(0, validate("pipeline { name = t }" + stages, List.of("pipeline.threads=0")).threads());
        assertEquals(List.of(tmp.resolve("p.conf") + ":1: pipeline.threads: expected auto (the CPUs this process may use), a whole "
                + "number of threads from 1 to 4096, or 0 (libtorch's own default), found 'many'"),
                problems("pipeline { name = t, threads = many }" + stages));
        assertEquals(1, problems("pipeline { name = t, threads = -2 }" + stages).size());
    }

    @Test
    void didYouMeanUsesTranspositionsAndALengthThreshold() {
        // OSA distance: "wds" -> "wsd" is one transposition; "abc" is 3 edits from "wsd".
        assertEquals(1, DidYouMean.distance("wds", "wsd"));
        assertEquals("wsd", DidYouMean.suggest("wds", List.of("cosine", "wsd")).orElseThrow());
        assertTrue(DidYouMean.suggest("abc", List.of("wsd")).isEmpty());
        assertEquals("peak-lr", DidYouMean.suggest("peek-lr", List.of("warmup", "peak-lr")).orElseThrow());
    }

    @Test
    void metricsSinksAreExtensionBlocksOrTypeNamesAndJsonlIsAlwaysAmongThem() throws Exception {
        String stages = "\nstages = [ { type = schedule-table, schedule { type = linear } } ]";
        ValidatedPipeline plain = validate("pipeline { name = t }" + stages, List.of());
        assertEquals(List.of("jsonl"), plain.metrics().stream().map(m -> m.getString("type")).toList());
        ValidatedPipeline tb = validate("pipeline { name = t, metrics = [tensorboard] }" + stages, List.of());
        assertEquals(List.of("jsonl", "tensorboard"), tb.metrics().stream().map(m -> m.getString("type")).toList(),
                "jsonl is added when the list lacks it");
        assertEquals("tensorboard", tb.metrics().get(1).getString("folder"), "the type's default from reference.conf");
        ValidatedPipeline block = validate("pipeline { name = t, metrics = [jsonl, { type = tensorboard, folder = tb }] }" + stages,
                List.of());
        assertEquals("tb", block.metrics().get(1).getString("folder"));

        String f = tmp.resolve("p.conf").toString();
        List<String> p = problems("pipeline {\n name = t\n metrics = [tensorbord, { type = tensorboard, folder = \"../up\" }, tensorboard, jsonl, jsonl]\n}"
                + stages);
        assertTrue(p.stream().anyMatch(s -> s.startsWith(f + ":3: pipeline.metrics[0].type: expected a metrics-sink type (known: ")
                && s.contains("did you mean 'tensorboard'")), String.join("\n", p));
        assertTrue(p.stream().anyMatch(s -> s.contains("pipeline.metrics[1].folder: expected a folder name inside the stage's folder")),
                String.join("\n", p));
        assertTrue(p.stream().anyMatch(s -> s.contains("pipeline.metrics[4]: expected each metrics-sink type once, found 'jsonl' again")),
                String.join("\n", p));
        assertTrue(problems("pipeline { name = t, metrics = jsonl }" + stages).stream()
                .anyMatch(s -> s.contains("pipeline.metrics: expected a list of metrics-sink types such as [jsonl, tensorboard]")));
    }
}
