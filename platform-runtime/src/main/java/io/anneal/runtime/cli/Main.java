package io.anneal.runtime.cli;

import io.anneal.api.InputException;
import io.anneal.api.cli.CliCommand;
import io.anneal.api.plugin.ApiVersion;
import io.anneal.api.extension.ExtensionPoints;
import io.anneal.runtime.config.ConfiguredExtensions;
import io.anneal.runtime.config.PipelineLoader;
import io.anneal.runtime.config.PipelineValidator;
import io.anneal.runtime.config.ResolvedPipelinePrinter;
import io.anneal.runtime.config.ValidatedPipeline;
import io.anneal.runtime.output.ProgressReporters;
import io.anneal.runtime.output.RunConsole;
import io.anneal.runtime.pipeline.StopSignals;
import io.anneal.runtime.pipeline.PipelineEngine;
import io.anneal.runtime.train.RunFailedException;
import io.anneal.runtime.plugins.LoadedPlugin;
import io.anneal.runtime.plugins.PluginRefusal;
import io.anneal.runtime.plugins.PluginRegistry;
import io.anneal.runtime.plugins.PluginSources;
import io.anneal.runtime.plugins.RegisteredExtension;
import io.anneal.runtime.wiring.RunModule;
import java.io.PrintStream;
import java.io.PrintWriter;
import java.io.StringWriter;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.concurrent.Callable;
import picocli.CommandLine;
import picocli.CommandLine.Command;
import picocli.CommandLine.Mixin;
import picocli.CommandLine.Model.CommandSpec;
import picocli.CommandLine.Option;
import picocli.CommandLine.Parameters;

/**
 * Entry point of {@code bin/anneal}. Exit codes: 0 success, 1 a failed run (a fault such as a
 * checkpoint that cannot be written), 2 bad input ({@link InputException} anywhere, usage errors, a
 * missing plugins folder, a run folder in use by another run), 3 training stopped on non-finite
 * loss or gradients ({@link RunFailedException#exitCode()} carries 1 or 3).
 */
public final class Main {
    static final int OK = 0;
    static final int FAILED = 1;
    static final int BAD_INPUT = 2;

    private PrintStream out;
    private PrintStream err;
    private final Map<String, String> env;
    private final Path workingDirectory;
    private final String annealHome;
    private boolean stacktrace;
    private PluginRegistry registry;
    private ConfiguredExtensions extensions;

    Main(PrintStream out, PrintStream err, Map<String, String> env, Path workingDirectory, String annealHome) {
        this.out = out;
        this.err = err;
        this.env = env;
        this.workingDirectory = workingDirectory;
        this.annealHome = annealHome;
    }

    public static void main(String[] args) {
        StopSignals.install(System.err);
        Main main = new Main(System.out, System.err, System.getenv(), Path.of("").toAbsolutePath(),
                System.getProperty("anneal.home"));
        System.exit(main.run(args));
    }

    /** Runs the command line and returns the exit code. */
    int run(String... args) {
        List<String> pluginDirs = new ArrayList<>();
        int i = 0;
        // Global options come before the command word; read them first, since --plugins decides
        // which commands exist.
        while (i < args.length && args[i].startsWith("-")) {
            if (args[i].equals("--plugins") && i + 1 < args.length) {
                pluginDirs.add(args[++i]);
            } else if (args[i].startsWith("--plugins=")) {
                pluginDirs.add(args[i].substring("--plugins=".length()));
            } else if (args[i].equals("--stacktrace")) {
                stacktrace = true;
            } else if (!args[i].equals("--help") && !args[i].equals("-h") && !args[i].equals("--version")
                    && !args[i].equals("-V")) {
                break;
            }
            i++;
        }
        try {
            registry = PluginSources.load(annealHome, env.get("ANNEAL_PLUGINS"), pluginDirs);
        } catch (RuntimeException e) {
            return fail(e, null);
        }
        extensions = new ConfiguredExtensions(registry, workingDirectory);
        if (i < args.length && registry.command(args[i]).isPresent()) {
            CliCommand command = registry.command(args[i]).get().command();
            List<String> rest = List.of(args).subList(i + 1, args.length);
            try {
                return command.run(rest, new CliCommandContext(out, err, extensions, pipelineLoader(), workingDirectory));
            } catch (Exception | LinkageError e) {
                return fail(e, null);
            }
        }
        CommandLine cli = new CommandLine(new Root());
        cli.addSubcommand("plugins", new Plugins());
        cli.addSubcommand("env", new Env());
        cli.addSubcommand("validate", new Validate());
        cli.addSubcommand("run", new Run());
        cli.addSubcommand("config", new ConfigCommand());
        for (PluginRegistry.RegisteredCommand c : registry.commands()) {
            CommandSpec spec = CommandSpec.create().name(c.command().name());
            spec.usageMessage().description(c.command().summary() + " (plugin " + c.plugin().id() + ")");
            cli.addSubcommand(c.command().name(), new CommandLine(spec));
        }
        cli.setOut(new PrintWriter(out, true, StandardCharsets.UTF_8));
        cli.setErr(new PrintWriter(err, true, StandardCharsets.UTF_8));
        cli.setExecutionExceptionHandler((e, line, parsed) -> fail(e, null));
        return cli.execute(args);
    }

    private PipelineLoader pipelineLoader() {
        return new PipelineLoader(annealHome == null ? null : Path.of(annealHome, "conf", "anneal.conf"));
    }

    /** One line for the user; the stack trace only with {@code --stacktrace} or in {@code logDir}. */
    private int fail(Throwable e, Path logDir) {
        if (e instanceof InputException) {
            err.println("anneal: " + e.getMessage());
            if (stacktrace) {
                e.printStackTrace(err);
            }
            return BAD_INPUT;
        }
        if (e instanceof RunFailedException f) {
            // its message already says what happened and what is safe on disk
            err.println("anneal: " + f.getMessage());
            if (stacktrace) {
                e.printStackTrace(err);
            }
            return f.exitCode();
        }
        err.println("anneal: failed: " + describe(e));
        if (stacktrace) {
            e.printStackTrace(err);
        } else if (logDir != null) {
            try {
                Files.createDirectories(logDir);
                StringWriter trace = new StringWriter();
                e.printStackTrace(new PrintWriter(trace));
                Path log = logDir.resolve("anneal-error.log");
                Files.writeString(log, trace.toString(), StandardCharsets.UTF_8);
                err.println("anneal: the stack trace is in " + log);
            } catch (java.io.IOException io) {
                err.println("anneal: could not write the error log in " + logDir + ": " + io.getMessage());
            }
        } else {
            err.println("anneal: run again with --stacktrace for the stack trace");
        }
        return FAILED;
    }

    /** A failure for the user: its message, never a class name (that is for --stacktrace). */
    static String describe(Throwable e) {
        String message = e.getMessage();
        return message == null || message.isBlank() ? "an internal error with no message" : message;
    }

    private void warnRefusals() {
        if (!registry.refusals().isEmpty()) {
            err.println("anneal: " + registry.refusals().size() + " plugin problem(s); 'anneal plugins' lists them");
        }
    }

    /** Validates the pipeline file with the {@code --set} overrides, then the bare {@code PATH=VALUE} ones after the file. */
    private ValidatedPipeline validate(PipelineArguments pipeline) {
        Path file = pipeline.file;
        List<String> bare = pipeline.bare;
        warnRefusals();
        for (String b : bare) {
            if (b.indexOf('=') <= 0) {
                throw new InputException("'" + b + "' after " + file + ": expected an override PATH=VALUE, such as "
                        + "stages[0].schedule.peak-lr=1e-4 (one pipeline file per command)");
            }
        }
        List<String> all = new ArrayList<>(pipeline.overrides);
        all.addAll(bare);
        return new PipelineValidator(extensions, workingDirectory)
                .validate(pipelineLoader().load(workingDirectory.resolve(file), all));
    }

    /** Version text of {@code --version}. */
    static final class Version implements CommandLine.IVersionProvider {
        @Override
        public String[] getVersion() {
            return new String[] {"anneal " + ApiVersion.release() + " (API " + ApiVersion.current() + ")"};
        }
    }

    @Command(name = "anneal", mixinStandardHelpOptions = true, versionProvider = Version.class,
            description = "Post-train hybrid language models: run HOCON pipelines of plugin stages.")
    final class Root implements Callable<Integer> {
        @Option(names = "--plugins", paramLabel = "DIR[:DIR]", description = "extra plugin folders (before the command)")
        List<String> plugins;

        @Option(names = "--stacktrace", description = "print stack traces of failures")
        boolean trace;

        @picocli.CommandLine.Spec
        CommandSpec spec;

        @Override
        public Integer call() {
            spec.commandLine().usage(out);
            return BAD_INPUT;
        }
    }

    @Command(name = "plugins", mixinStandardHelpOptions = true,
            description = "List the loaded plugins, their extensions and commands, and the refused ones.")
    final class Plugins implements Callable<Integer> {
        @Override
        public Integer call() {
            for (LoadedPlugin p : registry.plugins()) {
                out.println(p.id() + " " + p.version() + "  API " + p.apiRange() + "  " + p.location());
                for (Map.Entry<Class<?>, List<RegisteredExtension>> e : registry.extensionsOf(p).entrySet()) {
                    out.println("  " + ExtensionPoints.key(e.getKey()) + ": "
                            + String.join(", ", e.getValue().stream().map(RegisteredExtension::type).toList()));
                }
                List<String> commands = registry.commands().stream().filter(c -> c.plugin() == p)
                        .map(c -> c.command().name()).toList();
                if (!commands.isEmpty()) {
                    out.println("  commands: " + String.join(", ", commands));
                }
            }
            if (!registry.refusals().isEmpty()) {
                out.println();
                out.println("Refused (" + registry.refusals().size() + "):");
                for (PluginRefusal r : registry.refusals()) {
                    out.println("  " + r.message());
                }
            }
            return OK;
        }
    }

    @Command(name = "env", mixinStandardHelpOptions = true,
            description = "Print what a bug report needs: Anneal, Java, DJL, libtorch, CUDA, GPUs, plugins.")
    final class Env implements Callable<Integer> {
        @Override
        public Integer call() {
            new EnvironmentReport(env, annealHome).print(out, registry);
            return OK;
        }
    }

    /** The pipeline file and its overrides, as validate, config and run take them. */
    static final class PipelineArguments {
        @Parameters(index = "0", paramLabel = "FILE", description = "the pipeline (HOCON)")
        Path file;

        @Parameters(index = "1..*", paramLabel = "PATH=VALUE", description = "override a value, as --set PATH=VALUE")
        List<String> bare = new ArrayList<>();

        @Option(names = "--set", paramLabel = "PATH=VALUE", description = "override a value (repeatable)")
        List<String> overrides = new ArrayList<>();
    }

    @Command(name = "validate", mixinStandardHelpOptions = true,
            description = "Check a pipeline file and report every problem at once.")
    final class Validate implements Callable<Integer> {
        @Mixin
        PipelineArguments pipeline;

        @Override
        public Integer call() {
            ValidatedPipeline p = validate(pipeline);
            out.println(pipeline.file + ": valid (pipeline '" + p.name() + "', " + p.stages().size() + " stage(s): "
                    + String.join(", ", p.stages().stream().map(ValidatedPipeline.StagePlan::name).toList()) + ")");
            return OK;
        }
    }

    @Command(name = "config", mixinStandardHelpOptions = true,
            description = "Print the resolved pipeline, every value with where it came from; runs nothing.")
    final class ConfigCommand implements Callable<Integer> {
        @Mixin
        PipelineArguments pipeline;

        @Override
        public Integer call() {
            ResolvedPipelinePrinter.lines(validate(pipeline)).forEach(out::println);
            return OK;
        }
    }

    @Command(name = "run", mixinStandardHelpOptions = true,
            description = "Validate a pipeline, print it with the origin of every value, and run its stages. "
                    + "The first SIGINT or SIGTERM stops after the current step with a checkpoint (exit 130 or 143); "
                    + "a second one stops at once. The console is also appended to <run-dir>/run.log.")
    final class Run implements Callable<Integer> {
        @Mixin
        PipelineArguments pipeline;

        @Option(names = "--resume", arity = "0..1", fallbackValue = "", paramLabel = "CHECKPOINT",
                description = "continue from the newest complete checkpoint, or from the checkpoint folder given")
        String resume;

        @Option(names = "--allow-change", paramLabel = "KEY", description = "accept a value (or block) changed "
                + "since the run started when resuming, e.g. stages[0].schedule.peak-lr (repeatable)")
        List<String> allowedChanges = new ArrayList<>();

        @Option(names = "--quiet", description = "only the essentials: no resolved pipeline (anneal config prints it)")
        boolean quiet;

        @Override
        public Integer call() {
            PrintStream terminalOut = out;
            PrintStream terminalErr = err;
            RunConsole console = new RunConsole(terminalOut, terminalErr);
            out = console;
            err = console.errors();
            try {
                return runLogged(console);
            } catch (InputException e) {
                return fail(e, null);
            } finally {
                console.close();
                out = terminalOut;
                err = terminalErr;
            }
        }

        private int runLogged(RunConsole console) {
            if (resume != null && !resume.isEmpty() && resume.matches("[A-Za-z0-9_.\\[\\]\"-]+=.*")
                    && !Files.exists(workingDirectory.resolve(resume))) {
                pipeline.bare.add(0, resume); // "--resume stages.0.x=1": an override after a bare --resume
                resume = "";
            }
            Optional<Path> checkpoint = resume == null || resume.isEmpty() ? Optional.empty()
                    : Optional.of(workingDirectory.resolve(resume).normalize());
            ValidatedPipeline p = validate(pipeline);
            console.logTo(p.runDir().resolve("run.log"));
            out.println("pipeline '" + p.name() + "' (" + pipeline.file + "), run folder " + p.runDir() + ", started "
                    + java.time.Instant.now().truncatedTo(java.time.temporal.ChronoUnit.SECONDS)
                    + (quiet ? "" : "; resolved:"));
            if (!quiet) {
                ResolvedPipelinePrinter.lines(p).forEach(l -> out.println("  " + l));
            }
            try {
                RunModule.injector(registry, extensions, p, out, ProgressReporters.forConsole(out, env))
                        .getInstance(PipelineEngine.class).run(resume != null, checkpoint, allowedChanges);
            } catch (InputException e) {
                throw e;
            } catch (RunFailedException e) {
                if (StopSignals.requested().isPresent()) {
                    err.println("anneal: " + e.getMessage() + "; resume with: " + resumeCommand());
                    return e.exitCode();
                }
                return fail(e, p.runDir());
            } catch (Exception | LinkageError e) {
                return fail(e, p.runDir());
            }
            out.println("pipeline '" + p.name() + "' done; results in " + p.runDir());
            return OK;
        }

        /** This command line again, with --resume (the newest checkpoint: the one the stop just wrote). */
        private String resumeCommand() {
            StringBuilder c = new StringBuilder("anneal run ").append(shellWord(pipeline.file.toString()));
            pipeline.overrides.forEach(o -> c.append(" --set ").append(shellWord(o)));
            pipeline.bare.forEach(b -> c.append(' ').append(shellWord(b)));
            return c.append(" --resume").toString();
        }
    }

    /** A word as a POSIX shell reads it back: as is when safe, else in single quotes. */
    static String shellWord(String word) {
        return word.matches("[A-Za-z0-9_./:=,@%+\\[\\]-]+") ? word : "'" + word.replace("'", "'\\''") + "'";
    }
}
