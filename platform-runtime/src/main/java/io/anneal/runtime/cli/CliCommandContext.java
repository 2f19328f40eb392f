package io.anneal.runtime.cli;

import io.anneal.api.cli.Charts;
import io.anneal.api.cli.CommandContext;
import io.anneal.api.config.ConfigView;
import io.anneal.api.extension.ExtensionContext;
import io.anneal.runtime.config.ConfiguredExtensions;
import io.anneal.runtime.config.HoconConfigView;
import io.anneal.runtime.config.PipelineLoader;
import io.anneal.runtime.config.PipelineValidator;
import io.anneal.runtime.config.ValidatedPipeline;
import io.anneal.runtime.output.XChartCharts;
import java.io.PrintStream;
import java.nio.file.Path;
import java.util.List;

/** What a plugin's command gets: the console, validated configuration, extensions and charts. */
final class CliCommandContext implements CommandContext {
    private final PrintStream out;
    private final PrintStream err;
    private final ConfiguredExtensions extensions;
    private final PipelineLoader loader;
    private final Path workingDirectory;

    CliCommandContext(PrintStream out, PrintStream err, ConfiguredExtensions extensions, PipelineLoader loader,
                      Path workingDirectory) {
        this.out = out;
        this.err = err;
        this.extensions = extensions;
        this.loader = loader;
        this.workingDirectory = workingDirectory;
    }

    @Override
    public PrintStream out() {
        return out;
    }

    @Override
    public PrintStream err() {
        return err;
    }

    @Override
    public ConfigView loadConfig(Path file) {
        ValidatedPipeline pipeline = new PipelineValidator(extensions, workingDirectory)
                .validate(loader.load(workingDirectory.resolve(file), List.of()));
        return new HoconConfigView(pipeline.resolved(), "");
    }

    @Override
    public ConfigView readConfig(Path file) {
        return new HoconConfigView(PipelineLoader.readPlain(workingDirectory.resolve(file)), "");
    }

    @Override
    public ExtensionContext extensions() {
        return extensions;
    }

    @Override
    public Charts charts() {
        return new XChartCharts();
    }

    @Override
    public Path workingDirectory() {
        return workingDirectory;
    }
}
