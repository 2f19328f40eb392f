package io.anneal.hybrid;

import io.anneal.api.config.ConfigView;
import io.anneal.api.model.ModelArchitecture;
import io.anneal.api.model.MupMultipliers;
import io.anneal.api.extension.ExtensionContext;
import io.anneal.api.extension.ExtensionFactory;
import io.anneal.toolkit.mup.FalconH1Multipliers;
import io.anneal.hybrid.model.FalconH1Architecture;
import io.anneal.hybrid.model.LayerImplementation;
import io.anneal.hybrid.model.FalconH1Config;
import io.anneal.hybrid.model.FusedKernels;
import io.anneal.hybrid.model.FusedLayerOptions;
import io.anneal.hybrid.model.SaveFormat;
import java.util.Map;

/**
 * {@code model { type = falcon-h1, hidden-size = ..., embedding-multiplier = ... }}: the keys are the
 * Falcon-H1 config.json fields with dashes, the muP multipliers among them, read by this plugin.
 * An optional {@code mup { type = falcon-h1, base-width = ..., width = ... }} block instead builds
 * the multipliers through the {@link MupMultipliers} extension point (plugin mup: width scaling);
 * the multipliers then live in that block.
 */
public final class FalconH1ArchitectureFactory implements ExtensionFactory<ModelArchitecture> {
    @Override
    public Class<ModelArchitecture> extensionPoint() {
        return ModelArchitecture.class;
    }

    @Override
    public String type() {
        return "falcon-h1";
    }

    @Override
    public String description() {
        return "Falcon-H1 hybrid (attention + Mamba2 in parallel), Hugging Face checkpoints in and out";
    }

    static final String MUP = "mup";

    @Override
    public Map<String, Class<?>> nestedExtensions() {
        return Map.of(MUP, MupMultipliers.class);
    }

    /** The mup block's falcon-h1 type is plugin mup's: validation names it when it is not loaded. */
    @Override
    public Map<String, String> nestedExtensionPlugins() {
        return Map.of(MUP, "mup");
    }

    @Override
    public ModelArchitecture create(ConfigView config, ExtensionContext context) {
        MupMultipliers mup = config.has(MUP) ? mupBlock(config, context) : FalconH1Multipliers.fromHocon(config);
        LayerImplementation implementation = config.getEnum("layers", LayerImplementation.class);
        FusedKernels.Mode kernels = config.getEnum("kernels", FusedKernels.Mode.class);
        SaveFormat save = SaveFormat.fromHocon(config);
        return new FalconH1Architecture(FalconH1Config.fromHocon(config), mup, implementation, kernels,
                FusedLayerOptions.fromHocon(config), save);
    }

    /**
     * The multipliers of the {@code mup} block. Multipliers set in the model block too would be
     * ignored, so that is an error naming both places.
     */
    private static MupMultipliers mupBlock(ConfigView config, ExtensionContext context) {
        FalconH1Multipliers modelLevel = FalconH1Multipliers.fromHocon(config);
        Map<String, Object> defaults = FalconH1Multipliers.fromConfigJson(Map.of(), "defaults").asConfigJson();
        for (Map.Entry<String, Object> field : modelLevel.asConfigJson().entrySet()) {
            if (!field.getValue().equals(defaults.get(field.getKey()))) {
                String key = field.getKey().replace('_', '-');
                throw config.invalid(key, "the multipliers in one place: with a mup block, set them there (" + MUP + "."
                        + key + ")");
            }
        }
        return context.build(MupMultipliers.class, config.getConfig(MUP));
    }
}
