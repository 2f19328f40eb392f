package io.anneal.datamix;

import io.anneal.api.InputException;
import io.anneal.api.config.ConfigException;
import io.anneal.api.config.ConfigProblem;
import io.anneal.api.config.ConfigView;
import io.anneal.api.data.TrainingData;
import io.anneal.api.extension.ExtensionContext;
import io.anneal.api.extension.ExtensionFactory;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.HashSet;
import java.util.List;
import java.util.Set;
import java.util.function.Consumer;

/**
 * {@code data { type = mix, tokenizer = ..., sources = [{name, path, weight}], budget = 6G, ... }}:
 * weighted sources sampled independently, rendered by the chat template ({@code template = chatml}, the
 * fast path, or {@code auto}, the tokenizer's own Jinja template), packed into rows.
 * Defaults in this plugin's reference.conf under {@code anneal.training-data.mix}.
 */
final class MixTrainingData implements TrainingData {
    /** One configured source, before it is indexed. */
    /**
     * @param maxSkippedFraction under {@code on-error = skip}, the share of bad records above which
     *                           the source is refused instead of trained on (a broken file, not a few bad lines)
     */
    record SourceSpec(String name, Path path, double weight, OnError onError, double maxSkippedFraction) {
        /** The default share: 5% bad records still train, more stop the load (reference.conf). */
        static final double DEFAULT_MAX_SKIPPED = 0.05;

        SourceSpec(String name, Path path, double weight, OnError onError) {
            this(name, path, weight, onError, DEFAULT_MAX_SKIPPED);
        }
    }

    private final HfTokenizer tokenizer;
    private final List<SourceSpec> specs;
    private final LossOn lossOn;
    private final boolean superviseEos;
    private final long seed;
    private final long budget;
    private final Leftover leftover;
    private final CacheFiles cache;
    private final Consumer<String> loadReport;
    /** template = auto: the tokenizer's Jinja template; false: ChatML. */
    private final boolean jinja;
    /** The tokenizer folder's special tokens and chat template (empty when there is no tokenizer_config.json). */
    private final TokenizerConfig tokenizerConfig;
    /** The sources, indexed on the first open; later opens (the trainer's evals) reuse them. Guarded by this. */
    private ChatSource[] indexed;

    MixTrainingData(HfTokenizer tokenizer, List<SourceSpec> specs, LossOn lossOn, boolean superviseEos, long seed, long budget,
                    Leftover leftover, CacheFiles cache) {
        this(tokenizer, specs, lossOn, superviseEos, seed, budget, leftover, cache, System.err::println);
    }

    /** As above, with the load report's lines going to {@code loadReport} (once per instance) instead of stderr. */
    MixTrainingData(HfTokenizer tokenizer, List<SourceSpec> specs, LossOn lossOn, boolean superviseEos, long seed, long budget,
                    Leftover leftover, CacheFiles cache, Consumer<String> loadReport) {
        this(tokenizer, specs, lossOn, superviseEos, seed, budget, leftover, cache, loadReport, false,
                new TokenizerConfig(java.util.Map.of(), false, null, null));
    }

    /** As above, with the template: the tokenizer's Jinja template ({@code jinja}) or ChatML with the config's BOS. */
    MixTrainingData(HfTokenizer tokenizer, List<SourceSpec> specs, LossOn lossOn, boolean superviseEos, long seed, long budget,
                    Leftover leftover, CacheFiles cache, Consumer<String> loadReport, boolean jinja, TokenizerConfig tokenizerConfig) {
        this.jinja = jinja;
        this.tokenizerConfig = tokenizerConfig;
        this.tokenizer = tokenizer;
        this.specs = List.copyOf(specs);
        this.lossOn = lossOn;
        this.superviseEos = superviseEos;
        this.seed = seed;
        this.budget = budget;
        this.leftover = leftover;
        this.cache = cache;
        this.loadReport = loadReport;
    }

    /**
     * Under on-error = skip, a source with more bad {@code unit} than its max-skipped-fraction of those
     * seen is refused, naming the source, the counts and the first problem (issue 15: 500 bad of 501 trained).
     */
    static void refuseTooManySkipped(SourceSpec s, String unit, long bad, long seen, String first) {
        if (bad > s.maxSkippedFraction() * seen) {
            throw new InputException(String.format(java.util.Locale.ROOT,
                    "%s: source '%s': %d of %d %s are bad (%.1f%%), more than max-skipped-fraction %s allows "
                            + "under on-error = skip; first: %s. Fix the data, or raise the data block's max-skipped-fraction",
                    s.path(), s.name(), bad, seen, unit, 100.0 * bad / seen, s.maxSkippedFraction(), first));
        }
    }

    /** The data block's max-skipped-fraction, checked: a share between 0 and 1. */
    static double maxSkippedFraction(ConfigView config) {
        double maxSkipped = config.getDouble("max-skipped-fraction");
        if (!(maxSkipped >= 0 && maxSkipped <= 1)) {
            throw config.invalid("max-skipped-fraction", "a share of records between 0 and 1", String.valueOf(maxSkipped));
        }
        return maxSkipped;
    }

    ChatTemplate template() {
        TokenizerConfig c = tokenizerConfig;
        return jinja ? new JinjaChatTemplate(c.chatTemplate(), c.templateOrigin(), c.specialTokens(), tokenizer, lossOn, superviseEos)
                : new ChatMlTemplate(tokenizer, lossOn, superviseEos, c.bosToken());
    }

    /** Indexes every source (cached) and checks masks; each source's load report line goes to {@code report}. */
    ChatSource[] openSources(List<String> report) {
        ChatTemplate template = template();
        ChatSource[] sources = new ChatSource[specs.size()];
        for (int i = 0; i < sources.length; i++) {
            SourceSpec s = specs.get(i);
            sources[i] = ChatSource.open(s.name(), s.weight(), s.path(), template, tokenizer, s.onError(), cache);
            long bad = sources[i].skippedBad();
            refuseTooManySkipped(s, "records", bad, bad + sources[i].records(),
                    sources[i].problems().isEmpty() ? "(none recorded)" : sources[i].problems().get(0));
            report.add(sources[i].loadReport());
            for (String problem : sources[i].problems()) {
                report.add("    " + problem);
            }
        }
        return sources;
    }

    /**
     * The sources, indexed once per instance. The first call prints the load report (DESIGN.md "Masks
     * are checked": the counts and warnings are reported when the data is loaded); the trainer opens
     * an eval stream at every evaluation, and repeating the report each time would flood the console.
     */
    private synchronized ChatSource[] indexedSources() {
        if (indexed == null) {
            List<String> report = new ArrayList<>();
            ChatSource[] sources = openSources(report);
            report.forEach(loadReport);
            indexed = sources;
        }
        return indexed;
    }

    @Override
    public MixStream open(int sequenceLength) {
        ChatSource[] shared = indexedSources();
        // Each stream reads through its own handles (it closes them), over the shared indexes.
        ChatSource[] sources = new ChatSource[shared.length];
        for (int i = 0; i < sources.length; i++) {
            sources[i] = shared[i].newReader();
        }
        int pad = tokenizer.hasSpecialToken("<|pad|>") ? tokenizer.specialTokenId("<|pad|>") : tokenizer.specialTokenId("<|endoftext|>");
        return new MixStream(sources, template(), seed, sequenceLength, leftover, pad, budget);
    }

    @Override
    public int vocabularySize() {
        return tokenizer.vocabularySize();
    }

    /** The tokenizer's files, with the chat template training renders: the tokenizer's own, or ChatML with its BOS. */
    @Override
    public java.util.Map<String, byte[]> modelFolderFiles() {
        return ModelFolderFiles.of(tokenizer, jinja ? tokenizerConfig.chatTemplate() : ModelFolderFiles.chatMl(tokenizerConfig.bosToken() != null));
    }

    long budget() {
        return budget;
    }

    List<SourceSpec> sources() {
        return specs;
    }

    HfTokenizer tokenizer() {
        return tokenizer;
    }

    @Override
    public String describe() {
        return "mix(" + specs.size() + " sources, template=" + (jinja ? "auto (" + tokenizerConfig.templateOrigin() + ")" : "chatml")
                + ", loss-on=" + lossOn.configName() + ", leftover="
                + ConfigView.configName(leftover) + ", seed=" + seed + ")";
    }

    /** The factory of {@code type = mix}. */
    static final class Factory implements ExtensionFactory<TrainingData> {
        static final Set<String> SOURCE_KEYS = Set.of("name", "path", "weight", "on-error");

        @Override
        public Class<TrainingData> extensionPoint() {
            return TrainingData.class;
        }

        @Override
        public String type() {
            return "mix";
        }

        @Override
        public String description() {
            return "weighted chat sources sampled independently, ChatML loss masks, packed rows (Falcon-H1 SFT mix)";
        }

        @Override
        public MixTrainingData create(ConfigView config, ExtensionContext context) {
            RenderThreads.usePipelineThreads(context.threads());
            String template = config.getString("template");
            if (!"chatml".equals(template) && !"auto".equals(template)) {
                throw config.invalid("template", "chatml (the ChatML fast path) or auto (the tokenizer's own Jinja chat template)",
                        "'" + template + "'");
            }
            LossOn lossOn = config.getEnum("loss-on", LossOn.class);
            Leftover leftover = config.getEnum("leftover", Leftover.class);
            OnError onError = config.getEnum("on-error", OnError.class);
            double maxSkipped = maxSkippedFraction(config);
            long budget = config.getTokens("budget").tokens();
            List<ConfigView> list = config.getConfigList("sources");
            if (list.isEmpty()) {
                throw config.invalid("sources", "at least one source { name = ..., path = ..., weight = ... }", "an empty list");
            }
            // Every source and the tokenizer are checked, so that one run of validate lists every missing path.
            List<ConfigProblem> problems = new ArrayList<>();
            List<SourceSpec> specs = sources(list, onError, maxSkipped, context, problems);
            HfTokenizer tokenizer = null;
            TokenizerConfig tokenizerConfig = null;
            try {
                Path tokenizerPath = existingTokenizer(config, context);
                tokenizer = HfTokenizer.load(tokenizerPath);
                tokenizerConfig = TokenizerConfig.read(tokenizerPath);
                if ("auto".equals(template) && tokenizerConfig.chatTemplate() == null) {
                    Path dir = tokenizerPath.toAbsolutePath().getParent();
                    throw config.invalid("template", "with template = auto, a chat template beside the tokenizer: "
                            + dir.resolve(TokenizerConfig.TEMPLATE_FILE) + ", or \"chat_template\" in "
                            + dir.resolve(TokenizerConfig.CONFIG), "neither (use template = chatml, or add the model's template)");
                }
                String bos = tokenizerConfig.bosToken();
                if (bos != null && !tokenizer.hasSpecialToken(bos)) {
                    throw config.invalid("tokenizer", "the BOS token " + bos + " of " + TokenizerConfig.CONFIG
                            + " to be an added token of " + tokenizerPath, "none");
                }
            } catch (ConfigException e) {
                problems.addAll(e.problems());
            } catch (InputException e) {
                problems.addAll(config.invalid("tokenizer", "a Hugging Face tokenizer.json", e.getMessage()).problems());
            }
            if (!problems.isEmpty()) {
                throw new ConfigException(problems);
            }
            String cacheDir = config.getString("cache-dir");
            CacheFiles cache = new CacheFiles(config.getBoolean("cache"), cacheDir.isEmpty() ? null : context.resolvePath(config, "cache-dir"));
            return new MixTrainingData(tokenizer, specs, lossOn, config.getBoolean("supervise-eos"), config.getLong("seed"),
                    budget, leftover, cache, System.err::println, "auto".equals(template), tokenizerConfig);
        }

        /** One source block: its keys, name, weight and an existing path. */
        /** Every source of {@code list}; a bad one adds its problems and is left out, so that all are reported at once. */
        static List<SourceSpec> sources(List<ConfigView> list, OnError onError, double maxSkipped, ExtensionContext context,
                List<ConfigProblem> problems) {
            List<SourceSpec> specs = new ArrayList<>();
            Set<String> names = new HashSet<>();
            for (ConfigView s : list) {
                try {
                    specs.add(source(s, names, onError, maxSkipped, context));
                } catch (ConfigException e) {
                    problems.addAll(e.problems());
                }
            }
            return specs;
        }

        /** The data block's {@code tokenizer} path, which must exist. */
        static Path existingTokenizer(ConfigView config, ExtensionContext context) {
            Path tokenizerPath = context.resolvePath(config, "tokenizer");
            if (!java.nio.file.Files.exists(tokenizerPath)) {
                throw config.invalid("tokenizer", "an existing Hugging Face tokenizer.json", tokenizerPath + " (no such file)");
            }
            return tokenizerPath;
        }

        static SourceSpec source(ConfigView s, Set<String> names, OnError onError, double maxSkipped,
                ExtensionContext context) {
            for (String key : s.keys()) {
                if (!SOURCE_KEYS.contains(key)) {
                    throw s.invalid(key, "only the keys name, path, weight, on-error in a source", "'" + key + "'");
                }
            }
            if (!s.has("path")) {
                throw s.invalid("", "a path (a JSONL or Parquet file or a folder of shards)", "no path");
            }
            Path path = context.resolvePath(s, "path");
            String name = s.has("name") ? s.getString("name") : path.getFileName().toString();
            if (!names.add(name)) {
                throw s.invalid("name", "a name no other source has", "'" + name + "' twice");
            }
            double weight = s.has("weight") ? s.getDouble("weight") : 1.0;
            if (!(weight > 0) || Double.isInfinite(weight)) {
                throw s.invalid("weight", "a sampling weight > 0");
            }
            OnError own = s.has("on-error") ? s.getEnum("on-error", OnError.class) : onError;
            if (!java.nio.file.Files.exists(path)) {
                throw s.invalid("path", "an existing JSONL file, Parquet file or folder of shards", path + " (no such file)");
            }
            return new SourceSpec(name, path, weight, own, maxSkipped);
        }
    }
}
