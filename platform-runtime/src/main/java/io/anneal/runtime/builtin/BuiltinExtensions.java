package io.anneal.runtime.builtin;

import io.anneal.api.cli.CliCommand;
import io.anneal.api.extension.ExtensionFactory;
import io.anneal.runtime.train.PlotCommand;
import io.anneal.runtime.train.SftStageFactory;
import io.anneal.runtime.train.bench.TrainStepBenchmark;
import java.util.List;

/**
 * The ONE place the runtime's own extensions and commands are listed; {@link CorePlugin} offers
 * them. Add a built-in stage factory or command here.
 */
public final class BuiltinExtensions {
    private BuiltinExtensions() {
    }

    /** Extension factories of the core plugin. */
    public static final List<ExtensionFactory<?>> FACTORIES = List.of(
            new ScheduleTableStage.Factory(),
            new SftStageFactory(),
            io.anneal.runtime.train.SftObjective.factory(),
            io.anneal.runtime.output.JsonlMetricsSink.factory(),
            io.anneal.runtime.output.TensorBoardMetricsSink.factory());

    /** Commands of the core plugin (besides plugins, validate and run, which the CLI owns). */
    public static final List<CliCommand> COMMANDS = List.of(
            new PlotCommand(),
            new TrainStepBenchmark());
}
