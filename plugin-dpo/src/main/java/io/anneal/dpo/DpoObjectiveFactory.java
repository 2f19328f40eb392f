package io.anneal.dpo;

import io.anneal.api.config.ConfigException;
import io.anneal.api.config.ConfigProblem;
import io.anneal.api.config.ConfigView;
import io.anneal.api.extension.ExtensionContext;
import io.anneal.api.extension.ExtensionFactory;
import io.anneal.api.train.SequenceScorer;
import io.anneal.api.train.Objective;

import java.util.ArrayList;
import java.util.List;

/**
 * {@code objective { type = <loss>, beta = ..., label-smoothing = ..., sft-weight = ..., reference = ...,
 * reference-scorer { type = onnx, ... } }}, one factory per loss type. The optional reference scorer
 * ({@link SequenceScorer}, plugin onnx) fills the cached reference's log-probs in another engine.
 */
final class DpoObjectiveFactory implements ExtensionFactory<Objective> {
    static final String REFERENCE_SCORER = "reference-scorer";

    private final PreferenceLoss.Type type;

    DpoObjectiveFactory(PreferenceLoss.Type type) {
        this.type = type;
    }

    static List<ExtensionFactory<?>> all() {
        List<ExtensionFactory<?>> out = new ArrayList<>();
        for (PreferenceLoss.Type t : PreferenceLoss.Type.values()) {
            out.add(new DpoObjectiveFactory(t));
        }
        return out;
    }

    @Override
    public Class<Objective> extensionPoint() {
        return Objective.class;
    }

    @Override
    public String type() {
        return type.configName;
    }

    @Override
    public String description() {
        return "preference loss " + type.configName + " over chosen/rejected pairs"
                + (type.needsReference ? " against a frozen reference model" : " (reference-free)");
    }

    @Override
    public java.util.Map<String, Class<?>> nestedExtensions() {
        return type.needsReference ? java.util.Map.of(REFERENCE_SCORER, SequenceScorer.class) : java.util.Map.of();
    }

    /** The only sequence scorer so far is plugin onnx's: validate names it when it is not installed. */
    @Override
    public java.util.Map<String, String> nestedExtensionPlugins() {
        return type.needsReference ? java.util.Map.of(REFERENCE_SCORER, "onnx") : java.util.Map.of();
    }

    @Override
    public Objective create(ConfigView config, ExtensionContext context) {
        DpoObjective.ReferenceMode mode = DpoObjective.ReferenceMode.ON_THE_FLY;
        if (type.needsReference) {
            String value = config.getString("reference").trim();
            mode = java.util.Arrays.stream(DpoObjective.ReferenceMode.values()).filter(m -> m.configName.equals(value))
                    .findFirst().orElseThrow(() -> config.invalid("reference", "on-the-fly (a frozen copy of the reference "
                            + "model runs beside the policy) or cached (its log-probs computed once per pair, kept on disk)"));
        }
        PreferenceLoss loss = loss(config, type);
        if (type.needsReference && config.has(REFERENCE_SCORER)) {
            if (mode != DpoObjective.ReferenceMode.CACHED) {
                throw config.invalid(REFERENCE_SCORER, "a reference scorer only with reference = cached (it fills the cache; "
                        + "on-the-fly runs the training engine's copy every step)", "reference = " + mode.configName);
            }
            ConfigView block = config.getConfig(REFERENCE_SCORER);
            return new DpoObjective(loss, mode, context.build(SequenceScorer.class, block), block.getString("type"));
        }
        return new DpoObjective(loss, mode);
    }

    static PreferenceLoss loss(ConfigView config, PreferenceLoss.Type type) {
        List<ConfigProblem> problems = new ArrayList<>();
        double beta = config.getDouble("beta");
        if (!(beta > 0) || Double.isInfinite(beta)) {
            problems.addAll(config.invalid("beta", "a finite beta > 0").problems());
        }
        double eps = config.has("label-smoothing") ? config.getDouble("label-smoothing") : 0.0;
        if (!(eps >= 0 && eps < 0.5)) {
            problems.addAll(config.invalid("label-smoothing", "a probability in [0, 0.5)").problems());
        }
        double gamma = config.has("gamma") ? config.getDouble("gamma") : 0.0;
        if (!Double.isFinite(gamma)) {
            problems.addAll(config.invalid("gamma", "a finite margin").problems());
        }
        double sftWeight = config.getDouble("sft-weight");
        if (!(sftWeight >= 0) || Double.isInfinite(sftWeight)) {
            problems.addAll(config.invalid("sft-weight", "a finite weight >= 0 (0: no SFT term)").problems());
        }
        if (!problems.isEmpty()) {
            throw new ConfigException(problems);
        }
        return new PreferenceLoss(type, beta, eps, gamma, sftWeight);
    }
}
