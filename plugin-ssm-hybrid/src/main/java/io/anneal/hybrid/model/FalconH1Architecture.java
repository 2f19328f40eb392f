package io.anneal.hybrid.model;

import ai.djl.Device;
import io.anneal.api.InputException;
import io.anneal.api.model.CausalLanguageModel;
import io.anneal.api.model.ModelArchitecture;
import io.anneal.api.model.ModelOptions;
import io.anneal.api.model.MupMultipliers;
import io.anneal.toolkit.mup.FalconH1Multipliers;
import java.nio.file.Path;
import java.util.Map;

/**
 * The {@code falcon-h1} model architecture: a configured shape and multiplier set that initialises
 * a model, or loads a checkpoint (whose own config.json then decides shape and multipliers).
 */
public final class FalconH1Architecture implements ModelArchitecture {
    private final FalconH1Config config;
    private final MupMultipliers multipliers;
    private final LayerImplementation layers;
    private final FusedKernels.Mode kernels;
    /** model.ssd-recompute and model.branch-stream: how the fused layers run. */
    private final FusedLayerOptions fusedOptions;
    private final SaveFormat saveFormat;

    public FalconH1Architecture(FalconH1Config config, MupMultipliers multipliers,
            LayerImplementation layers, FusedKernels.Mode kernels, FusedLayerOptions fusedOptions, SaveFormat saveFormat) {
        this.config = config;
        this.multipliers = multipliers;
        this.layers = layers;
        this.kernels = kernels;
        this.fusedOptions = fusedOptions;
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
        return withLayers(loadCheckpoint(checkpointDirectory, options), options);
    }

    /** The configured layers, on the fused operators where {@code kernels} and the machine allow (one line says which). */
    private FalconH1Model withLayers(FalconH1Model model, ModelOptions options) {
        model.saveAs(saveFormat);
        if (layers == LayerImplementation.TORCHSCRIPT) {
            System.out.println(useTorchScriptLayers(model, kernels, options.device(), "model.kernels", fusedOptions));
            return model;
        }
        if (kernels == FusedKernels.Mode.FUSED) {
            model.close();
            throw new InputException("model.kernels = fused needs model.layers = torchscript, found "
                    + layers.configName());
        }
        return model.useLayers(layers);
    }

    /**
     * Puts {@code model}'s layers on TorchScript, on the fused operators where {@code mode} and
     * {@code device} allow ({@link FusedKernels#select}; {@code setting} names the setting in errors),
     * and returns the one line that says which. A pipeline's {@code model.kernels} and
     * {@code anneal logits --kernels} both decide here. {@code fusedOptions}: how the fused layers
     * run (model.ssd-recompute, model.branch-stream); the line says those that are not the defaults,
     * and on the reference path that they change nothing there.
     */
    public static String useTorchScriptLayers(FalconH1Model model, FusedKernels.Mode mode, Device device,
            String setting, FusedLayerOptions fusedOptions) {
        FusedKernels.Status status = FusedKernels.select(mode, device, setting);
        model.useLayers(LayerImplementation.TORCHSCRIPT, status.fused(), fusedOptions);
        return status.line() + (status.fused() ? fusedOptions.describe() : fusedOptions.ignoredOnReference());
    }

    /**
     * Loads a checkpoint folder: shape and muP multipliers from its config.json, both read here (the
     * multipliers by the toolkit's {@link FalconH1Multipliers}), so loading a Falcon-H1 checkpoint needs
     * no other plugin.
     */
    public static FalconH1Model loadCheckpoint(Path directory, ModelOptions options) {
        Map<String, Object> json = FalconH1Checkpoints.readConfigJson(directory);
        String origin = directory.resolve("config.json").toString();
        FalconH1Config config = FalconH1Config.fromConfigJson(json, origin);
        return FalconH1Checkpoints.load(directory, config, FalconH1Multipliers.fromConfigJson(json, origin), options);
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
