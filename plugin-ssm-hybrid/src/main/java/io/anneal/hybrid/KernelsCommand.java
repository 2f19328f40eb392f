package io.anneal.hybrid;

import io.anneal.api.cli.CliCommand;
import io.anneal.api.cli.CommandContext;
import io.anneal.hybrid.model.FusedKernels;
import io.anneal.toolkit.cli.CommandArguments;
import io.anneal.toolkit.device.DeviceChoice;
import java.util.List;
import java.util.Locale;

/**
 * {@code anneal kernels [--device auto|gpu|cpu] [--kernels auto|fused]}: whether a run on this machine
 * would use Anneal's fused GPU operators, and why not, before a job is started. It prints where the
 * library is looked for and whether it is there, what its build record says against this plugin's
 * operator sources and the libtorch DJL runs (checkable on any machine, such as before copying a
 * library built elsewhere into a distribution), then the line a run prints for {@code model.kernels}
 * (on a GPU this loads the library, as a run would). With {@code --kernels fused} it exits 2 where a
 * run with {@code model.kernels = fused} would stop.
 */
public final class KernelsCommand implements CliCommand {
    static final String USAGE = "usage: anneal kernels [--device auto|gpu|cpu] [--kernels auto|fused]";

    @Override
    public String name() {
        return "kernels";
    }

    @Override
    public String summary() {
        return "where the fused GPU operators are, what they were built for, and whether a run here would use them";
    }

    @Override
    public int run(List<String> args, CommandContext context) {
        CommandArguments a = CommandArguments.parse("anneal kernels", USAGE, args, "device", "kernels");
        if (a.help()) {
            context.out().println(USAGE);
            context.out().println("  --device   auto (default: the GPU when libtorch sees one, as pipeline.device), gpu, cpu");
            context.out().println("  --kernels  auto (default: say what a run would decide) or fused (exit 2 where a run with");
            context.out().println("             model.kernels = fused would stop)");
            return 0;
        }
        a.noPositionals();
        DeviceChoice choice = DeviceChoice.choose(a.choice("device", "auto", "auto", "gpu", "cpu"), "--device");
        FusedKernels.Mode mode = FusedKernels.Mode.valueOf(a.choice("kernels", "auto", "auto", "fused").toUpperCase(Locale.ROOT));
        for (String line : FusedKernels.report()) {
            context.out().println(line);
        }
        context.out().println(choice.line());
        context.out().println(FusedKernels.select(mode, choice.device(), "--kernels").line());
        return 0;
    }
}
