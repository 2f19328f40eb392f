package io.anneal.hybrid;

import io.anneal.api.cli.CliCommand;
import io.anneal.api.extension.ExtensionFactory;
import io.anneal.api.plugin.Plugin;
import io.anneal.api.plugin.VersionRange;
import java.util.List;

/** Entry point of the 'ssm-hybrid' plugin: the falcon-h1 architecture, the {@code logits} and {@code kernels} commands. */
public final class HybridPlugin implements Plugin {
    @Override
    public String id() {
        return "ssm-hybrid";
    }

    @Override
    public VersionRange apiRange() {
        return VersionRange.parse("[1.0,2.0)");
    }

    @Override
    public String description() {
        return "Falcon-H1 hybrid attention + Mamba2 models with Hugging Face checkpoint load and save";
    }

    @Override
    public List<ExtensionFactory<?>> extensions() {
        return List.of(new FalconH1ArchitectureFactory());
    }

    @Override
    public List<CliCommand> commands() {
        return List.of(new LogitsCommand(), new KernelsCommand());
    }
}
