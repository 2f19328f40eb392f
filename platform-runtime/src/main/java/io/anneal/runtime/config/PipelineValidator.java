package io.anneal.runtime.config;

import com.typesafe.config.Config;
import com.typesafe.config.ConfigFactory;
import com.typesafe.config.ConfigList;
import com.typesafe.config.ConfigValue;
import com.typesafe.config.ConfigValueFactory;
import io.anneal.api.InputException;
import io.anneal.api.config.ConfigException;
import io.anneal.api.config.ConfigProblem;
import io.anneal.api.config.Origin;
import io.anneal.api.model.ModelArchitecture;
import io.anneal.api.extension.ExtensionPoints;
import io.anneal.api.train.Stage;
import io.anneal.api.data.TrainingData;
import io.anneal.runtime.plugins.LoadedPlugin;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.HashSet;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.Set;
import java.util.regex.Pattern;

/**
 * Validates a whole pipeline before anything runs and reports every problem at once: the shape
 * {@code pipeline { name, run-dir, device, seed }}, an optional {@code model { type = ... }}, and
 * {@code stages = [ { type = ..., name = ... }, ... ]}; each extension block against its type's
 * defaults, nested blocks as their own extension points; then each factory's {@code create} in a
 * validation pass; then the fit of the stages (a stage that needs a model has one).
 */
public final class PipelineValidator {
    private static final Set<String> TOP_LEVEL = Set.of("pipeline", "model", "stages");
    private static final Set<String> DEVICES = Set.of("auto", "cpu", "gpu");
    private static final Pattern STAGE_NAME = Pattern.compile("[A-Za-z0-9._-]+");
    /** Defaults of the {@code pipeline} block live in the core plugin's reference.conf. */
    static final String PIPELINE_DEFAULTS = "anneal.pipeline";
    private static final String METRICS = "metrics";
    /** The conventional key of a model block's vocabulary (Hugging Face's vocab_size) and of a data block's tokenizer file. */
    private static final String VOCAB_SIZE = "vocab-size";
    private static final String TOKENIZER = "tokenizer";

    private final ConfiguredExtensions extensions;
    private final Path workingDirectory;

    public PipelineValidator(ConfiguredExtensions extensions, Path workingDirectory) {
        this.extensions = extensions;
        this.workingDirectory = workingDirectory;
    }

    public ValidatedPipeline validate(LoadedPipeline loaded) {
        Config root = loaded.config();
        Set<ConfigProblem> problems = new LinkedHashSet<>();
        Origin fileOrigin = new Origin(loaded.file().toString(), loaded.file().toString(), -1);
        for (Map.Entry<String, ConfigValue> e : root.root().entrySet()) {
            if (!TOP_LEVEL.contains(e.getKey())) {
                problems.add(new ConfigProblem(Origins.of(e.getValue().origin()), e.getKey(),
                        "a top-level key: model, pipeline, stages",
                        "unknown key '" + e.getKey() + "'" + DidYouMean.hint(e.getKey(), TOP_LEVEL)));
            }
        }
        // pipeline { ... }
        List<ConfigProblem> list = new ArrayList<>();
        Config pipelineDefaults = coreDefaults(PIPELINE_DEFAULTS);
        // pipeline.metrics holds extension blocks (or type names), checked as such below, not against the default list
        Config pipeline = root.hasPath("pipeline") && root.getValue("pipeline") instanceof com.typesafe.config.ConfigObject block
                ? extensions.validator().checkPlain(block.withoutKey(METRICS), pipelineDefaults.withoutPath(METRICS), "pipeline",
                        "the pipeline block", list).withFallback(pipelineDefaults.withOnlyPath(METRICS))
                : root.hasPath("pipeline") ? extensions.validator().checkPlain(root.getValue("pipeline"), pipelineDefaults, "pipeline",
                        "the pipeline block", list) : pipelineDefaults;
        if (root.hasPath("pipeline." + METRICS)) {
            pipeline = pipeline.withValue(METRICS, root.getValue("pipeline." + METRICS));
        }
        problems.addAll(list);
        HoconConfigView pv = new HoconConfigView(pipeline, "pipeline");
        String name = attempt(problems, "pipeline.name", () -> pv.getString("name"), "");
        if (name.isBlank() && problems.stream().noneMatch(p -> p.path().equals("pipeline.name"))) {
            problems.add(new ConfigProblem(root.hasPath("pipeline") ? pv.origin("") : fileOrigin, "pipeline.name",
                    "a pipeline name, e.g. pipeline { name = my-run }", "nothing"));
        }
        String device = attempt(problems, "pipeline.device", () -> pv.getString("device"), "auto");
        if (!DEVICES.contains(device)) {
            problems.add(new ConfigProblem(pv.origin("device"), "pipeline.device", "one of auto, cpu, gpu",
                    "'" + device + "'" + DidYouMean.hint(device, DEVICES)));
        }
        long seed = attempt(problems, "pipeline.seed", () -> pv.getLong("seed"), 0L);
        Path runDir = attempt(problems, "pipeline.run-dir", () -> ConfiguredExtensions.resolve(pv.getString("run-dir"), pv.origin("run-dir"),
                workingDirectory), workingDirectory);
        int threads = attempt(problems, "pipeline.threads", () -> threads(pv), 0);
        if (threads < 0) {
            problems.add(new ConfigProblem(pv.origin("threads"), "pipeline.threads", "auto (the CPUs this process may use), "
                    + "a whole number of threads from 1 to 4096, or 0 (libtorch's own default)", "'" + pv.getString("threads") + "'"));
            threads = 0;
        }
        extensions.useThreads(threads); // data rendering threads of the blocks built below follow pipeline.threads
        List<HoconConfigView> metrics = metricsSinks(pipeline.getValue(METRICS), problems);
        int blocksBefore = extensions.builtBlocks().size();
        Config resolved = ConfigFactory.empty().withValue("pipeline", pipeline.root());

        // model { type = ... }
        Optional<ValidatedPipeline.ModelPlan> model = Optional.empty();
        if (root.hasPath("model")) {
            BlockValidator.Checked checked = extensions.validator().check(ModelArchitecture.class, root.getValue("model"), "model");
            problems.addAll(checked.problems());
            if (checked.ok()) {
                HoconConfigView view = new HoconConfigView(checked.effective(), "model");
                Optional<Object> architecture = createAll(ModelArchitecture.class, view, checked, problems);
                model = architecture.map(a -> new ValidatedPipeline.ModelPlan(view, (ModelArchitecture) a));
                resolved = resolved.withValue("model", checked.effective().root());
            }
        }

        // stages = [ ... ]
        List<ValidatedPipeline.StagePlan> stages = new ArrayList<>();
        List<ConfigValue> resolvedStages = new ArrayList<>();
        if (!root.hasPath("stages") || !(root.getValue("stages") instanceof ConfigList)) {
            problems.add(new ConfigProblem(root.hasPath("stages") ? Origins.of(root.getValue("stages").origin()) : fileOrigin,
                    "stages", "a list of stage blocks, e.g. stages = [ { type = ..., name = ... } ]",
                    root.hasPath("stages") ? HoconConfigView.describe(root.getValue("stages")) : "nothing"));
        } else {
            ConfigList stageList = root.getList("stages");
            boolean modelSoFar = model.isPresent();
            Set<String> names = new HashSet<>();
            for (int i = 0; i < stageList.size(); i++) {
                String path = "stages[" + i + "]";
                BlockValidator.Checked checked = extensions.validator().check(Stage.class, stageList.get(i), path);
                problems.addAll(checked.problems());
                if (!checked.ok()) {
                    continue;
                }
                HoconConfigView view = new HoconConfigView(checked.effective(), path);
                String type = checked.extension().type();
                String stageName = view.has("name") ? attempt(problems, path + ".name", () -> view.getString("name"), type) : type;
                if (!STAGE_NAME.matcher(stageName).matches()) {
                    problems.add(new ConfigProblem(view.origin("name"), path + ".name",
                            "a stage name of letters, digits, '.', '_' or '-' (it names the stage folder)", "'" + stageName + "'"));
                } else if (!names.add(stageName)) {
                    problems.add(new ConfigProblem(view.origin("name"), path + ".name", "a name no other stage has",
                            "'" + stageName + "' again (set name = ... to tell the stages apart)"));
                }
                Optional<Object> stage = createAll(Stage.class, view, checked, problems);
                boolean modelBlockFailed = root.hasPath("model") && model.isEmpty();
                if (stage.isPresent()) {
                    Stage s = (Stage) stage.get();
                    if (s.needsInputModel() && !modelSoFar && !modelBlockFailed) {
                        problems.add(new ConfigProblem(view.origin(""), path, "a model to start from: a top-level "
                                + "model { type = ... } block or an earlier stage that produces a model",
                                "stage '" + stageName + "' (" + type + ") needs an input model and none comes before it"));
                    }
                    modelSoFar |= s.producesModel();
                    stages.add(new ValidatedPipeline.StagePlan(i, stageName, type, view, s));
                }
                resolvedStages.add(checked.effective().root());
            }
            resolved = resolved.withValue("stages", ConfigValueFactory.fromIterable(resolvedStages));
        }
        if (model.isPresent()) {
            // every data block built so far, by the validation pass or by a stage's factory itself
            List<BuiltData> data = new ArrayList<>();
            for (ConfiguredExtensions.BuiltBlock b : extensions.builtBlocks().subList(blocksBefore, extensions.builtBlocks().size())) {
                if (b.built() instanceof TrainingData trainingData) {
                    data.add(new BuiltData(b.view(), trainingData));
                }
            }
            checkVocabulary(model.get().block(), model.get().architecture(), data, problems);
        }
        if (!problems.isEmpty()) {
            throw new ConfigException(new ArrayList<>(problems));
        }
        return new ValidatedPipeline(loaded.file(), name, runDir, device, seed, threads, metrics, model, stages, resolved);
    }

    /**
     * The validation pass: runs the factory of the block, then of each nested block its factory did
     * not build itself (a factory that builds its nested blocks lazily, or failed before it reached
     * them), collecting their problems. Returns what the block's factory built, when it built: the
     * run reuses it, so no factory runs twice per command.
     */
    private Optional<Object> createAll(Class<?> point, HoconConfigView view, BlockValidator.Checked checked,
                                       Set<ConfigProblem> problems) {
        Optional<Object> built = Optional.empty();
        int buildsBefore = extensions.buildCount();
        try {
            built = Optional.of(extensions.build(point, view));
        } catch (ConfigException e) {
            problems.addAll(e.problems());
        } catch (InputException | IllegalArgumentException | IllegalStateException e) {
            problems.add(new ConfigProblem(view.origin(""), view.path(), "settings that " + ExtensionPoints.key(point)
                    + " type '" + checked.extension().type() + "' accepts", e.getMessage()));
        } catch (RuntimeException | LinkageError e) {
            problems.add(new ConfigProblem(view.origin(""), view.path(), "a block that plugin "
                    + checked.extension().plugin().id() + " can build", "its factory failed: " + e));
        }
        Set<String> builtByFactory = new HashSet<>(extensions.builtPathsSince(buildsBefore));
        for (Map.Entry<String, Class<?>> nested : checked.extension().factory().nestedExtensions().entrySet()) {
            String key = BlockValidator.quote(nested.getKey());
            if (view.config().hasPath(key) && !builtByFactory.contains(HoconConfigView.join(view.path(), key))) {
                BlockValidator.Checked inner = extensions.validator().check(nested.getValue(),
                        view.config().getValue(key), HoconConfigView.join(view.path(), key));
                if (inner.ok()) {
                    createAll(nested.getValue(), new HoconConfigView(inner.effective(), HoconConfigView.join(view.path(), key)),
                            inner, problems);
                }
            }
        }
        return built;
    }

    private Config coreDefaults(String path) {
        Optional<LoadedPlugin> core = extensions.registry().plugin("core");
        return core.filter(p -> p.defaults().hasPath(path)).map(p -> p.defaults().getConfig(path))
                .orElseThrow(() -> new IllegalStateException("the core plugin's reference.conf lacks " + path));
    }

    private interface Getter<T> {
        T get();
    }

    /**
     * {@code pipeline.threads}: {@code auto} is the CPUs this process may use
     * ({@code Runtime.availableProcessors()}, which follows the cgroup quota and the affinity mask);
     * 0 leaves libtorch its own default (every core of the machine, contention or not).
     */
    private static int threads(HoconConfigView pv) {
        String text = pv.getString("threads").trim();
        if (text.equals("auto")) {
            return Runtime.getRuntime().availableProcessors();
        }
        try {
            int n = Integer.parseInt(text);
            if (n >= 0 && n <= 4096) {
                return n;
            }
        } catch (NumberFormatException e) {
            // the message below
        }
        return -1;
    }

    /** Reads a value, or records its problem; a value already reported by the shape check is not read again. */
    private static <T> T attempt(Set<ConfigProblem> problems, String path, Getter<T> getter, T fallback) {
        if (problems.stream().anyMatch(p -> p.path().equals(path))) {
            return fallback;
        }
        try {
            return getter.get();
        } catch (ConfigException e) {
            problems.addAll(e.problems());
            return fallback;
        }
    }

    /**
     * {@code pipeline.metrics}: a list of metrics-sink type names ({@code jsonl}, {@code tensorboard})
     * or blocks ({@code { type = tensorboard, folder = tb }}), each checked and built like any
     * extension block; {@code jsonl} is added when the list lacks it (metrics.jsonl is always written).
     */
    private List<HoconConfigView> metricsSinks(ConfigValue value, Set<ConfigProblem> problems) {
        String path = "pipeline." + METRICS;
        List<HoconConfigView> sinks = new ArrayList<>();
        if (!(value instanceof ConfigList list)) {
            problems.add(new ConfigProblem(Origins.of(value.origin()), path, "a list of metrics-sink types such as "
                    + "[jsonl, tensorboard]", HoconConfigView.describe(value)));
            return sinks;
        }
        boolean jsonl = false;
        Set<String> seen = new HashSet<>();
        for (int i = 0; i < list.size(); i++) {
            ConfigValue item = list.get(i);
            if (item.valueType() == com.typesafe.config.ConfigValueType.STRING) {
                // a bare type name is the block { type = NAME }, keeping the item's file and line
                item = ConfigFactory.empty().withValue("type", item).root().withOrigin(item.origin());
            }
            String itemPath = path + "[" + i + "]";
            BlockValidator.Checked checked = extensions.validator().check(io.anneal.api.train.MetricsSink.class, item, itemPath);
            problems.addAll(checked.problems());
            if (!checked.ok()) {
                continue;
            }
            HoconConfigView view = new HoconConfigView(checked.effective(), itemPath);
            String type = checked.extension().type();
            if (!seen.add(type)) {
                problems.add(new ConfigProblem(Origins.of(item.origin()), itemPath, "each metrics-sink type once",
                        "'" + type + "' again"));
                continue;
            }
            jsonl |= type.equals(io.anneal.runtime.output.JsonlMetricsSink.TYPE);
            createAll(io.anneal.api.train.MetricsSink.class, view, checked, problems);
            sinks.add(view);
        }
        if (!jsonl) {
            BlockValidator.Checked checked = extensions.validator().check(io.anneal.api.train.MetricsSink.class,
                    ConfigFactory.parseString("type = " + io.anneal.runtime.output.JsonlMetricsSink.TYPE).root(), path);
            if (checked.ok()) {
                sinks.add(0, new HoconConfigView(checked.effective(), path + " (always: jsonl)"));
            }
        }
        return sinks;
    }

    /** A data block built in the validation pass, for the checks across blocks. */
    private record BuiltData(HoconConfigView block, TrainingData data) {
    }

    /**
     * The model's vocabulary must cover every stage's tokenizer (its tokens and added tokens): a
     * token id past the embedding would index out of range on the first batch. Reported at the
     * model's vocabulary key, naming the data block and its tokenizer file.
     */
    private static void checkVocabulary(HoconConfigView model, ModelArchitecture architecture, List<BuiltData> data,
                                        Set<ConfigProblem> problems) {
        java.util.OptionalInt vocabulary = architecture.vocabularySize();
        if (vocabulary.isEmpty()) {
            return;
        }
        String key = model.has(VOCAB_SIZE) ? VOCAB_SIZE : "";
        for (BuiltData d : data) {
            int tokenizer = d.data().vocabularySize();
            if (tokenizer > vocabulary.getAsInt()) {
                String file = d.block().has(TOKENIZER) ? HoconConfigView.join(d.block().path(), TOKENIZER) + " = "
                        + d.block().getString(TOKENIZER) + " (" + d.block().origin(TOKENIZER) + ")" : d.block().path();
                problems.add(new ConfigProblem(model.origin(key), HoconConfigView.join("model", key),
                        "a vocabulary of at least " + tokenizer + " tokens, the size of the tokenizer of " + file
                                + " with its added tokens (or that stage's data with the model's own tokenizer)",
                        vocabulary.getAsInt() + " tokens, smaller than the tokenizer's " + tokenizer));
            }
        }
    }
}
