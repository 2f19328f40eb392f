package io.anneal.hybrid;

import io.anneal.api.config.ConfigView;
import io.anneal.api.model.ModelArchitecture;
import io.anneal.api.model.MupMultipliers;
import io.anneal.api.extension.ExtensionContext;
import io.anneal.api.extension.ExtensionFactory;
import io.anneal.hybrid.model.FalconH1Architecture;
import io.anneal.hybrid.model.LayerImplementation;
import io.anneal.hybrid.model.FalconH1Config;
import io.anneal.hybrid.model.FusedKernels;
import io.anneal.hybrid.model.SaveFormat;
import java.util.Map;

/**
 * {@code model { type = falcon-h1, hidden-size = ..., mup { type = falcon-h1, ... } }}: the keys are
 * the Falcon-H1 config.json fields with dashes; the muP multipliers come from the nested
 * {@code mup} block, built through the API.
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

    @Override
    public Map<String, Class<?>> nestedExtensions() {
        return Map.of("mup", MupMultipliers.class);
    }

    @Override
    public ModelArchitecture create(ConfigView config, ExtensionContext context) {
        MupMultipliers mup = context.build(MupMultipliers.class, config.getConfig("mup"));
        LayerImplementation implementation = config.getEnum("layers", LayerImplementation.class);
        FusedKernels.Mode kernels = config.getEnum("kernels", FusedKernels.Mode.class);
        SaveFormat save = SaveFormat.fromHocon(config);
        return new FalconH1Architecture(FalconH1Config.fromHocon(config), mup, context, implementation, kernels, save);
    }
}
