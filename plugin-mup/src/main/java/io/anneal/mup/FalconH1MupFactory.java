package io.anneal.mup;

import io.anneal.api.config.ConfigView;
import io.anneal.api.extension.ExtensionContext;
import io.anneal.api.extension.ExtensionFactory;
import io.anneal.api.model.MupMultipliers;
import io.anneal.toolkit.mup.FalconH1Multipliers;

/**
 * {@code mup { type = falcon-h1, embedding-multiplier = ..., base-width = 256, width = 1024 }}: the
 * Falcon-H1 multipliers (defaults: transformers' FalconH1Config, all 1), scaled from
 * {@code base-width} to {@code width} by {@link WidthScaling} when {@code enabled}.
 */
public final class FalconH1MupFactory implements ExtensionFactory<MupMultipliers> {
    @Override
    public Class<MupMultipliers> extensionPoint() {
        return MupMultipliers.class;
    }

    @Override
    public String type() {
        return "falcon-h1";
    }

    @Override
    public String description() {
        return "Falcon-H1 muP forward multipliers, scaled with width (Tensor Programs V)";
    }

    @Override
    public MupMultipliers create(ConfigView config, ExtensionContext context) {
        FalconH1Multipliers base = FalconH1Multipliers.fromHocon(config);
        double baseWidth = config.getDouble("base-width");
        double width = config.getDouble("width");
        if (baseWidth < 0) {
            throw config.invalid("base-width", "a width >= 0 (0: no width scaling)");
        }
        if (width < 0) {
            throw config.invalid("width", "a width >= 0 (0: no width scaling)");
        }
        if ((baseWidth > 0) != (width > 0)) {
            throw config.invalid(width > 0 ? "base-width" : "width",
                    "both base-width and width set (> 0) for width scaling, or both 0");
        }
        if (!config.getBoolean("enabled")) {
            return base;
        }
        return WidthScaling.scale(base, baseWidth, width, config.getBoolean("head-dim-scales"));
    }
}
