package io.anneal.dpo;

import io.anneal.api.plugin.Plugin;
import io.anneal.api.plugin.VersionRange;

/** Entry point of the 'dpo' plugin. */
public final class DpoPlugin implements Plugin {
    @Override
    public String id() {
        return "dpo";
    }

    @Override
    public String description() {
        return "preference optimisation: the dpo stage and the dpo, dpo_norm, ipo, hinge, robust and simpo objectives";
    }

    @Override
    public java.util.List<io.anneal.api.extension.ExtensionFactory<?>> extensions() {
        java.util.List<io.anneal.api.extension.ExtensionFactory<?>> out = new java.util.ArrayList<>(DpoObjectiveFactory.all());
        out.add(new DpoStageFactory());
        return out;
    }

    @Override
    public java.util.List<io.anneal.api.cli.CliCommand> commands() {
        return java.util.List.of(new DpoCommand());
    }

    @Override
    public VersionRange apiRange() {
        return VersionRange.parse("[1.0,2.0)");
    }
}
