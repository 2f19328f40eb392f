package io.anneal.hybrid.model;

import io.anneal.api.InputException;
import io.anneal.api.model.CausalLanguageModel;
import io.anneal.api.model.ModelArchitecture;
import io.anneal.api.model.ModelOptions;
import io.anneal.api.model.MupMultipliers;
import io.anneal.api.extension.ExtensionContext;
import java.nio.file.Path;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * The {@code falcon-h1} model architecture: a configured shape and multiplier set that initialises
 * a model, or loads a checkpoint (whose own config.json then decides shape and multipliers).
 */
public final class FalconH1Architecture implements ModelArchitecture {
    private final FalconH1Config config;
    private final MupMultipliers multipliers;
    private final ExtensionContext context;
    private final LayerImplementation layers;
    private final FusedKernels.Mode kernels;
    private final SaveFormat saveFormat;

    public FalconH1Architecture(FalconH1Config config, MupMultipliers multipliers, ExtensionContext context,
            LayerImplementation layers, FusedKernels.Mode kernels, SaveFormat saveFormat) {
        this.config = config;
        this.multipliers = multipliers;
        this.context = context;
        this.layers = layers;
        this.kernels = kernels;
        this.saveFormat = saveFormat;
    }

    public FalconH1Config config() {
        return config;
    }

    @Override
    public FalconH1Model initialize(ModelOptions options) {
        return withLayers(FalconH1Checkpoints.initialize(config, multipliers, options), options);
    }

    @Override
    public CausalLanguageModel load(Path checkpointDirectory, ModelOptions options) {
        return withLayers(loadCheckpoint(checkpointDirectory, options, context), options);
    }

    /** The configured layers, on the fused operators where {@code kernels} and the machine allow (one line says which). */
    private FalconH1Model withLayers(FalconH1Model model, ModelOptions options) {
        model.saveAs(saveFormat);
        boolean fused = false;
        if (layers == LayerImplementation.TORCHSCRIPT) {
            FusedKernels.Status status = FusedKernels.select(kernels, options.device(), "model.kernels");
            System.out.println(status.line());
            fused = status.fused();
        } else if (kernels == FusedKernels.Mode.FUSED) {
            model.close();
            throw new InputException("model.kernels = fused needs model.layers = torchscript, found "
                    + layers.configName());
        }
        return model.useLayers(layers, fused);
    }

    /**
     * Loads a checkpoint folder: shape from its config.json, multipliers built through the API as a
     * {@code falcon-h1} {@link MupMultipliers} from the config.json values (the hybrid plugin never
     * names plugin-mup's classes).
     */
    public static FalconH1Model loadCheckpoint(Path directory, ModelOptions options, ExtensionContext context) {
        Map<String, Object> json = FalconH1Checkpoints.readConfigJson(directory);
        String origin = directory.resolve("config.json").toString();
        FalconH1Config config = FalconH1Config.fromConfigJson(json, origin);
        MupMultipliers mup = context.build(MupMultipliers.class, "falcon-h1", mupSettings(json), origin);
        return FalconH1Checkpoints.load(directory, config, mup, options);
    }

    /** The muP fields of a config.json as settings of the mup block ({@code _} becomes {@code -}). */
    public static Map<String, Object> mupSettings(Map<String, Object> json) {
        Map<String, Object> settings = new LinkedHashMap<>();
        for (String field : FalconH1Checkpoints.MUP_FIELDS) {
            Object value = json.get(field);
            if (value instanceof Number n) {
                settings.put(field.replace('_', '-'), n.doubleValue());
            } else if (value instanceof List<?> list) {
                settings.put(field.replace('_', '-'), list.stream()
                        .map(v -> v instanceof Number n ? (Object) n.doubleValue() : v).toList());
            }
        }
        return settings;
    }

    @Override
    public java.util.OptionalInt vocabularySize() {
        return java.util.OptionalInt.of(config.vocabSize()); // model.vocab-size
    }

    @Override
    public String describe() {
        return "falcon-h1 (hidden " + config.hiddenSize() + ", " + config.numHiddenLayers() + " layers, vocab "
                + config.vocabSize() + ")";
    }
}
