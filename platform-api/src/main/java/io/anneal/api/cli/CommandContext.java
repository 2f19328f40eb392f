package io.anneal.api.cli;

import io.anneal.api.Stable;
import io.anneal.api.config.ConfigView;
import io.anneal.api.extension.ExtensionContext;
import java.io.PrintStream;
import java.nio.file.Path;

/** What the runtime gives a plugin's command. */
@Stable(since = "1.0")
public interface CommandContext {

    PrintStream out();

    PrintStream err();

    /**
     * Loads a HOCON file (includes resolved, plugin defaults underneath) and validates it as a
     * whole; every problem is reported at once as a {@link io.anneal.api.config.ConfigException}.
     */
    ConfigView loadConfig(Path file);

    /**
     * Reads a HOCON file as written (includes and substitutions resolved) without checking it as a
     * pipeline, for commands that use some of its blocks only, such as each stage's schedule of a
     * pipeline whose data is elsewhere. Blocks are checked when built through {@link #extensions()}.
     * Syntax errors are an {@link io.anneal.api.InputException} naming the file and line.
     *
     * @since 1.2
     */
    default ConfigView readConfig(Path file) {
        return loadConfig(file);
    }

    ExtensionContext extensions();

    Charts charts();

    /** The directory relative paths on the command line resolve against. */
    Path workingDirectory();
}
